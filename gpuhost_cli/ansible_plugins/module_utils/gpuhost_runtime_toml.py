# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0
"""The NVIDIA container runtime's config.toml as data: read, merge, compare, write back.

Shipped to hosts with the module that imports it
(``ansible.module_utils.gpuhost_runtime_toml``). The file is edited with tomlkit, which
keeps comments, key order and white space on a round trip, so only the lines of the
keys that change are rewritten.

Only tomlkit API present since 0.9.2 (Ubuntu 22.04's python3-tomlkit) is used:
``parse``, ``document``, ``table``, ``dumps``, item assignment and the item classes.
``unwrap()`` (0.11.0 and later, with fixes until 0.11.6) is not: :func:`plain` turns
tomlkit's items into plain Python values on every version.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping

try:
    import tomlkit
    from tomlkit.container import Container
    from tomlkit.exceptions import ParseError, TOMLKitError
    from tomlkit.items import AoT, Bool, Comment, Item, Table
except ImportError:  # checked by the module, which fails with MISSING_TOMLKIT
    tomlkit = None

try:  # Python 3.11 and later: a second, independent parser for the candidate
    import tomllib
except ImportError:
    tomllib = None

MISSING_TOMLKIT = ("python3-tomlkit is not installed on this host: the nvidia_container_toolkit role installs it "
                   "(apt install python3-tomlkit)")
PREFIX = "nvidia_runtime_config"
UNTOUCHED = "The file was left untouched; fix it by hand or remove it."


class RuntimeConfigError(Exception):
    """A problem that stops the run; ``details`` go into the failure result."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


def require_tomlkit() -> None:
    if tomlkit is None:
        raise RuntimeConfigError(MISSING_TOMLKIT)


# ---------------------------------------------------------------------------
# Plain values
# ---------------------------------------------------------------------------

def plain(value):
    """``value`` (a tomlkit document, table, array or item) as plain Python data.

    Tables become ``dict``, arrays ``list``, and scalars ``bool``, ``int``, ``float``,
    ``str`` or ``datetime``/``date``/``time`` objects, never tomlkit's subclasses.
    """
    if isinstance(value, Mapping):
        return {str(key): plain(value[key]) for key in value}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if tomlkit is not None and isinstance(value, Bool):
        return bool(value.value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, datetime.datetime):
        return datetime.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                                 value.microsecond, tzinfo=value.tzinfo)
    if isinstance(value, datetime.date):
        return datetime.date(value.year, value.month, value.day)
    if isinstance(value, datetime.time):
        return datetime.time(value.hour, value.minute, value.second, value.microsecond, tzinfo=value.tzinfo)
    if tomlkit is not None and isinstance(value, Item):
        return plain(value.value)
    return value


def jsonable(value):
    """Plain data with dates and times as ISO 8601 text, as a module result can carry them."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value


def _kind(value) -> str:
    """How a value is called in messages; also the type that :func:`same_value` compares."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    if value is None:
        return "null"
    return type(value).__name__


