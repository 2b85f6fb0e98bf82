"""Tests for the apt_signing_key module.

The stand-in keys under tests/harness/mirror/keys are real RSA keys made for the test mirror.
Network tests only talk to an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import http.server
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import pytest
from plugin_loader import ModuleFail, load_module, run_adhoc, run_main

from ansible.module_utils import basic

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "tests" / "harness" / "mirror" / "keys"

DOCKER_KEY = KEYS / "docker-standin.public.asc"
NVIDIA_KEY = KEYS / "nvidia-standin.public.asc"
ROGUE_KEY = KEYS / "rogue-standin.public.asc"
DOCKER_SECRET = KEYS / "docker-standin.secret.asc"

DOCKER_FPR = "D6B15F0668FD904394AB11FB2EB01246DC501FC6"
NVIDIA_FPR = "494426F3C91F21FBB361113F8292C6FEF68A3170"
ROGUE_FPR = "F85798B55BAD022111FF0E688D40BDF30532B5CB"

GPG = shutil.which("gpg")
ANSIBLE = Path(sys.executable).parent / "ansible"

ask = load_module("apt_signing_key")


# ---------------------------------------------------------------------------
# Helpers and fixtures
# ---------------------------------------------------------------------------

def spaced(fpr, lower=False):
    text = " ".join(fpr[i:i + 4] for i in range(0, 40, 4))
    return text.lower() if lower else text


def gpg_reference(args, data):
    """Run gpg in its own throwaway home, independently of the module's helpers."""
    home = tempfile.mkdtemp(prefix="test-gpg-")
    try:
        proc = subprocess.run(
            [GPG, "--homedir", home, "--batch", "--quiet", "--no-autostart"] + args,
            input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True,
        )
        return proc.stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)


def reference_dearmor(path):
    return gpg_reference(["--dearmor"], Path(path).read_bytes())


def show_key_fingerprints(path):
    out = gpg_reference(["--with-colons", "--show-keys", str(path)], b"").decode()
    fprs, last = [], None
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == "fpr" and last == "pub":
            fprs.append(fields[9])
        if fields[0] in ("pub", "sub", "uid", "sec", "ssb"):
            last = fields[0]
    return fprs


def gnupg_homes():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "apt-signing-key-*")))


def run_module(args, check_mode=False, diff=False):
    """Run the module's main() in-process; return the exit result or raise ModuleFail."""
    return run_main(ask, args, check_mode=check_mode, diff=diff)


def fail_module(args, **kw):
    with pytest.raises(ModuleFail) as excinfo:
        run_module(args, **kw)
    return excinfo.value.result


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "keyrings" / "vendor-keyring.gpg"


@pytest.fixture
def two_keys(tmp_path):
    path = tmp_path / "two-keys.asc"
    path.write_bytes(DOCKER_KEY.read_bytes() + ROGUE_KEY.read_bytes())
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """Serve a directory of keys on 127.0.0.1 on an ephemeral port; yield its base URL."""
    root = tmp_path_factory.mktemp("keyserver")
    for key in (DOCKER_KEY, NVIDIA_KEY, ROGUE_KEY):
        shutil.copy(key, root / key.name)
    (root / "two-keys.asc").write_bytes(DOCKER_KEY.read_bytes() + ROGUE_KEY.read_bytes())
    (root / "error-page.html").write_text("<html><body>Service unavailable</body></html>\n")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    DOCKER_FPR,
    DOCKER_FPR.lower(),
    spaced(DOCKER_FPR),
    spaced(DOCKER_FPR, lower=True),
    "  " + spaced(DOCKER_FPR) + "\n",
])
def test_normalize_fingerprint_accepts_spaces_and_case(value):
    assert ask.normalize_fingerprint(value) == DOCKER_FPR


@pytest.mark.parametrize("value", [
    "",
    "2EB01246DC501FC6",                 # long key ID
    "DC501FC6",                         # short key ID
    DOCKER_FPR[:-1],                    # 39 digits
    DOCKER_FPR + "0",                   # 41 digits
    "G" + DOCKER_FPR[1:],               # not hex
    "0x" + DOCKER_FPR,
    DOCKER_FPR[:20] + ":" + DOCKER_FPR[20:],
])
def test_normalize_fingerprint_rejects_malformed(value):
    with pytest.raises(ask.SigningKeyError) as excinfo:
        ask.normalize_fingerprint(value, "Docker's apt key (docker_apt_key_fingerprint)")
    msg = excinfo.value.msg
    assert msg.startswith("Docker's apt key (docker_apt_key_fingerprint): fingerprint ")
    assert repr(value) in msg
    assert "40 hexadecimal digits" in msg


