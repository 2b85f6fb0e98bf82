#!/usr/bin/env bash
# Build a local base image for the execution environment, for machines that cannot pull one:
# Debian 12 (bookworm) minbase made with debootstrap and imported with `docker import`.
#
#   bash ee/build-base-image.sh [--force] [--tag NAME:TAG]
#
# Where a registry is reachable, build the execution environment on a base image you already
# trust instead (your registry's ee-minimal, for example): see docs/execution-environment.md.
# This image only stands in for one.
#
# It carries what ansible-builder's stages and an Ansible controller need and no Ansible:
#   python3, python3-pip  the stages install ansible-core, ansible-runner and the Python
#                         requirements with pip. Debian marks its Python externally managed
#                         (PEP 668); the definition sets PIP_BREAK_SYSTEM_PACKAGES=1, so pip
#                         installs into /usr/local, beside Debian's packages, never over them.
#   python3-venv          ansible-builder's assemble script makes a throwaway venv.
#   openssh-client        ssh to the managed hosts; ssh-agent and ssh-add for the key that
#                         ansible-runner (and AWX) hand to the run.
#   ca-certificates       HTTPS from the controller (repository keys fetched once per run).
# LANG=C.UTF-8: ansible-core refuses to run in a locale that is not UTF-8.
#
# The image is reused while it exists and was built by this same script; --force rebuilds it.
# Downloaded packages are kept in $EE_DEBOOTSTRAP_CACHE (default
# /var/cache/gpuhost-ee/debootstrap), so a rebuild downloads nothing. Needs root, debootstrap
# and a Docker engine (installed and started when missing, as for the test hosts).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=gpuhost_cli/lab/assets/common.sh
source "$repo/gpuhost_cli/lab/assets/common.sh"

tag="gpuhost-ee-base/debian12:latest"
force=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --tag) tag="${2:?--tag needs NAME:TAG}"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (expected --force or --tag NAME:TAG)" ;;
  esac
  shift
done

codename=bookworm
include="python3,python3-pip,python3-venv,openssh-client,ca-certificates"
: "${EE_DEBOOTSTRAP_CACHE:=/var/cache/gpuhost-ee/debootstrap}"

# What the image is made of: a changed package list, mirror or script rebuilds it.
recipe="$({ echo "$codename $include $DEBIAN_MIRROR"; cat "$0"; } | sha256sum | cut -d' ' -f1)"

ensure_docker_engine
if [ "$force" -eq 0 ] \
  && [ "$(docker image inspect --format '{{index .Config.Labels "gpuhost.ee-base.recipe"}}' "$tag" 2>/dev/null)" = "$recipe" ]; then
  log "base image $tag exists, reusing it"
  exit 0
fi

dir="$(mktemp -d /var/tmp/gpuhost-ee-base.XXXXXX)"
trap 'rm -rf "$dir" "$dir.log"' EXIT
mkdir -p "$EE_DEBOOTSTRAP_CACHE/$codename"
log "debootstrap $codename ($include) into $dir"
debootstrap --variant=minbase --include="$include" --cache-dir="$EE_DEBOOTSTRAP_CACHE/$codename" \
  "$codename" "$dir" "$DEBIAN_MIRROR" >"$dir.log" 2>&1 \
  || { tail -n 30 "$dir.log" >&2; die "debootstrap $codename failed"; }

# apt sources as on an installed machine, so a later stage can install a system package
# (bindep); no package lists or downloaded packages in the image.
echo "deb $DEBIAN_MIRROR $codename main" >"$dir/etc/apt/sources.list"
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
  "$dir"/var/log/*.log "$dir"/var/log/apt/*
: >"$dir/etc/machine-id"
# Docker writes these itself when a container starts.
: >"$dir/etc/hostname"
: >"$dir/etc/resolv.conf"

log "importing $tag"
tar -C "$dir" --numeric-owner -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL gpuhost.ee-base.recipe=$recipe" \
  --change "LABEL org.opencontainers.image.description=\"Debian $codename minbase with python3, pip, venv and the OpenSSH client: a local base for gpuhost's execution environment\"" \
  - "$tag" >/dev/null
log "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
