"""Files gpuhost writes for itself (rollout locks and reports), opened without following links.

A lock or report path is predictable, and the directories it lives in may be reachable by
someone else (a shared inventory checkout, or ``sudo`` keeping another user's ``$HOME``).
A symbolic link planted there would make gpuhost truncate and write whatever file the link
names, with gpuhost's privileges. So every directory gpuhost creates for itself is opened
with ``O_NOFOLLOW`` and must belong to the user running gpuhost, and every file in it is
opened relative to that directory's descriptor, again with ``O_NOFOLLOW``: what was checked
is what is written, even if a path is swapped in between.

Refusals are :class:`~gpuhost_cli.inputs.UserError` messages naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from gpuhost_cli.inputs import UserError

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _user(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _link_error(path: Path, what: str) -> UserError:
    return UserError(f"{path} is a symbolic link; gpuhost does not follow links for its {what}: "
                     f"remove the link (rm {path}) and run again")


def _owner_error(path: Path, uid: int, what: str) -> UserError:
    me = os.geteuid()
    return UserError(f"{path} belongs to {_user(uid)}, not to you ({_user(me)}); gpuhost keeps its {what} "
                     f"only in files of its own user: remove it, or take it over with "
                     f"chown -R {me} {path}, and run again")


def _check_owner(fd: int, path: Path, what: str, kind: int) -> None:
    info = os.fstat(fd)
    if stat.S_IFMT(info.st_mode) != kind:
        expected = "a directory" if kind == stat.S_IFDIR else "a regular file"
        raise UserError(f"{path} is not {expected}; gpuhost keeps its {what} there: move it away and run again")
    if info.st_uid != os.geteuid():
        raise _owner_error(path, info.st_uid, what)


def _owned(fd: int, path: Path, what: str, kind: int) -> int:
    """``fd`` when it is the user's own file of ``kind``; otherwise close it and refuse."""
    try:
        _check_owner(fd, path, what, kind)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_link(name: str | Path, dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_child(parent_fd: int | None, name: str | Path, path: Path, what: str, create: bool, mode: int) -> int:
    """Open one directory gpuhost owns: ``name`` relative to ``parent_fd``, not following a link."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, mode, dir_fd=parent_fd)
    try:
        fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(name, parent_fd):
            raise _link_error(path, what) from None
        if exc.errno == errno.ENOTDIR:
            raise UserError(f"{path} is not a directory; gpuhost keeps its {what} there: "
                            f"move it away and run again") from None
        raise
    return _owned(fd, path, what, stat.S_IFDIR)


@contextlib.contextmanager
def own_directory(path: Path, what: str, own: int = 1, create: bool = True, mode: int = 0o755) -> Iterator[int]:
    """A descriptor of the directory ``path``, whose last ``own`` components are gpuhost's.

    Those components are created when missing (with ``create``), and each must be a real
    directory (not a link) that belongs to the current user; the directories above them are
    the user's choice (an inventory directory, ``$XDG_STATE_HOME``) and are taken as they are.
    Raises UserError on a link or a stranger's directory, FileNotFoundError when ``create``
    is false and a directory is missing.
    """
    path = Path(os.path.abspath(path))
    parts = path.parts[len(path.parts) - own:]
    base = path.parents[own - 1]
    if create:
        base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        where = base
        for part in parts:
            where = where / part
            child = _open_child(fd, part, where, what, create, mode)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def open_file(dir_fd: int, directory: Path, name: str, flags: int, what: str, mode: int = 0o644) -> int:
    """Open ``name`` in the directory ``dir_fd`` without following a link; it must be the user's own."""
    path = directory / name
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EEXIST) and _is_link(name, dir_fd):
            raise _link_error(path, what) from None
        raise
    return _owned(fd, path, what, stat.S_IFREG)


def check_replaceable(dir_fd: int, directory: Path, name: str, what: str) -> None:
    """Refuse when ``name`` is there as a link or as a stranger's file (gpuhost is about to replace it)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise _link_error(directory / name, what)
    if info.st_uid != os.geteuid():
        raise _owner_error(directory / name, info.st_uid, what)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_new(dir_fd: int, directory: Path, name: str, data: bytes, what: str, mode: int = 0o644) -> None:
    """Create ``name`` (it must not exist: an exclusive create) and write ``data`` to it."""
    fd = open_file(dir_fd, directory, name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, what, mode)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def replace(dir_fd: int, directory: Path, name: str, data: bytes, what: str, mode: int = 0o644) -> None:
    """Put ``data`` in ``name`` at once: written to a new temporary file in the same directory, then renamed."""
    check_replaceable(dir_fd, directory, name, what)
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    write_new(dir_fd, directory, temporary, data, what, mode)
    try:
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


def read(dir_fd: int, directory: Path, name: str, what: str, limit: int = 16 << 20) -> bytes:
    """The content of ``name``, which must be the user's own regular file, not a link."""
    fd = open_file(dir_fd, directory, name, os.O_RDONLY, what)
    try:
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise UserError(f"{directory / name} is larger than {limit >> 20} MiB; it is not a {what} file")
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_named(path: str | os.PathLike[str], data: bytes, what: str) -> None:
    """Write a file the user named (``--report FILE``), not following a link at that name."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP and _is_link(path, None):
            raise UserError(f"{path} is a symbolic link; gpuhost does not write its {what} through links: "
                            f"name the file itself, or remove the link (rm {path}), and run again") from None
        raise
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def check_named(path: str | os.PathLike[str], what: str) -> None:
    """Refuse early a file name that write_named would refuse (a link)."""
    path = Path(path)
    if _is_link(path, None):
        raise UserError(f"{path} is a symbolic link; gpuhost does not write its {what} through links: "
                        f"name the file itself, or remove the link (rm {path}), and run again")
