#!/usr/bin/env bash
# One local caching proxy for Debian's archive (apt-cacher-ng, from Debian's packages),
# shared by every lab and every test host on this machine, so a fleet downloads each
# Debian package once. Only Debian's archive goes through it: the stand-in mirror and every
# other repository are reached directly.
#
#   apt-cache.sh [--network NET]... [CONTAINER]...
#   apt-cache.sh --print-conf
#
# Starts the proxy container when it is not running (its image is built once from the
# Debian 12 test-host image, its cache kept in a Docker volume), connects it to each NET,
# and writes the apt configuration that uses it into each running CONTAINER. Running it
# again reuses what exists. --print-conf prints that configuration and touches nothing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=gpuhost_cli/lab/assets/common.sh
source "$here/common.sh"

: "${GPUHOST_APT_CACHE_NAME:=gpuhost-apt-cache}"
apt_cache_port=3142
apt_cache_image="$GPUHOST_TEST_IMAGE_REPO/apt-cacher-ng:latest"
apt_cache_conf=/etc/apt/apt.conf.d/01gpuhost-apt-cache

# The archive's host name, from DEBIAN_MIRROR (http://deb.debian.org/debian).
archive_host() {
  local rest="${DEBIAN_MIRROR#*://}"
  rest="${rest%%/*}"
  printf '%s\n' "${rest%%:*}"
}

# apt's per-host proxy setting: only the archive's host is proxied.
print_conf() {
  cat <<EOF
// Written when this test host was created: Debian's archive through the local caching
// proxy $GPUHOST_APT_CACHE_NAME (apt-cacher-ng); every other repository is reached directly.
Acquire::http::Proxy::$(archive_host) "http://$GPUHOST_APT_CACHE_NAME:$apt_cache_port";
EOF
}

networks=()
containers=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --print-conf) print_conf; exit 0 ;;
    --network) networks+=("${2:?--network needs a network name}"); shift 2 ;;
    -*) die "unknown option '$1' (expected --network NET, --print-conf or container names)" ;;
    *) containers+=("$1"); shift ;;
  esac
done

build_image() {
  build_package_image "$apt_cache_image" apt-cacher-ng \
    'export DEBIAN_FRONTEND=noninteractive && apt-get update -qq && apt-get install -y -qq --no-install-recommends apt-cacher-ng && apt-get clean && install -d -o apt-cacher-ng -g apt-cacher-ng /run/apt-cacher-ng' \
    -- \
    --change "CMD [\"/usr/sbin/apt-cacher-ng\", \"-c\", \"/etc/apt-cacher-ng\", \"ForeGround=1\", \"Port=$apt_cache_port\"]" \
    --change 'USER apt-cacher-ng' --change "EXPOSE $apt_cache_port"
}

answers() {
  docker exec "$GPUHOST_APT_CACHE_NAME" python3 -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$apt_cache_port/acng-report.html', timeout=2)" \
    >/dev/null 2>&1
}

start_proxy() {
  local state
  state="$(docker inspect --format '{{.State.Running}}' "$GPUHOST_APT_CACHE_NAME" 2>/dev/null || true)"
  if [ "$state" = true ]; then
    return 0
  fi
  [ -n "$state" ] && docker rm -f "$GPUHOST_APT_CACHE_NAME" >/dev/null
  build_image
  log "starting the apt cache $GPUHOST_APT_CACHE_NAME (apt-cacher-ng, port $apt_cache_port)"
  docker run -d --name "$GPUHOST_APT_CACHE_NAME" --restart unless-stopped \
    --label gpuhost.apt-cache=true \
    -v "$GPUHOST_APT_CACHE_NAME:/var/cache/apt-cacher-ng" "$apt_cache_image" >/dev/null
}

connect() {
  local net="$1" attached
  docker network inspect "$net" >/dev/null 2>&1 || docker network create "$net" >/dev/null
  attached="$(docker inspect --format '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' \
    "$GPUHOST_APT_CACHE_NAME")"
  case " $attached " in *" $net "*) return 0 ;; esac
  docker network connect "$net" "$GPUHOST_APT_CACHE_NAME"
}

ensure_docker_engine
start_proxy
for net in "${networks[@]}"; do
  connect "$net"
done
for _ in $(seq 1 30); do
  answers && break
  sleep 1
done
answers || { docker logs "$GPUHOST_APT_CACHE_NAME" >&2 || true; die "the apt cache did not answer"; }

conf="$(print_conf)"
for container in "${containers[@]}"; do
  printf '%s\n' "$conf" | docker exec -i "$container" sh -c "cat > $apt_cache_conf && chmod 0644 $apt_cache_conf"
done
log "apt cache $GPUHOST_APT_CACHE_NAME serving Debian's archive at http://$GPUHOST_APT_CACHE_NAME:$apt_cache_port/${networks[*]:+ on ${networks[*]}}"
