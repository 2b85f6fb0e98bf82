"""Tests for the gpu_facts module.

The host trees under tests/fixtures/gpu are constructed fixtures (see the README there); their
usr/bin/nvidia-smi scripts print recorded output for the two nvidia-smi invocations the module makes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from plugin_loader import ModuleFail, load_module, run_adhoc, run_main


REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gpu"
ANSIBLE = REPO / ".venv" / "bin" / "ansible"
CASES = ("no-gpu", "one-gpu-no-driver", "eight-gpus-driver", "nouveau", "mig-enabled", "smi-fails", "h200-captured",
         "ubuntu-archive-precompiled", "ubuntu-ppa-dkms", "ubuntu-pending-reboot", "hgx-fabricmanager-mismatch",
         "hgx-persistence-off")
CAPTURED = REPO / "tests" / "fixtures" / "gpu-captured"

SMI_QUERY = ("--query-gpu=index,name,uuid,memory.total,driver_version,mig.mode.current,pci.bus_id",
             "--format=csv,noheader,nounits")
SUPPORTED_LIST = "Debian 12 (bookworm), Debian 13 (trixie), Ubuntu 22.04 (jammy), Ubuntu 24.04 (noble)"
SMI_COMM_ERROR = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                  "Make sure that the latest NVIDIA driver is installed and running.")
H100_ADDRESSES = ["0000:1b:00.0", "0000:43:00.0", "0000:52:00.0", "0000:61:00.0",
                  "0000:9d:00.0", "0000:c3:00.0", "0000:d1:00.0", "0000:df:00.0"]

gf = load_module("gpu_facts")

# What a tree without any toolkit files reports about how the toolkit would give containers GPUs.
NO_TOOLKIT_FILES = {
    "runtime_config": {"path": "/etc/nvidia-container-runtime/config.toml", "present": False, "error": None,
                       "mode": "auto", "accept_envvar_unprivileged": True, "accept_volume_mounts": False},
    "cdi": {"specs": [], "devices": [], "source": None, "errors": []},
    "cdi_refresh": {"path": {"installed": False, "enabled": False, "masked": False},
                    "service": {"installed": False, "enabled": False, "masked": False}},
    "persistenced": {"running": False, "socket": False, "installed": False, "enabled": False, "masked": False},
}
NO_TOOLKIT = dict({"installed": False, "version": None, "packages": {}, "security_floor": "1.17.8",
                   "below_security_floor": False, "missing_fixes": [], "isolation": None}, **NO_TOOLKIT_FILES)


def facts(case, **kw):
    return gf.collect(str(FIXTURES / case), **kw)


def codes(gpu):
    return [f["code"] for f in gpu["findings"]]


# ---------------------------------------------------------------------------
# Helpers for building trees
# ---------------------------------------------------------------------------

def write(root, rel, text, mode=0o644):
    path = Path(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    path.chmod(mode)
    return path


def add_device(root, address, vendor, device, pci_class, driver=None):
    base = Path(root) / "sys/bus/pci/devices" / address
    write(root, base / "vendor", vendor + "\n")
    write(root, base / "device", device + "\n")
    write(root, base / "class", pci_class + "\n")
    if driver:
        (base / "driver").symlink_to("../../../../bus/pci/drivers/" + driver)


def smi_script(root, body, rel="usr/bin/nvidia-smi"):
    return write(root, rel, "#!/bin/sh\n" + body, 0o755)


# ---------------------------------------------------------------------------
# The fixture trees
# ---------------------------------------------------------------------------

def test_no_gpu():
    gpu = facts("no-gpu")
    assert gpu["pci_gpus"] == []
    assert gpu["distribution"] == {
        "id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)",
        "codename": "bookworm", "source": "/etc/os-release", "supported": True,
        "supported_list": SUPPORTED_LIST,
    }
    assert gpu["driver"] == {"loaded": False, "version": None, "flavor": None, "nouveau_loaded": False,
                             "packages": {}, "packaging": None}
    assert gpu["nvidia_smi"]["available"] is False
    assert gpu["nvidia_smi"]["path"] is None
    assert gpu["nvidia_smi"]["error"] == "nvidia-smi was not found"
    assert gpu["nvidia_smi"]["gpus"] == []
    assert gpu["toolkit"] == NO_TOOLKIT
    assert gpu["docker"]["installed"] is False
    assert gpu["docker"]["version"] is None
    assert gpu["problems"] == []
    assert gpu["findings"] == []
    assert gpu["summary"] == "no NVIDIA GPU found"


def test_one_gpu_no_driver():
    gpu = facts("one-gpu-no-driver")
    assert gpu["distribution"]["id"] == "debian"
    assert gpu["distribution"]["version_id"] == "13"
    assert gpu["distribution"]["codename"] == "trixie"
    assert gpu["distribution"]["supported"] is True
    assert gpu["pci_gpus"] == [{
        "address": "0000:41:00.0", "device_id": "0x27b8", "class": "0x030200",
        "driver": None, "model": "NVIDIA L4",
    }]
    assert gpu["driver"]["loaded"] is False
    assert gpu["driver"]["nouveau_loaded"] is False
    assert codes(gpu) == ["driver_not_loaded"]
    assert gpu["findings"][0]["severity"] == "error"
    assert gpu["problems"] == [
        "1 NVIDIA GPU(s) found on the PCI bus but the NVIDIA driver is not loaded: containers will not "
        "see them. Install the driver (Debian: enable the contrib, non-free and non-free-firmware "
        "components, then apt install linux-headers-amd64 nvidia-driver firmware-misc-nonfree) and reboot."
    ]
    assert gpu["summary"] == "1 GPU (NVIDIA L4), NVIDIA driver not loaded"


def test_eight_gpus_with_driver():
    gpu = facts("eight-gpus-driver")
    dist = gpu["distribution"]
    assert (dist["id"], dist["version_id"], dist["codename"], dist["supported"]) == ("ubuntu", "22.04", "jammy", True)
    assert dist["pretty_name"] == "Ubuntu 22.04.4 LTS"

    # Only the eight 3D controllers: not the audio function, the NVSwitches or the ASPEED VGA.
    assert [g["address"] for g in gpu["pci_gpus"]] == H100_ADDRESSES
    for g in gpu["pci_gpus"]:
        assert g == {"address": g["address"], "device_id": "0x2330", "class": "0x030200",
                     "driver": "nvidia", "model": "NVIDIA H100 SXM5 80GB"}

    # A driver without dpkg packages (NVIDIA's .run installer): nothing to say about its packaging.
    assert gpu["driver"] == {"loaded": True, "version": "550.54.15", "flavor": "proprietary",
                             "nouveau_loaded": False, "packages": {}, "packaging": None}

    smi = gpu["nvidia_smi"]
    assert smi["available"] is True
    assert smi["error"] is None
    assert smi["exit_status"] is None
    assert smi["path"] == str(FIXTURES / "eight-gpus-driver/usr/bin/nvidia-smi")
    assert smi["cuda_version"] == "12.4"
    assert smi["driver_version"] == "550.54.15"
    assert [g["index"] for g in smi["gpus"]] == list(range(8))
    assert smi["gpus"][0] == {
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0a1b2c3d-0000-4000-8000-000000000000",
        "memory_mib": 81559, "driver_version": "550.54.15", "mig_mode": "Disabled",
        "pci_bus_id": "00000000:1B:00.0", "pci_address": "0000:1b:00.0",
    }
    assert [g["pci_address"] for g in smi["gpus"]] == H100_ADDRESSES
    assert all(g["memory_mib"] == 81559 and g["mig_mode"] == "Disabled" for g in smi["gpus"])

    assert gpu["toolkit"] == {
        "installed": True, "version": "1.17.8-1",
        "packages": {"nvidia-container-toolkit": "1.17.8-1", "nvidia-container-toolkit-base": "1.17.8-1",
                     "libnvidia-container-tools": "1.17.8-1", "libnvidia-container1": "1.17.8-1"},
        "security_floor": "1.17.8", "below_security_floor": False, "missing_fixes": [],
        # No config.toml: NVIDIA's defaults, which let any container ask for GPUs by the variable.
        "isolation": "envvar",
        **dict(NO_TOOLKIT_FILES, persistenced={"running": True, "socket": False, "installed": True,
                                               "enabled": True, "masked": False}),
    }
    docker = gpu["docker"]
    assert docker["installed"] is True
    # The engine is only asked on the host itself.
    assert (docker["version"], docker["running"], docker["default_runtime"], docker["runtimes"]) == (None,) * 4
    assert docker["configured_default_runtime"] == "nvidia"
    assert docker["configured_runtimes"] == ["nvidia"]
    assert docker["daemon_json_error"] is None
    assert (docker["configured_cdi"], docker["recorded_version"]) == (None, None)
    assert (docker["cdi_supported"], docker["cdi_enabled"]) == (None, None)

    assert gpu["problems"] == []
    assert gpu["summary"] == "8 GPUs (NVIDIA H100 80GB HBM3), driver 550.54.15, CUDA 12.4, 4 NVSwitches"


def test_nouveau():
    gpu = facts("nouveau")
    assert gpu["pci_gpus"] == [{
        "address": "0000:65:00.0", "device_id": "0x2230", "class": "0x030000",
        "driver": "nouveau", "model": "NVIDIA RTX A6000",
    }]
    assert gpu["driver"] == {"loaded": False, "version": None, "flavor": None, "nouveau_loaded": True,
                             "packages": {}, "packaging": None}
    assert codes(gpu) == ["nouveau_loaded", "driver_not_loaded"]
    nouveau = gpu["problems"][0]
    assert nouveau.startswith("nouveau is loaded (bound to 0000:65:00.0) and blocks the NVIDIA driver: blacklist it (")
    assert "blacklist nouveau" in nouveau and "update-initramfs -u" in nouveau
    assert nouveau.endswith("Installing the NVIDIA driver packages usually adds this blacklist too.")
    assert "and reboot." in nouveau
    assert gpu["problems"][1].startswith("1 NVIDIA GPU(s) found on the PCI bus but the NVIDIA driver is not loaded")
    assert gpu["summary"] == "1 GPU (NVIDIA RTX A6000), NVIDIA driver not loaded (nouveau in use)"


def test_mig_enabled():
    gpu = facts("mig-enabled")
    assert gpu["distribution"]["version_id"] == "24.04"
    assert gpu["distribution"]["supported"] is True
    assert [g["model"] for g in gpu["pci_gpus"]] == ["NVIDIA A100 SXM4 80GB"] * 2
    assert gpu["driver"] == {"loaded": True, "version": "550.90.07", "flavor": "open", "nouveau_loaded": False,
                             "packages": {}, "packaging": None}
    smi = gpu["nvidia_smi"]
    assert [(g["index"], g["mig_mode"], g["memory_mib"]) for g in smi["gpus"]] == [
        (0, "Enabled", 81920), (1, "Disabled", 81920)]
    assert smi["cuda_version"] == "12.4"
    assert codes(gpu) == ["mig_enabled"]
    finding = gpu["findings"][0]
    assert finding["severity"] == "info"
    assert finding["message"].startswith("For information: MIG mode is enabled on GPU 0 (NVIDIA A100-SXM4-80GB).")
    assert "--gpus all" in finding["message"]
    assert "--gpus '\"device=0:0\"'" in finding["message"]
    assert "nvidia-smi -i 0 -mig 0" in finding["message"]
    # Removed but not purged: not installed.
    assert gpu["toolkit"] == NO_TOOLKIT
    assert gpu["summary"] == "2 GPUs (NVIDIA A100-SXM4-80GB), driver 550.90.07, CUDA 12.4, MIG enabled on 1 of 2"


def test_smi_fails_on_unsupported_distribution():
    gpu = facts("smi-fails")
    dist = gpu["distribution"]
    assert (dist["id"], dist["version_id"], dist["pretty_name"], dist["codename"]) == (
        "centos", "7", "CentOS Linux 7 (Core)", None)
    assert dist["supported"] is False
    assert gpu["driver"]["loaded"] is True
    assert gpu["driver"]["version"] == "535.183.01"
    assert gpu["pci_gpus"][0]["model"] == "NVIDIA Tesla T4"
    smi = gpu["nvidia_smi"]
    assert smi["available"] is False
    assert smi["exit_status"] == 9
    assert smi["error"] == SMI_COMM_ERROR
    assert smi["gpus"] == []
    assert smi["cuda_version"] is None
    assert gpu["toolkit"]["installed"] is False
    assert codes(gpu) == ["unsupported_distribution", "nvidia_smi_failed"]
    assert gpu["problems"][0] == (
        "CentOS Linux 7 (Core) is not supported: gpuhost supports " + SUPPORTED_LIST
        + ". Reinstall the host with one of these before provisioning it.")
    assert gpu["problems"][1].startswith(
        "The NVIDIA driver (535.183.01) is loaded but nvidia-smi fails (exit status 9): " + SMI_COMM_ERROR + " ")
    assert "reboot" in gpu["problems"][1]
    assert gpu["summary"] == "1 GPU (NVIDIA Tesla T4), driver 535.183.01, nvidia-smi fails"


def test_captured_h200_tree_reads_as_the_real_host_did():
    """The tree copied from a real H200 host gives the facts the module reported on that host."""
    recorded = json.loads((CAPTURED / "facts-module.json").read_text())["gpu"]
    gpu = facts("h200-captured")
    assert gpu["summary"] == recorded["summary"] == "1 GPU (NVIDIA H200), driver 580.159.04, CUDA 13.0"
    for key in ("distribution", "pci_gpus", "findings", "problems"):
        assert gpu[key] == recorded[key], key
    # The driver's packaging came later than the recording; the copied dpkg status has no driver packages.
    assert {k: gpu["driver"][k] for k in recorded["driver"]} == recorded["driver"]
    # The security floor's keys came later than the recording; the host had no toolkit.
    assert {k: gpu["toolkit"][k] for k in recorded["toolkit"]} == recorded["toolkit"]
    assert gpu["toolkit"] == NO_TOOLKIT
    smi = dict(gpu["nvidia_smi"], path=None)
    assert smi == dict(recorded["nvidia_smi"], path=None)
    assert recorded["nvidia_smi"]["path"] == "/usr/local/nvidia/bin/nvidia-smi"
    assert smi["gpus"][0]["memory_mib"] == 143771 and smi["gpus"][0]["pci_address"] == "0000:00:06.0"
    assert gpu["driver"] == {"loaded": True, "version": "580.159.04", "flavor": "open", "nouveau_loaded": False,
                             "packages": {}, "packaging": None}
    assert gpu["pci_gpus"] == [{"address": "0000:00:06.0", "device_id": "0x2335", "class": "0x030200",
                                "driver": "nvidia", "model": "NVIDIA H200 SXM 141GB"}]
    # Docker was not installed there; under another root the engine is never asked.
    assert recorded["docker"]["installed"] is False and gpu["docker"]["installed"] is False


def test_captured_cli_output_matches_the_module():
    """gpuhost facts on the real host carried the module's facts unchanged."""
    module = json.loads((CAPTURED / "facts-module.json").read_text())["gpu"]
    cli = json.loads((CAPTURED / "facts-cli.json").read_text())
    (host,) = cli["hosts"].values()
    assert host["status"] == "ok" and host["error"] is None
    assert host["facts"]["summary"] == module["summary"]
    assert host["facts"]["nvidia_smi"]["gpus"] == module["nvidia_smi"]["gpus"]


