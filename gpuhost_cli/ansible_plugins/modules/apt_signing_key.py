#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: apt_signing_key
short_description: Install a vendor's apt signing key, pinned by fingerprint, as a signed-by keyring
description:
  - Fetches an OpenPGP public key from O(url) (or reads it from O(src) on the managed host),
    checks that it is exactly one primary key whose fingerprint equals the pinned O(fingerprint),
    and only then writes it as a binary (dearmored) keyring to O(dest).
  - The keyring is meant to be referenced from an apt source with C(signed-by=), so that the key
    is trusted for that repository only. Writing to C(/etc/apt/trusted.gpg) or into
    C(/etc/apt/trusted.gpg.d/) is refused, because keys there are trusted for every repository.
  - A file with more than one primary key is refused even when the pinned key is one of them,
    since apt would trust every key in the keyring.
  - The key is inspected with C(gpg --import-options show-only) in a throwaway GnuPG home directory
    that is removed afterwards; no keyring of the host is touched.
  - Check mode still downloads and verifies the key, so a dry run reports fingerprint mismatches
    and download errors; it only skips writing.
  - If O(dest) already holds the same keyring bytes, nothing is written. If only its permissions
    (or, when running as root, its ownership) differ, they are corrected and the task reports a change.
  - The key's lifetime is checked too, since apt rejects a repository whose signing key is revoked
    or expired. A key whose primary key is revoked, whose primary key has expired, or which has no
    signing key left that is neither revoked nor expired, is refused. A warning (naming the key, the
    date in UTC and the fix) is printed when the primary key, or the signing key apt uses, expires
    within O(expiry_warning_days) days, and when a signing subkey expired within that many days.
    The signing key apt uses is taken to be the newest signing-capable subkey that is neither
    revoked nor expired (the one GnuPG signs with), or the primary key when there is none.
author:
  - gpuhost maintainers (!UNKNOWN)
requirements:
  - gpg (GnuPG 2.2 or later) on the managed host, from the C(gnupg) package
