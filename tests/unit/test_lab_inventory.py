"""The lab's inventory and host layout (the lab itself runs in the end-to-end test)."""

from pathlib import Path

import pytest
import yaml

from gpuhost_cli.ansible_plugins.module_utils.gpuhost_platforms import RELEASES
from gpuhost_cli.inventory_validation import load_catalog, validate_vars
from gpuhost_cli.lab.fleet import (DISTROS, KEY_NAMES, STAND_IN_NOTICE, LabError, LabHost, distros_for,
                                   inventory_documents, write_inventory)

REPO = Path(__file__).resolve().parents[2]
FPRS = {"docker": "A" * 40, "nvidia": "B" * 40, "rogue": "C" * 40, "ubuntu": "D" * 40}
FOUR = ["debian12", "debian13", "ubuntu22-sim", "ubuntu24-sim"]


def test_the_lab_runs_one_image_per_release_of_the_release_list():
    assert DISTROS == tuple(r["lab_image"] for r in RELEASES) == tuple(FOUR)


def test_mixed_cycles_through_the_four_releases_in_order():
    assert distros_for(4, "mixed") == FOUR
    assert distros_for(6, "mixed") == FOUR + ["debian12", "debian13"]
    # The end-to-end test's two hosts: Debian 12 and 13.
    assert distros_for(2, "mixed") == ["debian12", "debian13"]
    assert distros_for(1, "mixed") == ["debian12"]


@pytest.mark.parametrize("distro", FOUR)
def test_one_release_for_every_host(distro):
    assert distros_for(3, distro) == [distro] * 3


@pytest.mark.parametrize("count, distro", [(0, "debian12"), (2, "ubuntu24"), (-1, "mixed"), (1, "ubuntu22"),
                                           (1, "Ubuntu22-sim"), (1, "")])
def test_bad_lab_requests_are_refused(count, distro):
    with pytest.raises(LabError):
        distros_for(count, distro)


def test_an_unknown_distro_is_refused_with_the_choices():
    with pytest.raises(LabError) as err:
        distros_for(2, "ubuntu24")
    assert str(err.value) == ("--distro must be one of debian12, debian13, ubuntu22-sim, ubuntu24-sim or mixed, "
                              "or a comma-separated list of them, got 'ubuntu24'")


def test_a_comma_separated_list_cycles_through_its_releases():
    # The end-to-end test's two hosts: one Debian and one simulated Ubuntu.
    assert distros_for(2, "debian12,ubuntu24-sim") == ["debian12", "ubuntu24-sim"]
    assert distros_for(3, "ubuntu22-sim,debian13") == ["ubuntu22-sim", "debian13", "ubuntu22-sim"]
    for bad in ("debian12,", "debian12,mixed", ",", "debian12;ubuntu24-sim"):
        with pytest.raises(LabError):
            distros_for(2, bad)


def test_the_lab_makes_a_key_for_the_ubuntu_archive_stand_in_as_the_tests_have_one():
    assert KEY_NAMES == ("docker", "nvidia", "rogue", "ubuntu")
    for name in KEY_NAMES:
        assert (REPO / "tests/harness/mirror/keys" / f"{name}-standin.public.asc").is_file()
        assert (REPO / "tests/harness/mirror/keys" / f"{name}-standin.secret.asc").is_file()


def test_lab_up_offers_the_simulated_ubuntu_hosts_and_refuses_others(tmp_path):
    from typer.testing import CliRunner

    from gpuhost_cli.cli import app

    help_text = CliRunner().invoke(app, ["lab", "up", "--help"], terminal_width=200).output
    assert "debian12|debian13|ubuntu22-sim|ubuntu24-sim|mixed[,...]" in help_text
    assert "simulated Ubuntu" in help_text
    result = CliRunner().invoke(app, ["lab", "up", "--distro", "ubuntu24", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    for choice in FOUR + ["mixed"]:
        assert choice in result.output


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


def test_lab_up_makes_the_mirror_keys_before_the_images(monkeypatch, tmp_path):
    """A simulated Ubuntu image carries the ubuntu-standin public key: keys first."""
    from gpuhost_cli.lab import Lab

    calls = []
    lab = Lab(state_dir=tmp_path, log=lambda message: None)
    monkeypatch.setattr(lab, "require_docker", lambda: calls.append("docker"))
    monkeypatch.setattr(lab, "ensure_mirror_keys", lambda: calls.append("keys") or FPRS)

    def images(distros):
        calls.append(("images", list(distros)))
        raise LabError("stop here")

    monkeypatch.setattr(lab, "ensure_images", images)
    with pytest.raises(LabError, match="stop here"):
        lab.up(4, "mixed")
    assert calls == ["docker", "keys", ("images", FOUR)]