def test_capture_script_reproduces_a_tree(tmp_path):
    """capture_gpu_tree.py, pointed at a fixture tree as if it were a host, copies what gpu_facts reads."""
    source = FIXTURES / "eight-gpus-driver"
    subprocess.run([sys.executable, str(REPO / "tests/harness/capture_gpu_tree.py"), str(tmp_path / "copy"),
                    "--source-root", str(source), "--nvidia-smi", str(source / "usr/bin/nvidia-smi")],
                   check=True, capture_output=True)
    original, copy = facts("eight-gpus-driver"), gf.collect(str(tmp_path / "copy"))
    for key in ("distribution", "pci_gpus", "driver", "toolkit", "nvswitch", "findings", "summary"):
        assert copy[key] == original[key], key
    assert copy["nvswitch"]["fabricmanager"]["running"] and copy["toolkit"]["persistenced"]["enabled"]
    assert copy["nvidia_smi"]["gpus"] == original["nvidia_smi"]["gpus"]
    assert copy["docker"]["configured_default_runtime"] == "nvidia"
    other = subprocess.run([str(tmp_path / "copy/usr/bin/nvidia-smi"), "-L"], capture_output=True, text=True)
    assert other.returncode == 2 and "no recording for: -L" in other.stderr


def test_capture_script_keeps_the_driver_packaging(tmp_path):
    """The copy keeps the running kernel's release and the dpkg stanzas of the driver's packages and the
    kernel images, so it reads with the same packaging and findings; other packages are left out."""
    source = FIXTURES / "ubuntu-pending-reboot"
    subprocess.run([sys.executable, str(REPO / "tests/harness/capture_gpu_tree.py"), str(tmp_path / "copy"),
                    "--source-root", str(source), "--nvidia-smi", str(source / "usr/bin/nvidia-smi")],
                   check=True, capture_output=True)
    original, copy = facts("ubuntu-pending-reboot"), gf.collect(str(tmp_path / "copy"))
    for key in ("distribution", "driver", "findings", "summary"):
        assert copy[key] == original[key], key
    assert (tmp_path / "copy/proc/sys/kernel/osrelease").read_text() == "5.15.0-105-generic\n"
    packaging = copy["driver"]["packaging"]
    assert (packaging["kernel"], packaging["newest_kernel"], packaging["source"]) == (
        "5.15.0-105-generic", "5.15.0-107-generic", "ubuntu-archive")
    assert codes(copy) == ["nvidia_smi_failed", "precompiled_modules_missing", "driver_version_mismatch"]
    status = (tmp_path / "copy/var/lib/dpkg/status").read_text()
    kept = [line[len("Package: "):] for line in status.splitlines() if line.startswith("Package: ")]
    assert kept == ["linux-image-5.15.0-105-generic", "linux-image-5.15.0-107-generic", "nvidia-driver-550-server",
                    "nvidia-utils-550-server", "libnvidia-compute-550-server", "nvidia-kernel-common-550-server",
                    "linux-modules-nvidia-550-server-5.15.0-105-generic", "linux-signatures-nvidia-5.15.0-105-generic"]


