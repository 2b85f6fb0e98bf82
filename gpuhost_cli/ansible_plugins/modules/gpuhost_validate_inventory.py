#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0

# The documentation of the action plugin gpuhost_validate_inventory
# (action/gpuhost_validate_inventory.py), which runs on the controller only; there is no
# module code to ship to hosts.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpuhost_validate_inventory
short_description: Check the gpuhost variables of a host before anything changes
description:
  - Runs on the controller only; it never connects to the host and never runs a module.
  - Looks at every variable of the host whose name starts with a role's name followed by
    C(_) (for example C(docker_daemon_)) or with C(gpuhost_), renders it, and checks it
    against the roles' C(meta/argument_specs.yml).
  - Fails, naming the host, the variable, the value and the expected type, on a variable
    no role knows (a misspelling Ansible would silently ignore), on a string where a list
    belongs (C("a,b")), on a string or a number where a boolean belongs (C("yes")), on a
    quoted number where an int belongs, and on a value outside an option's choices.
  - Variables whose values fail to render (for example ones that need facts, which are
    not gathered yet) get only their names checked, and are listed in RV(unchecked).
author:
  - gpuhost maintainers (!UNKNOWN)
version_added: 0.1.0
options:
  spec_files:
    description:
      - The roles' C(meta/argument_specs.yml) files; the role is the directory two levels up.
      - Entries may be glob patterns (C(roles/*/meta/argument_specs.yml)); each must match a file.
    type: list
    elements: path
    required: true
  internal_roles:
    description: Roles that other roles include with their own arguments; their variables are not checked.
    type: list
    elements: str
    default: [apt_source]
notes:
  - A host can list variables of other roles that share a gpuhost prefix (for example
    C(docker_compose_version)) in C(gpuhost_validate_ignore_vars).
  - An action plugin; it runs on the controller for each host.
"""

EXAMPLES = r"""
- name: Validate the inventory's gpuhost variables
  gpuhost.gpuhost.gpuhost_validate_inventory:
    spec_files:
      - "{{ playbook_dir }}/../roles/*/meta/argument_specs.yml"
"""

RETURN = r"""
msg:
  description: C(N gpuhost variables checked), or every problem, one per line, each naming the host.
  returned: always
  type: str
errors:
  description: The list of problems.
  returned: failure
  type: list
  elements: str
unchecked:
  description: Variables whose values could not be rendered yet; only their names were checked.
  returned: always
  type: list
  elements: str
"""
