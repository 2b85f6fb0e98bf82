"""gpuhost bundle create: the packages an inventory's hosts need, as a signed offline bundle.

For each release the hosts run (bundle_plan), apt resolves and downloads what the roles
would install beyond the base system, checking each repository against its pinned key
(bundle_resolution). The files go into one flat repository per release, signed with the
bundle key (bundle_repository, bundle_signing), with a signed manifest (bundle_manifest).

The bundle is built next to DIR and moved into place only once it has passed
bundle_verify: DIR never holds half a bundle, and an existing non-empty DIR is refused,
never overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from gpuhost_cli import bundle_manifest, bundle_plan, bundle_repository, bundle_verify
from gpuhost_cli.bundle_resolution import Download, Resolver
from gpuhost_cli.bundle_signing import BundleKey
from gpuhost_cli.inputs import UserError

__all__ = ["create", "parse_base_status"]


def parse_base_status(specs: Iterable[str]) -> dict[str, Path]:
    """--base-status RELEASE=FILE arguments as {release: path}; each file must be readable."""
    result: dict[str, Path] = {}
    for spec in specs:
        release, sep, name = spec.partition("=")
        if not sep or not release or not name:
            raise UserError(f"--base-status '{spec}': write RELEASE=FILE, for example "
                            f"--base-status bookworm=status-of-gpu-node-1")
        path = Path(name).expanduser()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise UserError(f"--base-status {release}={name}: the file is not readable; copy a host's "
                            f"/var/lib/dpkg/status here")
        result[release.strip().lower()] = path.resolve()
    return result


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not an empty directory; give a new directory (a bundle is "
                        f"never written over files that are there)")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: its parent directory {out.parent} does not exist; create it first")


def _place(downloads: list[Download], release: str, folder: Path) -> list[tuple[Download, str]]:
    """Move each download into the release's directory under its pool name."""
    folder.mkdir(parents=True, exist_ok=True)
    placed = []
    for item in downloads:
        name = bundle_repository.pool_name(item.package, item.version, item.architecture)
        target = folder / name
        if target.exists():
            raise UserError(f"{release}: two packages would both be {name} ({item.package} {item.version}); "
                            f"pin one version", 1)
        assert item.path is not None
        shutil.move(str(item.path), target)
        placed.append((item, name))
    return placed


def _file_entry(root: Path, relative: str) -> dict[str, Any]:
    from gpuhost_cli.bundle_resolution import file_digest

    path = root / relative
    return {"path": relative, "sha256": file_digest(path), "size": path.stat().st_size}


def create(out: Path, hosts: Mapping[str, Mapping[str, Any]], *, release: str | None = None,
           architecture: str = "amd64", key_home: Path, base_status: Mapping[str, Path] | None = None,
           distro_mirror: str | None = None, install_recommends: bool = True,
           resolver_fetch: Any = None, roles_dir: Path | None = None,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Make the bundle for ``hosts`` (their inventory variables) in ``out``; return a summary.
    ``progress`` is told what is being done, one line at a time."""
    say = progress or (lambda _line: None)
    out = out.expanduser().absolute()
    _check_out(out)
    plans = bundle_plan.plan_releases(hosts, release, architecture, roles_dir)
    base_status = dict(base_status or {})
    unknown = sorted(set(base_status) - {p.release for p in plans})
    if unknown:
        raise UserError(f"--base-status names {', '.join(unknown)}, which no host of the inventory runs; "
                        f"the hosts run {', '.join(p.release for p in plans)}")
    key = BundleKey(key_home)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        bundle = staging / "bundle"
        bundle.mkdir()
        resolver = Resolver(staging / "apt", architecture, install_recommends, distro_mirror, resolver_fetch)
        packages: list[dict[str, Any]] = []
        releases: list[dict[str, Any]] = []
        files: list[str] = []
        for plan in plans:
            say(f"{plan.release}: resolving and downloading the packages of {len(plan.hosts)} host(s)")
            resolved = resolver.resolve(plan, base_status.get(plan.release))
            placed = _place(resolved.downloads, plan.release, bundle / plan.release)
            release_text = bundle_repository.write_indexes(bundle / plan.release, [name for _item, name in placed],
                                                           plan.release, architecture)
            (bundle / plan.release / "Release").write_bytes(release_text)
            (bundle / plan.release / "InRelease").write_bytes(key.clearsign(release_text))
            (bundle / plan.release / "Release.gpg").write_bytes(key.detached(release_text))
            files += [f"{plan.release}/{name}" for name in bundle_repository.INDEX_FILES]
            for item, name in placed:
                source = item.source.label(architecture)
                packages.append(bundle_manifest.package_entry(
                    package=item.package, version=item.version, architecture=item.architecture,
                    release=plan.release, filename=f"{plan.release}/{name}", sha256=item.index_hash, size=item.size,
                    source=source, upstream_key_fingerprint=resolved.signers[source]))
            releases.append({
                "release": plan.release, "distribution": plan.distribution, "hosts": sorted(plan.hosts),
                "install": sorted(list(s) for s in plan.package_sets), "base_system": resolved.base,
                "repositories": [{"source": source, "signed_by": fingerprint, "signature_verified": True}
                                 for source, fingerprint in sorted(resolved.signers.items())],
            })
            shutil.rmtree(staging / "apt" / plan.release, ignore_errors=True)
        (bundle / bundle_manifest.KEYRING).write_bytes(key.public_key(armor=False))
        (bundle / bundle_manifest.KEY_ASC).write_bytes(key.public_key(armor=True))
        files += [bundle_manifest.KEYRING, bundle_manifest.KEY_ASC]
        manifest = {"format": bundle_manifest.FORMAT, "architecture": architecture,
                    "key": {"fingerprint": key.fingerprint, "keyring": bundle_manifest.KEYRING,
                            "armored": bundle_manifest.KEY_ASC},
                    "releases": releases, "packages": packages,
                    "files": [_file_entry(bundle, name) for name in files]}
        data = bundle_manifest.dumps(manifest)
        (bundle / bundle_manifest.MANIFEST).write_bytes(data)
        (bundle / bundle_manifest.MANIFEST_SIG).write_bytes(key.detached(data))
        say("checking the bundle")
        summary = bundle_verify.verify(bundle, key.fingerprint)
        if out.exists():
            out.rmdir()
        os.replace(bundle, out)
    finally:
        key.close()
        shutil.rmtree(staging, ignore_errors=True)
    summary["bundle"] = str(out)
    return summary
