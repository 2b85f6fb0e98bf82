"""A bundle as a provisioning run uses it (gpuhost_offline_bundle): checked on the controller
before any host changes, then described for the roles.

The bundle is a directory on the controller, made by ``gpuhost bundle create``, or the URL
of a web server that serves such a directory. A directory is verified whole
(bundle_verify: every file against the signed manifest). Of a URL, the signed metadata is
downloaded and verified (the manifest, the keyring, each release's Release, InRelease,
Release.gpg and Packages indexes); the .deb files stay on the server and apt checks each one
against the signed Packages index as it downloads it. Either way the bundle key must be
the fingerprint the inventory pins (gpuhost_offline_bundle_fingerprint).

``describe`` is what the roles read: per release, the files a host copies and the
packages it may install; ``missing`` tells which install lines a bundle cannot satisfy.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ansible.module_utils.urls import open_url

from gpuhost_cli import bundle_manifest, bundle_verify
from gpuhost_cli.bundle_repository import INDEX_FILES, SIGNATURE_FILES
from gpuhost_cli.inputs import UserError

__all__ = ["SOURCE_VAR", "FINGERPRINT_VAR", "check", "describe", "missing", "normal_fingerprint"]

SOURCE_VAR = "gpuhost_offline_bundle"
FINGERPRINT_VAR = "gpuhost_offline_bundle_fingerprint"
#: How long one download of the metadata of a served bundle may take, in seconds.
TIMEOUT = 30


def normal_fingerprint(value: str) -> str:
    return "".join(str(value or "").split()).upper()


def _is_url(source: str) -> bool:
    return re.match(r"^https?://[^/\s]+", source) is not None


def _cache_dir(source: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gpuhost" / "bundles"
    return base / hashlib.sha256(source.encode("utf-8")).hexdigest()[:24]


def _download(url: str, dest: Path) -> None:
    try:
        with open_url(url, timeout=TIMEOUT) as response, open(dest, "wb") as handle:
            shutil.copyfileobj(response, handle)
    except urllib.error.HTTPError as exc:
        raise UserError(f"{SOURCE_VAR}: {url} answered HTTP {exc.code}; is the bundle served there, whole?", 1) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"{SOURCE_VAR}: {url} cannot be read from the controller ({reason}); the controller "
                        f"checks a served bundle's signed metadata before any host changes", 1) from None


def _fetch_metadata(url: str) -> Path:
    """The served bundle's metadata in the controller's cache; the .deb files are not fetched."""
    base = url.rstrip("/") + "/"
    target = _cache_dir(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
    try:
        for name in (bundle_manifest.MANIFEST, bundle_manifest.MANIFEST_SIG, bundle_manifest.KEYRING):
            _download(base + name, staging / name)
        manifest = bundle_manifest.load(staging)
        names = {entry["path"] for entry in manifest["files"]}
        names |= {f"{release['release']}/{name}" for release in manifest["releases"] if isinstance(release, dict)
                  for name in SIGNATURE_FILES + INDEX_FILES}
        for name in sorted(names - {bundle_manifest.KEYRING}):
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            _download(base + urllib.parse.quote(name), staging / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def describe(directory: Path, source: str, served: bool) -> dict[str, Any]:
    """What the roles read of a verified bundle."""
    manifest = bundle_manifest.load(directory)
    releases: dict[str, Any] = {}
    for release in manifest["releases"]:
        if not isinstance(release, dict):
            continue
        name = str(release.get("release"))
        own = [p for p in manifest["packages"] if p["release"] == name]
        packages: dict[str, list[list[str]]] = {}
        for entry in own:
            packages.setdefault(entry["package"], []).append([entry["version"], entry["architecture"]])
        files = [f["path"] for f in manifest["files"] if f["path"].startswith(name + "/")]
        files += [f"{name}/{n}" for n in SIGNATURE_FILES] + [p["filename"] for p in own]
        releases[name] = {
            "distribution": release.get("distribution"),
            "hosts": release.get("hosts", []),
            "packages": {k: sorted(v) for k, v in sorted(packages.items())},
            "files": sorted(f.split("/", 1)[1] for f in set(files)),
        }
    return {
        "source": source,
        "served": served,
        "directory": str(directory),
        "keyring": str(directory / bundle_manifest.KEYRING),
        "fingerprint": manifest["key"]["fingerprint"],
        "architecture": manifest.get("architecture"),
        "releases": releases,
    }


def check(source: str, fingerprint: str) -> dict[str, Any]:
    """Verify the bundle at SOURCE (a directory on the controller or an http(s) URL) with the
    pinned FINGERPRINT; describe it for the roles, or raise UserError naming what is wrong."""
    source = str(source or "").strip()
    wanted = normal_fingerprint(fingerprint)
    if not wanted:
        raise UserError(f"{FINGERPRINT_VAR} is not set: a bundle is trusted only by its key's fingerprint. "
                        f"`gpuhost bundle create` prints it, `gpuhost bundle verify DIR` too; set "
                        f"{FINGERPRINT_VAR} to it", 2)
    if not re.fullmatch(r"[0-9A-F]{40}", wanted):
        raise UserError(f"{FINGERPRINT_VAR} is {fingerprint!r}: expected the 40 hex digits of the bundle key's "
                        f"fingerprint, as `gpuhost bundle create` prints it", 2)
    if _is_url(source):
        directory = _fetch_metadata(source)
        bundle_verify.verify(directory, wanted, packages=False)
        return describe(directory, source, served=True)
    if not source.startswith("/"):
        raise UserError(f"{SOURCE_VAR} is {source!r}: give the absolute path of the bundle's directory on the "
                        f"controller (as `gpuhost bundle create --out` made it) or the http(s) URL that serves it", 2)
    directory = Path(source)
    bundle_verify.verify(directory, wanted)
    return describe(directory, source, served=False)


def missing(bundle: Mapping[str, Any], release: str, architecture: str, lines: Iterable[str]) -> list[str]:
    """The install lines (NAME or NAME=VERSION, as the roles pass them to apt) that the
    bundle's RELEASE has no package for, for a host of ARCHITECTURE (dpkg's name)."""
    packages = ((bundle.get("releases") or {}).get(release) or {}).get("packages") or {}
    out = []
    for line in lines:
        name, version = (str(line).split("=", 1) + [""])[:2]
        candidates = [v for v, arch in packages.get(name, []) if arch in (architecture, "all")]
        if not candidates or (version and version not in candidates):
            out.append(str(line))
    return out
