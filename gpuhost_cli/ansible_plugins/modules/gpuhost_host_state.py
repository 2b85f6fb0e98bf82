#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpuhost_host_state
short_description: Tell, in one round trip, which of gpuhost's roles a host needs
description:
  - With O(mode=plan), compares the host with the record of the last run that converged each
    role (O(path)). A role has nothing to do when its record holds the same digest of its
    inputs (O(inputs)) and every item the role manages (files, packages, holds, groups,
    units, apt sources naming its repository, links) reads as recorded. Every other role
    is listed in RV(needs_work), with the differences in RV(drift). Reads only; it runs
    in check mode as in a real run.
  - With O(mode=record), reads the items O(items) the role O(role) manages and writes them
    with O(inputs) into the record. Writes nothing in check mode.
  - The action plugin of the same name computes the digests on the controller.
  - The logic is in C(module_utils/gpuhost_host_state.py), which lists the item kinds.
author:
  - gpuhost maintainers (!UNKNOWN)
options:
  mode:
    description: V(plan) or V(record).
    type: str
    choices: [plan, record]
    required: true
  path:
    description: The record, a JSON file only this module writes.
    type: path
    default: /var/lib/gpuhost/converged.json
  inputs:
    description:
      - With O(mode=plan), a mapping of role name to the digest of its inputs.
      - With O(mode=record), the digest of O(role)'s inputs.
    type: raw
    required: true
  role:
    description: The role whose items are recorded (O(mode=record)).
    type: str
  items:
    description: The items O(role) manages (O(mode=record)), as module_utils/gpuhost_host_state.py lists them.
    type: list
    elements: dict
  dependents:
    description:
      - With O(mode=plan), per role the later roles that run whenever it has work, because its
        work can change what they read (a CDI spec the toolkit writes decides the daemon.json
        Docker needs).
    type: dict
    default: {}
  forget:
    description:
      - With O(mode=plan), the roles whose records are removed when any role of O(inputs)
        has work (not in check mode), so that they run again after it; the verification of
        a host is recorded this way, and a host whose roles change is verified again.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Compare the host with its last converged run
  gpuhost_host_state:
    mode: plan
    roles: [docker, docker_daemon]
    roles_dir: "{{ playbook_dir }}/../roles"
  register: __gpuhost_plan
"""

RETURN = r"""
needs_work:
  description: The roles of O(inputs) that have work to do, in the order given.
  returned: mode plan
  type: list
  elements: str
converged:
  description: The roles of O(inputs) that have nothing to do.
  returned: mode plan
  type: list
  elements: str
drift:
  description: Per role that needs work, why (at most ten lines).
  returned: mode plan
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpuhost_atomic_file import make_parent_dirs, write_atomic
from ansible.module_utils.gpuhost_host_state import (
    UNRENDERED,
    HostReader,
    ItemError,
    dump_record,
    forgotten,
    load_record,
    plan,
    recorded,
    roles_of,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "mode": {"type": "str", "choices": ["plan", "record"], "required": True},
            "path": {"type": "path", "default": "/var/lib/gpuhost/converged.json"},
            "inputs": {"type": "raw", "required": True},
            "role": {"type": "str"},
            "items": {"type": "list", "elements": "dict"},
            "forget": {"type": "list", "elements": "str", "default": []},
            "dependents": {"type": "dict", "default": {}},
        },
        required_if=[("mode", "record", ("role", "items"))],
        supports_check_mode=True,
    )
    params = module.params
    reader = HostReader()
    record = load_record(params["path"])
    if params["mode"] == "plan":
        if not isinstance(params["inputs"], dict):
            module.fail_json(msg="gpuhost_host_state: inputs must map role names to digests in mode plan")
        drift = plan(record, params["inputs"], reader, params["dependents"])
        needs = [role for role in params["inputs"] if drift[role]]
        stale = [role for role in params["forget"] if role in roles_of(record)] if needs else []
        if stale and not module.check_mode:
            write_atomic(params["path"], dump_record(forgotten(record, stale)), mode=0o644)
        module.exit_json(changed=False, needs_work=needs,
                         converged=[role for role in params["inputs"] if not drift[role]],
                         drift={role: drift[role] for role in needs})
    if params["inputs"] == UNRENDERED:
        # The plan could not render this role's inputs: a record would match any inputs.
        module.exit_json(changed=False, msg="not recorded: the role's inputs could not be rendered")
    try:
        new = recorded(record, params["role"], str(params["inputs"]), params["items"], reader)
    except ItemError as exc:
        module.fail_json(msg="gpuhost_host_state: %s" % exc)
    data = dump_record(new)
    changed = data != dump_record(record) if record else True
    if changed and not module.check_mode:
        make_parent_dirs(params["path"])
        write_atomic(params["path"], data, mode=0o644)
    module.exit_json(changed=changed, items=new["roles"][params["role"]]["items"])


if __name__ == "__main__":
    main()
