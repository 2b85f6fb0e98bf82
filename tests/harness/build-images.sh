#!/usr/bin/env bash
# Build the test-host images once (reused while they exist): Debian 12 and 13, and the
# simulated Ubuntu 22.04 and 24.04 hosts derived from them (trusting the tests' ubuntu-standin key).
set -euo pipefail
# shellcheck source=tests/harness/env.sh
source "$(dirname "$0")/env.sh"
exec bash "$GPUHOST_ASSETS/build-images.sh" "$@"
