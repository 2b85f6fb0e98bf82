"""A bundle's manifest: every file it holds with its sha256 and size, and for each package
where it came from and whose signature vouched for it.

manifest.json is JSON with sorted keys and lists, so the same inputs give the same bytes:
a re-run with unchanged pins and repositories writes an identical manifest, and a changed
pin shows as a changed line in ``diff`` of two manifests. manifest.json.asc is its detached
signature by the bundle key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gpuhost_cli.inputs import UserError

__all__ = ["FORMAT", "KEYRING", "KEY_ASC", "MANIFEST", "MANIFEST_SIG", "dumps", "load", "package_entry"]

FORMAT = "gpuhost-bundle/1"
MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.json.asc"
KEYRING = "bundle-keyring.gpg"
KEY_ASC = "bundle-key.asc"

_PACKAGE_FIELDS = {"package": str, "version": str, "architecture": str, "release": str, "filename": str,
                   "sha256": str, "size": int, "source": str, "upstream_key_fingerprint": str,
                   "upstream_signature_verified": bool}
_FILE_FIELDS = {"path": str, "sha256": str, "size": int}


def package_entry(*, package: str, version: str, architecture: str, release: str, filename: str, sha256: str,
                  size: int, source: str, upstream_key_fingerprint: str) -> dict[str, Any]:
    """One package of the manifest. Only a package whose repository's Release apt accepted,
    signed by the pinned key, gets this far, so upstream_signature_verified is true."""
    return {"package": package, "version": version, "architecture": architecture, "release": release,
            "filename": filename, "sha256": sha256, "size": size, "source": source,
            "upstream_key_fingerprint": upstream_key_fingerprint, "upstream_signature_verified": True}


def dumps(manifest: Mapping[str, Any]) -> bytes:
    """The manifest's bytes: sorted keys, packages and files in a fixed order."""
    data = dict(manifest)
    data["packages"] = sorted(data.get("packages", []),
                              key=lambda p: (p["release"], p["package"], p["architecture"], p["version"]))
    data["files"] = sorted(data.get("files", []), key=lambda f: f["path"])
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def _check_entries(entries: Any, fields: Mapping[str, type], what: str) -> None:
    if not isinstance(entries, list):
        raise UserError(f"{MANIFEST}: '{what}' is not a list; the manifest is damaged", 1)
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UserError(f"{MANIFEST}: {what}[{index}] is not an object; the manifest is damaged", 1)
        for name, kind in fields.items():
            if not isinstance(entry.get(name), kind) or (kind is int and isinstance(entry.get(name), bool)):
                raise UserError(f"{MANIFEST}: {what}[{index}] has no valid '{name}'; the manifest is damaged", 1)


def load(directory: Path) -> dict[str, Any]:
    """manifest.json of the bundle in ``directory``, checked for shape (not yet for content)."""
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path} is missing: {directory} is not a gpuhost bundle (make one with gpuhost bundle create)",
                        1) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not readable JSON ({exc}); the bundle is damaged: make it again", 1) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: format is not {FORMAT}; this gpuhost reads only bundles in that format", 1)
    _check_entries(data.get("packages"), _PACKAGE_FIELDS, "packages")
    _check_entries(data.get("files"), _FILE_FIELDS, "files")
    for entry in data["packages"] + data["files"]:
        name = entry.get("filename", entry.get("path"))
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts or name != Path(name).as_posix():
            raise UserError(f"{path}: '{name}' is not a path inside the bundle; the manifest is damaged", 1)
    key = data.get("key")
    if not isinstance(key, dict) or not isinstance(key.get("fingerprint"), str):
        raise UserError(f"{path}: no key fingerprint; the manifest is damaged", 1)
    if not isinstance(data.get("releases"), list):
        raise UserError(f"{path}: no releases; the manifest is damaged", 1)
    # A release names a directory of the bundle: one plain name, never a path (a served
    # bundle's files are fetched by these names before the manifest's signature is checked).
    for release in data["releases"]:
        name = release.get("release") if isinstance(release, dict) else None
        if isinstance(release, dict) and (not isinstance(name, str) or name in ("", ".", "..") or "/" in name
                                          or "\\" in name):
            raise UserError(f"{path}: release {name!r} is not a directory name inside the bundle; "
                            f"the manifest is damaged", 1)
    return data
