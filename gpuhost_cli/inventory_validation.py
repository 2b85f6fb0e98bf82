"""Strict checks of the gpuhost variables an inventory sets, run before any host changes.

Ansible's role argument specs let three kinds of mistakes pass silently:

* a misspelled variable (``docker_daemon_registry_mirror`` for
  ``docker_daemon_registry_mirrors``) is simply ignored, and the role's default is used;
* a string such as ``"a,b"`` where a list belongs is converted to a list;
* a string such as ``"yes"`` where a boolean belongs is converted to a boolean.

This module reads the roles' ``meta/argument_specs.yml`` files and checks a host's
variables against them strictly. It is pure Python (PyYAML only) so that the
``gpuhost_validate_inventory`` action plugin, the command line and the tests share it.

Only variables whose names start with one of gpuhost's prefixes are looked at: the name of
each role followed by ``_`` (``docker_daemon_``, ``nvidia_container_toolkit_``, ...) and
``gpuhost_``. Anything else in an inventory belongs to someone else and is never reported.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "IGNORE_VARIABLE",
    "INTERNAL_ROLES",
    "HOST_SETTINGS",
    "PLAYBOOK_VARIABLES",
    "PREFIX",
    "SUPPORTED_TYPES",
    "OptionSpec",
    "SpecError",
    "load_catalog",
    "ignored_names",
    "load_specs",
    "role_prefixes",
    "validate_vars",
]

#: Prefix of the playbook-level variables that belong to no role.
PREFIX = "gpuhost_"

#: The host variable that lists variable names the checks leave alone.
IGNORE_VARIABLE = "gpuhost_validate_ignore_vars"

#: Roles that other roles include with their own arguments; inventories never set their
#: variables, so their options are neither known names nor their names prefixes.
INTERNAL_ROLES: tuple[str, ...] = ("apt_source", "offline_bundle")

#: The argument spec types the checks understand.
SUPPORTED_TYPES = frozenset({"str", "bool", "int", "float", "list", "dict", "path", "raw"})

_MAX_REPR = 60
_TRUE_WORDS = frozenset({"yes", "y", "true", "on", "1"})
_FALSE_WORDS = frozenset({"no", "n", "false", "off", "0"})


class SpecError(ValueError):
    """An argument spec file that cannot be used for the checks."""


@dataclass(frozen=True)
class OptionSpec:
    """What an argument spec says about one variable."""

    name: str
    type: str = "str"
    elements: str | None = None
    choices: tuple[Any, ...] | None = None
    required: bool = False
    role: str | None = None

    def describe(self) -> str:
        """The expected type in words, e.g. 'a list of str' or 'an int'."""
        if self.type == "list":
            return f"a list of {self.elements}" if self.elements and self.elements != "raw" else "a list"
        return _TYPE_WORDS.get(self.type, f"a {self.type}")


_TYPE_WORDS = {
    "str": "a str",
    "path": "a path (a str)",
    "bool": "a bool (true or false)",
    "int": "an int",
    "float": "a float",
    "dict": "a dict (a YAML mapping)",
    "raw": "any value",
}

#: gpuhost's playbook-level variables, which belong to no role's argument spec. Variables
#: of the gpuhost_* roles (gpuhost_verify_image, ...) are in those roles' specs.
PLAYBOOK_VARIABLES: dict[str, OptionSpec] = {
    spec.name: spec
    for spec in (
        OptionSpec(IGNORE_VARIABLE, type="list", elements="str"),
        OptionSpec("gpuhost_render_host", type="str"),
        OptionSpec("gpuhost_render_offline", type="bool"),
        OptionSpec("gpuhost_rollout_batches", type="list", elements="raw"),
        OptionSpec("gpuhost_rollout_max_fail_percentage", type="int"),
        OptionSpec("gpuhost_rollout_verify", type="bool"),
        OptionSpec("gpuhost_full_run", type="bool"),
        # Hosts behind an HTTP proxy: the roles' *_proxy_* options default to these.
        OptionSpec("gpuhost_proxy_http", type="str"),
        OptionSpec("gpuhost_proxy_https", type="str"),
        OptionSpec("gpuhost_proxy_no_proxy", type="list", elements="str"),
        # Air-gapped hosts: the docker and nvidia_container_toolkit roles install from this bundle.
        OptionSpec("gpuhost_offline_bundle", type="str"),
        OptionSpec("gpuhost_offline_bundle_fingerprint", type="str"),
    )
}

#: Playbook-level variables that are settings of the hosts (the roles' defaults read them):
#: part of the inputs of each role that names them, for the converged-host plan.
HOST_SETTINGS: tuple[str, ...] = ("gpuhost_proxy_http", "gpuhost_proxy_https", "gpuhost_proxy_no_proxy",
                                  "gpuhost_offline_bundle", "gpuhost_offline_bundle_fingerprint")


# ---- Reading the argument specs ------------------------------------------------------


def _role_name(spec_file: str | os.PathLike[str]) -> str:
    """roles/<role>/meta/argument_specs.yml -> <role>."""
    return Path(spec_file).resolve().parent.parent.name


def _spec_options(spec_file: str | os.PathLike[str]) -> Mapping[str, Any]:
    path = Path(spec_file)
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read argument spec {path}: {exc}") from exc
    try:
        options = data["argument_specs"]["main"].get("options") or {}
    except (KeyError, TypeError, AttributeError) as exc:
        raise SpecError(f"{path} has no argument_specs.main entry") from exc
    if not isinstance(options, Mapping):
        raise SpecError(f"{path}: argument_specs.main.options must be a mapping")
    return options


def _option_spec(name: str, attrs: Any, role: str, spec_file: str | os.PathLike[str]) -> OptionSpec:
    if attrs is None:
        attrs = {}
    if not isinstance(attrs, Mapping):
        raise SpecError(f"{spec_file}: option {name} must be a mapping")
    kind = attrs.get("type", "str")
    elements = attrs.get("elements")
    for what, value in (("type", kind), ("elements", elements)):
        if value is not None and value not in SUPPORTED_TYPES:
            raise SpecError(
                f"{spec_file}: option {name} has {what} {value!r}; supported: {', '.join(sorted(SUPPORTED_TYPES))}"
            )
    choices = attrs.get("choices")
    return OptionSpec(
        name=name,
        type=kind,
        elements=elements if kind == "list" else None,
        choices=tuple(choices) if choices is not None else None,
        required=bool(attrs.get("required", False)),
        role=role,
    )


def _public_spec_files(
    spec_files: Iterable[str | os.PathLike[str]], internal_roles: Iterable[str]
) -> list[str | os.PathLike[str]]:
    internal = set(internal_roles)
    return [f for f in spec_files if _role_name(f) not in internal]


def load_specs(
    spec_files: Iterable[str | os.PathLike[str]],
    internal_roles: Iterable[str] = INTERNAL_ROLES,
) -> dict[str, OptionSpec]:
    """Read roles' meta/argument_specs.yml files into one mapping of variable name -> spec.

    The role of a spec file is the directory two levels above it. Roles named in
    ``internal_roles`` are skipped: other roles pass their arguments, inventories never
    set them.
    """
    specs: dict[str, OptionSpec] = {}
    for spec_file in _public_spec_files(spec_files, internal_roles):
        role = _role_name(spec_file)
        for name, attrs in _spec_options(spec_file).items():
            specs[str(name)] = _option_spec(str(name), attrs, role, spec_file)
    return specs


def role_prefixes(
    spec_files: Iterable[str | os.PathLike[str]],
    internal_roles: Iterable[str] = INTERNAL_ROLES,
) -> set[str]:
    """The name prefixes that mark gpuhost's variables: '<role>_' for each role, and 'gpuhost_'."""
    prefixes = {PREFIX}
    prefixes.update(f"{_role_name(f)}_" for f in _public_spec_files(spec_files, internal_roles))
    return prefixes


