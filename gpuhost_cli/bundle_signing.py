"""The bundle's own key: made once in a dedicated GnuPG home, used to sign a bundle's
Release files and manifest, and checked with gpgv as apt checks a repository.

The key is an Ed25519 signing key without a passphrase, kept in its own GnuPG home
(``--key-home``; by default ``$XDG_DATA_HOME/gpuhost/bundle-key``, mode 0700). Every bundle
made with the same home carries the same key, so the fingerprint a site records once (and
pins when it provisions from the bundle) stays valid for later bundles.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from gpuhost_cli.inputs import UserError

__all__ = ["BundleKey", "default_key_home", "gpgv_signer"]

_VALIDSIG = re.compile(r"^\[GNUPG:\] VALIDSIG (?:\S+ ){9}(?P<primary>[0-9A-F]{40})$", re.M)
_UID = "gpuhost offline bundle <bundle@gpuhost.invalid>"


def default_key_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gpuhost" / "bundle-key"


def gpgv_signer(keyring: Path, signed: Path, data: Path | None = None) -> str | None:
    """The primary fingerprint of the key in ``keyring`` that made a good signature of
    ``signed`` (clearsigned, or a detached signature over ``data``), checked with gpgv as apt
    checks a repository's Release; None when no key of the keyring signed it."""
    argv = ["gpgv", "--status-fd", "1", "--keyring", str(keyring), str(signed)] + ([str(data)] if data else [])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except OSError as exc:
        raise UserError(f"cannot run gpgv ({exc}); install the gpgv package", 1) from None
    match = _VALIDSIG.search(done.stdout)
    return match["primary"] if done.returncode == 0 and match else None


class BundleKey:
    """The signing key in GnuPG home ``home``, made there on first use."""

    def __init__(self, home: Path) -> None:
        import gnupg

        self.home = home
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the bundle key's directory {home}: {exc.strerror}; give --key-home DIR", 1) \
                from None
        info = home.lstat()
        if not home.is_dir() or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise UserError(f"{home} is not a private directory of this user (mode 0700); fix its mode or give "
                            f"another --key-home", 1)
        try:
            self.gpg = gnupg.GPG(gnupghome=str(home))
        except (OSError, ValueError, RuntimeError) as exc:
            raise UserError(f"cannot run gpg with {home}: {exc}; install the gnupg package", 1) from None
        self.gpg.encoding = "utf-8"
        self.fingerprint = self._fingerprint() or self._make()

    def _fingerprint(self) -> str | None:
        keys = [k for k in self.gpg.list_keys(secret=True) if _UID in k.get("uids", [])]
        if len(keys) > 1:
            raise UserError(f"{self.home} holds {len(keys)} bundle keys; keep one (gpg --homedir {self.home} "
                            f"--delete-secret-and-public-key FINGERPRINT)", 1)
        return keys[0]["fingerprint"] if keys else None

    def _make(self) -> str:
        params = self.gpg.gen_key_input(key_type="EDDSA", key_curve="ed25519", key_usage="sign",
                                        name_real="gpuhost offline bundle", name_email="bundle@gpuhost.invalid",
                                        expire_date=0, no_protection=True)
        result = self.gpg.gen_key(params)
        if not result.fingerprint:
            raise UserError(f"gpg could not make the bundle key in {self.home}: {result.stderr.strip()[-300:]}", 1)
        return str(result.fingerprint)

    def public_key(self, armor: bool) -> bytes:
        """The public key, armored or binary (a keyring file for apt's signed-by)."""
        exported = self.gpg.export_keys(self.fingerprint, armor=armor)
        data = exported.encode("utf-8") if isinstance(exported, str) else exported
        if not data:
            raise UserError(f"gpg could not export the bundle key {self.fingerprint} from {self.home}", 1)
        return data

    def _sign(self, data: bytes, detach: bool) -> bytes:
        signed = self.gpg.sign(data, keyid=self.fingerprint, clearsign=not detach, detach=detach,
                               extra_args=["--digest-algo", "SHA512"])
        if not signed.data:
            raise UserError(f"gpg could not sign with the bundle key {self.fingerprint}: {signed.stderr.strip()[-300:]}",
                            1)
        return bytes(signed.data)

    def close(self) -> None:
        """Stop the gpg-agent that signing started for this home (gpg starts one per home)."""
        try:
            subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"], capture_output=True,
                           timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def clearsign(self, data: bytes) -> bytes:
        return self._sign(data, detach=False)

    def detached(self, data: bytes) -> bytes:
        return self._sign(data, detach=True)


def keyring_fingerprints(keyring: Path) -> list[str]:
    """The primary fingerprints in a keyring file, read without importing it anywhere."""
    with tempfile.TemporaryDirectory(prefix="gpuhost-keyring-") as home:
        done = subprocess.run(["gpg", "--homedir", home, "--batch", "--with-colons", "--show-keys", str(keyring)],
                              capture_output=True, text=True, timeout=60, check=False)
    fingerprints, primary = [], False
    for line in done.stdout.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            primary = True
        elif fields[0] == "sub":
            primary = False
        elif fields[0] == "fpr" and primary:
            fingerprints.append(fields[9])
            primary = False
    return fingerprints
