"""How each NVIDIA Container Toolkit release creates the /dev/char links, and the places that use it.

The rule (module_utils/gpuhost_toolkit_versions.py) picks the nvidia-ctk arguments by version:
NVIDIA's 1.18.0 and its pre-releases refuse --create-all ("create-all and watch are mutually
exclusive", exit 1); 1.17.x and 1.18.1 and newer accept it. The nvidia_toolkit filter exposes
it to the nvidia_container_toolkit role, whose udev rule and link task are run here through
ansible-playbook; the lab's stand-in nvidia-ctk behaves as each release does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from plugin_loader import run_local_play, use_module_utils

from gpuhost_cli.ansible_plugins.filter.nvidia_toolkit import (
    FilterModule,
    nvidia_toolkit_dev_char_symlinks_args,
)

use_module_utils()
from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible.module_utils import gpuhost_toolkit_security as sec  # noqa: E402
from ansible.module_utils import gpuhost_toolkit_versions as tv  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "nvidia_container_toolkit"
STANDIN_CTK = REPO / "gpuhost_cli" / "lab" / "assets" / "standin" / "nvidia-ctk"
BASE = ["system", "create-dev-char-symlinks"]
ALL = BASE + ["--create-all"]


# ---------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("version, expected", [
    ("1.17.7-1", ALL),
    ("1.17.8-1", ALL),
    ("1.17.9-1", ALL),
    ("1.18.0~rc.1-1", BASE),
    ("1.18.0~rc.6-1", BASE),
    ("1.18.0-1", BASE),
    ("1.18.0-0ubuntu1", BASE),
    ("1.18.1~rc.1-1", ALL),
    ("1.18.1-1", ALL),
    ("1.19.0-1", ALL),
    ("1.20.0-1", ALL),
])
def test_create_all_everywhere_but_1_18_0(version, expected):
    assert tv.dev_char_symlinks_args(version) == expected
    assert tv.create_all_refused(version) is (expected == BASE)


def test_the_answer_is_a_new_list_each_time():
    args = tv.dev_char_symlinks_args("1.20.0-1")
    args.append("--dry-run")
    assert tv.dev_char_symlinks_args("1.20.0-1") == ALL


@pytest.mark.parametrize("version", ["", "   ", None, "latest", "v1.18.0", "1.18.0 -1"])
def test_an_empty_or_unknown_version_is_an_error(version):
    with pytest.raises(ValueError, match="version"):
        tv.dev_char_symlinks_args(version)


def test_the_version_order_is_the_security_table_s():
    """One dpkg comparison: the module imports it rather than carrying its own."""
    assert tv.compare_versions is sec.compare_versions
    assert tv.parse_version is sec.parse_version
    first, end = tv.CREATE_ALL_BROKEN
    assert sec.compare_versions(first, "1.18.0~rc.1") < 0
    assert sec.compare_versions("1.18.0", end) < 0
    assert sec.compare_versions("1.18.1~rc.1", end) > 0


# ---------------------------------------------------------------------------
# The filter
# ---------------------------------------------------------------------------

def test_the_filter_is_registered_and_answers_as_the_rule():
    filters = FilterModule().filters()
    assert filters["nvidia_toolkit_dev_char_symlinks_args"] is nvidia_toolkit_dev_char_symlinks_args
    assert nvidia_toolkit_dev_char_symlinks_args("1.18.0-1") == BASE
    assert nvidia_toolkit_dev_char_symlinks_args("1.18.1-1") == ALL


@pytest.mark.parametrize("version, shipped", [
    ("1.17.8-1", False), ("1.17.9-1", False), ("1.18.0~rc.1-1", True), ("1.18.0-1", True),
    ("1.18.1-1", True), ("1.20.0-1", True),
])
def test_the_refresh_units_filter_answers_as_the_rule(version, shipped):
    from gpuhost_cli.ansible_plugins.filter.nvidia_toolkit import nvidia_toolkit_refresh_units_shipped

    filters = FilterModule().filters()
    assert filters["nvidia_toolkit_refresh_units_shipped"] is nvidia_toolkit_refresh_units_shipped
    assert nvidia_toolkit_refresh_units_shipped(version) is shipped
    with pytest.raises(AnsibleFilterError, match="^nvidia_toolkit_refresh_units_shipped: no toolkit version"):
        nvidia_toolkit_refresh_units_shipped("")


def test_the_filter_names_itself_on_a_bad_version():
    with pytest.raises(AnsibleFilterError, match=r"^nvidia_toolkit_dev_char_symlinks_args: .*'nightly'"):
        nvidia_toolkit_dev_char_symlinks_args("nightly")
    with pytest.raises(AnsibleFilterError, match="no toolkit version given"):
        nvidia_toolkit_dev_char_symlinks_args("")


def test_the_role_has_no_version_rule_of_its_own():
    code = [line for line in (ROLE / "tasks" / "install.yml").read_text().splitlines()
            if not line.lstrip().startswith("#")]
    assert any("nvidia_toolkit_dev_char_symlinks_args" in line for line in code)
    assert not [line for line in code if "--create-all" in line or "1.18" in line]


# ---------------------------------------------------------------------------
# The role's tasks, run by ansible-playbook in check mode
# ---------------------------------------------------------------------------

DEV_CHAR_TASKS = ("NVIDIA toolkit | Read the installed toolkit version",
                  "NVIDIA toolkit | Note the version this run leaves installed",
                  "NVIDIA toolkit | Keep the /dev/char links of NVIDIA devices")


def run_dev_char_tasks(tmp_path, version):
    """The role's version read and dev-char block, in check mode with --diff on this machine.

    No NVIDIA toolkit is installed here, so the block judges by the pin, as a dry run of a
    pin does. The udev rule goes to a file under tmp_path. Returns (rc, {task name: result}).
    """
    tasks = [t for t in yaml.safe_load((ROLE / "tasks" / "install.yml").read_text())
             if t.get("name") in DEV_CHAR_TASKS]
    assert [t["name"] for t in tasks] == list(DEV_CHAR_TASKS)
    rule = tmp_path / "71-nvidia-dev-char.rules"
    for task in tasks[2]["block"]:
        if "ansible.builtin.copy" in task:
            task["ansible.builtin.copy"]["dest"] = str(rule)
            del task["ansible.builtin.copy"]["owner"], task["ansible.builtin.copy"]["group"]
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
             # What the install task registers when it ran.
             "vars": {"__nvidia_container_toolkit_installed": {"changed": True}},
             "tasks": tasks}]
    rc, report = run_local_play(play, tmp_path, {"nvidia_container_toolkit_version": version}, "--check", "--diff",
                                name="dev-char.yml")
    results = {t["task"]["name"]: t["hosts"]["localhost"] for t in report["plays"][0]["tasks"]}
    assert not rule.exists(), "check mode wrote the rule"
    return rc, results


def rule_line(result):
    after = result["diff"][0]["after"] if isinstance(result["diff"], list) else result["diff"]["after"]
    return [line for line in after.splitlines() if line.startswith("ACTION==")]


@pytest.mark.parametrize("version, command", [
    ("1.18.0-1", "/usr/bin/nvidia-ctk system create-dev-char-symlinks"),
    ("1.17.7-1", "/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"),
    ("1.20.0-1", "/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"),
])
def test_the_udev_rule_carries_the_version_s_arguments(tmp_path, version, command):
    rc, results = run_dev_char_tasks(tmp_path, version)
    assert rc == 0, results
    rule = results["NVIDIA toolkit | Install the udev rule that keeps the /dev/char links of NVIDIA devices"]
    assert rule["changed"] is True
    assert rule_line(rule) == [f'ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", RUN+="{command}"']
    assert results["NVIDIA toolkit | Report that a real run chooses the udev rule's arguments"]["skipped"] is True


def test_a_dry_run_with_no_toolkit_and_no_pin_says_a_real_run_chooses(tmp_path):
    rc, results = run_dev_char_tasks(tmp_path, "")
    assert rc == 0, results
    assert results["NVIDIA toolkit | Read the installed toolkit version"]["rc"] != 0
    report = results["NVIDIA toolkit | Report that a real run chooses the udev rule's arguments"]
    assert report["msg"].startswith("Check mode: the toolkit is not installed yet")
    rule = results["NVIDIA toolkit | Install the udev rule that keeps the /dev/char links of NVIDIA devices"]
    assert rule["skipped"] is True


# ---------------------------------------------------------------------------
# The lab's stand-in nvidia-ctk
# ---------------------------------------------------------------------------

def standin(tmp_path, version):
    path = tmp_path / f"nvidia-ctk-{version}"
    path.write_text(STANDIN_CTK.read_text().replace("@VERSION@", version))
    path.chmod(0o755)
    return path


def run_standin(tmp_path, version, *args):
    return subprocess.run(["/bin/sh", str(standin(tmp_path, version)), *args],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("version", ["1.18.0", "1.18.0~rc.1"])
def test_the_stand_in_refuses_create_all_on_1_18_0_as_nvidia_s_does(tmp_path, version):
    proc = run_standin(tmp_path, version, "system", "create-dev-char-symlinks", "--create-all",
                       "--dev-char-path", str(tmp_path / "char"))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert 'level=error msg="create-all and watch are mutually exclusive"' in proc.stderr
    assert not (tmp_path / "char").exists()


@pytest.mark.parametrize("version, args", [
    ("1.18.0", []),
    ("1.17.8", ["--create-all"]),
    ("1.18.1", ["--create-all"]),
    ("1.20.0", ["--create-all"]),
])
def test_the_stand_in_accepts_the_arguments_the_rule_gives(tmp_path, version, args):
    assert tv.dev_char_symlinks_args(f"{version}-1") == BASE + args
    proc = run_standin(tmp_path, version, *BASE, *args, f"--dev-char-path={tmp_path / 'char'}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_the_stand_in_refuses_an_unknown_flag_and_keeps_its_version_line(tmp_path):
    proc = run_standin(tmp_path, "1.20.0", *BASE, "--watch")
    assert proc.returncode == 1
    assert "flag provided but not defined: -watch" in proc.stderr
    version = run_standin(tmp_path, "1.20.0", "--version")
    assert version.stdout == "NVIDIA Container Toolkit CLI version 1.20.0 (stand-in)\n"
