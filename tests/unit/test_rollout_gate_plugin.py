"""The rollout gate inside real Ansible runs, and the rollout report built from their events.

A small playbook with the same rollout plays as playbooks/provision.yml (reach, the plan's
groups, batches of the hosts with work with the gate before each, a summary) runs against
six local hosts whose only work is a task that fails on some of them; a host made "lost" is reached over SSH at a port where
nothing listens, so Ansible reports it unreachable, as it does a host that went down.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import pytest
import yaml

from gpuhost_cli import rollout_report, runner

HOSTS = [f"h{i}" for i in range(1, 7)]

PLAYBOOK = """\
- name: Reach every host
  hosts: gpu_hosts
  gather_facts: false
  vars:
    ansible_connection: "{{ 'ssh' if inventory_hostname in (lost_at_start | default([])) else 'local' }}"
  tasks:
    - name: Rollout | Touch the host
      ansible.builtin.ping:
    - name: Rollout | Note that the host answered
      ansible.builtin.set_fact:
        gpuhost_rollout_reached: true
    - name: Rollout | Stop before any host changes when hosts did not answer
      gpuhost_rollout_gate:
        stage: preflight
        max_fail_percentage: "{{ gpuhost_rollout_max_fail_percentage | default(0) }}"
      run_once: true
      any_errors_fatal: true
    # As the converged-host plan does: a host with nothing to do is done without a batch.
    - name: Plan | Note the hosts with nothing to do
      ansible.builtin.set_fact:
        gpuhost_rollout_done: "{{ inventory_hostname in (converged | default([])) }}"
    - name: Plan | Group the hosts that have work
      ansible.builtin.group_by:
        key: "{{ 'gpuhost_converged' if inventory_hostname in (converged | default([])) else 'gpuhost_needs_work' }}"
      changed_when: false

- name: Provision
  hosts: gpu_hosts:&gpuhost_needs_work
  gather_facts: false
  vars:
    __gpuhost_rollout_batches: "{{ gpuhost_rollout_batches | default([1, '25%', '100%']) }}"
    ansible_connection: "{{ 'ssh' if inventory_hostname in (lost | default([])) else 'local' }}"
  serial: "{{ __gpuhost_rollout_batches }}"
  pre_tasks:
    - name: Rollout | Check the batch before this one
      gpuhost_rollout_gate:
        stage: batch
        max_fail_percentage: "{{ gpuhost_rollout_max_fail_percentage | default(0) }}"
        batches: "{{ __gpuhost_rollout_batches }}"
      register: __gpuhost_rollout_gate
      run_once: true
      any_errors_fatal: true
    - name: Rollout | Note the host's batch
      ansible.builtin.set_fact:
        gpuhost_rollout_batch: "{{ __gpuhost_rollout_gate.batch }}"
  tasks:
    - name: Work | Change something
      ansible.builtin.command: "true"
      changed_when: true
    - name: Work | Fail where asked
      ansible.builtin.fail:
        msg: "broken on {{ inventory_hostname }}"
      when: inventory_hostname in (fail | default([]))
    # As the gpuhost_verify role reports a registry mirror that does not answer: a warning.
    - name: Work | Warn where asked
      ansible.builtin.set_stats:
        data:
          gpuhost_verify:
            - {name: Docker answers, status: passed, detail: Docker 26.1.5}
            - {name: "registry mirror https://old-mirror.example/", status: warning,
               detail: "https://old-mirror.example/ is dead: connection refused"}
        per_host: true
        aggregate: false
      when: inventory_hostname in (warn | default([]))
    - name: Work | Defer where asked
      ansible.builtin.set_fact:
        docker_daemon_deferred: true
      when: inventory_hostname in (defer | default([]))
    - name: Work | Leave a deferred host
      ansible.builtin.meta: end_host
      when: inventory_hostname in (defer | default([]))
  post_tasks:
    - name: Rollout | Note that the host is done
      ansible.builtin.set_fact:
        gpuhost_rollout_done: true

- name: Sum up the rollout
  hosts: gpu_hosts
  gather_facts: false
  tasks:
    - name: Rollout | Count the hosts
      gpuhost_rollout_gate:
        stage: final
      register: __gpuhost_rollout_summary
      run_once: true
