"""gpu_facts: the NVIDIA driver's packaging (dpkg) and the distribution releases, on Ubuntu and Debian.

The recognition of the packages and the rules behind the findings live in
module_utils/gpuhost_driver_packages.py and are tested there directly; the fixture trees are read
end to end through gpu_facts. The trees ubuntu-archive-precompiled, ubuntu-ppa-dkms and
ubuntu-pending-reboot under tests/fixtures/gpu are constructed (see the README there); other cases
are built in tmp_path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from plugin_loader import load_module

from gpuhost_cli import views

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gpu"

gf = load_module("gpu_facts")
from ansible.module_utils import gpuhost_driver_packages as dp  # noqa: E402  (importable once loaded)
from ansible.module_utils.gpuhost_platforms import SUPPORTED_LIST  # noqa: E402

UBUNTU_550 = "550.120-0ubuntu0.22.04.1"
PPA_570 = "570.133.07-0ubuntu0~gpu24.04.1"


def facts(case):
    return gf.collect(str(FIXTURES / case))


def codes(gpu):
    return [f["code"] for f in gpu["findings"]]


def stanza(name, version, status="install ok installed"):
    return "Package: %s\nStatus: %s\nArchitecture: amd64\nVersion: %s\nDescription: x\n y\n" % (name, status, version)


def dpkg(*packages):
    return "\n".join(stanza(*p) for p in packages)


def tree(tmp_path, case, files=(), remove=()):
    """A copy of a fixture tree with `files` ({relative path: text}) written and `remove` deleted."""
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / case, root, symlinks=True)
    for rel in remove:
        (root / rel).unlink()
    for rel, text in dict(files).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def packaging_of(installed, kernel="5.15.0-105-generic", loaded=None):
    packages, packaging = dp.driver_packaging(dp.parse_dpkg_installed(dpkg(*installed)), kernel, loaded_version=loaded)
    return dict(packages), packaging


# ---------------------------------------------------------------------------
# The fixture trees
# ---------------------------------------------------------------------------

def test_ubuntu_archive_driver_with_precompiled_modules_for_the_running_kernel():
    gpu = facts("ubuntu-archive-precompiled")
    driver = gpu["driver"]
    assert (driver["loaded"], driver["version"], driver["flavor"]) == (True, "550.120", "proprietary")
    # The removed 535-server (state deinstall ok config-files) and the kernel images are not driver packages.
    assert driver["packages"] == {
        "libnvidia-compute-550-server": UBUNTU_550,
        "linux-modules-nvidia-550-server-5.15.0-105-generic": "5.15.0-105.115",
        "linux-modules-nvidia-550-server-generic": "5.15.0-105.115",
        "linux-objects-nvidia-550-server-5.15.0-105-generic": "5.15.0-105.115",
        "linux-signatures-nvidia-5.15.0-105-generic": "5.15.0-105.115",
        "nvidia-driver-550-server": UBUNTU_550,
        "nvidia-kernel-common-550-server": UBUNTU_550,
        "nvidia-utils-550-server": UBUNTU_550,
    }
    assert driver["packaging"] == {
        "source": "ubuntu-archive", "branch": "550-server", "branches": ["550-server"],
        "version": UBUNTU_550, "upstream_version": "550.120", "flavor": "proprietary",
        "kernel_modules": "precompiled", "kernel": "5.15.0-105-generic",
        "precompiled_kernels": ["5.15.0-105-generic"], "precompiled_flavours": ["generic"],
        "modules_for_running_kernel": True, "newest_kernel": "5.15.0-105-generic",
    }
    assert gpu["findings"] == []
    assert gpu["summary"] == "1 GPU (NVIDIA H100 PCIe), driver 550.120, CUDA 12.4"


def test_graphics_drivers_ppa_with_open_dkms_modules():
    gpu = facts("ubuntu-ppa-dkms")
    driver = gpu["driver"]
    assert (driver["version"], driver["flavor"]) == ("570.133.07", "open")
    assert sorted(driver["packages"]) == [
        "libnvidia-compute-570", "nvidia-dkms-570-open", "nvidia-driver-570-open", "nvidia-kernel-common-570",
        "nvidia-kernel-source-570-open", "nvidia-utils-570"]
    assert set(driver["packages"].values()) == {PPA_570}
    # nvidia-utils-570 and nvidia-driver-570-open are one branch: "-open" is the kernel modules' flavor.
    assert driver["packaging"] == {
        "source": "graphics-drivers-ppa", "branch": "570", "branches": ["570"],
        "version": PPA_570, "upstream_version": "570.133.07", "flavor": "open",
        "kernel_modules": "dkms", "kernel": "6.8.0-52-generic",
        "precompiled_kernels": [], "precompiled_flavours": [],
        "modules_for_running_kernel": None, "newest_kernel": "6.8.0-52-generic",
    }
    assert gpu["findings"] == []


def test_pending_reboot_new_kernel_without_modules_and_upgraded_driver():
    gpu = facts("ubuntu-pending-reboot")
    packaging = gpu["driver"]["packaging"]
    assert gpu["driver"]["version"] == "550.90.07"
    assert (packaging["upstream_version"], packaging["kernel"], packaging["newest_kernel"]) == (
        "550.120", "5.15.0-105-generic", "5.15.0-107-generic")
    assert packaging["precompiled_kernels"] == ["5.15.0-105-generic"]
    assert packaging["precompiled_flavours"] == []
    assert packaging["modules_for_running_kernel"] is True
    assert codes(gpu) == ["nvidia_smi_failed", "precompiled_modules_missing", "driver_version_mismatch"]
    assert gpu["nvidia_smi"]["exit_status"] == 18
    by_code = {f["code"]: f for f in gpu["findings"]}
    modules = by_code["precompiled_modules_missing"]
    assert modules["severity"] == "warning"
    assert modules["message"] == (
        "The newest installed kernel 5.15.0-107-generic, which the boot loader starts by default, has no NVIDIA "
        "precompiled kernel modules (branch 550-server; installed for 5.15.0-105-generic): the driver will not load "
        "after the next reboot. Install linux-modules-nvidia-550-server-5.15.0-107-generic and the metapackage "
        "linux-modules-nvidia-550-server-generic, which installs the modules for each new kernel of that flavour "
        "(ubuntu-drivers install installs the metapackage) before rebooting.")
    mismatch = by_code["driver_version_mismatch"]
    assert mismatch["severity"] == "warning"
    assert mismatch["message"].startswith(
        "The loaded NVIDIA kernel module is 550.90.07 but the installed driver packages are 550.120 "
        "(550.120-0ubuntu0.22.04.1): ")
    assert "Driver/library version mismatch" in mismatch["message"] and "Reboot" in mismatch["message"]


def test_running_kernel_without_precompiled_modules(tmp_path):
    """Booted into 5.15.0-107 while the modules exist only for 105: the driver cannot load."""
    root = tree(tmp_path, "ubuntu-pending-reboot", files={"proc/sys/kernel/osrelease": "5.15.0-107-generic\n",
                                                          "proc/modules": "drm 622592 0 - Live 0x0\n"},
                remove=["proc/driver/nvidia/version"])
    gpu = gf.collect(str(root))
    packaging = gpu["driver"]["packaging"]
    assert gpu["driver"]["loaded"] is False
    assert (packaging["kernel"], packaging["modules_for_running_kernel"]) == ("5.15.0-107-generic", False)
    assert codes(gpu) == ["driver_not_loaded", "precompiled_modules_missing"]
    assert gpu["findings"][1]["message"] == (
        "The NVIDIA driver's precompiled kernel modules (branch 550-server) are installed for 5.15.0-105-generic "
        "but not for the running kernel 5.15.0-107-generic: the driver cannot be loaded. Install "
        "linux-modules-nvidia-550-server-5.15.0-107-generic and the metapackage "
        "linux-modules-nvidia-550-server-generic, which installs the modules for each new kernel of that flavour "
        "(ubuntu-drivers install installs the metapackage), then reboot.")
    text = views.driver_packaging_text(gpu["driver"])
    assert text.endswith("MISSING for the running kernel 5.15.0-107-generic")


def test_modules_missing_while_loaded_say_the_next_reboot(tmp_path):
    root = tree(tmp_path, "ubuntu-archive-precompiled", files={"proc/sys/kernel/osrelease": "5.15.0-107-generic\n"})
    gpu = gf.collect(str(root))
    assert codes(gpu) == ["precompiled_modules_missing"]
    message = gpu["findings"][0]["message"]
    assert "the driver is loaded now but will not load again after the next reboot" in message
    # The flavour metapackage is already installed: only the kernel's own package is named.
    assert "Install linux-modules-nvidia-550-server-5.15.0-107-generic (ubuntu-drivers" in message


def test_open_precompiled_modules_are_named_with_open(tmp_path):
    status = dpkg(("nvidia-driver-570-server-open", "570.133.20-0ubuntu0.24.04.1"),
                  ("nvidia-utils-570-server", "570.133.20-0ubuntu0.24.04.1"),
                  ("linux-modules-nvidia-570-server-open-6.8.0-51-generic", "6.8.0-51.52"))
    root = tree(tmp_path, "ubuntu-ppa-dkms", files={"var/lib/dpkg/status": status})
    gpu = gf.collect(str(root))
    packaging = gpu["driver"]["packaging"]
    assert (packaging["branch"], packaging["flavor"], packaging["kernel_modules"]) == ("570-server", "open", "precompiled")
    assert packaging["source"] == "ubuntu-archive"
    assert packaging["precompiled_kernels"] == ["6.8.0-51-generic"]
    assert "precompiled_modules_missing" in codes(gpu)
    message = gpu["findings"][codes(gpu).index("precompiled_modules_missing")]["message"]
    assert "Install linux-modules-nvidia-570-server-open-6.8.0-52-generic and the metapackage " \
           "linux-modules-nvidia-570-server-open-generic," in message


def test_dkms_next_to_precompiled_modules_is_no_alarm(tmp_path):
    """dkms builds for every kernel: missing precompiled modules are then no problem."""
    status = (FIXTURES / "ubuntu-pending-reboot/var/lib/dpkg/status").read_text() + "\n" + dpkg(
        ("nvidia-dkms-550-server", UBUNTU_550))
    root = tree(tmp_path, "ubuntu-pending-reboot", files={"var/lib/dpkg/status": status,
                                                          "proc/sys/kernel/osrelease": "5.15.0-107-generic\n"})
    gpu = gf.collect(str(root))
    assert gpu["driver"]["packaging"]["kernel_modules"] == "precompiled and dkms"
    assert "precompiled_modules_missing" not in codes(gpu)


def test_several_branches(tmp_path):
    status = (FIXTURES / "ubuntu-archive-precompiled/var/lib/dpkg/status").read_text() + "\n" + dpkg(
        ("nvidia-utils-535-server", "535.183.06-0ubuntu0.22.04.1"),
        ("libnvidia-compute-535-server", "535.183.06-0ubuntu0.22.04.1"))
    root = tree(tmp_path, "ubuntu-archive-precompiled", files={"var/lib/dpkg/status": status})
    gpu = gf.collect(str(root))
    packaging = gpu["driver"]["packaging"]
    # The branch is the loaded driver's, not the newest or the first.
    assert (packaging["branch"], packaging["branches"]) == ("550-server", ["535-server", "550-server"])
    assert packaging["upstream_version"] == "550.120"
    assert codes(gpu) == ["several_driver_branches"]
    assert gpu["findings"][0]["severity"] == "warning"
    assert gpu["findings"][0]["message"] == (
        "NVIDIA driver packages of 2 branches are installed (535-server, 550-server); only one driver can be "
        "loaded, and upgrades of the others can replace its libraries or kernel modules. Keep branch 550-server "
        "and remove the others' packages: apt purge libnvidia-compute-535-server nvidia-utils-535-server.")


def test_no_driver_packages_no_findings():
    for case in ("no-gpu", "one-gpu-no-driver", "eight-gpus-driver", "nouveau", "mig-enabled", "smi-fails",
                 "h200-captured"):
        gpu = facts(case)
        assert (gpu["driver"]["packages"], gpu["driver"]["packaging"]) == ({}, None), case
        assert not {"precompiled_modules_missing", "driver_version_mismatch",
                    "several_driver_branches"} & set(codes(gpu)), case


def test_user_space_only_in_a_container_is_no_alarm(tmp_path):
    """A CUDA container or CI machine with nvidia-utils but no kernel module: facts, no findings."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\n')
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(dpkg(("nvidia-utils-550-server", UBUNTU_550),
                                                       ("libnvidia-compute-550-server", UBUNTU_550)))
    gpu = gf.collect(str(tmp_path))
    packaging = gpu["driver"]["packaging"]
    assert (packaging["branch"], packaging["kernel_modules"], packaging["flavor"], packaging["kernel"]) == (
        "550-server", None, None, None)
    assert gpu["findings"] == []


