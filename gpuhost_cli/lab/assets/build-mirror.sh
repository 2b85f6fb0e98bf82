#!/usr/bin/env bash
# Build the local signed apt mirror that stands in for Docker's, NVIDIA's and Ubuntu's
# repositories in tests and in the lab, then (with --serve) run it as a container on the
# test network. Every package in it is a STAND-IN: it carries the real package name and
# installs the real entry points, but it is not the vendor's software.
#
#   GPUHOST_MIRROR_KEYS=DIR build-mirror.sh [--serve]
#
# DIR holds {docker,nvidia,rogue,ubuntu}-standin.secret.asc and .public.asc: keys made for
# the stand-in mirror only. The mirror is built under $GPUHOST_CACHE/mirror.
#
# Layout served at http://$GPUHOST_MIRROR_NAME:8080/ (gpuhost-mirror on the test network):
#   linux/debian/gpg, linux/debian/dists/{bookworm,trixie}/stable/binary-ARCH/   (Docker's
#       layout; pool/stable/CODENAME/), versions 5:X-1~debian.12~bookworm, ~debian.13~trixie
#   linux/ubuntu/gpg, linux/ubuntu/dists/{jammy,noble}/stable/binary-ARCH/       (Docker's
#       layout for Ubuntu, the same docker key), versions 5:X-1~ubuntu.22.04~jammy and
#       ~ubuntu.24.04~noble; docker-ce there is the docker.io of the simulated host's Debian
#       userland (jammy: bookworm's, noble: trixie's)
#   ubuntu/dists/{jammy,noble}/universe/binary-ARCH/   Ubuntu's archive (pool/CODENAME/), only
#       docker-compose-v2 and docker-buildx, signed by the ubuntu-standin key, which the
#       simulated Ubuntu hosts trust (build-images.sh); docker.io comes from their Debian
#       userland's own archive
#   libnvidia-container/gpgkey, libnvidia-container/{stable,experimental}/deb/ARCH/  (NVIDIA's)
#   rogue/libnvidia-container/...   NVIDIA's layout and key, but signed by another key
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=gpuhost_cli/lab/assets/common.sh
source "$here/common.sh"

out="$GPUHOST_CACHE/mirror"
arch="$(dpkg --print-architecture)"

# Toolkit versions in the stand-in repository. Stable: one below the security floor
# (1.17.8), the floor, 1.18.0 (whose nvidia-ctk refuses --create-all), 1.18.1 (which
# fixed that) and the newest line, which an unpinned install takes; so pinning, upgrade
# and downgrade across release lines are tested. Experimental: a 1.18.0 pre-release.
toolkit_stable=(1.17.7-1 1.17.8-1 1.18.0-1 1.18.1-1 1.20.0-1)
toolkit_experimental=(1.18.0~rc.1-1)
# docker-ce versions: two minor releases of the same stand-in payload (Debian's docker.io
# repacked), so pinning docker_version to the newer one is an engine upgrade across a minor
# release. The newest is what an unpinned install takes on a fresh host, as with Docker's
# repository. 27.6.0 is a label for the tests only: no such Docker release is implied.
docker_upstream=(27.5.1 27.6.0)
# Docker's plugins (one version per release) and Ubuntu's packages that ship the same CLI
# plugins under other names (labels for the tests only). Docker's and Ubuntu's packages of a
# plugin both install /usr/libexec/docker/cli-plugins/docker-compose (or docker-buildx), with
# no relation between them: installing one where the other is fails in dpkg ("trying to
# overwrite"), as with the real packages.
compose_upstream=2.32.4
buildx_upstream=0.20.0
declare -A ubuntu_compose_v2=([jammy]=2.24.6+ds1-0ubuntu1~22.04.1 [noble]=2.27.0+ds1-0ubuntu1~24.04.1)
declare -A ubuntu_buildx=([jammy]=0.14.1-0ubuntu1~22.04.1 [noble]=0.14.1-0ubuntu1~24.04.1)
cli_plugins=/usr/libexec/docker/cli-plugins

fpr_of() { gpg --with-colons --list-keys "$1-standin@gpuhost.invalid" | awk -F: '/^fpr/{print $10; exit}'; }

