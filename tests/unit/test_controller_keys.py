"""Tests for keys fetched on the controller once per run (gpuhost_cli.controller_keys),
the action plugin apt_signing_key that hands them to the hosts, and the module's `content`.

Downloads only talk to an HTTP server on 127.0.0.1 that counts the requests it answers.
Cache directories are made under tmp_path, never in the real temporary directory.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib.util
import json
import multiprocessing
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml
from plugin_loader import ModuleFail, load_module, run_main

from gpuhost_cli import controller_keys
from gpuhost_cli.controller_keys import MAX_KEY_BYTES, KeyFetchError, cache_dir, fetch_once, http_fetch, run_id

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "gpuhost_cli" / "ansible_plugins"
KEYS = REPO / "tests" / "harness" / "mirror" / "keys"

DOCKER_KEY = KEYS / "docker-standin.public.asc"
NVIDIA_KEY = KEYS / "nvidia-standin.public.asc"
ROGUE_KEY = KEYS / "rogue-standin.public.asc"

DOCKER_FPR = "D6B15F0668FD904394AB11FB2EB01246DC501FC6"
NVIDIA_FPR = "494426F3C91F21FBB361113F8292C6FEF68A3170"
ROGUE_FPR = "F85798B55BAD022111FF0E688D40BDF30532B5CB"

GPG = shutil.which("gpg")
UID = os.getuid()

ask = load_module("apt_signing_key")


# ---------------------------------------------------------------------------
# Helpers and fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                 "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _private_tmp_root(tmp_path, monkeypatch):
    """tempfile's root (the default root of cache_dir) is a folder of this test."""
    root = tmp_path / "tmp-root"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


class KeyServer:
    """An HTTP server on 127.0.0.1 that serves ROUTES and counts the requests for each path."""

    def __init__(self, routes):
        self.routes = routes
        self.counts = Counter()
        self.delay = 0.0
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - name fixed by the base class
                with server._lock:
                    server.counts[self.path] += 1
                if server.delay:
                    time.sleep(server.delay)
                status, body, headers = server.routes.get(self.path, (404, b"not here\n", {}))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path):
        return self.base + path

    def requests(self, path):
        with self._lock:
            return self.counts[path]


@pytest.fixture
def server():
    """A fresh counting server for each test: its counts start at zero."""
    srv = KeyServer({
        "/docker.asc": (200, DOCKER_KEY.read_bytes(), {}),
        "/nvidia.asc": (200, NVIDIA_KEY.read_bytes(), {}),
        "/rogue.asc": (200, ROGUE_KEY.read_bytes(), {}),
        "/moved.asc": (302, b"", {"Location": "/docker.asc"}),
        "/huge.bin": (200, b"\x00" * (MAX_KEY_BYTES + 1), {}),
        "/max.bin": (200, b"\x01" * MAX_KEY_BYTES, {}),
    })
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)


def closed_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def counting(fetch):
    """FETCH, with the number of times it was called in `.calls`."""
    def wrapped(url):
        wrapped.calls += 1
        return fetch(url)
    wrapped.calls = 0
    return wrapped


@pytest.fixture
def cache(tmp_path):
    """A private cache directory of a run made up for the test."""
    root = tmp_path / "cache-root"
    root.mkdir()
    return cache_dir(str(root), "4242-100")


def proc_start_time(pid):
    """Field 22 of /proc/PID/stat (the start time), read independently of the code under test."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()[22 - 3]


def missing_pid():
    """A PID that no process has: PIDs are always below pid_max."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---------------------------------------------------------------------------
# fetch_once and http_fetch
# ---------------------------------------------------------------------------

