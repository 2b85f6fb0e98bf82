#!/usr/bin/env bash
# Set gpuhost up on this machine and provision a local lab fleet end to end:
#   a virtual environment with gpuhost, the Docker engine (Debian's docker.io) when missing,
#   `gpuhost lab up` (systemd hosts in containers, reached over SSH, and a signed STAND-IN
#   mirror of Docker's and NVIDIA's repositories), `gpuhost provision`, `gpuhost verify`.
#
#   bash tests/quickstart.sh [HOSTS]     default 2 hosts
#   .venv/bin/gpuhost lab down           remove the lab afterwards
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# shellcheck source=tests/harness/env.sh
source tests/harness/env.sh

ensure_host_tools
bash tests/harness/setup-venv.sh
ensure_docker_engine

gpuhost=.venv/bin/gpuhost
"$gpuhost" lab up --hosts "${1:-2}"
inventory="${XDG_STATE_HOME:-$HOME/.local/state}/gpuhost/lab/inventory"
"$gpuhost" provision -i "$inventory"
"$gpuhost" verify -i "$inventory"
cat <<MSG

The lab is provisioned. Its Docker and NVIDIA repositories are a local STAND-IN mirror
(packages under the real names, signed with keys made for the lab), not the vendors'.
Look around:
  $gpuhost facts -i $inventory
  $gpuhost render -i $inventory gpuhost-lab-1
  $gpuhost provision -i $inventory --check --diff     # a second run changes nothing
Remove it with: $gpuhost lab down
MSG
