"""gpuhost provision shows what changes: the file diffs and the tasks that changed, per host.

The runs are real: ``gpuhost provision`` runs, through ansible-runner, a small stand-in for
site.yml (the real rollout gate, then copies of files into a temporary directory) on this
machine over ``ansible_connection: local``, under a host name long enough to be broken by a
narrow terminal. What the command prints and the JSON it writes are checked as a user sees
them: narrow and wide, in colour and plain.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from test_cli import write_inventory

from gpuhost_cli import paths, views
from gpuhost_cli.cli import _common
from gpuhost_cli.events import RunModel, diff_text, result_diffs

HOST = "gpu-node-17.rack4.dc2.example.internal"
SECRET = "hunter2-do-not-print"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# site.yml's shape: the hosts answer (preflight gate), one batch changes files, the final gate sums up.
SITE = """
- name: Reach every host
  hosts: gpu_hosts
  gather_facts: false
  tasks:
    - name: Rollout | Note that the host answered
      ansible.builtin.set_fact:
        gpuhost_rollout_reached: true
    - name: Rollout | Stop before any host changes when hosts did not answer
      gpuhost_rollout_gate:
        stage: preflight
      run_once: true

- name: Provision GPU container hosts
  hosts: gpu_hosts
  gather_facts: false
  serial: "{{ gpuhost_rollout_batches }}"
  pre_tasks:
    - name: Rollout | Check the batch before this one
      gpuhost_rollout_gate:
        stage: batch
        batches: "{{ gpuhost_rollout_batches }}"
      register: gate
      run_once: true
    - name: Rollout | Note the host's batch
      ansible.builtin.set_fact:
        gpuhost_rollout_batch: "{{ gate.batch }}"
  tasks:
    - name: Docker daemon | Write daemon.json
      ansible.builtin.copy:
        dest: "{{ gpuhost_test_dir }}/daemon.json"
        content: "{{ gpuhost_test_daemon | to_nice_json(indent=4) }}\\n"
        mode: "0644"
    - name: Secrets | Write the token
      ansible.builtin.copy:
        dest: "{{ gpuhost_test_dir }}/token"
        content: "token={{ gpuhost_test_secret }}\\n"
        mode: "0600"
      no_log: true
    - name: Apt | Write the sources
      ansible.builtin.copy:
        dest: "{{ gpuhost_test_dir }}/{{ item }}.sources"
        content: "Types: deb\\nURIs: https://{{ item }}.example.com\\n"
        mode: "0644"
      loop: [docker, nvidia]
    - name: Apt | Leave the pin alone
      ansible.builtin.copy:
        dest: "{{ gpuhost_test_dir }}/pin"
        content: "same\\n"
        mode: "0644"
    - name: Rollout | Note that the host is done
      ansible.builtin.set_fact:
        gpuhost_rollout_done: true

- name: Sum up the rollout
  hosts: gpu_hosts
  gather_facts: false
  tasks:
    - name: Rollout | Count the hosts done, failed, deferred and not reached
      gpuhost_rollout_gate:
        stage: final
      run_once: true
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """The stand-in site.yml where gpuhost provision looks for site.yml; its files' directory."""
    playbook = tmp_path / "site.yml"
    playbook.write_text(SITE, encoding="utf-8")
    real = paths.playbook
    monkeypatch.setattr(paths, "playbook", lambda name: playbook if name == "site" else real(name))
    files = tmp_path / "files"
    files.mkdir()
    (files / "daemon.json").write_text('{\n    "live-restore": true\n}\n', encoding="utf-8")
    (files / "pin").write_text("same\n", encoding="utf-8")
    (files / "pin").chmod(0o644)
    return files


@pytest.fixture
def inventory(tmp_path):
    return write_inventory(tmp_path / "an-inventory-directory-with-a-long-name" / "prod", {
        HOST: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}})


