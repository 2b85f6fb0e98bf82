"""One rollout per inventory at a time.

``gpuhost provision`` holds an exclusive lock named after the inventory's absolute path
for as long as it runs. A second rollout on the same inventory stops with a clear message
before it connects to any host. The lock is an fcntl lock on a file under
``~/.local/state/gpuhost/locks``: the kernel releases it when the process ends, so a
rollout that was killed never leaves a stale lock behind.

The lock directory and file must be the user's own and are opened without following
links (:mod:`gpuhost_cli.safe_files`): a link planted at the lock's predictable path is
refused, never truncated through.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from gpuhost_cli import safe_files
from gpuhost_cli.inputs import UserError

WHAT = "rollout locks"


def lock_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gpuhost" / "locks"


def _own_parts(directory: Path | None) -> int:
    """How many trailing components of the lock directory gpuhost creates: gpuhost/locks by default."""
    return 1 if directory is not None else 2


def lock_path(inventory: Path, directory: Path | None = None) -> Path:
    digest = hashlib.sha256(str(inventory.resolve()).encode()).hexdigest()[:16]
    return (directory or lock_dir()) / f"rollout-{digest}.lock"


@contextlib.contextmanager
def rollout_lock(inventory: Path, directory: Path | None = None) -> Iterator[Path]:
    """Hold the inventory's rollout lock; raise UserError when another rollout holds it."""
    path = lock_path(inventory, directory)
    try:
        with safe_files.own_directory(path.parent, WHAT, own=_own_parts(directory), mode=0o700) as dir_fd:
            fd = safe_files.open_file(dir_fd, path.parent, path.name, os.O_RDWR | os.O_CREAT, WHAT, 0o600)
    except OSError as exc:
        raise UserError(f"cannot open the rollout lock {path}: {exc.strerror or exc}", code=1) from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = {}
            with contextlib.suppress(OSError, ValueError):
                holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"])) if "since" in holder else "?"
            raise UserError(
                f"another rollout on inventory '{inventory}' is running (pid {holder.get('pid', '?')}, "
                f"since {since}); wait for it to finish, or stop it, then run again",
                code=3,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": time.time(), "inventory": str(inventory)}).encode(), 0)
        yield path
    finally:
        os.close(fd)
