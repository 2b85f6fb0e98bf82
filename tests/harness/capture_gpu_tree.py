"""Copy what gpu_facts reads on this host into a fixture tree (tests/fixtures/gpu/<name>).

    python3 tests/harness/capture_gpu_tree.py DEST [--nvidia-smi PATH]

Copies os-release, /proc/modules, /proc/driver/nvidia/version, the running kernel's release
(/proc/sys/kernel/osrelease), the vendor, device and class of every PCI device with the name of
its driver, /etc/docker/daemon.json, and the dpkg entries of NVIDIA's container packages, of the
driver's packages and of the kernel images (linux-image-<release>), which gpu_facts reads for the
driver's packaging, and of NVIDIA's Fabric Manager (nvidia-fabricmanager-<branch>); the unit files
and *.wants links of the NVIDIA units gpu_facts reports (nvidia-cdi-refresh, nvidia-persistenced,
nvidia-fabricmanager) and the comm of their running daemons (as DEST/proc/<pid>/comm); and writes
DEST/usr/bin/nvidia-smi, a stand-in that prints what the real
nvidia-smi printed for the two invocations gpu_facts makes. Nothing else of the host is copied.
Uses the standard library only (the driver packages are recognised by gpu_facts' own
module_utils/gpuhost_driver_packages.py, loaded from this checkout), so it runs on a bare GPU host.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

QUERY = [
    "--query-gpu=index,name,uuid,memory.total,driver_version,mig.mode.current,pci.bus_id",
    "--format=csv,noheader,nounits",
]
FILES = ("etc/os-release", "usr/lib/os-release", "proc/modules", "proc/driver/nvidia/version",
         "proc/sys/kernel/osrelease", "etc/docker/daemon.json")
PCI_ATTRIBUTES = ("vendor", "device", "class")
DPKG_PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                 "libnvidia-container-tools", "libnvidia-container1")
FABRICMANAGER_PACKAGE_RE = re.compile(r"^nvidia-fabricmanager(?:-\d{3,4})?$")
UNITS = ("nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service", "nvidia-persistenced.service",
         "nvidia-fabricmanager.service")
UNIT_DIRS = ("lib/systemd/system", "usr/lib/systemd/system", "etc/systemd/system")
# The daemons' names as the kernel keeps them in /proc/<pid>/comm (15 characters).
DAEMONS = ("nvidia-persiste", "nv-fabricmanage")
DRIVER_PACKAGES_FILE = (Path(__file__).resolve().parents[2]
                        / "gpuhost_cli/ansible_plugins/module_utils/gpuhost_driver_packages.py")


def load_driver_packages():
    """gpu_facts' recognition of the driver's packages, imported by path: it needs no Ansible."""
    spec = importlib.util.spec_from_file_location("gpuhost_driver_packages", DRIVER_PACKAGES_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


driver_packages = load_driver_packages()


def copy_file(source: Path, dest: Path) -> bool:
    try:
        data = source.read_bytes()
    except OSError:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return True


def copy_pci(source_root: Path, dest_root: Path) -> int:
    devices = source_root / "sys/bus/pci/devices"
    count = 0
    for device in sorted(devices.iterdir()) if devices.is_dir() else []:
        target = dest_root / "sys/bus/pci/devices" / device.name
        for name in PCI_ATTRIBUTES:
            copy_file(device / name, target / name)
        driver = device / "driver"
        if driver.exists():
            name = os.path.basename(os.readlink(driver))
            (dest_root / "sys/bus/pci/drivers" / name).mkdir(parents=True, exist_ok=True)
            (target / "driver").symlink_to(f"../../drivers/{name}")
        count += 1
    return count


def wanted_package(name: str) -> bool:
    """NVIDIA's container packages, Fabric Manager, and the driver's packages and kernel images
    that gpu_facts reads for the driver's packaging (the same recognition as gpu_facts')."""
    return (name in DPKG_PACKAGES or bool(FABRICMANAGER_PACKAGE_RE.match(name))
            or driver_packages.describes_packaging(name))


def copy_link(source: Path, dest: Path) -> bool:
    """A symbolic link as it is (units linked to /dev/null are masked)."""
    try:
        target = os.readlink(source)
    except OSError:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.symlink_to(target)
    return True


def copy_units(source_root: Path, dest_root: Path) -> int:
    """The unit files of UNITS and their links in etc/systemd/system/*.wants."""
    count = 0
    for unit in UNITS:
        for unit_dir in UNIT_DIRS:
            source = source_root / unit_dir / unit
            if source.is_symlink():
                count += copy_link(source, dest_root / unit_dir / unit)
            elif source.is_file():
                count += copy_file(source, dest_root / unit_dir / unit)
        # Not Path.glob: it skips links whose target is missing (absolute targets, another root).
        system = source_root / "etc/systemd/system"
        for wants in sorted(system.iterdir()) if system.is_dir() else []:
            link = wants / unit
            if wants.name.endswith(".wants") and wants.is_dir() and link.is_symlink():
                count += copy_link(link, dest_root / link.relative_to(source_root))
    return count


def copy_daemons(source_root: Path, dest_root: Path) -> int:
    """proc/<pid>/comm of the running NVIDIA daemons gpu_facts looks for."""
    count = 0
    for comm in sorted((source_root / "proc").glob("[0-9]*/comm")):
        try:
            name = comm.read_text().strip()
        except OSError:
            continue
        if name in DAEMONS:
            count += copy_file(comm, dest_root / comm.relative_to(source_root))
    return count


