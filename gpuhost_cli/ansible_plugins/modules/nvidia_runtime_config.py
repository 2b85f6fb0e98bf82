#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_runtime_config
short_description: Merge settings into the NVIDIA container runtime's config.toml
description:
  - Manages C(/etc/nvidia-container-runtime/config.toml), the configuration of
    C(nvidia-container-runtime), C(nvidia-container-runtime-hook) and
    C(nvidia-container-cli), by setting the keys given in O(settings) in the
    existing file. Everything else in the file is kept as it is, comments
    included, so the commented-out defaults the NVIDIA packages ship, an
    administrator's notes and settings written by C(nvidia-ctk config) survive.
  - Merge rules. Every leaf of O(settings) is set. Nested dictionaries are TOML
    tables; a table that does not exist yet is created. A key the file already
    has with another value, or with a value of another type (V(1) where V(true)
    is wanted), is replaced in place, keeping its line's position and comment.
    A key that holds a table in the file where O(settings) give a value, or
    the other way round, is an error naming the dotted key. Lists replace the
    existing array as a whole. Keys are never removed.
  - A new key goes under its commented-out default when the table has one (the
    NVIDIA packages ship C(#no-cgroups = false) and the like), else after the
    table's last key, so comments above the next table header stay with it. A
    new table goes at the end of its parent table, or of the file.
  - The file is edited with the Python library tomlkit, which keeps comments,
    key order and white space when a TOML document is read and written back,
    so only the lines of keys that change are rewritten. Python's own
    C(tomllib) can only read TOML, and libraries that write it (C(toml),
    C(tomli-w)) drop comments and layout.
  - The file is only rewritten when a value changes. When every value already
    matches, the file keeps its bytes (and its modification time).
  - Before the new text is written it is parsed again (with tomlkit and, on
    Python 3.11 and later, with C(tomllib)) and must give exactly the merged
    data; otherwise the module fails and writes nothing.
  - A file that is not valid TOML or not UTF-8 text makes the module fail with
    the parser's line and column and the path; nothing is written.
  - The file is replaced atomically (temporary file in the same directory,
    created with mode C(0600), fsync, rename). An existing file keeps its mode,
    owner and group; a new file gets C(0644), owned by C(root:root) when the
    module runs as root, and missing parent directories are created with
    C(0755).
  - Temporary files a killed run left next to the file are removed.
author:
  - gpuhost maintainers (!UNKNOWN)
requirements:
  - tomlkit 0.9.2 or later on the managed host (Debian and Ubuntu package
    C(python3-tomlkit); the nvidia_container_toolkit role installs it).
options:
  path:
    description:
      - Path of the runtime configuration file.
      - If it is a symbolic link, the file the link points to is read and
        written and the link is kept.
    type: path
    default: /etc/nvidia-container-runtime/config.toml
  settings:
    description:
      - Keys to set, as they appear in C(config.toml). A dictionary value is a
        table, so a dictionary C(nvidia-container-runtime) holding C(mode) sets
        C(mode) in C([nvidia-container-runtime]); see the examples.
      - Values are strings, booleans, integers, floats or lists of those.
        V(null) is refused (TOML has no null). Keys may not contain a dot;
        write nested dictionaries instead.
      - An empty dictionary sets nothing and creates no table.
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
  - The runtime reads C(config.toml) for every container it starts, so a
    change needs no service restart. Docker or containerd only need a restart
    when their own configuration changes.
  - Keys that only appear commented out in the file (the NVIDIA packages ship
    their defaults that way, for example
    C(#accept-nvidia-visible-devices-as-volume-mounts = false)) do not exist
    for TOML; setting one adds a new line and leaves the comment as it is.
"""

EXAMPLES = r"""
- name: Run containers in CDI mode
  nvidia_runtime_config:
    settings:
      nvidia-container-runtime:
        mode: cdi

- name: Refuse NVIDIA_VISIBLE_DEVICES from unprivileged containers, use volume mounts instead
  nvidia_runtime_config:
    settings:
      accept-nvidia-visible-devices-envvar-when-unprivileged: false
      accept-nvidia-visible-devices-as-volume-mounts: true
  register: runtime_config

- name: Show what changed
  ansible.builtin.debug:
    var: runtime_config.changed_keys

- name: Set the CDI spec directories in a file kept elsewhere, without a backup
  nvidia_runtime_config:
    path: /srv/nvidia/config.toml
    backup: false
    settings:
      nvidia-container-runtime:
        modes:
          cdi:
            spec-dirs:
              - /etc/cdi
              - /var/run/cdi
"""

RETURN = r"""
path:
  description: The configuration file path as given.
  returned: always
  type: str
  sample: /etc/nvidia-container-runtime/config.toml
changed_keys:
  description: Sorted dotted names of the keys whose value is set or changed.
  returned: always
  type: list
  elements: str
  sample: ["accept-nvidia-visible-devices-envvar-when-unprivileged", "nvidia-container-runtime.mode"]
config:
  description:
    - The whole configuration after the merge (what the file contains, or would contain in check mode),
      as plain data. TOML dates and times are given as ISO 8601 strings.
  returned: always
  type: dict
  sample: {"nvidia-container-cli": {"ldconfig": "@/sbin/ldconfig.real"}, "nvidia-container-runtime": {"mode": "cdi"}}
backup_file:
  description: Path of the backup of the previous file, with its mode and owner.
  returned: when a backup was made
  type: str
  sample: /etc/nvidia-container-runtime/config.toml.20240101T120000.bak
removed_backups:
  description: Older backups removed to keep O(backup_keep).
  returned: when a backup was made and old ones were removed
  type: list
  elements: str
  sample: []
removed_temp_files:
  description: Temporary files of a killed run that were removed.
  returned: when not in check mode
  type: list
  elements: str
  sample: []
diff:
  description: The file text before and after, in diff mode.
  returned: in diff mode
  type: dict
  sample:
    before: "[nvidia-container-runtime]\nmode = \"auto\"\n"
    after: "[nvidia-container-runtime]\nmode = \"cdi\"\n"
    before_header: /etc/nvidia-container-runtime/config.toml
    after_header: /etc/nvidia-container-runtime/config.toml
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpuhost_atomic_file import (
    attributes,
    keep_backup,
    remove_orphans,
    replace,
    resolve_path,
    stage_replacement,
    unlink_quietly,
)
from ansible.module_utils.gpuhost_runtime_toml import (
    MISSING_TOMLKIT,
    PREFIX,
    RuntimeConfigError,
    jsonable,
    merge_plain,
    merge_settings,
    normalize_settings,
    plain,
    read_config,
    render_checked,
    tomlkit,
)

DEFAULT_PATH = "/etc/nvidia-container-runtime/config.toml"
NEW_FILE_MODE = 0o644


def plan_config(path, settings):
    """Read and merge; nothing is written. Returns ``(result, current, target)``."""
    settings = normalize_settings(settings)
    target, _is_symlink = resolve_path(path)
    current = read_config(target, path)
    doc = current["doc"]
    before = plain(doc)
    keys = merge_settings(doc, settings, path)
    expected = merge_plain(before, settings)
    before_text = current["text"] if current["text"] is not None else ""
    after_text = render_checked(doc, expected, path, before_text) if keys else before_text
    result = {
        "changed": bool(keys),
        "path": path,
        "changed_keys": keys,
        "config": jsonable(expected),
        "diff": {"before": before_text, "after": after_text, "before_header": path, "after_header": path},
    }
    return result, current, target


def apply_config(path, settings, check_mode=False, backup=True, backup_keep=5, now=None):
    """Merge ``settings`` into the file at ``path``; what the module does.

    Returns the module result (with ``diff`` for ``main`` to hand over or drop); raises
    :class:`RuntimeConfigError`.
    """
    result, current, target = plan_config(path, settings)
    if not check_mode:
        result["removed_temp_files"] = remove_orphans(target)
    if not result["changed"] or check_mode:
        return result

    attrs = attributes(target)
    try:
        tmp = stage_replacement(target, result["diff"]["after"].encode("utf-8"), attrs, NEW_FILE_MODE)
    except OSError as exc:
        raise RuntimeConfigError(f"{PREFIX}: cannot write {target}: {exc.strerror or exc}") from None
    try:
        if current["exists"] and backup:
            try:
                result["backup_file"], removed = keep_backup(current["raw"], target, attrs, backup_keep, now)
                if removed:
                    result["removed_backups"] = removed
            except OSError as exc:
                raise RuntimeConfigError(
                    f"{PREFIX}: cannot back up {target}: {exc.strerror or exc}; the file was left untouched."
                ) from None
        try:
            replace(tmp, target)
        except OSError as exc:
            raise RuntimeConfigError(f"{PREFIX}: cannot replace {target}: {exc.strerror or exc}") from None
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
        },
        supports_check_mode=True,
    )
    params = module.params
    if tomlkit is None:
        if module.check_mode:
            # A dry run on a host the role has not run on yet: the real run installs
            # python3-tomlkit (with the toolkit packages) before this task.
            module.exit_json(skipped=True, changed=False, path=params["path"], msg=(
                "Check mode: python3-tomlkit is not installed yet; a real run installs it with the "
                "toolkit, then merges %s into %s." % (", ".join(sorted(params["settings"])), params["path"])))
        module.fail_json(msg=MISSING_TOMLKIT, path=params["path"])

    try:
        result = apply_config(
            params["path"],
            params["settings"],
            check_mode=module.check_mode,
            backup=params["backup"],
            backup_keep=params["backup_keep"],
        )
    except RuntimeConfigError as exc:
        module.fail_json(msg=exc.msg, path=params["path"], **exc.details)
    except OSError as exc:
        module.fail_json(msg=f"{PREFIX}: {params['path']} failed: {exc}", path=params["path"])

    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
