#!/usr/bin/env bash
# Build the systemd test-host images: Debian 12 and 13 with debootstrap and `docker import`,
# and the simulated Ubuntu hosts derived from them. An image that already exists is reused;
# pass --force to rebuild. With no target, all four are built.
#
#   [GPUHOST_MIRROR_KEYS=DIR] build-images.sh [--force] [debian12] [debian13] [ubuntu22-sim] [ubuntu24-sim]
#
# ubuntu22-sim and ubuntu24-sim are SIMULATED Ubuntu hosts: the Debian 12 (bookworm) and
# Debian 13 (trixie) userland, which identifies as Ubuntu 22.04 (jammy) and 24.04 (noble)
# exactly as Ubuntu does (os-release, lsb-release, debian_version, lsb_release) and lists,
# besides its Debian source, the stand-in of Ubuntu's archive on the stand-in mirror
# (http://$GPUHOST_MIRROR_NAME:8080/ubuntu), signed by the ubuntu-standin key whose public
# half DIR/ubuntu-standin.public.asc gives. A sim image is the Debian image plus one layer
# (seconds, no second debootstrap); it is rebuilt when that Debian image, the key, the
# mirror's name or this script changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=gpuhost_cli/lab/assets/common.sh
source "$here/common.sh"

# Packages every test host carries. procps: Docker's unit reloads with /bin/kill.
# busybox-static: the tiny image that tests run inside the host's Docker.
# openssh-server: lab hosts are reached over SSH like real hosts.
include="systemd,systemd-sysv,procps,python3,python3-apt,sudo,ca-certificates,gnupg"
include+=",busybox-static,openssh-server,iproute2,curl"

# Downloaded packages are kept here so a rebuild does not fetch them again.
: "${DEBOOTSTRAP_CACHE:=/var/cache/gpuhost-test/debootstrap}"

all_targets=(debian12 debian13 ubuntu22-sim ubuntu24-sim)
sim_keyring=/usr/share/keyrings/ubuntu-archive-standin.gpg

codename_of() {
  case "$1" in
    debian12) echo bookworm ;;
    debian13) echo trixie ;;
  esac
}

# sim_info NAME: "BASE CODENAME VERSION POINT_RELEASE NICKNAME" of a simulated Ubuntu host,
# as Ubuntu's own files spell them (the point release is the newest one the sim claims).
sim_info() {
  case "$1" in
    ubuntu22-sim) echo "debian12 jammy 22.04 22.04.5 Jammy_Jellyfish" ;;
    ubuntu24-sim) echo "debian13 noble 24.04 24.04.3 Noble_Numbat" ;;
    *) return 1 ;;
  esac
}

build_debian() {
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

# sim_rootfs NAME DIR KEYRING MIRROR_URL: the files that make the Debian userland of NAME
# identify as Ubuntu, written under DIR. KEYRING is the dearmored ubuntu-standin public key.
sim_rootfs() {
  local name="$1" dir="$2" keyring="$3" mirror="$4"
  local base codename version point nickname pretty
  read -r base codename version point nickname <<<"$(sim_info "$name")"
  nickname="${nickname//_/ }"
  pretty="Ubuntu $point LTS"
  mkdir -p "$dir/etc/apt/sources.list.d" "$dir/usr/lib" "$dir/usr/bin" "$dir/usr/share/keyrings"
  # Ubuntu's os-release, word for word; /etc/os-release links to it, as on Ubuntu.
  {
    echo "PRETTY_NAME=\"$pretty\""
    echo 'NAME="Ubuntu"'
    echo "VERSION_ID=\"$version\""
    echo "VERSION=\"$point LTS ($nickname)\""
    echo "VERSION_CODENAME=$codename"
    echo "ID=ubuntu"
    echo "ID_LIKE=debian"
    echo 'HOME_URL="https://www.ubuntu.com/"'
    echo 'SUPPORT_URL="https://help.ubuntu.com/"'
    echo 'BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"'
    echo 'PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"'
    echo "UBUNTU_CODENAME=$codename"
    [ "$codename" = jammy ] || echo "LOGO=ubuntu-logo"
  } >"$dir/usr/lib/os-release"
  ln -sfn ../usr/lib/os-release "$dir/etc/os-release"
  cat >"$dir/etc/lsb-release" <<EOF
DISTRIB_ID=Ubuntu
DISTRIB_RELEASE=$version
DISTRIB_CODENAME=$codename
DISTRIB_DESCRIPTION="$pretty"
EOF
  # Ubuntu's debian_version names the Debian release it was branched from, as testing.
  echo "$(codename_of "$base")/sid" >"$dir/etc/debian_version"
  install -m 0755 "$here/sim/lsb_release" "$dir/usr/bin/lsb_release"
  cat >"$dir/etc/gpuhost-simulated-release" <<EOF
SIMULATED Ubuntu $version ($codename), for gpuhost's tests and lab only: this is a Debian
$(codename_of "$base") userland ($base) that identifies as Ubuntu. os-release, lsb-release,
debian_version and lsb_release say Ubuntu; every program and package comes from Debian.
It lists a STAND-IN of Ubuntu's archive ($mirror/ubuntu, suite $codename, component
universe) besides its Debian source. Built by gpuhost_cli/lab/assets/build-images.sh.
EOF
  echo "$name-test-host" >"$dir/etc/hostname"
  install -m 0644 "$keyring" "$dir$sim_keyring"
  # The stand-in of Ubuntu's archive, in the format each release uses for its own sources.
  local note="# STAND-IN of Ubuntu's archive for gpuhost's tests, served by the stand-in mirror: a
# simulated Ubuntu $version host lists it as a real one lists Ubuntu's archive. Its packages
# carry Ubuntu's names; they are not Ubuntu's software."
  if [ "$codename" = jammy ]; then
    cat >"$dir/etc/apt/sources.list.d/ubuntu-standin.list" <<EOF
$note
deb [signed-by=$sim_keyring] $mirror/ubuntu $codename universe
EOF
  else
    cat >"$dir/etc/apt/sources.list.d/ubuntu-standin.sources" <<EOF
$note
Types: deb
URIs: $mirror/ubuntu
Suites: $codename
Components: universe
Signed-By: $sim_keyring
EOF
  fi
}

