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


def test_lab_without_docker_says_what_to_install(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from gpuhost_cli.cli import app

    monkeypatch.setattr("shutil.which", lambda name: None)
    result = CliRunner().invoke(app, ["lab", "up", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "gpuhost lab needs Docker: no docker command found" in result.output
    assert "apt-get install docker.io" in result.output
    assert "Traceback" not in result.output


def test_lab_with_a_docker_engine_that_does_not_answer(monkeypatch, tmp_path):
    import subprocess

    from typer.testing import CliRunner

    from gpuhost_cli.cli import app

    def no_engine(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock")

    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr("subprocess.run", no_engine)
    result = CliRunner().invoke(app, ["lab", "up", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "needs a running Docker engine" in result.output
    assert "Cannot connect to the Docker daemon" in result.output


def test_lab_name_must_be_a_plain_name(tmp_path):
    from typer.testing import CliRunner

    from gpuhost_cli.cli import app

    result = CliRunner().invoke(app, ["lab", "up", "--name", "bad name;rm", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--name" in result.output