# render SRC VERSION: SRC with @VERSION@ replaced by VERSION and @UNIT_DIR@ by $unit_dir.
# A line that starts with @>=V@ or @<V@ (several may follow each other) is kept, without
# the markers, only when VERSION is >= V or < V: one template serves every release.
unit_dir=""
render() {
  local v="$2" line keep op ref
  local marker='^@(>=|<)([^@]+)@(.*)$'
  while IFS= read -r line || [ -n "$line" ]; do
    keep=1
    while [[ "$line" =~ $marker ]]; do
      op="${BASH_REMATCH[1]}" ref="${BASH_REMATCH[2]}" line="${BASH_REMATCH[3]}"
      if [ "$op" = ">=" ]; then
        dpkg --compare-versions "$v" ge "$ref" || keep=0
      else
        dpkg --compare-versions "$v" lt "$ref" || keep=0
      fi
    done
    if [ "$keep" -eq 1 ]; then printf '%s\n' "$line"; fi
  done <"$1" | sed -e "s|@VERSION@|$v|g" -e "s|@UNIT_DIR@|$unit_dir|g"
}

# build_deb NAME VERSION DEPENDS DEST_DIR [SRC:PATH[:MODE[:conffile]] ...]
# Each SRC is rendered (above) with the upstream part of VERSION and installed as PATH with
# MODE (default 0755); "conffile" lists PATH in DEBIAN/conffiles. A PATH under DEBIAN/ is a
# maintainer script (postinst, prerm, ...).
build_deb() {
  local name="$1" version="$2" depends="$3" dest="$4"
  shift 4
  local root
  mkdir -p "$work/pkg"
  root="$(mktemp -d "$work/pkg/$name.XXXXXX")"
  mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$name"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: gpuhost tests <tests@gpuhost.invalid>"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Section: utils"
    echo "Priority: optional"
    echo "Description: STAND-IN for $name, built for gpuhost's tests"
    echo " Carries the real package name and entry points; not the vendor's software."
  } >"$root/DEBIAN/control"
  echo "STAND-IN package built for gpuhost's tests: $name $version" \
    >"$root/usr/share/doc/$name/STAND-IN"
  local spec src dst mode conffile
  for spec in "$@"; do
    src="${spec%%:*}"
    IFS=: read -r dst mode conffile <<<"${spec#*:}"
    dst="/${dst#/}"
    mkdir -p "$root$(dirname "$dst")"
    render "$src" "${version%%-*}" >"$root$dst"
    chmod "${mode:-0755}" "$root$dst"
    if [ "$conffile" = conffile ]; then echo "$dst" >>"$root/DEBIAN/conffiles"; fi
  done
  mkdir -p "$dest"
  # File names carry no epoch, as in Docker's pool.
  dpkg-deb --root-owner-group -Zxz -b "$root" "$dest/${name}_${version#*:}_${arch}.deb" >/dev/null
  rm -rf "$root"
}

# sign_release DIR KEY: write Release.gpg and InRelease next to DIR/Release.
sign_release() {
  local dir="$1" fpr
  fpr="$(fpr_of "$2")"
  gpg --batch -q --yes -u "$fpr" --armor --detach-sign -o "$dir/Release.gpg" "$dir/Release"
  gpg --batch -q --yes -u "$fpr" --clearsign -o "$dir/InRelease" "$dir/Release"
}

# toolkit_unit_dir VERSION: where NVIDIA's nvidia-container-toolkit-base of VERSION keeps
# the nvidia-cdi-refresh units: none before 1.18.0~rc.1, /etc/systemd/system in 1.18.x and
# 1.19.x, /lib/systemd/system from 1.20.0 (packaging/debian/*.install of each release).
toolkit_unit_dir() {
  if dpkg --compare-versions "$1" lt 1.18.0~rc.1; then
    echo ""
  elif dpkg --compare-versions "$1" lt 1.20.0~; then
    echo /etc/systemd/system
  else
    echo /lib/systemd/system
  fi
}

