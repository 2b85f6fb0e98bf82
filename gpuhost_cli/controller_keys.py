"""Repository keys fetched on the controller, once per run, for every host.

The action plugin apt_signing_key downloads a key here and hands its bytes to the module on
each host, which checks the pinned fingerprint and writes the keyring. A run of Ansible forks
a worker per task and host, so "once per run" needs a cache that outlives a worker: a
directory private to the user, named after the ansible-playbook process (its PID and start
time, so a reused PID never sees an older run's keys), with a lock per URL so that forks
asking for the same key at the same time download it once. Directories of runs that ended
are removed when the next run creates its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

#: The largest key file accepted (as the module's MAX_KEY_BYTES).
MAX_KEY_BYTES = 1024 * 1024
PREFIX = "gpuhost-keys-"


class KeyFetchError(Exception):
    """The key could not be downloaded; the message says why."""


def _start_time(pid: int) -> str:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return "0"


def run_id(pid: int | None = None) -> str:
    """The run a worker belongs to: its parent (the ansible-playbook process) and when it started."""
    pid = os.getppid() if pid is None else pid
    return f"{pid}-{_start_time(pid)}"


def _alive(name: str) -> bool:
    pid, _dash, started = name[len(PREFIX):].partition("-")[2].partition("-")
    return pid.isdigit() and os.path.isdir(f"/proc/{pid}") and _start_time(int(pid)) == started


def cache_dir(root: str | None = None, run: str | None = None) -> Path:
    """This run's cache directory (mode 0700), created on first use; ended runs' are removed."""
    root_path = Path(root or tempfile.gettempdir())
    path = root_path / f"{PREFIX}{os.getuid()}-{run or run_id()}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    else:
        for old in root_path.glob(f"{PREFIX}{os.getuid()}-*"):
            if old != path and old.is_dir() and not old.is_symlink() and not _alive(old.name):
                shutil.rmtree(old, ignore_errors=True)
    info = path.lstat()
    if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise KeyFetchError(f"{path} is not a private directory of this user; remove it")
    return path


def fetch_once(url: str, fetch: Callable[[str], bytes], directory: Path) -> tuple[bytes, bool]:
    """The key at URL, downloaded with FETCH the first time this run asks for it; and whether
    this call downloaded it. A failed download is remembered for the run too: the controller
    tries each URL once (KeyFetchError with the first failure's reason)."""
    name = hashlib.sha256(url.encode("utf-8")).hexdigest()
    target, failed = directory / f"{name}.key", directory / f"{name}.failed"
    with open(directory / f"{name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target.read_bytes(), False
        if failed.is_file():
            raise KeyFetchError(failed.read_text(encoding="utf-8"))
        try:
            data = fetch(url)
            if len(data) > MAX_KEY_BYTES:
                raise KeyFetchError(f"the response is larger than the {MAX_KEY_BYTES} bytes accepted for a key file")
        except KeyFetchError as exc:
            failed.write_text(str(exc), encoding="utf-8")
            raise
        tmp = directory / f"{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return data, True


def http_fetch(timeout: int = 30, validate_certs: bool = True) -> Callable[[str], bytes]:
    """A FETCH for fetch_once that uses Ansible's HTTP client (proxies from the environment)."""
    from ansible.module_utils.urls import open_url

    def fetch(url: str) -> bytes:
        try:
            response = open_url(url, timeout=timeout, validate_certs=validate_certs, follow_redirects="all")
            try:
                return response.read(MAX_KEY_BYTES + 1)
            finally:
                response.close()
        except Exception as exc:  # HTTP errors, connection errors, timeouts, TLS failures
            raise KeyFetchError(str(exc)) from exc

    return fetch