@pytest.mark.parametrize("case", CASES)
def test_every_fixture_is_consistent(case):
    gpu = facts(case)
    assert gpu["root"] == str(FIXTURES / case)
    assert gpu["problems"] == [f["message"] for f in gpu["findings"]]
    assert all(f["severity"] in ("error", "warning", "info") for f in gpu["findings"])
    assert isinstance(gpu["summary"], str) and "\n" not in gpu["summary"]
    json.dumps(gpu)  # plain data only


def test_stand_in_only_answers_the_two_invocations():
    smi = str(FIXTURES / "eight-gpus-driver/usr/bin/nvidia-smi")
    assert subprocess.run([smi, *SMI_QUERY], capture_output=True).returncode == 0
    assert subprocess.run([smi], capture_output=True).returncode == 0
    other = subprocess.run([smi, "-L"], capture_output=True, text=True)
    assert other.returncode == 2
    assert "no recorded output" in other.stderr


# ---------------------------------------------------------------------------
# The module's main(), in-process
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("check_mode", [False, True])
def test_main_returns_facts_and_changes_nothing(check_mode):
    result = run_main(gf, {"root": str(FIXTURES / "eight-gpus-driver")}, check_mode=check_mode)
    assert result["changed"] is False
    assert result["ansible_facts"]["gpuhost_gpu"] == result["gpu"]
    assert result["gpu"] == facts("eight-gpus-driver")


def test_main_refuses_a_root_that_is_not_a_directory(tmp_path):
    with pytest.raises(ModuleFail) as outcome:
        run_main(gf, {"root": str(tmp_path / "missing")})
    assert outcome.value.result["msg"] == "root %s is not a directory." % (tmp_path / "missing")


def test_main_refuses_a_timeout_below_one():
    with pytest.raises(ModuleFail) as outcome:
        run_main(gf, {"root": str(FIXTURES / "no-gpu"), "timeout": 0})
    assert "timeout must be a positive number" in outcome.value.result["msg"]


# ---------------------------------------------------------------------------
# nvidia-smi: explicit path, missing, failing, hanging, garbage
# ---------------------------------------------------------------------------

def test_explicit_nvidia_smi_is_used_as_given():
    failing = str(FIXTURES / "smi-fails/usr/bin/nvidia-smi")
    gpu = facts("eight-gpus-driver", nvidia_smi=failing)
    assert gpu["nvidia_smi"]["path"] == failing
    assert gpu["nvidia_smi"]["exit_status"] == 9
    assert codes(gpu) == ["nvidia_smi_failed"]
    assert gpu["summary"] == "8 GPUs (NVIDIA H100 SXM5 80GB), driver 550.54.15, nvidia-smi fails, 4 NVSwitches"


def test_explicit_nvidia_smi_that_does_not_exist(tmp_path):
    gpu = facts("mig-enabled", nvidia_smi=str(tmp_path / "nvidia-smi"))
    assert gpu["nvidia_smi"]["available"] is False
    assert gpu["nvidia_smi"]["error"] == "%s is not an executable file" % (tmp_path / "nvidia-smi")
    assert codes(gpu) == ["nvidia_smi_failed"]


def test_driver_loaded_without_nvidia_smi(tmp_path):
    shutil.copytree(FIXTURES / "eight-gpus-driver", tmp_path / "root", symlinks=True)
    (tmp_path / "root/usr/bin/nvidia-smi").unlink()
    gpu = gf.collect(str(tmp_path / "root"))
    assert gpu["nvidia_smi"]["path"] is None
    assert codes(gpu) == ["nvidia_smi_missing"]
    assert gpu["findings"][0]["severity"] == "warning"
    assert "apt install nvidia-smi" in gpu["problems"][0]
    assert gpu["summary"] == "8 GPUs (NVIDIA H100 SXM5 80GB), driver 550.54.15, nvidia-smi not found, 4 NVSwitches"


def test_nvidia_smi_that_hangs_is_stopped(tmp_path):
    smi = smi_script(tmp_path, "exec sleep 30\n")
    gpu = gf.collect(str(tmp_path), nvidia_smi=str(smi), timeout=1)
    assert gpu["nvidia_smi"]["available"] is False
    assert gpu["nvidia_smi"]["error"] == "nvidia-smi did not finish within 1 seconds"


def test_nvidia_smi_printing_garbage(tmp_path):
    smi_script(tmp_path, "echo 'this is not csv'\nprintf '\\377\\376 binary'\n")
    gpu = gf.collect(str(tmp_path))
    assert gpu["nvidia_smi"]["available"] is False
    assert gpu["nvidia_smi"]["error"] == "unexpected output from nvidia-smi --query-gpu: this is not csv"


def test_nvidia_smi_that_cannot_be_run(tmp_path):
    write(tmp_path, "usr/bin/nvidia-smi", b"\x7fELF garbage", 0o755)
    gpu = gf.collect(str(tmp_path))
    assert gpu["nvidia_smi"]["available"] is False
    assert gpu["nvidia_smi"]["error"].startswith("cannot run %s: " % (tmp_path / "usr/bin/nvidia-smi"))


def test_nvidia_smi_that_is_not_executable(tmp_path):
    write(tmp_path, "usr/bin/nvidia-smi", "#!/bin/sh\nexit 0\n", 0o644)
    gpu = gf.collect(str(tmp_path))
    assert gpu["nvidia_smi"]["error"] == "%s is not an executable file" % (tmp_path / "usr/bin/nvidia-smi")


def test_nvidia_smi_without_cuda_header(tmp_path):
    smi_script(tmp_path, 'if [ $# -eq 0 ]; then exit 3; fi\n'
                         'echo "0, NVIDIA L4, GPU-1, 23034, 570.86.15, [N/A], 00000000:41:00.0"\n')
    smi = gf.collect(str(tmp_path))["nvidia_smi"]
    assert smi["available"] is True
    assert smi["cuda_version"] is None
    assert smi["gpus"][0]["mig_mode"] is None
    assert smi["driver_version"] == "570.86.15"


def test_gpus_missing_from_nvidia_smi(tmp_path):
    add_device(tmp_path, "0000:41:00.0", "0x10de", "0x27b8", "0x030200", "nvidia")
    add_device(tmp_path, "0000:42:00.0", "0x10de", "0x27b8", "0x030200", "vfio-pci")
    write(tmp_path, "proc/modules", "nvidia 54050816 0 - Live 0x0000000000000000 (POE)\n")
    smi_script(tmp_path, 'echo "0, NVIDIA L4, GPU-1, 23034, 550.54.15, [N/A], 00000000:41:00.0"\n')
    gpu = gf.collect(str(tmp_path))
    assert "gpus_missing_from_nvidia_smi" in codes(gpu)
    message = gpu["problems"][codes(gpu).index("gpus_missing_from_nvidia_smi")]
    assert message.startswith("2 NVIDIA GPU(s) are on the PCI bus but nvidia-smi lists only 1 "
                              "(other drivers on the bus: vfio-pci)")


# ---------------------------------------------------------------------------
# Odd input: missing, unreadable and garbage files never make the module fail
# ---------------------------------------------------------------------------

