"""Every rescue in gpuhost's roles ends by failing the host.

A block whose rescue succeeds lets Ansible count the host as fine and exit 0. gpuhost's
roles roll a host back in a rescue (the apt source, daemon.json) and must then still fail
it, so that the rollout gate counts it and the run exits non-zero.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
FAIL_ACTIONS = {"ansible.builtin.fail", "fail"}


def blocks_with_rescue(tasks, where):
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        if "rescue" in task:
            yield where, task
        for key in ("block", "rescue", "always"):
            yield from blocks_with_rescue(task.get(key), where)


def all_rescues():
    found = []
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        tasks = yaml.safe_load(path.read_text(encoding="utf-8"))
        found.extend(blocks_with_rescue(tasks, str(path.relative_to(ROLES))))
    return found


def test_the_roles_have_rescues_to_check():
    assert {where for where, _ in all_rescues()} >= {"apt_source/tasks/present.yml", "docker_daemon/tasks/apply.yml"}


@pytest.mark.parametrize("where, block", all_rescues(), ids=lambda v: v if isinstance(v, str) else v.get("name", "?"))
def test_rescue_ends_by_failing_the_host(where, block):
    last = block["rescue"][-1]
    action = next((key for key in last if key in FAIL_ACTIONS), None)
    assert action is not None, f"{where}: the rescue of '{block.get('name')}' ends with '{last.get('name')}', not a fail"
    assert "when" not in last, f"{where}: the rescue's fail must not be conditional"
