#!/usr/bin/env bash
# Build gpuhost's execution environment (ee/execution-environment.yml) with ansible-builder.
#
#   bash ee/build.sh [--tag NAME:TAG] [--base-image IMAGE] [--collection TARBALL]
#                    [--online] [--no-cache] [--work DIR] [--timings FILE]
#
#   --tag           the image to build (default gpuhost-ee:latest)
#   --base-image    build on this image (EE_BASE_IMAGE), one you trust: your registry's
#                   ee-minimal, say. Without it the script builds the local stand-in
#                   gpuhost-ee-base/debian12:latest with ee/build-base-image.sh (debootstrap
#                   and docker import), for machines that cannot pull an image.
#   --collection    the gpuhost.gpuhost collection tarball to install (default: built now
#                   from this checkout with `gpuhost collection build`)
#   --online        the build's pip uses the base image's index (PyPI or your mirror).
#                   Default: offline. This machine downloads the wheels the build needs
#                   (pip download, for the base image's Python) into the build context and
#                   the build installs them with no index.
#   --no-cache      passed to ansible-builder: no layer of an earlier build is reused
#   --work DIR      staging and build context (default .cache/ee in the repository)
#   --timings FILE  append "STEP<TAB>SECONDS" for each step to FILE
#
# Needs root (for the local base image), a Docker engine, and the repository's virtual
# environment (.venv); ansible-builder is installed into it from PyPI when missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=gpuhost_cli/lab/assets/common.sh
source "$repo/gpuhost_cli/lab/assets/common.sh"

tag="gpuhost-ee:latest"
base=""
collection=""
online=0
no_cache=()
work="$repo/.cache/ee"
timings=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --tag) tag="${2:?--tag needs NAME:TAG}"; shift ;;
    --base-image) base="${2:?--base-image needs an image}"; shift ;;
    --collection) collection="$(realpath "${2:?--collection needs a tarball}")"; shift ;;
    --online) online=1 ;;
    --no-cache) no_cache=(--no-cache) ;;
    --work) work="$(realpath -m "${2:?--work needs a directory}")"; shift ;;
    --timings) timings="$(realpath -m "${2:?--timings needs a file}")"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

python="$repo/.venv/bin/python"
[ -x "$python" ] || die "no virtual environment at $repo/.venv: bash tests/harness/setup-venv.sh makes it"

step_name=""
step_start=0
step() {
  local now
  now="$(date +%s.%N)"
  if [ -n "$step_name" ]; then
    local took
    took="$(awk -v a="$step_start" -v b="$now" 'BEGIN { printf "%.1f", b - a }')"
    log "$step_name: $took s"
    [ -z "$timings" ] || printf '%s\t%s\n' "$step_name" "$took" >>"$timings"
  fi
  step_name="$*"
  step_start="$now"
}

ensure_docker_engine
if ! "$python" -m ansible_builder --version >/dev/null 2>&1; then
  log "installing ansible-builder into .venv from PyPI"
  "$repo/.venv/bin/pip" install --quiet 'ansible-builder>=3.1,<4'
fi

# ---- The base image ---------------------------------------------------------------------
if [ -z "$base" ]; then
  step base_image
  base="gpuhost-ee-base/debian12:latest"
  bash "$here/build-base-image.sh" --tag "$base"
elif ! docker image inspect "$base" >/dev/null 2>&1 && [ "$online" -eq 0 ]; then
  log "pulling $base (to read its Python version for the wheelhouse)"
  docker pull "$base" >/dev/null
fi

# ---- The collection tarball -------------------------------------------------------------
step collection
mkdir -p "$work"
if [ -z "$collection" ]; then
  [ -f "$repo/gpuhost_cli/collection.py" ] \
    || die "no --collection TARBALL, and this checkout has no gpuhost_cli/collection.py to build one"
  rm -rf "$work/collection"
  collection="$(cd "$repo" && "$repo/.venv/bin/gpuhost" collection build --out "$work/collection" | tail -n 1)"
fi
[ -f "$collection" ] || die "collection tarball $collection does not exist"
log "collection: $collection"

# ---- The definition, staged with the tarball (and the wheelhouse) ------------------------
definition="$work/definition"
rm -rf "$definition"
mkdir -p "$definition/collections"
cp -r "$here/execution-environment.yml" "$here/requirements.txt" "$here/requirements.yml" \
  "$here/bindep.txt" "$here/package-manager" "$here/pip" "$definition/"
cp "$collection" "$definition/collections/gpuhost-gpuhost.tar.gz"

if [ "$online" -eq 0 ]; then
  step wheelhouse
  pyver="$(docker run --rm --entrypoint /usr/bin/env "$base" python3 -c \
    'import sys; print("%d.%d" % sys.version_info[:2])')"
  # Everything the build's pip installs: ansible-core and ansible-runner (base stage), bindep
  # and its helpers (builder stage), the Python requirements of the definition and of the
  # collection as ansible-builder combines them, and the container init (final stage).
  collections_dir="$work/introspect"
  rm -rf "$collections_dir"
  ANSIBLE_COLLECTIONS_PATH="$collections_dir" "$repo/.venv/bin/ansible-galaxy" collection install \
    --offline --no-deps -p "$collections_dir" "$collection" >/dev/null
  "$python" -m ansible_builder introspect --user-pip "$definition/requirements.txt" \
    --write-pip "$work/introspected.txt" "$collections_dir" >/dev/null
  "$python" - "$definition/execution-environment.yml" >"$work/wheelhouse.txt" <<'EOF'
import sys

from ansible_builder.user_definition import UserDefinition

definition = UserDefinition(sys.argv[1])
definition.validate()
for ref in (definition.ansible_ref_install_list or "").split():
    print(ref)
for package in ("bindep", "pyyaml", "packaging"):
    print(package)
if definition.container_init.get("package_pip"):
    print(definition.container_init["package_pip"])
EOF
  grep -v '^#' "$work/introspected.txt" >>"$work/wheelhouse.txt" || true
  log "downloading wheels for Python $pyver: $(tr '\n' ' ' <"$work/wheelhouse.txt")"
  "$repo/.venv/bin/pip" download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version "$pyver" --dest "$definition/pip/wheels" -r "$work/wheelhouse.txt"
  cat >"$definition/pip/pip.conf" <<'EOF'
# Written by ee/build.sh: the build installs from the wheels it downloaded, with no index.
[global]
no-index = true
find-links = /output/pip/wheels
EOF
  log "wheelhouse: $(find "$definition/pip/wheels" -name '*.whl' | wc -l) wheels, $(du -sh "$definition/pip/wheels" | cut -f1)"
fi

# ---- ansible-builder ----------------------------------------------------------------------
step ansible_builder_build
rm -rf "$work/context"
"$python" -m ansible_builder build --file "$definition/execution-environment.yml" \
  --context "$work/context" --container-runtime docker --build-arg EE_BASE_IMAGE="$base" \
  --tag "$tag" "${no_cache[@]}" --verbosity 2
step ""
log "built $tag on $base ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