def test_parse_colon_listing_ignores_subkey_fingerprints():
    listing = "\n".join([
        "pub:-:4096:1:8D81803C0EBFCD88:1487788586:::-:::scSC::::::23::0:",
        "fpr:::::::::9DC858229FC7DD38854AE2D88D81803C0EBFCD88:",
        "uid:-::::1487788586::X::Docker Release (CE deb) <docker@docker.com>::::::::::0:",
        "sub:-:4096:1:7EA0A9C3F273FCD8:1487791226:::-:::s::::::23:",
        "fpr:::::::::D3306A018370199E527AE7997EA0A9C3F273FCD8:",
        "pub:-:3072:1:8D40BDF30532B5CB:1795875133:1900000000::-:::scSC::::::23::0:",
        "fpr:::::::::f85798b55bad022111ff0e688d40bdf30532b5cb:",
    ])
    keys = ask.parse_colon_listing(listing)
    assert [k["fingerprint"] for k in keys] == [
        "9DC858229FC7DD38854AE2D88D81803C0EBFCD88",
        ROGUE_FPR,
    ]
    assert keys[0]["uids"] == ["Docker Release (CE deb) <docker@docker.com>"]
    assert keys[0]["expires"] is None
    assert keys[1]["expires"] == 1900000000


@pytest.mark.parametrize("value, expected", [
    ("0644", 0o644), ("644", 0o644), ("0o644", 0o644), (0o644, 0o644), ("0444", 0o444), ("0600", 0o600),
])
def test_parse_mode_accepts(value, expected):
    assert ask.parse_mode(value) == expected


@pytest.mark.parametrize("value", ["0666", "0646", "4644", "1644", "rw-r--r--", "0999", "", True])
def test_parse_mode_refuses(value):
    with pytest.raises(ask.SigningKeyError):
        ask.parse_mode(value)


@pytest.mark.parametrize("path", [
    "/etc/apt/trusted.gpg",
    "/etc/apt/trusted.gpg.d/docker.gpg",
    "/etc/apt/trusted.gpg.d/sub/dir/key.gpg",
    "/etc/apt/../apt/trusted.gpg.d/docker.gpg",
    "/etc/apt//trusted.gpg.d/./docker.asc",
])
def test_check_dest_refuses_global_trust(path):
    with pytest.raises(ask.SigningKeyError) as excinfo:
        ask.check_dest(path, "NVIDIA's apt key")
    assert excinfo.value.msg.startswith("NVIDIA's apt key: refusing to write ")
    assert "signed-by" in excinfo.value.msg


def test_check_dest_refuses_symlink_into_trusted_gpg_d(tmp_path):
    link = tmp_path / "sneaky.gpg"
    link.symlink_to("/etc/apt/trusted.gpg.d/sneaky.gpg")
    with pytest.raises(ask.SigningKeyError, match="refusing to write"):
        ask.check_dest(str(link))


@pytest.mark.parametrize("path", ["keyrings/docker.gpg", ""])
def test_check_dest_requires_absolute_path(path):
    with pytest.raises(ask.SigningKeyError, match="must be an absolute path"):
        ask.check_dest(path)


def test_check_dest_allows_usr_share_keyrings_and_similar_names():
    assert ask.check_dest("/usr/share/keyrings/docker.gpg") == "/usr/share/keyrings/docker.gpg"
    assert ask.check_dest("/etc/apt/keyrings/docker.gpg") == "/etc/apt/keyrings/docker.gpg"
    assert ask.check_dest("/etc/apt/trusted.gpg.dx/k.gpg") == "/etc/apt/trusted.gpg.dx/k.gpg"


def test_inspect_and_verify_returns_dearmored_keyring():
    keyring, fprs, keys = ask.inspect_and_verify(GPG, NVIDIA_KEY.read_bytes(), NVIDIA_FPR)
    assert fprs == [NVIDIA_FPR]
    assert keyring == reference_dearmor(NVIDIA_KEY)
    assert keys[0]["type"] == "pub"


def test_inspect_and_verify_leaves_no_gnupg_home_behind():
    before = gnupg_homes()
    ask.inspect_and_verify(GPG, DOCKER_KEY.read_bytes(), DOCKER_FPR)
    with pytest.raises(ask.SigningKeyError):
        ask.inspect_and_verify(GPG, ROGUE_KEY.read_bytes(), DOCKER_FPR)
    assert gnupg_homes() - before == set()


def test_write_keyring_is_atomic_and_sets_mode(tmp_path):
    target = tmp_path / "a" / "b" / "k.gpg"
    ask.write_keyring(str(target), b"\x99keyring", 0o644)
    assert target.read_bytes() == b"\x99keyring"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755
    assert stat.S_IMODE(target.parent.parent.stat().st_mode) == 0o755
    assert sorted(p.name for p in target.parent.iterdir()) == ["k.gpg"]


# ---------------------------------------------------------------------------
# The module, from a file on the host (src)
# ---------------------------------------------------------------------------