def test_first_call_downloads_later_calls_reuse_the_bytes(server, cache):
    url = server.url("/docker.asc")
    data, downloaded = fetch_once(url, http_fetch(timeout=10), cache)
    assert (data, downloaded) == (DOCKER_KEY.read_bytes(), True)
    assert server.requests("/docker.asc") == 1
    for _ in range(3):
        again, downloaded = fetch_once(url, http_fetch(timeout=10), cache)
        assert (again, downloaded) == (data, False)
    assert server.requests("/docker.asc") == 1
    name = hashlib.sha256(url.encode()).hexdigest()
    assert (cache / f"{name}.key").read_bytes() == data
    assert not (cache / f"{name}.tmp").exists()
    assert not (cache / f"{name}.failed").exists()


def test_cached_key_is_used_without_calling_fetch(server, cache):
    url = server.url("/docker.asc")
    fetch_once(url, http_fetch(timeout=10), cache)
    never = mock.Mock(side_effect=AssertionError("fetched again"))
    assert fetch_once(url, never, cache) == (DOCKER_KEY.read_bytes(), False)
    never.assert_not_called()


def test_another_url_is_fetched_separately(server, cache):
    docker, downloaded = fetch_once(server.url("/docker.asc"), http_fetch(timeout=10), cache)
    assert downloaded is True
    nvidia, downloaded = fetch_once(server.url("/nvidia.asc"), http_fetch(timeout=10), cache)
    assert downloaded is True
    assert (docker, nvidia) == (DOCKER_KEY.read_bytes(), NVIDIA_KEY.read_bytes())
    assert fetch_once(server.url("/docker.asc"), http_fetch(timeout=10), cache) == (docker, False)
    assert fetch_once(server.url("/nvidia.asc"), http_fetch(timeout=10), cache) == (nvidia, False)
    assert server.requests("/docker.asc") == 1 and server.requests("/nvidia.asc") == 1


def test_same_url_in_another_run_is_downloaded_again(server, tmp_path):
    url = server.url("/docker.asc")
    assert fetch_once(url, http_fetch(timeout=10), cache_dir(str(tmp_path), "1-1"))[1] is True
    assert fetch_once(url, http_fetch(timeout=10), cache_dir(str(tmp_path), "2-2"))[1] is True
    assert server.requests("/docker.asc") == 2


def _fetch_in_worker(url, directory, barrier, results):
    try:
        barrier.wait(timeout=30)
        data, downloaded = fetch_once(url, http_fetch(timeout=30), directory)
        results.put((hashlib.sha256(data).hexdigest(), downloaded))
    except BaseException as exc:  # reported to the test, which fails on it
        results.put(("error", repr(exc)))