def load_catalog(
    spec_files: Iterable[str | os.PathLike[str]],
    internal_roles: Iterable[str] = INTERNAL_ROLES,
) -> tuple[dict[str, OptionSpec], set[str]]:
    """load_specs() and role_prefixes() of the same files."""
    files = list(spec_files)
    return load_specs(files, internal_roles), role_prefixes(files, internal_roles)


# ---- Checking values -----------------------------------------------------------------


def _plain(value: Any) -> Any:
    """The value as plain Python types, so that its repr is the familiar one."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _short(value: Any) -> str:
    text = repr(_plain(value))
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _got(value: Any) -> str:
    """The value with its type, e.g. "str 'yes'" or "float 27.5"."""
    if value is None:
        return "an empty value (null)"
    for kind in (bool, str, int, float, dict, list):
        if isinstance(value, kind):
            return f"{kind.__name__} {_short(value)}"
    return f"{type(value).__name__} {_short(value)}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number_text(value: str) -> bool:
    try:
        return math.isfinite(float(value.strip()))
    except ValueError:
        return False


def _yaml_scalar(text: str) -> str:
    """The text as it would be written in a YAML flow sequence."""
    dumped = yaml.safe_dump([text], default_flow_style=True).strip()
    return dumped[1:-1]


def _bool_fix(value: Any) -> str:
    word = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if word in _TRUE_WORDS:
        return "write true, without quotes"
    if word in _FALSE_WORDS:
        return "write false, without quotes"
    return "write true or false, without quotes"


def _type_problem(value: Any, kind: str, name: str | None) -> str | None:
    """The fix for a value that does not have the type, or None if it has it.

    ``name`` is the variable's name, used in examples; None for an item of a list.
    """
    lead = f"{name}: " if name else ""
    if kind == "raw":
        return None
    if value is None:
        return "give a value, or remove the line to use the default"
    if kind == "bool":
        return None if isinstance(value, bool) else _bool_fix(value)
    if kind == "int":
        if _is_int(value):
            return None
        if isinstance(value, str) and _is_number_text(value) and float(value.strip()).is_integer():
            return f"drop the quotes: {lead}{int(float(value.strip()))}"
        if isinstance(value, float) and value.is_integer():
            return f"write a whole number: {lead}{int(value)}"
        return "write a whole number, without quotes"
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        if isinstance(value, str) and _is_number_text(value):
            return f"drop the quotes: {lead}{value.strip()}"
        return "write a number, without quotes"
    if kind in ("str", "path"):
        if isinstance(value, str):
            return None
        if isinstance(value, bool):
            return "quote the value: YAML reads unquoted yes/no/true/false/on/off as booleans"
        if isinstance(value, (int, float)):
            return f'quote the value as written, e.g. {lead}"{value}" (YAML reads it as a number)'
        return "give a single string"
    if kind == "list":
        if isinstance(value, list):
            return None
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
            example = "[" + ", ".join(_yaml_scalar(item) for item in items) + "]"
            if len(example) > _MAX_REPR:
                example = example[: _MAX_REPR - 4] + "...]"
            return f"write a YAML list, not a string: {lead}{example}"
        if isinstance(value, Mapping):
            return "write a YAML list ([a, b] or one '- item' per line), not a mapping"
        return f"write a YAML list: {lead}[{_short(value)}]"
    if kind == "dict":
        if isinstance(value, Mapping):
            return None
        return "write a YAML mapping (key: value lines, or {key: value})"
    raise SpecError(f"unsupported type {kind!r}")


def _choice_problem(value: Any, choices: tuple[Any, ...]) -> str | None:
    if value in choices:
        return None
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"set it to one of: {', '.join(str(c) for c in choices)}{hint}"


def _check_value(host: str, name: str, value: Any, spec: OptionSpec) -> list[str]:
    where = f"host {host}: variable {name!r}"
    fix = _type_problem(value, spec.type, name)
    if fix is not None:
        return [f"{where}: expected {spec.describe()}, got {_got(value)}; {fix}"]

    errors: list[str] = []
    if spec.type == "list":
        elements = spec.elements or "raw"
        for index, item in enumerate(value, start=1):
            item_where = f"{where}, item {index}"
            item_spec = OptionSpec(name=name, type=elements)
            fix = _type_problem(item, elements, None)
            if fix is not None:
                errors.append(
                    f"{item_where}: expected {item_spec.describe()}, got {_got(item)}; {fix}"
                )
                continue
            if spec.choices is not None:
                fix = _choice_problem(item, spec.choices)
                if fix is not None:
                    errors.append(f"{item_where}: expected one of the choices, got {_short(item)}; {fix}")
        return errors

    if spec.choices is not None:
        fix = _choice_problem(value, spec.choices)
        if fix is not None:
            errors.append(f"{where}: expected {spec.describe()} from the choices, got {_short(value)}; {fix}")
    return errors


def _unknown_message(host: str, name: str, known: Iterable[str], prefixes: Iterable[str]) -> str:
    suggestions = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.8)
    if suggestions:
        quoted = " or ".join(repr(s) for s in suggestions)
        return (
            f"host {host}: unknown variable {name!r}; did you mean {quoted}? "
            "(a misspelled variable is otherwise silently ignored)"
        )
    prefix = max((p for p in prefixes if name.startswith(p)), key=len)
    return (
        f"host {host}: unknown variable {name!r}: it starts with {prefix!r} but is not a gpuhost variable "
        "(a misspelled variable is otherwise silently ignored); if another role uses it, "
        f"add it to {IGNORE_VARIABLE}: [{name}]"
    )


def ignored_names(variables: Mapping[str, Any], ignore: Iterable[str] = ()) -> set[str]:
    """The variable names the checks leave alone: ``ignore`` and the host's own list.

    The host's gpuhost_validate_ignore_vars counts only when it is a list of strings
    (validate_vars reports it otherwise); the variable itself is always skipped after
    its own check.
    """
    names = set(ignore)
    host_ignore = variables.get(IGNORE_VARIABLE)
    if isinstance(host_ignore, list) and all(isinstance(item, str) for item in host_ignore):
        names.update(str(item) for item in host_ignore)
    names.add(IGNORE_VARIABLE)
    return names


def validate_vars(
    host: str,
    variables: Mapping[str, Any],
    specs: Mapping[str, OptionSpec],
    prefixes: Iterable[str],
    ignore: Iterable[str] = (),
    extra_specs: Mapping[str, OptionSpec] | None = None,
    unrendered: Iterable[str] = (),
) -> list[str]:
    """Check one host's variables; return one error message per problem (none: all good).

    Only variables whose names start with one of ``prefixes`` are checked. Each must be a
    known option (of ``specs`` or ``extra_specs``, which defaults to PLAYBOOK_VARIABLES)
    with a value of exactly the declared type: no string where a list or a boolean
    belongs, no quoted number where an int belongs. Names in ``ignore`` or in the host's
    ``gpuhost_validate_ignore_vars`` are skipped. Names in ``unrendered`` are variables
    whose values could not be rendered yet (they need facts, say): only their names are
    checked.
    """
    known: dict[str, OptionSpec] = dict(PLAYBOOK_VARIABLES if extra_specs is None else extra_specs)
    known.update(specs)
    prefixes = tuple(prefixes)

    errors: list[str] = []
    skip = set(ignore)
    if IGNORE_VARIABLE in variables and IGNORE_VARIABLE not in skip:
        spec = known.get(IGNORE_VARIABLE, PLAYBOOK_VARIABLES[IGNORE_VARIABLE])
        errors.extend(_check_value(host, IGNORE_VARIABLE, variables[IGNORE_VARIABLE], spec))
    skip |= ignored_names(variables, ignore)

    for name in sorted(set(variables) | set(unrendered), key=str):
        if not isinstance(name, str) or name in skip or not name.startswith(prefixes):
            continue
        spec = known.get(name)
        if spec is None:
            errors.append(_unknown_message(host, name, known, prefixes))
        elif name in variables:
            errors.extend(_check_value(host, name, variables[name], spec))
    return errors