def dpkg_entries(text: str) -> str:
    """The stanzas of dpkg's status file that describe the packages gpu_facts reads."""
    keep = []
    for stanza in text.split("\n\n"):
        first = stanza.strip().splitlines()[:1]
        if first and first[0].startswith("Package: ") and wanted_package(first[0][9:].strip()):
            keep.append(stanza.strip())
    return "\n\n".join(keep) + ("\n" if keep else "")


def run(argv: list[str]) -> tuple[int, str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, LC_ALL="C"))
    return result.returncode, result.stdout + result.stderr


def stand_in(query: tuple[int, str], plain: tuple[int, str]) -> str:
    def answer(invocation: str, recorded: tuple[int, str]) -> str:
        status, text = recorded
        if not text.endswith("\n"):
            text += "\n"
        return (f"  {shlex.quote(invocation)})\n    cat <<'EOF'\n{text}EOF\n    exit {status}\n    ;;\n")

    return (
        "#!/bin/sh\n"
        "# Stand-in for nvidia-smi in a test fixture: what the real nvidia-smi printed on the\n"
        "# captured host, for the two invocations gpu_facts makes (tests/harness/capture_gpu_tree.py).\n"
        'case "$*" in\n'
        + answer(" ".join(QUERY), query)
        + answer("", plain)
        + '  *)\n    echo "stand-in nvidia-smi: no recording for: $*" >&2\n    exit 2\n    ;;\n'
        "esac\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--source-root", type=Path, default=Path("/"))
    parser.add_argument("--nvidia-smi", default=shutil.which("nvidia-smi"))
    args = parser.parse_args()
    dest: Path = args.dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)

    copied = [rel for rel in FILES if copy_file(args.source_root / rel, dest / rel)]
    devices = copy_pci(args.source_root, dest)
    units = copy_units(args.source_root, dest)
    daemons = copy_daemons(args.source_root, dest)
    status = args.source_root / "var/lib/dpkg/status"
    if status.is_file():
        (dest / "var/lib/dpkg").mkdir(parents=True)
        (dest / "var/lib/dpkg/status").write_text(dpkg_entries(status.read_text(errors="replace")))
    if args.nvidia_smi:
        smi = dest / "usr/bin/nvidia-smi"
        smi.parent.mkdir(parents=True)
        smi.write_text(stand_in(run([args.nvidia_smi, *QUERY]), run([args.nvidia_smi])))
        smi.chmod(0o755)
    print(f"captured {dest}: {', '.join(copied) or 'no files'}; {devices} PCI devices; {units} unit files "
          f"and links; {daemons} NVIDIA daemons; "
          f"nvidia-smi {'recorded' if args.nvidia_smi else 'not found'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
