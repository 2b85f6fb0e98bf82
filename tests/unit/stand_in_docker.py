"""A stand-in ``docker`` program for tests that run gpuhost_verify or gpu_facts on this machine.

It answers the commands they run (info, version, pull, image inspect, run) with recorded
output, so the real Docker engine is never asked anything. FAKE_DOCKER_STATE=down makes the
daemon "not answer"; FAKE_DOCKER_DEVICE=bad makes ``--gpus '"device=0"'`` fail;
FAKE_DOCKER_CDI=bad makes ``--device nvidia.com/gpu=all`` fail; FAKE_DOCKER_MIRRORS='["URL"]'
makes ``docker info`` report those registry mirrors, FAKE_DOCKER_HTTP_PROXY=URL that proxy;
FAKE_DOCKER_LOG=FILE appends each command's arguments to FILE.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

STAND_IN_DOCKER = r"""#!/bin/sh
# Stand-in for docker in the tests: answers the commands gpu_facts and gpuhost_verify run.
[ -n "${FAKE_DOCKER_LOG:-}" ] && echo "$*" >>"$FAKE_DOCKER_LOG"
case "$1" in
  info)
    if [ "${FAKE_DOCKER_STATE:-up}" = down ]; then
      echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
      exit 1
    fi
    echo '{"ServerVersion":"27.5.1","DefaultRuntime":"nvidia","Runtimes":{"io.containerd.runc.v2":{},"nvidia":{"path":"nvidia-container-runtime"},"runc":{}},"RegistryConfig":{"Mirrors":'"${FAKE_DOCKER_MIRRORS:-[]}"'},"HTTPProxy":"'"${FAKE_DOCKER_HTTP_PROXY:-}"'"}'
    ;;
  version) [ "${FAKE_DOCKER_STATE:-up}" = down ] && exit 1; echo "27.5.1" ;;
  pull) echo "Status: Image is up to date for $2" ;;
  image) echo "sha256:0123456789abcdef" ;;
  run)
    case "$*" in
      *nvidia.com/gpu=all*)
        [ "${FAKE_DOCKER_CDI:-ok}" = bad ] && { echo 'docker: Error response from daemon: CDI device injection failed: unresolvable CDI devices nvidia.com/gpu=all' >&2; exit 125; }
        echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d2b6a0e)" ;;
      *device=0*)
        [ "${FAKE_DOCKER_DEVICE:-ok}" = bad ] && { echo 'docker: Error response from daemon: invalid device' >&2; exit 125; }
        echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d2b6a0e)" ;;
      *runtime=nvidia*) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d2b6a0e)" ;;
      *) echo "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4 |" ;;
    esac
    ;;
  *) echo "stand-in docker: unexpected: $*" >&2; exit 2 ;;
esac
"""


def install_stand_in_docker(tmp_path: Path, monkeypatch) -> Path:
    """Write the stand-in as tmp_path/bin/docker and put that directory first on the PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    docker = bindir / "docker"
    docker.write_text(STAND_IN_DOCKER, encoding="utf-8")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return docker
