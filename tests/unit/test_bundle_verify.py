"""gpuhost bundle verify: a bundle made from the stand-in mirror passes; a tampered, truncated,
incomplete or re-signed copy of it is refused with the file named (gpuhost_cli/bundle_verify.py
and the command line)."""

from __future__ import annotations

import json
import shutil

import pytest
from bundle_lab import bundle_copy, bundle_key_home, made_bundle, standin_mirror
from typer.testing import CliRunner

from gpuhost_cli.bundle_signing import BundleKey
from gpuhost_cli.bundle_verify import BundleRefused, verify
from gpuhost_cli.cli import app
from gpuhost_cli.inputs import UserError

__all__ = ["bundle_copy", "bundle_key_home", "made_bundle", "standin_mirror"]


def deb(bundle, package):
    return next((bundle / "bookworm").glob(f"{package}_*.deb"))


def refused(bundle, fingerprint=None):
    with pytest.raises(BundleRefused) as error:
        verify(bundle, fingerprint)
    return error.value


def test_the_bundle_as_made_passes(made_bundle):
    summary = verify(made_bundle["path"], made_bundle["summary"]["key_fingerprint"])
    assert summary["ok"] is True and summary["packages"] == 11
    assert summary["releases"] == [{"release": "bookworm", "hosts": ["gpu-node-1", "gpu-node-2"], "packages": 11}]


def test_a_package_swapped_for_another_valid_deb_is_refused_by_name(bundle_copy):
    tini = deb(bundle_copy, "tini")
    size = tini.stat().st_size
    shutil.copyfile(deb(bundle_copy, "python3-tomlkit"), tini)
    error = refused(bundle_copy)
    assert error.problems == [f"bookworm/{tini.name}: {tini.stat().st_size} bytes, the manifest says {size} "
                              f"(truncated or replaced)"]
    assert f"bookworm/{tini.name}" in error.message


def test_a_package_of_the_same_size_with_other_bytes_is_refused(bundle_copy):
    target = deb(bundle_copy, "containerd.io")
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    assert refused(bundle_copy).problems == [f"bookworm/{target.name}: sha256 differs from the manifest "
                                             f"(changed or replaced)"]


