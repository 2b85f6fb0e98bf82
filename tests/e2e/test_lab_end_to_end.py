"""End to end, as an operator works: a lab fleet over SSH (one Debian 12 host and one
simulated Ubuntu 24.04 host), provision, provision again, verify, facts, and the lab removed. Needs root and a running Docker engine (tests/run.sh
provides both); it is not part of the unit tests."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

GPUHOST = Path(sys.executable).parent / "gpuhost"
NAME = "gpuhost-e2e"


def gpuhost(*args, check=True, env=None):
    proc = subprocess.run([str(GPUHOST), *map(str, args)], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **env} if env else None)
    if check:
        assert proc.returncode == 0, f"gpuhost {' '.join(map(str, args))}: rc={proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("lab")
    try:
        up = gpuhost("lab", "up", "--hosts", "2", "--distro", "debian12,ubuntu24-sim", "--name", NAME, "--state-dir", state,
                     "--format", "json")
        yield json.loads(up.stdout), state
    finally:
        down = gpuhost("lab", "down", "--name", NAME, "--state-dir", state, check=False)
        assert down.returncode == 0, down.stderr


def test_lab_up_reports_two_hosts_over_ssh_and_the_stand_in_mirror(lab):
    summary, state = lab
    assert [h["name"] for h in summary["hosts"]] == [f"{NAME}-1", f"{NAME}-2"]
    assert [h["distro"] for h in summary["hosts"]] == ["debian12", "ubuntu24-sim"]
    assert all(h["address"] for h in summary["hosts"])
    assert summary["stand_in"] is True and "STAND-IN" in summary["notice"]
    assert Path(summary["inventory"]) == state / "inventory"


def test_provision_then_a_second_run_that_changes_nothing(lab):
    summary, _ = lab
    first = json.loads(gpuhost("provision", "-i", summary["inventory"], "--format", "json").stdout)
    assert first["rc"] == 0 and first["ok"] is True
    assert set(first["hosts"]) == {f"{NAME}-1", f"{NAME}-2"}
    for host in first["hosts"].values():
        assert host["failed"] == 0 and host["unreachable"] == 0 and host["changed"] > 0
    second = json.loads(gpuhost("provision", "-i", summary["inventory"], "--format", "json").stdout)
    assert second["rc"] == 0
    assert {name: host["changed"] for name, host in second["hosts"].items()} == {f"{NAME}-1": 0, f"{NAME}-2": 0}
    # The plan found both hosts converged: no role ran, no batch was formed.
    assert {name: host["plan"]["needs_work"] for name, host in second["hosts"].items()} == {
        f"{NAME}-1": [], f"{NAME}-2": []}
    assert {name: host["status"] for name, host in second["rollout"]["hosts"].items()} == {
        f"{NAME}-1": "converged", f"{NAME}-2": "converged"}
    assert second["rollout"]["batches"] == []


BIP = '{"docker_daemon_options": {"bip": "10.98.0.1/24"}}'
BIP_LINE = '"bip": "10.98.0.1/24"'


def daemon_json_on(host):
    return subprocess.run(["docker", "exec", host, "cat", "/etc/docker/daemon.json"], capture_output=True,
                          text=True, check=True, timeout=60).stdout


def test_check_diff_with_a_json_extra_var_shows_what_would_change_and_changes_nothing(lab):
    summary, _ = lab
    names = [f"{NAME}-1", f"{NAME}-2"]
    before = {name: daemon_json_on(name) for name in names}
    data = json.loads(gpuhost("provision", "-i", summary["inventory"], "--check", "--diff", "-e", BIP,
                              "--format", "json").stdout)
    assert data["rc"] == 0 and data["rollout"]["check"] is True
    for name in names:
        host = data["hosts"][name]
        daemon = [d for d in host["diffs"] if d["after_header"] == "/etc/docker/daemon.json"]
        assert len(daemon) == 1, host["diffs"]
        added = [line for line in daemon[0]["diff"].splitlines() if line.startswith("+") and BIP_LINE in line]
        assert added, daemon[0]["diff"]
        assert host["changed"] > 0 and daemon[0]["task"] in host["changed_tasks"]
        assert data["rollout"]["hosts"][name]["changed_tasks"] == host["changed_tasks"]

    # On a narrow terminal, as text (stdout is a pipe: no colour).
    text = gpuhost("provision", "-i", summary["inventory"], "--check", "--diff", "-e", BIP,
                   env={"COLUMNS": "40"}).stdout
    assert "\x1b[" not in text
    flat = " ".join(text.split())  # the words, wherever the narrow terminal broke the lines
    assert "Tasks that would change (check mode: nothing was changed):" in flat
    assert "Diffs (check mode: what would change):" in flat
    lines = text.splitlines()
    for name in names:
        assert f"{name}:" in lines, text  # the heading of the host's diffs
        # The host's changed tasks, under a line that names it (hosts with the same tasks share one).
        assert re.search(rf"{name}[^:]* \(\d+ tasks?\):", flat), text
        assert re.search(rf"{name} batch \d, status ok, would change \d+,", flat), text
    assert sum(1 for line in lines if line.startswith("+") and BIP_LINE in line) == 2
    report = [line for line in lines if line.startswith("Report: ")]
    assert len(report) == 1 and report[0].endswith("-check.json") and Path(report[0][len("Report: "):]).is_file()

    # Nothing changed: the files are as they were, and a real run without the -e has nothing to do.
    assert {name: daemon_json_on(name) for name in names} == before
    after = json.loads(gpuhost("provision", "-i", summary["inventory"], "--format", "json").stdout)
    assert {name: host["changed"] for name, host in after["hosts"].items()} == {name: 0 for name in names}
    assert {name: host["changed_tasks"] for name, host in after["hosts"].items()} == {name: [] for name in names}
    assert all(host["diffs"] == [] for host in after["hosts"].values())


def test_verify_passes_and_gpu_checks_are_not_applicable_without_gpus(lab):
    summary, _ = lab
    result = json.loads(gpuhost("verify", "-i", summary["inventory"], "--format", "json").stdout)
    for name in (f"{NAME}-1", f"{NAME}-2"):
        host = result["hosts"][name]
        assert host["status"] == "passed", host
        checks = {c["name"]: c["status"] for c in host["checks"]}
        assert checks["Docker answers"] == "passed"
        assert checks["nvidia runtime registered"] == "passed"
        assert checks["default runtime"] == "passed"
        assert checks["docker run --gpus all"] == "not_applicable"


def test_facts_reports_each_host(lab):
    summary, _ = lab
    result = json.loads(gpuhost("facts", "-i", summary["inventory"], "--format", "json").stdout)
    assert result["ok"] is True
    for name, release in ((f"{NAME}-1", ("debian", "12", "bookworm")), (f"{NAME}-2", ("ubuntu", "24.04", "noble"))):
        assert result["hosts"][name]["status"] == "ok"
        facts = result["hosts"][name]["facts"]
        dist = facts["distribution"]
        assert (dist["id"], dist["version_id"], dist["codename"]) == release
        assert dist["supported"] is True
        assert facts["pci_gpus"] == []
        # The lab pins no version: the newest stable toolkit of the stand-in mirror.
        assert facts["toolkit"]["version"] == "1.20.0-1"
        assert facts["docker"]["default_runtime"] == "nvidia"


def test_facts_finds_the_executable_of_each_registered_runtime(lab):
    summary, _ = lab
    result = json.loads(gpuhost("facts", "-i", summary["inventory"], "--format", "json").stdout)
    for name in (f"{NAME}-1", f"{NAME}-2"):
        facts = result["hosts"][name]["facts"]
        runtimes = {e["runtime"]: e for e in facts["docker"]["runtime_executables"]}
        assert runtimes["nvidia"]["path"] == "nvidia-container-runtime"
        assert runtimes["nvidia"]["found"] == "/usr/bin/nvidia-container-runtime"
        assert "runtime_executable_missing" not in [f["code"] for f in facts["findings"]]
