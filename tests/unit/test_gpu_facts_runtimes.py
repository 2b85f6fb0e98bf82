"""gpu_facts and gpuhost facts flag a registered Docker runtime whose executable is missing.

Runtimes come from /etc/docker/daemon.json ("runtimes") and from what ``docker info``
reports; an executable given by a path must exist and be executable, a bare name must be
in a directory of dockerd's PATH, as dockerd looks it up.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from plugin_loader import load_module
from test_cli import write_inventory

from gpuhost_cli import views
from gpuhost_cli.cli import _common

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gpu"
HOST = "gpu-node-17.rack4.dc2.example.internal"

gf = load_module("gpu_facts")


def write(root, rel, text, mode=0o644):
    path = Path(root) / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def engine(info):
    """A stand-in for the commands gpu_facts runs: docker version and docker info."""
    def run(argv, timeout):
        if argv[1] == "version":
            return 0, "27.5.1\n", ""
        if argv[1] == "info":
            return 0, json.dumps(info), ""
        raise AssertionError(argv)
    return run


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A tree read as the host itself (root /): every path the module reads lands under tmp_path."""
    root = tmp_path / "host"
    root.mkdir()
    monkeypatch.setattr(gf, "under", lambda base, *parts: os.path.join(str(root), *(p.lstrip("/") for p in parts)))
    return root


DAEMON_JSON = {
    "default-runtime": "nvidia",
    "runtimes": {
        "nvidia": {"path": "nvidia-container-runtime", "args": []},  # in /usr/bin: found
        "crun": {"path": "/opt/crun/bin/crun"},                        # absolute, missing
        "kata": {"path": "/opt/kata/bin/kata-runtime"},                # absolute, not executable
        "youki": {"path": "youki"},                                    # bare name, on no directory of the PATH
        "gvisor": {"runtimeType": "io.containerd.runsc.v1"},           # a containerd shim: no executable
    },
}
DOCKER_INFO = {
    "DefaultRuntime": "nvidia",
    "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"},
                 "nvidia": {"path": "nvidia-container-runtime"}, "sysbox-runc": {"path": "/usr/bin/sysbox-runc"}},
}


def test_each_registered_runtime_is_looked_for_as_dockerd_does(host):
    write(host, "etc/docker/daemon.json", json.dumps(DAEMON_JSON))
    write(host, "usr/bin/nvidia-container-runtime", "#!/bin/sh\n", 0o755)
    write(host, "opt/kata/bin/kata-runtime", "not a program\n", 0o644)
    gpu = gf.collect("/", which=lambda name: "/usr/bin/" + name, run=engine(DOCKER_INFO))
    found = {(e["runtime"], e["path"], e["source"], e["found"]) for e in gpu["docker"]["runtime_executables"]}
    assert found == {
        ("crun", "/opt/crun/bin/crun", "/etc/docker/daemon.json", None),
        ("kata", "/opt/kata/bin/kata-runtime", "/etc/docker/daemon.json", None),
        ("nvidia", "nvidia-container-runtime", "/etc/docker/daemon.json", "/usr/bin/nvidia-container-runtime"),
        ("youki", "youki", "/etc/docker/daemon.json", None),
        # Only in what the engine reports (Docker's own runc runtimes are not listed).
        ("sysbox-runc", "/usr/bin/sysbox-runc", "docker info", None),
    }
    missing = [f for f in gpu["findings"] if f["code"] == "runtime_executable_missing"]
    assert [f["severity"] for f in missing] == ["error"] * 4
    by_runtime = {re.match(r'Docker runtime "([^"]+)"', f["message"]).group(1): f["message"] for f in missing}
    assert set(by_runtime) == {"crun", "kata", "youki", "sysbox-runc"}
    assert by_runtime["crun"] == (
        'Docker runtime "crun" (registered in /etc/docker/daemon.json) runs the executable /opt/crun/bin/crun, '
        "which does not exist or is not executable: containers started with --runtime=crun fail to start. "
        "Install the runtime, or correct runtimes.crun.path in docker_daemon_options (null removes the runtime: "
        "docker_daemon_options: {runtimes: {crun: null}}), then run gpuhost provision.")
    assert "youki, which is not in any directory of dockerd's PATH (/usr/local/sbin:/usr/local/bin:" in (
        by_runtime["youki"])
    assert "(registered in docker info)" in by_runtime["sysbox-runc"]
    assert by_runtime["crun"] in gpu["problems"]