def test_forked_workers_asking_at_once_cause_one_request(server, cache):
    # The server answers slowly, so every worker asks while the first download is under way.
    server.delay = 0.5
    url = server.url("/docker.asc")
    http_fetch()  # imports Ansible's HTTP client before the fork
    ctx = multiprocessing.get_context("fork")
    workers = 8
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_fetch_in_worker, args=(url, cache, barrier, results)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    try:
        answers = [results.get(timeout=60) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
    assert all(proc.exitcode == 0 for proc in procs)
    assert [a for a in answers if a[0] == "error"] == []
    assert {digest for digest, _ in answers} == {hashlib.sha256(DOCKER_KEY.read_bytes()).hexdigest()}
    assert sorted(downloaded for _, downloaded in answers) == [False] * (workers - 1) + [True]
    assert server.requests("/docker.asc") == 1


def test_404_is_tried_once_and_remembered_for_the_run(server, cache):
    url = server.url("/missing.asc")
    fetch = counting(http_fetch(timeout=10))
    with pytest.raises(KeyFetchError) as first:
        fetch_once(url, fetch, cache)
    assert "404" in str(first.value)
    assert server.requests("/missing.asc") == 1
    for _ in range(2):
        with pytest.raises(KeyFetchError) as again:
            fetch_once(url, fetch, cache)
        assert str(again.value) == str(first.value)
    assert fetch.calls == 1
    assert server.requests("/missing.asc") == 1
    # Another URL of the same server is not affected.
    assert fetch_once(server.url("/docker.asc"), fetch, cache)[1] is True


def test_connection_refused_is_tried_once_and_remembered_for_the_run(cache):
    url = "http://127.0.0.1:%d/gpgkey" % closed_port()
    fetch = counting(http_fetch(timeout=5))
    with pytest.raises(KeyFetchError) as first:
        fetch_once(url, fetch, cache)
    assert "refused" in str(first.value).lower()
    with pytest.raises(KeyFetchError) as again:
        fetch_once(url, fetch, cache)
    assert str(again.value) == str(first.value)
    assert fetch.calls == 1


def test_response_over_max_key_bytes_is_refused_and_remembered(server, cache):
    url = server.url("/huge.bin")
    fetch = counting(http_fetch(timeout=10))
    with pytest.raises(KeyFetchError, match=f"larger than the {MAX_KEY_BYTES} bytes accepted"):
        fetch_once(url, fetch, cache)
    with pytest.raises(KeyFetchError, match=f"larger than the {MAX_KEY_BYTES} bytes accepted"):
        fetch_once(url, fetch, cache)
    assert fetch.calls == 1 and server.requests("/huge.bin") == 1
    assert not list(cache.glob("*.key")) and not list(cache.glob("*.tmp"))


def test_response_of_exactly_max_key_bytes_is_accepted(server, cache):
    data, downloaded = fetch_once(server.url("/max.bin"), http_fetch(timeout=10), cache)
    assert downloaded is True and len(data) == MAX_KEY_BYTES


def test_oversized_result_of_any_fetch_is_refused(cache):
    with pytest.raises(KeyFetchError, match="larger than"):
        fetch_once("http://example.invalid/k", lambda url: b"x" * (MAX_KEY_BYTES + 1), cache)


def test_http_fetch_follows_redirects(server, cache):
    data, _ = fetch_once(server.url("/moved.asc"), http_fetch(timeout=10), cache)
    assert data == DOCKER_KEY.read_bytes()
    assert server.requests("/moved.asc") == 1 and server.requests("/docker.asc") == 1


# ---------------------------------------------------------------------------
# cache_dir and run_id
# ---------------------------------------------------------------------------

def test_cache_dir_is_private_and_named_after_user_and_run(tmp_path):
    path = cache_dir(str(tmp_path), "123-456")
    assert path == tmp_path / f"gpuhost-keys-{UID}-123-456"
    assert path.is_dir() and not path.is_symlink()
    assert mode_of(path) == 0o700
    assert path.stat().st_uid == UID


def test_cache_dir_is_private_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = cache_dir(str(tmp_path), "123-456")
    finally:
        os.umask(old)
    assert mode_of(path) == 0o700


def test_cache_dir_is_reused_for_the_same_run(tmp_path):
    first = cache_dir(str(tmp_path), "123-456")
    (first / "marker").write_text("kept")
    second = cache_dir(str(tmp_path), "123-456")
    assert second == first
    assert (second / "marker").read_text() == "kept"


def test_default_root_and_run_are_the_temp_dir_and_the_parent_process(_private_tmp_root):
    path = cache_dir()
    assert path.parent == _private_tmp_root
    assert path.name == f"gpuhost-keys-{UID}-{run_id(os.getppid())}"
    assert mode_of(path) == 0o700


def test_ended_runs_are_removed_when_a_new_run_starts(tmp_path):
    me = os.getpid()
    ended_pid = tmp_path / f"gpuhost-keys-{UID}-{missing_pid()}-12345"
    reused_pid = tmp_path / f"gpuhost-keys-{UID}-{me}-1"  # a live PID that started at another time
    live = tmp_path / f"gpuhost-keys-{UID}-{run_id(me)}"
    garbled = tmp_path / f"gpuhost-keys-{UID}-garbled"
    for old in (ended_pid, reused_pid, live, garbled):
        old.mkdir(mode=0o700)
        (old / "k.key").write_bytes(b"key")
    others = tmp_path / f"gpuhost-keys-{UID + 1}-{missing_pid()}-1"  # another user's name
    others.mkdir()
    unrelated = tmp_path / "something-else"
    unrelated.mkdir()

    new = cache_dir(str(tmp_path), "999-999")

    assert new.is_dir()
    assert not ended_pid.exists()
    assert not reused_pid.exists()
    assert not garbled.exists()
    assert (live / "k.key").read_bytes() == b"key"
    assert others.is_dir() and unrelated.is_dir()


def test_a_run_that_reuses_its_dir_removes_nothing(tmp_path):
    cache_dir(str(tmp_path), "999-999")
    ended = tmp_path / f"gpuhost-keys-{UID}-{missing_pid()}-12345"
    ended.mkdir(mode=0o700)
    cache_dir(str(tmp_path), "999-999")
    assert ended.is_dir()


def test_a_symlink_named_like_an_ended_run_is_not_followed(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "file").write_text("keep")
    link = tmp_path / f"gpuhost-keys-{UID}-{missing_pid()}-12345"
    link.symlink_to(target, target_is_directory=True)
    cache_dir(str(tmp_path), "999-999")
    assert link.is_symlink()
    assert (target / "file").read_text() == "keep"


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o740, 0o755, 0o777])
def test_a_cache_dir_others_can_read_is_refused(tmp_path, mode):
    path = tmp_path / f"gpuhost-keys-{UID}-123-456"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(KeyFetchError, match="is not a private directory of this user"):
        cache_dir(str(tmp_path), "123-456")


