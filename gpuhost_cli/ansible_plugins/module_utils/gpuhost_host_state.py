# -*- coding: utf-8 -*-
"""What a host looks like in the places gpuhost's roles manage, and whether that is still
what the last converged run of each role left.

After a role converges a host, the play records, per role, the digest of the role's inputs
(computed on the controller) and the state of every item the role manages, as read here.
On the next run the plan compares: a role whose inputs are the same and whose items all read
as recorded has nothing to do; any other role runs. The item kinds:

``{"file": PATH, "attrs": false}``
    the file's sha256 (and with ``attrs``, its mode and owner, for files the role writes with
    them), or ``absent``; a directory reads as ``directory``, a device node by its numbers.
``{"package": NAME or [NAME, ...], "version": true, "hold": false}``
    each package's dpkg state (``installed``, or what dpkg says instead), with ``version``
    its version, with ``hold`` its selection (a hold shows), or ``absent``.
``{"group": NAME, "members": [USER, ...]}``
    whether the group exists, and for each user of MEMBERS whether it is in the group (other
    members are not the role's business).
``{"unit": NAME or [NAME, ...], "active": true}``
    each systemd unit's UnitFileState, and with ``active`` its ActiveState (all units in one
    ``systemctl show``).
``{"lines": REGEX, "paths": [DIR or FILE, ...], "exclude": [FILE, ...]}``
    the apt source files under PATHS (``*.list``, ``*.sources``) with a line, not commented
    out, that names REGEX (a ``deb``, ``deb-src`` or ``URIs:`` line), less EXCLUDE.
``{"glob": PATTERN or [PATTERN, ...]}``
    the paths that match the patterns, sorted.
``{"links": DIR, "target": TEXT}``
    the symbolic links in DIR whose target contains TEXT, sorted.

Reading costs no process but one ``systemctl show`` (when units are asked for): files,
dpkg's status and /etc/group are read directly.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import stat
import subprocess

from ansible.module_utils.gpuhost_driver_packages import dpkg_stanzas

ABSENT = "absent"
#: The digest the controller sends for a role whose inputs it could not render: never recorded.
UNRENDERED = "unrendered"
RECORD_VERSION = 1
SOURCE_LINE = r"^\s*(deb|deb-src|URIs:)\s.*(%s)"
SOURCE_PATTERNS = ("*.list", "*.sources")


class ItemError(ValueError):
    """An item that names no kind this module knows."""


def item_key(item):
    """One line that names the item, the key of its recorded state."""
    if not isinstance(item, dict):
        raise ItemError("item %r is not a mapping" % (item,))
    for kind in ("file", "group"):
        if kind in item:
            return "%s:%s" % (kind, item[kind])
    for kind in ("package", "unit", "glob"):
        if kind in item:
            return "%s:%s" % (kind, ",".join(_patterns(item[kind])))
    if "lines" in item:
        return "lines:%s in %s%s" % (
            item["lines"], ",".join(item.get("paths", [])),
            (" less " + ",".join(item["exclude"])) if item.get("exclude") else "")
    if "links" in item:
        return "links:%s -> *%s*" % (item["links"], item.get("target", ""))
    raise ItemError("item %r names no known kind (file, package, group, unit, lines, glob, links)" % (item,))


def _patterns(value):
    return [value] if isinstance(value, str) else [str(pattern) for pattern in value]


# ---- Reading ---------------------------------------------------------------------------
def read_file_state(path, attrs=False):
    try:
        info = os.stat(path)
    except OSError:
        return ABSENT
    owner = "mode=%04o uid=%d gid=%d" % (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) if attrs else ""
    if stat.S_ISDIR(info.st_mode):
        return ("directory " + owner).strip()
    if not stat.S_ISREG(info.st_mode):
        # A device node is never opened: its numbers say which device it is.
        return ("special type=%o rdev=%d:%d %s" % (
            stat.S_IFMT(info.st_mode), os.major(info.st_rdev), os.minor(info.st_rdev), owner)).strip()
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        return "unreadable: %s" % exc.strerror
    return ("sha256=%s %s" % (digest.hexdigest(), owner)).strip()


def parse_dpkg_status(text):
    """{package: (version, want, state)} of dpkg's status file (one stanza per package and
    architecture; the first stanza of a name wins)."""
    packages = {}
    for fields in dpkg_stanzas(text):
        name = fields.get("package")
        if name and name not in packages:
            status = (fields.get("status", "") + "  ").split(" ")
            packages[name] = (fields.get("version", ""), status[0], status[2] if len(status) > 2 else "")
    return packages


def parse_groups(text):
    """{group: set of members} of /etc/group."""
    groups = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[0] not in groups:
            groups[parts[0]] = {member for member in parts[3].split(",") if member}
    return groups


def package_state(entry, version=True, hold=False):
    """What a package item records of dpkg's (version, want, state), or ``absent``."""
    if entry is None or entry[2] in ("", "not-installed"):
        return ABSENT
    parts = [entry[2]]
    if version:
        parts.append("version=" + entry[0])
    if hold:
        parts.append("want=" + entry[1])
    return " ".join(parts)


