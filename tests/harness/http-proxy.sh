#!/usr/bin/env bash
# Start, read or remove a test HTTP proxy (tinyproxy) on test networks.
set -euo pipefail
# shellcheck source=tests/harness/env.sh
source "$(dirname "$0")/env.sh"
exec bash "$GPUHOST_ASSETS/http-proxy.sh" "$@"