# ---------------------------------------------------------------------------
# Names, versions and sources
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("nvidia-driver-550", ("driver", "550", None)),
    ("nvidia-driver-550-server", ("driver", "550-server", None)),
    ("nvidia-driver-570-open", ("driver", "570-open", None)),
    ("nvidia-driver-570-server-open", ("driver", "570-server-open", None)),
    ("nvidia-headless-no-dkms-550-server", ("driver", "550-server", None)),
    ("nvidia-dkms-550", ("dkms", "550", None)),
    ("nvidia-utils-550-server", ("userspace", "550-server", None)),
    ("libnvidia-compute-570", ("userspace", "570", None)),
    ("linux-modules-nvidia-550-server-generic", ("precompiled", "550-server", "generic")),
    ("linux-modules-nvidia-550-server-generic-hwe-22.04", ("precompiled", "550-server", "generic-hwe-22.04")),
    ("linux-modules-nvidia-550-server-5.15.0-105-generic", ("precompiled", "550-server", "5.15.0-105-generic")),
    ("linux-modules-nvidia-570-open-6.8.0-1015-aws", ("precompiled", "570-open", "6.8.0-1015-aws")),
    ("linux-objects-nvidia-550-server-5.15.0-105-generic", ("objects", "550-server", "5.15.0-105-generic")),
    ("linux-signatures-nvidia-5.15.0-105-generic", ("signatures", None, "5.15.0-105-generic")),
    ("cuda-drivers", ("repository", None, None)),
    ("cuda-drivers-550", ("repository", "550", None)),
    ("nvidia-open", ("repository", None, None)),
    ("nvidia-driver", ("driver", None, None)),
    ("nvidia-kernel-dkms", ("dkms", None, None)),
    ("nvidia-open-kernel-dkms", ("dkms", None, None)),
    ("nvidia-tesla-535-driver", ("driver", "535", None)),
    ("nvidia-tesla-535-kernel-dkms", ("dkms", "535", None)),
    ("nvidia-container-toolkit", None),
    ("libnvidia-container1", None),
    ("linux-modules-extra-5.15.0-105-generic", None),
    ("nvidia-driver-local-repo-ubuntu2204-550.54.15", None),
])
def test_classify_driver_package(name, expected):
    assert dp.classify_driver_package(name) == expected