def test_src_writes_dearmored_keyring(dest):
    before_homes = gnupg_homes()
    result = run_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})

    expected = reference_dearmor(DOCKER_KEY)
    assert result["changed"] is True
    assert result["dest"] == str(dest)
    assert result["fingerprint"] == DOCKER_FPR
    assert result["fingerprints"] == [DOCKER_FPR]
    assert dest.read_bytes() == expected
    assert result["sha256"] == hashlib.sha256(expected).hexdigest()
    assert not dest.read_bytes().startswith(b"-----BEGIN")
    assert show_key_fingerprints(dest) == [DOCKER_FPR]
    st = dest.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o755
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (0, 0)
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
    assert gnupg_homes() - before_homes == set()


def test_second_run_is_unchanged(dest):
    args = {"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)}
    assert run_module(args)["changed"] is True
    mtime = dest.stat().st_mtime_ns
    again = run_module(args)
    assert again["changed"] is False
    assert again["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert dest.stat().st_mtime_ns == mtime


def test_fingerprint_with_spaces_and_lowercase_is_accepted(dest):
    result = run_module({"src": str(NVIDIA_KEY), "fingerprint": spaced(NVIDIA_FPR, lower=True), "dest": str(dest)})
    assert result["changed"] is True
    assert result["fingerprint"] == NVIDIA_FPR
    assert show_key_fingerprints(dest) == [NVIDIA_FPR]


def test_wrong_fingerprint_fails_and_writes_nothing(dest):
    label = "Docker's apt key (docker_apt_key_fingerprint)"
    result = fail_module({"src": str(ROGUE_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest), "label": label})
    assert result["msg"] == (
        "Docker's apt key (docker_apt_key_fingerprint): the key at %s has fingerprint %s, expected %s. "
        "Nothing was written. If the vendor rotated its key, confirm the new fingerprint from the "
        "vendor's documentation and set it." % (ROGUE_KEY, ROGUE_FPR, DOCKER_FPR)
    )
    assert result["fingerprints"] == [ROGUE_FPR]
    assert result["fingerprint"] == DOCKER_FPR
    assert not dest.exists()
    assert not dest.parent.exists()


def test_wrong_fingerprint_keeps_existing_keyring(dest):
    run_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    old = dest.read_bytes()
    fail_module({"src": str(ROGUE_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert dest.read_bytes() == old


@pytest.mark.parametrize("pinned", [DOCKER_FPR, ROGUE_FPR])
def test_file_with_two_primary_keys_is_refused(two_keys, dest, pinned):
    result = fail_module({"src": str(two_keys), "fingerprint": pinned, "dest": str(dest), "label": "Docker's apt key"})
    assert result["msg"].startswith("Docker's apt key: the key file at %s contains 2 primary keys (%s, %s)"
                                    % (two_keys, DOCKER_FPR, ROGUE_FPR))
    assert "expected exactly one, with fingerprint %s" % pinned in result["msg"]
    assert "Nothing was written." in result["msg"]
    assert result["fingerprints"] == [DOCKER_FPR, ROGUE_FPR]
    assert not dest.exists()


def test_malformed_fingerprint_is_rejected_before_anything_else(dest):
    result = fail_module({"src": "/nonexistent/key.asc", "fingerprint": "DC501FC6", "dest": str(dest)})
    assert result["msg"] == (
        "apt signing key: fingerprint 'DC501FC6' is not valid; expected the full fingerprint of the primary "
        "key, 40 hexadecimal digits (spaces allowed, any case), for example "
        "'9DC8 5822 9FC7 DD38 854A E2D8 8D81 803C 0EBF CD88'. Short or long key IDs are not accepted."
    )
    assert "fingerprint" not in result
    assert not dest.exists()


def test_garbage_key_file_is_rejected(tmp_path, dest):
    garbage = tmp_path / "gpgkey"
    garbage.write_text("<html><body>404 Not Found</body></html>\n")
    result = fail_module({"src": str(garbage), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert result["msg"].startswith(
        "apt signing key: the data at %s is not a readable OpenPGP public key (gpg: " % garbage)
    assert "no valid OpenPGP data found" in result["msg"]
    assert "Nothing was written." in result["msg"]
    assert result["fingerprints"] == []
    assert not dest.exists()


def test_binary_garbage_after_a_key_is_rejected(tmp_path, dest):
    corrupt = tmp_path / "corrupt.gpg"
    corrupt.write_bytes(reference_dearmor(DOCKER_KEY) + b"trailing junk")
    result = fail_module({"src": str(corrupt), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert "is not a readable OpenPGP public key" in result["msg"]
    assert not dest.exists()


def test_empty_key_file_is_rejected(tmp_path, dest):
    empty = tmp_path / "empty.asc"
    empty.write_bytes(b"")
    result = fail_module({"src": str(empty), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert result["msg"] == "apt signing key: the key at %s is empty. Nothing was written." % empty


def test_secret_key_is_refused(dest):
    result = fail_module({"src": str(DOCKER_SECRET), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert "contains secret (private) key material" in result["msg"]
    assert not dest.exists()


def test_missing_src_fails_clearly(tmp_path, dest):
    missing = tmp_path / "nope.asc"
    result = fail_module({"src": str(missing), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert result["msg"] == "apt signing key: cannot read the key file %s: No such file or directory." % missing


def test_binary_key_is_written_as_is(tmp_path, dest):
    binary = tmp_path / "docker.gpg"
    binary.write_bytes(reference_dearmor(DOCKER_KEY))
    result = run_module({"src": str(binary), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert result["changed"] is True
    assert dest.read_bytes() == binary.read_bytes()
    # The armored form gives the same keyring, so it is not rewritten.
    assert run_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})["changed"] is False


def test_key_change_replaces_keyring(dest):
    run_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    result = run_module({"src": str(NVIDIA_KEY), "fingerprint": NVIDIA_FPR, "dest": str(dest)}, diff=True)
    assert result["changed"] is True
    assert show_key_fingerprints(dest) == [NVIDIA_FPR]
    assert "fingerprint: %s" % DOCKER_FPR in result["diff"]["before"]
    assert "fingerprint: %s" % NVIDIA_FPR in result["diff"]["after"]


@pytest.mark.parametrize("path", ["/etc/apt/trusted.gpg", "/etc/apt/trusted.gpg.d/docker.gpg"])
def test_global_trust_locations_are_refused(path):
    with mock.patch.object(ask, "write_keyring") as write:
        result = fail_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": path})
    write.assert_not_called()
    assert result["msg"] == (
        "apt signing key: refusing to write %s: keys in /etc/apt/trusted.gpg or /etc/apt/trusted.gpg.d/ are "
        "trusted for every repository. Write the keyring elsewhere (for example under /usr/share/keyrings/) "
        "and reference it with signed-by= in the apt source." % path
    )


def test_writable_mode_is_refused(dest):
    result = fail_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest), "mode": "0666"})
    assert "mode 0666 is refused" in result["msg"]
    assert not dest.exists()


def test_mode_drift_is_corrected(dest):
    args = {"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)}
    run_module(args)
    os.chmod(dest, 0o600)
    result = run_module(args, diff=True)
    assert result["changed"] is True
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert "mode: 0600" in result["diff"]["before"]
    assert "mode: 0644" in result["diff"]["after"]
    assert run_module(args)["changed"] is False


def test_custom_mode(dest):
    run_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest), "mode": "0444"})
    assert stat.S_IMODE(dest.stat().st_mode) == 0o444


def test_missing_gpg_fails_with_install_hint(dest):
    with mock.patch.object(basic.AnsibleModule, "get_bin_path", return_value=None):
        result = fail_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest), "label": "Docker"})
    assert result["msg"] == (
        "Docker: the gpg program was not found on this host; install gnupg first (apt-get install gnupg)."
    )


def test_url_and_src_are_mutually_exclusive(dest):
    result = fail_module({"src": str(DOCKER_KEY), "url": "http://127.0.0.1:9/k", "fingerprint": DOCKER_FPR,
                          "dest": str(dest)})
    assert "mutually exclusive" in result["msg"]
    result = fail_module({"fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert "one of the following is required" in result["msg"]


# ---------------------------------------------------------------------------
# Check mode and diff
# ---------------------------------------------------------------------------

def test_check_mode_reports_change_and_writes_nothing(dest):
    args = {"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)}
    result = run_module(args, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["sha256"] == hashlib.sha256(reference_dearmor(DOCKER_KEY)).hexdigest()
    assert not dest.exists()
    assert not dest.parent.exists()
    assert result["diff"]["before"] == ""
    assert result["diff"]["before_header"] == str(dest)
    assert result["diff"]["after_header"] == str(dest)
    assert result["diff"]["after"].startswith(
        "fingerprint: %s\nsha256: %s\n" % (DOCKER_FPR, result["sha256"]))


def test_check_mode_keeps_existing_different_keyring(dest):
    run_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    old = dest.read_bytes()
    result = run_module({"src": str(NVIDIA_KEY), "fingerprint": NVIDIA_FPR, "dest": str(dest)}, check_mode=True)
    assert result["changed"] is True
    assert dest.read_bytes() == old


def test_check_mode_unchanged_when_identical(dest):
    args = {"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)}
    run_module(args)
    assert run_module(args, check_mode=True)["changed"] is False


def test_check_mode_still_fails_on_fingerprint_mismatch(dest):
    result = fail_module({"src": str(ROGUE_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)}, check_mode=True)
    assert "has fingerprint %s, expected %s" % (ROGUE_FPR, DOCKER_FPR) in result["msg"]
    assert not dest.exists()


def test_no_diff_key_without_diff_mode(dest):
    result = run_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert "diff" not in result


# ---------------------------------------------------------------------------
# Downloading (url), against a loopback server
# ---------------------------------------------------------------------------

def test_url_writes_keyring(mirror, dest):
    url = mirror + "/" + NVIDIA_KEY.name
    result = run_module({"url": url, "fingerprint": NVIDIA_FPR, "dest": str(dest)})
    assert result["changed"] is True
    assert result["fingerprints"] == [NVIDIA_FPR]
    assert dest.read_bytes() == reference_dearmor(NVIDIA_KEY)
    assert run_module({"url": url, "fingerprint": NVIDIA_FPR, "dest": str(dest)})["changed"] is False


def test_url_mismatch_names_the_url(mirror, dest):
    url = mirror + "/" + ROGUE_KEY.name
    result = fail_module({"url": url, "fingerprint": NVIDIA_FPR, "dest": str(dest),
                          "label": "NVIDIA's apt key (nvidia_container_toolkit_key_fingerprint)"})
    assert result["msg"].startswith(
        "NVIDIA's apt key (nvidia_container_toolkit_key_fingerprint): the key at %s has fingerprint %s, "
        "expected %s. Nothing was written." % (url, ROGUE_FPR, NVIDIA_FPR))
    assert not dest.exists()


def test_url_with_two_keys_is_refused(mirror, dest):
    url = mirror + "/two-keys.asc"
    result = fail_module({"url": url, "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert "the key file at %s contains 2 primary keys" % url in result["msg"]
    assert not dest.exists()


def test_url_error_page_is_rejected(mirror, dest):
    url = mirror + "/error-page.html"
    result = fail_module({"url": url, "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert "the data at %s is not a readable OpenPGP public key" % url in result["msg"]


def test_url_404_fails_naming_url_and_status(mirror, dest):
    url = mirror + "/missing.gpg"
    result = fail_module({"url": url, "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert result["msg"].startswith("apt signing key: could not download the key from %s (HTTP status 404: " % url)
    assert result["msg"] == (
        "apt signing key: could not download the key from %s (HTTP status 404: File not found). "
        "Nothing was written." % url)
    assert not dest.exists()


def test_url_connection_refused_fails_naming_url(dest):
    url = "http://127.0.0.1:%d/gpgkey" % closed_port()
    result = fail_module({"url": url, "fingerprint": DOCKER_FPR, "dest": str(dest), "timeout": 5})
    assert result["msg"].startswith("apt signing key: could not download the key from %s (connection failed: " % url)
    assert "refused" in result["msg"].lower()
    assert not dest.exists()


def test_url_check_mode_downloads_and_verifies_but_writes_nothing(mirror, dest):
    url = mirror + "/" + DOCKER_KEY.name
    result = run_module({"url": url, "fingerprint": DOCKER_FPR, "dest": str(dest)}, check_mode=True)
    assert result["changed"] is True
    assert result["fingerprints"] == [DOCKER_FPR]
    assert not dest.exists()


# ---------------------------------------------------------------------------
# Through Ansible itself
# ---------------------------------------------------------------------------

def run_ansible(args, tmp_path, *extra):
    return run_adhoc("apt_signing_key", args, tmp_path, *extra)




def test_through_ansible_check_then_apply(mirror, tmp_path):
    dest = tmp_path / "usr" / "share" / "keyrings" / "docker.gpg"
    args = {"url": mirror + "/" + DOCKER_KEY.name, "fingerprint": spaced(DOCKER_FPR, lower=True),
            "dest": str(dest), "label": "Docker's apt key (docker_apt_key_fingerprint)"}

    rc, host = run_ansible(args, tmp_path, "--check", "--diff")
    assert rc == 0, host
    assert host["changed"] is True
    assert host["fingerprint"] == DOCKER_FPR
    assert not dest.exists()

    rc, host = run_ansible(args, tmp_path)
    assert rc == 0, host
    assert host["changed"] is True
    assert host["fingerprints"] == [DOCKER_FPR]
    assert dest.read_bytes() == reference_dearmor(DOCKER_KEY)
    assert host["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()

    rc, host = run_ansible(args, tmp_path)
    assert rc == 0, host
    assert host["changed"] is False


def test_through_ansible_mismatch_fails(tmp_path):
    dest = tmp_path / "keyrings" / "nvidia.gpg"
    args = {"src": str(ROGUE_KEY), "fingerprint": NVIDIA_FPR, "dest": str(dest), "label": "NVIDIA's apt key"}
    for extra in (("--check",), ()):
        rc, host = run_ansible(args, tmp_path, *extra)
        assert rc != 0
        assert host["failed"] is True
        assert host["msg"].startswith("NVIDIA's apt key: the key at %s has fingerprint %s, expected %s."
                                      % (ROGUE_KEY, ROGUE_FPR, NVIDIA_FPR))
        assert host["fingerprints"] == [ROGUE_FPR]
        assert not dest.exists()


# ---------------------------------------------------------------------------
# Keys that expire or are revoked (made with gpg for each test run)
# ---------------------------------------------------------------------------

DAY = 86400
LIFETIME_LABEL = "NVIDIA Container Toolkit apt key (nvidia_container_toolkit_key_fingerprint)"


class KeyMaker:
    """Makes throwaway ed25519 keys in one GnuPG home and exports them, armored, to files.

    Making keys needs gpg-agent, which gpg starts for the home; stop() ends it.
    """

    def __init__(self, home, out):
        self.home, self.out = home, out

    def gpg(self, *args, faked=None, data=None):
        cmd = [GPG, "--homedir", str(self.home), "--batch", "--quiet", "--passphrase", "",
               "--pinentry-mode", "loopback"]
        if faked is not None:
            cmd.append("--faked-system-time=%s!" % time_stamp(faked))
        proc = subprocess.run(cmd + list(args), input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              check=True)
        return proc.stdout

    def primary(self, name, usage="sign", expire="0", faked=None):
        self.gpg("--quick-gen-key", "%s <%s@gpuhost.invalid>" % (name, name), "ed25519", usage, expire, faked=faked)
        return self.fingerprint(name)

    def subkey(self, fpr, expire, faked=None):
        self.gpg("--quick-add-key", fpr, "ed25519", "sign", expire, faked=faked)

    def fingerprint(self, name):
        out = self.gpg("--with-colons", "--list-keys", "%s@gpuhost.invalid" % name).decode()
        return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))

    def revoke(self, fpr):
        cert = (self.home / "openpgp-revocs.d" / ("%s.rev" % fpr)).read_bytes()
        self.gpg("--import", data=cert.replace(b":-----BEGIN", b"-----BEGIN"))

    def stop(self):
        subprocess.run([shutil.which("gpgconf") or "gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
                       check=False, capture_output=True)

    def export(self, name, fpr):
        path = self.out / ("%s.asc" % name)
        path.write_bytes(self.gpg("--armor", "--export", fpr))
        return path


def time_stamp(epoch):
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(epoch))


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def listed_expiry(path, subkey=False):
    """The expiry gpg itself lists for the primary key (or the last subkey) of a key file."""
    out = gpg_reference(["--with-colons", "--show-keys", str(path)], b"").decode()
    rows = [line.split(":") for line in out.splitlines() if line.startswith("sub:" if subkey else "pub:")]
    return int(rows[-1][6])


@pytest.fixture(scope="module")
def lifetime_keys(tmp_path_factory):
    """{name: (key file, fingerprint)} for keys with the lifetimes the tests need."""
    home = tmp_path_factory.mktemp("gnupg-home")
    home.chmod(0o700)
    out = tmp_path_factory.mktemp("lifetime-keys")
    make = KeyMaker(home, out)
    try:
        yield make_lifetime_keys(make)
    finally:
        make.stop()


def make_lifetime_keys(make):
    now = int(time.time())
    keys = {}

    fpr = make.primary("far", expire="5y")
    make.subkey(fpr, "5y")
    keys["far"] = fpr

    keys["soon"] = make.primary("soon", expire="10d")

    fpr = make.primary("subsoon", usage="cert")
    make.subkey(fpr, "10d")
    keys["subsoon"] = fpr

    keys["expired"] = make.primary("expired", expire="1y", faked=now - 400 * DAY)

    fpr = make.primary("revoked")
    make.revoke(fpr)
    keys["revoked"] = fpr

    fpr = make.primary("nosigning", usage="cert", faked=now - 40 * DAY)
    make.subkey(fpr, "10d", faked=now - 40 * DAY)
    keys["nosigning"] = fpr

    fpr = make.primary("rotated", usage="cert", faked=now - 20 * DAY)
    make.subkey(fpr, "10d", faked=now - 20 * DAY)
    make.subkey(fpr, "2y")
    keys["rotated"] = fpr

    return {name: (make.export(name, fpr), fpr) for name, fpr in keys.items()}


def run_warned(args, **kw):
    """Run the module in-process; return (exit result, the texts it warned with)."""
    with mock.patch.object(basic.AnsibleModule, "warn", autospec=True) as warn:
        result = run_module(args, **kw)
    return result, [c.args[1] for c in warn.call_args_list]


def fail_warned(args, **kw):
    with mock.patch.object(basic.AnsibleModule, "warn", autospec=True) as warn:
        result = fail_module(args, **kw)
    return result, [c.args[1] for c in warn.call_args_list]


def lifetime_args(lifetime_keys, name, dest, **extra):
    path, fpr = lifetime_keys[name]
    return dict({"src": str(path), "fingerprint": fpr, "dest": str(dest), "label": LIFETIME_LABEL}, **extra)


def test_key_valid_for_years_gives_no_warning_and_returns_its_expiry(lifetime_keys, dest):
    path, fpr = lifetime_keys["far"]
    result, warnings = run_warned(lifetime_args(lifetime_keys, "far", dest))
    assert warnings == []
    assert result["changed"] is True and show_key_fingerprints(dest) == [fpr]
    assert result["expires"] == iso(min(listed_expiry(path), listed_expiry(path, subkey=True)))
    primary, sub = result["keys"]
    assert primary["fingerprint"] == fpr and primary["primary"] is True and primary["revoked"] is False
    assert primary["expires"] == iso(listed_expiry(path))
    assert sub["primary"] is False and sub["signing"] is True and sub["usable"] is True and sub["used"] is True
    assert sub["expires"] == iso(listed_expiry(path, subkey=True))


def test_stand_in_key_without_expiry_returns_no_expiry(dest):
    result, warnings = run_warned({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    assert warnings == []
    assert result["expires"] is None
    assert result["keys"] == [{"fingerprint": DOCKER_FPR, "primary": True, "signing": True, "usable": True,
                               "used": True, "revoked": False, "revoked_at": None, "expires": None}]


@pytest.mark.parametrize("check_mode", [True, False])
def test_primary_key_expiring_within_30_days_is_warned_about(lifetime_keys, dest, check_mode):
    path, fpr = lifetime_keys["soon"]
    result, warnings = run_warned(lifetime_args(lifetime_keys, "soon", dest), check_mode=check_mode)
    expires = iso(listed_expiry(path))
    assert result["expires"] == expires
    assert len(warnings) == 1
    assert warnings[0].startswith("%s: the key %s expires on %s (in " % (LIFETIME_LABEL, fpr, expires))
    assert "apt rejects the repository's signatures" in warnings[0]
    assert "Fetch the vendor's renewed key" in warnings[0]
    assert "set nvidia_container_toolkit_key_fingerprint to its fingerprint" in warnings[0]
    assert dest.exists() is not check_mode


def test_expiry_warning_days_sets_the_window(lifetime_keys, dest):
    _, warnings = run_warned(lifetime_args(lifetime_keys, "soon", dest, expiry_warning_days=5))
    assert warnings == []
    _, warnings = run_warned(lifetime_args(lifetime_keys, "far", dest, expiry_warning_days=6 * 365))
    assert len(warnings) == 1 and "expires on" in warnings[0]


def test_negative_expiry_warning_days_is_refused(lifetime_keys, dest):
    result = fail_module(lifetime_args(lifetime_keys, "far", dest, expiry_warning_days=-1))
    assert result["msg"] == "%s: expiry_warning_days must be 0 or more, got -1." % LIFETIME_LABEL


def test_signing_subkey_expiring_within_30_days_is_warned_about(lifetime_keys, dest):
    path, fpr = lifetime_keys["subsoon"]
    result, warnings = run_warned(lifetime_args(lifetime_keys, "subsoon", dest))
    expires = iso(listed_expiry(path, subkey=True))
    assert result["expires"] == expires
    assert len(warnings) == 1
    assert warnings[0].startswith("%s: the signing subkey %s of the key %s expires on %s (in "
                                  % (LIFETIME_LABEL, result["keys"][1]["fingerprint"], fpr, expires))
    assert result["keys"][0]["signing"] is False and result["keys"][1]["used"] is True


def test_recently_expired_signing_subkey_is_warned_about_while_another_signs(lifetime_keys, dest):
    path, fpr = lifetime_keys["rotated"]
    result, warnings = run_warned(lifetime_args(lifetime_keys, "rotated", dest))
    old, new = result["keys"][1:]
    assert (old["usable"], old["used"], new["usable"], new["used"]) == (False, False, True, True)
    assert len(warnings) == 1
    assert warnings[0].startswith("%s: the signing subkey %s of the key %s expired on %s;"
                                  % (LIFETIME_LABEL, old["fingerprint"], fpr, old["expires"]))
    assert "the key's other signing key, %s, is valid until %s" % (new["fingerprint"], new["expires"]) in warnings[0]
    # Expired more than expiry_warning_days ago: no longer worth a warning.
    _, warnings = run_warned(lifetime_args(lifetime_keys, "rotated", dest, expiry_warning_days=5))
    assert warnings == []


@pytest.mark.parametrize("check_mode", [True, False])
def test_expired_key_is_refused(lifetime_keys, dest, check_mode):
    path, fpr = lifetime_keys["expired"]
    result, warnings = fail_warned(lifetime_args(lifetime_keys, "expired", dest), check_mode=check_mode)
    expired = iso(listed_expiry(path))
    assert result["msg"] == (
        "%s: the key %s expired on %s, so it has no usable signing key left; apt rejects the repository's "
        "signatures. Nothing was written. Fetch the vendor's renewed key (vendors usually extend the same "
        "key, keeping its fingerprint), or, if the vendor moved to a new key, set "
        "nvidia_container_toolkit_key_fingerprint to its fingerprint." % (LIFETIME_LABEL, fpr, expired))
    assert result["expires"] == expired
    assert result["fingerprints"] == [fpr]
    assert warnings == []
    assert not dest.exists()


def test_revoked_key_is_refused_naming_the_revocation_date(lifetime_keys, dest):
    path, fpr = lifetime_keys["revoked"]
    result = fail_module(lifetime_args(lifetime_keys, "revoked", dest))
    out = gpg_reference(["--with-colons", "--with-sig-list", "--show-keys", str(path)], b"").decode()
    revoked_at = next(int(line.split(":")[5]) for line in out.splitlines() if line.startswith("rev:"))
    assert result["msg"] == (
        "%s: the key %s was revoked by its owner on %s; apt rejects every signature made with it. Nothing "
        "was written. Fetch the vendor's current key and, after confirming its fingerprint from the vendor's "
        "documentation, set nvidia_container_toolkit_key_fingerprint to it." % (LIFETIME_LABEL, fpr, iso(revoked_at)))
    assert result["keys"][0]["revoked"] is True
    assert result["keys"][0]["revoked_at"] == iso(revoked_at)
    assert not dest.exists()


def test_revoked_key_keeps_the_existing_keyring(lifetime_keys, dest):
    run_module({"src": str(DOCKER_KEY), "fingerprint": DOCKER_FPR, "dest": str(dest)})
    old = dest.read_bytes()
    fail_module(lifetime_args(lifetime_keys, "revoked", dest))
    assert dest.read_bytes() == old


def test_key_whose_only_signing_subkey_expired_is_refused(lifetime_keys, dest):
    path, fpr = lifetime_keys["nosigning"]
    result = fail_module(lifetime_args(lifetime_keys, "nosigning", dest))
    sub = result["keys"][1]
    assert result["msg"] == (
        "%s: the key %s has no usable signing key left (subkey %s expired on %s); apt rejects the "
        "repository's signatures. Nothing was written. Fetch the vendor's renewed key, or, if the vendor "
        "moved to a new key, set nvidia_container_toolkit_key_fingerprint to its fingerprint."
        % (LIFETIME_LABEL, fpr, sub["fingerprint"], iso(listed_expiry(path, subkey=True))))
    assert not dest.exists()


def test_label_without_a_variable_names_the_pinned_fingerprint(lifetime_keys, dest):
    result = fail_module(lifetime_args(lifetime_keys, "revoked", dest, label="Mirror key"))
    assert result["msg"].endswith("set the pinned fingerprint to it.")


def test_parse_colon_listing_reads_subkeys_and_revocations():
    listing = "\n".join([
        "pub:r:255:22:79DAC49124FC125A:1796042573:::-:::sc:::::ed25519:::0:",
        "fpr:::::::::881DC598FA2A38A7AA08465B79DAC49124FC125A:",
        "rev:?::22:79DAC49124FC125A:1796042600::::[User ID not found]:20x,00::881DC598FA2A38A7AA08465B79DAC49124FC125A:::8:",
        "uid:r::::1796042573::5C3A0DC6E02C46A902B740D4323622305B51039B::Rev <rev@gpuhost.invalid>::::::::::0:",
        "rev:?::22:79DAC49124FC125A:1796042700::::[User ID not found]:30x::881DC5:::8:",
        "sub:e:255:22:DDCFA0980B1D7283:1796042573:1859114573:::::s:::::ed25519::",
        "fpr:::::::::5ea8ce5e405012d7b8e5d282ddcfa0980b1d7283:",
    ])
    (key,) = ask.parse_colon_listing(listing)
    assert (key["validity"], key["created"], key["capabilities"], key["revoked_at"]) == ("r", 1796042573, "sc", 1796042600)
    assert key["subkeys"] == [{"fingerprint": "5EA8CE5E405012D7B8E5D282DDCFA0980B1D7283", "validity": "e",
                               "created": 1796042573, "expires": 1859114573, "capabilities": "s", "revoked_at": None}]


def test_through_ansible_an_expiring_key_prints_a_warning(lifetime_keys, tmp_path):
    path, fpr = lifetime_keys["soon"]
    args = {"src": str(path), "fingerprint": fpr, "dest": str(tmp_path / "keyrings" / "soon.gpg"),
            "label": LIFETIME_LABEL}
    rc, host = run_ansible(args, tmp_path, "--check")
    assert rc == 0, host
    assert [w for w in host.get("warnings", []) if "the key %s expires on" % fpr in w], host
    assert host["expires"] == iso(listed_expiry(path))
