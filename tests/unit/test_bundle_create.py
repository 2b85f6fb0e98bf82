"""gpuhost bundle create: a real bundle from the stand-in mirror (bundle_lab), its manifest,
that apt takes it as its only source, and that the same inputs give the same manifest."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import pytest
from bundle_lab import (
    BASE_STATUS,
    DOCKER_VERSIONS,
    TOOLKIT_VERSIONS,
    apt_from_bundle,
    bundle_key_home,
    host_vars,
    key_fingerprint,
    made_bundle,
    make_bundle,
    standin_mirror,
)

from gpuhost_cli import bundle_manifest, bundle_repository
from gpuhost_cli.bundle_signing import gpgv_signer, keyring_fingerprints
from gpuhost_cli.inputs import UserError

__all__ = ["bundle_key_home", "made_bundle", "standin_mirror"]


def manifest_of(path):
    return json.loads((path / "manifest.json").read_text(encoding="utf-8"))


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_bundle_holds_one_signed_flat_repository_per_release(made_bundle):
    path = made_bundle["path"]
    assert sorted(p.name for p in path.iterdir()) == [
        "bookworm", "bundle-key.asc", "bundle-keyring.gpg", "manifest.json", "manifest.json.asc"]
    fingerprint = made_bundle["summary"]["key_fingerprint"]
    assert keyring_fingerprints(path / "bundle-keyring.gpg") == [fingerprint]
    assert (path / "bundle-key.asc").read_text(encoding="ascii").startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    release = path / "bookworm"
    assert gpgv_signer(path / "bundle-keyring.gpg", release / "InRelease") == fingerprint
    assert gpgv_signer(path / "bundle-keyring.gpg", release / "Release.gpg", release / "Release") == fingerprint
    hashes = bundle_repository.release_hashes((release / "Release").read_text(encoding="utf-8"))
    assert hashes["Packages"] == (sha256(release / "Packages"), (release / "Packages").stat().st_size)
    assert gzip.decompress((release / "Packages.gz").read_bytes()) == (release / "Packages").read_bytes()


def test_the_manifest_lists_each_package_with_its_origin(made_bundle, standin_mirror):
    path = made_bundle["path"]
    manifest = manifest_of(path)
    assert manifest["format"] == "gpuhost-bundle/1" and manifest["architecture"] == "amd64"
    assert manifest["key"]["fingerprint"] == made_bundle["summary"]["key_fingerprint"]
    packages = {p["package"]: p for p in manifest["packages"]}
    assert set(packages) == {"docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
                             "docker-compose-plugin", "nvidia-container-toolkit", "nvidia-container-toolkit-base",
                             "libnvidia-container-tools", "libnvidia-container1", "tini", "python3-tomlkit"}
    docker_ce = packages["docker-ce"]
    assert docker_ce["version"] == DOCKER_VERSIONS[0]
    assert docker_ce["filename"] == f"bookworm/docker-ce_{DOCKER_VERSIONS[0].split(':')[1]}_amd64.deb"
    assert docker_ce["source"] == f"{standin_mirror['url']}/linux/debian bookworm"
    assert docker_ce["upstream_key_fingerprint"] == key_fingerprint("docker")
    toolkit = packages["nvidia-container-toolkit"]
    assert toolkit["version"] == TOOLKIT_VERSIONS[1]
    assert toolkit["source"] == f"{standin_mirror['url']}/libnvidia-container/stable/deb/amd64 /"
    assert toolkit["upstream_key_fingerprint"] == key_fingerprint("nvidia")
    assert packages["tini"]["source"].startswith("http://deb.debian.org/debian bookworm")
    for entry in manifest["packages"]:
        assert entry["upstream_signature_verified"] is True and entry["release"] == "bookworm"
        assert sha256(path / entry["filename"]) == entry["sha256"]
        assert (path / entry["filename"]).stat().st_size == entry["size"]
    (release,) = manifest["releases"]
    assert release["hosts"] == ["gpu-node-1", "gpu-node-2"] and release["base_system"] == "status file"
    assert {r["signed_by"] for r in release["repositories"]} >= {key_fingerprint("docker"), key_fingerprint("nvidia")}
    assert {f["path"] for f in manifest["files"]} == {"bookworm/Packages", "bookworm/Packages.gz",
                                                      "bundle-keyring.gpg", "bundle-key.asc"}
    # Deterministic bytes: sorted keys, packages by release and name.
    assert (path / "manifest.json").read_bytes() == bundle_manifest.dumps(manifest)
    assert [p["package"] for p in manifest["packages"]] == sorted(p["package"] for p in manifest["packages"])


def test_apt_installs_the_roles_packages_from_the_bundle_alone(made_bundle, tmp_path):
    (install,) = manifest_of(made_bundle["path"])["releases"][0]["install"]
    done = apt_from_bundle(made_bundle["path"], "bookworm", BASE_STATUS, install, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"Inst docker-ce ({DOCKER_VERSIONS[0]} gpuhost offline bundle:bookworm" in done.stdout
    assert f"Inst nvidia-container-toolkit ({TOOLKIT_VERSIONS[1]} gpuhost offline bundle:bookworm" in done.stdout
    assert "Inst tini " in done.stdout


def test_apt_refuses_the_bundle_under_another_key(made_bundle, tmp_path):
    copy = tmp_path / "bundle"
    copy.mkdir()
    os.symlink(made_bundle["path"] / "bookworm", copy / "bookworm")
    (copy / "bundle-keyring.gpg").write_bytes(bundle_lab_key("docker"))
    done = apt_from_bundle(copy, "bookworm", BASE_STATUS, ["tini"], tmp_path / "apt")
    assert "NO_PUBKEY" in done.stderr or "not signed" in done.stderr, done.stderr


def bundle_lab_key(name):
    import subprocess

    from bundle_lab import KEYS

    return subprocess.run(["gpg", "--dearmor"], input=(KEYS / f"{name}-standin.public.asc").read_bytes(),
                          capture_output=True, check=True).stdout


def test_the_same_inputs_give_the_same_manifest(made_bundle, bundle_key_home, tmp_path):
    again = tmp_path / "again"
    make_bundle(again, made_bundle["hosts"], bundle_key_home)
    assert (again / "manifest.json").read_bytes() == (made_bundle["path"] / "manifest.json").read_bytes()
    assert (again / "bookworm" / "Packages").read_bytes() == (made_bundle["path"] / "bookworm" / "Packages").read_bytes()


def test_a_changed_pin_shows_in_the_manifest(made_bundle, standin_mirror, bundle_key_home, tmp_path):
    hosts = {name: {**values, "docker_version": DOCKER_VERSIONS[1]} for name, values in made_bundle["hosts"].items()}
    changed = tmp_path / "changed"
    make_bundle(changed, hosts, bundle_key_home)
    before = {(p["package"], p["version"]) for p in manifest_of(made_bundle["path"])["packages"]}
    after = {(p["package"], p["version"]) for p in manifest_of(changed)["packages"]}
    assert before - after == {("docker-ce", DOCKER_VERSIONS[0]), ("docker-ce-cli", DOCKER_VERSIONS[0])}
    assert after - before == {("docker-ce", DOCKER_VERSIONS[1]), ("docker-ce-cli", DOCKER_VERSIONS[1])}


def test_two_pins_in_one_release_give_both_versions(standin_mirror, bundle_key_home, tmp_path):
    hosts = {"a": host_vars(standin_mirror), "b": host_vars(standin_mirror, nvidia_container_toolkit_version="1.17.8-1")}
    make_bundle(tmp_path / "b", hosts, bundle_key_home)
    versions = {p["version"] for p in manifest_of(tmp_path / "b")["packages"] if p["package"] == "libnvidia-container1"}
    assert versions == {"1.17.8-1", "1.18.1-1"}


def test_an_existing_directory_with_files_is_never_written_over(made_bundle, bundle_key_home, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(UserError, match="exists and is not an empty directory"):
        make_bundle(out, made_bundle["hosts"], bundle_key_home)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_failed_create_leaves_nothing_behind(standin_mirror, bundle_key_home, tmp_path):
    hosts = {"a": host_vars(standin_mirror, docker_version="5:99.0.0-1~debian.12~bookworm")}
    with pytest.raises(UserError, match="docker-ce"):
        make_bundle(tmp_path / "out", hosts, bundle_key_home)
    assert list(tmp_path.iterdir()) == []


def test_base_status_for_a_release_no_host_runs_is_refused(made_bundle, bundle_key_home, tmp_path):
    with pytest.raises(UserError, match="--base-status names trixie, which no host of the inventory runs"):
        make_bundle(tmp_path / "out", made_bundle["hosts"], bundle_key_home, base_status={"trixie": BASE_STATUS})


def test_cli_create_from_an_inventory_gives_the_same_manifest(made_bundle, bundle_key_home, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from gpuhost_cli.cli import app

    hosts = {name: {k: v for k, v in values.items() if k != "ansible_distribution_release"}
             for name, values in made_bundle["hosts"].items()}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"gpu_hosts": {"hosts": hosts}}}}),
                                        encoding="utf-8")
    result = CliRunner().invoke(app, ["bundle", "create", "-i", str(tmp_path / "hosts.yml"), "--out",
                                      str(tmp_path / "out"), "--release", "bookworm", "--key-home",
                                      str(bundle_key_home), "--base-status", f"bookworm={BASE_STATUS}",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True and summary["key_fingerprint"] == made_bundle["summary"]["key_fingerprint"]
    assert "bookworm: resolving and downloading the packages of 2 host(s)" in result.stderr
    assert (tmp_path / "out" / "manifest.json").read_bytes() == (made_bundle["path"] / "manifest.json").read_bytes()