# The files of Debian's packages that the sim replaces; diverted (to FILE.debian), so that an
# upgrade of base-files, or Debian's lsb-release installed later, does not turn the host back
# into Debian.
sim_diversions=(/usr/lib/os-release /etc/debian_version /usr/bin/lsb_release)

# build_sim NAME: run in a subshell of its own (its EXIT trap cleans up).
build_sim() {
  local name="$1" base image key mirror stamp
  base="$(test_image_ref "$(sim_info "$name" | cut -d' ' -f1)")"
  image="$(test_image_ref "$name")"
  key="${GPUHOST_MIRROR_KEYS:?set GPUHOST_MIRROR_KEYS to the directory of the stand-in mirror keys (ubuntu-standin.public.asc)}/ubuntu-standin.public.asc"
  [ -f "$key" ] || die "$key is missing: the simulated Ubuntu hosts trust the ubuntu-standin key of the stand-in mirror"
  mirror="http://$GPUHOST_MIRROR_NAME:8080"
  stamp="$({ docker image inspect --format '{{.Id}}' "$base"; cat "$key" "$here/build-images.sh" "$here/sim/lsb_release"; echo "$mirror"; } \
    | sha256sum | cut -d' ' -f1)"
  if [ "$force" -eq 0 ] \
    && [ "$(docker image inspect --format '{{index .Config.Labels "gpuhost.sim.inputs"}}' "$image" 2>/dev/null)" = "$stamp" ]; then
    log "image $image exists, reusing it"
    return 0
  fi
  dir="$(mktemp -d /var/tmp/gpuhost-sim.XXXXXX)"
  builder="gpuhost-build-$name-$$"
  trap 'rm -rf "$dir"; docker rm -f "$builder" >/dev/null 2>&1 || true' EXIT
  gpg --batch --yes --dearmor -o "$dir/keyring.gpg" "$key"
  mkdir "$dir/root"
  sim_rootfs "$name" "$dir/root" "$dir/keyring.gpg" "$mirror"
  log "deriving $image from $base"
  local f divert=""
  for f in "${sim_diversions[@]}"; do
    divert+="dpkg-divert --quiet --local --no-rename --divert $f.debian --add $f && "
  done
  # Copied before the container first runs: a running one has Docker's own /etc/hostname.
  docker create --name "$builder" "$base" sh -c "${divert}true" >/dev/null
  tar -C "$dir/root" --owner=0 --group=0 --numeric-owner -c . | docker cp - "$builder:/"
  docker start --attach "$builder" >/dev/null
  docker commit \
    --change 'CMD ["/lib/systemd/systemd"]' --change 'ENV container=docker' \
    --change "LABEL gpuhost.simulated=\"Debian userland that identifies as Ubuntu, for gpuhost's tests\"" \
    --change "LABEL gpuhost.sim.inputs=$stamp" \
    "$builder" "$image" >/dev/null
  log "built $image (simulated: $(sim_info "$name" | cut -d' ' -f1) userland, identifies as Ubuntu)"
}

main() {
  force=0
  local targets=() arg t
  for arg in "$@"; do
    case "$arg" in
      --force) force=1 ;;
      debian12|debian13|ubuntu22-sim|ubuntu24-sim) targets+=("$arg") ;;
      *) die "unknown argument '$arg' (expected --force or targets: ${all_targets[*]})" ;;
    esac
  done
  [ "${#targets[@]}" -gt 0 ] || targets=("${all_targets[@]}")

  # The Debian images first: the targets, and the base of each sim when it is missing.
  local debian=() sims=() base
  for t in "${targets[@]}"; do
    if base="$(sim_info "$t" | cut -d' ' -f1)" && [ -n "$base" ]; then
      sims+=("$t")
      case " ${targets[*]} " in *" $base "*) ;; *) docker image inspect "$(test_image_ref "$base")" >/dev/null 2>&1 || debian+=("$base") ;; esac
    else
      debian+=("$t")
    fi
  done

  ensure_docker_engine
  # The builds wait mostly on downloads: run them side by side.
  mapfile -t debian < <(printf '%s\n' "${debian[@]}" | sort -u | sed '/^$/d')
  in_parallel build_debian "${debian[@]}" || die "building a test-host image failed"
  in_parallel build_sim "${sims[@]}" || die "building a simulated Ubuntu image failed"
}

# in_parallel FUNCTION ARG...: FUNCTION ARG for each ARG, side by side; fails when one does.
in_parallel() {
  local fn="$1" pids=() pid rc=0 arg
  shift
  for arg in "$@"; do
    "$fn" "$arg" &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || rc=1
  done
  return "$rc"
}

# Sourced (by tests, to write a sim's files with sim_rootfs), it only defines functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
