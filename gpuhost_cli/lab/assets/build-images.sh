#!/usr/bin/env bash
# Build the systemd test-host images (Debian 12 and 13) with debootstrap and
# `docker import`. An image that already exists is reused; pass --force to rebuild.
#
#   build-images.sh [--force] [debian12] [debian13]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=gpuhost_cli/lab/assets/common.sh
source "$here/common.sh"

force=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    debian12|debian13) targets+=("$arg") ;;
    *) die "unknown argument '$arg' (expected --force, debian12 or debian13)" ;;
  esac
done
[ "${#targets[@]}" -gt 0 ] || targets=(debian12 debian13)

# Packages every test host carries. procps: Docker's unit reloads with /bin/kill.
# busybox-static: the tiny image that tests run inside the host's Docker.
# openssh-server: lab hosts are reached over SSH like real hosts.
include="systemd,systemd-sysv,procps,python3,python3-apt,sudo,ca-certificates,gnupg"
include+=",busybox-static,openssh-server,iproute2,curl"

# Downloaded packages are kept here so a rebuild does not fetch them again.
: "${DEBOOTSTRAP_CACHE:=/var/cache/gpuhost-test/debootstrap}"

codename_of() {
  case "$1" in
    debian12) echo bookworm ;;
    debian13) echo trixie ;;
  esac
}

build_one() {
  local name="$1" codename image dir
  codename="$(codename_of "$name")"
  image="$(test_image_ref "$name")"
  if [ "$force" -eq 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    log "image $image exists, reusing it"
    return 0
  fi
  dir="$(mktemp -d /var/tmp/gpuhost-rootfs.XXXXXX)"
  trap 'rm -rf "$dir"' RETURN
  log "debootstrap $codename into $dir"
  mkdir -p "$DEBOOTSTRAP_CACHE/$codename"
  debootstrap --variant=minbase --include="$include" --cache-dir="$DEBOOTSTRAP_CACHE/$codename" \
    "$codename" "$dir" "$DEBIAN_MIRROR" \
    >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; die "debootstrap $codename failed"; }
  rm -f "$dir.log"
  # The host's own apt sources, as on a freshly installed machine.
  cat >"$dir/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR $codename main
EOF
  # A container has no console getty and no udev; keep the boot quiet and fast.
  chroot "$dir" systemctl mask getty@tty1.service console-getty.service \
    systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
    >/dev/null 2>&1 || true
  echo "$name-test-host" >"$dir/etc/hostname"
  : >"$dir/etc/machine-id"
  log "importing $image"
  tar -C "$dir" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' - "$image" >/dev/null
  log "built $image"
}

ensure_docker_engine
# The builds wait mostly on downloads: run them side by side.
pids=()
for t in "${targets[@]}"; do
  build_one "$t" &
  pids+=("$!")
done
rc=0
for pid in "${pids[@]}"; do
  wait "$pid" || rc=1
done
[ "$rc" -eq 0 ] || die "building a test-host image failed"
