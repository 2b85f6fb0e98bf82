#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_config
short_description: Merge settings into the Docker daemon configuration file
description:
  - Manages C(/etc/docker/daemon.json) by merging the keys given in O(settings)
    into the existing file. Keys that are not mentioned in O(settings) are kept
    exactly as they are, so settings written by other tools (for example
    C(nvidia-ctk runtime configure)) or by an administrator survive.
  - Merge rules. Every key of O(settings) is set. A key whose value is V(null)
    is removed from the file. Dictionary values are merged recursively, so
    nested keys the host already has are kept (an existing C(runtimes.foo)
    survives when C(runtimes.nvidia) is set). Lists are replaced as a whole.
  - The file is only rewritten when the parsed data changes. Formatting and key
    order of an existing file are never a reason to rewrite it. When the file
    is written it uses 4-space indentation (the layout C(nvidia-ctk) writes),
    keeps the key order of the existing file and appends new keys in the order
    given in O(settings).
  - Before anything is written the merged configuration is checked with the
    rules of C(module_utils/gpuhost_daemon_schema.py), the same code the
    docker_daemon role's preflight runs on the controller. Keys given in
    O(settings) are judged strictly. Their names must be daemon.json keys
    dockerd knows (or be listed in O(extra_keys)). Their values must have the
    type dockerd expects. Registry mirrors must be C(https://) URLs without
    credentials, path or white space; plain C(http://) mirrors pass only with
    O(allow_insecure=true). Insecure registries and TCP sockets without
    C(tlsverify) are refused unless O(allow_insecure=true). Every C(hosts)
    entry whose scheme is not C(unix://) or C(fd://) counts as TCP, since
    dockerd reads C(0.0.0.0:2375) as C(tcp://0.0.0.0:2375).
  - Keys only the host has are kept as they are; a problem in them is a
    warning, never a failure.
  - No key may also be given as a command-line flag of dockerd in the systemd
    unit, also behind C(sh -c) (dockerd refuses to start when an option is
    given both ways). A C(--tlsverify) flag in the unit counts as TLS for the
    TCP socket rule.
  - A file that starts with a UTF-8 byte-order mark (Docker 20.10 refuses to
    start with one) is rewritten without it.
  - Where the installed dockerd supports C(--validate) (Docker 23.0 and later)
    the candidate file is validated by dockerd itself before it replaces the
    live file.
  - The file is replaced atomically (temporary file in the same directory,
    created with mode C(0600), fsync, rename). An existing file keeps its mode,
    owner and group (a C(0600) file holding proxy credentials stays C(0600)); a
    new file gets C(0644), owned by C(root:root) when the module runs as root.
    In check mode, a candidate that dockerd validates is written to a private
    C(0700) temporary directory that is removed afterwards.
  - Temporary files a killed run left next to the file are removed.
  - The previous bytes are always kept while the change is applied, so that it
    can be rolled back, as the backup file (O(backup=true)) or else as
    C(.<file>.gpuhost-previous) next to it, with the file's mode and owner.
    RV(rollback_file) names it and RV(existed) says whether there was a file to
    go back to.
author:
  - gpuhost maintainers (!UNKNOWN)
options:
  path:
    description:
      - Path of the daemon configuration file.
      - If it is a symbolic link, the file the link points to is read and
        written and the link is kept.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - Keys to manage, as they appear in C(daemon.json).
      - A value of V(null) removes the key. Dictionaries are merged
        recursively (V(null) inside them removes the nested key), lists and
        scalars replace the existing value.
    type: dict
    required: true
  backup:
    description:
      - Before an existing file is replaced, copy it to
        C(<file>.<YYYYmmddTHHMMSS>.bak) next to it, with its mode and owner.
    type: bool
    default: true
  backup_keep:
    description:
      - How many backups to keep; older ones are removed after a new one is
        made. V(0) keeps every backup.
    type: int
    default: 5
  extra_keys:
    description:
      - daemon.json keys to accept in O(settings) beyond the table of keys
        dockerd documents, for keys newer than that table.
    type: list
    elements: str
    default: []
  validate_with_dockerd:
    description:
      - Whether to run C(dockerd --validate --config-file <candidate>) before
        the candidate replaces the live file.
      - V(auto) validates when dockerd is installed and supports
        C(--validate) (Docker 23.0 and later), and skips validation otherwise.
      - V(always) fails when dockerd is missing or cannot validate.
      - V(never) skips this step. The module's own checks still run.
    type: str
    choices: [auto, always, never]
    default: auto
  unit_paths:
    description:
      - Systemd unit files and drop-in directories scanned for dockerd
        command-line flags in C(ExecStart=) lines.
      - Unit files are listed lowest priority first; the last one that exists
        is the effective unit (C(/etc) overrides C(/lib)), as systemd does.
      - For directories, the C(*.conf) files inside are drop-ins. They are
        applied in file-name order after the unit; when two directories hold a
        drop-in with the same name, the one listed first wins. A path ending
        in C(.conf) is treated as a single drop-in.
      - An empty C(ExecStart=) resets the commands collected so far, and lines
        continued with a trailing backslash are joined. C($VAR) and C(${VAR})
        are expanded from C(Environment=) and C(EnvironmentFile=).
    type: list
    elements: path
    default:
      - /lib/systemd/system/docker.service
      - /usr/lib/systemd/system/docker.service
      - /etc/systemd/system/docker.service
      - /etc/systemd/system/docker.service.d
      - /run/systemd/system/docker.service.d
  proxy_http:
    description:
      - The HTTP proxy dockerd uses (C(proxies.http-proxy), Docker 23.0 and later), for
        example C(http://user:password@proxy:3128). It is not logged, and the password is
        shown as C(***) in RV(config) and in the diff.
      - With any of O(proxy_http), O(proxy_https) or O(proxy_no_proxy) set, the C(proxies)
        key is set to them (replacing what the host had there) and the file is kept at mode
        C(0600); with none set, C(proxies) is left as it is.
    type: str
    default: ""
  proxy_https:
    description: The proxy for https (C(proxies.https-proxy)); see O(proxy_http).
    type: str
    default: ""
  proxy_no_proxy:
    description: Comma-separated hosts and domains dockerd reaches without the proxy (C(proxies.no-proxy)).
    type: str
    default: ""
  allow_insecure:
    description:
      - Accept non-empty C(insecure-registries), plain C(http://) registry
        mirrors, or a TCP entry in C(hosts) without C(tlsverify=true).
      - When accepted, a warning is still returned.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - C(reload_sufficient) tells whether C(systemctl reload docker) (SIGHUP) is
    enough to apply the change. It is V(true) only when every changed key is
    one dockerd re-reads on reload (C(debug), C(labels), C(live-restore),
    C(max-concurrent-downloads), C(max-concurrent-uploads),
    C(max-download-attempts), C(default-runtime), C(runtimes),
    C(authorization-plugins), C(insecure-registries), C(registry-mirrors),
    C(allow-nondistributable-artifacts), C(shutdown-timeout)). Anything else
    needs a restart. It is V(false) when nothing changed.
  - C(features) is deliberately treated as needing a restart because several
    feature flags are only read when dockerd starts.
  - Flags passed through variables (for example C($DOCKER_OPTS) from Debian's
    C(EnvironmentFile=-/etc/default/docker)) are found by reading the unit's
    C(Environment=) and C(EnvironmentFile=) settings; the conflict message then
    names the file that holds the flag.
"""

EXAMPLES = r"""
- name: Register the NVIDIA runtime and make it the default
  docker_daemon_config:
    settings:
      runtimes:
        nvidia:
          path: nvidia-container-runtime
          args: []
      default-runtime: nvidia

- name: Rotate container logs and use a registry mirror
  docker_daemon_config:
    settings:
      log-driver: json-file
      log-opts:
        max-size: 100m
        max-file: "3"
      registry-mirrors:
        - https://mirror.example.com
  register: daemon_json

- name: Apply the change
  ansible.builtin.systemd_service:
    name: docker
    state: "{{ 'reloaded' if daemon_json.reload_sufficient else 'restarted' }}"
  when: daemon_json.changed

- name: Remove a key the role used to manage
  docker_daemon_config:
    settings:
      experimental: null

- name: Require validation by dockerd (Docker 23.0 or later)
  docker_daemon_config:
    settings:
      live-restore: true
    validate_with_dockerd: always
"""

RETURN = r"""
path:
  description: The configuration file path as given.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
target:
  description: The file actually read and written; differs from RV(path) when RV(path) is a symbolic link.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
is_symlink:
  description: Whether RV(path) is a symbolic link.
  returned: always
  type: bool
  sample: false
config:
  description: The configuration after the merge (what the file contains, or would contain in check mode).
  returned: always
  type: dict
  sample: {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}, "default-runtime": "nvidia"}
changed_keys:
  description: Sorted top-level keys that were added, changed or removed.
  returned: always
  type: list
  elements: str
  sample: ["default-runtime", "runtimes"]
reload_sufficient:
  description:
    - V(true) when every changed key is applied by C(systemctl reload docker) (SIGHUP),
      V(false) when a restart is needed or when nothing changed.
  returned: always
  type: bool
  sample: true
existed:
  description: Whether the file existed before; a rollback removes the file only when it did not.
  returned: always
  type: bool
  sample: true
live_restore_unsafe_keys:
  description:
    - Changed keys whose change a restart does not survive even with live-restore on
      (bridge addresses, address pools, data root, storage driver, exec options and the like).
  returned: always
  type: list
  elements: str
  sample: ["data-root"]
bom_removed:
  description: Whether the file started with a UTF-8 byte-order mark that is removed.
  returned: always
  type: bool
  sample: false
rollback_file:
  description: The copy of the previous bytes, with the previous mode and owner (the backup, or C(.<file>.gpuhost-previous)).
  returned: when an existing file was replaced
  type: str
  sample: /etc/docker/.daemon.json.gpuhost-previous
previous:
  description: Mode (octal string), owner and group ids of the file that was replaced, for a rollback.
  returned: when an existing file was replaced
  type: dict
  sample: {"mode": "0600", "uid": 0, "gid": 4}
removed_temp_files:
  description: Temporary files of a killed run that were removed.
  returned: when not in check mode
  type: list
  elements: str
  sample: []
removed_backups:
  description: Older backups removed to keep O(backup_keep).
  returned: when a backup was made and old ones were removed
  type: list
  elements: str
  sample: []
validated:
  description: Whether dockerd validated the candidate file.
  returned: always
  type: bool
  sample: false
backup_file:
  description: Path of the backup of the previous file.
  returned: when a backup was made
  type: str
  sample: /etc/docker/daemon.json.20240101T120000.bak
diff:
  description: The file text before and after, in diff mode.
  returned: in diff mode
  type: dict
  sample:
    before: "{}\n"
    after: "{\n    \"debug\": true\n}\n"
    before_header: /etc/docker/daemon.json
    after_header: /etc/docker/daemon.json
"""

import os
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpuhost_atomic_file import (
    attributes,
    copy_preserving,
    keep_backup,
    private_copy,
    remove_orphans,
    replace,
    resolve_path,
    stage_replacement,
    unlink_quietly,
)
from ansible.module_utils.gpuhost_daemon_json import (
    DaemonConfigError,
    changed_keys,
    config_equal,
    format_config,
    merge_settings,
    normalize_settings,
    read_config,
)
from ansible.module_utils.gpuhost_proxy import daemon_json_proxies, redact_data, redact_text
from ansible.module_utils.gpuhost_daemon_schema import (
    check_config,
    classify_reload,
    live_restore_unsafe,
)
from ansible.module_utils.gpuhost_systemd_unit import (
    DEFAULT_UNIT_PATHS,
    check_conflicts,
    service_flags,
    tls_verify_flag,
)

DEFAULT_PATH = "/etc/docker/daemon.json"
DOCKERD_SEARCH_DIRS = ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"]
NEW_FILE_MODE = 0o644
#: A file that holds proxy credentials.
PRIVATE_MODE = 0o600


def with_proxies(settings, http="", https="", no_proxy=""):
    """``settings`` with the ``proxies`` key the proxy parameters ask for (none: unchanged)."""
    if not (http or https or no_proxy):
        return settings
    proxies = daemon_json_proxies(http, https, [part for part in (no_proxy or "").split(",") if part])
    return {**(settings or {}), "proxies": proxies}


def redacted(result):
    """The module result without proxy passwords: RV(config) and the diff show ``user:***@``."""
    out = dict(result)
    if "config" in out:
        out["config"] = redact_data(out["config"])
    if isinstance(out.get("diff"), dict):
        out["diff"] = {key: redact_text(value) for key, value in out["diff"].items()}
    return out


def rollback_name(target: str) -> str:
    """Where the previous bytes are kept when no backup file is wanted."""
    return os.path.join(os.path.dirname(target) or ".", f".{os.path.basename(target)}.gpuhost-previous")


# ---------------------------------------------------------------------------
# dockerd validation
# ---------------------------------------------------------------------------

def run_subprocess(argv):
    """Run ``argv``; return ``(rc, stdout, stderr)`` as text."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def resolve_validate_cmd(mode, dockerd, run=run_subprocess):
    """Command prefix to validate a config file with, or ``None`` to skip.

    ``mode`` is ``auto``, ``always`` or ``never``; ``dockerd`` the binary path (``None``
    when not installed). The file to check is appended to the returned list.
    """
    if mode == "never":
        return None
    if not dockerd:
        if mode == "always":
            raise DaemonConfigError(
                "docker_daemon: validate_with_dockerd=always but dockerd was not found "
                f"(searched PATH and {', '.join(DOCKERD_SEARCH_DIRS)}).")
        return None
    try:
        _rc, out, err = run([dockerd, "--help"])
    except (OSError, subprocess.SubprocessError) as exc:
        if mode == "always":
            raise DaemonConfigError(
                f"docker_daemon: validate_with_dockerd=always but {dockerd} --help could not run: {exc}") from None
        return None
    if "--validate" in (out or "") + (err or ""):
        return [dockerd, "--validate", "--config-file"]
    if mode == "always":
        raise DaemonConfigError(
            f"docker_daemon: validate_with_dockerd=always but {dockerd} does not support --validate "
            "(Docker 23.0 or later is needed).")
    return None


def run_validation(validate_cmd, candidate, path, run=run_subprocess):
    """Run ``validate_cmd + [candidate]``; raise with dockerd's message on rejection."""
    argv = list(validate_cmd) + [candidate]
    try:
        rc, out, err = run(argv)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DaemonConfigError(
            f"docker_daemon: could not run {argv[0]} to validate the new configuration: {exc}. "
            f"{path} was left untouched.") from None
    if rc != 0:
        said = "\n".join(part.strip() for part in (err, out) if part and part.strip())
        said = said.replace(candidate, path) or f"exit status {rc}"
        raise DaemonConfigError(
            f"docker_daemon: dockerd rejected the new configuration for {path}; the live file was left "
            f"untouched. dockerd said: {said}",
            rc=rc, stdout=out, stderr=err)


# ---------------------------------------------------------------------------
# The whole operation
# ---------------------------------------------------------------------------

def plan_config(path, settings, unit_paths=DEFAULT_UNIT_PATHS, allow_insecure=False, extra_keys=()):
    """Read, merge and judge; nothing is written. Returns ``(result, current)``."""
    settings = normalize_settings(settings)
    target, is_symlink = resolve_path(path)
    current = read_config(target, path)
    warnings = list(current["warnings"])

    candidate = merge_settings(current["data"], settings)
    flags = service_flags(unit_paths)
    errors, found = check_config(candidate, user_keys=list(settings), allow_insecure=allow_insecure,
                                 extra_keys=extra_keys, tls_verify_flag=tls_verify_flag(flags))
    if errors:
        raise DaemonConfigError("\n".join(errors), errors=errors)
    warnings.extend(found)
    warnings.extend(check_conflicts(candidate, flags, path))

    keys = changed_keys(current["data"], candidate)
    same_data = config_equal(current["data"], candidate)
    before_text = current["text"] if current["text"] is not None else ""
    after_text = before_text if same_data else format_config(candidate)
    if current["bom"]:
        warnings.append(f"docker_daemon: {path} starts with a UTF-8 byte-order mark, which Docker 20.10 "
                        "refuses to start with; it is removed.")
    result = {
        "changed": not same_data or current["bom"],
        "path": path,
        "target": target,
        "is_symlink": is_symlink,
        "existed": current["exists"],
        "config": candidate,
        "changed_keys": keys,
        "reload_sufficient": classify_reload(keys),
        "live_restore_unsafe_keys": live_restore_unsafe(keys),
        "bom_removed": current["bom"],
        "validated": False,
        "warnings": warnings,
        "diff": {"before": before_text, "after": after_text, "before_header": path, "after_header": path},
    }
    return result, current


def keep_previous(target, current, attrs, backup, backup_keep, now=None):
    """Keep the bytes being replaced, with their mode and owner (``attrs``); return what was made."""
    kept = {"previous": {"mode": f"{attrs[0]:04o}", "uid": attrs[1], "gid": attrs[2]}}
    if backup:
        kept["backup_file"], removed = keep_backup(current["raw"], target, attrs, backup_keep, now)
        kept["rollback_file"] = kept["backup_file"]
        if backup_keep > 0:
            kept["removed_backups"] = removed
    else:
        kept["rollback_file"] = copy_preserving(current["raw"], rollback_name(target), attrs)
    return kept


def apply_config(path, settings, check_mode=False, backup=True, backup_keep=5, unit_paths=DEFAULT_UNIT_PATHS,
                 allow_insecure=False, extra_keys=(), validate_cmd=None, run=run_subprocess, now=None,
                 private=False):
    """Merge ``settings`` into the file at ``path``; what the module does.

    ``validate_cmd`` is a command prefix (see :func:`resolve_validate_cmd`) run on the
    candidate before it replaces the live file, or ``None``. Returns the module result
    (with ``warnings`` and ``diff`` for ``main`` to hand over); raises
    :class:`DaemonConfigError`.
    """
    result, current = plan_config(path, settings, unit_paths, allow_insecure, extra_keys)
    target = result["target"]
    before = attributes(target) if private else None
    if before is not None and before[0] != PRIVATE_MODE:
        # It holds proxy credentials now: readable by root only.
        result["changed"] = True
        result["warnings"].append(f"docker_daemon: {path} holds proxy credentials; its mode becomes 0600 "
                                  f"(was {before[0]:04o}).")
    if not check_mode:
        result["removed_temp_files"] = remove_orphans(target)
        unlink_quietly(rollback_name(target))
    if not result["changed"]:
        return result

    data = result["diff"]["after"].encode("utf-8")
    if check_mode:
        if validate_cmd:
            with private_copy(data, os.path.basename(target)) as candidate:
                run_validation(validate_cmd, candidate, path, run=run)
            result["validated"] = True
        return result

    attrs = attributes(target)
    new_attrs = (PRIVATE_MODE,) + attrs[1:] if private and attrs is not None else attrs
    try:
        tmp = stage_replacement(target, data, new_attrs, PRIVATE_MODE if private else NEW_FILE_MODE)
    except OSError as exc:
        raise DaemonConfigError(f"docker_daemon: cannot write {target}: {exc.strerror or exc}") from None
    try:
        if validate_cmd:
            run_validation(validate_cmd, tmp, path, run=run)
            result["validated"] = True
        if current["exists"]:
            try:
                result.update(keep_previous(target, current, attrs, backup, backup_keep, now))
            except OSError as exc:
                raise DaemonConfigError(
                    f"docker_daemon: cannot keep a copy of {target}: {exc.strerror or exc}; the file was "
                    "left untouched.") from None
        try:
            replace(tmp, target)
        except OSError as exc:
            raise DaemonConfigError(f"docker_daemon: cannot replace {target}: {exc.strerror or exc}") from None
        tmp = None
    finally:
        unlink_quietly(tmp)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": DEFAULT_PATH},
            "settings": {"type": "dict", "required": True},
            "backup": {"type": "bool", "default": True},
            "backup_keep": {"type": "int", "default": 5},
            "validate_with_dockerd": {"type": "str", "default": "auto", "choices": ["auto", "always", "never"]},
            "unit_paths": {"type": "list", "elements": "path", "default": list(DEFAULT_UNIT_PATHS)},
            "allow_insecure": {"type": "bool", "default": False},
            "proxy_http": {"type": "str", "default": "", "no_log": True},
            "proxy_https": {"type": "str", "default": "", "no_log": True},
            "proxy_no_proxy": {"type": "str", "default": ""},
            # Names of daemon.json keys, not their values: nothing secret.
            "extra_keys": {"type": "list", "elements": "str", "default": [], "no_log": False},
        },
        supports_check_mode=True,
    )
    params = module.params

    def run(argv):
        return module.run_command(argv)

    try:
        validate_cmd = None
        if params["validate_with_dockerd"] != "never":
            dockerd = module.get_bin_path("dockerd", opt_dirs=DOCKERD_SEARCH_DIRS)
            validate_cmd = resolve_validate_cmd(params["validate_with_dockerd"], dockerd, run=run)
        proxy = [params["proxy_http"] or "", params["proxy_https"] or "", params["proxy_no_proxy"] or ""]
        result = apply_config(
            params["path"],
            with_proxies(params["settings"], *proxy),
            check_mode=module.check_mode,
            backup=params["backup"],
            backup_keep=params["backup_keep"],
            unit_paths=params["unit_paths"],
            allow_insecure=params["allow_insecure"],
            extra_keys=params["extra_keys"],
            validate_cmd=validate_cmd,
            run=run,
            private=any(proxy),
        )
    except DaemonConfigError as exc:
        module.fail_json(msg=redact_text(exc.msg), path=params["path"], **redact_data(exc.details))
    except (OSError, subprocess.SubprocessError) as exc:
        module.fail_json(msg=redact_text(f"docker_daemon: {params['path']} failed: {exc}"), path=params["path"])

    for warning in result.pop("warnings"):
        module.warn(redact_text(warning))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**redacted(result))


if __name__ == "__main__":
    main()
