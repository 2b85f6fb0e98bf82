#!/usr/bin/env bash
# Build the Debian 12 and 13 test-host images once (reused while they exist).
set -euo pipefail
# shellcheck source=tests/harness/env.sh
source "$(dirname "$0")/env.sh"
exec bash "$GPUHOST_ASSETS/build-images.sh" "$@"
