"""The lab's inventory and host layout (the lab itself runs in the end-to-end test)."""

from pathlib import Path

import pytest
import yaml

from gpuhost_cli.inventory_validation import load_catalog, validate_vars
from gpuhost_cli.lab.fleet import STAND_IN_NOTICE, LabError, LabHost, distros_for, inventory_documents, write_inventory

REPO = Path(__file__).resolve().parents[2]
FPRS = {"docker": "A" * 40, "nvidia": "B" * 40, "rogue": "C" * 40}


def test_mixed_alternates_debian_12_and_13():
    assert distros_for(5, "mixed") == ["debian12", "debian13", "debian12", "debian13", "debian12"]
    assert distros_for(2, "debian13") == ["debian13", "debian13"]


@pytest.mark.parametrize("count, distro", [(0, "debian12"), (2, "ubuntu24"), (-1, "mixed")])
def test_bad_lab_requests_are_refused(count, distro):
    with pytest.raises(LabError):
        distros_for(count, distro)


def test_inventory_points_at_the_hosts_the_key_and_the_stand_in_mirror(tmp_path):
    hosts = [LabHost("gpuhost-lab-1", "debian12", "172.20.0.3"), LabHost("gpuhost-lab-2", "debian13", "172.20.0.4")]
    docs = inventory_documents(hosts, tmp_path / "id_ed25519", "http://gpuhost-lab-mirror:8080", FPRS)
    directory = write_inventory(tmp_path / "inventory", docs)
    inventory = yaml.safe_load((directory / "hosts.yml").read_text())
    group = inventory["all"]["children"]["gpu_hosts"]
    assert group["hosts"] == {"gpuhost-lab-1": {"ansible_host": "172.20.0.3"},
                              "gpuhost-lab-2": {"ansible_host": "172.20.0.4"}}
    assert group["vars"]["ansible_ssh_private_key_file"] == str(tmp_path / "id_ed25519")
    lab_text = (directory / "group_vars" / "gpu_hosts" / "lab.yml").read_text()
    assert STAND_IN_NOTICE in lab_text
    lab = yaml.safe_load(lab_text)
    assert lab["nvidia_container_toolkit_repo_url"] == "http://gpuhost-lab-mirror:8080/libnvidia-container"
    assert lab["nvidia_container_toolkit_key_fingerprint"] == "B" * 40
    assert lab["docker_apt_repo_url"] == "http://gpuhost-lab-mirror:8080/linux"


def test_lab_inventory_passes_gpuhosts_own_validation(tmp_path):
    hosts = [LabHost("gpuhost-lab-1", "debian12", "172.20.0.3")]
    docs = inventory_documents(hosts, tmp_path / "key", "http://m:8080", FPRS)
    specs, prefixes = load_catalog(sorted(REPO.glob("roles/*/meta/argument_specs.yml")))
    variables = {**docs["hosts.yml"]["all"]["children"]["gpu_hosts"]["vars"], **docs["group_vars/gpu_hosts/lab.yml"]}
    assert validate_vars("gpuhost-lab-1", variables, specs, prefixes) == []