# toolkit_base_files VERSION: the build_deb file list of nvidia-container-toolkit-base.
# Every release: the postinst that runs `nvidia-ctk config --in-place` (config.toml). With
# the units: their prerm and postrm, and from 1.18.0~rc.2 the env file, a conffile as
# NVIDIA's. NVIDIA's debhelper also marks the units in /etc/systemd/system conffiles, which
# 1.20.0 removes with rm_conffile and a downgrade to 1.17.x leaves behind; the stand-in
# does not, so dpkg removes them whenever a release without them replaces the package.
toolkit_base_files() {
  local s="$here/standin"
  echo "$s/nvidia-container-runtime:/usr/bin/nvidia-container-runtime"
  echo "$s/nvidia-ctk:/usr/bin/nvidia-ctk"
  echo "$s/nvidia-container-toolkit-base.postinst:DEBIAN/postinst"
  [ -n "$unit_dir" ] || return 0
  echo "$s/nvidia-cdi-refresh.path:$unit_dir/nvidia-cdi-refresh.path:0644"
  echo "$s/nvidia-cdi-refresh.service:$unit_dir/nvidia-cdi-refresh.service:0644"
  echo "$s/nvidia-container-toolkit-base.prerm:DEBIAN/prerm"
  echo "$s/nvidia-container-toolkit-base.postrm:DEBIAN/postrm"
  if dpkg --compare-versions "$1" ge 1.18.0~rc.2; then
    echo "$s/nvidia-cdi-refresh.env:/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env:0644:conffile"
  fi
}

# toolkit_debs DIR VERSION: the four packages of one toolkit release, with NVIDIA's
# relations: up to 1.17.x, nvidia-container-toolkit needs libnvidia-container-tools (>= v)
# and the tools libnvidia-container1 (>= v); from 1.18.0~rc.1 on both are (= v) (NVIDIA's
# packaging/debian/control, and libnvidia-container's "require version match" change).
# nvidia-container-toolkit also needs libnvidia-container-tools (<< 2.0.0) and its -base (= v).
toolkit_debs() {
  local dir="$1" v="$2" tools files
  if dpkg --compare-versions "$v" ge 1.18.0~rc.1; then tools="="; else tools=">="; fi
  unit_dir="$(toolkit_unit_dir "$v")"
  mapfile -t files < <(toolkit_base_files "$v")
  build_deb libnvidia-container1 "$v" "" "$dir"
  build_deb libnvidia-container-tools "$v" "libnvidia-container1 ($tools $v)" "$dir" \
    "$here/standin/nvidia-container-cli:/usr/bin/nvidia-container-cli"
  build_deb nvidia-container-toolkit-base "$v" "" "$dir" "${files[@]}"
  unit_dir=""
  build_deb nvidia-container-toolkit "$v" \
    "nvidia-container-toolkit-base (= $v), libnvidia-container-tools ($tools $v), libnvidia-container-tools (<< 2.0.0)" \
    "$dir" "$here/standin/nvidia-container-runtime-hook:/usr/bin/nvidia-container-runtime-hook"
}

# flat_repo DIR KEY VERSION...: NVIDIA's flat layout, DIR/deb/ARCH/{Packages,Release,...},
# with the packages of each toolkit release (toolkit_debs) and nvidia-docker2.
flat_repo() {
  local base="$1" key="$2"
  shift 2
  local dir="$base/deb/$arch" v
  mkdir -p "$dir"
  for v in "$@"; do
    toolkit_debs "$dir" "$v"
  done
  build_deb nvidia-docker2 2.14.0-1 "nvidia-container-toolkit (>= 1.5.0)" "$dir" \
    "$here/standin/nvidia-docker:/usr/bin/nvidia-docker"
  (cd "$dir" && apt-ftparchive packages . >Packages && gzip -9kf Packages \
    && apt-ftparchive -o APT::FTPArchive::Release::Origin="gpuhost stand-in" \
      -o APT::FTPArchive::Release::Label="gpuhost stand-in" release . >Release)
  sign_release "$dir" "$key"
}

# fetch_debian_debs CODENAME PACKAGE...: Debian's own .debs for CODENAME, downloaded once
# inside that release's test-host image and kept in the cache.
fetch_debian_debs() {
  local codename="$1" name
  shift
  local dir="$GPUHOST_CACHE/debian-debs/$codename"
  mkdir -p "$dir"
  local missing=()
  for name in "$@"; do
    compgen -G "$dir/${name}_*.deb" >/dev/null || missing+=("$name")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  case "$codename" in bookworm) name=debian12 ;; trixie) name=debian13 ;; esac
  local image
  image="$(test_image_ref "$name")"
  docker image inspect "$image" >/dev/null 2>&1 || "$here/build-images.sh" "$name"
  log "downloading ${missing[*]} for $codename"
  docker run --rm -v "$dir:/dl" "$image" \
    bash -c "apt-get update -qq && cd /dl && apt-get download -qq ${missing[*]}" >/dev/null
}

