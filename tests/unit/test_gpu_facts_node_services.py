"""gpu_facts on NVSwitch systems (Fabric Manager) and nvidia-persistenced.

eight-gpus-driver is an HGX H100 with four NVSwitches, Fabric Manager at the driver's version
and nvidia-persistenced, both enabled and running; hgx-fabricmanager-mismatch and
hgx-persistence-off are the same machine with one thing wrong (tests/fixtures/gpu/README.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from plugin_loader import load_module

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gpu"
NVSWITCHES = ["0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"]
UNIT_ON = {"installed": True, "enabled": True, "masked": False}

gf = load_module("gpu_facts")


def facts(case):
    return gf.collect(str(FIXTURES / case))


def codes(gpu):
    return [f["code"] for f in gpu["findings"]]


def copy_of(tmp_path, case="eight-gpus-driver"):
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / case, root, symlinks=True)
    return root


def drop_dpkg_package(root, name):
    status = root / "var/lib/dpkg/status"
    stanzas = status.read_text().split("\n\n")
    status.write_text("\n\n".join(s for s in stanzas if not s.strip().startswith("Package: %s\n" % name)))


def test_nvswitch_system_with_matching_fabric_manager():
    gpu = facts("eight-gpus-driver")
    assert gpu["nvswitch"] == {
        "count": 4,
        "addresses": NVSWITCHES,
        "fabricmanager": {"installed": True, "package": "nvidia-fabricmanager-550", "version": "550.54.15-1",
                          "unit": UNIT_ON, "running": True, "version_matches": True},
    }
    assert gpu["toolkit"]["persistenced"] == dict(UNIT_ON, running=True, socket=False)
    # The NVSwitches are bridges: not counted as GPUs.
    assert len(gpu["pci_gpus"]) == 8
    assert gpu["findings"] == []
    assert gpu["summary"].endswith(", 4 NVSwitches")


def test_fabric_manager_of_another_version_is_an_error():
    gpu = facts("hgx-fabricmanager-mismatch")
    fm = gpu["nvswitch"]["fabricmanager"]
    assert (fm["version"], fm["running"], fm["version_matches"]) == ("550.90.07-1", False, False)
    assert codes(gpu) == ["fabricmanager_version_mismatch"]
    (finding,) = gpu["findings"]
    assert finding["severity"] == "error"
    message = finding["message"]
    assert message.startswith("NVIDIA Fabric Manager nvidia-fabricmanager-550 550.90.07-1 does not match the "
                              "loaded driver 550.54.15 on this system with 4 NVSwitches")
    assert '"system not yet initialized"' in message
    assert "install nvidia-fabricmanager-550 at exactly 550.54.15" in message
    assert "apt install nvidia-fabricmanager-550=550.54.15-<revision>" in message
    assert message.endswith("then systemctl restart nvidia-fabricmanager.")


def test_persistence_off_is_a_warning():
    gpu = facts("hgx-persistence-off")
    assert gpu["toolkit"]["persistenced"] == {"running": False, "socket": False, "installed": True,
                                              "enabled": False, "masked": False}
    assert codes(gpu) == ["persistenced_not_running"]
    (finding,) = gpu["findings"]
    assert finding["severity"] == "warning"
    assert finding["message"].startswith("nvidia-persistenced is installed but not running "
                                         "(nvidia-persistenced.service is not enabled), so persistence mode is off")
    assert "systemctl enable --now nvidia-persistenced" in finding["message"]
    assert "nvidia_container_toolkit_persistenced: true" in finding["message"]


def test_stopped_fabric_manager_is_an_error(tmp_path):
    root = copy_of(tmp_path)
    shutil.rmtree(root / "proc/2417")
    (root / "etc/systemd/system/multi-user.target.wants/nvidia-fabricmanager.service").unlink()
    gpu = gf.collect(str(root))
    assert gpu["nvswitch"]["fabricmanager"]["unit"] == {"installed": True, "enabled": False, "masked": False}
    assert codes(gpu) == ["fabricmanager_not_running"]
    (finding,) = gpu["findings"]
    assert finding["severity"] == "error"
    assert "nvidia-fabricmanager.service is not enabled) on this system with 4 NVSwitches" in finding["message"]
    assert "systemctl enable --now nvidia-fabricmanager" in finding["message"]


def test_masked_fabric_manager_says_so(tmp_path):
    root = copy_of(tmp_path)
    shutil.rmtree(root / "proc/2417")
    (root / "etc/systemd/system/nvidia-fabricmanager.service").symlink_to("/dev/null")
    gpu = gf.collect(str(root))
    assert codes(gpu) == ["fabricmanager_not_running"]
    assert "nvidia-fabricmanager.service is masked" in gpu["findings"][0]["message"]


def test_missing_fabric_manager_is_an_error(tmp_path):
    root = copy_of(tmp_path)
    drop_dpkg_package(root, "nvidia-fabricmanager-550")
    gpu = gf.collect(str(root))
    fm = gpu["nvswitch"]["fabricmanager"]
    assert (fm["installed"], fm["package"], fm["version"], fm["version_matches"]) == (False, None, None, None)
    assert codes(gpu) == ["fabricmanager_missing"]
    message = gpu["findings"][0]["message"]
    assert message.startswith("4 NVSwitches found on the PCI bus (an HGX or DGX system), but NVIDIA Fabric Manager "
                              "is not installed")
    assert "install nvidia-fabricmanager-550 at exactly 550.54.15" in message


def test_systems_without_nvswitches_are_not_judged(tmp_path):
    """Fabric Manager is reported everywhere but only NVSwitch systems need it."""
    root = copy_of(tmp_path)
    for address in NVSWITCHES:
        shutil.rmtree(root / "sys/bus/pci/devices" / address)
    drop_dpkg_package(root, "nvidia-fabricmanager-550")
    gpu = gf.collect(str(root))
    assert (gpu["nvswitch"]["count"], gpu["nvswitch"]["addresses"]) == (0, [])
    assert gpu["findings"] == []
    assert "NVSwitch" not in gpu["summary"]


def test_without_a_loaded_driver_only_the_driver_is_reported(tmp_path):
    root = copy_of(tmp_path, "hgx-fabricmanager-mismatch")
    (root / "proc/driver/nvidia/version").unlink()
    (root / "proc/modules").write_text("")
    gpu = gf.collect(str(root))
    assert gpu["nvswitch"]["fabricmanager"]["version_matches"] is None
    assert "fabricmanager_version_mismatch" not in codes(gpu)
    assert "driver_not_loaded" in codes(gpu)


def test_persistenced_without_its_unit_is_not_judged():
    """Without the unit there is no telling whether persistence mode was set another way."""
    gpu = facts("h200-captured")
    assert gpu["toolkit"]["persistenced"]["installed"] is False
    assert "persistenced_not_running" not in codes(gpu)


@pytest.mark.parametrize("class_id, counted", [("0x068000", True), ("0x068001", True), ("0x060400", False),
                                               ("0x030200", False)])
def test_only_nvidia_bridges_of_class_0680_are_nvswitches(tmp_path, class_id, counted):
    base = tmp_path / "sys/bus/pci/devices/0000:05:00.0"
    base.mkdir(parents=True)
    (base / "vendor").write_text("0x10de\n")
    (base / "class").write_text(class_id + "\n")
    other = tmp_path / "sys/bus/pci/devices/0000:06:00.0"
    other.mkdir(parents=True)
    (other / "vendor").write_text("0x8086\n")
    (other / "class").write_text("0x068000\n")
    assert gf.pci_nvswitches(str(tmp_path)) == (["0000:05:00.0"] if counted else [])


@pytest.mark.parametrize("installed, driver, expected", [
    ({"nvidia-fabricmanager-550": "550.54.15-1"}, "550.54.15", ("nvidia-fabricmanager-550", True)),
    ({"nvidia-fabricmanager-550": "550.54.15-0ubuntu0.22.04.1"}, "550.54.15", ("nvidia-fabricmanager-550", True)),
    ({"nvidia-fabricmanager": "1:580.82.07-1"}, "580.82.07", ("nvidia-fabricmanager", True)),
    # Two branches: the one at the driver's version is the one that runs.
    ({"nvidia-fabricmanager-535": "535.183.01-1", "nvidia-fabricmanager-550": "550.54.15-1"}, "550.54.15",
     ("nvidia-fabricmanager-550", True)),
    ({"nvidia-fabricmanager-535": "535.183.01-1"}, "550.54.15", ("nvidia-fabricmanager-535", False)),
    ({"nvidia-fabricmanager-550": "550.54.15-1"}, None, ("nvidia-fabricmanager-550", None)),
    # Not Fabric Manager itself.
    ({"nvidia-fabricmanager-dev-550": "550.54.15-1", "cuda-drivers-fabricmanager-550": "550.54.15-1"},
     "550.54.15", (None, None)),
])
def test_fabric_manager_package_and_version(tmp_path, installed, driver, expected):
    fm = gf.fabricmanager_facts(str(tmp_path), installed, driver)
    assert (fm["package"], fm["version_matches"]) == expected
    assert fm["installed"] is (expected[0] is not None)
