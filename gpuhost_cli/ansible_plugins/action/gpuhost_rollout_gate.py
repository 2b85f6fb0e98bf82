"""Action plugin gpuhost_rollout_gate: stop a batched rollout when a batch failed.

DOCUMENTATION
-------------
module: gpuhost_rollout_gate
short_description: Decide, between batches, whether a rollout goes on
description:
  - Runs on the controller only (use it with C(run_once)); it never connects to a host.
  - Reads what each host of the play recorded so far (C(gpuhost_rollout_reached),
    C(gpuhost_rollout_batch), C(gpuhost_rollout_done), C(docker_daemon_deferred)) and counts
    a host that started a batch but is neither done nor deferred as failed, whether it
    failed, was rolled back or was lost (unreachable).
  - With I(stage=preflight), fails when the share of hosts that did not answer is above
    I(max_fail_percentage); with I(stage=batch), when the share of failed hosts of the
    previous batch is; also when the batch Ansible formed is not the one I(batches) asks for
    (Ansible reads a play's C(serial) from extra vars only).
  - With I(stage=final), never fails; C(msg) sums the rollout up, with how to finish
    deferred hosts.
  - The logic is in C(gpuhost_cli.rollout).
options:
  stage:
    description: preflight, batch (before a batch) or final (after the last batch).
    type: str
    required: true
  max_fail_percentage:
    description: Largest share (0-100) of a batch that may fail while the rollout goes on.
    type: int
    default: 0
  batches:
    description: The batch sizes asked for (C(gpuhost_rollout_batches)), to check the batch Ansible formed.
    type: list
    elements: raw

RETURN
------
batch: The number of the batch about to start (stage batch) or of the last batch.
batch_hosts: The hosts of the batch about to start.
failed_hosts: The hosts counted as failed in the batch checked.
states: Each host's state (ok, failed, deferred, not_reached).
stop: Whether the rollout stops here.
msg: Why it stops, or what it found.
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

DOCUMENTATION = __doc__

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