@pytest.mark.parametrize("version, upstream", [
    ("550.120-0ubuntu0.22.04.1", "550.120"), ("550.54.15-1", "550.54.15"), ("1:535.216.01-1~deb12u1", "535.216.01"),
    ("570.133.07", "570.133.07"), ("", None),
])
def test_upstream_version(version, upstream):
    assert dp.upstream_version(version) == upstream


@pytest.mark.parametrize("installed, source", [
    ([("nvidia-driver-550-server", UBUNTU_550)], "ubuntu-archive"),
    ([("nvidia-driver-550", "550.120-0ubuntu0~gpu22.04.1")], "graphics-drivers-ppa"),
    ([("nvidia-driver-550", "550.54.15-0ubuntu1"), ("nvidia-dkms-550", "550.54.15-0ubuntu1")], "nvidia-repository"),
    ([("nvidia-driver-550", "550.54.15-1ubuntu1")], "nvidia-repository"),
    ([("cuda-drivers-550", "550.54.15-1"), ("nvidia-driver-550", "550.54.15-0ubuntu1")], "nvidia-repository"),
    ([("nvidia-open", "570.124.06-1"), ("nvidia-kernel-open-dkms", "570.124.06-1")], "nvidia-repository"),
    ([("nvidia-driver-550", "550.67-0ubuntu3")], "ubuntu-archive"),  # a release's own pocket
    ([("nvidia-driver", "535.216.01-1~deb12u1"), ("nvidia-kernel-dkms", "535.216.01-1~deb12u1")], "debian-archive"),
    ([("nvidia-driver", "550.54.15-1")], "unknown"),
])
def test_driver_source(installed, source):
    assert packaging_of(installed)[1]["source"] == source