def test_a_truncated_package_is_refused(bundle_copy):
    target = deb(bundle_copy, "docker-ce")
    size = target.stat().st_size
    with open(target, "r+b") as handle:
        handle.truncate(size // 2)
    assert refused(bundle_copy).problems == [
        f"bookworm/{target.name}: {size // 2} bytes, the manifest says {size} (truncated or replaced)"]


def test_a_missing_and_an_extra_file_are_both_named(bundle_copy):
    missing = deb(bundle_copy, "libnvidia-container1")
    missing.unlink()
    (bundle_copy / "bookworm" / "evil_1.0_amd64.deb").write_bytes(b"!<arch>\n")
    problems = refused(bundle_copy).problems
    assert f"bookworm/{missing.name}: missing" in problems
    assert "bookworm/evil_1.0_amd64.deb: not in the manifest" in problems


def test_an_edited_manifest_is_refused(bundle_copy):
    manifest = json.loads((bundle_copy / "manifest.json").read_text(encoding="utf-8"))
    tini = next(p for p in manifest["packages"] if p["package"] == "tini")
    tini["sha256"] = "0" * 64
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    error = refused(bundle_copy)
    assert error.problems[0].startswith("manifest.json: not signed by the bundle key")


def test_an_unreadable_manifest_is_refused_naming_it(bundle_copy):
    (bundle_copy / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match="manifest.json is not readable JSON"):
        verify(bundle_copy)


def test_a_packages_index_changed_to_match_a_swap_is_refused(bundle_copy):
    packages = bundle_copy / "bookworm" / "Packages"
    packages.write_text(packages.read_text(encoding="utf-8").replace("Package: tini", "Package: tiny"),
                        encoding="utf-8")
    problems = refused(bundle_copy).problems
    assert "bookworm/Packages: does not match the hash in bookworm/Release" in problems
    assert "bookworm/Packages: sha256 differs from the manifest (changed or replaced)" in problems


@pytest.fixture
def other_key(tmp_path):
    """A second bundle key, as someone else would make one."""
    key = BundleKey(tmp_path / "other-key")
    yield key
    key.close()


def test_a_release_signed_again_by_another_key_is_refused(bundle_copy, other_key):
    release = (bundle_copy / "bookworm" / "Release").read_bytes()
    (bundle_copy / "bookworm" / "InRelease").write_bytes(other_key.clearsign(release))
    (bundle_copy / "bookworm" / "Release.gpg").write_bytes(other_key.detached(release))
    problems = refused(bundle_copy).problems
    assert any(p.startswith("bookworm/InRelease: not signed by the bundle key") for p in problems)
    assert any(p.startswith("bookworm/Release.gpg: not a signature of bookworm/Release") for p in problems)


def test_a_keyring_without_the_manifests_key_is_refused(bundle_copy, other_key):
    (bundle_copy / "bundle-keyring.gpg").write_bytes(other_key.public_key(armor=False))
    assert refused(bundle_copy).problems == [
        f"bundle-keyring.gpg: holds {other_key.fingerprint}, not exactly the bundle key "
        f"{json.loads((bundle_copy / 'manifest.json').read_text())['key']['fingerprint']} the manifest names"]


def test_a_bundle_made_over_with_another_key_fails_only_the_pinned_fingerprint(bundle_copy, made_bundle, other_key):
    """Whoever replaces the key and signs everything again makes a bundle that is whole and
    consistent with itself; only the fingerprint recorded when the bundle was made tells."""
    import hashlib

    from gpuhost_cli import bundle_manifest

    for name, armor in (("bundle-keyring.gpg", False), ("bundle-key.asc", True)):
        (bundle_copy / name).write_bytes(other_key.public_key(armor=armor))
    release = (bundle_copy / "bookworm" / "Release").read_bytes()
    (bundle_copy / "bookworm" / "InRelease").write_bytes(other_key.clearsign(release))
    (bundle_copy / "bookworm" / "Release.gpg").write_bytes(other_key.detached(release))
    manifest = json.loads((bundle_copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["key"]["fingerprint"] = other_key.fingerprint
    for entry in manifest["files"]:
        data = (bundle_copy / entry["path"]).read_bytes()
        entry.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    data = bundle_manifest.dumps(manifest)
    (bundle_copy / "manifest.json").write_bytes(data)
    (bundle_copy / "manifest.json.asc").write_bytes(other_key.detached(data))
    assert verify(bundle_copy)["key_fingerprint"] == other_key.fingerprint
    pinned = made_bundle["summary"]["key_fingerprint"]
    assert refused(bundle_copy, pinned).problems == [
        f"bundle-keyring.gpg: the bundle key is {other_key.fingerprint}, not the {pinned} given; "
        f"this bundle was not made with your key"]


def test_a_directory_that_is_no_bundle_says_how_to_make_one(tmp_path):
    with pytest.raises(UserError, match="is not a gpuhost bundle .make one with gpuhost bundle create"):
        verify(tmp_path)


# ---- the command line -----------------------------------------------------------------------


def test_cli_verify_passes_and_prints_the_key(made_bundle):
    result = CliRunner().invoke(app, ["bundle", "verify", str(made_bundle["path"])])
    assert result.exit_code == 0, result.output
    assert f"Bundle key: {made_bundle['summary']['key_fingerprint']}" in result.output
    assert "bookworm: 11 packages for gpu-node-1, gpu-node-2" in result.output


def test_cli_verify_refuses_with_exit_1_naming_the_file(bundle_copy):
    target = deb(bundle_copy, "tini")
    target.write_bytes(target.read_bytes()[:100])
    result = CliRunner().invoke(app, ["bundle", "verify", str(bundle_copy)])
    assert result.exit_code == 1
    assert (f"gpuhost: bundle {bundle_copy} refused: bookworm/{target.name}: 100 bytes, the manifest says"
            in result.output)
    as_json = CliRunner().invoke(app, ["bundle", "verify", str(bundle_copy), "--format", "json"])
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["problems"][0].startswith(f"bookworm/{target.name}: 100 bytes")


def test_cli_create_without_a_release_names_the_host_and_the_option(tmp_path):
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    gpu_hosts:\n      hosts:\n        gpu-node-9:\n",
                                        encoding="utf-8")
    result = CliRunner().invoke(app, ["bundle", "create", "-i", str(tmp_path / "hosts.yml"),
                                      "--out", str(tmp_path / "b"), "--key-home", str(tmp_path / "k")])
    assert result.exit_code == 2
    assert "gpu-node-9: the inventory does not say which release the host runs; pass --release" in result.output
    assert not (tmp_path / "b").exists() and not (tmp_path / "k").exists()


def test_cli_create_with_a_bad_base_status_argument(tmp_path):
    (tmp_path / "hosts.yml").write_text("all: {}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["bundle", "create", "-i", str(tmp_path / "hosts.yml"),
                                      "--out", str(tmp_path / "b"), "--base-status", "bookworm"])
    assert result.exit_code == 2
    assert "--base-status 'bookworm': write RELEASE=FILE" in result.output


@pytest.mark.parametrize(("command", "words"), [
    ("create", ["--inventory", "--out", "--release", "--base-status", "--key-home", "--distro-mirror", "--format",
                "Examples", "gpuhost bundle create -i inventories/prod --out"]),
    ("verify", ["DIR", "--fingerprint", "--format", "Examples", "gpuhost bundle verify bundle-2026-12"]),
])
def test_cli_help_has_the_options_and_examples(command, words):
    result = CliRunner().invoke(app, ["bundle", command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for word in words:
        assert word in result.output, word