# repack_deb SOURCE_DEB NAME VERSION DEST DEPENDS CONFLICTS: Debian's package under the
# upstream name, so Docker's package names install a daemon that really runs. SOURCE_DEB is
# unpacked once and each repack is a hard-linked copy of that tree with its own
# control file.
repack_deb() {
  local src="$1" name="$2" version="$3" dest="$4" depends="$5" conflicts="$6"
  local tree root
  tree="$work/unpacked/$(basename "$src" .deb)"
  if [ ! -d "$tree" ]; then
    mkdir -p "$(dirname "$tree")"
    dpkg-deb -R "$src" "$tree"
  fi
  mkdir -p "$work/repack"
  root="$(mktemp -d "$work/repack/$name.XXXXXX")"
  rmdir "$root"
  cp -al "$tree" "$root"
  # The control file is rewritten: a copy of its own, not a link into the unpacked tree.
  cp --remove-destination "$tree/DEBIAN/control" "$root/DEBIAN/control"
  python3 - "$root/DEBIAN/control" "$name" "$version" "$depends" "$conflicts" <<'PY'
import sys
path, name, version, extra_depends, conflicts = sys.argv[1:]
fields, key = {}, None
for line in open(path, encoding="utf-8").read().splitlines():
    if line.startswith((" ", "\t")) and key:
        fields[key] += "\n" + line
    else:
        key, _, value = line.partition(":")
        fields[key] = value.strip()
for drop in ("Source", "Conflicts", "Breaks", "Replaces", "Provides", "Recommends", "Suggests", "Built-Using"):
    fields.pop(drop, None)
fields["Package"] = name
fields["Version"] = version
fields["Maintainer"] = "gpuhost tests <tests@gpuhost.invalid>"
deps = [d for d in [fields.get("Depends", ""), extra_depends] if d]
if deps:
    fields["Depends"] = ", ".join(deps)
if conflicts:
    fields["Conflicts"] = conflicts
    fields["Replaces"] = conflicts
fields["Description"] = (
    f"STAND-IN for {name}, built for gpuhost's tests\n"
    " Debian's own package under Docker's package name; not Docker's build."
)
with open(path, "w", encoding="utf-8") as out:
    for k, v in fields.items():
        out.write(f"{k}: {v}\n")
PY
  mkdir -p "$root/usr/share/doc/$name"
  echo "STAND-IN package built for gpuhost's tests: $name $version (Debian's $(basename "$src"))" \
    >"$root/usr/share/doc/$name/STAND-IN"
  mkdir -p "$dest"
  # File names carry no epoch, as in Docker's pool. Fast compression: these are large, and
  # zstd -1 packs them about three times faster than gzip -1 (every dpkg and apt here reads it).
  dpkg-deb --root-owner-group -Zzstd -z1 -b "$root" "$dest/${name}_${version#*:}_${arch}.deb" >/dev/null
  rm -rf "$root"
}

# index_suite ROOT SUITE COMPONENT POOL KEY: ROOT/dists/SUITE/COMPONENT/binary-ARCH/Packages
# of the .debs under ROOT/POOL, and ROOT/dists/SUITE/{Release,InRelease,Release.gpg} with
# Suite and Codename SUITE, signed by KEY.
index_suite() {
  local root="$1" suite="$2" component="$3" pool="$4" key="$5"
  local dists="$root/dists/$suite" release
  mkdir -p "$dists/$component/binary-$arch"
  (cd "$root" && apt-ftparchive packages "$pool" >"dists/$suite/$component/binary-$arch/Packages")
  gzip -9kf "$dists/$component/binary-$arch/Packages"
  release="$(mktemp "$work/Release.XXXXXX")"
  apt-ftparchive \
    -o APT::FTPArchive::Release::Origin="gpuhost stand-in" \
    -o APT::FTPArchive::Release::Label="gpuhost stand-in" \
    -o APT::FTPArchive::Release::Suite="$suite" \
    -o APT::FTPArchive::Release::Codename="$suite" \
    -o APT::FTPArchive::Release::Components="$component" \
    -o APT::FTPArchive::Release::Architectures="$arch" \
    release "$dists" >"$release"
  mv "$release" "$dists/Release"
  sign_release "$dists" "$key"
}

