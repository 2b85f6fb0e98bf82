"""Checks of what a user hands the command line, before anything runs.

Each check raises :class:`UserError` with one short sentence that names the input and
what to do; the command line prints it as ``gpuhost: <message>`` without a traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["UserError", "check_inventory", "check_limit", "inventory_rollout_settings", "parse_extra_vars"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UserError(Exception):
    """A mistake in the user's input; ``code`` is the exit status (2, as for usage errors)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _shown(text: str, width: int = 300) -> str:
    """A user's input as it goes into a one-line message: cut short, control characters escaped."""
    shown = text if len(text) <= width else text[:width - 5] + "…" + text[-4:]
    return shown.encode("unicode_escape").decode("ascii") if not shown.isprintable() else shown


def check_inventory(inventory: str | os.PathLike[str]) -> Path:
    """The inventory as an absolute path; it must exist and be readable."""
    text = str(inventory)
    if not text:
        raise UserError("no inventory given; pass -i INVENTORY (a hosts.yml file or an inventory directory)")
    shown = _shown(text)
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~name of no user, or no home directory
        raise UserError(f"inventory '{shown}': cannot find the home directory its '~' names; "
                        f"give the path without '~'") from None
    try:
        if not path.exists():
            raise UserError(f"inventory '{shown}' not found")
        if path.is_dir():
            if not os.access(path, os.R_OK | os.X_OK):
                raise UserError(f"inventory '{shown}' is not readable")
        elif not path.is_file() or not os.access(path, os.R_OK):
            raise UserError(f"inventory '{shown}' is not readable")
        return path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a name too long, a link loop, a NUL byte
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"inventory '{shown}' cannot be used: {reason}") from None


def check_limit(limit: str | None) -> str | None:
    """``--limit`` as Ansible takes it; an empty pattern or one with control characters is refused.

    Ansible reads an empty ``--limit`` as no limit at all, so a script whose variable came
    out empty would roll out every host: refuse it instead.
    """
    if limit is None:
        return None
    if not limit.strip(" ,:"):
        raise UserError("--limit is empty; give host or group names (--limit gpu-node-1,gpu-node-2), "
                        "or leave --limit out to run on every host")
    if not limit.isprintable():
        raise UserError(f"--limit '{_shown(limit)}' holds control characters; give host or group names "
                        f"separated by commas")
    return limit


