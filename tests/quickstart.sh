#!/usr/bin/env bash
# Set everything up and provision two local GPU-host stand-ins (Debian 12 and 13 systemd
# containers) end to end with site.yml, then prove them: nvidia runtime registered and
# default, a container run through it, docker_users working. The NVIDIA and Docker
# repositories here are the local signed STAND-IN mirror, not the vendors' servers.
#
#   bash tests/quickstart.sh          set up, provision, verify; leaves the hosts running
#   bash tests/quickstart.sh down     remove the hosts
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# shellcheck source=tests/harness/env.sh
source tests/harness/env.sh

bash tests/harness/setup-venv.sh
# shellcheck disable=SC1091
source .venv/bin/activate

if [ "${1:-}" = "down" ]; then
  molecule destroy -s default
  exit 0
fi

ensure_docker_engine
bash tests/harness/build-images.sh
bash tests/harness/build-mirror.sh --serve
molecule converge -s default
molecule verify -s default
cat <<MSG

Provisioned gpuhost-default-debian12 and gpuhost-default-debian13 with site.yml, against
the local stand-in mirror (stand-in packages under the real names; not NVIDIA's or
Docker's servers). Look around:
  docker exec -it gpuhost-default-debian12 docker info
  docker exec -it gpuhost-default-debian12 cat /etc/docker/daemon.json
Remove them with: bash tests/quickstart.sh down
MSG
