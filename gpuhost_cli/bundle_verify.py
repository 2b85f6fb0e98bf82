"""Checking a bundle before anything trusts it: every file against the signed manifest, the
signatures against the bundle key, each Packages index against its signed Release.

A bundle is refused, with the file named, when a file is missing, truncated, changed or
swapped for another, when a file is there that the manifest does not list, when a
signature is not by the bundle key, or (``expected_fingerprint``) when the bundle key is
not the one the caller pinned. Nothing is changed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from gpuhost_cli import bundle_manifest as manifest_
from gpuhost_cli import bundle_repository
from gpuhost_cli.bundle_repository import INDEX_FILES, SIGNATURE_FILES
from gpuhost_cli.bundle_signing import gpgv_signer, keyring_fingerprints
from gpuhost_cli.inputs import UserError

__all__ = ["BundleRefused", "verify"]


class BundleRefused(UserError):
    """The bundle failed a check; ``problems`` lists each, naming its file."""

    def __init__(self, directory: Path, problems: list[str]) -> None:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"bundle {directory} refused: {shown}", 1)
        self.problems = problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(directory: Path, relative: str, sha256: str, size: int) -> str | None:
    path = directory / relative
    if path.is_symlink() or (path.exists() and not path.is_file()):
        return f"{relative}: not a plain file"
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        return f"{relative}: missing"
    if actual < size:
        return f"{relative}: {actual} bytes, the manifest says {size} (truncated or replaced)"
    if actual != size:
        return f"{relative}: {actual} bytes, the manifest says {size} (changed or replaced)"
    if _sha256(path) != sha256:
        return f"{relative}: sha256 differs from the manifest (changed or replaced)"
    return None


def _signatures(directory: Path, keyring: Path, fingerprint: str, release: str) -> list[str]:
    problems = []
    folder = directory / release
    for name in SIGNATURE_FILES:
        if not (folder / name).is_file():
            problems.append(f"{release}/{name}: missing")
    if problems:
        return problems
    if gpgv_signer(keyring, folder / "InRelease") != fingerprint:
        problems.append(f"{release}/InRelease: not signed by the bundle key {fingerprint}")
    if gpgv_signer(keyring, folder / "Release.gpg", folder / "Release") != fingerprint:
        problems.append(f"{release}/Release.gpg: not a signature of {release}/Release by the bundle key {fingerprint}")
    release_text = (folder / "Release").read_text(encoding="utf-8", errors="replace")
    if bundle_repository.clearsigned_body((folder / "InRelease").read_text(encoding="utf-8", errors="replace")) != release_text:
        problems.append(f"{release}/InRelease: says something other than {release}/Release")
    hashes = bundle_repository.release_hashes(release_text)
    for name in INDEX_FILES:
        path = folder / name
        if name not in hashes:
            problems.append(f"{release}/Release: lists no SHA256 of {name}")
        elif path.is_file() and (_sha256(path), path.stat().st_size) != hashes[name]:
            problems.append(f"{release}/{name}: does not match the hash in {release}/Release")
    return problems


def _packages_match(directory: Path, release: str, packages: list[dict[str, Any]]) -> list[str]:
    path = directory / release / "Packages"
    if not path.is_file():
        return []
    listed = {(s.get("Filename", "").removeprefix("./"), s.get("SHA256", ""), s.get("Size", ""))
              for s in bundle_repository.deb822_stanzas(path.read_text(encoding="utf-8", errors="replace"))}
    expected = {(p["filename"].split("/", 1)[-1], p["sha256"], str(p["size"])) for p in packages
                if p["release"] == release}
    problems = [f"{release}/Packages: lists {name}, which the manifest does not"
                for name, _sha, _size in sorted(listed - expected)]
    problems += [f"{release}/Packages: does not list {name} as the manifest does"
                 for name, _sha, _size in sorted(expected - listed)]
    return problems


def _unlisted(directory: Path, expected: set[str]) -> list[str]:
    found = set()
    for root, dirs, files in os.walk(directory):
        for name in files + [d for d in dirs if (Path(root) / d).is_symlink()]:
            found.add(str((Path(root) / name).relative_to(directory)))
    return [f"{name}: not in the manifest" for name in sorted(found - expected)]


def verify(directory: Path, expected_fingerprint: str | None = None, *, packages: bool = True) -> dict[str, Any]:
    """Check the bundle in ``directory``; return a summary, or raise BundleRefused.

    ``packages=False`` checks the signed metadata alone (the manifest, the keyring, each
    release's Release, InRelease, Release.gpg and Packages indexes), for a bundle served
    over HTTP whose .deb files stay on the server: apt checks each of those against the
    signed Packages index when it downloads it."""
    if not directory.is_dir():
        raise UserError(f"{directory} is not a directory; give the directory gpuhost bundle create wrote", 2)
    manifest = manifest_.load(directory)
    fingerprint = manifest["key"]["fingerprint"]
    keyring = directory / manifest_.KEYRING
    if not keyring.is_file():
        raise BundleRefused(directory, [f"{manifest_.KEYRING}: missing"])
    in_keyring = keyring_fingerprints(keyring)
    if in_keyring != [fingerprint]:
        raise BundleRefused(directory, [f"{manifest_.KEYRING}: holds {', '.join(in_keyring) or 'no key'}, "
                                        f"not exactly the bundle key {fingerprint} the manifest names"])
    wanted = "".join((expected_fingerprint or "").split()).upper()
    if wanted and wanted != fingerprint:
        raise BundleRefused(directory, [f"{manifest_.KEYRING}: the bundle key is {fingerprint}, not the "
                                        f"{wanted} given; this bundle was not made with your key"])
    if not (directory / manifest_.MANIFEST_SIG).is_file():
        raise BundleRefused(directory, [f"{manifest_.MANIFEST_SIG}: missing"])
    if gpgv_signer(keyring, directory / manifest_.MANIFEST_SIG, directory / manifest_.MANIFEST) != fingerprint:
        raise BundleRefused(directory, [f"{manifest_.MANIFEST}: not signed by the bundle key {fingerprint} "
                                        f"(changed after the bundle was made)"])
    problems: list[str] = []
    releases = [str(r.get("release")) for r in manifest["releases"] if isinstance(r, dict)]
    for release in releases:
        problems += _signatures(directory, keyring, fingerprint, release)
    for entry in manifest["files"] + (manifest["packages"] if packages else []):
        relative = entry["path"] if "path" in entry else entry["filename"]
        problem = _check_file(directory, relative, entry["sha256"], entry["size"])
        if problem:
            problems.append(problem)
    for release in releases:
        problems += _packages_match(directory, release, manifest["packages"])
    expected = {manifest_.MANIFEST, manifest_.MANIFEST_SIG}
    expected |= {f["path"] for f in manifest["files"]} | {p["filename"] for p in manifest["packages"]}
    expected |= {f"{release}/{name}" for release in releases for name in SIGNATURE_FILES}
    if packages:
        problems += _unlisted(directory, expected)
    if problems:
        raise BundleRefused(directory, problems)
    return {"bundle": str(directory), "ok": True, "key_fingerprint": fingerprint,
            "releases": [{"release": r.get("release"), "hosts": r.get("hosts", []),
                          "packages": sum(1 for p in manifest["packages"] if p["release"] == r.get("release"))}
                         for r in manifest["releases"] if isinstance(r, dict)],
            "packages": len(manifest["packages"]),
            "size": sum(p["size"] for p in manifest["packages"])}
