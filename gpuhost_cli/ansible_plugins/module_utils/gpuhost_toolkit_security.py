# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The NVIDIA Container Toolkit's security fixes, as data, and the version checks built on them.

One table, ``SECURITY_FIXES``: each row is a release of the toolkit that fixed the CVEs of one
NVIDIA security bulletin. The security floor is the newest of those releases. The
``gpu_facts`` module imports this file on the host (Ansible ships it with the module) and the
``nvidia_toolkit`` filter plugin imports it on the controller for the role's preflight, so the
rule has one implementation.

To add a bulletin, append a row: the first release that carries the fix, the CVE IDs, the
bulletin's address and the month it was published. The floor moves with it.

Versions are compared the way dpkg compares them (``~`` sorts before the empty string, so
``1.18.0~rc.1`` is older than ``1.18.0``). A fixed-in version is an upstream version; an apt
version's Debian revision (``-1``) does not change the answer.
"""

from __future__ import annotations

import re

BULLETIN_URL = "https://nvidia.custhelp.com/app/answers/detail/a_id/%d"

# Oldest first. Sources: the NVIDIA security bulletins named in each row, and the fixed
# versions NVIDIA lists for each CVE in the GPU Operator's security page.
SECURITY_FIXES = (
    {
        "fixed_in": "1.16.2",
        "cves": ("CVE-2024-0132", "CVE-2024-0133"),
        "bulletin": BULLETIN_URL % 5582,
        "published": "2024-09",
    },
    {
        "fixed_in": "1.17.0",
        "cves": ("CVE-2024-0134",),
        "bulletin": BULLETIN_URL % 5585,
        "published": "2024-11",
    },
    {
        "fixed_in": "1.17.3",
        "cves": ("CVE-2024-0135", "CVE-2024-0136", "CVE-2024-0137"),
        "bulletin": BULLETIN_URL % 5599,
        "published": "2025-01",
    },
    {
        "fixed_in": "1.17.4",
        "cves": ("CVE-2025-23359",),
        "bulletin": BULLETIN_URL % 5616,
        "published": "2025-02",
    },
    {
        "fixed_in": "1.17.8",
        "cves": ("CVE-2025-23266", "CVE-2025-23267"),
        "bulletin": BULLETIN_URL % 5659,
        "published": "2025-07",
    },
)

_VERSION_RE = re.compile(r"^(?:(\d+):)?(\d[A-Za-z0-9.+~-]*)$")


def _order(char):
    """dpkg's weight of one non-digit character: ~ first, then the end, letters, the rest."""
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a, b):
    """Compare two upstream versions (or two revisions) as dpkg's verrevcmp does."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            cb = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ca != cb:
                return -1 if ca < cb else 1
            i += 1
            j += 1
        start = i
        while i < len(a) and a[i].isdigit():
            i += 1
        na = int(a[start:i] or 0)
        start = j
        while j < len(b) and b[j].isdigit():
            j += 1
        nb = int(b[start:j] or 0)
        if na != nb:
            return -1 if na < nb else 1
    return 0


def parse_version(version):
    """(epoch, upstream, revision) of an apt version such as ``1.17.8-1`` or ``1.18.0~rc.1-1``.

    Raises ValueError for text that is not a Debian version.
    """
    text = str(version if version is not None else "").strip()
    match = _VERSION_RE.match(text)
    if not match:
        raise ValueError(
            "%r is not a package version; expected an apt version such as '1.17.8-1'." % (version,))
    epoch = int(match.group(1) or 0)
    upstream, sep, revision = match.group(2).rpartition("-")
    if not sep:
        upstream, revision = revision, ""
    return epoch, upstream, revision


def compare_versions(a, b):
    """-1, 0 or 1 as apt version ``a`` is older than, the same as or newer than ``b``."""
    ea, ua, ra = parse_version(a)
    eb, ub, rb = parse_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def security_fixes():
    """The table, as plain lists and dicts (copies; safe to change)."""
    return [dict(row, cves=list(row["cves"])) for row in SECURITY_FIXES]


def security_floor():
    """The newest release in the table: versions older than it lack at least one fix."""
    floor = SECURITY_FIXES[0]["fixed_in"]
    for row in SECURITY_FIXES[1:]:
        if compare_versions(row["fixed_in"], floor) > 0:
            floor = row["fixed_in"]
    return floor


def missing_fixes(version):
    """The rows of the table whose fix the toolkit ``version`` (an apt version) does not carry.

    Only the upstream version counts (``1.17.8-1`` and ``1.17.8-0ubuntu1`` carry the 1.17.8
    fixes); a pre-release of a fixed version (``1.17.8~rc.1-1``) does not carry them.
    """
    epoch, upstream, _revision = parse_version(version)
    have = "%d:%s" % (epoch, upstream)
    return [dict(row, cves=list(row["cves"])) for row in SECURITY_FIXES
            if compare_versions(have, row["fixed_in"]) < 0]


def missing_cves(version):
    """The CVE IDs that ``version`` is exposed to, oldest bulletin first."""
    return [cve for row in missing_fixes(version) for cve in row["cves"]]


def describe_fixes(rows):
    """One line naming each row's CVEs, the release that fixed them and the bulletin."""
    return "; ".join(
        "%s (fixed in %s, NVIDIA bulletin %s)" % (", ".join(row["cves"]), row["fixed_in"], row["bulletin"])
        for row in rows)


def security_check(version):
    """Everything a check needs about ``version``: the floor, what it lacks, and that as text.

    An empty version (no pin: apt installs the newest) lacks nothing.
    """
    text = str(version if version is not None else "").strip()
    rows = missing_fixes(text) if text else []
    return {
        "version": text,
        "floor": security_floor(),
        "below_floor": bool(rows),
        "missing_fixes": rows,
        "cves": [cve for row in rows for cve in row["cves"]],
        "summary": describe_fixes(rows),
    }
