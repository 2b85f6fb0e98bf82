"""Each distribution's values of the roles, rendered from the roles' own vars files.

The roles keep every Debian/Ubuntu difference in per-distribution vars files
(roles/docker/vars/Debian.yml, Ubuntu.yml); the supported releases come from one list,
module_utils/gpuhost_platforms.py. These tests render the roles' variables with Ansible's
templating, as a play would, for hosts that report each release's facts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader
from ansible.template import Templar, trust_as_template

from plugin_loader import use_module_utils

use_module_utils()
from ansible.module_utils.gpuhost_platforms import RELEASES, SUPPORTED_LIST, find_release  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
filter_loader.add_directory(str(REPO / "gpuhost_cli" / "ansible_plugins" / "filter"))

FACTS = {
    ("debian", "12"): {"distribution": "Debian", "distribution_release": "bookworm",
                       "distribution_version": "12.7", "distribution_major_version": "12"},
    ("debian", "13"): {"distribution": "Debian", "distribution_release": "trixie",
                       "distribution_version": "13.1", "distribution_major_version": "13"},
    ("ubuntu", "22.04"): {"distribution": "Ubuntu", "distribution_release": "jammy",
                          "distribution_version": "22.04", "distribution_major_version": "22"},
    ("ubuntu", "24.04"): {"distribution": "Ubuntu", "distribution_release": "noble",
                          "distribution_version": "24.04", "distribution_major_version": "24"},
}


def _trusted(data):
    if isinstance(data, dict):
        return {k: _trusted(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_trusted(v) for v in data]
    if isinstance(data, str):
        return trust_as_template(data)
    return data


def role_vars(role, facts, distribution_file=True, **overrides):
    """A function rendering expressions over ``role``'s defaults and vars (with the
    distribution's vars file, as its preflight loads it) for a host with ``facts``."""
    loader = DataLoader()
    variables = {}
    files = [f"roles/{role}/defaults/main.yml", f"roles/{role}/vars/main.yml"]
    if distribution_file:
        files.append(f"roles/{role}/vars/{facts['distribution']}.yml")
    for name in files:
        variables.update(_trusted(loader.load_from_file(str(REPO / name))))
    variables.update(overrides)
    variables["ansible_facts"] = {"architecture": "x86_64", **facts}
    templar = Templar(loader=loader, variables=variables)
    return lambda expression: templar.template(trust_as_template("{{ %s }}" % expression))


def release_facts(dist_id, version):
    return FACTS[(dist_id, version)]


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r["lab_image"])
def test_every_supported_release_has_its_values(release):
    facts = release_facts(release["id"], release["version"])
    render = role_vars("docker", facts)
    assert render("__docker_os_repo_distribution") == release["id"]
    assert render("__docker_distro_packages")[0] == "docker.io"
    assert render("(ansible_facts | gpuhost_platform).codename") == release["codename"]
    assert render("(ansible_facts | gpuhost_platform).supported") is True


def test_the_facts_table_covers_every_release():
    assert sorted(FACTS) == sorted((r["id"], r["version"]) for r in RELEASES)


@pytest.mark.parametrize("dist_id,version,codename,docker_release", [
    ("ubuntu", "22.04", "jammy", "ubuntu.22.04"),
    ("ubuntu", "24.04", "noble", "ubuntu.24.04"),
    # Docker names Debian releases by their major version, even on a point release.
    ("debian", "12", "bookworm", "debian.12"),
    ("debian", "13", "trixie", "debian.13"),
])
def test_dockers_repository_for_the_distribution(dist_id, version, codename, docker_release):
    render = role_vars("docker", release_facts(dist_id, version))
    assert render("__docker_source_line") == (
        f"deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.gpg] "
        f"https://download.docker.com/linux/{dist_id} {codename} stable")
    assert render("__docker_key_url") == f"https://download.docker.com/linux/{dist_id}/gpg"
    assert render("__docker_os_version_example") == f"5:27.5.1-1~{docker_release}~{codename}"


