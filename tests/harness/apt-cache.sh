#!/usr/bin/env bash
# Start the shared apt cache for Debian's archive and point test hosts at it.
set -euo pipefail
# shellcheck source=tests/harness/env.sh
source "$(dirname "$0")/env.sh"
exec bash "$GPUHOST_ASSETS/apt-cache.sh" "$@"
