# Shared helpers of the lab and test-harness scripts. Source it; do not run it.
# shellcheck shell=bash

: "${GPUHOST_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/gpuhost}"
: "${DEBIAN_MIRROR:=http://deb.debian.org/debian}"
: "${GPUHOST_TEST_IMAGE_REPO:=gpuhost-test}"
: "${GPUHOST_TEST_NETWORK:=gpuhost-test}"
: "${GPUHOST_MIRROR_NAME:=gpuhost-mirror}"

log() { printf '[gpuhost] %s\n' "$*" >&2; }
die() { printf '[gpuhost] error: %s\n' "$*" >&2; exit 1; }

test_image_ref() { printf '%s/%s:latest' "$GPUHOST_TEST_IMAGE_REPO" "$1"; }

apt_install_missing() {
  # apt_install_missing CMD PACKAGE [CMD PACKAGE ...]: install PACKAGE when CMD is absent.
  local missing=()
  while [ "$#" -gt 1 ]; do
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || missing+=("$2")
    shift 2
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]} from the distribution"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_host_tools() {
  apt_install_missing dockerd docker.io debootstrap debootstrap \
    apt-ftparchive apt-utils gpg gnupg dpkg-deb dpkg ssh openssh-client ssh-keygen openssh-client
}

docker_engine_answers() { docker info >/dev/null 2>&1; }

ensure_docker_engine() {
  ensure_host_tools
  docker_engine_answers && return 0
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is starting, waiting for it"
  elif command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    log "starting docker with systemd"
    systemctl start docker
  else
    log "starting dockerd in the background (log: /var/log/dockerd.log)"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do
    docker_engine_answers && return 0
    sleep 1
  done
  tail -n 20 /var/log/dockerd.log >&2 || true
  die "the Docker engine did not answer within 60 s"
}

ensure_test_network() {
  docker network inspect "$GPUHOST_TEST_NETWORK" >/dev/null 2>&1 \
    || docker network create "$GPUHOST_TEST_NETWORK" >/dev/null
}

# build_package_image IMAGE WHAT SCRIPT [DOCKER_RUN_OPTION ...] -- [DOCKER_COMMIT_OPTION ...]
# Runs SCRIPT (bash) in a container of the Debian 12 test image, which installs WHAT from
# Debian's packages, and commits the container as IMAGE with the commit options (--change
# ...). Done once: an IMAGE that exists is kept. On failure, shows the end of the build's
# output and stops naming WHAT.
build_package_image() {
  local image="${1:?}" what="${2:?}" script="${3:?}" run_options=() base builder build_log
  shift 3
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do run_options+=("$1"); shift; done
  [ "$#" -gt 0 ] && shift
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  base="$(test_image_ref debian12)"
  docker image inspect "$base" >/dev/null 2>&1 \
    || bash "$(dirname "${BASH_SOURCE[0]}")/build-images.sh" debian12
  builder="gpuhost-build-${what//[^a-z0-9-]/-}"
  log "building $image: $what from Debian's packages (once)"
  docker rm -f "$builder" >/dev/null 2>&1 || true
  build_log="$(mktemp)"
  docker run "${run_options[@]}" --name "$builder" "$base" bash -c "$script" >"$build_log" 2>&1 || {
    tail -n 20 "$build_log" >&2
    rm -f "$build_log"
    docker rm -f "$builder" >/dev/null 2>&1
    die "installing $what failed"
  }
  rm -f "$build_log"
  docker commit "$@" "$builder" "$image" >/dev/null
  docker rm -f "$builder" >/dev/null
}