"""


@pytest.fixture
def rollout(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"gpu_hosts": {
        "hosts": {h: {} for h in HOSTS},
        "vars": {"ansible_python_interpreter": sys.executable, "ansible_host": "127.0.0.1", "ansible_port": 9,
                 "ansible_ssh_common_args": "-o ConnectTimeout=3 -o StrictHostKeyChecking=no"}}}}}))
    playbook = tmp_path / "rollout.yml"
    playbook.write_text(PLAYBOOK)

    def run(batches=(1, "25%", "100%"), max_fail=0, **variables):
        started = datetime.now(timezone.utc)
        extravars = {"gpuhost_rollout_batches": list(batches), "gpuhost_rollout_max_fail_percentage": max_fail,
                     **variables}
        result = runner.run_playbook(playbook, inventory, extravars=extravars)
        report = rollout_report.build(result.model, inventory=str(inventory), batches=list(batches),
                                      max_fail_percentage=max_fail, check=False, started=started,
                                      ended=datetime.now(timezone.utc), rc=result.rc)
        return result, report

    return run


def statuses(report):
    return {h: v["status"] for h, v in report["hosts"].items()}


def test_every_batch_in_order_when_nothing_fails(rollout):
    result, report = rollout()
    assert result.rc == 0
    assert report["outcome"] == "completed"
    assert [b["hosts"] for b in report["batches"]] == [["h1"], ["h2"], ["h3", "h4", "h5", "h6"]]
    assert [b["number"] for b in report["batches"]] == [1, 2, 3]
    assert all(a["ended"] <= b["first_task"] for a, b in zip(report["batches"], report["batches"][1:]))
    assert set(statuses(report).values()) == {"ok"}
    assert all(h["changed"] == 1 for h in report["hosts"].values())
    assert report["summary"] == "Rollout: 6 of 6 hosts done."
    assert list(report["hosts"]) == HOSTS


def test_a_verify_warning_does_not_stop_the_rollout_and_is_reported(rollout):
    from gpuhost_cli import views

    result, report = rollout(warn=["h1", "h4"])
    assert result.rc == 0
    assert report["outcome"] == "completed"
    assert set(statuses(report).values()) == {"ok"}
    warning = "registry mirror https://old-mirror.example/: https://old-mirror.example/ is dead: connection refused"
    assert {h: v["warnings"] for h, v in report["hosts"].items()} == {
        h: [warning] if h in ("h1", "h4") else [] for h in HOSTS}
    text = " ".join(views.render_text([views.rollout_table(report)]).split())
    assert f"h1 (warning): {warning}" in text
    assert f"h4 (warning): {warning}" in text
    assert "h2 (warning)" not in text


def test_a_failed_canary_stops_the_rollout(rollout):
    result, report = rollout(fail=["h1"])
    assert result.rc != 0
    assert report["outcome"] == "stopped"
    assert statuses(report) == {"h1": "failed", **{h: "not_reached" for h in HOSTS[1:]}}
    assert report["hosts"]["h1"]["error"] == "broken on h1"
    assert report["hosts"]["h1"]["error_task"] == "Work | Fail where asked"
    assert report["hosts"]["h2"]["error"] is None  # the gate stopped it; it did not fail
    assert report["stopped"].startswith("Rollout stopped after batch 1: 1 of 1 hosts failed")
    assert rollout_report.resume_hosts(report) == HOSTS


def test_a_canary_lost_mid_rollout_stops_it(rollout):
    result, report = rollout(lost=["h1"])
    assert result.rc != 0
    assert report["outcome"] == "stopped" or report["outcome"] == "failed"
    assert statuses(report) == {"h1": "unreachable", **{h: "not_reached" for h in HOSTS[1:]}}
    assert report["hosts"]["h1"]["error"]


def test_a_host_lost_before_the_rollout_stops_it_before_any_change(rollout):
    result, report = rollout(lost_at_start=["h3"])
    assert result.rc != 0
    assert report["outcome"] == "stopped"
    assert report["batches"] == []
    assert statuses(report)["h3"] == "unreachable"
    assert {statuses(report)[h] for h in HOSTS if h != "h3"} == {"not_reached"}
    assert all(report["hosts"][h]["changed"] == 0 for h in HOSTS)
    assert report["stopped"].startswith("Rollout stopped before any host changed: 1 of 6 hosts could not be reached")


def test_a_lost_host_in_a_later_batch_counts_as_failed(rollout):
    # Ansible's own max_fail_percentage ignores lost hosts; the gate does not.
    result, report = rollout(batches=[1, 2, "100%"], lost=["h3"])
    assert result.rc != 0
    assert report["outcome"] == "stopped"
    assert statuses(report) == {"h1": "ok", "h2": "ok", "h3": "unreachable",
                                "h4": "not_reached", "h5": "not_reached", "h6": "not_reached"}
    assert report["batches"][1]["failed"] == ["h3"]


def test_a_failure_within_the_budget_lets_the_rollout_finish_and_names_the_host(rollout):
    result, report = rollout(batches=[1, 2, "100%"], max_fail=50, fail=["h3"])
    assert result.rc != 0
    assert report["outcome"] == "failed" and report["stopped"] is None
    assert statuses(report)["h3"] == "failed"
    assert [s for h, s in statuses(report).items() if h != "h3"] == ["ok"] * 5
    assert "Failed, rolled back or lost: h3." in report["summary"]
    assert rollout_report.resume_hosts(report) == ["h3"]


def test_a_deferred_host_is_reported_and_does_not_stop_the_rollout(rollout):
    result, report = rollout(defer=["h1"])
    assert result.rc == 0
    assert report["outcome"] == "completed"
    assert statuses(report)["h1"] == "deferred"
    assert report["counts"]["deferred"] == 1 and report["counts"]["ok"] == 5
    assert "--limit h1 -e docker_daemon_allow_disruption=true" in report["finish_deferred"]
    assert rollout_report.resume_hosts(report) == []



# ---- Hosts the plan found nothing to do on -----------------------------------------------

def test_converged_hosts_take_no_batch_slot(rollout):
    result, report = rollout(converged=["h2", "h5"])
    assert result.rc == 0 and report["outcome"] == "completed"
    assert [b["hosts"] for b in report["batches"]] == [["h1"], ["h3"], ["h4", "h6"]]
    assert statuses(report) == {"h1": "ok", "h2": "converged", "h3": "ok", "h4": "ok", "h5": "converged", "h6": "ok"}
    assert report["hosts"]["h2"]["batch"] is None and report["hosts"]["h2"]["changed"] == 0
    assert report["counts"] == {"ok": 4, "converged": 2, "failed": 0, "unreachable": 0, "deferred": 0,
                                "not_reached": 0}
    assert report["summary"] == "Rollout: 6 of 6 hosts done (2 already converged, nothing to do)."
    assert rollout_report.resume_hosts(report) == []


def test_a_converged_fleet_runs_no_batch(rollout):
    result, report = rollout(converged=HOSTS)
    assert result.rc == 0 and report["outcome"] == "completed"
    assert report["batches"] == [] and report["stopped"] is None
    assert set(statuses(report).values()) == {"converged"}
    assert report["counts"]["converged"] == 6 and report["counts"]["ok"] == 0
    assert report["summary"] == "Rollout: 6 of 6 hosts done (6 already converged, nothing to do)."
    assert rollout_report.resume_hosts(report) == []
    # The plan's empty group is no pattern the inventory failed to match.
    assert result.model.unmatched_patterns == []


def test_a_rollout_the_gate_stops_leaves_converged_hosts_done(rollout):
    result, report = rollout(batches=[2, "100%"], fail=["h1"], converged=["h4"])
    assert result.rc != 0 and report["outcome"] == "stopped"
    assert statuses(report) == {"h1": "failed", "h2": "ok", "h3": "not_reached", "h4": "converged",
                                "h5": "not_reached", "h6": "not_reached"}
    assert "h4" not in report["stopped"]
    assert rollout_report.resume_hosts(report) == ["h1", "h3", "h5", "h6"]


def test_a_rollout_ansible_stops_leaves_converged_hosts_done(rollout):
    # Every host of the canary batch failed: Ansible ends the run, no final gate counts.
    result, report = rollout(fail=["h1"], converged=["h2"])
    assert result.rc != 0 and report["outcome"] == "stopped"
    assert statuses(report) == {"h1": "failed", "h2": "converged", **{h: "not_reached" for h in HOSTS[2:]}}
    assert "Not rolled out: h3, h4, h5, h6." in report["stopped"]
    assert "--limit h1,h3,h4,h5,h6" in report["stopped"]
    assert rollout_report.resume_hosts(report) == ["h1", "h3", "h4", "h5", "h6"]
