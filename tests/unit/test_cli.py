"""The gpuhost command line, through typer's CliRunner, against real Ansible runs.

No test reaches another machine: hosts are either reserved ``.invalid`` names (every
connection fails at once, and most commands never connect at all) or this machine over
``ansible_connection: local`` for read-only work only (gpu_facts on recorded host trees,
gpuhost_verify with a stand-in ``docker`` program first on the PATH, so the real Docker
engine is never asked anything).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from gpuhost_cli import inputs, inventory_init, paths, views
from gpuhost_cli.cli import COMMANDS

from stand_in_docker import install_stand_in_docker

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gpu"



def write_inventory(directory: Path, hosts: dict, group_vars: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"gpu_hosts": {"hosts": hosts}}}}), encoding="utf-8")
    if group_vars:
        (directory / "group_vars" / "gpu_hosts").mkdir(parents=True, exist_ok=True)
        (directory / "group_vars" / "gpu_hosts" / "main.yml").write_text(yaml.safe_dump(group_vars), encoding="utf-8")
    return directory


@pytest.fixture
def unreachable_inventory(tmp_path):
    """gpu1 at gpu1.invalid over SSH: valid variables, so a run gets past the checks."""
    return write_inventory(tmp_path / "inv", {"gpu1": {"ansible_host": "gpu1.invalid", "ansible_connection": "ssh"}})


@pytest.fixture
def local_inventory(tmp_path, monkeypatch):
    """This machine as 'node' (read-only use), with the stand-in docker first on the PATH."""
    install_stand_in_docker(tmp_path, monkeypatch)
    return write_inventory(tmp_path / "local", {"node": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}})


def no_traceback(result):
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


# ---- Help and version --------------------------------------------------------------------


def test_top_level_help_lists_every_command(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
    assert "gpuhost inventory init inventories/prod" in result.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["provision"], ["--inventory", "--limit", "--tags", "--check", "--diff", "--extra-vars", "--forks",
                         "--format", "Examples", "gpuhost provision -i inventories/prod --check --diff", "[a, b]"]),
        (["facts"], ["--inventory", "--limit", "--format", "--root", "Examples", "gpuhost facts -i"]),
        (["verify"], ["--inventory", "--limit", "--image", "--pull", "--format", "Examples", "gpuhost verify -i",
                      "device=0"]),
        (["render"], ["--inventory", "HOST", "--offline", "Examples", "gpuhost render -i"]),
        (["inventory", "init"], ["DIRECTORY", "--force", "Examples", "gpuhost inventory init inventories/prod"]),
    ],
)
def test_each_command_has_help_with_examples(cli, args, words):
    result = cli(*args, "--help")
    assert result.exit_code == 0, result.output
    for word in words:
        assert word in result.output, (word, result.output)


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.output.strip() == "gpuhost 0.1.0"


def test_commands_import_nothing_heavy_for_help():
    """The command modules must not import ansible-runner or rich at import time."""
    code = ("import sys; import gpuhost_cli.cli; "
            "print(','.join(m for m in ('ansible_runner', 'ansible', 'rich.table', 'gpuhost_cli.views') "
            "if m in sys.modules))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ---- User mistakes: one line, no traceback ------------------------------------------------


@pytest.mark.parametrize("command", [["provision"], ["facts"], ["verify"], ["render", "gpu1"]])
def test_missing_inventory(cli, command, tmp_path):
    result = cli(*command, "-i", tmp_path / "nope")
    assert result.exit_code == 2
    assert result.stderr == f"gpuhost: inventory '{tmp_path / 'nope'}' not found\n"
    no_traceback(result)


def test_unreadable_inventory(cli, tmp_path, monkeypatch):
    # The tests run as root, who reads every file: the permission check itself is faked.
    path = tmp_path / "hosts.yml"
    path.write_text("all: {}\n")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(path) else real_access(p, mode))
    result = cli("provision", "-i", path)
    assert result.exit_code == 2 and "is not readable" in result.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("foo", "-e 'foo': write key=value"),
        ("1bad=2", "'1bad' is not a valid variable name"),
        ("@missing.yml", "extra vars file 'missing.yml' not found"),
        ("@", "-e @ needs a file name"),
    ],
)
def test_bad_extra_vars(cli, unreachable_inventory, spec, message):
    result = cli("provision", "-i", unreachable_inventory, "-e", spec)
    assert result.exit_code == 2
    assert result.stderr.startswith("gpuhost: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2
    no_traceback(result)


def test_extra_vars_file_must_be_a_mapping(cli, unreachable_inventory, tmp_path):
    (tmp_path / "list.yml").write_text("- a\n- b\n")
    (tmp_path / "broken.yml").write_text("a: [1,\n")
    result = cli("provision", "-i", unreachable_inventory, "-e", f"@{tmp_path / 'list.yml'}")
    assert result.exit_code == 2 and "must hold a mapping of variable names to values, not a list" in result.stderr
    result = cli("provision", "-i", unreachable_inventory, "-e", f"@{tmp_path / 'broken.yml'}")
    assert result.exit_code == 2 and "is not valid YAML or JSON (line" in result.stderr


def test_extra_vars_are_typed_and_merged_in_order(tmp_path):
    (tmp_path / "a.yml").write_text("docker_users: [alice]\ndocker_apt_retries: 3\n")
    (tmp_path / "b.json").write_text('{"docker_daemon_live_restore": false}')
    merged = inputs.parse_extra_vars([
        f"@{tmp_path / 'a.yml'}", f"@{tmp_path / 'b.json'}", "docker_apt_retries=5", "flag=true",
        "mirrors=[https://m.example.com]", "empty=", "text=hello world", "quoted='007'",
    ])
    assert merged == {
        "docker_users": ["alice"], "docker_apt_retries": 5, "docker_daemon_live_restore": False, "flag": True,
        "mirrors": ["https://m.example.com"], "empty": "", "text": "hello world", "quoted": "007",
    }


def test_no_hosts_matched(cli, unreachable_inventory):
    result = cli("provision", "-i", unreachable_inventory, "--limit", "gpu9")
    assert result.exit_code != 0
    assert result.stderr == f"gpuhost: no hosts matched 'gpu9' in {unreachable_inventory}\n"
    no_traceback(result)


def test_a_host_outside_gpu_hosts_is_not_provisioned(cli, tmp_path):
    inventory = tmp_path / "inv"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "gpu_hosts": {"hosts": {"gpu1": {"ansible_host": "gpu1.invalid"}}},
        "cpu_hosts": {"hosts": {"cpu1": {"ansible_host": "cpu1.invalid"}}}}}}))
    for command in (["provision"], ["facts"], ["verify"]):
        result = cli(*command, "-i", inventory, "--limit", "cpu1")
        assert result.exit_code != 0
        assert result.stderr == f"gpuhost: no hosts matched 'cpu1' in group gpu_hosts of {inventory}\n", command


def test_an_inventory_without_gpu_hosts(cli, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"cpu_hosts": {"hosts": {"c": {}}}}}}))
    result = cli("provision", "-i", inventory)
    assert result.exit_code == 2
    assert result.stderr == f"gpuhost: no hosts matched 'gpu_hosts' in {inventory}\n"


def test_an_inventory_ansible_cannot_read(cli, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children: [\n")
    for command in (["provision"], ["facts"], ["render", "x", "--offline"]):
        result = cli(*command, "-i", inventory)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"gpuhost: cannot read inventory '{inventory}': YAML parsing failed"), command
        assert f"({inventory}:3:1)" in result.stderr
        no_traceback(result)


def test_typed_extra_vars_reach_the_inventory_checks(cli, unreachable_inventory):
    """-e values arrive typed: a YAML string where a list belongs is named by the checks."""
    result = cli("provision", "-i", unreachable_inventory, "-e", "docker_users=alice", "--format", "json")
    assert result.exit_code != 0
    data = json.loads(result.stdout)
    error = data["hosts"]["gpu1"]["error"]
    assert "variable 'docker_users': expected a list of str, got str 'alice'" in error
    assert data["hosts"]["gpu1"]["unreachable"] == 0


# ---- provision -----------------------------------------------------------------------------


def test_provision_names_the_unreachable_host(cli, unreachable_inventory):
    result = cli("provision", "-i", unreachable_inventory, "-e", "docker_users=[]", "-e", "docker_apt_retries=2")
    assert result.exit_code == 4, result.output
    out = result.stdout
    assert "gpu1" in out
    assert "gpu1 (unreachable): Failed to connect to the host via ssh" in out
    assert "Could not resolve hostname gpu1.invalid" in out
    assert "Rollout stopped before any host changed: 1 of 1 hosts could not be reached" in out
    assert "0 done, 0 converged (nothing to do), 0 failed, 1 unreachable, 0 deferred, 0 not reached" in out
    report = Path(unreachable_inventory) / ".gpuhost" / "rollouts" / "last.json"
    assert f"Report: {report.parent}" in out.replace("\n", "")
    assert json.loads(report.read_text())["hosts"]["gpu1"]["status"] == "unreachable"
    no_traceback(result)


def test_provision_json(cli, unreachable_inventory):
    result = cli("provision", "-i", unreachable_inventory, "--check", "--diff", "--forks", "2", "--format", "json")
    assert result.exit_code == 4
    data = json.loads(result.stdout)
    assert set(data) == {"hosts", "rc", "ok", "rollout", "report_file"}
    assert data["rc"] == 4 and data["ok"] is False
    rollout = data["rollout"]
    assert rollout["check"] is True and rollout["outcome"] == "stopped"
    assert rollout["batches_requested"] == [1, "25%", "100%"] and rollout["max_fail_percentage"] == 0
    assert rollout["hosts"]["gpu1"]["status"] == "unreachable" and rollout["hosts"]["gpu1"]["batch"] is None
    assert json.loads(Path(data["report_file"]).read_text()) == rollout
    assert data["report_file"].endswith("-check.json")
    # A dry run is never what --resume picks up.
    assert not (Path(data["report_file"]).parent / "last.json").exists()
    host = data["hosts"]["gpu1"]
    assert host["status"] == "unreachable" and host["unreachable"] == 1 and host["failed"] == 0
    assert host["error_task"] == "Gathering Facts"
    assert "gpu1.invalid" in host["error"]
    assert isinstance(host["elapsed"], float)
    assert host["deferred"] is False


# ---- render --------------------------------------------------------------------------------


def test_render_offline_prints_only_the_json(cli, tmp_path):
    inventory = write_inventory(
        tmp_path / "inv",
        {"x": {"ansible_host": "x.invalid", "ansible_connection": "ssh", "ansible_user": "ops",
               "ansible_become": True}},
        {
            "docker_daemon_registry_mirrors": ["https://mirror.example.com"],
            "docker_daemon_options": {"log-driver": "json-file", "log-opts": {"max-size": "100m"},
                                      "data-root": "/srv/docker"},
            "docker_daemon_live_restore": False,
        },
    )
    result = cli("render", "-i", inventory, "x", "--offline")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
        "default-runtime": "nvidia",
        "registry-mirrors": ["https://mirror.example.com"],
        "live-restore": False,
        "log-driver": "json-file",
        "log-opts": {"max-size": "100m"},
        "data-root": "/srv/docker",
    }
    assert result.stdout.startswith("{\n    \"runtimes\"")
    assert result.stderr == ""


def test_render_offline_refuses_what_the_role_refuses(cli, tmp_path):
    inventory = write_inventory(tmp_path / "inv", {"x": {"ansible_host": "x.invalid"}},
                                {"docker_daemon_registry_mirrors": ["http://mirror.example.com/path"]})
    result = cli("render", "-i", inventory, "x", "--offline")
    assert result.exit_code != 0
    assert result.stdout == ""
    assert "cannot render daemon.json for x" in result.stderr
    assert "docker_daemon_registry_mirrors" in result.stderr


def test_render_unknown_host(cli, unreachable_inventory):
    result = cli("render", "-i", unreachable_inventory, "gpu7", "--offline")
    assert result.exit_code != 0
    assert result.stderr == f"gpuhost: no hosts matched 'gpu7' in {unreachable_inventory}\n"


def test_render_takes_one_host_not_a_pattern(cli, unreachable_inventory):
    result = cli("render", "-i", unreachable_inventory, "gpu1,gpu2")
    assert result.exit_code == 2 and "must be one inventory host name" in result.stderr


def test_render_online_of_an_unreachable_host(cli, unreachable_inventory):
    result = cli("render", "-i", unreachable_inventory, "gpu1")
    assert result.exit_code != 0
    assert result.stdout == ""
    assert "cannot render daemon.json for gpu1: unreachable: Failed to connect" in result.stderr


# ---- inventory init ------------------------------------------------------------------------


def test_inventory_init_writes_the_sample_and_refuses_to_overwrite(cli, tmp_path):
    target = tmp_path / "prod"
    result = cli("inventory", "init", target)
    assert result.exit_code == 0, result.output
    sample = paths.sample_inventory()
    expected = [target / "hosts.yml"] + [
        target / "group_vars" / "gpu_hosts" / p.name for p in sorted((sample / "group_vars" / "gpu_hosts").glob("*.yml"))]
    for path in expected:
        assert f"wrote {path}" in result.stdout
        source = sample / path.relative_to(target)
        assert path.read_text() == source.read_text()
    assert (target / "group_vars" / "gpu_hosts" / "docker_daemon.yml").is_file()
    # every variable is commented out: the group_vars files hold no setting
    for path in expected[1:]:
        assert yaml.safe_load(path.read_text()) is None, path

    (target / "hosts.yml").write_text("mine\n")
    result = cli("inventory", "init", target)
    assert result.exit_code == 2
    assert "already has hosts.yml" in result.stderr and "--force" in result.stderr
    assert (target / "hosts.yml").read_text() == "mine\n"

    result = cli("inventory", "init", target, "--force")
    assert result.exit_code == 0
    assert (target / "hosts.yml").read_text() == (sample / "hosts.yml").read_text()


def test_inventory_init_into_a_file(cli, tmp_path):
    (tmp_path / "file").write_text("x")
    result = cli("inventory", "init", tmp_path / "file")
    assert result.exit_code == 2 and "is not a directory" in result.stderr


def test_inventory_init_plan_lists_every_role_file():
    files = inventory_init.plan(Path("/dest"))
    names = {target.name for _, target in files}
    assert {"hosts.yml", "docker.yml", "docker_daemon.yml", "docker_users.yml",
            "nvidia_container_toolkit.yml", "gpuhost_verify.yml"} <= names


# ---- facts ---------------------------------------------------------------------------------


def test_facts_of_a_recorded_host(cli, local_inventory):
    result = cli("facts", "-i", local_inventory, "--root", FIXTURES / "eight-gpus-driver")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "node" in out
    assert "Ubuntu 22.04" in out and "(supported)" in out
    assert "8 × NVIDIA H100 SXM5 80GB" in out
    assert "loaded, 550.54.15" in out
    assert "GPU 0" in out and "GPU 7" in out and "80 GiB" in out and "CUDA 12.4" in out
    assert "1.17.8-1" in out
    assert "Runtime mode" in out and "auto (no config.toml: NVIDIA's default)" in out
    assert "envvar (any container that sets NVIDIA_VISIBLE_DEVICES gets GPUs" in out
    assert "none (no CDI specification)" in out
    assert "nvidia-cdi-refresh .path not installed, .service not installed" in out
    assert "running, enabled, no socket" in out
    assert "4 (HGX/DGX: needs Fabric Manager)" in out
    assert "nvidia-fabricmanager-550 550.54.15-1, running, enabled, matches the driver" in out
    assert "Problems" in out


def test_facts_of_an_nvswitch_system_with_a_mismatched_fabric_manager(cli, local_inventory):
    result = cli("facts", "-i", local_inventory, "--root", FIXTURES / "hgx-fabricmanager-mismatch",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    (host,) = json.loads(result.stdout)["hosts"].values()
    nvswitch = host["facts"]["nvswitch"]
    assert (nvswitch["count"], nvswitch["fabricmanager"]["version_matches"]) == (4, False)
    assert [f["code"] for f in host["facts"]["findings"]] == ["fabricmanager_version_mismatch"]
    table = cli("facts", "-i", local_inventory, "--root", FIXTURES / "hgx-fabricmanager-mismatch").stdout
    assert "not running, enabled, does NOT match the driver" in table


def test_facts_json_and_problems(cli, local_inventory):
    result = cli("facts", "-i", local_inventory, "--root", FIXTURES / "nouveau", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rc"] == 0 and data["ok"] is True
    facts = data["hosts"]["node"]["facts"]
    assert facts["driver"]["nouveau_loaded"] is True
    assert any("nouveau" in problem for problem in facts["problems"])
    text = views.render_text([views.facts_table("node", facts)])
    assert "nouveau loaded" in text and "blacklist" in text


def test_facts_of_an_unreachable_host(cli, unreachable_inventory):
    result = cli("facts", "-i", unreachable_inventory)
    assert result.exit_code != 0
    assert "gpu1: unreachable: Failed to connect to the host via ssh" in result.stdout
    result = cli("facts", "-i", unreachable_inventory, "--format", "json")
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["hosts"]["gpu1"]["status"] == "unreachable"
    assert data["hosts"]["gpu1"]["facts"] is None


def test_facts_table_is_defensive_about_missing_keys():
    text = views.render_text([views.facts_table("h", {})])
    assert "unknown" in text and "h" in text
    rows = dict(views.facts_overview({"distribution": {"id": "debian", "version_id": "12", "supported": True},
                                      "pci_gpus": [{"model": None, "device_id": "0x27b8", "driver": None}],
                                      "driver": {"loaded": False, "nouveau_loaded": None},
                                      "nvidia_smi": {"available": False, "error": "nvidia-smi was not found"},
                                      "docker": {"installed": False}, "toolkit": None}))
    assert rows["Distribution"] == "debian 12 (supported)"
    assert rows["NVIDIA GPUs (PCI)"] == "1: 1 × 0x27b8 (kernel driver: none)"
    assert rows["NVIDIA driver"] == "not loaded"
    assert rows["nouveau loaded"] == "unknown"
    assert rows["nvidia-smi"] == "not working: nvidia-smi was not found"
    assert rows["Docker"] == "not installed"
    assert rows["NVIDIA Container Toolkit"] == "unknown"
    assert rows["Runtime mode"] == rows["GPU isolation"] == rows["CDI devices"] == "unknown"
    assert rows["CDI refresh"] == rows["nvidia-persistenced"] == "unknown"
    assert views.facts_of({"ansible_facts": {"gpuhost_gpu": {"summary": "s"}}}) == {"summary": "s"}
    assert views.facts_of(None) == {}


def test_facts_view_of_the_toolkit_and_cdi():
    uuids = [f"nvidia.com/gpu=GPU-0a1b2c3d-0000-4000-8000-00000000000{i}" for i in range(4)]
    facts = {
        "toolkit": {
            "installed": True, "version": "1.18.1-1",
            "runtime_config": {"present": True, "error": None, "mode": "cdi"},
            "isolation": "privileged-only",
            "cdi": {"specs": ["/var/run/cdi/nvidia.yaml"], "devices": ["nvidia.com/gpu=0", *uuids, "nvidia.com/gpu=all"]},
            "cdi_refresh": {"path": {"installed": True, "enabled": True, "masked": False},
                            "service": {"installed": True, "enabled": False, "masked": False}},
            "persistenced": {"running": True, "socket": True},
        },
        "docker": {"installed": True, "recorded_version": "28.5.1", "cdi_supported": True, "cdi_enabled": True},
    }
    rows = dict(views.facts_overview(facts))
    assert rows["Runtime mode"] == "cdi"
    assert rows["GPU isolation"] == "privileged-only (NVIDIA_VISIBLE_DEVICES honoured only for privileged containers)"
    assert rows["CDI devices"] == ("6: nvidia.com/gpu=0, nvidia.com/gpu=GPU-0a1b…0000, nvidia.com/gpu=GPU-0a1b…0001, "
                                   "nvidia.com/gpu=GPU-0a1b…0002, +2 more; Docker CDI enabled")
    assert rows["CDI refresh"] == "nvidia-cdi-refresh .path enabled, .service installed"
    assert rows["nvidia-persistenced"] == "running, no unit file, socket present"
    text = views.render_text([views.facts_table("gpu1", facts)], width=240)
    assert "privileged-only" in text and "Docker CDI enabled" in text and "running, no unit file, socket present" in text

    facts["toolkit"]["runtime_config"] = {"present": True, "error": "config.toml does not parse: line 2", "mode": None}
    facts["toolkit"]["isolation"] = None
    facts["toolkit"]["cdi"] = {"specs": ["/etc/cdi/vendor.json"], "devices": []}
    facts["toolkit"]["cdi_refresh"]["path"] = {"installed": False, "enabled": False, "masked": True}
    facts["docker"] = {"cdi_supported": False, "cdi_enabled": False}
    rows = dict(views.facts_overview(facts))
    assert rows["Runtime mode"] == "not readable: config.toml does not parse: line 2"
    assert rows["GPU isolation"] == "unknown"
    assert rows["CDI devices"] == "none (in 1 specification(s)); Docker too old for CDI"
    assert rows["CDI refresh"] == "nvidia-cdi-refresh .path masked, .service installed"
    facts["docker"] = {"cdi_supported": True, "cdi_enabled": False}
    assert dict(views.facts_overview(facts))["CDI devices"].endswith("; Docker CDI not enabled")


# ---- verify --------------------------------------------------------------------------------


def test_verify_of_an_unreachable_host(cli, unreachable_inventory):
    result = cli("verify", "-i", unreachable_inventory, "--image", "nvidia/cuda:12.6.3-base-ubuntu24.04", "--no-pull")
    assert result.exit_code != 0
    assert "gpu1: unreachable: Failed to connect to the host via ssh" in result.stdout
    result = cli("verify", "-i", unreachable_inventory, "--format", "json")
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["hosts"]["gpu1"]["status"] == "failed" and data["hosts"]["gpu1"]["checks"] == []
    assert "gpu1.invalid" in data["hosts"]["gpu1"]["error"]


def test_verify_refuses_a_bad_image(cli, unreachable_inventory):
    result = cli("verify", "-i", unreachable_inventory, "--image", "two words")
    assert result.exit_code == 2 and "is not an image reference" in result.stderr


def _machine_has_nvidia_gpu() -> bool:
    for vendor in Path("/sys/bus/pci/devices").glob("*/vendor"):
        try:
            if vendor.read_text().strip() == "0x10de":
                return True
        except OSError:
            continue
    return False


@pytest.mark.skipif(_machine_has_nvidia_gpu(), reason="checks the no-GPU path of this machine")
def test_verify_on_a_host_without_gpus(cli, local_inventory):
    result = cli("verify", "-i", local_inventory, "--format", "json")
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["hosts"]["node"]["checks"]}
    assert checks["Docker answers"] == {"name": "Docker answers", "status": "passed", "detail": "Docker 27.5.1"}
    assert checks["nvidia runtime registered"]["status"] == "passed"
    assert checks["default runtime"]["status"] == "passed"
    for name in ("NVIDIA GPUs", "NVIDIA driver loaded", "test image", "docker run --gpus all",
                 "docker run --gpus '\"device=0\"'", "docker run --runtime=nvidia"):
        assert checks[name]["status"] == "not_applicable", name
        assert checks[name]["detail"] == "no NVIDIA GPU on this host"


def test_verify_when_docker_does_not_answer(cli, local_inventory, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_STATE", "down")
    result = cli("verify", "-i", local_inventory)
    assert result.exit_code == 2, result.output
    out = result.stdout
    assert "Docker answers" in out and "FAILED" in out
    assert "node: Docker answers: Cannot connect to the Docker daemon" in out
