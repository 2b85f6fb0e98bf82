#!/usr/bin/env bash
# Runs gpuhost's host-side GPU code on the machine it runs on, which should have an NVIDIA
# GPU and its driver: the gpu_facts module (directly, then through `gpuhost facts` over a
# local connection), `gpuhost verify`, and a capture of what gpu_facts reads as a fixture
# tree (tests/harness/capture_gpu_tree.py). Needs gpuhost's Python dependencies importable.
#   bash tests/gpu-host-check.sh OUTDIR
# OUTDIR gets log.txt, host.txt, facts-module.json, facts-cli.json, verify-cli.json and
# tree.tar.gz (the fixture tree). Every step runs even when one before it failed.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:?usage: $0 OUTDIR}" && cd "$1" && pwd)"
cd "$repo"
exec > >(tee "$out/log.txt") 2>&1
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" LC_ALL=C.UTF-8
python="$(command -v python3)"

step() {
  local started=$SECONDS
  echo "== $1"
  shift
  if [ "$(type -t "$1")" = file ]; then timeout 300 "$@"; else "$@"; fi
  echo "== exit $? after $((SECONDS - started)) s"
}

host_info() {
  uname -a
  cat /etc/os-release
  for tool in nvidia-smi nvidia-ctk nvidia-container-cli docker dockerd; do
    printf '%s: %s\n' "$tool" "$(command -v "$tool" || echo 'not found')"
  done
  ls -l /dev/nvidia* 2>&1
  cat /proc/driver/nvidia/version 2>&1
  cat /proc/driver/nvidia/gpus/*/information 2>&1
  grep -E '^(nvidia|nouveau)' /proc/modules 2>&1
  nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version,mig.mode.current,pci.bus_id --format=csv
  nvidia-smi
  nvidia-smi -q
}

facts_module() {
  local args
  args="$(mktemp)"
  echo '{"ANSIBLE_MODULE_ARGS": {}}' >"$args"
  "$python" gpuhost_cli/ansible_plugins/modules/gpu_facts.py "$args" >"$out/facts-module.json"
  local rc=$?
  "$python" -c 'import json,sys; g=json.load(open(sys.argv[1]))["gpu"]; print(g["summary"]); print("\n".join(g["problems"]) or "no problems")' "$out/facts-module.json"
  return $rc
}

inventory="$(mktemp -d)/inventory"
mkdir -p "$inventory"
cat >"$inventory/hosts.yml" <<YAML
gpu_hosts:
  hosts:
    $(hostname -s 2>/dev/null || echo gpu-host):
      ansible_connection: local
      ansible_python_interpreter: $python
YAML

step "this host" host_info >"$out/host.txt" 2>&1
step "gpu_facts module, run directly" facts_module
step "gpuhost facts (table)" "$python" -m gpuhost_cli facts -i "$inventory"
step "gpuhost facts (json)" bash -c "'$python' -m gpuhost_cli facts -i '$inventory' --format json >'$out/facts-cli.json'"
step "gpuhost verify (json; Docker and the toolkit are not installed here unless provisioned)" \
  bash -c "'$python' -m gpuhost_cli verify -i '$inventory' --no-pull --format json >'$out/verify-cli.json'"
step "gpuhost verify (table)" "$python" -m gpuhost_cli verify -i "$inventory" --no-pull
tree="$(mktemp -d)/captured"
step "capture the fixture tree" "$python" tests/harness/capture_gpu_tree.py "$tree"
tar -C "$(dirname "$tree")" -czf "$out/tree.tar.gz" captured
ls -l "$out"
