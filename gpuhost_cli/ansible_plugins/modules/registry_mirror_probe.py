#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: registry_mirror_probe
short_description: Ask each registry mirror, from the host, whether it answers as a registry
description:
  - Sends C(GET <mirror>/v2/) to each of O(mirrors) from the host, as Docker does before it pulls
    through a mirror, and sorts the answer into V(passed) (HTTP 200 or 401 with
    the header C(Docker-Distribution-API-Version) set to C(registry/2.0)), V(dead) (the name does not resolve, the
    connection is refused, no answer in O(timeout) seconds, or the proxy could not reach it),
    V(not_registry) (any other HTTP answer, such as an apt or web server's 404) or V(tls) (a
    certificate Docker would not trust, a host name the certificate does not carry, or no TLS
    behind an https URL).
  - Trusts what Docker trusts for a mirror, the system's CA certificates and every C(*.crt) in
    C(<certs_dir>/<host[:port]>/) (such as C(/etc/docker/certs.d/mirror.example.com:5000/ca.crt)).
  - Goes through the proxy of the environment it runs in (C(https_proxy), C(http_proxy),
    C(no_proxy)); set them with the task's C(environment) to the proxy dockerd uses.
  - Docker skips a mirror that does not answer as a registry and pulls from the upstream registry
    without saying so; this module says so, with the fix.
  - Reads only; changes nothing on the host. The rule is in C(module_utils/gpuhost_registry_probe.py).
author:
  - gpuhost maintainers (!UNKNOWN)
options:
  mirrors:
    description:
      - The mirror URLs, as C(docker info) lists them (C(RegistryConfig.Mirrors)) or as daemon.json's
        C(registry-mirrors) has them.
    type: list
    elements: str
    required: true
  required:
    description:
      - V(true) makes a mirror that does not answer as a registry a V(failed) check; V(false) a
        V(warning).
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for each mirror's answer.
    type: float
    default: 5
  certs_dir:
    description:
      - Where Docker reads registry certificates.
    type: path
    default: /etc/docker/certs.d
notes:
  - Supports check mode (it only reads).
"""

EXAMPLES = r"""
- name: Ask the mirrors Docker uses
  registry_mirror_probe:
    mirrors: "{{ (docker_info.RegistryConfig | default({})).Mirrors | default([]) }}"
  environment:
    https_proxy: http://proxy.example.com:3128
    no_proxy: localhost,.example.com
  register: probe

- name: Fail when a mirror is not a working registry
  registry_mirror_probe:
    mirrors: [https://mirror.example.com]
    required: true
  register: probe
  failed_when: probe.failed_mirrors | length > 0
"""

RETURN = r"""
mirrors:
  description: One entry per mirror, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    mirror:
      description: The mirror URL as given.
      type: str
    outcome:
      description: V(passed), V(dead), V(not_registry) or V(tls).
      type: str
    status:
      description: The check's status, V(passed), or V(warning) (V(failed) with O(required)).
      type: str
    reason:
      description: What happened, in a few words.
      type: str
    detail:
      description: The reason with the proxy used, the CA files trusted, and the fix.
      type: str
    endpoint:
      description: The URL asked, C(<mirror>/v2/).
      type: str
    http_status:
      description: The HTTP status of the answer, V(null) without one.
      type: int
    proxy:
      description: The proxy the request went through (without credentials), '' when none.
      type: str
    ca_files:
      description: The CA certificate files from O(certs_dir) trusted besides the system's.
      type: list
      elements: str
  sample:
    - mirror: https://registry-mirror.example.com/
      outcome: dead
      status: warning
      reason: "the name does not resolve (Name or service not known)"
      detail: >-
        https://registry-mirror.example.com/ is dead: the name does not resolve (Name or service not known).
        Docker skips it and pulls from the upstream registry; start the mirror, or remove it from
        docker_daemon_registry_mirrors
      endpoint: https://registry-mirror.example.com/v2/
      http_status: null
      proxy: ""
      ca_files: []
checks:
  description: One C(gpuhost verify) check per mirror, C({name, status, detail}), named C(registry mirror <mirror>).
  returned: always
  type: list
  elements: dict
failed_mirrors:
  description: The mirrors whose status is V(failed) (only with O(required)).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpuhost_registry_probe import check_name, check_status, detail, probe


def probe_all(mirrors, required=False, timeout=5.0, certs_dir="/etc/docker/certs.d", environ=None):
    """The module's result for a list of mirrors (without changed)."""
    entries = []
    for url in mirrors:
        entry = probe(url, timeout=timeout, certs_dir=certs_dir, environ=environ)
        entry["status"] = check_status(entry["outcome"], required)
        entry["detail"] = detail(entry)
        entries.append(entry)
    return {"mirrors": entries,
            "checks": [{"name": check_name(e["mirror"]), "status": e["status"], "detail": e["detail"]} for e in entries],
            "failed_mirrors": [e["mirror"] for e in entries if e["status"] == "failed"]}


def main():
    module = AnsibleModule(
        argument_spec={
            "mirrors": {"type": "list", "elements": "str", "required": True},
            "required": {"type": "bool", "default": False},
            "timeout": {"type": "float", "default": 5},
            "certs_dir": {"type": "path", "default": "/etc/docker/certs.d"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds, got %s." % p["timeout"], changed=False)
    module.exit_json(changed=False, **probe_all(p["mirrors"], p["required"], p["timeout"], p["certs_dir"]))


if __name__ == "__main__":
    main()