options:
  url:
    description:
      - HTTP(S) URL of the vendor's key, ASCII-armored or binary.
      - Exactly one of O(url) and O(src) is required.
    type: str
  src:
    description:
      - Path on the managed host of a key file, ASCII-armored or binary.
      - Exactly one of O(url) and O(src) is required.
    type: path
  content:
    description:
      - The key file from O(url), base64-encoded, as the action plugin of the same name fetched
        it on the controller (once per run for every host). With it the host does not download
        the key; O(url) still names it in every message.
    type: str
  fingerprint:
    description:
      - The pinned fingerprint of the key's primary key, 40 hexadecimal digits.
      - Spaces are allowed and case does not matter; the value is normalised to upper case without spaces.
      - Short or long key IDs are not accepted.
    type: str
    required: true
  dest:
    description:
      - Absolute path of the keyring to write, for example C(/usr/share/keyrings/docker.gpg).
      - Missing parent directories are created with mode C(0755).
      - C(/etc/apt/trusted.gpg) and anything under C(/etc/apt/trusted.gpg.d/) are refused.
    type: path
    required: true
  label:
    description:
      - Human-readable name of the key, used at the start of every message,
        for example C(Docker's apt key (docker_apt_key_fingerprint)).
    type: str
    default: apt signing key
  mode:
    description:
      - Permissions of the keyring. A string is read as octal (C('0644')); an integer is used as is,
        as with the C(file) module.
      - Modes that let the group or other users write the file, and setuid, setgid or sticky bits, are refused.
      - The keyring is owned by C(root:root) when the module runs as root; otherwise ownership is left alone.
    type: raw
    default: '0644'
  timeout:
    description:
      - Timeout in seconds for the download.
    type: int
    default: 30
  http_proxy:
    description:
      - The proxy the host downloads O(url) through when it is an http URL (C(http://user:password@proxy:3128)).
      - Empty uses the host's environment (C(http_proxy)), as Ansible's HTTP client does.
      - Not logged; the controller's own download (action plugin) uses the controller's environment.
    type: str
  https_proxy:
    description: As O(http_proxy), for an https O(url).
    type: str
  no_proxy:
    description: Comma-separated hosts and domains downloaded from without the proxy.
    type: str
  validate_certs:
    description:
      - Whether to validate the server's TLS certificate when downloading from O(url).
    type: bool
    default: true
  expiry_warning_days:
    description:
      - Warn when the primary key or the signing key expires within this many days, or when a
        signing subkey expired less than this many days ago.
      - V(0) warns only about subkeys that have already expired. Expired or revoked primary keys
        are refused whatever the value.
    type: int
    default: 30
notes:
  - Supports check mode and diff mode. The diff shows a summary (fingerprint, SHA-256, mode) of the
    keyring before and after, not the key material.
seealso:
  - name: Debian wiki, third-party repositories and signed-by
    description: Why repository keys are referenced with signed-by instead of being trusted globally.
    link: https://wiki.debian.org/DebianRepository/UseThirdParty
"""

EXAMPLES = r"""
- name: Install Docker's apt key
  apt_signing_key:
    url: https://download.docker.com/linux/debian/gpg
    fingerprint: 9DC8 5822 9FC7 DD38 854A E2D8 8D81 803C 0EBF CD88
    dest: /usr/share/keyrings/docker.gpg
    label: "Docker's apt key (docker_apt_key_fingerprint)"

- name: Install NVIDIA's container toolkit key
  apt_signing_key:
    url: https://nvidia.github.io/libnvidia-container/gpgkey
    fingerprint: "{{ nvidia_container_toolkit_key_fingerprint }}"
    dest: /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
    label: "NVIDIA's apt key (nvidia_container_toolkit_key_fingerprint)"

- name: Install a key that was copied to the host beforehand
  apt_signing_key:
    src: /tmp/mirror-key.asc
    fingerprint: d6b15f0668fd904394ab11fb2eb01246dc501fc6
    dest: /usr/share/keyrings/mirror.gpg
"""

RETURN = r"""
dest:
  description: Path of the keyring.
  returned: always
  type: str
  sample: /usr/share/keyrings/docker.gpg
fingerprint:
  description: The pinned fingerprint, normalised (upper case, no spaces).
  returned: always
  type: str
  sample: 9DC858229FC7DD38854AE2D88D81803C0EBFCD88
fingerprints:
  description:
    - Fingerprints of the primary keys found in the downloaded or read key file.
    - Also returned when the task fails because they do not match the pinned fingerprint.
  returned: success, and on failures after the key file was inspected
  type: list
  elements: str
  sample: [9DC858229FC7DD38854AE2D88D81803C0EBFCD88]
sha256:
  description: SHA-256 of the binary keyring that was written (or, in check mode, would be written).
  returned: success
  type: str
  sample: 1500c1f56fa9e26b9b8f42452a553675796ade0807cdce11975eb98170b3a570
expires:
  description:
    - When apt stops accepting signatures made with the key, in UTC (ISO 8601), that is the earlier
      of the primary key's expiry and the signing key's. V(null) when neither expires.
  returned: success, and on refusals of a revoked or expired key
  type: str
  sample: "2027-03-01T12:00:00Z"
keys:
  description:
    - The primary key and its subkeys, with their lifetimes. C(expires) and C(revoked_at) are UTC
      times in ISO 8601 or V(null); C(signing) tells whether the key may sign; C(usable) whether it
      can still sign (neither revoked nor expired, and its primary key neither); C(used) marks the
      signing key apt uses.
  returned: success, and on refusals of a revoked or expired key
  type: list
  elements: dict
  sample:
    - fingerprint: 9DC858229FC7DD38854AE2D88D81803C0EBFCD88
      primary: true
      signing: true
      usable: true
      used: false
      revoked: false
      revoked_at: null
      expires: null
    - fingerprint: D3306A018370199E527AE7997EA0A9C3F273FCD8
      primary: false
      signing: true
      usable: true
      used: true
      revoked: false
      revoked_at: null
      expires: null
"""

import base64
import datetime
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpuhost_atomic_file import make_parent_dirs, write_atomic
from ansible.module_utils.urls import fetch_url


FORBIDDEN_EXACT = ("/etc/apt/trusted.gpg",)
FORBIDDEN_DIRS = ("/etc/apt/trusted.gpg.d",)

MAX_KEY_BYTES = 1024 * 1024
ARMOR_MARKER = b"-----BEGIN PGP "
ARMOR_SECRET_MARKER = b"-----BEGIN PGP PRIVATE KEY BLOCK-----"
FINGERPRINT_EXAMPLE = "9DC8 5822 9FC7 DD38 854A E2D8 8D81 803C 0EBF CD88"

_FPR_RE = re.compile(r"^[0-9A-F]{40}$")
_GPG_NOISE = ("keybox", "trustdb created", "no gpg-agent running")


class SigningKeyError(Exception):
    """A refusal or failure, with the message shown to the user and optional extra result keys."""

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------

def normalize_fingerprint(value, label="apt signing key"):
    """Return the fingerprint in upper case without whitespace, or raise SigningKeyError."""
    text = "" if value is None else str(value)
    normalized = re.sub(r"\s+", "", text).upper()
    if not _FPR_RE.match(normalized):
        raise SigningKeyError(
            "%s: fingerprint %r is not valid; expected the full fingerprint of the primary key, "
            "40 hexadecimal digits (spaces allowed, any case), for example '%s'. "
            "Short or long key IDs are not accepted."
            % (label, text, FINGERPRINT_EXAMPLE)
        )
    return normalized


def parse_mode(value, label="apt signing key"):
    """Return the permission bits for `mode` (octal string or int), or raise SigningKeyError."""
    if isinstance(value, bool):
        mode = None
    elif isinstance(value, int):
        mode = value
    else:
        text = str(value).strip()
        if text.lower().startswith("0o"):
            text = text[2:]
        mode = int(text, 8) if re.match(r"^[0-7]{3,4}$", text) else None
    if mode is None or mode < 0 or mode > 0o7777:
        raise SigningKeyError(
            "%s: mode %r is not valid; expected an octal string such as '0644'." % (label, value)
        )
    if mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
        raise SigningKeyError(
            "%s: mode %s is refused: a keyring must not be writable by the group or other users "
            "and must not carry setuid, setgid or sticky bits; use '0644'." % (label, format_mode(mode))
        )
    return mode


def format_mode(mode):
    return "%04o" % mode


def _forbidden(path):
    path = os.path.normpath(path)
    if path in FORBIDDEN_EXACT:
        return True
    return any(path == d or path.startswith(d + os.sep) for d in FORBIDDEN_DIRS)


def check_dest(dest, label="apt signing key"):
    """Refuse relative paths, directories and the global apt keyrings; return the normalised path."""
    if not dest or not os.path.isabs(dest):
        raise SigningKeyError("%s: dest %r must be an absolute path." % (label, dest))
    normalized = os.path.normpath(dest)
    if _forbidden(normalized) or _forbidden(os.path.realpath(normalized)):
        raise SigningKeyError(
            "%s: refusing to write %s: keys in /etc/apt/trusted.gpg or /etc/apt/trusted.gpg.d/ are trusted "
            "for every repository. Write the keyring elsewhere (for example under /usr/share/keyrings/) "
            "and reference it with signed-by= in the apt source." % (label, dest)
        )
    if os.path.isdir(normalized):
        raise SigningKeyError("%s: dest %s is a directory; it must be the path of the keyring file." % (label, dest))
    return normalized


# ---------------------------------------------------------------------------
# Key inspection with gpg
# ---------------------------------------------------------------------------

def is_armored(data):
    return ARMOR_MARKER in data


def _epoch(fields, index):
    value = fields[index] if len(fields) > index else ""
    return int(value) if value.isdigit() else None


def _key_record(fields):
    """What a `pub`, `sec`, `sub` or `ssb` record of a colon listing says about its key."""
    return {
        "fingerprint": None,
        "validity": fields[1] if len(fields) > 1 else "",
        "created": _epoch(fields, 5),
        "expires": _epoch(fields, 6),
        "capabilities": fields[11] if len(fields) > 11 else "",
        "revoked_at": None,
    }


def parse_colon_listing(text):
    """Parse `gpg --with-colons` output into a list of primary keys.

    Each entry is a dict with `type` ('pub' or 'sec'), `fingerprint`, `validity` (gpg's field 2:
    'r' revoked, 'e' expired, ...), `created` and `expires` (epoch seconds or None), `capabilities`
    (gpg's field 12, such as 'scSC'), `revoked_at` (epoch seconds of a key revocation signature
    listed with --with-sig-list, or None), `uids`, and `subkeys`: dicts with the same keys except
    `type`, `uids` and `subkeys`. The fingerprint of a primary key is the first `fpr` record after
    its `pub`/`sec` record; a subkey's is the first after its `sub`/`ssb` record.
    """
    keys = []
    current = None
    sub = None
    last = None
    for line in text.splitlines():
        fields = line.split(":")
        rtype = fields[0]
        if rtype in ("pub", "sec"):
            current = dict(_key_record(fields), type=rtype, uids=[], subkeys=[])
            sub = None
            keys.append(current)
        elif rtype in ("sub", "ssb"):
            if current is not None:
                sub = _key_record(fields)
                current["subkeys"].append(sub)
        elif rtype == "fpr":
            value = fields[9].upper() if len(fields) > 9 else ""
            if current is not None and last in ("pub", "sec") and current["fingerprint"] is None:
                current["fingerprint"] = value
            elif sub is not None and last in ("sub", "ssb") and sub["fingerprint"] is None:
                sub["fingerprint"] = value
        elif rtype == "rev":
            # A revocation signature: of the primary key right after pub, of a subkey after sub.
            when = _epoch(fields, 5)
            if current is not None and last in ("pub", "sec") and current["revoked_at"] is None:
                current["revoked_at"] = when
            elif sub is not None and last in ("sub", "ssb") and sub["revoked_at"] is None:
                sub["revoked_at"] = when
        elif rtype == "uid":
            if current is not None and len(fields) > 9:
                current["uids"].append(fields[9])
        if rtype in ("pub", "sec", "sub", "ssb", "uid", "uat"):
            last = rtype
    return keys


def _gpg_message(stderr):
    lines = [
        line.strip() for line in (stderr or "").splitlines()
        if line.strip() and not any(noise in line for noise in _GPG_NOISE)
    ]
    return "; ".join(lines) if lines else "no error output"


def _run_gpg(gpg, homedir, args, data):
    cmd = [gpg, "--homedir", homedir, "--no-options", "--no-autostart", "--batch", "--quiet"] + list(args)
    env = dict(os.environ, LC_ALL="C", LANGUAGE="C")
    env.pop("GNUPGHOME", None)
    proc = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")


class ThrowawayGnupgHome:
    """A temporary GNUPGHOME, removed on exit."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="apt-signing-key-")
        os.chmod(self.path, 0o700)
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False


def list_keys(gpg, homedir, data):
    """Return (keys, rc, gpg message) for the OpenPGP data, without importing anything."""
    rc, out, err = _run_gpg(
        gpg, homedir, ["--with-colons", "--with-sig-list", "--import-options", "show-only", "--import"], data
    )
    return parse_colon_listing(out.decode("utf-8", "replace")), rc, _gpg_message(err)


def dearmor(gpg, homedir, data, label="apt signing key", origin="the key file"):
    """Return the binary form of `data`: `gpg --dearmor` for armored input, the bytes as they are otherwise."""
    if not is_armored(data):
        return data
    rc, out, err = _run_gpg(gpg, homedir, ["--dearmor"], data)
    if rc != 0 or not out:
        raise SigningKeyError(
            "%s: gpg --dearmor failed on the key at %s (rc=%s): %s. Nothing was written."
            % (label, origin, rc, _gpg_message(err))
        )
    return out


def inspect_and_verify(gpg, data, pinned, label="apt signing key", origin="the key file"):
    """Check that `data` holds exactly one public primary key with the pinned fingerprint.

    Returns (keyring_bytes, fingerprints, keys). Raises SigningKeyError otherwise; its result
    carries `fingerprints` once gpg has listed the data.
    """
    if not data or not data.strip():
        raise SigningKeyError(
            "%s: the key at %s is empty. Nothing was written." % (label, origin), fingerprints=[]
        )
    if ARMOR_SECRET_MARKER in data:
        raise SigningKeyError(
            "%s: the key at %s contains secret (private) key material; only public keys can be "
            "installed as apt keyrings. Nothing was written." % (label, origin), fingerprints=[]
        )
    with ThrowawayGnupgHome() as home:
        keys, rc, msg = list_keys(gpg, home, data)
        fingerprints = [k["fingerprint"] for k in keys]
        if any(k["type"] == "sec" for k in keys):
            raise SigningKeyError(
                "%s: the key at %s contains secret (private) key material; only public keys can be "
                "installed as apt keyrings. Nothing was written." % (label, origin),
                fingerprints=fingerprints,
            )
        if rc != 0 or not keys:
            raise SigningKeyError(
                "%s: the data at %s is not a readable OpenPGP public key (gpg: %s). Nothing was written. "
                "Check that it is the vendor's key and not an error page or a truncated download."
                % (label, origin, msg),
                fingerprints=fingerprints,
            )
        if len(keys) > 1:
            raise SigningKeyError(
                "%s: the key file at %s contains %d primary keys (%s); expected exactly one, with "
                "fingerprint %s. Nothing was written. Every key in a signed-by keyring is trusted, "
                "so files with additional keys are refused."
                % (label, origin, len(keys), ", ".join(str(f) for f in fingerprints), pinned),
                fingerprints=fingerprints,
            )
        got = fingerprints[0]
        if got != pinned:
            raise SigningKeyError(
                "%s: the key at %s has fingerprint %s, expected %s. Nothing was written. "
                "If the vendor rotated its key, confirm the new fingerprint from the vendor's "
                "documentation and set it." % (label, origin, got, pinned),
                fingerprints=fingerprints,
            )

        keyring = dearmor(gpg, home, data, label=label, origin=origin)
        # Verify what will actually be written, not only what was received.
        out_keys, out_rc, out_msg = list_keys(gpg, home, keyring)
        out_fprs = [k["fingerprint"] for k in out_keys]
        if out_rc != 0 or out_fprs != [pinned] or any(k["type"] != "pub" for k in out_keys):
            raise SigningKeyError(
                "%s: the dearmored keyring made from the key at %s lists fingerprints [%s] "
                "(gpg: %s), not exactly %s. Nothing was written."
                % (label, origin, ", ".join(str(f) for f in out_fprs), out_msg, pinned),
                fingerprints=fingerprints,
            )
    return keyring, fingerprints, keys


# ---------------------------------------------------------------------------
# The key's lifetime: revoked, expired, expiring
# ---------------------------------------------------------------------------

DAY = 86400
_UNUSABLE = ("r", "e", "i", "d", "n")


def iso_utc(epoch):
    """ISO 8601 time in UTC, or None."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _setting(label):
    """The variable named in parentheses at the end of the label, for the fix in messages."""
    match = re.search(r"\(([A-Za-z_][A-Za-z0-9_]*)\)\s*$", label or "")
    return match.group(1) if match else "the pinned fingerprint"


def _revoked(key):
    return key.get("validity") == "r"


def _expired(key, now):
    return key.get("validity") == "e" or (key.get("expires") is not None and key["expires"] <= now)


def _can_sign(key):
    # Lower-case letters are the key's own capabilities; upper-case ones summarise the whole key.
    return "s" in (key.get("capabilities") or "")


def _in_days(epoch, now):
    days = (epoch - now) // DAY
    return "today" if days <= 0 else "in 1 day" if days == 1 else "in %d days" % days


def check_lifetime(key, label="apt signing key", now=None, warning_days=30):
    """Check that apt can still verify signatures made with `key` (a parse_colon_listing entry).

    Returns (warnings, expires, keys): the texts to warn with, when apt stops accepting the key's
    signatures (epoch seconds or None) and the key and its subkeys as the module returns them.
    Raises SigningKeyError, carrying `expires` and `keys`, for a revoked or expired primary key and
    for a key with no usable signing key left.
    """
    now = int(time.time()) if now is None else now
    window = max(0, int(warning_days)) * DAY
    fpr = key["fingerprint"]
    setting = _setting(label)
    primary_ok = not _revoked(key) and not _expired(key, now)
    candidates = [s for s in key.get("subkeys", []) if _can_sign(s)]
    usable = [s for s in candidates if primary_ok and s.get("validity") not in _UNUSABLE
              and not _expired(s, now)]
    if usable:
        used = max(usable, key=lambda s: s.get("created") or 0)
    elif primary_ok and _can_sign(key):
        used = key
    else:
        used = None

    def describe(k, primary):
        revoked = _revoked(k)
        return {
            "fingerprint": k["fingerprint"],
            "primary": primary,
            "signing": _can_sign(k),
            "usable": _can_sign(k) and primary_ok and (primary or any(k is u for u in usable)),
            "used": k is used,
            "revoked": revoked,
            "revoked_at": iso_utc(k.get("revoked_at")) if revoked else None,
            "expires": iso_utc(k.get("expires")),
        }

    keys = [describe(key, True)] + [describe(s, False) for s in key.get("subkeys", [])]
    ends = [e for e in (key.get("expires"), used.get("expires") if used else None) if e is not None]
    expires = min(ends) if ends else None
    extra = {"keys": keys, "expires": iso_utc(expires)}

    if _revoked(key):
        when = " on %s" % iso_utc(key["revoked_at"]) if key.get("revoked_at") else ""
        raise SigningKeyError(
            "%s: the key %s was revoked by its owner%s; apt rejects every signature made with it. "
            "Nothing was written. Fetch the vendor's current key and, after confirming its fingerprint "
            "from the vendor's documentation, set %s to it." % (label, fpr, when, setting), **extra)
    if _expired(key, now):
        when = " on %s" % iso_utc(key["expires"]) if key.get("expires") else ""
        raise SigningKeyError(
            "%s: the key %s expired%s, so it has no usable signing key left; apt rejects the "
            "repository's signatures. Nothing was written. Fetch the vendor's renewed key (vendors "
            "usually extend the same key, keeping its fingerprint), or, if the vendor moved to a new "
            "key, set %s to its fingerprint." % (label, fpr, when, setting), **extra)
    if used is None:
        why = []
        for s in candidates:
            if _revoked(s):
                why.append("subkey %s revoked" % s["fingerprint"])
            elif _expired(s, now):
                why.append("subkey %s expired on %s" % (s["fingerprint"], iso_utc(s.get("expires"))))
            else:
                why.append("subkey %s unusable (validity %r)" % (s["fingerprint"], s.get("validity")))
        detail = "; ".join(why) if why else "it has no signing-capable subkey and its primary key may not sign"
        raise SigningKeyError(
            "%s: the key %s has no usable signing key left (%s); apt rejects the repository's "
            "signatures. Nothing was written. Fetch the vendor's renewed key, or, if the vendor moved "
            "to a new key, set %s to its fingerprint." % (label, fpr, detail, setting), **extra)

    warnings = []
    renew = ("Fetch the vendor's renewed key before then (run again once the vendor publishes it), "
             "or, if the vendor moved to a new key, set %s to its fingerprint." % setting)
    if key.get("expires") is not None and key["expires"] - now <= window:
        warnings.append(
            "%s: the key %s expires on %s (%s); after that apt rejects the repository's signatures. %s"
            % (label, fpr, iso_utc(key["expires"]), _in_days(key["expires"], now), renew))
    # A subkey that expires with or after the primary key is covered by the warning above.
    subkey_ends = used is not key and used.get("expires") is not None
    if subkey_ends and used["expires"] - now <= window \
            and (key.get("expires") is None or used["expires"] < key["expires"]):
        warnings.append(
            "%s: the signing subkey %s of the key %s expires on %s (%s); after that apt rejects the "
            "repository's signatures unless the vendor signs with a renewed subkey. %s"
            % (label, used["fingerprint"], fpr, iso_utc(used["expires"]), _in_days(used["expires"], now), renew))
    for s in candidates:
        if s is not used and s.get("validity") != "r" and s.get("expires") is not None \
                and s["expires"] <= now < s["expires"] + window:
            warnings.append(
                "%s: the signing subkey %s of the key %s expired on %s; if the vendor still signs with it, "
                "apt rejects the repository's signatures (the key's other signing key, %s, is valid%s). "
                "Fetch the vendor's renewed key if apt reports EXPKEYSIG."
                % (label, s["fingerprint"], fpr, iso_utc(s["expires"]), used["fingerprint"],
                   " until %s" % iso_utc(used["expires"]) if used.get("expires") else ""))
    return warnings, expires, keys


def describe_existing(gpg, path):
    """Return (bytes, fingerprints) of an existing keyring, or (None, None) when there is none."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        raise SigningKeyError("cannot read the existing keyring %s: %s." % (path, e.strerror or e))
    with ThrowawayGnupgHome() as home:
        keys, rc, _msg = list_keys(gpg, home, data)
    return data, [k["fingerprint"] for k in keys] if rc == 0 else []


def summary(fingerprints, data, mode=None, owner=None):
    """Text used in the diff for a keyring."""
    if data is None:
        return ""
    lines = ["fingerprint: %s" % (", ".join(str(f) for f in fingerprints) if fingerprints else "(not an OpenPGP keyring)"),
             "sha256: %s" % sha256_hex(data)]
    if mode is not None:
        lines.append("mode: %s" % format_mode(mode))
    if owner is not None:
        lines.append("owner: %d:%d" % owner)
    return "\n".join(lines) + "\n"


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def write_keyring(dest, data, mode, owner=None):
    """Write `data` to `dest` atomically (temp file in the same directory, then rename)."""
    make_parent_dirs(dest)
    write_atomic(dest, data, mode, owner)


def attributes_differ(dest, mode, owner=None):
    st = os.stat(dest)
    if stat.S_IMODE(st.st_mode) != mode:
        return True
    return owner is not None and (st.st_uid, st.st_gid) != tuple(owner)


def fix_attributes(dest, mode, owner=None):
    os.chmod(dest, mode)
    if owner is not None:
        os.chown(dest, owner[0], owner[1])


def current_attributes(dest, owner_managed):
    st = os.stat(dest)
    return stat.S_IMODE(st.st_mode), ((st.st_uid, st.st_gid) if owner_managed else None)


# ---------------------------------------------------------------------------
# Getting the key
# ---------------------------------------------------------------------------

def read_src(src, label="apt signing key"):
    try:
        size = os.path.getsize(src)
        if size > MAX_KEY_BYTES:
            raise SigningKeyError(
                "%s: %s is %d bytes, larger than the %d bytes accepted for a key file."
                % (label, src, size, MAX_KEY_BYTES)
            )
        with open(src, "rb") as f:
            return f.read()
    except OSError as e:
        raise SigningKeyError("%s: cannot read the key file %s: %s." % (label, src, e.strerror or e))


def use_proxy(params, environ=None):
    """Put the proxy asked for into the environment the HTTP client reads (both cases)."""
    environ = os.environ if environ is None else environ
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        if params.get(name):
            environ[name] = environ[name.upper()] = params[name]


def download(module, url, timeout, label="apt signing key"):
    resp, info = fetch_url(module, url, timeout=timeout, force=True)
    status = info.get("status", -1)
    if status != 200:
        if status is None or status < 0:
            detail = "connection failed: %s" % info.get("msg", "unknown error")
        else:
            reason = re.sub(r"^HTTP Error %s:\s*" % status, "", str(info.get("msg") or "")).strip()
            detail = "HTTP status %s" % status + (": %s" % reason if reason else "")
        raise SigningKeyError("%s: could not download the key from %s (%s). Nothing was written." % (label, url, detail))
    try:
        data = resp.read(MAX_KEY_BYTES + 1)
    except Exception as e:  # socket errors, timeouts, decoding errors from the HTTP stack
        raise SigningKeyError("%s: reading the key from %s failed: %s. Nothing was written." % (label, url, e))
    finally:
        try:
            resp.close()
        except Exception:
            pass
    if len(data) > MAX_KEY_BYTES:
        raise SigningKeyError(
            "%s: the response from %s is larger than the %d bytes accepted for a key file. Nothing was written."
            % (label, url, MAX_KEY_BYTES)
        )
    return data


def decode_content(content, origin, label="apt signing key"):
    try:
        data = base64.b64decode(content, validate=True)
    except (TypeError, ValueError):
        raise SigningKeyError("%s: the key from %s did not arrive as base64. Nothing was written." % (label, origin))
    if len(data) > MAX_KEY_BYTES:
        raise SigningKeyError(
            "%s: the key from %s is larger than the %d bytes accepted for a key file. Nothing was written."
            % (label, origin, MAX_KEY_BYTES)
        )
    return data


# ---------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------

def run_module(module):
    p = module.params
    label = p["label"] or "apt signing key"
    result = {"changed": False, "dest": p["dest"]}

    pinned = normalize_fingerprint(p["fingerprint"], label)
    result["fingerprint"] = pinned
    if p["expiry_warning_days"] is None or p["expiry_warning_days"] < 0:
        raise SigningKeyError("%s: expiry_warning_days must be 0 or more, got %s."
                              % (label, p["expiry_warning_days"]))
    mode = parse_mode(p["mode"], label)
    dest = check_dest(p["dest"], label)
    result["dest"] = dest

    gpg = module.get_bin_path("gpg")
    if not gpg:
        raise SigningKeyError(
            "%s: the gpg program was not found on this host; install gnupg first "
            "(apt-get install gnupg)." % label
        )

    if p["content"] is not None:
        origin = p["url"] or "the key given"
        data = decode_content(p["content"], origin, label)
    elif p["url"]:
        origin = p["url"]
        use_proxy(p)
        data = download(module, p["url"], p["timeout"], label)
    else:
        origin = p["src"]
        data = read_src(p["src"], label)

    keyring, fingerprints, keys = inspect_and_verify(gpg, data, pinned, label, origin)
    result["fingerprints"] = fingerprints
    result["sha256"] = sha256_hex(keyring)

    try:
        warnings, expires, lifetimes = check_lifetime(keys[0], label, _now(), p["expiry_warning_days"])
    except SigningKeyError as e:
        e.result.setdefault("fingerprints", fingerprints)
        raise
    for warning in warnings:
        module.warn(warning)
    result["expires"] = iso_utc(expires)
    result["keys"] = lifetimes

    owner_managed = os.geteuid() == 0
    owner = (0, 0) if owner_managed else None

    try:
        before_data, before_fprs = describe_existing(gpg, dest)
    except SigningKeyError as e:
        raise SigningKeyError("%s: %s Nothing was written." % (label, e.msg), fingerprints=fingerprints)
    if before_data is None:
        before = ""
        changed = True
        content_changed = True
    else:
        cur_mode, cur_owner = current_attributes(dest, owner_managed)
        before = summary(before_fprs, before_data, cur_mode, cur_owner)
        content_changed = before_data != keyring
        changed = content_changed or attributes_differ(dest, mode, owner)
    after = summary(fingerprints, keyring, mode, owner)

    if changed and not module.check_mode:
        try:
            if content_changed:
                write_keyring(dest, keyring, mode, owner)
            else:
                fix_attributes(dest, mode, owner)
        except OSError as e:
            raise SigningKeyError("%s: could not write %s: %s." % (label, dest, e.strerror or e),
                                  fingerprints=fingerprints)

    result["changed"] = changed
    if module._diff:
        result["diff"] = {"before_header": dest, "after_header": dest, "before": before, "after": after}
    return result


def _now():
    return int(time.time())


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            url=dict(type="str"),
            src=dict(type="path"),
            content=dict(type="str"),
            fingerprint=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            label=dict(type="str", default="apt signing key"),
            mode=dict(type="raw", default="0644"),
            timeout=dict(type="int", default=30),
            http_proxy=dict(type="str", no_log=True),
            https_proxy=dict(type="str", no_log=True),
            no_proxy=dict(type="str"),
            validate_certs=dict(type="bool", default=True),
            expiry_warning_days=dict(type="int", default=30),
        ),
        mutually_exclusive=[("url", "src"), ("content", "src")],
        required_one_of=[("url", "src")],
        supports_check_mode=True,
    )


def main():
    module = build_module()
    try:
        result = run_module(module)
    except SigningKeyError as e:
        fail = {"dest": module.params.get("dest")}
        try:
            fail["fingerprint"] = normalize_fingerprint(module.params.get("fingerprint"))
        except SigningKeyError:
            pass
        fail.update(e.result)
        module.fail_json(msg=e.msg, **fail)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