def test_the_repository_line_follows_the_architecture_and_a_mirror():
    facts = {**release_facts("ubuntu", "24.04"), "architecture": "aarch64"}
    render = role_vars("docker", facts, docker_apt_repo_url="http://mirror.example/docker/linux/",
                       docker_apt_channel="test")
    assert render("__docker_source_line") == (
        "deb [arch=arm64 signed-by=/etc/apt/keyrings/docker.gpg] http://mirror.example/docker/linux/ubuntu noble test")


@pytest.mark.parametrize("dist_id,version,expected", [
    ("debian", "12", ["docker.io"]),
    ("debian", "13", ["docker.io", "docker-compose", "docker-buildx"]),
    ("ubuntu", "22.04", ["docker.io", "docker-compose-v2", "docker-buildx"]),
    ("ubuntu", "24.04", ["docker.io", "docker-compose-v2", "docker-buildx"]),
])
def test_distro_packages_are_the_distributions_own(dist_id, version, expected):
    render = role_vars("docker", release_facts(dist_id, version), docker_install_source="distro")
    assert render("__docker_packages") == expected
    assert render("__docker_engine_package") == "docker.io"


def test_a_users_distro_package_list_wins():
    render = role_vars("docker", release_facts("ubuntu", "24.04"), docker_install_source="distro",
                       docker_distro_packages=["docker.io"])
    assert render("__docker_packages") == ["docker.io"]
    # Nothing of Docker's plugins collides with a bare docker.io.
    assert render("__docker_conflicts") == ["podman-docker"]


def test_upstream_pin_on_ubuntu():
    render = role_vars("docker", release_facts("ubuntu", "22.04"), docker_version="5:27.5.1-1~ubuntu.22.04~jammy")
    assert render("__docker_packages")[:2] == ["docker-ce=5:27.5.1-1~ubuntu.22.04~jammy",
                                                "docker-ce-cli=5:27.5.1-1~ubuntu.22.04~jammy"]


@pytest.mark.parametrize("dist_id,version,expected", [
    # Docker's install guides, less what the install transaction replaces under the engine plan
    # (docker.io, containerd, runc).
    ("debian", "12", ["docker-doc", "docker-compose", "podman-docker"]),
    ("ubuntu", "24.04", ["docker-doc", "docker-compose", "docker-compose-v2", "podman-docker"]),
])
def test_upstream_removes_what_dockers_guide_lists(dist_id, version, expected):
    render = role_vars("docker", release_facts(dist_id, version))
    assert render("__docker_conflicts") == expected


@pytest.mark.parametrize("dist_id,version,expected", [
    ("debian", "12", ["podman-docker"]),
    ("debian", "13", ["docker-compose-plugin", "docker-buildx-plugin", "podman-docker"]),
    ("ubuntu", "22.04", ["docker-compose-plugin", "docker-buildx-plugin", "podman-docker"]),
])
def test_distro_removes_dockers_plugins_that_ship_the_same_files(dist_id, version, expected):
    render = role_vars("docker", release_facts(dist_id, version), docker_install_source="distro")
    assert render("__docker_conflicts") == expected


def test_the_installed_conflicts_are_read_from_dpkg_status():
    render = role_vars("docker", release_facts("ubuntu", "24.04"), __docker_conflicts_read={"stdout": "\n".join([
        "docker-compose-v2\t2.24.6+ds1-0ubuntu1~24.04.1\tii ", "docker-doc\t24.0.7-0ubuntu4\trc ",
        "podman-docker\t\tun ", "docker-compose\t1.29.2-6\tiU "])})
    assert render("__docker_conflicts_installed") == ["docker-compose-v2", "docker-compose"]


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r["lab_image"])
def test_the_toolkits_flat_repository_is_the_same_everywhere(release):
    render = role_vars("nvidia_container_toolkit", release_facts(release["id"], release["version"]),
                       distribution_file=False)
    assert render("__nvidia_container_toolkit_source_lines") == [
        "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] "
        "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /"]