def test_debian_driver_and_tesla_packages():
    debian = [("nvidia-driver", "535.216.01-1~deb12u1"), ("nvidia-kernel-dkms", "535.216.01-1~deb12u1"),
              ("nvidia-smi", "535.216.01-1~deb12u1"), ("libcuda1", "535.216.01-1~deb12u1"),
              ("linux-image-6.1.0-27-amd64", "6.1.115-1")]
    packages, packaging = packaging_of(debian, kernel="6.1.0-27-amd64", loaded="535.216.01")
    assert sorted(packages) == ["libcuda1", "nvidia-driver", "nvidia-kernel-dkms", "nvidia-smi"]
    assert packaging == {
        "source": "debian-archive", "branch": "535", "branches": ["535"], "version": "535.216.01-1~deb12u1",
        "upstream_version": "535.216.01", "flavor": "proprietary", "kernel_modules": "dkms",
        "kernel": "6.1.0-27-amd64", "precompiled_kernels": [], "precompiled_flavours": [],
        "modules_for_running_kernel": None, "newest_kernel": "6.1.0-27-amd64",
    }
    _packages, tesla = packaging_of([("nvidia-tesla-535-driver", "535.216.01-1~deb12u1"),
                                     ("nvidia-tesla-535-kernel-dkms", "535.216.01-1~deb12u1")])
    assert (tesla["branch"], tesla["branches"], tesla["kernel_modules"]) == ("tesla-535", ["tesla-535"], "dkms")
    _packages, open_ = packaging_of([("nvidia-driver", "550.163.01-2+deb13u1"),
                                     ("nvidia-open-kernel-dkms", "550.163.01-2+deb13u1")])
    assert (open_["flavor"], open_["source"]) == ("open", "debian-archive")