def same_value(left, right) -> bool:
    """Equality of plain TOML values that tells ``true`` from ``1`` and ``1`` from ``1.0``."""
    if _kind(left) != _kind(right):
        return False
    if isinstance(left, Mapping):
        return set(left) == set(right) and all(same_value(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same_value(a, b) for a, b in zip(left, right))
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    return left == right


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

def _check_leaf(value, dotted: str) -> None:
    if value is None:
        raise RuntimeConfigError(
            f"{PREFIX}: settings.{dotted} is null; TOML has no null. Give a value, or leave the key out "
            "(this module never removes keys).")
    if isinstance(value, float) and not math.isfinite(value):
        raise RuntimeConfigError(f"{PREFIX}: settings.{dotted} is {value}; give a finite number.")
    if isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if isinstance(item, (Mapping, list, tuple)) or item is None:
                raise RuntimeConfigError(
                    f"{PREFIX}: settings.{dotted}[{index}] is {_kind(item)}; arrays may only hold strings, "
                    "booleans, integers and floats.")
            _check_leaf(item, f"{dotted}[{index}]")
        return
    raise RuntimeConfigError(
        f"{PREFIX}: settings.{dotted} is {_kind(value)}; use a string, boolean, integer, float, a list of "
        "those, or a dictionary for a table.")


def normalize_settings(settings, prefix: str = "") -> dict:
    """Check ``settings`` and return a copy with lists for tuples; raise on anything TOML cannot take."""
    where = "settings." + prefix[:-1] if prefix else "settings"
    if not isinstance(settings, Mapping):
        raise RuntimeConfigError(f"{PREFIX}: {where} must be a dictionary, got {_kind(settings)}.")
    result = {}
    for key, value in settings.items():
        if not isinstance(key, str) or not key:
            raise RuntimeConfigError(f"{PREFIX}: {where} has the key {key!r}; keys must be non-empty strings.")
        if "." in key:
            table, rest = key.split(".", 1)
            raise RuntimeConfigError(
                f"{PREFIX}: the key {key!r} in {where} contains a dot; write tables as nested dictionaries "
                f"(for example {{{table!r}: {{{rest!r}: ...}}}}).")
        dotted = prefix + key
        if isinstance(value, Mapping):
            result[key] = normalize_settings(value, dotted + ".")
        else:
            _check_leaf(value, dotted)
            result[key] = list(value) if isinstance(value, tuple) else value
    return result


# ---------------------------------------------------------------------------
# Reading and parsing
# ---------------------------------------------------------------------------

_POSITION = re.compile(r" at line \d+ col \d+$")


def parse_text(text: str, path: str):
    """Parse TOML text with tomlkit; raise with the parser's line and column."""
    require_tomlkit()
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        said = _POSITION.sub("", str(exc))
        raise RuntimeConfigError(
            f"{PREFIX}: {path} is not valid TOML: {said} at line {exc.line}, column {exc.col}. {UNTOUCHED}",
            line=exc.line, column=exc.col) from None
    except (TOMLKitError, ValueError, RecursionError) as exc:
        raise RuntimeConfigError(f"{PREFIX}: {path} is not valid TOML: {exc}. {UNTOUCHED}") from None


def read_config(target: str, path: str | None = None) -> dict:
    """Read and parse the file.

    Returns a dict with ``doc`` (the tomlkit document, empty when the file is missing),
    ``raw`` (the file's bytes, ``None`` when missing), ``text`` (``None`` when missing)
    and ``exists``.
    """
    require_tomlkit()
    path = path or target
    try:
        with open(target, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return {"doc": tomlkit.document(), "raw": None, "text": None, "exists": False}
    except OSError as exc:
        raise RuntimeConfigError(f"{PREFIX}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuntimeConfigError(
            f"{PREFIX}: {path} is not UTF-8 text (invalid byte at offset {exc.start}). {UNTOUCHED}") from None
    return {"doc": parse_text(text, path), "raw": raw, "text": text, "exists": True}


# ---------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------

def _conflict(dotted: str, found, wanted: str, path: str) -> RuntimeConfigError:
    found_kind = "an array of tables" if isinstance(found, AoT) else _kind(plain(found))
    return RuntimeConfigError(
        f"{PREFIX}: {dotted} is {found_kind} in {path}, but settings give {wanted}. The module does not "
        "turn a table into a value or a value into a table; fix the file or the settings. The file was "
        "left untouched.", key=dotted)


def _lines_of(container):
    """The tomlkit container holding the lines of a document or ``[table]``; ``None`` for others."""
    if isinstance(container, Container):
        return container
    if isinstance(container, Table) and isinstance(container.value, Container):
        return container.value
    return None


def _anchor(lines, key: str) -> int | None:
    """Index of the line a new ``key`` goes after: its commented-out default, else the last key."""
    commented = re.compile(r"#\s*" + re.escape(key) + r"\s*=")
    last_key = None
    for index, (name, item) in enumerate(lines.body):
        if name is None and isinstance(item, Comment) and commented.match(item.trivia.comment):
            return index
        if name is not None and not isinstance(item, (Table, AoT)):
            last_key = index
    return last_key


def _add_value(container, key: str, value) -> None:
    """Add a new key: under its commented-out default (as the NVIDIA packages ship them), else
    after the table's last key, so comments above the next table header stay with it.

    tomlkit has no public way to insert at a position; ``Container._insert_at`` (present from
    0.9.2 on) is used where it exists, and the key is appended otherwise.
    """
    lines = _lines_of(container)
    index = _anchor(lines, key) if lines is not None and hasattr(lines, "_insert_at") else None
    if index is None or index + 1 >= len(lines.body):
        container[key] = value
        return
    item = tomlkit.item(value)
    item.trivia.indent = lines.body[index][1].trivia.indent.rsplit("\n", 1)[-1]
    lines._insert_at(index + 1, key, item)
    if container is not lines:
        dict.__setitem__(container, key, item)


def _merge_into(container, settings: dict, prefix: str, changed: list, path: str, fresh: bool = False) -> None:
    """Set ``settings`` in ``container``; ``fresh`` when this run created the container."""
    for key, value in settings.items():
        dotted = prefix + key
        exists = key in container
        current = container[key] if exists else None
        if isinstance(value, dict):
            if exists:
                if isinstance(current, AoT) or not isinstance(current, Mapping):
                    raise _conflict(dotted, current, "a table", path)
            elif not value:
                continue
            else:
                container[key] = tomlkit.table()
                current = container[key]
            _merge_into(current, value, dotted + ".", changed, path, fresh=not exists)
            if not exists and not fresh and isinstance(container, Table) \
                    and not any(isinstance(item, dict) for item in value.values()):
                # A new [table] goes at the end of an existing one, which may be followed by
                # other tables: keep a blank line before them (trimmed again at the file's end).
                current.add(tomlkit.nl())
            continue
        if exists:
            if isinstance(current, (Mapping, AoT)):
                raise _conflict(dotted, current, _kind(value), path)
            if same_value(plain(current), value):
                continue
            container[key] = value
        else:
            _add_value(container, key, value)
        changed.append(dotted)


def merge_plain(data: dict, settings: dict) -> dict:
    """What :func:`merge_settings` makes of the file, computed on plain data only."""
    result = dict(data)
    for key, value in settings.items():
        if isinstance(value, dict):
            if key in result or value:
                result[key] = merge_plain(result.get(key, {}), value)
        else:
            result[key] = value
    return result


def merge_settings(doc, settings: dict, path: str) -> list[str]:
    """Set every leaf of ``settings`` in ``doc`` (in place); return the sorted dotted keys changed.

    Missing tables are created; keys, tables and comments not named in ``settings`` are
    left as they are, and a leaf that already holds the same value (type included) is not
    touched at all.
    """
    changed: list[str] = []
    _merge_into(doc, settings, "", changed, path)
    return sorted(changed)


_TRAILING_NEWLINES = re.compile(r"(?:\r?\n)+\Z")


def _trailing_newlines(text: str) -> int:
    match = _TRAILING_NEWLINES.search(text)
    return match.group(0).count("\n") if match else 0


def render_checked(doc, expected: dict, path: str, before: str = "") -> str:
    """``doc`` as text, after checking that the text parses back to ``expected``.

    The text ends with no more line breaks than ``before`` (the file's previous text), or
    one. It is parsed again with tomlkit and, where Python has it, with ``tomllib``; a
    difference (a rendering bug of the installed tomlkit) fails before anything is written.
    """
    text = tomlkit.dumps(doc)
    keep = max(_trailing_newlines(before), 1)
    match = _TRAILING_NEWLINES.search(text)
    if match and match.group(0).count("\n") > keep:
        newline = "\r\n" if match.group(0).startswith("\r") else "\n"
        text = text[:match.start()] + newline * keep
    parsers = [("tomlkit", lambda t: plain(tomlkit.parse(t)))]
    if tomllib is not None:
        parsers.append(("tomllib", tomllib.loads))
    for name, parse in parsers:
        try:
            again = parse(text)
        except Exception as exc:  # noqa: BLE001 - any failure means the text must not be written
            again, problem = None, f"{name} cannot read it back: {exc}"
        else:
            problem = None if same_value(again, expected) else f"{name} reads back other data than merged"
        if problem:
            version = getattr(tomlkit, "__version__", "unknown")
            raise RuntimeConfigError(
                f"{PREFIX}: the merged text for {path} failed its check ({problem}; tomlkit {version}). "
                "The file was left untouched.", candidate=text)
    return text
