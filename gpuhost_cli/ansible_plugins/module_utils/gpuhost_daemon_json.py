# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0
"""daemon.json as data: read, parse, merge, compare and format.

Shipped to hosts with the modules that import it (``ansible.module_utils.gpuhost_daemon_json``)
and imported on the controller by gpuhost's filters under the same name.
"""

from __future__ import annotations

import copy
import json

BOM = "\ufeff"


class DaemonConfigError(Exception):
    """A problem that stops the run; ``details`` go into the failure result."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


def json_kind(value) -> str:
    """How a JSON value is called in messages ("a string", "an array", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def show(value, limit: int = 120) -> str:
    """A value as JSON text for a message, shortened to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text


def parse_config_text(text: str, path: str) -> tuple[dict, list[str]]:
    """Parse daemon.json text. Returns ``(data, duplicate_keys)``.

    Empty or whitespace-only text is ``{}``; a leading UTF-8 BOM is ignored.
    """
    if text.startswith(BOM):
        text = text[1:]
    if not text.strip():
        return {}, []

    duplicates: list[str] = []

    def pairs_hook(pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                duplicates.append(key)
            obj[key] = value
        return obj

    def reject_constant(name):
        raise ValueError(f"{name} is not allowed in JSON")

    untouched = "The file was left untouched; fix it by hand or remove it."
    try:
        data = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise DaemonConfigError(
            f"docker_daemon: {path} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}. {untouched}",
            line=exc.lineno, column=exc.colno,
        ) from None
    except (ValueError, RecursionError) as exc:
        raise DaemonConfigError(f"docker_daemon: {path} is not valid JSON: {exc}. {untouched}") from None
    if not isinstance(data, dict):
        raise DaemonConfigError(
            f"docker_daemon: {path} must contain a JSON object at the top level, found "
            f"{json_kind(data)}. {untouched}")
    return data, duplicates


def read_config(target: str, path: str | None = None) -> dict:
    """Read the configuration file.

    Returns a dict with ``data`` (parsed, ``{}`` when missing or empty), ``raw`` (the
    file's bytes, ``None`` when missing), ``text`` (file text without BOM, ``None`` when
    missing), ``bom`` (the file starts with a UTF-8 byte-order mark), ``exists`` and
    ``warnings``.
    """
    path = path or target
    try:
        with open(target, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return {"data": {}, "raw": None, "text": None, "bom": False, "exists": False, "warnings": []}
    except OSError as exc:
        raise DaemonConfigError(f"docker_daemon: cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DaemonConfigError(
            f"docker_daemon: {path} is not UTF-8 text (invalid byte at offset {exc.start}). "
            "The file was left untouched; fix it by hand or remove it.") from None
    bom = text.startswith(BOM)
    if bom:
        text = text[1:]
    data, duplicates = parse_config_text(text, path)
    warnings = [
        f"docker_daemon: key {key!r} appears more than once in {path}; the last value is kept, "
        "as dockerd does."
        for key in sorted(set(duplicates))
    ]
    return {"data": data, "raw": raw, "text": text, "bom": bom, "exists": True, "warnings": warnings}


def normalize_settings(settings) -> dict:
    """Return ``settings`` as plain JSON data (string keys), or fail."""
    if not isinstance(settings, dict):
        raise DaemonConfigError(f"docker_daemon: settings must be a dictionary, got {json_kind(settings)}")
    try:
        return json.loads(json.dumps(settings, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise DaemonConfigError(f"docker_daemon: settings cannot be written as JSON: {exc}") from None


def _merge_into(target: dict, settings: dict) -> None:
    for key, value in settings.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            if not isinstance(current, dict):
                current = {}
            target[key] = current
            _merge_into(current, value)
        else:
            target[key] = copy.deepcopy(value)


def merge_settings(existing: dict, settings: dict) -> dict:
    """Merge ``settings`` into a copy of ``existing`` and return it.

    ``None`` removes a key, dictionaries merge recursively, anything else (lists
    included) replaces the existing value. Existing keys keep their position; new keys
    are appended in the order of ``settings``.
    """
    result = copy.deepcopy(existing)
    _merge_into(result, settings)
    return result


def canonical_json(data) -> str:
    """Order-independent, type-exact text form used to compare configurations."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def config_equal(left, right) -> bool:
    """Equality that tells ``true`` from ``1`` and ``1`` from ``1.0``; key order is ignored."""
    return canonical_json(left) == canonical_json(right)


def changed_keys(before: dict, after: dict) -> list[str]:
    """Sorted top-level keys added, removed or changed between two configurations."""
    return sorted(
        key for key in set(before) | set(after)
        if (key in before) != (key in after) or not config_equal(before[key], after[key])
    )


def format_config(data: dict) -> str:
    """The text written to the file: 4-space indentation, key order kept, final newline."""
    return json.dumps(data, indent=4, ensure_ascii=False, allow_nan=False) + "\n"