def test_empty_root(tmp_path):
    gpu = gf.collect(str(tmp_path))
    assert gpu["distribution"]["id"] is None
    assert gpu["distribution"]["source"] is None
    assert gpu["distribution"]["supported"] is False
    assert gpu["pci_gpus"] == []
    assert gpu["driver"] == {"loaded": False, "version": None, "flavor": None, "nouveau_loaded": False,
                             "packages": {}, "packaging": None}
    assert gpu["toolkit"]["installed"] is False
    assert codes(gpu) == ["unknown_distribution"]
    assert gpu["problems"][0] == ("The distribution is unknown: /etc/os-release is missing or has no ID. "
                                  "gpuhost supports %s." % SUPPORTED_LIST)
    assert gpu["summary"] == "no NVIDIA GPU found"


def test_garbage_everywhere(tmp_path):
    write(tmp_path, "etc/os-release", b"\x00\xff\xfe=garbage\nID\n=\n")
    base = "sys/bus/pci/devices/"
    write(tmp_path, base + "0000:01:00.0/vendor", "garbage")
    write(tmp_path, base + "0000:01:00.0/class", "0x030200")
    write(tmp_path, base + "0000:02:00.0/vendor", "0x10de")
    write(tmp_path, base + "0000:02:00.0/class", "")
    write(tmp_path, base + "0000:03:00.0/vendor", "0x10DE\n")
    write(tmp_path, base + "0000:03:00.0/class", "0x030200\n")          # no device file
    (tmp_path / base / "0000:03:00.0/driver").symlink_to("driver")      # a loop
    write(tmp_path, base + "0000:04:00.0", "a file, not a directory")
    write(tmp_path, "proc/modules", b"\xff\xfe\x00 nvidia\n\n   \n")
    write(tmp_path, "proc/driver/nvidia/version", "NVRM version: something else entirely\n")
    write(tmp_path, "var/lib/dpkg/status", "Package nvidia-container-toolkit\n\x00\n:\n\n\nStatus:")
    write(tmp_path, "etc/docker/daemon.json", "{not json")
    write(tmp_path, "usr/share/misc/pci.ids", b"\t\t\x00\n10de\n\tzzzz  nonsense\n")

    gpu = gf.collect(str(tmp_path))
    assert gpu["distribution"]["id"] is None
    assert gpu["pci_gpus"] == [{"address": "0000:03:00.0", "device_id": None, "class": "0x030200",
                                "driver": "driver", "model": "NVIDIA device (unknown ID)"}]
    assert gpu["driver"]["loaded"] is True   # the version file exists
    assert gpu["driver"]["version"] is None
    assert gpu["toolkit"]["installed"] is False
    assert gpu["docker"]["daemon_json_error"].startswith("/etc/docker/daemon.json is not valid JSON: ")
    assert gpu["docker"]["configured_default_runtime"] is None
    json.dumps(gpu)


def test_directories_and_fifos_where_files_belong(tmp_path):
    (tmp_path / "etc/os-release").mkdir(parents=True)
    (tmp_path / "proc").mkdir()
    os.mkfifo(tmp_path / "proc/modules")
    (tmp_path / "var/lib/dpkg/status").mkdir(parents=True)
    (tmp_path / "sys/bus/pci/devices/0000:01:00.0/vendor").mkdir(parents=True)
    gpu = gf.collect(str(tmp_path))  # a FIFO must not block
    assert gpu["distribution"]["id"] is None
    assert gpu["pci_gpus"] == []
    assert gpu["driver"]["loaded"] is False


def test_pci_devices_path_is_a_file(tmp_path):
    write(tmp_path, "sys/bus/pci/devices", "not a directory")
    assert gf.collect(str(tmp_path))["pci_gpus"] == []


def test_unreadable_files(tmp_path, monkeypatch):
    shutil.copytree(FIXTURES / "eight-gpus-driver", tmp_path / "root", symlinks=True)
    root = tmp_path / "root"
    denied = {str(root / rel) for rel in (
        "etc/os-release", "proc/modules", "var/lib/dpkg/status", "etc/docker/daemon.json",
        "sys/bus/pci/devices/0000:43:00.0/vendor")}

    real_open = open

    def guarded_open(path, *args, **kwargs):
        if str(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(gf, "open", guarded_open, raising=False)
    gpu = gf.collect(str(root))
    assert gpu["distribution"]["id"] is None
    assert len(gpu["pci_gpus"]) == 7
    assert gpu["driver"]["loaded"] is True and gpu["driver"]["version"] == "550.54.15"
    assert gpu["toolkit"]["installed"] is False
    assert gpu["docker"]["daemon_json_error"] == "cannot read /etc/docker/daemon.json"


def test_daemon_json_that_is_not_an_object(tmp_path):
    write(tmp_path, "etc/docker/daemon.json", '["nvidia"]')
    docker = gf.collect(str(tmp_path))["docker"]
    assert docker["daemon_json_error"] == "/etc/docker/daemon.json is not a JSON object"
    write(tmp_path, "etc/docker/daemon.json", '{"default-runtime": 7, "runtimes": "nvidia"}')
    docker = gf.collect(str(tmp_path))["docker"]
    assert (docker["configured_default_runtime"], docker["configured_runtimes"], docker["daemon_json_error"]) == (
        None, None, None)


_TREE_FILES = ("etc/os-release", "proc/modules", "proc/driver/nvidia/version", "var/lib/dpkg/status",
               "etc/docker/daemon.json", "usr/share/misc/pci.ids",
               "sys/bus/pci/devices/0000:01:00.0/vendor", "sys/bus/pci/devices/0000:01:00.0/device",
               "sys/bus/pci/devices/0000:01:00.0/class", "etc/nvidia-container-runtime/config.toml",
               "var/run/cdi/nvidia.yaml", "etc/cdi/vendor.json", "etc/ansible/facts.d/gpuhost_docker.fact",
               "proc/1/comm")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_TREE_FILES), st.binary(max_size=200)))
def test_random_file_contents_never_break_collection(contents):
    with tempfile.TemporaryDirectory() as root:
        for rel, data in contents.items():
            write(root, rel, data)
        gpu = gf.collect(root)
        json.dumps(gpu)
        assert isinstance(gpu["summary"], str)


# ---------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------

def test_parse_os_release_quoting():
    values = gf.parse_os_release(
        '# comment\nID="ubuntu"\nVERSION_ID=\'24.04\'\nPRETTY_NAME="Say \\"hi\\""\n'
        'BAD LINE\n=x\nVERSION_CODENAME=noble\n')
    assert values == {"ID": "ubuntu", "VERSION_ID": "24.04", "PRETTY_NAME": 'Say "hi"', "VERSION_CODENAME": "noble"}


@pytest.mark.parametrize("dist_id, version, supported", [
    ("debian", "12", True), ("debian", "13", True), ("ubuntu", "22.04", True), ("ubuntu", "24.04", True),
    ("debian", "11", False), ("ubuntu", "20.04", False), ("ubuntu", "24.10", False), ("centos", "7", False),
    (None, None, False),
])
def test_supported_distributions(dist_id, version, supported):
    assert gf.is_supported(dist_id, version) is supported


def test_os_release_fallback_to_usr_lib(tmp_path):
    write(tmp_path, "usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\n")
    dist = gf.collect(str(tmp_path))["distribution"]
    assert (dist["id"], dist["version_id"], dist["source"], dist["supported"]) == (
        "debian", "12", "/usr/lib/os-release", True)


@pytest.mark.parametrize("text, expected", [
    ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n",
     ("550.54.15", "proprietary")),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  "
     "(dvs-builder@U16-I3-B03-4-3)  Tue Mar  5 22:19:35 UTC 2024\n", ("550.54.15", "open")),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  570.124.06  Release Build\n", ("570.124.06", "open")),
    ("NVRM version: NVIDIA UNIX aarch64 Kernel Module  535.104.05  Sat Aug 19 01:13:02 UTC 2023\n",
     ("535.104.05", "proprietary")),
    ("GCC version:  gcc version 12.3.0\n", (None, None)),
    ("", (None, None)),
    (None, (None, None)),
])
def test_parse_nvrm_version(text, expected):
    assert gf.parse_nvrm_version(text) == expected


def test_parse_smi_csv_edge_cases():
    text = ("\n"
            "0, NVIDIA GeForce RTX 4090, GPU-a, 24564, 550.54.15, [N/A], 00000000:01:00.0\n"
            "1, NVIDIA A100-SXM4-40GB, GPU-b, [N/A], 550.54.15, [Not Supported], 00000000:02:00.0\n"
            "2, Odd, Name, With Commas, GPU-c, 1024, 550.54.15, Enabled, 00000001:03:00.0\n"
            "too, short\n"
            "x, NVIDIA L4, GPU-d, 23034, 550.54.15, Disabled, 00000000:04:00.0\n")
    gpus = gf.parse_smi_csv(text)
    assert [g["index"] for g in gpus] == [0, 1, 2]
    assert gpus[0]["mig_mode"] is None
    assert gpus[1]["memory_mib"] is None and gpus[1]["mig_mode"] is None
    assert gpus[2]["name"] == "Odd, Name, With Commas"
    assert gpus[2]["uuid"] == "GPU-c" and gpus[2]["mig_mode"] == "Enabled"
    assert gpus[2]["pci_address"] == "0001:03:00.0"


