"""``gpuhost inventory init``: a new inventory copied from the sample.

The sample (inventories/sample) lists the hosts in hosts.yml and every variable of every
role, commented out at its default, in group_vars/gpu_hosts/<role>.yml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gpuhost_cli import paths
from gpuhost_cli.inputs import UserError

__all__ = ["plan", "write"]


def plan(dest: Path, sample: Path | None = None) -> list[tuple[Path, Path]]:
    """(source, target) of every file an inventory starts with."""
    sample = sample or paths.sample_inventory()
    hosts = sample / "hosts.yml"
    if not hosts.is_file():
        raise FileNotFoundError(f"the sample inventory {sample} is missing; the installation is incomplete")
    files = [(hosts, dest / "hosts.yml")]
    group_vars = sample / "group_vars" / "gpu_hosts"
    for source in sorted(group_vars.glob("*.yml")):
        files.append((source, dest / "group_vars" / "gpu_hosts" / source.name))
    return files


def write(dest: Path, force: bool = False, sample: Path | None = None) -> list[Path]:
    """Copy the sample into ``dest``; refuse to overwrite a file unless ``force``."""
    if dest.exists() and not dest.is_dir():
        raise UserError(f"'{dest}' exists and is not a directory")
    files = plan(dest, sample)
    existing = [target for _, target in files if target.exists()]
    if existing and not force:
        names = ", ".join(str(target.relative_to(dest)) for target in existing)
        raise UserError(f"'{dest}' already has {names}; pass --force to overwrite")
    written = []
    for source, target in files:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        except OSError as exc:
            raise UserError(f"cannot write '{target}': {exc.strerror or exc}", code=1) from None
        target.chmod(0o644)
        written.append(target)
    return written
