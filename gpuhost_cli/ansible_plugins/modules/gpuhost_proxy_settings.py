#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpuhost_proxy_settings
short_description: Read a host's own HTTP proxy settings and plan gpuhost's
description:
  - Reads, and never changes, what the host already says about an HTTP proxy, and
    compares it with the proxy gpuhost is asked to set (O(http), O(https)).
  - With O(apt=true), the generic C(Acquire::http::Proxy) and C(Acquire::https::Proxy)
    settings of C(/etc/apt/apt.conf) and C(/etc/apt/apt.conf.d/*), except gpuhost's own
    O(apt_file). A per-host line such as C(Acquire::http::Proxy::deb.debian.org) (an
    archive cache for one host) is not a proxy for other repositories and does not count.
  - With O(docker=true), the C(HTTP_PROXY), C(HTTPS_PROXY) and C(NO_PROXY) variables
    (either case) of the docker service (unit, drop-ins and environment files, except
    gpuhost's own O(dropin)), and the C(proxies) key of O(daemon_json). It also tells
    where this engine takes its proxy (RV(method)), from O(server_version) or else
    C(dockerd --version).
  - A setting that agrees with what gpuhost is asked to set is reported, and gpuhost writes
    no second copy of it (C(skip) in RV(apt) and RV(docker)); one that differs is an error
    naming the file and the fix, returned for the role to stop the host before any change.
  - Values are returned with their credentials redacted (C(http://user:***@proxy:3128)).
  - The rules are in C(module_utils/gpuhost_proxy.py), shared with the gpuhost_proxy filters.
author:
  - gpuhost maintainers (!UNKNOWN)
version_added: 0.1.0
options:
  http:
    description: The proxy for http URLs gpuhost is asked to set; empty for none.
    type: str
    default: ""
  https:
    description: The proxy for https URLs gpuhost is asked to set; empty for none.
    type: str
    default: ""
  no_proxy:
    description: Entries the user adds to no_proxy.
    type: list
    elements: str
    default: []
  registry_mirrors:
    description: Registry mirror URLs; the hosts of the internal ones bypass the proxy.
    type: list
    elements: str
    default: []
  apt:
    description: Read apt's settings.
    type: bool
    default: false
  apt_paths:
    description: apt configuration files and directories to read.
    type: list
    elements: path
    default: [/etc/apt/apt.conf, /etc/apt/apt.conf.d]
  apt_file:
    description: gpuhost's own apt configuration file, left out of the comparison.
    type: path
    default: /etc/apt/apt.conf.d/90gpuhost-proxy
  docker:
    description: Read the docker service's settings and daemon.json, and find the engine's version.
    type: bool
    default: false
  unit_paths:
    description: The docker unit files and drop-in directories, as the docker_daemon_config module takes them.
    type: list
    elements: path
    default:
      - /lib/systemd/system/docker.service
      - /usr/lib/systemd/system/docker.service
      - /etc/systemd/system/docker.service
      - /etc/systemd/system/docker.service.d
      - /run/systemd/system/docker.service.d
  dropin:
    description: gpuhost's own drop-in, left out of the comparison.
    type: path
    default: /etc/systemd/system/docker.service.d/90-gpuhost-proxy.conf
  daemon_json:
    description: Docker's daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  server_version:
    description: The running dockerd's version (C(docker info)'s C(ServerVersion)); empty to ask C(dockerd --version).
    type: str
    default: ""
attributes:
  check_mode:
    description: Reads only; runs the same in check mode.
    support: full
  diff_mode:
    description: Returns no diff.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Look for the host's own proxy settings
  gpuhost_proxy_settings:
    http: "{{ gpuhost_proxy_http }}"
    https: "{{ gpuhost_proxy_https }}"
    no_proxy: "{{ gpuhost_proxy_no_proxy }}"
    apt: true
  register: proxy_settings

- name: Stop before any change when they disagree
  ansible.builtin.assert:
    that: proxy_settings.apt.errors | length == 0
    fail_msg: "{{ proxy_settings.apt.errors | join(' ') }}"
"""

RETURN = r"""
no_proxy:
  description: The no_proxy entries (localhost, the host's own names, internal registry mirrors, the user's).
  returned: always
  type: list
  elements: str
  sample: ["localhost", "127.0.0.1", "::1", "gpu1", "gpu1.cluster.lan", "registry.cluster.lan"]
apt:
  description: apt's findings; C(errors) and C(warnings) are messages, C(skip) the schemes another file already sets alike.
  returned: always
  type: dict
  sample: {"errors": [], "warnings": [], "skip": []}
docker:
  description: The docker service's findings, as RV(apt); C(skip) may also hold C(no_proxy).
  returned: always
  type: dict
  sample: {"errors": [], "warnings": [], "skip": []}
method:
  description: Where dockerd takes its proxy, C(daemon-json) (23.0 and later), C(drop-in) (older), or C(unknown) (no engine found).
  returned: always
  type: str
  sample: daemon-json
engine_version:
  description: The engine version the method was chosen by; empty when none was found.
  returned: always
  type: str
  sample: 26.1.5+dfsg1
"""

import json
import os
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils import gpuhost_proxy as proxy
from ansible.module_utils.gpuhost_systemd_unit import DEFAULT_UNIT_PATHS, effective_service, unit_files

DOCKERD_SEARCH_DIRS = ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"]
APT_VARIABLES = {"http": "gpuhost_proxy_http", "https": "gpuhost_proxy_https", "no_proxy": "gpuhost_proxy_no_proxy"}


def apt_files(paths, own):
    """``[(path, text), ...]`` of apt's configuration, as apt reads it (directory entries in
    name order, only names apt takes: letters, digits, _ - . and no extension or .conf)."""
    out = []
    own = os.path.realpath(own) if own else ""
    for path in paths:
        candidates = []
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if all(c.isalnum() or c in "_-." for c in name) and ("." not in name or name.endswith(".conf")):
                    candidates.append(os.path.join(path, name))
        elif os.path.isfile(path):
            candidates.append(path)
        for candidate in candidates:
            if not os.path.isfile(candidate) or os.path.realpath(candidate) == own:
                continue
            try:
                with open(candidate, "rb") as handle:
                    out.append((candidate, handle.read().decode("utf-8", "replace")))
            except OSError:
                continue
    return out


def unit_environment(unit_paths, own):
    """The docker service's environment without gpuhost's own drop-in."""
    own = os.path.realpath(own) if own else ""
    files = [path for path in unit_files(unit_paths) if os.path.realpath(path) != own]
    _commands, environment = effective_service(files)
    return environment


def daemon_json_proxies(path):
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8-sig") or "{}")
    except (OSError, ValueError):
        return None
    value = data.get("proxies") if isinstance(data, dict) else None
    return value if isinstance(value, dict) and value else None


def plan(params, hostname="", fqdn="", dockerd_text=""):
    """What the module returns, from its parameters (the host's names and ``dockerd
    --version`` as given)."""
    no_proxy = proxy.no_proxy_list(params["no_proxy"], hostname, fqdn, params["registry_mirrors"])
    wanted = proxy.wanted_settings(params["http"], params["https"], no_proxy)
    empty = {"errors": [], "warnings": [], "skip": []}
    result = {"no_proxy": no_proxy, "apt": dict(empty), "docker": dict(empty), "method": proxy.UNKNOWN,
              "engine_version": ""}
    if params["apt"]:
        found = proxy.apt_proxy_settings(apt_files(params["apt_paths"], params["apt_file"]))
        result["apt"] = proxy.judge(found, wanted, "apt", APT_VARIABLES)
    if params["docker"]:
        version = params["server_version"] or proxy.dockerd_version(dockerd_text)
        result["engine_version"] = version
        result["method"] = proxy.docker_proxy_method(version)
        environment = unit_environment(params["unit_paths"], params["dropin"])
        verdict = proxy.judge(proxy.unit_proxy_settings(environment), wanted, "Docker", APT_VARIABLES)
        in_json = daemon_json_proxies(params["daemon_json"])
        if in_json and wanted:
            shown = json.dumps(proxy.redact_data(in_json), sort_keys=True)
            if result["method"] == proxy.DROP_IN:
                verdict["errors"].append(
                    f"Docker: {params['daemon_json']} has a \"proxies\" key ({shown}), which Docker "
                    f"{version} does not read (23.0 and later do); gpuhost sets this engine's proxy in a "
                    f"systemd drop-in. Remove the \"proxies\" key from {params['daemon_json']}")
            elif in_json != proxy.daemon_json_proxies(params["http"], params["https"], no_proxy):
                verdict["warnings"].append(
                    f"Docker: {params['daemon_json']} has \"proxies\" {shown}; gpuhost replaces that key with "
                    "what gpuhost_proxy_http, gpuhost_proxy_https and gpuhost_proxy_no_proxy say")
        result["docker"] = verdict
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "http": {"type": "str", "default": "", "no_log": True},
            "https": {"type": "str", "default": "", "no_log": True},
            "no_proxy": {"type": "list", "elements": "str", "default": []},
            "registry_mirrors": {"type": "list", "elements": "str", "default": []},
            "apt": {"type": "bool", "default": False},
            "apt_paths": {"type": "list", "elements": "path", "default": ["/etc/apt/apt.conf", "/etc/apt/apt.conf.d"]},
            "apt_file": {"type": "path", "default": "/etc/apt/apt.conf.d/90gpuhost-proxy"},
            "docker": {"type": "bool", "default": False},
            "unit_paths": {"type": "list", "elements": "path", "default": list(DEFAULT_UNIT_PATHS)},
            "dropin": {"type": "path", "default": "/etc/systemd/system/docker.service.d/90-gpuhost-proxy.conf"},
            "daemon_json": {"type": "path", "default": "/etc/docker/daemon.json"},
            "server_version": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    params = dict(module.params)
    for name in ("http", "https"):
        params[name] = params[name] or ""
    dockerd_text = ""
    if params["docker"] and not params["server_version"]:
        dockerd = module.get_bin_path("dockerd", opt_dirs=DOCKERD_SEARCH_DIRS)
        if dockerd:
            _rc, out, err = module.run_command([dockerd, "--version"])
            dockerd_text = out or err
    result = plan(params, socket.gethostname(), socket.getfqdn(), dockerd_text)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
