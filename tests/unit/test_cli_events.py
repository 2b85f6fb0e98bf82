"""The per-host run model (gpuhost_cli.events) fed with events shaped like ansible-runner's.

The dicts below carry what ansible-runner's awx_display callback writes for each event
(see ansible_runner/display_callback/callback/awx_display.py): the event name, a counter,
"created" (ISO time), stdout, and event_data with host, task, task_action, res,
ignore_errors, and, for playbook_on_stats, the per-host count maps and artifact_data.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from gpuhost_cli import views
from gpuhost_cli.events import HostRun, RunModel, result_message

T0 = datetime(2025, 3, 1, 10, 0, 0)
_counter = itertools.count(1)


def ev(event, host=None, task=None, res=None, at=0.0, stdout="", action="command", **data):
    """One ansible-runner event; ``at`` is seconds after T0."""
    event_data = {"playbook": "site.yml", "play": "Provision GPU container hosts", "play_pattern": "gpu_hosts"}
    if host is not None:
        event_data.update(host=host, remote_addr=f"{host}.invalid")
    if task is not None:
        event_data.update(task=task, task_action=action, task_path=f"/roles/x/tasks/main.yml:{next(_counter)}")
    if res is not None:
        event_data["res"] = res
    event_data.update(data)
    return {
        "event": event,
        "uuid": f"00000000-0000-0000-0000-{next(_counter):012d}",
        "counter": next(_counter),
        "stdout": stdout,
        "start_line": 0,
        "end_line": 0,
        "created": (T0 + timedelta(seconds=at)).isoformat(),
        "pid": 4242,
        "event_data": event_data,
    }


def stats(**maps):
    data = {key: maps.get(key, {}) for key in
            ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")}
    data["artifact_data"] = maps.get("artifact_data", {})
    return ev("playbook_on_stats", **data)


def run(*events, keep=()):
    return RunModel.from_events(events, keep_results=keep)


def test_ok_changed_skipped_and_the_current_task():
    model = RunModel()
    model.handle(ev("playbook_on_start"))
    model.handle(ev("playbook_on_play_start", name="Provision", pattern="gpu_hosts"))
    model.handle(ev("runner_on_start", "gpu1", "Docker | Install", at=1))
    assert model.hosts["gpu1"].task == "Docker | Install"
    assert model.hosts["gpu1"].status == "running"
    model.handle(ev("runner_on_ok", "gpu1", "Docker | Install", {"changed": True}, at=3))
    model.handle(ev("runner_on_start", "gpu1", "Docker | Start", at=3))
    model.handle(ev("runner_on_ok", "gpu1", "Docker | Start", {"changed": False}, at=4))
    model.handle(ev("runner_on_start", "gpu1", "Docker | Hold", at=4))
    model.handle(ev("runner_on_skipped", "gpu1", "Docker | Hold", at=4.5))
    host = model.hosts["gpu1"]
    assert (host.ok, host.changed, host.skipped, host.failed) == (2, 1, 1, 0)
    assert host.task == "Docker | Hold"
    assert host.elapsed == pytest.approx(3.5)

    model.handle(stats(ok={"gpu1": 2}, changed={"gpu1": 1}, skipped={"gpu1": 1}, processed={"gpu1": 1}))
    assert host.done and host.task is None
    assert host.status == "changed"
    assert model.ok


def test_handle_returns_true_so_ansible_runner_keeps_the_event():
    assert RunModel().handle(ev("runner_on_ok", "gpu1", "t", {})) is True
    assert RunModel().handle({"event": "something_new"}) is True


def test_first_error_is_the_msg_of_the_first_failed_result_not_ignored():
    model = run(
        ev("runner_on_start", "gpu1", "Probe", at=0),
        ev("runner_on_failed", "gpu1", "Probe", {"msg": "probe failed", "rc": 1}, at=1, ignore_errors=True),
        ev("runner_on_start", "gpu1", "Docker | Install", at=1),
        ev("runner_on_failed", "gpu1", "Docker | Install",
           {"msg": "No package matching 'docker-ce' is available", "changed": False}, at=2, ignore_errors=None),
        stats(ok={"gpu1": 1}, failures={"gpu1": 1}, ignored={"gpu1": 1}),
    )
    host = model.hosts["gpu1"]
    assert host.error == "No package matching 'docker-ce' is available"
    assert host.error_task == "Docker | Install"
    assert (host.failed, host.ignored) == (1, 1)
    assert host.status == "failed"
    assert not model.ok
    assert model.failed_hosts() == [host]


def test_unreachable_host_keeps_ansibles_message_without_the_lead():
    msg = ("Task failed: Failed to connect to the host via ssh: ssh: Could not resolve hostname "
           "gpu1.invalid: Name or service not known")
    model = run(
        ev("runner_on_start", "gpu1", "Gathering Facts", action="gather_facts", at=0),
        ev("runner_on_unreachable", "gpu1", "Gathering Facts", {"unreachable": True, "msg": msg, "changed": False},
           action="gather_facts", at=0.4),
        stats(ok={"gpu1": 2}, dark={"gpu1": 1}),
    )
    host = model.hosts["gpu1"]
    assert host.status == "unreachable"
    assert host.error.startswith("Failed to connect to the host via ssh")
    assert "gpu1.invalid" in host.error
    assert host.unreachable == 1 and host.ok == 2


def test_deferred_host_counts_as_deferred_not_failed():
    deferred = ("DEFERRED gpu2: applying data-root to /etc/docker/daemon.json needs a restart of Docker, "
                "and 2 containers run with live-restore off. Nothing was changed on this host.")
    model = run(
        ev("runner_on_start", "gpu2", "Docker daemon | Report a host whose restart would stop running containers"),
        ev("runner_on_ok", "gpu2", "Docker daemon | Report a host whose restart would stop running containers",
           {"msg": deferred, "changed": False, "_ansible_verbose_always": True}, action="ansible.builtin.debug"),
        stats(ok={"gpu2": 12}, processed={"gpu2": 1}),
    )
    host = model.hosts["gpu2"]
    assert host.status == "deferred"
    assert host.deferred.startswith("gpu2: applying data-root")
    assert host.failed == 0 and host.succeeded
    assert model.ok
    row = views.summary_rows(model)[0]
    assert row[0] == "gpu2" and row[6] == "yes" and "needs a restart" in row[8]


def test_item_failure_gives_the_first_failed_items_message():
    model = run(
        ev("runner_on_start", "gpu1", "Docker users | Add the accounts", action="ansible.builtin.user"),
        ev("runner_item_on_ok", "gpu1", "Docker users | Add the accounts", {"item": "alice", "changed": True}),
        ev("runner_item_on_failed", "gpu1", "Docker users | Add the accounts",
           {"item": "bob", "msg": "usermod: user 'bob' does not exist"}),
        ev("runner_item_on_failed", "gpu1", "Docker users | Add the accounts",
           {"item": "carol", "msg": "usermod: user 'carol' does not exist"}),
        ev("runner_on_failed", "gpu1", "Docker users | Add the accounts",
           {"msg": "One or more items failed", "results": []}),
    )
    assert model.hosts["gpu1"].error == "usermod: user 'bob' does not exist"


def test_loop_result_without_item_events_uses_the_first_failed_result():
    res = {"msg": "One or more items failed", "results": [
        {"item": "a", "failed": False}, {"item": "b", "failed": True, "msg": "b is broken"}]}
    assert result_message(res) == "b is broken"


def test_a_rescued_failure_is_not_the_hosts_error():
    model = run(
        ev("runner_on_start", "gpu1", "Docker daemon | Wait until Docker runs with the new configuration"),
        ev("runner_on_failed", "gpu1", "Docker daemon | Wait until Docker runs with the new configuration",
           {"msg": "timed out"}),
        ev("runner_on_start", "gpu1", "Docker daemon | Put the previous daemon.json back"),
        ev("runner_on_ok", "gpu1", "Docker daemon | Put the previous daemon.json back", {"changed": True}),
        ev("runner_on_failed", "gpu1", "Docker daemon | Report that Docker did not take the new configuration",
           {"msg": "gpu1: Docker did not take the new /etc/docker/daemon.json"}),
    )
    host = model.hosts["gpu1"]
    assert host.rescued == 1 and host.failed == 1
    assert host.error == "gpu1: Docker did not take the new /etc/docker/daemon.json"


def test_recap_counts_are_authoritative_and_add_hosts_without_events():
    model = run(
        ev("runner_on_ok", "gpu1", "t", {"changed": True}),
        stats(ok={"gpu1": 7, "gpu3": 4}, changed={"gpu1": 2}, processed={"gpu1": 1, "gpu3": 1},
              artifact_data={"gpuhost_render": {"x": 1}}),
    )
    assert model.hosts["gpu1"].ok == 7 and model.hosts["gpu1"].changed == 2
    assert model.hosts["gpu3"].ok == 4 and model.hosts["gpu3"].done
    assert model.artifact_data == {"gpuhost_render": {"x": 1}}
    assert model.finished


def test_set_stats_results_are_kept_per_host():
    checks = [{"name": "Docker answers", "status": "passed", "detail": "Docker 27.5.1"}]
    model = run(
        ev("runner_on_ok", "gpu1", "Verify | Report the results",
           {"changed": False, "ansible_stats": {"data": {"gpuhost_verify": checks}, "per_host": True,
                                                "aggregate": False}},
           action="ansible.builtin.set_stats"),
        ev("runner_on_ok", "gpu2", "Verify | Report the results",
           {"changed": False, "ansible_stats": {"data": {"gpuhost_verify": []}, "per_host": True, "aggregate": False}},
           action="ansible.builtin.set_stats"),
    )
    assert model.hosts["gpu1"].stats == {"gpuhost_verify": checks}
    assert model.hosts["gpu2"].stats == {"gpuhost_verify": []}


def test_aggregated_set_stats_merge():
    model = run(
        ev("runner_on_ok", "gpu1", "s", {"ansible_stats": {"data": {"a": {"x": 1}, "b": [1]}, "aggregate": True}}),
        ev("runner_on_ok", "gpu1", "s", {"ansible_stats": {"data": {"a": {"y": 2}, "b": [2]}, "aggregate": True}}),
    )
    assert model.hosts["gpu1"].stats == {"a": {"x": 1, "y": 2}, "b": [1, 2]}


def test_results_of_chosen_modules_are_kept():
    facts = {"gpu": {"summary": "no NVIDIA GPU found"}, "changed": False}
    model = run(
        ev("runner_on_ok", "gpu1", "gpu_facts", facts, action="gpu_facts"),
        ev("runner_on_ok", "gpu1", "other", {"x": 1}, action="ping"),
        keep=("gpu_facts",),
    )
    assert model.hosts["gpu1"].results == {"gpu_facts": facts}


def test_no_hosts_matched_from_ansibles_warning_and_error():
    model = run(
        ev("verbose", stdout="\x1b[1;35m[WARNING]: Could not match supplied host pattern, ignoring: gpu9\x1b[0m"),
        ev("verbose", stdout="\x1b[0;31m[ERROR]: Specified inventory, host pattern and/or --limit leaves us "
                             "with no hosts to target.\x1b[0m"),
    )
    assert model.unmatched_patterns == ["gpu9"]
    assert model.no_hosts_matched
    assert not model.hosts and not model.ok
    assert model.errors() == ["Specified inventory, host pattern and/or --limit leaves us with no hosts to target."]


def test_inventory_parse_errors_are_kept_with_where():
    lines = [
        "[WARNING]: Failed to parse inventory with 'auto' plugin: YAML parsing failed: did not find expected node",
        "Origin: /inv/hosts.yml:3:1",
        "[WARNING]: Unable to parse /inv/hosts.yml as an inventory source",
    ]
    model = run(*(ev("verbose", stdout=line) for line in lines))
    assert model.inventory_problem() == "YAML parsing failed: did not find expected node (/inv/hosts.yml:3:1)"
    assert run(ev("verbose", stdout=lines[2])).inventory_problem() == "Unable to parse /inv/hosts.yml as an inventory source"
    assert run(ev("verbose", stdout="PLAY [x]")).inventory_problem() is None


def test_play_without_hosts_is_recorded():
    model = run(
        ev("playbook_on_play_start", name="Provision GPU container hosts", pattern="gpu_hosts"),
        ev("playbook_on_no_hosts_matched"),
    )
    assert model.plays_without_hosts == ["gpu_hosts"]


@pytest.mark.parametrize(
    ("res", "expected"),
    [
        ({"msg": "MODULE FAILURE\nSee stdout/stderr for the exact error", "module_stderr": "Traceback\nKeyError: 'x'\n",
          "rc": 1}, "MODULE FAILURE: Traceback | KeyError: 'x' (rc 1)"),
        ({"msg": "non-zero return code", "stderr": "E: Unable to locate package foo", "rc": 100},
         "non-zero return code: E: Unable to locate package foo (rc 100)"),
        ({"rc": 3, "stderr": ""}, "rc 3"),
        ({"msg": "Task failed: Action failed: host gpu1: bad"}, "host gpu1: bad"),
        ({}, "failed (no message)"),
        (None, "failed (no details)"),
        ({"msg": "The following modules failed to execute: ansible.legacy.setup.",
          "failed_modules": {"ansible.legacy.setup": {"msg": "container gpu1 is not running", "failed": True}}},
         "ansible.legacy.setup: container gpu1 is not running"),
    ],
)
def test_result_message(res, expected):
    assert result_message(res) == expected


def test_elapsed_is_none_before_the_first_task_and_formats():
    assert HostRun("h").elapsed is None
    assert views.elapsed_text(None) == ""
    assert views.elapsed_text(12.34) == "12.3s"
    assert views.elapsed_text(245) == "4m05s"
    assert views.elapsed_text(3720) == "1h02m"


def test_to_dict_has_every_field_the_json_output_promises():
    model = run(ev("runner_on_start", "gpu1", "t", at=0), ev("runner_on_ok", "gpu1", "t", {"changed": True}, at=2),
                stats(ok={"gpu1": 1}, changed={"gpu1": 1}))
    assert model.to_dict() == {"gpu1": {
        "status": "changed", "ok": 1, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 0, "rescued": 0,
        "ignored": 0, "deferred": False, "deferred_message": None, "elapsed": 2.0, "error": None,
        "error_task": None, "changed_tasks": ["t"], "diffs": [], "plan": None}}


def test_the_plan_and_the_changed_tasks_are_kept_per_host():
    plan = {"changed": False, "needs_work": ["docker_daemon"], "converged": ["docker"],
            "drift": {"docker_daemon": ["file:/etc/docker/daemon.json: sha256=b, was sha256=a"]}}
    model = run(ev("runner_on_ok", "gpu1", "Plan | Compare", plan, action="gpuhost_host_state", at=0),
                ev("runner_on_ok", "gpu1", "Docker daemon | Merge", {"changed": True}, at=1),
                ev("runner_on_ok", "gpu1", "Docker daemon | Read", {"changed": False}, at=2),
                ev("runner_on_ok", "gpu2", "Plan | Compare", {**plan, "needs_work": [], "drift": {}},
                   action="gpuhost_host_state", at=0),
                stats(ok={"gpu1": 3, "gpu2": 1}, changed={"gpu1": 1}))
    hosts = model.to_dict()
    assert hosts["gpu1"]["plan"] == {"needs_work": ["docker_daemon"], "drift": plan["drift"]}
    assert hosts["gpu1"]["changed_tasks"] == ["Docker daemon | Merge"]
    assert hosts["gpu2"]["plan"] == {"needs_work": [], "drift": {}}
    assert hosts["gpu2"]["changed_tasks"] == []


def test_views_show_progress_and_summary():
    model = run(
        ev("runner_on_start", "gpu1", "Docker | Install", at=0),
        ev("runner_on_start", "gpu2", "Gathering Facts", at=0),
        ev("runner_on_unreachable", "gpu2", "Gathering Facts", {"msg": "Failed to connect to the host via ssh"}, at=1),
    )
    text = views.render_text([views.progress_table(model, "gpuhost provision")])
    assert "Docker | Install" in text and "running" in text and "unreachable" in text
    model.handle(stats(ok={"gpu1": 3}, changed={"gpu1": 1}, dark={"gpu2": 1}))
    text = views.render_text([views.summary_table(model, "gpuhost provision")])
    assert "gpu2 (first error): Failed to connect to the host via ssh" in text
    for header in ("host", "ok", "changed", "failed", "unreachable", "deferred", "elapsed"):
        assert header in text