def group_state(members, wanted):
    if members is None:
        return ABSENT
    return " ".join(["present"] + ["%s=%s" % (user, "in" if user in members else "out") for user in wanted])


def parse_systemctl_show(text, units):
    """{unit: (ActiveState, UnitFileState)} from ``systemctl show -p Id -p ActiveState -p
    UnitFileState UNIT...``, whose blocks come in the order of UNITS."""
    blocks = text.strip().split("\n\n") if text.strip() else []
    states = {}
    for unit, block in zip(units, blocks):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        states[unit] = (fields.get("ActiveState", ""), fields.get("UnitFileState", ""))
    return states


def source_files_naming(regex, paths, exclude=()):
    line = re.compile(SOURCE_LINE % regex)
    found = []
    for path in paths:
        if os.path.isdir(path):
            candidates = sorted(
                name for pattern in SOURCE_PATTERNS for name in glob.glob(os.path.join(path, pattern)))
        else:
            candidates = [path] if os.path.isfile(path) else []
        for candidate in candidates:
            if candidate in exclude or candidate in found:
                continue
            try:
                with open(candidate, encoding="utf-8", errors="replace") as handle:
                    if any(line.search(text) for text in handle):
                        found.append(candidate)
            except OSError:
                continue
    return sorted(found)


def links_to(directory, target):
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            if os.path.islink(path) and target in os.readlink(path):
                found.append(name)
        except OSError:
            continue
    return found