# docker_repo DISTRIBUTION CODENAME USERLAND TAG: Docker's layout for one release,
# linux/DISTRIBUTION/dists/CODENAME/stable/binary-ARCH with pool/stable/CODENAME, versions
# as Docker's (5:X-1~TAG~CODENAME, TAG debian.12 or ubuntu.22.04). USERLAND is the Debian
# release whose packages the host runs: CODENAME itself for Debian, the Debian release under
# a simulated Ubuntu host. docker-ce is USERLAND's docker.io repacked (Debian's docker.io
# conflicts with docker-ce, so it cannot simply depend on it); on trixie, where the client
# is its own package, docker-ce-cli is Debian's docker-cli repacked. The plugins ship the
# stand-in CLI plugins (standin/docker-compose, standin/docker-buildx).
docker_repo() {
  local distribution="$1" codename="$2" userland="$3" tag="$4" version upstream
  local base="$out/linux/$distribution"
  local pool="$base/pool/stable/$codename"
  local debs="$GPUHOST_CACHE/debian-debs/$userland"
  if [ "$userland" = trixie ]; then
    fetch_debian_debs "$userland" docker.io docker-cli
  else
    fetch_debian_debs "$userland" docker.io
  fi
  local docker_io docker_cli
  docker_io="$(compgen -G "$debs/docker.io_*.deb" | head -n1)"
  docker_cli="$(compgen -G "$debs/docker-cli_*.deb" | head -n1 || true)"
  for upstream in "${docker_upstream[@]}"; do
    version="5:${upstream}-1~${tag}~${codename}"
    if [ "$userland" = trixie ]; then
      repack_deb "$docker_cli" docker-ce-cli "$version" "$pool" "" "docker-cli"
    else
      build_deb docker-ce-cli "$version" "" "$pool"
    fi
    repack_deb "$docker_io" docker-ce "$version" "$pool" \
      "docker-ce-cli (= $version), containerd.io" "docker.io, docker-engine"
  done
  build_deb containerd.io 1.7.25-1 "containerd" "$pool"
  build_deb docker-buildx-plugin "${buildx_upstream}-1~${tag}~${codename}" "" "$pool" \
    "$here/standin/docker-buildx:$cli_plugins/docker-buildx"
  build_deb docker-compose-plugin "${compose_upstream}-1~${tag}~${codename}" "" "$pool" \
    "$here/standin/docker-compose:$cli_plugins/docker-compose"
  index_suite "$base" "$codename" stable "pool/stable/$codename" docker
}

# ubuntu_archive CODENAME: the stand-in of Ubuntu's archive for one release,
# ubuntu/dists/CODENAME/universe/binary-ARCH with pool/CODENAME/universe: Ubuntu's own
# packages of Docker's CLI plugins, which conflict in files with Docker's.
ubuntu_archive() {
  local codename="$1" base="$out/ubuntu"
  local pool="$base/pool/$codename/universe"
  build_deb docker-compose-v2 "${ubuntu_compose_v2[$codename]}" "" "$pool" \
    "$here/standin/docker-compose:$cli_plugins/docker-compose"
  build_deb docker-buildx "${ubuntu_buildx[$codename]}" "" "$pool" \
    "$here/standin/docker-buildx:$cli_plugins/docker-buildx"
  index_suite "$base" "$codename" universe "pool/$codename/universe" ubuntu
}

# jobs_wait PID...: wait for each, fail when one failed.
jobs_wait() {
  local pid rc=0
  for pid in "$@"; do
    wait "$pid" || rc=1
  done
  [ "$rc" -eq 0 ] || die "building the stand-in mirror failed; see the lines above"
}

build() {
  log "building the stand-in mirror in $out"
  rm -rf "$out.new"
  local save="$out"
  out="$out.new"
  mkdir -p "$out/linux/debian" "$out/linux/ubuntu" "$out/libnvidia-container" "$out/rogue/libnvidia-container"
  # Docker signs its Debian and Ubuntu repositories with one key.
  cp "$keys/docker-standin.public.asc" "$out/linux/debian/gpg"
  cp "$keys/docker-standin.public.asc" "$out/linux/ubuntu/gpg"
  cp "$keys/nvidia-standin.public.asc" "$out/libnvidia-container/gpgkey"
  # A repository that serves NVIDIA's key but whose index another key signed.
  cp "$keys/nvidia-standin.public.asc" "$out/rogue/libnvidia-container/gpgkey"
  # Three jobs side by side (the repacks are CPU-bound); each userland's docker.io is
  # unpacked once, by the job that repacks it for Debian and for the simulated Ubuntu.
  local pids=()
  # (No && inside a job: it would turn set -e off in the functions it calls.)
  { docker_repo debian bookworm bookworm debian.12; docker_repo ubuntu jammy bookworm ubuntu.22.04; } &
  pids+=("$!")
  { docker_repo debian trixie trixie debian.13; docker_repo ubuntu noble trixie ubuntu.24.04; } &
  pids+=("$!")
  {
    ubuntu_archive jammy
    ubuntu_archive noble
    flat_repo "$out/libnvidia-container/stable" nvidia "${toolkit_stable[@]}"
    flat_repo "$out/libnvidia-container/experimental" nvidia "${toolkit_experimental[@]}"
    flat_repo "$out/rogue/libnvidia-container/stable" rogue "${toolkit_stable[@]}"
  } &
  pids+=("$!")
  jobs_wait "${pids[@]}"
  # Build stamp: the inputs' checksum, so an unchanged mirror is not rebuilt.
  echo "$inputs_sum" >"$out/.inputs"
  rm -rf "$save"
  mv "$out" "$save"
  out="$save"
}