def test_a_cache_dir_that_is_a_symlink_is_refused(tmp_path):
    private = tmp_path / "elsewhere"
    private.mkdir(mode=0o700)
    path = tmp_path / f"gpuhost-keys-{UID}-123-456"
    path.symlink_to(private, target_is_directory=True)
    with pytest.raises(KeyFetchError) as excinfo:
        cache_dir(str(tmp_path), "123-456")
    assert str(excinfo.value) == f"{path} is not a private directory of this user; remove it"


def test_a_cache_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / f"gpuhost-keys-{UID}-123-456"
    path.write_text("")
    with pytest.raises(KeyFetchError, match="is not a private directory"):
        cache_dir(str(tmp_path), "123-456")


def test_run_id_of_this_process_is_its_pid_and_start_time():
    me = os.getpid()
    started = proc_start_time(me)
    assert started.isdigit() and started != "0"
    assert run_id(me) == f"{me}-{started}"
    assert run_id(me) == run_id(me)


def test_run_id_defaults_to_the_parent_process():
    parent = os.getppid()
    assert run_id() == f"{parent}-{proc_start_time(parent)}" == run_id(parent)


def test_run_id_of_a_process_that_does_not_exist_has_no_start_time():
    assert run_id(missing_pid()) == f"{missing_pid()}-0"


def test_forked_workers_of_one_process_share_its_run_id():
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    proc = ctx.Process(target=lambda: results.put(run_id()))
    proc.start()
    answer = results.get(timeout=30)
    proc.join(timeout=30)
    assert answer == run_id(os.getpid())


# ---------------------------------------------------------------------------
# The module's content option
# ---------------------------------------------------------------------------

def reference_dearmor(path):
    home = tempfile.mkdtemp(prefix="test-gpg-")
    try:
        return subprocess.run([GPG, "--homedir", home, "--batch", "--quiet", "--no-autostart", "--dearmor"],
                              input=Path(path).read_bytes(), capture_output=True, check=True).stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)


def b64(path_or_bytes):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def offline():
    """The module must not download: any use of fetch_url fails the test."""
    with mock.patch.object(ask, "fetch_url", side_effect=AssertionError("the module downloaded")) as fetch:
        yield fetch


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "keyrings" / "vendor.gpg"


def unreachable_url():
    return "http://127.0.0.1:%d/gpgkey" % closed_port()