@pytest.mark.parametrize("bus_id, address", [
    ("00000000:1B:00.0", "0000:1b:00.0"), ("0000:1b:00.0", "0000:1b:00.0"),
    ("00010000:00:01.0", "10000:00:01.0"), ("garbage", None), ("", None), (None, None), ("[N/A]", None),
])
def test_pci_address(bus_id, address):
    assert gf.pci_address(bus_id) == address


@pytest.mark.parametrize("text, cuda", [
    ("| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |", "12.4"),
    ("| NVIDIA-SMI 470.223.02   Driver Version: 470.223.02   CUDA Version: 11.4     |", "11.4"),
    ("no header", None), ("", None),
])
def test_parse_cuda_version(text, cuda):
    assert gf.parse_cuda_version(text) == cuda


PCI_IDS = """# pci.ids excerpt for tests
1000  Broadcom / LSI
\t2322  Not an NVIDIA device
10de  NVIDIA Corporation
\t2322  GH100 [H800 PCIe]
\t\t10de 17a4  H800 PCIe
\t2330  GH100 [H100 SXM5 80GB]
\t2901  GB100 [B200]
\t1234  Plain name without brackets
10df  Emulex Corporation
\t2329  Also not NVIDIA
C 03  Display controller
"""


def test_parse_pci_ids_keeps_to_the_nvidia_block():
    assert gf.parse_pci_ids(PCI_IDS) == {
        "0x2322": "GH100 [H800 PCIe]", "0x2330": "GH100 [H100 SXM5 80GB]",
        "0x2901": "GB100 [B200]", "0x1234": "Plain name without brackets",
    }


def test_model_names_come_from_the_table_then_pci_ids(tmp_path):
    write(tmp_path, "usr/share/hwdata/pci.ids", PCI_IDS)
    add_device(tmp_path, "0000:01:00.0", "0x10de", "0x2322", "0x030200")
    add_device(tmp_path, "0000:02:00.0", "0x10de", "0x2330", "0x030200")
    add_device(tmp_path, "0000:03:00.0", "0x10de", "0x1234", "0x030000")
    add_device(tmp_path, "0000:04:00.0", "0x10de", "0x2bad", "0x030200")
    models = [g["model"] for g in gf.collect(str(tmp_path))["pci_gpus"]]
    assert models == ["NVIDIA H800 PCIe", "NVIDIA H100 SXM5 80GB", "NVIDIA Plain name without brackets",
                      "NVIDIA device 0x2bad"]


def test_misc_pci_ids_wins_over_hwdata(tmp_path):
    write(tmp_path, "usr/share/misc/pci.ids", "10de  NVIDIA Corporation\n\t2322  GH100 [From misc]\n")
    write(tmp_path, "usr/share/hwdata/pci.ids", PCI_IDS)
    add_device(tmp_path, "0000:01:00.0", "0x10de", "0x2322", "0x030200")
    assert gf.collect(str(tmp_path))["pci_gpus"][0]["model"] == "NVIDIA From misc"


@pytest.mark.parametrize("pci_class, counted", [
    ("0x030000", True), ("0x030200", True), ("0x030100", False), ("0x038000", False),
    ("0x040300", False), ("0x0c0330", False), ("0x068000", False), ("0x060400", False),
])
def test_only_vga_and_3d_controllers_count(tmp_path, pci_class, counted):
    add_device(tmp_path, "0000:01:00.0", "0x10de", "0x2330", pci_class)
    assert len(gf.collect(str(tmp_path))["pci_gpus"]) == (1 if counted else 0)


def test_other_vendors_do_not_count(tmp_path):
    add_device(tmp_path, "0000:01:00.0", "0x1002", "0x740f", "0x038000")   # AMD Instinct
    add_device(tmp_path, "0000:02:00.0", "0x8086", "0x56c0", "0x038000")   # Intel Flex
    add_device(tmp_path, "0000:03:00.0", "0x1af4", "0x1050", "0x030000")   # virtio-gpu
    assert gf.collect(str(tmp_path))["pci_gpus"] == []


def test_parse_dpkg_status():
    text = (
        "Package: nvidia-container-toolkit\n"
        "Status: install ok installed\n"
        "Version: 1.17.8-1\n"
        "Description: NVIDIA Container toolkit\n"
        " Version: 9.9.9 inside a description is not a field\n"
        "\n"
        "Package: libnvidia-container1\n"
        "Status: install ok half-configured\n"
        "Version: 1.17.8-1\n"
        "\n"
        "Package: nvidia-container-toolkit-base\n"
        "Status: deinstall ok config-files\n"
        "Version: 1.16.0-1\n"
        "\n"
        "Package: libnvidia-container-tools\n"
        "Version: 1.17.8-1\n"
        "Status: install ok installed\n"
        "\n"
        "Package: nvidia-docker2\n"
        "Status: install ok installed\n"
        "Version: 2.14.0-1\n"
    )
    assert dict(gf.parse_dpkg_status(text)) == {
        "nvidia-container-toolkit": "1.17.8-1", "libnvidia-container-tools": "1.17.8-1"}
    assert dict(gf.parse_dpkg_status(text.replace("\n", "\r\n"))) == {
        "nvidia-container-toolkit": "1.17.8-1", "libnvidia-container-tools": "1.17.8-1"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_parsers_never_raise(text):
    gf.parse_os_release(text)
    gf.parse_pci_ids(text)
    gf.parse_nvrm_version(text)
    gf.loaded_modules(text)
    gf.parse_smi_csv(text)
    gf.parse_cuda_version(text)
    gf.parse_daemon_json(text)
    gf.parse_docker_info(text)
    gf.parse_dpkg_status(text)
    gf.pci_address(text)
    gf.normalize_id(text)


# ---------------------------------------------------------------------------
# Docker on the host itself (commands replaced)
# ---------------------------------------------------------------------------

DOCKER_INFO = json.dumps({
    "ServerVersion": "27.5.1", "DefaultRuntime": "nvidia",
    "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "nvidia": {"path": "nvidia-container-runtime"},
                 "runc": {"path": "runc"}},
})


def fake_run(answers):
    calls = []

    def run(argv, timeout):
        calls.append(list(argv))
        for prefix, answer in answers.items():
            if tuple(argv[1:1 + len(prefix)]) == prefix:
                return answer
        raise AssertionError("unexpected command %r" % (argv,))
    return run, calls


def test_docker_running_on_the_host():
    run, calls = fake_run({
        ("version",): (0, "27.5.1\n", ""),
        ("info",): (0, DOCKER_INFO + "\n", ""),
    })
    docker = gf.docker_facts("/", 7, which=lambda name: "/usr/bin/" + name, run=run)
    assert calls == [["/usr/bin/docker", "version", "--format", "{{.Server.Version}}"],
                     ["/usr/bin/docker", "info", "--format", "{{json .}}"]]
    assert (docker["installed"], docker["running"], docker["version"]) == (True, True, "27.5.1")
    assert docker["default_runtime"] == "nvidia"
    assert docker["runtimes"] == ["io.containerd.runc.v2", "nvidia", "runc"]
    assert docker["error"] is None


