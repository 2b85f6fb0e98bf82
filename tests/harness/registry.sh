#!/usr/bin/env bash
# The lab registry (Debian's docker-registry) that the daemon-safety scenario uses as a mirror.
set -euo pipefail
# shellcheck source=tests/harness/env.sh
source "$(dirname "$0")/env.sh"
exec bash "$GPUHOST_ASSETS/registry.sh" "$@"
