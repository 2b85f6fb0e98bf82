"""Dependency selection and the upstream signature checks (gpuhost_cli/bundle_resolution.py),
with apt itself against the stand-in mirror (bundle_lab) and Debian's archive."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_lab import BASE_STATUS, DOCKER_VERSIONS, TOOLKIT_VERSIONS, host_vars, key_fingerprint, standin_mirror

from gpuhost_cli import bundle_plan, bundle_resolution
from gpuhost_cli.bundle_resolution import Resolver, install_arguments, installed_packages, parse_role_line
from gpuhost_cli.bundle_signing import keyring_fingerprints
from gpuhost_cli.inputs import UserError

__all__ = ["standin_mirror"]

DEBIAN_KEYS = keyring_fingerprints(Path(bundle_resolution.DISTRO_ARCHIVES["debian"]["keyring"]))


def release_plan(mirror, **overrides):
    hosts = {"gpu-node-1": host_vars(mirror, **overrides)}
    return bundle_plan.plan_releases(hosts, None, "amd64")[0]


# ---- pure parts --------------------------------------------------------------------------


def test_role_lines_are_read_without_their_signed_by():
    assert parse_role_line("deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.gpg] https://x/linux/debian "
                           "bookworm stable") == ("arch=amd64", "https://x/linux/debian", "bookworm", "stable")
    assert parse_role_line("deb [signed-by=/k.gpg] https://x/stable/deb/$(ARCH) /") == (
        "", "https://x/stable/deb/$(ARCH)", "/", "")
    with pytest.raises(UserError, match="cannot read the apt source line"):
        parse_role_line("deb-src nonsense")


def test_the_release_file_apt_keeps_for_each_kind_of_source(tmp_path):
    dists = bundle_resolution.Source("docker", "http://h:8080/linux/debian", "bookworm", "stable", tmp_path, "")
    flat = bundle_resolution.Source("nvidia", "http://h:8080/nv/stable/deb/$(ARCH)", "/", "", tmp_path, "")
    assert dists.release_url("amd64") == "http://h:8080/linux/debian/dists/bookworm/InRelease"
    assert flat.release_url("arm64") == "http://h:8080/nv/stable/deb/arm64/InRelease"
    assert bundle_resolution._uri_to_filename(flat.release_url("amd64")) == "h:8080_nv_stable_deb_amd64_InRelease"


def test_installed_packages_without_a_pin_are_left_as_they_are():
    status = ("Package: gnupg\nStatus: install ok installed\nVersion: 1\n\n"
              "Package: tini\nStatus: deinstall ok config-files\nVersion: 1\n\n"
              "Package: docker-ce\nStatus: install ok installed\nVersion: 5:1\n")
    installed = installed_packages(status)
    assert installed == {"gnupg", "docker-ce"}
    assert install_arguments(["gnupg", "tini", "docker-ce=5:27.5.1", "ca-certificates"], installed) == [
        "tini", "docker-ce=5:27.5.1", "ca-certificates"]


# ---- with apt -------------------------------------------------------------------------------


def test_selection_against_a_host_status_is_the_pinned_packages_and_the_missing_dependencies(standin_mirror,
                                                                                               tmp_path):
    resolved = Resolver(tmp_path, "amd64").resolve(release_plan(standin_mirror), BASE_STATUS, download=False)
    chosen = {(d.package, d.version) for d in resolved.downloads}
    assert chosen == {
        ("docker-ce", DOCKER_VERSIONS[0]), ("docker-ce-cli", DOCKER_VERSIONS[0]), ("containerd.io", "1.7.25-1"),
        ("docker-buildx-plugin", "0.20.0-1~debian.12~bookworm"),
        ("docker-compose-plugin", "2.32.4-1~debian.12~bookworm"),
        *((name, TOOLKIT_VERSIONS[1]) for name in ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                                                   "libnvidia-container-tools", "libnvidia-container1")),
        # From Debian: what the stand-in docker-ce and the toolkit role need and the host lacks.
        *((d.package, d.version) for d in resolved.downloads if d.package in ("tini", "python3-tomlkit")),
    }
    assert {d.package for d in resolved.downloads if d.source.name == "distribution"} == {"tini", "python3-tomlkit"}
    by_name = {d.package: d for d in resolved.downloads}
    assert by_name["docker-ce"].source.name == "docker"
    assert by_name["libnvidia-container1"].source.name == "nvidia_container_toolkit"
    assert all(len(d.index_hash) == 64 for d in resolved.downloads)
    # The repositories' Release files, checked with gpgv against the pinned keys.
    assert resolved.signers[f"{standin_mirror['url']}/linux/debian bookworm"] == key_fingerprint("docker")
    assert resolved.signers[f"{standin_mirror['url']}/libnvidia-container/stable/deb/amd64 /"] == \
        key_fingerprint("nvidia")
    assert resolved.signers["http://deb.debian.org/debian bookworm"] in DEBIAN_KEYS
    assert resolved.signers["http://security.debian.org/debian-security bookworm-security"] in DEBIAN_KEYS
    assert resolved.base == "status file"


def test_the_default_base_system_is_priority_required_and_important(standin_mirror, tmp_path):
    resolver = Resolver(tmp_path, "amd64")
    plan = release_plan(standin_mirror)
    resolved = resolver.resolve(plan, None, download=False)
    assert resolved.base == "priority required and important"
    base = installed_packages((tmp_path / "bookworm" / "base-status").read_text(encoding="utf-8"))
    assert {"dpkg", "apt", "libc6", "adduser", "passwd", "debian-archive-keyring"} <= base
    chosen = {d.package for d in resolved.downloads}
    assert not chosen & base  # nothing the base system has is fetched again
    assert {"tini", "python3-tomlkit", "docker-ce", "libnvidia-container1"} <= chosen


def test_a_key_that_is_not_the_pinned_one_stops_before_apt_runs(standin_mirror, tmp_path):
    plan = release_plan(standin_mirror, docker_apt_key_fingerprint=key_fingerprint("nvidia"))
    with pytest.raises(UserError) as error:
        Resolver(tmp_path, "amd64").resolve(plan, BASE_STATUS, download=False)
    assert "docker_apt_key_fingerprint" in error.value.message
    assert key_fingerprint("docker") in error.value.message and key_fingerprint("nvidia") in error.value.message
    assert not (tmp_path / "bookworm" / "state").exists()


def test_a_repository_signed_by_another_key_is_refused(standin_mirror, tmp_path):
    plan = release_plan(standin_mirror,
                        nvidia_container_toolkit_repo_url=f"{standin_mirror['url']}/rogue/libnvidia-container")
    with pytest.raises(UserError) as error:
        Resolver(tmp_path, "amd64").resolve(plan, BASE_STATUS, download=False)
    assert "apt-get update with the pinned keys" in error.value.message
    assert "rogue/libnvidia-container" in error.value.message
    assert not list(Path(tmp_path).glob("**/*.deb"))


def test_a_pin_the_repository_lacks_names_the_package(standin_mirror, tmp_path):
    plan = release_plan(standin_mirror, docker_version="5:99.0.0-1~debian.12~bookworm")
    with pytest.raises(UserError) as error:
        Resolver(tmp_path, "amd64").resolve(plan, BASE_STATUS, download=False)
    assert "5:99.0.0-1~debian.12~bookworm" in error.value.message and "docker-ce" in error.value.message


def test_an_unreachable_key_url_names_the_repository_and_the_url(standin_mirror, tmp_path):
    plan = release_plan(standin_mirror, docker_apt_key_url="http://127.0.0.1:9/gpg")
    with pytest.raises(UserError) as error:
        Resolver(tmp_path, "amd64").resolve(plan, BASE_STATUS, download=False)
    assert "docker repository from http://127.0.0.1:9/gpg" in error.value.message


def test_the_distribution_archive_and_a_mirror_of_it(tmp_path):
    debian = bundle_plan.ReleasePlan("bookworm", "debian")
    assert [s.line() for s in Resolver(tmp_path, "amd64").distro_sources(debian)] == [
        f"deb [signed-by={bundle_resolution.DISTRO_ARCHIVES['debian']['keyring']}] {url} {suite} main"
        for url, suite in (("http://deb.debian.org/debian", "bookworm"),
                           ("http://deb.debian.org/debian", "bookworm-updates"),
                           ("http://security.debian.org/debian-security", "bookworm-security"))]
    mirrored = Resolver(tmp_path, "amd64", distro_mirror="http://cache.lan/debian/").distro_sources(debian)
    assert [(s.url, s.suite) for s in mirrored] == [
        ("http://cache.lan/debian", "bookworm"), ("http://cache.lan/debian", "bookworm-updates"),
        ("http://cache.lan/debian-security", "bookworm-security")]
    ubuntu = bundle_plan.ReleasePlan("noble", "ubuntu")
    resolver = Resolver(tmp_path, "amd64", distro_mirror="http://cache.lan/ubuntu")
    if Path(bundle_resolution.DISTRO_ARCHIVES["ubuntu"]["keyring"]).is_file():
        assert {s.url for s in resolver.distro_sources(ubuntu)} == {"http://cache.lan/ubuntu"}
    else:
        with pytest.raises(UserError, match="install the ubuntu-keyring package"):
            resolver.distro_sources(ubuntu)