def test_the_nvidia_runtime_missing_points_at_the_toolkit_and_its_variable(host):
    write(host, "etc/docker/daemon.json", json.dumps({"default-runtime": "nvidia", "runtimes": {
        "nvidia": {"path": "nvidia-container-runtime", "args": []}}}))
    info = {"DefaultRuntime": "nvidia", "Runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
    gpu = gf.collect("/", which=lambda name: "/usr/bin/" + name, run=engine(info))
    (message,) = [f["message"] for f in gpu["findings"] if f["code"] == "runtime_executable_missing"]
    assert message.startswith('Docker runtime "nvidia" (registered in /etc/docker/daemon.json) runs the executable '
                              "nvidia-container-runtime, which is not in any directory of dockerd's PATH")
    assert "every container (it is the default runtime) and every one started with --runtime=nvidia fail" in message
    assert ("Install the NVIDIA Container Toolkit (gpuhost provision installs it), or set "
            "docker_daemon_nvidia_runtime_path to where nvidia-container-runtime is") in message


def test_a_bare_name_is_found_in_the_first_directory_of_dockerds_path(host):
    write(host, "usr/local/bin/nvidia-container-runtime", "#!/bin/sh\n", 0o755)
    write(host, "usr/bin/nvidia-container-runtime", "#!/bin/sh\n", 0o755)
    assert gf.find_runtime("/", "nvidia-container-runtime") == "/usr/local/bin/nvidia-container-runtime"
    write(host, "usr/local/bin/nvidia-container-runtime", "#!/bin/sh\n", 0o644)
    assert gf.find_runtime("/", "nvidia-container-runtime") == "/usr/bin/nvidia-container-runtime"
    assert gf.find_runtime("/", "/usr/bin/nvidia-container-runtime") == "/usr/bin/nvidia-container-runtime"
    assert gf.find_runtime("/", "/usr/local/bin/nvidia-container-runtime") is None
    assert gf.find_runtime("/", "no-such-runtime") is None


def test_all_present_is_no_problem(host):
    write(host, "etc/docker/daemon.json",
          json.dumps({"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}}))
    write(host, "usr/bin/nvidia-container-runtime", "#!/bin/sh\n", 0o755)
    gpu = gf.collect("/", which=lambda name: "/usr/bin/" + name, run=engine({"Runtimes": {"runc": {"path": "runc"}}}))
    assert gpu["docker"]["runtime_executables"] == [{"runtime": "nvidia", "path": "/usr/bin/nvidia-container-runtime",
                                                     "source": "/etc/docker/daemon.json",
                                                     "found": "/usr/bin/nvidia-container-runtime"}]
    assert "runtime_executable_missing" not in [f["code"] for f in gpu["findings"]]


def test_a_saved_copy_of_a_hosts_files_is_not_searched_for_programs():
    gpu = gf.collect(str(FIXTURES / "eight-gpus-driver"))
    assert gpu["docker"]["configured_runtimes"] == ["nvidia"]
    assert gpu["docker"]["runtime_executables"] is None
    assert "runtime_executable_missing" not in [f["code"] for f in gpu["findings"]]


def test_odd_runtimes_entries_are_skipped():
    assert gf.runtime_paths({"a": {"path": ""}, "b": "x", "c": {"path": 3}, "d": {"path": "ok"}}) == {"d": "ok"}
    assert gf.runtime_paths(None) == {} and gf.runtime_paths([]) == {}
    assert gf.parse_docker_info("[]") == (None, None, {})


# ---- What gpuhost facts shows ---------------------------------------------------------------


def facts_with_a_missing_runtime(path="/opt/nvidia/bin/nvidia-container-runtime"):
    message = gf.runtime_missing_message({"runtime": "nvidia", "path": path, "source": "/etc/docker/daemon.json"},
                                         "nvidia")
    return {
        "summary": "no NVIDIA GPU found",
        "docker": {"runtimes": ["nvidia", "runc"], "default_runtime": "nvidia", "runtime_executables": [
            {"runtime": "nvidia", "path": path, "source": "/etc/docker/daemon.json", "found": None}]},
        "problems": [message],
        "findings": [{"code": "runtime_executable_missing", "severity": "error", "message": message}],
    }


@pytest.mark.parametrize("width", [40, 160])
def test_the_facts_table_names_the_runtime_and_its_path_whole(width):
    facts = facts_with_a_missing_runtime()
    assert views.missing_runtimes(facts["docker"]) == [
        {"runtime": "nvidia", "path": "/opt/nvidia/bin/nvidia-container-runtime", "source": "/etc/docker/daemon.json"}]
    text = views.render_text([views.facts_table(HOST, facts)], width=width)
    assert HOST in text
    assert "nvidia (MISSING: /opt/nvidia/bin/nvidia-container-runtime)" in " ".join(text.split())
    # The path is never split by a line break, on any width.
    assert "/opt/nvidia/bin/nvidia-container-runtime" in text
    assert "docker_daemon_nvidia_runtime_path" in " ".join(text.split())
    if width == 40:
        lines = text.splitlines()
        assert lines[0].startswith(HOST) and "Runtimes" in lines and "Problems" in lines


STAND_IN_DOCKER = """#!/bin/sh
case "$1" in
  version) echo 27.5.1 ;;
  info) echo '{"DefaultRuntime":"runc","Runtimes":{"runc":{"path":"runc"},'\
'"present":{"path":"%(present)s"},"absent":{"path":"%(absent)s"}}}' ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def local_host(tmp_path, monkeypatch):
    """This machine as a host with a long name (read-only), with a stand-in docker first on the PATH
    whose engine reports one runtime whose executable exists and one whose does not."""
    bindir = tmp_path / "bin"
    present = write(tmp_path, "runtimes/present-runtime", "#!/bin/sh\n", 0o755)
    absent = tmp_path / "runtimes" / "absent-runtime"
    write(bindir, "docker", STAND_IN_DOCKER % {"present": present, "absent": absent}, 0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    inventory = write_inventory(tmp_path / "inv", {
        HOST: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}})
    return inventory, present, absent


def test_gpuhost_facts_shows_the_missing_runtime_in_the_table_and_the_json(cli, local_host, monkeypatch):
    inventory, present, absent = local_host
    result = cli("facts", "-i", inventory, "--format", "json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)["hosts"][HOST]["facts"]
    entries = {e["runtime"]: e for e in facts["docker"]["runtime_executables"]}
    assert entries["present"] == {"runtime": "present", "path": str(present), "source": "docker info",
                                  "found": str(present)}
    assert entries["absent"] == {"runtime": "absent", "path": str(absent), "source": "docker info", "found": None}
    assert "runc" not in entries
    problems = [p for p in facts["problems"] if p.startswith('Docker runtime "absent"')]
    assert len(problems) == 1 and str(absent) in problems[0]

    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setattr(_common, "_console", None)
    result = cli("facts", "-i", inventory)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(HOST)
    flat = " ".join(result.stdout.split())
    assert f"absent (MISSING: {absent})" in flat
    assert f'Docker runtime "absent" (registered in docker info) runs the executable {absent}, which does not exist' \
        in flat
    assert any(str(absent) in line for line in lines)  # the path whole on a line