def test_docker_installed_but_not_running():
    run, _calls = fake_run({("version",): (
        1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n")})
    docker = gf.docker_facts("/", 7, which=lambda name: "/usr/bin/" + name, run=run)
    assert (docker["installed"], docker["running"], docker["version"]) == (True, False, None)
    assert docker["error"].startswith("Cannot connect to the Docker daemon")


def test_docker_not_installed():
    run, calls = fake_run({})
    docker = gf.docker_facts("/", 7, which=lambda name: None, run=run)
    assert calls == []
    assert (docker["installed"], docker["running"], docker["version"], docker["error"]) == (
        False, False, None, "docker was not found")


def test_docker_is_not_run_for_another_root():
    run, calls = fake_run({})
    docker = gf.docker_facts(str(FIXTURES / "eight-gpus-driver"), 7, which=lambda name: "/usr/bin/" + name, run=run)
    assert calls == []
    assert docker["installed"] is True
    assert docker["running"] is None


def test_nvidia_smi_invocations():
    answers = {
        SMI_QUERY: (0, "0, NVIDIA H200, GPU-x, 143771, 570.86.15, Disabled, 00000000:19:00.0\n", ""),
        (): (0, "| NVIDIA-SMI 570.86.15   Driver Version: 570.86.15   CUDA Version: 12.8 |\n", ""),
    }
    calls = []

    def run(argv, timeout):
        calls.append((list(argv), timeout))
        return answers[tuple(argv[1:])]

    with mock.patch.object(gf, "is_executable", return_value=True):
        smi = gf.nvidia_smi_facts("/usr/bin/nvidia-smi", 5, run=run)
    assert calls == [(["/usr/bin/nvidia-smi", *SMI_QUERY], 5), (["/usr/bin/nvidia-smi"], 5)]
    assert smi["available"] is True
    assert smi["gpus"][0]["memory_mib"] == 143771
    assert smi["gpus"][0]["pci_address"] == "0000:19:00.0"
    assert smi["cuda_version"] == "12.8"


# ---------------------------------------------------------------------------
# This machine's own root
# ---------------------------------------------------------------------------

def _sysfs_nvidia_gpus():
    """NVIDIA display controllers on this machine, read independently of the module."""
    found = []
    base = "/sys/bus/pci/devices"
    for address in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        try:
            vendor = open(os.path.join(base, address, "vendor")).read().strip().lower()
            pci_class = open(os.path.join(base, address, "class")).read().strip().lower()
        except OSError:
            continue
        if vendor == "0x10de" and pci_class[:6] in ("0x0300", "0x0302"):
            found.append(address)
    return found


def check_host_facts(gpu):
    assert gpu["root"] == "/"
    assert [g["address"] for g in gpu["pci_gpus"]] == _sysfs_nvidia_gpus()
    assert isinstance(gpu["distribution"]["supported"], bool)
    assert gpu["distribution"]["supported_list"] == SUPPORTED_LIST
    assert isinstance(gpu["driver"]["loaded"], bool)
    assert isinstance(gpu["driver"]["nouveau_loaded"], bool)
    assert isinstance(gpu["nvidia_smi"]["available"], bool)
    if not gpu["nvidia_smi"]["available"]:
        assert gpu["nvidia_smi"]["error"]
    docker = gpu["docker"]
    assert isinstance(docker["installed"], bool)
    assert docker["running"] in (True, False)
    assert docker["version"] is None or isinstance(docker["version"], str)
    assert isinstance(gpu["toolkit"]["installed"], bool)
    assert gpu["problems"] == [f["message"] for f in gpu["findings"]]
    assert isinstance(gpu["summary"], str) and gpu["summary"]


def test_this_machine():
    gpu = gf.collect("/", which=shutil.which, timeout=20)
    check_host_facts(gpu)
    os_release = Path("/etc/os-release")
    if os_release.exists():
        ids = dict(line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line)
        assert gpu["distribution"]["id"] == (ids.get("ID", "").strip().strip('"').lower() or None)


# ---------------------------------------------------------------------------
# A toolkit below the security floor
# ---------------------------------------------------------------------------

def with_toolkit(tmp_path, version):
    """The eight-gpus-driver tree with every toolkit package at `version`."""
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "eight-gpus-driver", root, symlinks=True)
    status = root / "var/lib/dpkg/status"
    status.write_text(status.read_text().replace("Version: 1.17.8-1", "Version: %s" % version))
    return root


def test_toolkit_below_the_security_floor_is_a_problem(tmp_path):
    gpu = gf.collect(str(with_toolkit(tmp_path, "1.17.3-1")))
    toolkit = gpu["toolkit"]
    assert toolkit["version"] == "1.17.3-1"
    assert toolkit["security_floor"] == "1.17.8"
    assert toolkit["below_security_floor"] is True
    assert [(f["fixed_in"], f["cves"]) for f in toolkit["missing_fixes"]] == [
        ("1.17.4", ["CVE-2025-23359"]), ("1.17.8", ["CVE-2025-23266", "CVE-2025-23267"])]
    assert toolkit["missing_fixes"][1]["bulletin"] == "https://nvidia.custhelp.com/app/answers/detail/a_id/5659"
    assert codes(gpu) == ["toolkit_below_security_floor"]
    (finding,) = gpu["findings"]
    assert finding["severity"] == "error"
    assert finding["message"] == gpu["problems"][0] == (
        "NVIDIA Container Toolkit 1.17.3-1 is installed, older than the security floor 1.17.8: it lacks "
        "NVIDIA's fixes for CVE-2025-23359 (fixed in 1.17.4, NVIDIA bulletin "
        "https://nvidia.custhelp.com/app/answers/detail/a_id/5616); CVE-2025-23266, CVE-2025-23267 (fixed in "
        "1.17.8, NVIDIA bulletin https://nvidia.custhelp.com/app/answers/detail/a_id/5659), which let a "
        "container image escape to the host. Upgrade the toolkit to 1.17.8 or newer: run gpuhost provision "
        "with nvidia_container_toolkit_version \"1.17.8-1\" or newer (or \"\" for the newest).")
    json.dumps(gpu)


def test_toolkit_1_17_7_lacks_only_the_july_2025_fixes(tmp_path):
    gpu = gf.collect(str(with_toolkit(tmp_path, "1.17.7-1")))
    assert [cve for f in gpu["toolkit"]["missing_fixes"] for cve in f["cves"]] == ["CVE-2025-23266", "CVE-2025-23267"]
    assert "CVE-2025-23359" not in gpu["problems"][0]


@pytest.mark.parametrize("version", ["1.17.8-1", "1.18.0~rc.1-1", "1.18.1-1"])
def test_toolkit_at_or_above_the_floor_is_no_problem(tmp_path, version):
    gpu = gf.collect(str(with_toolkit(tmp_path, version)))
    assert gpu["toolkit"]["below_security_floor"] is False
    assert gpu["toolkit"]["missing_fixes"] == []
    assert gpu["problems"] == []


def test_through_ansible_the_module_ships_with_the_security_table(tmp_path):
    """Ansible sends module_utils/gpuhost_toolkit_security.py along with the module."""
    rc, host = run_ansible(tmp_path, {"root": str(with_toolkit(tmp_path, "1.16.1-1"))})
    assert rc == 0, host
    toolkit = host["gpu"]["toolkit"]
    assert toolkit["below_security_floor"] is True
    assert len(toolkit["missing_fixes"]) == 5
    assert [f["code"] for f in host["gpu"]["findings"]] == ["toolkit_below_security_floor"]
    assert "CVE-2024-0132, CVE-2024-0133 (fixed in 1.16.2" in host["gpu"]["problems"][0]


# ---------------------------------------------------------------------------
# Through Ansible itself
# ---------------------------------------------------------------------------

def run_ansible(tmp_path, args, *extra):
    return run_adhoc("gpu_facts", args, tmp_path, *extra)




@pytest.mark.parametrize("case", CASES)
def test_through_ansible(tmp_path, case):
    rc, host = run_ansible(tmp_path, {"root": str(FIXTURES / case)})
    assert rc == 0, host
    assert host.get("failed") is not True, host
    assert host["changed"] is False
    assert host["ansible_facts"]["gpuhost_gpu"] == host["gpu"]
    assert host["gpu"] == json.loads(json.dumps(facts(case)))


def test_through_ansible_check_mode(tmp_path):
    rc, host = run_ansible(tmp_path, {"root": str(FIXTURES / "smi-fails")}, "--check")
    assert rc == 0, host
    assert host["changed"] is False
    assert [f["code"] for f in host["gpu"]["findings"]] == ["unsupported_distribution", "nvidia_smi_failed"]
    assert host["gpu"]["nvidia_smi"]["error"] == SMI_COMM_ERROR


def test_through_ansible_bad_root(tmp_path):
    rc, host = run_ansible(tmp_path, {"root": str(tmp_path / "nowhere")})
    assert rc != 0
    assert host["failed"] is True
    assert host["msg"] == "root %s is not a directory." % (tmp_path / "nowhere")


def test_through_ansible_on_this_machine(tmp_path):
    rc, host = run_ansible(tmp_path, {})
    assert rc == 0, host
    assert host["changed"] is False
    check_host_facts(host["gpu"])
    assert host["ansible_facts"]["gpuhost_gpu"] == host["gpu"]


# ---------------------------------------------------------------------------
# How the toolkit gives containers GPUs: config.toml, CDI, refresh units, persistenced
# ---------------------------------------------------------------------------

# What `nvidia-ctk config default` writes (NVIDIA's api/config/v1/toml_test.go), with `mode` as given.
DEFAULT_CONFIG_TOML = """\
#accept-nvidia-visible-devices-as-volume-mounts = false
#accept-nvidia-visible-devices-envvar-when-unprivileged = true
disable-require = false
supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"
#swarm-resource = "DOCKER_RESOURCE_GPU"

[nvidia-container-cli]
#debug = "/var/log/nvidia-container-toolkit.log"
environment = []
ldconfig = "@/sbin/ldconfig"
load-kmods = true

[nvidia-container-runtime]
#debug = "/var/log/nvidia-container-runtime.log"
log-level = "info"
mode = "{mode}"
runtimes = ["runc", "crun"]

[nvidia-container-runtime.modes]

[nvidia-container-runtime.modes.cdi]
annotation-prefixes = ["cdi.k8s.io/"]
default-kind = "nvidia.com/gpu"
spec-dirs = ["/etc/cdi", "/var/run/cdi"]

[nvidia-container-runtime.modes.legacy]
cuda-compat-mode = "ldconfig"

[nvidia-container-runtime-hook]
path = "nvidia-container-runtime-hook"
skip-mode-detection = false

[nvidia-ctk]
path = "nvidia-ctk"
"""

# The shape of `nvidia-ctk cdi generate` output for one GPU (cut down: one device node, one hook).
NVIDIA_CDI_YAML = """\
---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
    - name: "0"
      containerEdits:
        deviceNodes:
            - path: /dev/nvidia0
    - name: GPU-0a1b2c3d-0000-4000-8000-000000000000
      containerEdits:
        deviceNodes:
            - path: /dev/nvidia0
    - name: all
      containerEdits:
        deviceNodes:
            - path: /dev/nvidia0
containerEdits:
    env:
        - NVIDIA_VISIBLE_DEVICES=void
    deviceNodes:
        - path: /dev/nvidiactl
    hooks:
        - hookName: createContainer
          path: /usr/bin/nvidia-cdi-hook
          args:
            - nvidia-cdi-hook
            - create-symlinks
"""


def with_files(tmp_path, files, case="eight-gpus-driver"):
    """A copy of a fixture tree with `files` ({relative path: text}) added."""
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / case, root, symlinks=True)
    for rel, text in files.items():
        write(root, rel, text)
    return root


CONFIG = "etc/nvidia-container-runtime/config.toml"


@pytest.fixture(params=["tomllib", "narrow"])
def toml_reader(request, monkeypatch):
    """Run a test with Python 3.11's tomllib and with the reader used on Python 3.10."""
    if request.param == "narrow":
        monkeypatch.setattr(gf, "tomllib", None)
    return request.param


def test_nvidia_default_config(tmp_path, toml_reader):
    gpu = gf.collect(str(with_files(tmp_path, {CONFIG: DEFAULT_CONFIG_TOML.replace("{mode}", "auto")})))
    toolkit = gpu["toolkit"]
    assert toolkit["runtime_config"] == {
        "path": "/etc/nvidia-container-runtime/config.toml", "present": True, "error": None, "mode": "auto",
        "accept_envvar_unprivileged": True, "accept_volume_mounts": False}
    assert toolkit["isolation"] == "envvar"
    assert gpu["findings"] == []


@pytest.mark.parametrize("switches, isolation", [
    ("accept-nvidia-visible-devices-envvar-when-unprivileged = true\n", "envvar"),
    ("accept-nvidia-visible-devices-envvar-when-unprivileged = true\n"
     "accept-nvidia-visible-devices-as-volume-mounts = true\n", "envvar"),
    ("accept-nvidia-visible-devices-envvar-when-unprivileged = false\n"
     "accept-nvidia-visible-devices-as-volume-mounts = true  # device plugin\n", "volume-mounts"),
    ("accept-nvidia-visible-devices-envvar-when-unprivileged = false\n", "privileged-only"),
])
def test_isolation_follows_the_two_switches(tmp_path, toml_reader, switches, isolation):
    text = switches + DEFAULT_CONFIG_TOML.replace("{mode}", "legacy")
    toolkit = gf.collect(str(with_files(tmp_path, {CONFIG: text})))["toolkit"]
    config = toolkit["runtime_config"]
    assert config["mode"] == "legacy"
    assert config["accept_envvar_unprivileged"] is ("envvar-when-unprivileged = true" in switches)
    assert config["accept_volume_mounts"] is ("volume-mounts = true" in switches)
    assert toolkit["isolation"] == isolation


def test_mode_defaults_to_auto_and_keys_elsewhere_do_not_count(tmp_path, toml_reader):
    text = ('[nvidia-container-runtime.modes.cdi]\nmode = "cdi"\n'
            '[nvidia-container-cli]\naccept-nvidia-visible-devices-envvar-when-unprivileged = false\n')
    config = gf.collect(str(with_files(tmp_path, {CONFIG: text})))["toolkit"]["runtime_config"]
    assert (config["present"], config["mode"], config["accept_envvar_unprivileged"]) == (True, "auto", True)


def test_isolation_is_null_without_toolkit_or_config():
    assert facts("no-gpu")["toolkit"]["isolation"] is None
    assert gf.isolation_of({"accept_envvar_unprivileged": None, "accept_volume_mounts": None}) is None


@pytest.mark.parametrize("text, reason", [
    ('[nvidia-container-runtime]\nmode = "cdi\n', "line 2"),
    ("accept-nvidia-visible-devices-envvar-when-unprivileged\n", "line 1"),
    ('accept-nvidia-visible-devices-as-volume-mounts = "yes"\n', "accept-nvidia-visible-devices-as-volume-mounts"),
    ("[nvidia-container-runtime]\nmode = 3\n", "mode"),
])
def test_config_that_does_not_parse_is_a_warning(tmp_path, toml_reader, text, reason):
    gpu = gf.collect(str(with_files(tmp_path, {CONFIG: text})))
    config = gpu["toolkit"]["runtime_config"]
    assert config["present"] is True
    assert config["error"].startswith("/etc/nvidia-container-runtime/config.toml does not parse: ")
    assert reason in config["error"]
    assert (config["mode"], config["accept_envvar_unprivileged"], config["accept_volume_mounts"]) == (None,) * 3
    assert gpu["toolkit"]["isolation"] is None
    assert codes(gpu) == ["runtime_config_invalid"]
    (finding,) = gpu["findings"]
    assert finding["severity"] == "warning"
    assert finding["message"].startswith(config["error"])
    assert "nvidia-ctk config default --output=/etc/nvidia-container-runtime/config.toml" in finding["message"]


def test_narrow_reader_reads_only_what_it_needs():
    data = gf.parse_toml_narrowly(DEFAULT_CONFIG_TOML.replace("{mode}", "csv") + "[[array]]\nx = 1\n")
    assert data["disable-require"] is False
    assert data["supported-driver-capabilities"] == "compat32,compute,display,graphics,ngx,utility,video"
    assert data["nvidia-container-runtime"] == {"log-level": "info", "mode": "csv", "runtimes": '["runc", "crun"]'}
    assert "ldconfig" not in data and "path" not in data
    assert gf.parse_toml_narrowly("mode = 'cdi' # single quotes\n") == {"mode": "cdi"}
    with pytest.raises(gf.ConfigError, match="line 2"):
        gf.parse_toml_narrowly("a = 1\nnot toml\n")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_config_readers_raise_only_config_error(text):
    for reader in (gf.parse_toml_narrowly, gf.parse_runtime_config):
        try:
            reader(text)
        except gf.ConfigError:
            pass


def test_cdi_specs_in_both_directories(tmp_path):
    vendor = {"cdiVersion": "0.6.0", "kind": "vendor.example/fpga", "devices": [{"name": "a"}, {"name": 7}]}
    root = with_files(tmp_path, {"var/run/cdi/nvidia.yaml": NVIDIA_CDI_YAML,
                                 "etc/cdi/vendor.json": json.dumps(vendor),
                                 "etc/cdi/broken.json": "{", "etc/cdi/notes.txt": "kind: x/y\n"})
    cdi = gf.collect(str(root))["toolkit"]["cdi"]
    assert cdi["specs"] == ["/etc/cdi/broken.json", "/etc/cdi/vendor.json", "/var/run/cdi/nvidia.yaml"]
    assert cdi["source"] == "files"
    assert cdi["devices"] == ["vendor.example/fpga=a", "nvidia.com/gpu=0",
                              "nvidia.com/gpu=GPU-0a1b2c3d-0000-4000-8000-000000000000", "nvidia.com/gpu=all"]
    assert len(cdi["errors"]) == 1 and cdi["errors"][0].startswith("/etc/cdi/broken.json: ")


def test_cdi_yaml_with_sorted_keys_and_without_kind():
    # The order a JSON-to-YAML converter writes: containerEdits before name in each device.
    text = ("cdiVersion: 0.5.0\ncontainerEdits:\n  env:\n  - NVIDIA_VISIBLE_DEVICES=void\ndevices:\n"
            "- containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n  name: '0'\n"
            "- containerEdits:\n    hooks:\n    - hookName: createContainer\n  name: all\n"
            "kind: nvidia.com/gpu  # the vendor and class\n")
    assert gf.cdi_devices_from_yaml(text) == ["nvidia.com/gpu=0", "nvidia.com/gpu=all"]
    with pytest.raises(ValueError):
        gf.cdi_devices_from_yaml(NVIDIA_CDI_YAML.replace("kind: nvidia.com/gpu\n", ""))


def host_root_tree(tmp_path, monkeypatch, ctk_output):
    """A tree the module treats as the host itself, with nvidia-ctk and one spec."""
    root = tmp_path / "host"
    write(root, "var/run/cdi/nvidia.yaml", NVIDIA_CDI_YAML)
    ctk = write(root, "usr/bin/nvidia-ctk", "#!/bin/sh\nexit 1\n", 0o755)
    monkeypatch.setattr(gf, "is_host_root", lambda r: True)
    run, calls = fake_run({("cdi", "list"): ctk_output})
    return root, ctk, run, calls


def test_cdi_devices_from_nvidia_ctk_on_the_host(tmp_path, monkeypatch):
    out = "nvidia.com/gpu=0\nnvidia.com/gpu=GPU-x\nnvidia.com/gpu=all\n"
    root, ctk, run, calls = host_root_tree(
        tmp_path, monkeypatch, (0, out, 'time="..." level=info msg="Found 3 CDI devices"\n'))
    cdi = gf.cdi_facts(str(root), 9, run=run)
    assert calls == [[str(ctk), "cdi", "list"]]
    assert cdi == {"specs": ["/var/run/cdi/nvidia.yaml"], "source": "nvidia-ctk cdi list", "errors": [],
                   "devices": ["nvidia.com/gpu=0", "nvidia.com/gpu=GPU-x", "nvidia.com/gpu=all"]}


def test_cdi_falls_back_to_the_files_when_nvidia_ctk_fails(tmp_path, monkeypatch):
    root, _ctk, run, calls = host_root_tree(tmp_path, monkeypatch, (1, "", "boom"))
    cdi = gf.cdi_facts(str(root), 9, run=run)
    assert len(calls) == 1
    assert cdi["source"] == "files"
    assert cdi["devices"][-1] == "nvidia.com/gpu=all" and len(cdi["devices"]) == 3


def test_nvidia_ctk_is_not_run_for_another_root(tmp_path):
    root = with_files(tmp_path, {"var/run/cdi/nvidia.yaml": NVIDIA_CDI_YAML})
    write(root, "usr/bin/nvidia-ctk", "#!/bin/sh\nexit 1\n", 0o755)
    run, calls = fake_run({})
    assert gf.cdi_facts(str(root), 9, run=run)["source"] == "files"
    assert calls == []


def test_parse_cdi_list():
    assert gf.parse_cdi_list("INFO[0000] Found 2 CDI devices\nnvidia.com/gpu=0\n nvidia.com/gpu=all \n"
                             "nvidia.com/gpu\n") == ["nvidia.com/gpu=0", "nvidia.com/gpu=all"]


def test_cdi_mode_without_gpu_devices_is_an_error(tmp_path):
    config = {CONFIG: DEFAULT_CONFIG_TOML.replace("{mode}", "cdi")}
    gpu = gf.collect(str(with_files(tmp_path, config)))
    assert codes(gpu) == ["cdi_spec_missing"]
    (finding,) = gpu["findings"]
    assert finding["severity"] == "error"
    assert "mode \"cdi\" but no CDI specification lists nvidia.com/gpu devices (none in /etc/cdi or /var/run/cdi)" \
        in finding["message"]
    assert "nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml" in finding["message"]
    assert "systemctl enable --now nvidia-cdi-refresh.path" in finding["message"]

    other = {"etc/cdi/vendor.json": json.dumps({"kind": "vendor.example/fpga", "devices": [{"name": "a"}]})}
    gpu = gf.collect(str(with_files(tmp_path / "other", dict(config, **other))))
    assert codes(gpu) == ["cdi_spec_missing"]
    assert "(specifications found: /etc/cdi/vendor.json)" in gpu["problems"][0]


def test_cdi_mode_with_a_spec_or_without_a_driver_is_no_problem(tmp_path):
    config = {CONFIG: DEFAULT_CONFIG_TOML.replace("{mode}", "cdi")}
    gpu = gf.collect(str(with_files(tmp_path, dict(config, **{"var/run/cdi/nvidia.yaml": NVIDIA_CDI_YAML}))))
    assert gpu["toolkit"]["runtime_config"]["mode"] == "cdi"
    assert gpu["findings"] == []
    gpu = gf.collect(str(with_files(tmp_path / "nodriver", config, case="one-gpu-no-driver")))
    assert codes(gpu) == ["driver_not_loaded"]


def test_cdi_refresh_units(tmp_path):
    root = with_files(tmp_path, {"lib/systemd/system/nvidia-cdi-refresh.path": "[Path]\n",
                                 "usr/lib/systemd/system/nvidia-cdi-refresh.service": "[Service]\n"})
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "nvidia-cdi-refresh.path").symlink_to("/lib/systemd/system/nvidia-cdi-refresh.path")
    assert gf.collect(str(root))["toolkit"]["cdi_refresh"] == {
        "path": {"installed": True, "enabled": True, "masked": False},
        "service": {"installed": True, "enabled": False, "masked": False}}
    (root / "etc/systemd/system/nvidia-cdi-refresh.path").symlink_to("/dev/null")
    assert gf.cdi_refresh_facts(str(root))["path"] == {"installed": False, "enabled": False, "masked": True}