@pytest.mark.parametrize("line", [
    # Older recipes on hosts upgraded from Ubuntu 18.04 / 20.04.
    "deb https://nvidia.github.io/nvidia-docker/ubuntu18.04/$(ARCH) /",
    "deb https://nvidia.github.io/libnvidia-container/ubuntu20.04/$(ARCH) /",
    "deb https://nvidia.github.io/nvidia-container-runtime/ubuntu18.04/$(ARCH) /",
    "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] "
    "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /",
])
def test_stale_nvidia_sources_of_older_ubuntu_recipes_are_found(line):
    render = role_vars("apt_source", release_facts("ubuntu", "22.04"), distribution_file=False,
                       apt_source_repo_url="https://nvidia.github.io/libnvidia-container",
                       apt_source_stale_url_patterns=role_vars(
                           "nvidia_container_toolkit", release_facts("ubuntu", "22.04"),
                           distribution_file=False)("__nvidia_container_toolkit_stale_url_patterns"))
    pattern = r"\s*(deb|deb-src|URIs:)\s.*(%s)" % render("__apt_source_url_pattern")
    assert re.match(pattern, line)
    assert not re.match(pattern, "# " + line)
    assert not re.match(pattern, "deb http://archive.ubuntu.com/ubuntu jammy main restricted")


def test_dockers_add_apt_repository_line_is_found():
    render = role_vars("apt_source", release_facts("ubuntu", "22.04"), distribution_file=False,
                       apt_source_repo_url="https://download.docker.com/linux/ubuntu")
    pattern = r"\s*(deb|deb-src|URIs:)\s.*(%s)" % render("__apt_source_url_pattern")
    assert re.match(pattern, "deb [arch=amd64] https://download.docker.com/linux/ubuntu focal stable")
    assert not re.match(pattern, "deb https://download.docker.com/linux/debian bookworm stable")


@pytest.mark.parametrize("dist,version", [("Ubuntu", "20.04"), ("Ubuntu", "25.10"), ("Debian", "11.11"),
                                          ("Rocky", "9.4")])
def test_an_unsupported_release_is_named_with_the_supported_ones(dist, version):
    facts = {"distribution": dist, "distribution_release": "x", "distribution_version": version,
             "distribution_major_version": version.split(".")[0]}
    render = role_vars("docker", facts, distribution_file=False)
    verdict = render("ansible_facts | gpuhost_platform('gpu7')")
    assert verdict["supported"] is False
    assert verdict["message"] == (
        f"gpu7 runs {dist} {version}, which gpuhost does not support. Supported: {SUPPORTED_LIST}. "
        "Remove the host from the inventory or reinstall it with a supported release.")
    assert "Ubuntu 22.04 (jammy)" in SUPPORTED_LIST and "Debian 13 (trixie)" in SUPPORTED_LIST


def test_release_matching():
    assert find_release("Debian", "12.7")["codename"] == "bookworm"
    assert find_release("debian", "12")["codename"] == "bookworm"
    assert find_release("ubuntu", "24.04")["codename"] == "noble"
    assert find_release("ubuntu", "24.10") is None
    assert find_release("ubuntu", "24") is None
    assert find_release("debian", "120") is None
    assert find_release(None, None) is None


def test_galaxy_metadata_of_every_role_names_exactly_the_supported_releases():
    # Galaxy reads meta/main.yml as static YAML, so it repeats the release list: kept equal here.
    import yaml

    wanted = {}
    for release in RELEASES:
        wanted.setdefault(release["name"], []).append(release["codename"])
    for meta in sorted((REPO / "roles").glob("*/meta/main.yml")):
        platforms = yaml.safe_load(meta.read_text(encoding="utf-8"))["galaxy_info"]["platforms"]
        assert {p["name"]: p["versions"] for p in platforms} == wanted, meta