def test_newest_installed_kernel_keeps_to_the_running_flavour():
    installed = {"linux-image-5.15.0-105-generic": "x", "linux-image-5.15.0-107-generic": "x",
                 "linux-image-5.15.0-1060-aws": "x", "linux-image-unsigned-5.15.0-110-lowlatency": "x",
                 "linux-image-generic": "x"}
    assert dp.newest_installed_kernel(installed, "5.15.0-105-generic") == "5.15.0-107-generic"
    assert dp.newest_installed_kernel(installed, "5.15.0-1055-aws") == "5.15.0-1060-aws"
    assert dp.newest_installed_kernel(installed, "6.18.44-custom") is None
    assert dp.newest_installed_kernel({}, "5.15.0-105-generic") is None


@pytest.mark.parametrize("name, release", [
    ("linux-image-5.15.0-107-generic", "5.15.0-107-generic"),
    ("linux-image-unsigned-5.15.0-110-lowlatency", "5.15.0-110-lowlatency"),
    ("linux-image-6.1.0-27-amd64", "6.1.0-27-amd64"),
    ("linux-image-generic", None), ("linux-image-amd64", None),
    ("linux-modules-nvidia-550-server-5.15.0-105-generic", None), ("base-files", None),
])
def test_kernel_image_release(name, release):
    assert dp.kernel_image_release(name) == release


