"""What a bundle holds for each host: the roles' own package lists and repositories, rendered
with the host's variables (gpuhost_cli/bundle_plan.py). No network."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gpuhost_cli import bundle_plan
from gpuhost_cli.inputs import UserError

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"
DOCKER_FPR = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"


def role_file(*parts):
    return yaml.safe_load((ROLES.joinpath(*parts)).read_text(encoding="utf-8"))


def plan(variables=None, release="bookworm", host="gpu-node-1"):
    return bundle_plan.host_plan(host, variables or {}, release, "amd64")


def test_defaults_give_the_roles_own_package_lists():
    got = plan()
    docker = role_file("docker", "defaults", "main.yml")["docker_upstream_packages"]
    toolkit = role_file("nvidia_container_toolkit", "vars", "main.yml")["__nvidia_container_toolkit_packages"]
    assert got.packages == docker + toolkit + ["python3-tomlkit"]
    assert [r.name for r in got.repositories] == ["docker", "nvidia_container_toolkit"]
    docker_repo = got.repositories[0]
    assert docker_repo.line == ("deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.gpg] "
                                "https://download.docker.com/linux/debian bookworm stable")
    assert docker_repo.key_url == "https://download.docker.com/linux/debian/gpg"
    assert docker_repo.fingerprint == role_file("docker", "defaults", "main.yml")["docker_apt_key_fingerprint"]
    assert got.repositories[1].line.endswith("https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /")


def test_pins_become_apt_version_arguments():
    got = plan({"docker_version": "5:27.5.1-1~debian.12~bookworm", "nvidia_container_toolkit_version": "1.18.1-1"})
    assert "docker-ce=5:27.5.1-1~debian.12~bookworm" in got.packages
    assert "docker-ce-cli=5:27.5.1-1~debian.12~bookworm" in got.packages
    assert "containerd.io" in got.packages  # the plugins and containerd.io version on their own
    assert {p for p in got.packages if p.endswith("=1.18.1-1")} == {
        "nvidia-container-toolkit=1.18.1-1", "nvidia-container-toolkit-base=1.18.1-1",
        "libnvidia-container-tools=1.18.1-1", "libnvidia-container1=1.18.1-1"}


def test_distro_source_takes_the_release_package_set_and_no_docker_repository():
    by_release = role_file("docker", "vars", "Debian.yml")["__docker_os_distro_packages_by_release"]
    for release in ("bookworm", "trixie"):
        got = plan({"docker_install_source": "distro"}, release=release)
        assert got.packages[:len(by_release[release])] == by_release[release]
        assert [r.name for r in got.repositories] == ["nvidia_container_toolkit"]
    ubuntu = role_file("docker", "vars", "Ubuntu.yml")["__docker_os_distro_packages_by_release"]
    assert plan({"docker_install_source": "distro"}, release="noble").packages[:3] == ubuntu["noble"]


def test_ubuntu_host_uses_dockers_ubuntu_repository():
    assert plan(release="jammy").repositories[0].line.endswith("https://download.docker.com/linux/ubuntu jammy stable")


def test_mirrors_keys_and_extras_from_the_inventory():
    got = plan({"docker_apt_repo_url": "http://mirror.example.invalid/docker/",
                "docker_apt_key_fingerprint": "9dc8 5822 9fc7 dd38 854a e2d8 8d81 803c 0ebf cd88",
                "nvidia_container_toolkit_repo_url": "http://mirror.example.invalid/nvidia",
                "nvidia_container_toolkit_channel": "experimental",
                "nvidia_container_toolkit_legacy_nvidia_docker2": True})
    assert got.repositories[0].line.endswith("http://mirror.example.invalid/docker/debian bookworm stable")
    assert got.repositories[0].key_url == "http://mirror.example.invalid/docker/debian/gpg"
    assert got.repositories[0].fingerprint == DOCKER_FPR
    assert [r.line.split("] ")[1] for r in got.repositories[1:]] == [
        "http://mirror.example.invalid/nvidia/stable/deb/$(ARCH) /",
        "http://mirror.example.invalid/nvidia/experimental/deb/$(ARCH) /"]
    assert got.repositories[1].key_url == "http://mirror.example.invalid/nvidia/gpgkey"
    assert "nvidia-docker2" in got.packages


def test_apt_source_prerequisites_come_from_its_task_file():
    tasks = role_file("apt_source", "tasks", "present.yml")
    installs = [t["ansible.builtin.apt"]["name"] for t in tasks
                if isinstance(t.get("ansible.builtin.apt"), dict) and t["ansible.builtin.apt"].get("state") == "present"]
    assert bundle_plan.apt_source_prerequisites() == installs[0]


def test_release_from_the_host_variables_or_the_option():
    assert bundle_plan.host_release("h", {"ansible_distribution_release": "Trixie"}, None) == "trixie"
    assert bundle_plan.host_release("h", {"ansible_facts": {"distribution_release": "noble"}}, "bookworm") == "noble"
    assert bundle_plan.host_release("h", {}, "jammy") == "jammy"
    with pytest.raises(UserError) as unknown:
        bundle_plan.host_release("gpu-node-7", {}, None)
    assert "gpu-node-7" in unknown.value.message
    assert "--release" in unknown.value.message and "ansible_distribution_release" in unknown.value.message
    with pytest.raises(UserError, match="'buster' is not one gpuhost supports"):
        bundle_plan.host_release("h", {}, "buster")


def test_plan_groups_hosts_by_release_and_keeps_distinct_pins():
    hosts = {"a": {"ansible_distribution_release": "bookworm", "docker_version": "5:27.5.1-1~debian.12~bookworm"},
             "b": {"ansible_distribution_release": "bookworm", "docker_version": "5:27.6.0-1~debian.12~bookworm"},
             "c": {"ansible_distribution_release": "bookworm", "docker_version": "5:27.5.1-1~debian.12~bookworm"},
             "d": {}}
    plans = bundle_plan.plan_releases(hosts, "trixie", "amd64")
    assert [p.release for p in plans] == ["bookworm", "trixie"]
    bookworm = plans[0]
    assert bookworm.hosts == ["a", "b", "c"] and plans[1].hosts == ["d"]
    assert len(bookworm.package_sets) == 2
    assert {p for s in bookworm.package_sets for p in s if p.startswith("docker-ce=")} == {
        "docker-ce=5:27.5.1-1~debian.12~bookworm", "docker-ce=5:27.6.0-1~debian.12~bookworm"}
    assert all(s[:2] == ("ca-certificates", "gnupg") for s in bookworm.package_sets)
    assert len(bookworm.repositories) == 2  # the same repositories, listed once


def test_a_misspelled_variable_is_refused_with_the_host_and_the_fix():
    hosts = {"gpu-node-3": {"ansible_distribution_release": "bookworm", "docker_verison": "5:27.5.1"}}
    with pytest.raises(UserError) as error:
        bundle_plan.plan_releases(hosts, None, "amd64")
    assert "gpu-node-3" in error.value.message and "docker_verison" in error.value.message
    assert "docker_version" in error.value.message


def test_a_toolkit_pin_below_the_security_floor_is_refused():
    with pytest.raises(UserError) as error:
        plan({"nvidia_container_toolkit_version": "1.17.7-1"}, host="gpu-node-4")
    message = error.value.message
    assert "gpu-node-4" in message and "nvidia_container_toolkit_version 1.17.7-1" in message
    assert "nvidia_container_toolkit_allow_vulnerable" in message
    allowed = plan({"nvidia_container_toolkit_version": "1.17.7-1", "nvidia_container_toolkit_allow_vulnerable": True})
    assert "nvidia-container-toolkit=1.17.7-1" in allowed.packages


def test_a_variable_that_does_not_render_names_the_host():
    with pytest.raises(UserError) as error:
        plan({"docker_version": "{{ undefined_thing }}"}, host="gpu-node-5")
    assert error.value.message.startswith("gpu-node-5: cannot render")


def test_inventory_hosts_reads_the_gpu_hosts_group(tmp_path):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "gpu_hosts": {"hosts": {"n1": {"ansible_distribution_release": "bookworm"}, "n2": None},
                      "vars": {"docker_version": "5:27.5.1-1~debian.12~bookworm"}},
        "other": {"hosts": {"web": None}}}}}), encoding="utf-8")
    hosts = bundle_plan.inventory_hosts(tmp_path / "hosts.yml")
    assert sorted(hosts) == ["n1", "n2"]
    assert hosts["n1"]["docker_version"] == "5:27.5.1-1~debian.12~bookworm"
    assert sorted(bundle_plan.inventory_hosts(tmp_path / "hosts.yml", limit="n2")) == ["n2"]
    with pytest.raises(UserError, match="no hosts matched 'web'"):
        bundle_plan.inventory_hosts(tmp_path / "hosts.yml", limit="web")
