"""Filters of the offline_bundle role (gpuhost_offline_bundle). The logic is gpuhost_cli.bundle_use.

``play_hosts | gpuhost_offline_bundle_sources(hostvars, verified={})``
    The distinct bundles the hosts of the play use, as ``{src, fingerprint, key, hosts}``
    items, from each host's ``__offline_bundle_wanted``; a bundle whose key is in VERIFIED
    (checked already in this run) is left out.
``results | gpuhost_offline_bundle_verified``
    The bundles the action plugin gpuhost_offline_bundle verified (a looped task's
    registered results), as ``{key: bundle}``.
``verified | gpuhost_offline_bundle_for(src, fingerprint)``
    The verified bundle of SRC with FINGERPRINT, or ``{}``.
``bundle | gpuhost_offline_bundle_missing(release, architecture, lines)``
    The install lines (NAME or NAME=VERSION) the bundle's RELEASE has no package for.
"""

from __future__ import annotations

import os
import sys
from typing import Any

try:
    from gpuhost_cli import bundle_use
except ImportError:
    # Loaded by Ansible's plugin loader from a plain checkout: the repository root that
    # holds gpuhost_cli/ is three directories above this file's directory.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    from gpuhost_cli import bundle_use


def bundle_key(source: Any, fingerprint: Any) -> str:
    return f"{str(source or '').strip()}|{bundle_use.normal_fingerprint(str(fingerprint or ''))}"


def gpuhost_offline_bundle_sources(hosts: list[str], hostvars: Any, verified: Any = None) -> list[dict[str, Any]]:
    done = set(dict(verified or {}))
    found: dict[str, dict[str, Any]] = {}
    for host in hosts:
        try:
            wanted = hostvars[host]["__offline_bundle_wanted"]
        except (KeyError, TypeError):
            continue
        if not wanted or not str(wanted.get("src") or "").strip():
            continue
        key = bundle_key(wanted.get("src"), wanted.get("fingerprint"))
        if key in done:
            continue
        item = found.setdefault(key, {"src": str(wanted["src"]).strip(), "fingerprint": str(wanted.get("fingerprint") or ""),
                                      "key": key, "hosts": []})
        item["hosts"].append(str(host))
    return [found[key] for key in sorted(found)]


def gpuhost_offline_bundle_verified(results: Any) -> dict[str, Any]:
    return {str(r["item"]["key"]): r["bundle"] for r in results or []
            if isinstance(r, dict) and isinstance(r.get("item"), dict) and isinstance(r.get("bundle"), dict)}


def gpuhost_offline_bundle_for(verified: Any, source: Any, fingerprint: Any) -> dict[str, Any]:
    return dict(dict(verified or {}).get(bundle_key(source, fingerprint)) or {})


def gpuhost_offline_bundle_missing(bundle: Any, release: str, architecture: str, lines: Any) -> list[str]:
    return bundle_use.missing(dict(bundle or {}), str(release), str(architecture), [str(line) for line in lines or []])


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"gpuhost_offline_bundle_sources": gpuhost_offline_bundle_sources,
                "gpuhost_offline_bundle_verified": gpuhost_offline_bundle_verified,
                "gpuhost_offline_bundle_for": gpuhost_offline_bundle_for,
                "gpuhost_offline_bundle_missing": gpuhost_offline_bundle_missing}