def _error_place(exc: Exception) -> str:
    """" (line L, column C)" of a YAML or JSON error, or ""."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f" (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, json.JSONDecodeError):
        return f" (line {exc.lineno}, column {exc.colno})"
    return ""


def _mapping(text: str, what: str, hint: str = "", json_first: bool = True) -> dict[str, Any]:
    """The mapping of variable names to values ``text`` holds, as Ansible reads extra vars
    (JSON, else YAML); ``what`` names the input in the UserError that says what is wrong."""
    try:
        try:
            data = json.loads(text) if json_first else yaml.safe_load(text)
        except ValueError:
            data = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UserError(f"{what} is not valid YAML or JSON{_error_place(exc)}{hint}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{what} must hold a mapping of variable names to values, not a {type(data).__name__}{hint}")
    for key in data:
        if not isinstance(key, str) or not _NAME.match(key):
            raise UserError(f"{what}: {key!r} is not a valid variable name")
    return data


def _load_vars_file(spec: str) -> dict[str, Any]:
    name = spec[1:]
    if not name:
        raise UserError("-e @ needs a file name: -e @vars.yml")
    path = Path(name).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"extra vars file '{name}' not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"extra vars file '{name}' is not readable: {getattr(exc, 'strerror', None) or exc}") from None
    return _mapping(text, f"extra vars file '{name}'", json_first=path.suffix == ".json")


_PAIR_HINT = ("write key=value (several separated by spaces; the value is read as YAML: 3, true, [a, b]; "
              "quote a value with spaces: key='a b'), a mapping '{\"key\": value}' or @file.yml")


def _parse_pairs(spec: str) -> dict[str, Any]:
    """``key=value`` pairs, split and unquoted by Ansible's own parser (parse_kv). An unquoted
    value is read as YAML (3, true, [a, b]); a quoted one is the text as written.

    One ``key=value`` whose value has spaces (``docker_users=[alice, bob]``) is one variable.
    """
    from ansible.errors import AnsibleError
    from ansible.parsing.quoting import is_quoted
    from ansible.parsing.splitter import parse_kv, split_args

    shown = _shown(spec)
    try:
        tokens = split_args(spec)
    except AnsibleError:
        raise UserError(f"-e '{shown}': a quote or a {{{{ }}}} is not closed; {_PAIR_HINT}") from None
    free = [token for token in tokens if "=" not in token]
    if free and "=" in tokens[0] and all("=" not in token for token in tokens[1:]):
        tokens = [spec.strip()]  # key=value with spaces in the value: one variable, as gpuhost always read it
    elif len(free) == len(tokens):
        raise UserError(f"-e '{shown}': {_PAIR_HINT}")
    elif free:
        raise UserError(f"-e '{shown}': '{_shown(free[0])}' is not key=value; {_PAIR_HINT}")
    pairs: dict[str, Any] = {}
    for token in tokens:
        key, raw = (token.split("=", 1) + [""])[:2]
        key, raw = key.strip(), raw.strip()
        if not _NAME.match(key):
            raise UserError(f"-e '{shown}': '{_shown(key)}' is not a valid variable name")
        if is_quoted(raw) or not raw:
            pairs[key] = str(parse_kv(token)[key])
            continue
        try:
            pairs[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UserError(f"-e '{shown}': the value of {key} is not valid YAML; "
                            f"quote it: {key}='\"{raw}\"'") from None
    return pairs


def parse_extra_vars(specs: Iterable[str] | None) -> dict[str, Any]:
    """Merge ``-e`` arguments into one dict of typed values, as ansible-playbook takes them.

    Each is ``@file`` (a YAML or JSON mapping), a YAML or JSON mapping (``{"key": value}``),
    or ``key=value`` pairs, split and unquoted as Ansible's parse_kv does, whose unquoted
    values are read as YAML: ``n=3`` gives the int 3, ``flag=true`` a bool, ``users=[a, b]``
    a list. An empty or blank argument adds nothing. A later argument overrides an earlier one, key
    by key, as in ansible-playbook. Anything else is a UserError that says how to write it.
    """
    merged: dict[str, Any] = {}
    for spec in specs or ():
        if not spec.strip():
            continue
        if spec.startswith("@"):
            merged.update(_load_vars_file(spec))
        elif spec.startswith(("/", ".")):
            raise UserError(f"-e '{_shown(spec)}': to read variables from a file, write -e @{_shown(spec)}")
        elif spec.startswith(("{", "[")):
            merged.update(_mapping(spec, f"-e '{_shown(spec)}'",
                                   hint="; write a mapping such as -e '{\"key\": value}', or key=value"))
        else:
            merged.update(_parse_pairs(spec))
    return merged


def _group_hosts(listing: Mapping[str, Any], group: str, seen: set[str] | None = None) -> list[str]:
    seen = seen if seen is not None else set()
    if group in seen:
        return []
    seen.add(group)
    entry = listing.get(group) or {}
    hosts = list(entry.get("hosts") or [])
    for child in entry.get("children") or []:
        hosts.extend(h for h in _group_hosts(listing, child, seen) if h not in hosts)
    return hosts


def inventory_rollout_settings(inventory: str | os.PathLike[str], env: Mapping[str, str],
                               group: str = "gpu_hosts") -> dict[str, Any]:
    """gpuhost_rollout_batches and gpuhost_rollout_max_fail_percentage as the inventory sets them.

    Read with ``ansible-inventory --list``, because Ansible hands a play's batch sizes only
    extra vars. A setting the hosts do not agree on is an error that names two of them.
    """
    try:
        done = subprocess.run(["ansible-inventory", "-i", str(inventory), "--list"], capture_output=True,
                              text=True, env=dict(env), timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"cannot read the inventory {inventory} with ansible-inventory: {exc}") from None
    if done.returncode != 0:
        raise UserError(f"cannot read the inventory {inventory}: {done.stderr.strip()[-500:]}")
    try:
        listing = json.loads(done.stdout)
    except ValueError:
        raise UserError(f"ansible-inventory printed no JSON for {inventory}") from None
    from gpuhost_cli.rollout import BATCHES_VARIABLE, MAX_FAIL_VARIABLE

    hostvars = (listing.get("_meta") or {}).get("hostvars") or {}
    settings: dict[str, Any] = {}
    for name in (BATCHES_VARIABLE, MAX_FAIL_VARIABLE):
        values = {}
        for host in _group_hosts(listing, group):
            if name in (hostvars.get(host) or {}):
                values[host] = hostvars[host][name]
        distinct = {json.dumps(v, sort_keys=True) for v in values.values()}
        if len(distinct) > 1:
            first, second = list(values)[:1], [h for h in values if values[h] != values[list(values)[0]]][:1]
            raise UserError(
                f"{name} differs between hosts ({first[0]}: {json.dumps(values[first[0]])}, "
                f"{second[0]}: {json.dumps(values[second[0]])}); a rollout has one set of batches: "
                f"set it once for the group {group}")
        if values:
            settings[name] = next(iter(values.values()))
    return settings
