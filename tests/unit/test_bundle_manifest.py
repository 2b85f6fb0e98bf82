"""The manifest's bytes and the checks of its shape (gpuhost_cli/bundle_manifest.py) and the
flat repository's indexes (gpuhost_cli/bundle_repository.py). No network."""

from __future__ import annotations

import json

import pytest

from gpuhost_cli import bundle_manifest, bundle_repository
from gpuhost_cli.inputs import UserError


def entry(package, release="bookworm", version="1.0-1"):
    return bundle_manifest.package_entry(
        package=package, version=version, architecture="amd64", release=release,
        filename=f"{release}/{package}_{version}_amd64.deb", sha256="a" * 64, size=10,
        source="http://deb.debian.org/debian bookworm", upstream_key_fingerprint="B" * 40)


def manifest(packages, files=()):
    return {"format": bundle_manifest.FORMAT, "architecture": "amd64", "key": {"fingerprint": "C" * 40},
            "releases": [{"release": "bookworm"}], "packages": list(packages),
            "files": list(files) or [{"path": "bookworm/Packages", "sha256": "d" * 64, "size": 3}]}


def test_the_same_content_in_any_order_gives_the_same_bytes():
    one = manifest([entry("tini"), entry("docker-ce", release="trixie"), entry("apt")])
    two = manifest([entry("apt"), entry("tini"), entry("docker-ce", release="trixie")])
    assert bundle_manifest.dumps(one) == bundle_manifest.dumps(two)
    data = json.loads(bundle_manifest.dumps(one))
    assert [(p["release"], p["package"]) for p in data["packages"]] == [
        ("bookworm", "apt"), ("bookworm", "tini"), ("trixie", "docker-ce")]
    assert list(data) == sorted(data)


def test_a_changed_version_is_one_changed_line():
    before = bundle_manifest.dumps(manifest([entry("tini"), entry("apt")])).decode().splitlines()
    after = bundle_manifest.dumps(manifest([entry("tini", version="2.0-1"), entry("apt")])).decode().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [
        ('      "filename": "bookworm/tini_1.0-1_amd64.deb",', '      "filename": "bookworm/tini_2.0-1_amd64.deb",'),
        ('      "version": "1.0-1"', '      "version": "2.0-1"')]


def write(tmp_path, data):
    (tmp_path / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.update(format="other/9"), "format is not gpuhost-bundle/1"),
    (lambda m: m["packages"][0].pop("sha256"), "packages\\[0\\] has no valid 'sha256'"),
    (lambda m: m["packages"][0].update(size="10"), "packages\\[0\\] has no valid 'size'"),
    (lambda m: m["files"].append("x"), "files\\[1\\] is not an object"),
    (lambda m: m["packages"][0].update(filename="../../etc/passwd"), "'../../etc/passwd' is not a path inside"),
    (lambda m: m["files"][0].update(path="/etc/passwd"), "'/etc/passwd' is not a path inside"),
    (lambda m: m.pop("key"), "no key fingerprint"),
    (lambda m: m["releases"].append({"release": "../../escaped"}), "release '../../escaped' is not a directory name"),
    (lambda m: m["releases"].append({"release": "a/b"}), "release 'a/b' is not a directory name"),
    (lambda m: m["releases"].append({"release": ".."}), "release '..' is not a directory name"),
    (lambda m: m["releases"].append({"release": ""}), "release '' is not a directory name"),
    (lambda m: m["releases"].append({"release": 12}), "release 12 is not a directory name"),
])
def test_a_damaged_manifest_is_refused_saying_what(tmp_path, change, message):
    data = manifest([entry("tini")])
    change(data)
    with pytest.raises(UserError, match=message):
        bundle_manifest.load(write(tmp_path, data))


def test_a_good_manifest_loads(tmp_path):
    assert bundle_manifest.load(write(tmp_path, manifest([entry("tini")])))["packages"][0]["package"] == "tini"


def test_release_hashes_and_clearsigned_body():
    release = ("Origin: gpuhost\nMD5Sum:\n 0123 5 Packages\nSHA256:\n " + "e" * 64 + " 5 Packages\n "
               + "f" * 64 + " 7 Packages.gz\n")
    assert bundle_repository.release_hashes(release) == {"Packages": ("e" * 64, 5), "Packages.gz": ("f" * 64, 7)}
    signed = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: gpuhost\n- -----dashes\n"
              "-----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n")
    assert bundle_repository.clearsigned_body(signed) == "Origin: gpuhost\n-----dashes\n"
    assert bundle_repository.pool_name("docker-ce", "5:27.5.1-1~debian.12~bookworm", "amd64") == \
        "docker-ce_27.5.1-1~debian.12~bookworm_amd64.deb"
