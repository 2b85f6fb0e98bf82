"""Action plugin gpuhost_rollout_gate: stop a batched rollout when a batch failed.

Its documentation (options, return values) is in modules/gpuhost_rollout_gate.py, where
ansible-doc reads it.
"""

from __future__ import annotations

import os
import sys

from ansible.plugins.action import ActionBase

try:
    from gpuhost_cli import rollout
except ImportError:
    # Loaded by Ansible's plugin loader from a plain checkout: the repository root that
    # holds gpuhost_cli/ is three directories above this file's directory.
    _ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    for _name in [m for m in sys.modules if m == "gpuhost_cli" or m.startswith("gpuhost_cli.")]:
        del sys.modules[_name]
    from gpuhost_cli import rollout


STAGES = ("preflight", "batch", "final")


class ActionModule(ActionBase):
    """Decide on the controller whether the rollout goes on."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("stage", "max_fail_percentage", "batches"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        stage = args.get("stage")
        if stage not in STAGES:
            result.update(failed=True, msg=f"gpuhost_rollout_gate: stage must be one of {', '.join(STAGES)}, got {stage!r}")
            return result
        try:
            max_fail = rollout.parse_max_fail(args.get("max_fail_percentage", rollout.DEFAULT_MAX_FAIL_PERCENTAGE))
            batches = rollout.parse_batches(args["batches"]) if args.get("batches") is not None else None
        except rollout.RolloutError as exc:
            result.update(failed=True, msg=str(exc))
            return result

        targets = [str(h) for h in task_vars.get("ansible_play_hosts_all", [])]
        hostvars = task_vars.get("hostvars", {})
        facts = {}
        for host in targets:
            values = hostvars.get(host, {})
            facts[host] = {
                name: values.get(name)
                for name in ("gpuhost_rollout_reached", "gpuhost_rollout_batch", "gpuhost_rollout_done",
                             "docker_daemon_deferred")
            }
        batch_hosts = [str(h) for h in task_vars.get("ansible_play_batch", [])] if stage == "batch" else []
        decision = rollout.decide(stage, targets, facts, max_fail, batch_hosts=batch_hosts, batches=batches)
        result.update(decision.to_dict())
        result["changed"] = False
        if decision.stop:
            result["failed"] = True
        return result
