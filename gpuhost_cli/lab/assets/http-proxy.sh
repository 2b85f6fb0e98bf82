#!/usr/bin/env bash
# An HTTP proxy for hosts that reach the outside only through one: tinyproxy from Debian's
# packages, with basic authentication, logging every request it forwards.
#
#   GPUHOST_PROXY_AUTH=USER:PASSWORD http-proxy.sh --name NAME --network NET [--network NET]...
#   http-proxy.sh --name NAME --log      print the proxy's log
#   http-proxy.sh --name NAME --remove   remove the proxy container
#
# The image (tinyproxy on the Debian 12 test-host image) is built once and reused. The
# proxy listens on port 8888 on each NET: put it on the network the hosts are on and on
# the one that reaches what they fetch. Without GPUHOST_PROXY_AUTH it asks for no password.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=gpuhost_cli/lab/assets/common.sh
source "$here/common.sh"

proxy_port=8888
proxy_image="$GPUHOST_TEST_IMAGE_REPO/tinyproxy:latest"
proxy_log=/var/log/tinyproxy/tinyproxy.log

name=""
action=start
networks=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --name) name="${2:?--name needs a container name}"; shift 2 ;;
    --network) networks+=("${2:?--network needs a network name}"); shift 2 ;;
    --log) action=log; shift ;;
    --remove) action=remove; shift ;;
    *) die "unknown argument '$1' (expected --name NAME, --network NET, --log or --remove)" ;;
  esac
done
[ -n "$name" ] || die "--name NAME is required"

build_image() {
  build_package_image "$proxy_image" tinyproxy \
    'export DEBIAN_FRONTEND=noninteractive && apt-get update -qq && apt-get install -y -qq --no-install-recommends tinyproxy && apt-get clean && install -d -o tinyproxy -g tinyproxy /var/log/tinyproxy /run/tinyproxy' \
    -- \
    --change "CMD [\"/usr/bin/tinyproxy\", \"-d\", \"-c\", \"/etc/tinyproxy/tinyproxy.conf\"]" \
    --change "EXPOSE $proxy_port"
}

config() {
  cat <<CONF
# tinyproxy for the gpuhost lab: every client on its networks may use it.
User tinyproxy
Group tinyproxy
Port $proxy_port
Timeout 600
LogFile "$proxy_log"
LogLevel Info
MaxClients 64
DisableViaHeader Yes
CONF
  if [ -n "${GPUHOST_PROXY_AUTH:-}" ]; then
    printf 'BasicAuth %s %s\n' "${GPUHOST_PROXY_AUTH%%:*}" "${GPUHOST_PROXY_AUTH#*:}"
  fi
}

answers() {
  docker exec "$name" python3 -c \
    "import socket; socket.create_connection(('127.0.0.1', $proxy_port), timeout=2).close()" >/dev/null 2>&1
}

start() {
  [ "${#networks[@]}" -gt 0 ] || die "--network NET is required to start the proxy"
  ensure_docker_engine
  build_image
  docker rm -f "$name" >/dev/null 2>&1 || true
  log "starting the HTTP proxy $name (tinyproxy, port $proxy_port) on ${networks[*]}"
  docker create --name "$name" --network "${networks[0]}" --label gpuhost.http-proxy=true "$proxy_image" >/dev/null
  local conf net
  conf="$(mktemp)"
  config >"$conf"
  chmod 0644 "$conf"
  docker cp "$conf" "$name:/etc/tinyproxy/tinyproxy.conf"
  rm -f "$conf"
  for net in "${networks[@]:1}"; do
    docker network connect "$net" "$name"
  done
  docker start "$name" >/dev/null
  for _ in $(seq 1 30); do
    answers && return 0
    sleep 1
  done
  docker logs "$name" >&2 || true
  die "the HTTP proxy $name did not answer on port $proxy_port"
}

case "$action" in
  start) start ;;
  log) docker exec "$name" cat "$proxy_log" ;;
  remove) docker rm -f "$name" >/dev/null 2>&1 || true ;;
esac
