#!/usr/bin/env bash
# The full test suite: what CI runs, and what a developer runs before a change lands.
#
#   bash tests/run.sh            lint, unit tests, every Molecule scenario
#   bash tests/run.sh --fast     lint and unit tests only
#   GPUHOST_SCENARIOS="default" bash tests/run.sh    a subset of scenarios
#   GPUHOST_PYTEST_WORKERS=1 bash tests/run.sh       the unit tests on one worker (default 2)
#
# Sets up what it needs on a fresh Debian machine: the Docker engine (Debian's docker.io,
# started when not running), debootstrap, a Python virtual environment with the test
# dependencies, the test-host images and the stand-in mirror (both built once, reused).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# shellcheck source=tests/harness/env.sh
source tests/harness/env.sh

fast=0
[ "${1:-}" = "--fast" ] && fast=1
scenarios="${GPUHOST_SCENARIOS:-default bad-input daemon-safety fleet}"

timings=()
step_name=""
step_start=$SECONDS
step() {
  [ -n "$step_name" ] && timings+=("$(printf '%5d s  %s' $((SECONDS - step_start)) "$step_name")")
  step_name="$*"
  step_start=$SECONDS
  printf '\n=== %s ===\n' "$*"
}
report_timings() {
  [ -n "$step_name" ] && timings+=("$(printf '%5d s  %s' $((SECONDS - step_start)) "$step_name")")
  step_name=""
  printf '\nTime per step (total %d s):\n' "$SECONDS"
  printf '  %s\n' "${timings[@]}"
}

step "Host tools (gnupg, apt-utils, debootstrap, docker.io) and the Python environment"
ensure_host_tools
bash tests/harness/setup-venv.sh
# shellcheck disable=SC1091
source .venv/bin/activate

# The test-host images (debootstrap, on a fresh machine mostly waiting on downloads) build
# while lint and the unit tests use the CPU.
images_pid=""
if [ "$fast" -eq 0 ]; then
  ensure_docker_engine
  mkdir -p .cache/test/logs
  # ... and the execution environment's local base image (ee/build-base-image.sh), which the
  # end-to-end test of the execution environment builds on.
  # ... and the lab registry's image (Debian's docker-registry, through the apt cache), the
  # registry mirror of the daemon-safety scenario.
  { bash tests/harness/build-images.sh && bash ee/build-base-image.sh && bash tests/harness/registry.sh build; } \
    >.cache/test/logs/build-images.log 2>&1 &
  images_pid=$!
fi

step "Lint: yamllint and ansible-lint (production profile)"
yamllint --strict .
ansible-lint

# Two workers, each test file on one of them: a file's module fixtures (the collection built
# and installed, the wheel in its own virtual environment) are made once, and the slow files
# (ansible-test sanity, galaxy-importer, the nested ansible-playbook runs) overlap.
step "Unit tests (pytest, two workers)"
pytest -n "${GPUHOST_PYTEST_WORKERS:-2}" --dist loadfile

if [ "$fast" -eq 1 ]; then
  report_timings
  exit 0
fi

step "Test hosts and the stand-in mirror"
images_rc=0
wait "$images_pid" || images_rc=$?
cat .cache/test/logs/build-images.log
[ "$images_rc" -eq 0 ] || { echo "building the test-host images failed"; exit 1; }
bash tests/harness/build-mirror.sh --serve

# The end-to-end test (its own lab network, mirror and hosts) runs beside bad-input, the
# scenario with one host and one run at a time, where the machine has CPU to spare; its
# output is shown after the scenarios.
e2e_beside="bad-input"
case " $scenarios " in *" $e2e_beside "*) ;; *) e2e_beside="" ;; esac
e2e_pid=""
e2e_log=.cache/test/logs/e2e.log
# Two workers, one test file each at a time: every file starts its own lab (hosts, network,
# mirror), and the proxy's lab takes about as long as the other three files together.
e2e_args=(-n 2 --dist loadfile tests/e2e)

passed=0
failed=0
for scenario in $scenarios; do
  step "Molecule scenario: $scenario"
  if [ "$scenario" = "$e2e_beside" ]; then
    echo "(the end-to-end test runs beside this scenario; its output follows the scenarios)"
    pytest "${e2e_args[@]}" >"$e2e_log" 2>&1 &
    e2e_pid=$!
  fi
  start=$(date +%s)
  if molecule test -s "$scenario"; then
    echo "scenario $scenario: passed in $(( $(date +%s) - start )) s"
    passed=$((passed + 1))
  else
    echo "scenario $scenario: FAILED after $(( $(date +%s) - start )) s"
    failed=$((failed + 1))
  fi
done
echo "molecule: $passed passed, $failed failed"

step "End to end: the lab (provision, verify, facts), the collection, the execution environment, a proxy, air-gapped hosts"
e2e=0
if [ -n "$e2e_pid" ]; then
  wait "$e2e_pid" || e2e=$?
  echo "(ran beside $e2e_beside)"
  cat "$e2e_log"
else
  pytest "${e2e_args[@]}" || e2e=$?
fi
report_timings
echo "molecule: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$e2e" -eq 0 ]
