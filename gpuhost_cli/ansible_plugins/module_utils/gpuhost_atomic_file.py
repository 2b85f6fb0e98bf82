# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0
"""Replacing a file so that a reader sees the old bytes or the new ones, never a mix.

Used by gpuhost's modules for every file they write: a temporary file in the target's
directory (created exclusively, mode 0600 until it is complete), fsync, the wanted mode
and owner, then ``rename``. Also: backups that keep the file's mode and owner, their
rotation, removal of temporary files a killed run left, and a private directory for
candidates that are only checked.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import stat
import tempfile


def temp_prefix(target: str) -> str:
    return f".{os.path.basename(target)}."


def attributes(path: str) -> tuple[int, int, int] | None:
    """``(mode, uid, gid)`` of an existing file, ``None`` when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def _apply(fd: int, mode: int | None, owner: tuple[int, int] | None) -> None:
    if owner is not None and (os.geteuid() == 0 or owner[0] == os.geteuid()):
        os.fchown(fd, owner[0], owner[1])
    if mode is not None:
        os.fchmod(fd, mode)


def make_parent_dirs(path: str, dir_mode: int = 0o755) -> list[str]:
    """Create the missing parent directories of ``path`` with ``dir_mode``; return them."""
    parent = os.path.dirname(path)
    missing = []
    while parent and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        os.mkdir(directory, dir_mode)
        os.chmod(directory, dir_mode)
    return list(reversed(missing))


def fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unlink_quietly(path: str | None) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)


def write_temp(target: str, data: bytes, mode: int | None = None, owner=None) -> str:
    """Write ``data`` to a new temporary file beside ``target``; return its path.

    The file is created exclusively with mode 0600, gets ``mode`` and ``owner`` only
    once its bytes are on disk, and is removed again when anything fails.
    """
    directory = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            _apply(handle.fileno(), mode, owner)
    except BaseException:
        unlink_quietly(tmp)
        raise
    return tmp


def replace(tmp: str, target: str) -> None:
    """Move a file written by :func:`write_temp` over ``target`` and make it durable."""
    os.replace(tmp, target)
    fsync_dir(os.path.dirname(target))


def write_atomic(target: str, data: bytes, mode: int | None = None, owner=None) -> None:
    """Replace ``target`` with ``data`` in one step."""
    tmp = write_temp(target, data, mode, owner)
    try:
        replace(tmp, target)
    except BaseException:
        unlink_quietly(tmp)
        raise


def remove_orphans(target: str) -> list[str]:
    """Remove the temporary files a killed run left beside ``target``; return their paths."""
    directory = os.path.dirname(target) or "."
    prefix = temp_prefix(target)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in sorted(names):
        path = os.path.join(directory, name)
        if name.startswith(prefix) and name.endswith(".tmp") and os.path.isfile(path) \
                and not os.path.islink(path):
            unlink_quietly(path)
            removed.append(path)
    return removed


@contextlib.contextmanager
def private_copy(data: bytes, name: str):
    """A file holding ``data`` in a new directory only the caller can enter (0700)."""
    directory = tempfile.mkdtemp(prefix="gpuhost-")
    try:
        os.chmod(directory, 0o700)
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------------
# Backups
# ---------------------------------------------------------------------------

STAMP_FORMAT = "%Y%m%dT%H%M%S"


def backup_name(target: str, now: datetime.datetime | None = None) -> str:
    """``<target>.<YYYYmmddTHHMMSS>.bak``, with a counter if that name is taken."""
    stamp = (now or datetime.datetime.now()).strftime(STAMP_FORMAT)
    name = f"{target}.{stamp}.bak"
    counter = 1
    while os.path.lexists(name):
        name = f"{target}.{stamp}.{counter}.bak"
        counter += 1
    return name


def copy_preserving(source_bytes: bytes, dest: str, attrs: tuple[int, int, int]) -> str:
    """Write ``source_bytes`` to the new file ``dest`` with the mode and owner in ``attrs``."""
    mode, uid, gid = attrs
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(source_bytes)
            handle.flush()
            os.fsync(handle.fileno())
            _apply(handle.fileno(), mode, (uid, gid))
    except BaseException:
        unlink_quietly(dest)
        raise
    return dest


def backups_of(target: str) -> list[str]:
    """Backups of ``target`` made by :func:`backup_name`, oldest first."""
    directory = os.path.dirname(target) or "."
    pattern = re.compile(re.escape(os.path.basename(target)) + r"\.(\d{8}T\d{6})(?:\.(\d+))?\.bak$")
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        match = pattern.match(name)
        if match:
            found.append((match.group(1), int(match.group(2) or 0), os.path.join(directory, name)))
    return [path for _base, _number, path in sorted(found)]


def rotate_backups(target: str, keep: int, protect: str | None = None) -> list[str]:
    """Remove all but the newest ``keep`` backups of ``target``; return the removed ones.

    ``protect`` (the backup just made) is never removed and counts as the newest, even
    when the clock was ahead when older ones were made.
    """
    old = [path for path in backups_of(target) if path != protect]
    if protect is not None:
        keep -= 1
    removed = old[:-keep] if keep > 0 else old
    for path in removed:
        unlink_quietly(path)
    return removed


def resolve_path(path: str) -> tuple[str, bool]:
    """Return ``(target, is_symlink)``: the file to read and write for ``path``. A symlink is
    followed, so the file it points to is replaced and the link kept."""
    if os.path.islink(path):
        return os.path.realpath(path), True
    return path, False


def new_file_owner() -> tuple[int, int] | None:
    """root:root for a file this process creates as root; ``None`` (the process's own) otherwise."""
    return (0, 0) if os.geteuid() == 0 else None


def keep_backup(source_bytes: bytes, target: str, attrs: tuple[int, int, int], keep: int,
                now: datetime.datetime | None = None) -> tuple[str, list[str]]:
    """Copy the bytes being replaced to a timestamped backup of ``target`` with their mode and
    owner (``attrs``), and keep only the newest ``keep`` backups (0 keeps them all).

    Returns ``(backup_file, removed_backups)``.
    """
    backup = copy_preserving(source_bytes, backup_name(target, now), attrs)
    removed = rotate_backups(target, keep, protect=backup) if keep > 0 else []
    return backup, removed


def stage_replacement(target: str, data: bytes, attrs: tuple[int, int, int] | None,
                      new_mode: int = 0o644) -> str:
    """Write ``data`` to a temporary file beside ``target`` for :func:`replace`: with the mode
    and owner of the file it replaces (``attrs``), or ``new_mode`` and root's ownership (when
    running as root) for a new file. Missing parent directories are made. Returns its path."""
    if attrs is not None:
        mode, owner = attrs[0], attrs[1:]
    else:
        mode, owner = new_mode, new_file_owner()
    make_parent_dirs(target)
    return write_temp(target, data, mode, owner)