main() {
  keys="${GPUHOST_MIRROR_KEYS:?set GPUHOST_MIRROR_KEYS to the directory of the stand-in mirror keys}"
  serve=0
  [ "${1:-}" = "--serve" ] && serve=1

  work="$(mktemp -d)"
  trap 'gpgconf --homedir "$work/gnupg" --kill gpg-agent 2>/dev/null || true; rm -rf "$work"' EXIT
  export GNUPGHOME="$work/gnupg"
  mkdir -m 0700 "$GNUPGHOME"
  for k in docker nvidia rogue ubuntu; do
    [ -f "$keys/$k-standin.secret.asc" ] || die "$keys/$k-standin.secret.asc is missing: the stand-in mirror signs with it"
    gpg --batch -q --import "$keys/$k-standin.secret.asc" 2>/dev/null
  done

  inputs_sum="$(cat "$0" "$here"/standin/* "$keys"/*.asc | sha256sum | cut -d' ' -f1)"
  rebuilt=0
  if [ -f "$out/.inputs" ] && [ "$(cat "$out/.inputs")" = "$inputs_sum" ]; then
    log "stand-in mirror in $out is up to date"
  else
    build
    rebuilt=1
    # A mirror container serving the old tree sees an empty directory now: restart it.
    if [ "$serve" -eq 0 ] && command -v docker >/dev/null 2>&1 \
      && [ "$(docker inspect --format '{{range .Mounts}}{{.Source}}{{end}}' "$GPUHOST_MIRROR_NAME" 2>/dev/null)" = "$out" ]; then
      docker restart "$GPUHOST_MIRROR_NAME" >/dev/null
    fi
  fi

  if [ "$serve" -eq 1 ]; then
    ensure_docker_engine
    ensure_test_network
    image="$(test_image_ref debian12)"
    docker image inspect "$image" >/dev/null 2>&1 || "$here/build-images.sh" debian12
    if docker container inspect "$GPUHOST_MIRROR_NAME" >/dev/null 2>&1; then
      serving="$(docker inspect --format '{{.State.Running}} {{range .Mounts}}{{.Source}}{{end}}' "$GPUHOST_MIRROR_NAME")"
      if [ "$rebuilt" -eq 0 ] && [ "$serving" = "true $out" ]; then
        log "stand-in mirror already serving $out"
        exit 0
      fi
      docker rm -f "$GPUHOST_MIRROR_NAME" >/dev/null
    fi
    docker run -d --name "$GPUHOST_MIRROR_NAME" --network "$GPUHOST_TEST_NETWORK" \
      --network-alias "$GPUHOST_MIRROR_NAME" \
      -v "$out:/srv/mirror:ro" "$image" \
      python3 -m http.server 8080 --directory /srv/mirror >/dev/null
    for _ in $(seq 1 30); do
      if docker exec "$GPUHOST_MIRROR_NAME" python3 -c \
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/libnvidia-container/gpgkey')" \
        >/dev/null 2>&1; then
        log "stand-in mirror serving at http://$GPUHOST_MIRROR_NAME:8080/ on network $GPUHOST_TEST_NETWORK"
        exit 0
      fi
      sleep 1
    done
    docker logs "$GPUHOST_MIRROR_NAME" >&2 || true
    die "the stand-in mirror did not answer"
  fi
}

# Sourced (by tests, to build single packages with build_deb), it only defines functions;
# they need $work, a scratch directory.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