def test_content_writes_the_keyring_without_downloading(offline, dest):
    args = {"url": unreachable_url(), "content": b64(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)}
    result = ask_run(args)
    assert result["changed"] is True
    assert result["fingerprints"] == [DOCKER_FPR]
    assert dest.read_bytes() == reference_dearmor(DOCKER_KEY)
    assert result["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert ask_run(args)["changed"] is False
    offline.assert_not_called()


def test_content_of_a_binary_key_is_written_as_is(offline, dest):
    binary = reference_dearmor(NVIDIA_KEY)
    result = ask_run({"url": unreachable_url(), "content": b64(binary), "fingerprint": NVIDIA_FPR,
                      "dest": str(dest)})
    assert result["fingerprints"] == [NVIDIA_FPR]
    assert dest.read_bytes() == binary


def test_content_in_check_mode_writes_nothing(offline, dest):
    result = ask_run({"url": unreachable_url(), "content": b64(DOCKER_KEY), "fingerprint": DOCKER_FPR,
                      "dest": str(dest)}, check_mode=True)
    assert result["changed"] is True and result["fingerprints"] == [DOCKER_FPR]
    assert not dest.exists()


def test_content_with_a_wrong_fingerprint_fails_naming_the_url(offline, dest):
    url = "https://keys.example.invalid/nvidia/gpgkey"
    result = ask_fail({"url": url, "content": b64(ROGUE_KEY), "fingerprint": NVIDIA_FPR, "dest": str(dest),
                       "label": "NVIDIA's apt key"})
    assert result["msg"].startswith("NVIDIA's apt key: the key at %s has fingerprint %s, expected %s. "
                                    "Nothing was written." % (url, ROGUE_FPR, NVIDIA_FPR))
    assert result["fingerprints"] == [ROGUE_FPR]
    assert not dest.exists()


def test_content_with_a_wrong_fingerprint_keeps_the_existing_keyring(offline, dest):
    url = unreachable_url()
    ask_run({"url": url, "content": b64(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    before = dest.read_bytes()
    ask_fail({"url": url, "content": b64(ROGUE_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert dest.read_bytes() == before


@pytest.mark.parametrize("content", ["not base64!", "QUJD\n===", "ÄÖÜ", "QUJDRA"])
def test_content_that_is_not_base64_fails(offline, dest, content):
    url = "https://keys.example.invalid/gpgkey"
    result = ask_fail({"url": url, "content": content, "fingerprint": DOCKER_FPR, "dest": str(dest),
                       "label": "Docker's apt key"})
    assert result["msg"] == ("Docker's apt key: the key from %s did not arrive as base64. Nothing was written."
                             % url)
    assert not dest.exists()


def test_decode_content_refuses_more_than_max_key_bytes():
    with pytest.raises(ask.SigningKeyError, match="larger than the %d bytes" % MAX_KEY_BYTES):
        ask.decode_content(b64(b"x" * (MAX_KEY_BYTES + 1)), "https://k.example.invalid/key")
    assert len(ask.decode_content(b64(b"x" * MAX_KEY_BYTES), "origin")) == MAX_KEY_BYTES


def test_content_together_with_src_is_refused(offline, dest):
    result = ask_fail({"src": str(DOCKER_KEY), "content": b64(DOCKER_KEY), "fingerprint": DOCKER_FPR,
                       "dest": str(dest)})
    assert "mutually exclusive" in result["msg"] and "content" in result["msg"] and "src" in result["msg"]
    assert not dest.exists()


def test_module_and_controller_accept_the_same_key_size():
    assert ask.MAX_KEY_BYTES == MAX_KEY_BYTES


def ask_run(args, **kw):
    return run_main(ask, args, **kw)


def ask_fail(args, **kw):
    with pytest.raises(ModuleFail) as excinfo:
        run_main(ask, args, **kw)
    return excinfo.value.result


# ---------------------------------------------------------------------------
# The action plugin, run in-process with a stand-in task and connection
# ---------------------------------------------------------------------------

def _load_action():
    spec = importlib.util.spec_from_file_location("gpuhost_action_apt_signing_key",
                                                  PLUGINS / "action" / "apt_signing_key.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin


action_plugin = _load_action()


class ActionRun:
    """One task of the action plugin, with the module's run replaced by a recorder."""

    def __init__(self, args, check_mode=False):
        task = SimpleNamespace(args=dict(args), async_val=0, check_mode=check_mode, action="apt_signing_key")
        connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="/nonexistent-remote-tmp"))
        self.action = action_plugin.ActionModule(task, connection, play_context=None, loader=None, templar=None)
        self.calls = []

        def execute_module(**kwargs):
            self.calls.append(kwargs)
            return {"changed": True, "from_module": True}

        self.action._execute_module = execute_module
        self.result = self.action.run(task_vars={"inventory_hostname": "gpu-1"})

    @property
    def module_args(self):
        assert len(self.calls) == 1, self.calls
        assert self.calls[0]["module_name"] == "apt_signing_key"
        return self.calls[0]["module_args"]


def key_args(url, **extra):
    return {"url": url, "fingerprint": DOCKER_FPR, "dest": "/usr/share/keyrings/docker.gpg",
            "label": "Docker's apt key", **extra}


def test_action_uses_the_same_controller_keys_module():
    assert action_plugin.controller_keys is controller_keys


def test_action_passes_the_key_fetched_on_the_controller(server, _private_tmp_root):
    url = server.url("/docker.asc")
    first = ActionRun(key_args(url))
    assert first.module_args == {**key_args(url), "content": b64(DOCKER_KEY)}
    assert base64.b64decode(first.module_args["content"]) == DOCKER_KEY.read_bytes()
    assert first.result["key_fetched_on"] == "controller"
    assert first.result["key_downloaded_by_this_task"] is True
    assert "controller_fetch_error" not in first.result
    assert first.result["from_module"] is True and first.result["changed"] is True

    # Another task (another host) of the same run: the same bytes, no new request.
    second = ActionRun(key_args(url))
    assert second.module_args["content"] == first.module_args["content"]
    assert second.result["key_fetched_on"] == "controller"
    assert second.result["key_downloaded_by_this_task"] is False
    assert server.requests("/docker.asc") == 1
    # The cache is the run's private directory under the temporary root.
    assert [p.name for p in _private_tmp_root.iterdir()] == [f"gpuhost-keys-{UID}-{run_id()}"]


def test_action_fetches_in_check_mode_too(server):
    run = ActionRun(key_args(server.url("/docker.asc")), check_mode=True)
    assert run.module_args["content"] == b64(DOCKER_KEY)
    assert run.result["key_fetched_on"] == "controller"


def test_action_leaves_the_download_to_the_host_when_the_controller_cannot(server):
    url = unreachable_url()
    run = ActionRun(key_args(url))
    assert "content" not in run.module_args
    assert run.module_args == key_args(url)
    assert run.result["key_fetched_on"] == "host"
    error = run.result["controller_fetch_error"]
    assert error.startswith(f"Docker's apt key: the controller could not download {url}: ")
    assert "refused" in error.lower()
    assert "key_downloaded_by_this_task" not in run.result
    assert run.result["from_module"] is True

    # The controller tries the URL once per run: the next task reports the same reason.
    with mock.patch.object(controller_keys, "http_fetch", wraps=controller_keys.http_fetch) as made:
        again = ActionRun(key_args(url))
    assert again.result["controller_fetch_error"] == error
    assert "content" not in again.module_args
    assert made.call_count == 1  # a fetcher is made, but fetch_once answers from the failure on record


def test_action_asks_for_a_missing_key_once_per_run(server):
    url = server.url("/missing.asc")
    for _ in range(3):
        run = ActionRun(key_args(url))
        assert run.result["key_fetched_on"] == "host"
        assert "404" in run.result["controller_fetch_error"]
        assert "content" not in run.module_args
    assert server.requests("/missing.asc") == 1


def test_action_default_label_names_the_key(server):
    url = server.url("/missing.asc")
    args = key_args(url)
    del args["label"]
    run = ActionRun(args)
    assert run.result["controller_fetch_error"].startswith(
        f"apt signing key: the controller could not download {url}: ")


def test_action_falls_back_to_the_host_when_the_cache_dir_is_not_private(server, _private_tmp_root):
    insecure = _private_tmp_root / f"gpuhost-keys-{UID}-{run_id()}"
    insecure.mkdir()
    insecure.chmod(0o755)
    run = ActionRun(key_args(server.url("/docker.asc")))
    assert run.result["key_fetched_on"] == "host"
    assert "is not a private directory of this user" in run.result["controller_fetch_error"]
    assert "content" not in run.module_args
    assert server.requests("/docker.asc") == 0


def test_fetch_on_host_never_fetches_on_the_controller(server, _private_tmp_root):
    url = server.url("/docker.asc")
    with mock.patch.object(controller_keys, "fetch_once", side_effect=AssertionError("fetched")), \
            mock.patch.object(controller_keys, "http_fetch", side_effect=AssertionError("fetched")), \
            mock.patch.object(controller_keys, "cache_dir", side_effect=AssertionError("cache made")):
        run = ActionRun(key_args(url, fetch_on="host"))
    assert run.module_args == key_args(url)  # fetch_on is the plugin's; the module never sees it
    assert "key_fetched_on" not in run.result and "controller_fetch_error" not in run.result
    assert server.requests("/docker.asc") == 0
    assert list(_private_tmp_root.iterdir()) == []


def test_fetch_on_controller_is_the_default_and_is_not_passed_on(server):
    url = server.url("/docker.asc")
    run = ActionRun(key_args(url, fetch_on="controller"))
    assert run.module_args == {**key_args(url), "content": b64(DOCKER_KEY)}
    assert run.result["key_fetched_on"] == "controller"


@pytest.mark.parametrize("value", ["both", "Controller", "", None, True])
def test_a_bad_fetch_on_fails_without_running_the_module(server, value):
    run = ActionRun(key_args(server.url("/docker.asc"), fetch_on=value))
    assert run.calls == []
    assert run.result["failed"] is True
    assert run.result["msg"] == f"apt_signing_key: fetch_on must be controller or host, got {value!r}"
    assert server.requests("/docker.asc") == 0


def test_src_and_given_content_are_left_alone(server):
    with mock.patch.object(controller_keys, "fetch_once", side_effect=AssertionError("fetched")):
        src = ActionRun({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": "/k.gpg"})
        given = ActionRun(key_args(server.url("/docker.asc"), content=b64(NVIDIA_KEY)))
    assert src.module_args == {"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": "/k.gpg"}
    assert given.module_args["content"] == b64(NVIDIA_KEY)
    assert "key_fetched_on" not in src.result and "key_fetched_on" not in given.result
    assert server.requests("/docker.asc") == 0


@pytest.mark.parametrize("value, expected", [
    (False, False), ("no", False), ("false", False), ("False", False), ("0", False), ("off", False),
    (True, True), ("yes", True), ("true", True), ("1", True),
])
def test_action_reads_validate_certs_as_the_module_does(server, value, expected):
    with mock.patch.object(controller_keys, "http_fetch", wraps=controller_keys.http_fetch) as made:
        run = ActionRun(key_args(server.url("/docker.asc"), validate_certs=value, timeout="7"))
    made.assert_called_once_with(7, expected)
    assert run.module_args["validate_certs"] == value  # the module reads it as before


def test_action_default_timeout_and_validate_certs(server):
    with mock.patch.object(controller_keys, "http_fetch", wraps=controller_keys.http_fetch) as made:
        ActionRun(key_args(server.url("/docker.asc")))
    made.assert_called_once_with(30, True)


# ---------------------------------------------------------------------------
# Through ansible-playbook: the action plugin, forked workers and the module on localhost
# ---------------------------------------------------------------------------

def run_playbook(tasks, tmp_path, *extra):
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}],
                                       sort_keys=False))
    tmpdir = tmp_path / "controller-tmp"
    tmpdir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("ANSIBLE_")}
    env.update(
        TMPDIR=str(tmpdir),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"),
        ANSIBLE_LIBRARY=str(PLUGINS / "modules"),
        ANSIBLE_ACTION_PLUGINS=str(PLUGINS / "action"),
        ANSIBLE_MODULE_UTILS=str(PLUGINS / "module_utils"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORKS="5",
    )
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-v",
         "-e", f"ansible_python_interpreter={sys.executable}", *extra, str(playbook)],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=180)
    # With -v, Ansible names its config file (or says there is none) before the JSON report.
    text = proc.stdout[proc.stdout.find("\n{") + 1:] if not proc.stdout.startswith("{") else proc.stdout
    try:
        report = json.loads(text)
    except ValueError:
        raise AssertionError(f"no JSON (rc={proc.returncode})\n{proc.stdout}\n{proc.stderr}") from None
    results = {task["task"]["name"]: task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]}
    return proc.returncode, results, tmpdir


def test_playbook_fetches_a_key_once_for_two_tasks(server, tmp_path):
    url = server.url("/docker.asc")
    keyrings = tmp_path / "keyrings"
    task = {"url": url, "fingerprint": DOCKER_FPR, "label": "Docker's apt key"}
    tasks = [
        {"name": "First", "apt_signing_key": {**task, "dest": str(keyrings / "one.gpg")}},
        {"name": "Second", "apt_signing_key": {**task, "dest": str(keyrings / "two.gpg")}},
        {"name": "Unreachable", "apt_signing_key": {"url": unreachable_url(), "fingerprint": DOCKER_FPR,
                                                    "dest": str(keyrings / "three.gpg"), "timeout": 5},
         "ignore_errors": True},
        {"name": "On the host", "apt_signing_key": {**task, "dest": str(keyrings / "four.gpg"),
                                                    "fetch_on": "host"}},
    ]
    rc, results, tmpdir = run_playbook(tasks, tmp_path, "--check")
    assert rc == 0, results
    first, second = results["First"], results["Second"]
    for result in (first, second):
        assert result["changed"] is True, result
        assert result["key_fetched_on"] == "controller"
        assert result["fingerprints"] == [DOCKER_FPR]
    assert first["key_downloaded_by_this_task"] is True
    assert second["key_downloaded_by_this_task"] is False

    unreachable = results["Unreachable"]
    assert unreachable["failed"] is True
    assert unreachable["key_fetched_on"] == "host"
    assert "the controller could not download" in unreachable["controller_fetch_error"]
    assert "could not download the key from" in unreachable["msg"]  # the host tried too

    on_host = results["On the host"]
    assert on_host["changed"] is True and on_host["fingerprints"] == [DOCKER_FPR]
    assert "key_fetched_on" not in on_host

    # One request from the controller for both tasks, one from the host for fetch_on: host.
    assert server.requests("/docker.asc") == 2
    assert not keyrings.exists()  # check mode

    # The run's cache stays, private, until the next run starts.
    caches = list(tmpdir.glob(f"gpuhost-keys-{UID}-*"))
    assert len(caches) == 1 and mode_of(caches[0]) == 0o700
    name = hashlib.sha256(url.encode()).hexdigest()
    assert (caches[0] / f"{name}.key").read_bytes() == DOCKER_KEY.read_bytes()

    # The next run downloads again (its own cache) and removes the ended run's.
    rc, results, _ = run_playbook(tasks[:2], tmp_path)
    assert rc == 0, results
    assert results["First"]["key_downloaded_by_this_task"] is True
    assert server.requests("/docker.asc") == 3
    assert (keyrings / "one.gpg").read_bytes() == (keyrings / "two.gpg").read_bytes() == \
        reference_dearmor(DOCKER_KEY)
    after = list(tmpdir.glob(f"gpuhost-keys-{UID}-*"))
    assert len(after) == 1 and after != caches