class HostReader:
    """Reads the items of a host; dpkg's status, /etc/group and the units once each."""

    def __init__(self, root="/", run=None):
        self.root = root
        self._run = run or _run
        self._packages = None
        self._groups = None
        self._units = {}

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/")) if self.root != "/" else path

    def _text(self, path):
        try:
            with open(self._path(path), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def packages(self):
        if self._packages is None:
            self._packages = parse_dpkg_status(self._text("/var/lib/dpkg/status"))
        return self._packages

    def groups(self):
        if self._groups is None:
            self._groups = parse_groups(self._text("/etc/group"))
        return self._groups

    def load_units(self, units):
        wanted = [unit for unit in dict.fromkeys(units) if unit not in self._units]
        if not wanted:
            return
        out = self._run(["systemctl", "show", "-p", "Id", "-p", "ActiveState", "-p", "UnitFileState", "--", *wanted])
        self._units.update(parse_systemctl_show(out or "", wanted))
        for unit in wanted:
            self._units.setdefault(unit, ("unknown", "unknown"))

    def read(self, item):
        if "file" in item:
            return read_file_state(self._path(item["file"]), bool(item.get("attrs", False)))
        if "package" in item:
            return "; ".join(
                "%s %s" % (name, package_state(self.packages().get(name), bool(item.get("version", True)),
                                               bool(item.get("hold", False))))
                for name in _patterns(item["package"]))
        if "group" in item:
            return group_state(self.groups().get(item["group"]), _patterns(item.get("members", [])))
        if "unit" in item:
            units = _patterns(item["unit"])
            self.load_units(units)
            active = bool(item.get("active", True))
            return "; ".join(
                "%s %s" % (unit, ("active=%s file=%s" % self._units[unit]) if active else "file=%s" % self._units[unit][1])
                for unit in units)
        if "lines" in item:
            files = source_files_naming(item["lines"], [self._path(p) for p in item.get("paths", [])],
                                        [self._path(p) for p in item.get("exclude", [])])
            return " ".join(files) or "none"
        if "glob" in item:
            found = {path for pattern in _patterns(item["glob"]) for path in glob.glob(self._path(pattern))}
            return " ".join(sorted(found)) or "none"
        if "links" in item:
            return " ".join(links_to(self._path(item["links"]), item.get("target", ""))) or "none"
        raise ItemError("item %r names no known kind" % (item,))

    def read_all(self, items):
        self.load_units([unit for item in items if isinstance(item, dict) and "unit" in item
                         for unit in _patterns(item["unit"])])
        return {item_key(item): self.read(item) for item in items}


def _run(argv):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout


# ---- Comparing -------------------------------------------------------------------------
def drift_of(recorded, inputs, reader):
    """Why a role is not converged: [] when its record holds INPUTS and every recorded item
    reads the same now; otherwise one line per difference (at most the first ten items)."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("items"), dict):
        return ["no record of a converged run"]
    if recorded.get("inputs") != inputs:
        return ["its inputs changed (variables, facts or gpuhost's code) since the last converged run"]
    items = recorded.get("items_spec")
    if not isinstance(items, list):
        return ["the record lists no items"]
    try:
        now = reader.read_all(items)
    except ItemError as exc:
        return ["the record is unreadable: %s" % exc]
    changed = [line for key, value in sorted(recorded["items"].items()) if now.get(key) != value
               for line in describe_change(key, now.get(key), value)]
    return changed[:10] + (["and %d more" % (len(changed) - 10)] if len(changed) > 10 else [])


def describe_change(key, now, was):
    """Lines that say how item KEY changed; for a list of packages or units, only the
    entries that changed."""
    kind = key.split(":", 1)[0]
    if kind in ("package", "unit") and now and was:
        was_parts = dict(part.split(" ", 1) for part in was.split("; ") if " " in part)
        now_parts = dict(part.split(" ", 1) for part in now.split("; ") if " " in part)
        names = [name for name in now_parts if now_parts[name] != was_parts.get(name)]
        if names and set(now_parts) == set(was_parts):
            return ["%s %s: %s, was %s" % (kind, name, now_parts[name], was_parts[name]) for name in names]
    return ["%s: %s, was %s" % (key, now, was)]


def roles_of(record):
    """The per-role entries of RECORD; none when it is not a record of this version."""
    if isinstance(record, dict) and record.get("version") == RECORD_VERSION and isinstance(record.get("roles"), dict):
        return record["roles"]
    return {}


def plan(record, inputs_by_role, reader, dependents=None):
    """{role: [drift lines]} for every role of INPUTS_BY_ROLE ({role: digest}, in the order
    the roles run). DEPENDENTS ({role: [later roles]}) names the roles that must run when a
    role before them has work, because that work can change what they read (the toolkit's
    CDI spec, for the daemon.json Docker needs)."""
    roles = roles_of(record)
    drift = {role: drift_of(roles.get(role), digest, reader) for role, digest in inputs_by_role.items()}
    for role in inputs_by_role:
        for later in (dependents or {}).get(role, []) if drift[role] else []:
            if later in drift and not drift[later]:
                drift[later] = ["runs after %s, whose work can change what it reads" % role]
    return drift


def recorded(record, role, inputs, items, reader):
    """RECORD with ROLE's entry replaced by INPUTS and what ITEMS read now."""
    roles = dict(roles_of(record))
    roles[role] = {"inputs": inputs, "items_spec": list(items), "items": reader.read_all(items)}
    return {"version": RECORD_VERSION, "roles": roles}


def forgotten(record, roles):
    """RECORD without the entries of ROLES."""
    kept = {role: entry for role, entry in roles_of(record).items() if role not in roles}
    return {"version": RECORD_VERSION, "roles": kept}


def load_record(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def dump_record(record):
    return (json.dumps(record, indent=1, sort_keys=True) + "\n").encode("utf-8")
