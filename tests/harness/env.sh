# The test suite's settings for the lab scripts in gpuhost_cli/lab/assets: its own cache
# under .cache/test and the keys made for the tests' stand-in mirror. Source it.
# shellcheck shell=bash
GPUHOST_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GPUHOST_ASSETS="$GPUHOST_REPO/gpuhost_cli/lab/assets"
export GPUHOST_CACHE="$GPUHOST_REPO/.cache/test"
export GPUHOST_MIRROR_KEYS="$GPUHOST_REPO/tests/harness/mirror/keys"
# shellcheck source=gpuhost_cli/lab/assets/common.sh
source "$GPUHOST_ASSETS/common.sh"
