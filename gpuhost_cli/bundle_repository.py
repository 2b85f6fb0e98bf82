"""A bundle's flat apt repositories: one directory per release with its .deb files and the
indexes apt reads from a flat repository (``deb [signed-by=KEYRING] URI/RELEASE ./``):
Packages, Packages.gz and Release with their hashes, Release signed as InRelease
(clearsigned) and Release.gpg (detached).

Packages and Packages.gz are the same bytes for the same .deb files (stanzas sorted,
gzip without a timestamp); only Release's Date and the signatures change between runs.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import re
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from gpuhost_cli.inputs import UserError

__all__ = ["INDEX_FILES", "SIGNATURE_FILES", "deb822_stanzas", "deb_control", "pool_name", "release_hashes", "write_indexes"]

#: The index files a release directory holds (their hashes are in Release and in the manifest).
INDEX_FILES = ("Packages", "Packages.gz")
#: The signed files (not in the manifest: their signatures differ between runs).
SIGNATURE_FILES = ("Release", "InRelease", "Release.gpg")


def deb822_stanzas(text: str) -> list[dict[str, str]]:
    """Deb822 stanzas as dicts (continuation lines kept with their field)."""
    result = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Package" in fields:
            result.append(fields)
    return result


def pool_name(package: str, version: str, architecture: str) -> str:
    """The .deb's name in the bundle, as Debian's pool names it: the version without its epoch."""
    return f"{package}_{version.split(':', 1)[-1]}_{architecture}.deb"


def deb_control(path: Path) -> str:
    """The control fields of a .deb (dpkg-deb --field), as they go into a Packages stanza."""
    try:
        done = subprocess.run(["dpkg-deb", "--field", str(path)], capture_output=True, text=True, timeout=120,
                              check=False)
    except OSError as exc:
        raise UserError(f"cannot run dpkg-deb ({exc}); gpuhost bundle needs dpkg", 1) from None
    if done.returncode != 0 or not done.stdout.startswith("Package:"):
        raise UserError(f"{path.name} is not a readable .deb: {done.stderr.strip()[-300:]}", 1)
    return done.stdout.rstrip("\n")


def _digests(data: bytes) -> tuple[str, str]:
    return hashlib.md5(data, usedforsecurity=False).hexdigest(), hashlib.sha256(data).hexdigest()


def packages_index(directory: Path, debs: Iterable[str]) -> bytes:
    """The Packages index of ``debs`` (names in ``directory``), one stanza each, sorted by name."""
    stanzas = []
    for name in sorted(debs):
        data = (directory / name).read_bytes()
        md5, sha256 = _digests(data)
        stanzas.append(f"{deb_control(directory / name)}\nFilename: ./{name}\nSize: {len(data)}\n"
                       f"MD5sum: {md5}\nSHA256: {sha256}\n")
    return "\n".join(stanzas).encode("utf-8")


def write_indexes(directory: Path, debs: Iterable[str], release: str, architecture: str,
                  now: float | None = None) -> bytes:
    """Write Packages and Packages.gz into ``directory`` and return the Release text (not
    yet written: the caller signs it)."""
    packages = packages_index(directory, debs)
    (directory / "Packages").write_bytes(packages)
    (directory / "Packages.gz").write_bytes(gzip.compress(packages, compresslevel=9, mtime=0))
    lines = ["Origin: gpuhost", "Label: gpuhost offline bundle", f"Suite: {release}", f"Codename: {release}",
             f"Date: {email.utils.formatdate(now if now is not None else time.time(), usegmt=True)}",
             f"Architectures: {architecture} all", "Description: packages for gpuhost's roles, offline",
             "MD5Sum:"]
    for name in INDEX_FILES:
        data = (directory / name).read_bytes()
        lines.append(f" {_digests(data)[0]} {len(data)} {name}")
    lines.append("SHA256:")
    for name in INDEX_FILES:
        data = (directory / name).read_bytes()
        lines.append(f" {_digests(data)[1]} {len(data)} {name}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def release_hashes(text: str) -> dict[str, tuple[str, int]]:
    """{file: (sha256, size)} from a Release file's SHA256 field."""
    hashes: dict[str, tuple[str, int]] = {}
    in_sha256 = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_sha256 = line.strip() == "SHA256:"
            continue
        match = re.match(r"^\s+([0-9a-f]{64})\s+(\d+)\s+(\S+)$", line)
        if in_sha256 and match:
            hashes[match[3]] = (match[1], int(match[2]))
    return hashes


def clearsigned_body(text: str) -> str:
    """The text an OpenPGP clearsigned message signs, dash-escaping undone."""
    lines = text.splitlines()
    try:
        start = lines.index("-----BEGIN PGP SIGNED MESSAGE-----")
        end = lines.index("-----BEGIN PGP SIGNATURE-----")
    except ValueError:
        return ""
    body = lines[start + 1:end]
    while body and body[0].strip():  # the Hash: headers
        body = body[1:]
    return "\n".join(line[2:] if line.startswith("- ") else line for line in body[1:]) + "\n"
