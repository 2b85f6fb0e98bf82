#!/usr/bin/env bash
# Build the stand-in mirror with the tests' keys; --serve also runs it on the test network.
set -euo pipefail
# shellcheck source=tests/harness/env.sh
source "$(dirname "$0")/env.sh"
exec bash "$GPUHOST_ASSETS/build-mirror.sh" "$@"