def test_describes_packaging_keeps_driver_packages_and_kernel_images():
    """What capture_gpu_tree.py keeps of dpkg's status: the stanzas driver_packaging reads."""
    for name in ("nvidia-driver-550-server", "linux-modules-nvidia-550-server-generic", "cuda-drivers",
                 "nvidia-tesla-535-kernel-dkms", "linux-image-5.15.0-105-generic"):
        assert dp.describes_packaging(name), name
    for name in ("base-files", "linux-image-generic", "nvidia-container-toolkit", "libnvidia-container1",
                 "linux-modules-extra-5.15.0-105-generic"):
        assert not dp.describes_packaging(name), name


@pytest.mark.parametrize("text, release", [
    ("5.15.0-105-generic\n", "5.15.0-105-generic"), ("  6.8.0-52-generic  \nrest\n", "6.8.0-52-generic"),
    ("", None), ("\n\n", None), (None, None),
])
def test_parse_osrelease(text, release):
    assert dp.parse_osrelease(text) == release


def test_parse_dpkg_installed_keeps_installed_packages_in_file_order():
    text = dpkg(("nvidia-utils-550", "550.120-0ubuntu0.22.04.1"), ("base-files", "12ubuntu4"),
                ("nvidia-driver-535", "535.183.06-0ubuntu0.22.04.1", "deinstall ok config-files"),
                ("linux-image-5.15.0-105-generic", "5.15.0-105.115"))
    expected = [("nvidia-utils-550", "550.120-0ubuntu0.22.04.1"), ("base-files", "12ubuntu4"),
                ("linux-image-5.15.0-105-generic", "5.15.0-105.115")]
    assert list(dp.parse_dpkg_installed(text).items()) == expected
    assert list(dp.parse_dpkg_installed(text.replace("\n", "\r\n")).items()) == expected
    assert dp.parse_dpkg_installed(None) == {}


def test_packaging_findings_on_plain_data():
    _packages, packaging = packaging_of([("nvidia-driver-550-server", UBUNTU_550),
                                         ("nvidia-utils-550-server", UBUNTU_550)])
    driver = {"loaded": True, "version": "550.90.07", "packages": {"nvidia-driver-550-server": UBUNTU_550},
              "packaging": dict(packaging)}
    assert [code for code, _severity, _message in dp.packaging_findings(driver)] == ["driver_version_mismatch"]
    assert dp.packaging_findings(dict(driver, loaded=False)) == []
    assert dp.packaging_findings({"loaded": True, "version": "550.90.07", "packages": {}, "packaging": None}) == []


def test_gpu_facts_uses_the_module_utils():
    """gpu_facts keeps no copy of its own: the facts and findings come from gpuhost_driver_packages."""
    for name in ("driver_packaging", "packaging_findings", "parse_dpkg_installed", "parse_osrelease"):
        assert getattr(gf, name) is getattr(dp, name), name
    for name in ("classify_driver_package", "driver_source", "newest_installed_kernel", "DRIVER_PACKAGE_PATTERNS"):
        assert not hasattr(gf, name), name


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"\A(nvidia|linux-modules-nvidia|cuda-drivers|libnvidia)[a-z0-9.+-]{0,30}\Z"),
                          st.text(alphabet="0123456789.:-~+abgpuntd", min_size=1, max_size=24)), max_size=8),
       st.one_of(st.none(), st.text(max_size=30)), st.one_of(st.none(), st.text(max_size=12)))
