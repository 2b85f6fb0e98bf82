#!/usr/bin/env bash
# A real registry for the lab: Debian's docker-registry package (the CNCF distribution
# registry, the one Docker Hub runs), serving HTTPS with a certificate the caller made, so
# a test host can use it as a registry mirror behind a private CA.
#
#   registry.sh build
#   registry.sh start NAME CERT KEY [--network NET] [--alias NAME2]...
#
# build makes the image once from the Debian 12 test-host image, installing the package
# through the shared apt cache (apt-cache.sh), and reuses it while it exists. start
# replaces the container NAME with a fresh registry serving https://NAME:5000 with the
# certificate CERT and its key KEY (PEM files, copied into the container) on the network
# NET (default: the test network), also reachable there as each NAME2, and waits until it
# answers.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=gpuhost_cli/lab/assets/common.sh
source "$here/common.sh"

registry_image="$GPUHOST_TEST_IMAGE_REPO/docker-registry:latest"
registry_port=5000
certs=/etc/docker/registry/certs

build_image() {
  docker image inspect "$registry_image" >/dev/null 2>&1 && return 0
  ensure_test_network
  bash "$here/apt-cache.sh" --network "$GPUHOST_TEST_NETWORK" >/dev/null
  # The apt cache's configuration comes in on stdin and leaves with the build.
  bash "$here/apt-cache.sh" --print-conf | build_package_image "$registry_image" docker-registry \
    'set -e; conf=/etc/apt/apt.conf.d/01gpuhost-apt-cache; cat >"$conf"
     export DEBIAN_FRONTEND=noninteractive
     apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-registry
     apt-get clean && rm -rf /var/lib/apt/lists/* "$conf"
     # The package'"'"'s config asks for htpasswd logins: the lab registry takes anonymous pulls.
     printf "%s\n" "version: 0.1" "storage:" "  filesystem:" "    rootdirectory: /var/lib/docker-registry" \
       "  delete:" "    enabled: true" "http:" "  addr: :5000" >/etc/docker/registry/lab.yml' \
    -i --network "$GPUHOST_TEST_NETWORK" \
    -- \
    --change "CMD [\"/usr/bin/docker-registry\", \"serve\", \"/etc/docker/registry/lab.yml\"]" \
    --change "ENV REGISTRY_HTTP_ADDR=0.0.0.0:$registry_port" \
    --change "ENV REGISTRY_HTTP_TLS_CERTIFICATE=$certs/server.crt" \
    --change "ENV REGISTRY_HTTP_TLS_KEY=$certs/server.key" \
    --change "EXPOSE $registry_port"
}

# The registry answers /v2/ over TLS (its own certificate is not checked here: the tests do that).
answers() {
  docker exec "$1" python3 -c "
import ssl, urllib.request
context = ssl.create_default_context(); context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
urllib.request.urlopen('https://127.0.0.1:$registry_port/v2/', timeout=2, context=context)" >/dev/null 2>&1
}

start() {
  local name="${1:?start needs NAME CERT KEY}" cert="${2:?start needs NAME CERT KEY}" key="${3:?start needs NAME CERT KEY}"
  shift 3
  local net="$GPUHOST_TEST_NETWORK" aliases=()
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --network) net="${2:?--network needs a network name}"; shift 2 ;;
      --alias) aliases+=(--network-alias "${2:?--alias needs a name}"); shift 2 ;;
      *) die "unknown argument '$1' (expected --network NET or --alias NAME)" ;;
    esac
  done
  if [ ! -r "$cert" ] || [ ! -r "$key" ]; then die "cannot read the certificate $cert or the key $key"; fi
  ensure_docker_engine
  build_image
  docker network inspect "$net" >/dev/null 2>&1 || docker network create "$net" >/dev/null
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker create --name "$name" --network "$net" "${aliases[@]}" --label gpuhost.registry=true \
    "$registry_image" >/dev/null
  # docker cp, not a bind mount: the files are read where the engine runs.
  local tmp
  tmp="$(mktemp -d)"
  mkdir "$tmp/certs"
  cp "$cert" "$tmp/certs/server.crt"
  cp "$key" "$tmp/certs/server.key"
  chmod 0644 "$tmp/certs/server.crt"
  chmod 0600 "$tmp/certs/server.key"
  docker cp "$tmp/certs" "$name:${certs%/certs}/"
  rm -rf "$tmp"
  docker start "$name" >/dev/null
  for _ in $(seq 1 30); do
    answers "$name" && break
    sleep 1
  done
  answers "$name" || { docker logs "$name" >&2 || true; die "the registry $name did not answer"; }
  log "registry $name serving https://$name:$registry_port/ on $net"
}

case "${1:-}" in
  build) ensure_docker_engine; build_image ;;
  start) shift; start "$@" ;;
  *) die "usage: registry.sh build | registry.sh start NAME CERT KEY [--network NET] [--alias NAME2]..." ;;
esac
