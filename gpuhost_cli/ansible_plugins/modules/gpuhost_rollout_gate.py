#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0

# The documentation of the action plugin gpuhost_rollout_gate (action/gpuhost_rollout_gate.py),
# which runs on the controller only; there is no module code to ship to hosts.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpuhost_rollout_gate
short_description: Decide, between batches, whether a rollout goes on
description:
  - Runs on the controller only (use it with C(run_once)); it never connects to a host.
  - Reads what each host of the play recorded so far (C(gpuhost_rollout_reached),
    C(gpuhost_rollout_batch), C(gpuhost_rollout_done), C(docker_daemon_deferred)) and counts
    a host that started a batch but is neither done nor deferred as failed, whether it
    failed, was rolled back or was lost (unreachable).
  - With O(stage=preflight), fails when the share of hosts that did not answer is above
    O(max_fail_percentage); with O(stage=batch), when the share of failed hosts of the
    previous batch is; also when the batch Ansible formed is not the one O(batches) asks for
    (Ansible reads a play's C(serial) from extra vars only).
  - With O(stage=final), never fails; RV(msg) sums the rollout up, with how to finish
    deferred hosts.
  - The logic is in C(plugin_utils/rollout.py) of the collection (C(gpuhost_cli.rollout) in a checkout).
author:
  - gpuhost maintainers (!UNKNOWN)
version_added: 0.1.0
options:
  stage:
    description: V(preflight), V(batch) (before a batch) or V(final) (after the last batch).
    type: str
    choices: [preflight, batch, final]
    required: true
  max_fail_percentage:
    description: Largest share (0-100) of a batch that may fail while the rollout goes on.
    type: int
    default: 0
  batches:
    description: The batch sizes asked for (C(gpuhost_rollout_batches)), to check the batch Ansible formed.
    type: list
    elements: raw
notes:
  - An action plugin; the controller runs it once for the play, whatever host it is called for.
"""

EXAMPLES = r"""
- name: Rollout | Check the batch before this one
  gpuhost.gpuhost.gpuhost_rollout_gate:
    stage: batch
    max_fail_percentage: "{{ gpuhost_rollout_max_fail_percentage | default(0) }}"
    batches: "{{ gpuhost_rollout_batches }}"
  run_once: true
  any_errors_fatal: true
"""

RETURN = r"""
batch:
  description: The number of the batch about to start (stage batch) or of the last batch.
  returned: always
  type: int
batch_hosts:
  description: The hosts of the batch about to start.
  returned: always
  type: list
  elements: str
failed_hosts:
  description: The hosts counted as failed in the batch checked.
  returned: always
  type: list
  elements: str
states:
  description: Each host's state (ok, failed, deferred, converged, not_reached).
  returned: always
  type: dict
stop:
  description: Whether the rollout stops here.
  returned: always
  type: bool
msg:
  description: Why it stops, or what it found.
  returned: always
  type: str
"""