def test_packaging_never_raises(installed, kernel, loaded):
    packages, packaging = dp.driver_packaging(dict(installed), kernel, loaded_version=loaded)
    driver = {"loaded": True, "version": loaded, "packages": dict(packages),
              "packaging": dict(packaging) if packaging else None}
    for code, severity, message in dp.packaging_findings(driver):
        assert severity == "warning" and message
    json.dumps(driver)


# ---------------------------------------------------------------------------
# Distribution releases
# ---------------------------------------------------------------------------

# Ubuntu's os-release files as the real releases ship them (tests/fixtures/os-release).
OS_RELEASE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "os-release"
OS_RELEASE = {path.name.removeprefix("ubuntu-"): path.read_text(encoding="utf-8")
              for path in sorted(OS_RELEASE_DIR.glob("ubuntu-*"))}


def os_release_root(tmp_path, codename):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text(OS_RELEASE[codename])
    return str(tmp_path)


@pytest.mark.parametrize("codename, version, pretty", [
    ("jammy", "22.04", "Ubuntu 22.04.5 LTS"), ("noble", "24.04", "Ubuntu 24.04.3 LTS")])
def test_supported_ubuntu_releases(tmp_path, codename, version, pretty):
    gpu = gf.collect(os_release_root(tmp_path, codename))
    assert gpu["distribution"] == {
        "id": "ubuntu", "version_id": version, "pretty_name": pretty, "codename": codename,
        "source": "/etc/os-release", "supported": True, "supported_list": SUPPORTED_LIST,
    }
    assert gpu["findings"] == []


@pytest.mark.parametrize("codename, version, pretty", [
    ("focal", "20.04", "Ubuntu 20.04.6 LTS"), ("questing", "25.10", "Ubuntu 25.10")])
def test_unsupported_ubuntu_releases_name_the_supported_ones(tmp_path, codename, version, pretty):
    gpu = gf.collect(os_release_root(tmp_path, codename))
    dist = gpu["distribution"]
    assert (dist["id"], dist["version_id"], dist["codename"], dist["supported"]) == ("ubuntu", version, codename, False)
    assert codes(gpu) == ["unsupported_distribution"]
    assert gpu["findings"][0]["severity"] == "error"
    assert gpu["findings"][0]["message"] == (
        "%s is not supported: gpuhost supports %s. Reinstall the host with one of these before provisioning it."
        % (pretty, SUPPORTED_LIST))
    assert "Ubuntu 22.04 (jammy)" in SUPPORTED_LIST and "Ubuntu 24.04 (noble)" in SUPPORTED_LIST


# ---------------------------------------------------------------------------
# gpuhost facts: the line about the driver's packages
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case, line", [
    ("ubuntu-archive-precompiled", "branch 550-server 550.120-0ubuntu0.22.04.1; from Ubuntu's archive; precompiled "
                                   "kernel modules, present for the running kernel 5.15.0-105-generic"),
    ("ubuntu-ppa-dkms", "branch 570 (open) 570.133.07-0ubuntu0~gpu24.04.1; from the graphics-drivers PPA; "
                        "dkms kernel modules"),
    ("eight-gpus-driver", "none (dpkg has no driver packages)"),
])
def test_facts_view_driver_packages(case, line):
    gpu = facts(case)
    rows = dict(views.facts_overview(gpu))
    assert rows["Driver packages"] == line
    text = views.render_text([views.facts_table("gpu1", gpu)], width=240)
    assert "Driver packages" in text and line in text


def test_facts_view_driver_packages_defensive():
    assert views.driver_packaging_text({}) == "unknown"
    assert dict(views.facts_overview({}))["Driver packages"] == "unknown"
    text = views.driver_packaging_text({"packages": {"x": "1"}, "packaging": {"branches": ["535", "550"]}})
    assert text == "branch unknown; from an unknown source; no kernel module package; 2 branches installed: 535, 550"