@pytest.mark.parametrize("comm, running", [("nvidia-persiste\n", True), ("nvidia-persistenced\n", True),
                                           ("nvidia-smi\n", False), ("nvidia-persist\n", False)])
def test_persistenced_from_proc(tmp_path, comm, running):
    root = with_files(tmp_path, {"proc/1/comm": "systemd\n", "proc/2417/comm": comm, "proc/self-ish/comm": comm},
                      case="no-gpu")
    assert gf.collect(str(root))["toolkit"]["persistenced"] == {"running": running, "socket": False, "installed": False,
                                                                "enabled": False, "masked": False}


def test_persistenced_socket(tmp_path):
    root = with_files(tmp_path, {"var/run/nvidia-persistenced/socket": ""}, case="no-gpu")
    assert gf.persistenced_facts(str(root)) == {"running": False, "socket": True, "installed": False,
                                                "enabled": False, "masked": False}


@pytest.mark.parametrize("version, cdi_feature, expected", [
    ("24.0.7", None, (False, False)),
    ("24.0.7", True, (False, False)),
    ("25.0.0", None, (True, False)),
    ("25.0.5", True, (True, True)),
    ("28.1.1", None, (True, False)),
    ("28.2.0", None, (True, True)),
    ("29.0.1", None, (True, True)),
    ("28.5.1", False, (True, False)),
    (None, True, (None, None)),
    ("dev", None, (None, None)),
])
def test_docker_cdi_support(version, cdi_feature, expected):
    assert gf.docker_cdi(version, cdi_feature) == expected