@pytest.fixture
def provision(cli, site, inventory, monkeypatch):
    """Run gpuhost provision on the stand-in site.yml; COLUMNS, NO_COLOR... as given."""

    def run(*args, **env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        # The console is made once per process: a new one reads this run's width and colour settings.
        monkeypatch.setattr(_common, "_console", None)
        extra = {"gpuhost_test_dir": str(site), "gpuhost_test_secret": SECRET,
                 "gpuhost_test_daemon": {"live-restore": True, "bip": "10.98.0.1/24"}}
        return cli("provision", "-i", inventory, "-e", json.dumps(extra), *args)

    return run


def lines_of(text):
    return [line.rstrip() for line in text.splitlines()]


# ---- The model: diffs from real ansible-runner events ---------------------------------------


def test_check_diff_json_carries_each_hosts_diffs_and_changes_nothing(provision, site):
    result = provision("--check", "--diff", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    host = data["hosts"][HOST]
    tasks = ["Docker daemon | Write daemon.json", "Secrets | Write the token", "Apt | Write the sources"]
    assert [d["task"] for d in host["diffs"]] == ["Docker daemon | Write daemon.json", "Apt | Write the sources",
                                                  "Apt | Write the sources"]
    daemon, docker, nvidia = host["diffs"]
    assert daemon["item"] is None
    assert (daemon["before_header"], daemon["after_header"]) == (str(site / "daemon.json"), str(site / "daemon.json"))
    assert daemon["diff"].splitlines() == [
        f"--- before: {site / 'daemon.json'}",
        f"+++ after: {site / 'daemon.json'}",
        "@@ -1,3 +1,4 @@",
        " {",
        '+    "bip": "10.98.0.1/24",',
        '     "live-restore": true',
        " }",
    ]
    assert (docker["item"], nvidia["item"]) == ("docker", "nvidia")
    assert docker["after_header"] == str(site / "docker.sources") and docker["before_header"] is None
    assert "+URIs: https://docker.example.com" in docker["diff"].splitlines()
    # The no_log task counts as changed, by name; nothing of what it writes is anywhere.
    # The list adds up to the count (a loop counts once, as Ansible counts it).
    assert host["changed_tasks"] == tasks and host["changed"] == 3
    assert SECRET not in result.stdout
    report = data["rollout"]["hosts"][HOST]
    assert report["changed_tasks"] == tasks and report["changed"] == 3
    assert json.loads(Path(data["report_file"]).read_text())["hosts"][HOST]["changed_tasks"] == tasks
    # --check: nothing was written.
    assert sorted(p.name for p in site.iterdir()) == ["daemon.json", "pin"]
    assert '"bip"' not in (site / "daemon.json").read_text()


def test_check_diff_text_lists_the_tasks_that_would_change_then_the_diffs(provision, site, inventory):
    result = provision("--check", "--diff", COLUMNS="160")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert not ANSI.search(out)  # not a terminal: plain text
    lines = lines_of(out)
    header = next(line for line in lines if line.lstrip().startswith("batch"))
    assert re.search(r"batch\s+host\s+status\s+would change\s+elapsed", header)
    assert re.search(rf"1\s+{re.escape(HOST)}\s+ok\s+3\s+", out)
    tasks_at = lines.index("Tasks that would change (check mode: nothing was changed):")
    assert lines[tasks_at + 1:tasks_at + 5] == [
        f"{HOST} (3 tasks):",
        "  • Docker daemon | Write daemon.json",
        "  • Secrets | Write the token",
        "  • Apt | Write the sources",
    ]
    diffs_at = lines.index("Diffs (check mode: what would change):")
    assert tasks_at < diffs_at
    assert lines[diffs_at + 1:diffs_at + 6] == [
        f"{HOST}:",
        "  task: Docker daemon | Write daemon.json",
        f"--- before: {site / 'daemon.json'}",
        f"+++ after: {site / 'daemon.json'}",
        "@@ -1,3 +1,4 @@",
    ]
    assert '+    "bip": "10.98.0.1/24",' in lines
    assert "  task: Apt | Write the sources (item nvidia)" in lines
    assert "+URIs: https://nvidia.example.com" in lines
    assert SECRET not in out
    # The report's path comes last, whole on its line.
    assert lines[-1].startswith(f"Report: {inventory / '.gpuhost' / 'rollouts'}/rollout-")
    assert lines[-1].endswith("-check.json")


def test_on_a_narrow_terminal_no_long_value_is_broken(provision, site, inventory):
    result = provision("--check", "--diff", COLUMNS="40")
    assert result.exit_code == 0, result.output
    lines = lines_of(result.stdout)
    # The table gives way to a block per host: the host's name whole on its own line.
    assert HOST in lines
    assert "  batch 1, status ok, would change 3," in lines
    # Wrapped at the space after the host's name.
    assert lines[lines.index("(3 tasks):") - 1] == HOST and f"{HOST}:" in lines
    assert "  • Docker daemon | Write daemon.json" in lines
    assert f"--- before: {site / 'daemon.json'}" in lines
    report = [line for line in lines if line.startswith("Report: ")]
    assert len(report) == 1 and Path(report[0][len("Report: "):]).is_file()
    assert str(inventory) in report[0]
    # A line runs past the width only for a value too long for any line (a path), never broken.
    for line in lines:
        assert len(line) <= 40 or max(len(word) for word in line.split()) > 30, line


def test_the_diffs_are_in_colour_on_a_terminal_and_plain_with_no_color(provision, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = provision("--check", "--diff", COLUMNS="160", FORCE_COLOR="1").stdout
    assert "\x1b[32m+" in coloured  # added lines green
    assert "\x1b[31m---" not in coloured and "\x1b[1m--- before:" in coloured  # headers bold, not red
    assert re.search(r"\x1b\[36m@@ -1,3 \+1,4 @@", coloured)
    assert ANSI.sub("", coloured).count('+    "bip": "10.98.0.1/24",') == 1
    plain = provision("--check", "--diff", COLUMNS="160", FORCE_COLOR="1", NO_COLOR="1").stdout
    assert not ANSI.search(plain)
    assert '+    "bip": "10.98.0.1/24",' in lines_of(plain)


def test_a_real_run_lists_what_changed_and_a_second_one_nothing(provision, site):
    result = provision("--diff", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["hosts"][HOST]["changed_tasks"] == [
        "Docker daemon | Write daemon.json", "Secrets | Write the token", "Apt | Write the sources"]
    assert len(data["hosts"][HOST]["diffs"]) == 3
    assert '"bip": "10.98.0.1/24"' in (site / "daemon.json").read_text()
    assert (site / "token").read_text() == f"token={SECRET}\n"
    assert SECRET not in result.stdout

    again = provision("--diff", COLUMNS="120")
    assert again.exit_code == 0, again.output
    assert "Tasks that changed" not in again.stdout and "Diffs" not in again.stdout
    assert re.search(rf"{re.escape(HOST)}\s+ok\s+0\s+", again.stdout)
    header = next(line for line in lines_of(again.stdout) if line.lstrip().startswith("batch"))
    assert "would change" not in header and re.search(r"\bchanged\b", header)


def test_a_real_run_says_changed_not_would_change(provision, site):
    result = provision(COLUMNS="160")
    assert result.exit_code == 0, result.output
    lines = lines_of(result.stdout)
    assert "Tasks that changed:" in lines and f"{HOST} (3 tasks):" in lines
    assert not any("would change" in line for line in lines)
    # Without --diff no module reports a diff.
    assert not any(line.startswith("Diffs") for line in lines)


# ---- Diff entries as Ansible writes them ----------------------------------------------------


def test_diff_text_is_ansibles_unified_diff():
    assert diff_text({"before": "a\nb\n", "after": "a\nc\n", "before_header": "/f", "after_header": "/f"}) == (
        "--- before: /f\n+++ after: /f\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n")
    # Mappings as sorted, indented JSON; a missing last newline marked.
    assert diff_text({"before": {"state": "absent"}, "after": {"state": "file"}}).splitlines() == [
        "--- before", "+++ after", "@@ -1,3 +1,3 @@", " {", '-    "state": "absent"', '+    "state": "file"', " }"]
    assert diff_text({"before": "x", "after": "y"}).splitlines()[-2:] == ["+y", "\\ No newline at end of file"]
    assert diff_text({"prepared": "--- a\n+++ b\n"}) == "--- a\n+++ b\n"
    assert diff_text({"dst_binary": 1}) == "diff skipped: destination file appears to be binary\n"
    assert diff_text({"before": "same\n", "after": "same\n"}) == ""


def test_only_changes_give_diffs_and_no_log_results_none():
    change = {"before": "a\n", "after": "b\n"}
    assert len(result_diffs({"changed": True, "diff": change})) == 1
    assert len(result_diffs({"changed": True, "diff": [change, {"prepared": "p"}]})) == 2
    assert result_diffs({"changed": False, "diff": change}) == []
    assert result_diffs({"changed": True, "diff": {"before": "a\n", "after": "a\n"}}) == []
    assert result_diffs({"changed": True, "diff": change, "_ansible_no_log": True}) == []
    assert result_diffs({"censored": "hidden", "changed": True}) == []
    items = {"changed": True, "results": [
        {"changed": True, "diff": change, "item": "one"},
        {"changed": True, "diff": change, "item": "two", "_ansible_no_log": True},
        {"changed": False, "diff": change, "item": "three"}]}
    assert [d["item"] for d in result_diffs(items)] == ["one"]
    assert result_diffs("not a result") == [] and result_diffs({"changed": True, "diff": "text"}) == []


def test_two_tasks_of_one_name_are_both_listed():
    def ok(uuid, changed=True):
        return {"event": "runner_on_ok", "stdout": "", "event_data": {
            "host": "gpu1", "task": "Docker | Restart", "task_uuid": uuid, "res": {"changed": changed}}}

    model = RunModel.from_events([ok("a"), ok("b"), ok("a"), ok("c", changed=False)])
    assert model.hosts["gpu1"].changed_tasks == ["Docker | Restart", "Docker | Restart"]


def test_hosts_with_the_same_changed_tasks_share_one_list():
    lines = views.render_text(views.changed_task_lines(
        {"gpu1": ["a", "b"], "gpu2": ["a", "b"], "gpu3": ["a"], "gpu4": []}), width=80).splitlines()
    assert lines == ["", "Tasks that changed:", "gpu1, gpu2 (2 tasks):", "  • a", "  • b", "gpu3 (1 task):", "  • a"]
    assert views.changed_task_lines({"gpu1": []}) == []
    assert views.diff_lines({"gpu1": []}) == []


def test_a_report_without_changed_tasks_still_renders():
    report = {"check": False, "hosts": {"gpu1": {"status": "ok", "batch": 1, "changed": 2, "elapsed_s": 1.0}},
              "counts": {"ok": 1, "failed": 0, "unreachable": 0, "deferred": 0, "not_reached": 0},
              "batches_requested": [1], "max_fail_percentage": 0}
    text = views.render_text([views.rollout_table(report)])
    assert "gpu1" in text and "Tasks that" not in text


# ---- gpuhost's own modules report their diffs -----------------------------------------------


MODULES_PLAY = """
- name: gpuhost's modules in diff mode
  hosts: all
  gather_facts: false
  tasks:
    - name: Docker daemon | Merge daemon.json
      docker_daemon_config:
        path: "{{ dir }}/daemon.json"
        settings: {bip: 10.98.0.1/24}
        unit_paths: []
        validate_with_dockerd: never
    - name: Toolkit | Set the runtime's mode
      nvidia_runtime_config:
        path: "{{ dir }}/config.toml"
        settings: {nvidia-container-runtime: {mode: cdi}}
    - name: Apt | Install NVIDIA's signing key
      apt_signing_key:
        src: "{{ key }}"
        fingerprint: "{{ fingerprint }}"
        dest: "{{ dir }}/nvidia.gpg"
    - name: Toolkit | Generate the CDI specification
      nvidia_cdi_spec: "{{ cdi }}"
"""


def test_gpuhosts_modules_report_a_diff_of_each_file_they_would_change(tmp_path):
    from test_nvidia_cdi_spec import DRIVER, Host

    from gpuhost_cli import runner

    files = tmp_path / "files"
    files.mkdir()
    (files / "daemon.json").write_text('{\n    "live-restore": true\n}\n')
    (files / "config.toml").write_text('[nvidia-container-runtime]\nmode = "auto"\n')
    cdi = Host(tmp_path / "cdi").set_driver(DRIVER)
    playbook = tmp_path / "modules.yml"
    playbook.write_text(MODULES_PLAY)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"node": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    keys = Path(__file__).resolve().parents[2] / "tests" / "harness" / "mirror" / "keys"
    result = runner.run_playbook(playbook, inventory, check=True, diff=True, extravars={
        "dir": str(files), "key": str(keys / "nvidia-standin.public.asc"),
        "fingerprint": "494426F3C91F21FBB361113F8292C6FEF68A3170", "cdi": cdi.params()})
    assert result.rc == 0, result.stdout[-3000:]
    host = result.model.hosts["node"]
    assert host.changed_tasks == ["Docker daemon | Merge daemon.json", "Toolkit | Set the runtime's mode",
                                  "Apt | Install NVIDIA's signing key", "Toolkit | Generate the CDI specification"]
    diffs = {d["task"]: d for d in host.diffs}
    assert set(diffs) == set(host.changed_tasks)
    assert diffs["Docker daemon | Merge daemon.json"]["after_header"] == str(files / "daemon.json")
    assert '+    "bip": "10.98.0.1/24"' in diffs["Docker daemon | Merge daemon.json"]["diff"].splitlines()[-2]
    assert '-mode = "auto"' in diffs["Toolkit | Set the runtime's mode"]["diff"].splitlines()
    assert '+mode = "cdi"' in diffs["Toolkit | Set the runtime's mode"]["diff"].splitlines()
    key_diff = diffs["Apt | Install NVIDIA's signing key"]["diff"]
    assert "fingerprint: 494426F3C91F21FBB361113F8292C6FEF68A3170" in key_diff
    assert diffs["Toolkit | Generate the CDI specification"]["after_header"] == str(cdi.spec)
    assert any(line.startswith("+") for line in diffs["Toolkit | Generate the CDI specification"]["diff"].splitlines())
    # --check: nothing was written.
    assert sorted(p.name for p in files.iterdir()) == ["config.toml", "daemon.json"]
    assert not cdi.spec.exists()