def test_docker_cdi_from_the_recorded_version_and_daemon_json(tmp_path):
    daemon = {"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
              "features": {"cdi": True}}
    fact = json.dumps({"server_version": "27.5.1", "install_source": "docker"})
    root = with_files(tmp_path, {"etc/docker/daemon.json": json.dumps(daemon),
                                 "etc/ansible/facts.d/gpuhost_docker.fact": fact})
    docker = gf.collect(str(root))["docker"]
    assert (docker["version"], docker["recorded_version"], docker["configured_cdi"]) == (None, "27.5.1", True)
    assert (docker["cdi_supported"], docker["cdi_enabled"]) == (True, True)
    write(root, "etc/ansible/facts.d/gpuhost_docker.fact", '{"server_version": ""}')
    assert gf.collect(str(root))["docker"]["cdi_enabled"] is None


def test_docker_cdi_from_the_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(gf, "under", lambda root, *parts: gf.os.path.join(str(tmp_path), *(p.lstrip("/") for p in parts)))
    run, _calls = fake_run({("version",): (0, "28.2.2\n", ""), ("info",): (0, DOCKER_INFO, "")})
    docker = gf.docker_facts("/", 7, which=lambda name: "/usr/bin/" + name, run=run)
    assert (docker["version"], docker["recorded_version"], docker["configured_cdi"]) == ("28.2.2", None, None)
    assert (docker["cdi_supported"], docker["cdi_enabled"]) == (True, True)
