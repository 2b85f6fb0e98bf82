#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Report what matters about a host's NVIDIA GPUs before it is provisioned
description:
  - Collects, without changing anything, the facts that decide whether a host can become a GPU
    container host, and explains in plain language what is wrong and how to fix it.
  - The distribution, from C(/etc/os-release) (or C(/usr/lib/os-release)), and whether gpuhost
    supports it (Debian 12 and 13, Ubuntu 22.04 and 24.04).
  - The NVIDIA GPUs on the PCI bus, from C(/sys/bus/pci/devices/*/). Only display controllers
    (PCI class C(0x0300) VGA and C(0x0302) 3D controller) with vendor C(0x10de) count as GPUs;
    the audio and USB functions of NVIDIA cards, NVSwitches and bridges do not. Model names come
    from a small built-in table of common data-center and workstation GPUs, then from the
    C(pci.ids) database (C(/usr/share/misc/pci.ids) or C(/usr/share/hwdata/pci.ids)) when it is
    installed.
  - The kernel driver, from C(/proc/driver/nvidia/version) and C(/proc/modules), and whether
    C(nouveau) is loaded.
  - How the driver is packaged, from C(/var/lib/dpkg/status) and the running kernel's release
    (C(/proc/sys/kernel/osrelease)) - Ubuntu's C(nvidia-driver-<branch>), C(nvidia-utils-<branch>),
    C(nvidia-dkms-<branch>) and precompiled C(linux-modules-nvidia-<branch>-<kernel>) packages,
    Debian's C(nvidia-driver), C(nvidia-kernel-dkms) and C(nvidia-tesla-<branch>-*) packages, and
    NVIDIA's C(cuda-drivers) and C(nvidia-open) - with warnings when precompiled modules are missing
    for the running or the newest installed kernel, when the installed driver differs from the
    loaded one, and when several driver branches are installed.
  - The GPUs as the driver sees them, from
    C(nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version,mig.mode.current,pci.bus_id
    --format=csv,noheader,nounits), and the CUDA version from the header of plain C(nvidia-smi).
  - The Docker engine's version, default runtime and runtimes, from C(docker version) and
    C(docker info), and the C(default-runtime) configured in C(/etc/docker/daemon.json); a
    registered runtime whose executable is missing on the host is reported as a problem.
  - The installed version of the NVIDIA Container Toolkit packages, from C(/var/lib/dpkg/status),
    and the NVIDIA security fixes that version lacks. A toolkit older than the security floor
    (the newest release in gpuhost's table of NVIDIA security bulletins, shipped with the module
    as C(module_utils/gpuhost_toolkit_security.py)) is reported as a problem that names the CVEs
    and bulletins.
  - How the toolkit gives containers GPUs, read from files only; nothing is missing when a file is
    absent. The runtime's settings in C(/etc/nvidia-container-runtime/config.toml) (its C(mode) and
    the two C(accept-nvidia-visible-devices-*) switches, with NVIDIA's defaults where a key or the
    file is absent; C(tomllib), and on Python 3.10 a narrow reader of just these keys); the CDI
    specifications in C(/etc/cdi) and C(/var/run/cdi) and the devices they list; whether NVIDIA's
    C(nvidia-cdi-refresh.path) and C(.service) units are installed and enabled (from the unit files
    and the C(*.wants) links under C(/etc/systemd/system), without asking systemd); whether
    C(nvidia-persistenced) runs (from C(/proc/*/comm)) and its socket exists.
  - Whether the Docker engine supports CDI device requests (C(--device nvidia.com/gpu=all)) and has
    them enabled, from its version (or, when the engine is not asked, the version the gpuhost
    docker role recorded in C(/etc/ansible/facts.d/gpuhost_docker.fact)) and the C(features.cdi)
    setting of C(/etc/docker/daemon.json).
  - The module never fails because a file is missing, unreadable or malformed, or because a
    command is missing, fails or times out; what could not be read is reported as V(null) or as
    an error text.
author:
  - gpuhost maintainers (!UNKNOWN)
options:
  root:
    description:
      - Directory that every file path is relative to, C(/) for the host itself.
      - Another directory is read as the root file system of a host, for example a prepared tree
        of C(/etc), C(/proc), C(/sys) and C(/var/lib/dpkg) files. The Docker engine is only queried
        when O(root) is C(/); for any other root C(docker.version), C(docker.default_runtime),
        C(docker.runtimes) and C(docker.running) are V(null), and only the files under O(root)
        (C(etc/docker/daemon.json), C(usr/bin/docker)) are read.
      - With another root, C(nvidia-smi) is looked up as C(<root>/usr/bin/nvidia-smi) and, when
        it exists, run on this host; point O(root) only at trees whose programs may be run.
    type: path
    default: /
  nvidia_smi:
    description:
      - Path of the C(nvidia-smi) program to run, used as given (not relative to O(root)).
      - By default C(nvidia-smi) is looked up on the PATH (and in the C(sbin) directories) when
        O(root) is C(/), and is C(<root>/usr/bin/nvidia-smi) otherwise.
    type: path
  timeout:
    description:
      - Seconds each command (C(nvidia-smi), C(docker)) may run before it is stopped and reported
        as failed.
    type: int
    default: 20
notes:
  - Read-only. Supports check mode; the result is the same with and without it, and C(changed)
    is always V(false).
  - The facts are returned as C(ansible_facts.gpuhost_gpu) and also as C(gpu) in the result.
  - Commands run with C(LC_ALL=C) so that their output can be parsed.
seealso:
  - name: NVIDIA System Management Interface (nvidia-smi)
    description: The query options and output formats that this module reads.
    link: https://docs.nvidia.com/deploy/nvidia-smi/index.html
  - name: NVIDIA Multi-Instance GPU User Guide
    description: How containers see GPUs whose MIG mode is enabled.
    link: https://docs.nvidia.com/datacenter/tesla/mig-user-guide/
  - name: NVIDIA Container Toolkit, Support for Container Device Interface
    description: CDI specifications, C(nvidia-ctk cdi generate) and the C(nvidia-cdi-refresh) units.
    link: https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/cdi-support.html
  - name: Debian wiki, NVIDIA graphics drivers
    description: Installing the NVIDIA driver on Debian.
    link: https://wiki.debian.org/NvidiaGraphicsDrivers
"""

EXAMPLES = r"""
- name: Look at the host's GPUs before provisioning it
  gpu_facts:

- name: Stop when the host cannot run GPU containers
  ansible.builtin.assert:
    that: gpuhost_gpu.problems | length == 0
    fail_msg: "{{ gpuhost_gpu.problems | join(' ') }}"
    success_msg: "{{ gpuhost_gpu.summary }}"

- name: Read a prepared tree instead of the host
  gpu_facts:
    root: /srv/host-snapshots/gpu17
  register: snapshot

- name: Use a specific nvidia-smi
  gpu_facts:
    nvidia_smi: /usr/local/nvidia/bin/nvidia-smi
    timeout: 60
"""

RETURN = r"""
gpu:
  description: The facts, also returned as C(ansible_facts.gpuhost_gpu).
  returned: always
  type: dict
  contains:
    root:
      description: The directory the facts were read from.
      type: str
      sample: /
    summary:
      description: One line about the GPUs, the driver and CUDA.
      type: str
      sample: 8 GPUs (NVIDIA H100 80GB HBM3), driver 550.54.15, CUDA 12.4
    problems:
      description:
        - Plain-language findings, each with the fix. Empty when nothing needs attention.
        - The same texts as the C(message) of each entry of C(findings), in that order.
      type: list
      elements: str
    findings:
      description: The findings with a stable C(code) and a C(severity) (V(error), V(warning) or V(info)).
      type: list
      elements: dict
      sample:
        - code: driver_not_loaded
          severity: error
          message: "1 NVIDIA GPU(s) found on the PCI bus but the NVIDIA driver is not loaded: ..."
    distribution:
      description:
        - From C(os-release). C(id), C(version_id), C(pretty_name) and C(codename) are V(null) when
          the file or the field is missing.
        - C(supported) tells whether gpuhost supports the distribution; C(supported_list) names the
          supported ones.
      type: dict
      sample:
        id: ubuntu
        version_id: "22.04"
        pretty_name: Ubuntu 22.04.4 LTS
        codename: jammy
        supported: true
        supported_list: Debian 12 (bookworm), Debian 13 (trixie), Ubuntu 22.04 (jammy), Ubuntu 24.04 (noble)
    pci_gpus:
      description:
        - The NVIDIA GPUs on the PCI bus, sorted by address.
        - C(driver) is the kernel driver bound to the device (C(nvidia), C(nouveau), C(vfio-pci)) or V(null).
      type: list
      elements: dict
      sample:
        - address: "0000:1b:00.0"
          device_id: "0x2330"
          class: "0x030200"
          driver: nvidia
          model: NVIDIA H100 SXM5 80GB
    driver:
      description:
        - C(loaded) is true when C(/proc/driver/nvidia/version) exists or the C(nvidia) module is in
          C(/proc/modules).
        - C(version) is the kernel module's version, and C(flavor) is V(open) for NVIDIA's open
          kernel modules and V(proprietary) otherwise (V(null) when unknown).
        - C(packages) maps each installed driver package (dpkg state C(install ok installed)) to its
          version; empty on hosts without driver packages (containers, CI machines, drivers installed
          with NVIDIA's C(.run) installer).
        - C(packaging) is V(null) when C(packages) is empty; otherwise it describes them.
          C(source) is V(ubuntu-archive) (versions such as C(550.120-0ubuntu0.22.04.1)),
          V(graphics-drivers-ppa) (C(~gpu) in the version, as in C(550.120-0ubuntu0~gpu22.04.1)),
          V(nvidia-repository) (NVIDIA's CUDA or driver repository - C(cuda-drivers),
          C(nvidia-open) or a version such as C(550.54.15-0ubuntu1)), V(debian-archive) (C(~deb12u1)
          or C(+deb13u1) in the version) or V(unknown).
          C(branch) is the driver branch in Ubuntu's terms (V(550), V(550-server); V(tesla-535) for
          Debian's C(nvidia-tesla-535-*); Debian's other packages carry the upstream major version),
          the one of the loaded driver when several are installed, and C(branches) lists every branch
          whose driver, library or dkms packages are installed. C(version) is the Debian version of
          the branch's user-space package (C(nvidia-utils-<branch>), C(libnvidia-compute-<branch>),
          else the driver metapackage) and C(upstream_version) NVIDIA's version within it.
          C(flavor) is V(open) when the kernel module packages are the open ones (C(-open)),
          V(proprietary) otherwise, V(null) without kernel module packages.
          C(kernel_modules) is V(precompiled) (Ubuntu's C(linux-modules-nvidia-*)), V(dkms), V(precompiled
          and dkms) or V(null). C(kernel) is the running kernel's release. C(precompiled_kernels) lists
          the kernel releases that the branch's precompiled modules are installed for, and
          C(precompiled_flavours) the flavour metapackages (C(linux-modules-nvidia-550-server-generic)
          follows the C(generic) kernels). C(modules_for_running_kernel) is true when precompiled
          modules for the running kernel are installed (V(null) without precompiled modules).
          C(newest_kernel) is the newest installed C(linux-image-<release>) of the running kernel's
          flavour, the one the boot loader starts by default.
      type: dict
      sample:
        loaded: true
        version: "550.120"
        flavor: proprietary
        nouveau_loaded: false
        packages:
          nvidia-driver-550-server: 550.120-0ubuntu0.22.04.1
          nvidia-utils-550-server: 550.120-0ubuntu0.22.04.1
          libnvidia-compute-550-server: 550.120-0ubuntu0.22.04.1
          linux-modules-nvidia-550-server-generic: 5.15.0-105.115
          linux-modules-nvidia-550-server-5.15.0-105-generic: 5.15.0-105.115
        packaging:
          source: ubuntu-archive
          branch: 550-server
          branches: [550-server]
          version: 550.120-0ubuntu0.22.04.1
          upstream_version: "550.120"
          flavor: proprietary
          kernel_modules: precompiled
          kernel: 5.15.0-105-generic
          precompiled_kernels: [5.15.0-105-generic]
          precompiled_flavours: [generic]
          modules_for_running_kernel: true
          newest_kernel: 5.15.0-105-generic
    nvidia_smi:
      description:
        - C(available) is true when C(nvidia-smi --query-gpu) ran and succeeded; otherwise C(error)
          says why (not found, not executable, the first line nvidia-smi printed, a timeout) and
          C(exit_status) is nvidia-smi's exit status when it ran and failed.
        - C(path) is the program that was run, or V(null) when none was found.
        - Each GPU has C(index) (int), C(name), C(uuid), C(memory_mib) (int), C(driver_version),
          C(mig_mode) (V(Enabled), V(Disabled), or V(null) where MIG is not supported),
          C(pci_bus_id) as nvidia-smi prints it and C(pci_address) in the sysfs form.
      type: dict
      sample:
        available: true
        path: /usr/bin/nvidia-smi
        error: null
        exit_status: null
        cuda_version: "12.4"
        driver_version: 550.54.15
        gpus:
          - index: 0
            name: NVIDIA H100 80GB HBM3
            uuid: GPU-5d2b6a0e-8e36-4c5c-9b8b-0f6f3f0b8a01
            memory_mib: 81559
            driver_version: 550.54.15
            mig_mode: Disabled
            pci_bus_id: "00000000:1B:00.0"
            pci_address: "0000:1b:00.0"
    docker:
      description:
        - C(installed) tells whether the C(docker) program was found. C(version) is the server's
          version, V(null) when Docker is not installed or not running (C(error) says why).
        - C(default_runtime) and C(runtimes) (sorted names) come from C(docker info).
        - C(configured_default_runtime) and C(configured_runtimes) come from C(etc/docker/daemon.json);
          C(daemon_json_error) is set when that file exists but cannot be read or parsed.
          C(configured_cdi) is that file's C(features.cdi) setting (V(true), V(false), or V(null) when unset).
        - C(recorded_version) is the C(server_version) in C(etc/ansible/facts.d/gpuhost_docker.fact),
          which the gpuhost docker role writes; V(null) when the file is absent.
        - C(cdi_supported) is true from Docker Engine 25.0, which accepts CDI device requests
          (C(docker run --device nvidia.com/gpu=all)). C(cdi_enabled) tells whether the engine
          accepts them now, from 28.2 unless C(features.cdi) is V(false), and from 25.0 to 28.1 only
          with C(features.cdi) V(true). Both come from C(version), or C(recorded_version) when the
          engine was not asked, and are V(null) when neither is known.
        - C(runtime_executables) lists each runtime C(etc/docker/daemon.json) registers, and each other
          one C(docker info) reports besides Docker's own runc runtimes, with the executable it runs
          (C(runtime), C(path), C(source), C(found)). C(found) is where that executable is, V(null) when
          it is missing or not executable (a problem). A C(path) with a slash is taken as given, a bare
          name is looked up in the directories of dockerd's PATH under systemd, as dockerd looks it up.
        - C(registry_mirrors) are the registry mirrors the running engine uses (C(RegistryConfig.Mirrors)
          of C(docker info), each with a trailing slash), whatever set them (daemon.json or a
          C(--registry-mirror) flag); V(null) when the engine was not asked.
        - The engine is only queried when O(root) is C(/); otherwise C(version), C(running),
          C(default_runtime), C(runtimes) and C(runtime_executables) are V(null).
      type: dict
      sample:
        installed: true
        running: true
        version: 27.5.1
        default_runtime: nvidia
        runtimes: [io.containerd.runc.v2, nvidia, runc]
        error: null
        configured_default_runtime: nvidia
        configured_runtimes: [nvidia]
        configured_cdi: null
        daemon_json_error: null
        registry_mirrors: [https://mirror.example.com/]
        runtime_executables:
          - runtime: nvidia
            path: nvidia-container-runtime
            source: /etc/docker/daemon.json
            found: /usr/bin/nvidia-container-runtime
        recorded_version: 28.5.1
        cdi_supported: true
        cdi_enabled: true
    toolkit:
      description:
        - The NVIDIA Container Toolkit as dpkg knows it. Only packages in state C(install ok installed)
          count.
        - C(version) is the version of C(nvidia-container-toolkit); C(packages) maps each installed
          toolkit package to its version.
        - C(security_floor) is the oldest release that carries every NVIDIA security fix gpuhost
          knows of. C(below_security_floor) is true when the installed version is older;
          C(missing_fixes) lists the fixes it lacks, oldest first, each with C(fixed_in), C(cves),
          C(bulletin) (the NVIDIA security bulletin's address) and C(published) (year and month).
          Both are V(false) and empty when the toolkit is not installed.
        - C(runtime_config) is what C(etc/nvidia-container-runtime/config.toml) sets. C(present) tells
          whether the file exists; C(mode) is the C([nvidia-container-runtime]) table's C(mode)
          (V(auto), V(legacy), V(cdi), V(csv), V(jit-cdi); V(auto), NVIDIA's default, when the key or the
          file is absent, with which the runtime picks V(cdi) for requests that name only CDI devices, V(csv)
          on Tegra, and otherwise V(legacy) before toolkit 1.18.0 and V(jit-cdi) from 1.18.0).
          C(accept_envvar_unprivileged) is the top-level
          C(accept-nvidia-visible-devices-envvar-when-unprivileged) (default V(true)) and
          C(accept_volume_mounts) is C(accept-nvidia-visible-devices-as-volume-mounts) (default
          V(false)). When the file cannot be read or parsed, C(error) says why and C(mode) and both
          switches are V(null).
        - C(isolation) names what those two switches let a container do, as NVIDIA's runtime and hook
          apply them to C(NVIDIA_VISIBLE_DEVICES) in every mode. V(envvar) - any container that sets
          C(NVIDIA_VISIBLE_DEVICES) (many CUDA images do) gets those GPUs when the nvidia runtime runs
          it, also unprivileged and without C(--gpus); where the nvidia runtime is Docker's default
          runtime, that is every container. With C(accept_volume_mounts) also true, device lists
          mounted under C(/var/run/nvidia-container-devices) are read first.
          V(volume-mounts) - the variable is ignored for unprivileged containers; they get GPUs only
          from device lists mounted under C(/var/run/nvidia-container-devices) (the Kubernetes device
          plugin's volume-mounts strategy) or CDI annotations. V(privileged-only) - the variable is
          honoured only for privileged containers; unprivileged ones get GPUs only from CDI annotations
          or from CDI devices that the engine itself injects (C(--device nvidia.com/gpu=...)). Docker's
          C(--gpus) hands its devices to NVIDIA's hook in C(NVIDIA_VISIBLE_DEVICES) too, so the last two
          settings apply to it as well. V(null) when the toolkit is not installed and there is no
          configuration file, or when the file does not parse.
        - C(cdi) lists the CDI specifications (C(specs), files ending in C(.yaml), C(.yml) or C(.json)
          in C(etc/cdi) and C(var/run/cdi); C(nvidia-ctk cdi generate) writes C(/var/run/cdi/nvidia.yaml))
          and the fully qualified names of the devices they define (C(devices), such as
          V(nvidia.com/gpu=0) and V(nvidia.com/gpu=all)). C(source) tells how the names were read,
          V(nvidia-ctk cdi list) when O(root) is C(/) and C(/usr/bin/nvidia-ctk) runs successfully,
          otherwise V(files), for which JSON specifications are parsed and YAML ones are read narrowly (the
          top-level C(kind) and the C(name) of each entry of C(devices)), as hosts need not have a YAML
          library. C(errors) names the specifications that could not be read that way.
        - C(cdi_refresh) has C(path) and C(service), for NVIDIA's C(nvidia-cdi-refresh.path) and
          C(nvidia-cdi-refresh.service) (toolkit 1.18.0 and newer), which regenerate
          C(/var/run/cdi/nvidia.yaml) when the driver or the toolkit changes. Each has C(installed)
          (a unit file in C(lib/systemd/system), C(usr/lib/systemd/system) or C(etc/systemd/system)),
          C(enabled) (a link in C(etc/systemd/system/*.wants/)) and C(masked) (linked to C(/dev/null)).
        - C(persistenced) has C(running), true when a process under C(proc/) is C(nvidia-persistenced)
          (the kernel shortens the name in C(/proc/<pid>/comm) to V(nvidia-persiste)), C(socket),
          true when C(var/run/nvidia-persistenced/socket) exists, and C(installed), C(enabled) and
          C(masked) of C(nvidia-persistenced.service), read as for C(cdi_refresh).
      type: dict
      sample:
        installed: true
        version: 1.17.8-1
        packages:
          nvidia-container-toolkit: 1.17.8-1
          nvidia-container-toolkit-base: 1.17.8-1
          libnvidia-container-tools: 1.17.8-1
          libnvidia-container1: 1.17.8-1
        security_floor: 1.17.8
        below_security_floor: false
        missing_fixes: []
        runtime_config:
          path: /etc/nvidia-container-runtime/config.toml
          present: true
          error: null
          mode: auto
          accept_envvar_unprivileged: true
          accept_volume_mounts: false
        isolation: envvar
        cdi:
          specs: [/var/run/cdi/nvidia.yaml]
          devices: [nvidia.com/gpu=0, nvidia.com/gpu=GPU-5d2b6a0e-8e36-4c5c-9b8b-0f6f3f0b8a01, nvidia.com/gpu=all]
          source: nvidia-ctk cdi list
          errors: []
        cdi_refresh:
          path: {installed: true, enabled: true, masked: false}
          service: {installed: true, enabled: false, masked: false}
        persistenced: {running: true, socket: true, installed: true, enabled: true, masked: false}
    nvswitch:
      description:
        - NVSwitch devices and NVIDIA's Fabric Manager, which NVSwitch systems (HGX, DGX) need before
          CUDA can use their GPUs.
        - C(count) and C(addresses) of the NVIDIA PCI devices of class bridge (V(0x0680xx)) under
          C(sys/bus/pci/devices), which are the NVSwitches.
        - C(fabricmanager) has C(installed) (a dpkg package V(nvidia-fabricmanager-<branch>) or
          V(nvidia-fabricmanager) in state install ok installed), C(package) and C(version) (its name and
          Debian version), C(unit) (C(installed), C(enabled), C(masked) of C(nvidia-fabricmanager.service)),
          C(running) (a process C(nv-fabricmanager) under C(proc/), shortened by the kernel to
          V(nv-fabricmanage)) and C(version_matches) (the package's upstream version equals the loaded
          driver's; V(null) when either is unknown). Reported on every host; judged only where there
          are NVSwitches.
      returned: always
      type: dict
      sample:
        count: 4
        addresses: ["0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"]
        fabricmanager:
          installed: true
          package: nvidia-fabricmanager-550
          version: 550.54.15-1
          unit: {installed: true, enabled: true, masked: false}
          running: true
          version_matches: true
ansible_facts:
  description: Facts set by the module.
  returned: always
  type: dict
  contains:
    gpuhost_gpu:
      description: The same dictionary as RV(gpu).
      type: dict
"""

import glob
import json
import os
import re
import stat
from collections import OrderedDict

try:
    import tomllib
except ImportError:  # Python 3.10: read_runtime_config falls back to a narrow reader
    tomllib = None

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpuhost_docker_cdi import docker_cdi
from ansible.module_utils.gpuhost_driver_packages import (
    driver_packaging, packaging_findings, parse_dpkg_installed, parse_osrelease)
from ansible.module_utils.gpuhost_host_probe import first_line, is_executable, parse_nvrm_version, run_command
from ansible.module_utils.gpuhost_platforms import SUPPORTED_LIST, find_release
from ansible.module_utils.gpuhost_toolkit_security import describe_fixes, missing_fixes, security_floor


NVIDIA_VENDOR = "0x10de"
GPU_CLASS_PREFIXES = ("0x0300", "0x0302")
# NVSwitches show on the PCI bus as NVIDIA devices of class 0x068000 (bridge, "other").
BRIDGE_CLASS_PREFIX = "0x0680"


# Names as in the pci.ids database (the part in brackets), for the GPUs gpuhost meets most often.
KNOWN_MODELS = {
    "0x1db1": "NVIDIA Tesla V100 SXM2 16GB",
    "0x1db4": "NVIDIA Tesla V100 PCIe 16GB",
    "0x1db5": "NVIDIA Tesla V100 SXM2 32GB",
    "0x1eb8": "NVIDIA Tesla T4",
    "0x20b0": "NVIDIA A100 SXM4 40GB",
    "0x20b2": "NVIDIA A100 SXM4 80GB",
    "0x20b5": "NVIDIA A100 PCIe 80GB",
    "0x20b7": "NVIDIA A30 PCIe",
    "0x20f1": "NVIDIA A100 PCIe 40GB",
    "0x2230": "NVIDIA RTX A6000",
    "0x2236": "NVIDIA A10",
    "0x2330": "NVIDIA H100 SXM5 80GB",
    "0x2331": "NVIDIA H100 PCIe",
    "0x2335": "NVIDIA H200 SXM 141GB",
    "0x2684": "NVIDIA GeForce RTX 4090",
    "0x26b9": "NVIDIA L40S",
    "0x27b8": "NVIDIA L4",
    "0x2901": "NVIDIA B200",
}

PCI_IDS_PATHS = ("usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids")

SMI_FIELDS = ("index", "name", "uuid", "memory.total", "driver_version", "mig.mode.current", "pci.bus_id")
SMI_QUERY = ["--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv,noheader,nounits"]

TOOLKIT_PACKAGES = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)

MAX_READ = 4 * 1024 * 1024
NOT_AVAILABLE = ("", "[n/a]", "n/a", "[not supported]", "not supported", "[unknown error]",
                 "[insufficient permissions]")

_CUDA_RE = re.compile(r"CUDA Version:\s*(\d+(?:\.\d+)*)")
_PCI_ADDR_RE = re.compile(r"^([0-9a-fA-F]+):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")


# ---------------------------------------------------------------------------
# Reading files under the root
# ---------------------------------------------------------------------------

def under(root, *parts):
    """`parts` (an absolute or relative path) under `root`."""
    path = os.path.join(*parts) if parts else ""
    return os.path.join(root or "/", path.lstrip("/"))


def read_text(path, limit=MAX_READ):
    """The text of a regular file (undecodable bytes replaced), or None when it cannot be read.

    Anything but a regular file (a directory, a FIFO, a device) counts as unreadable, so that
    a stray FIFO cannot block the module.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as f:
            data = f.read(limit)
    except (OSError, ValueError):
        return None
    return data.decode("utf-8", "replace")


def read_value(path):
    """The first line of a small sysfs-style file, stripped and lower-cased, or None."""
    text = read_text(path, limit=4096)
    if text is None:
        return None
    lines = text.strip().splitlines()
    return lines[0].strip().lower() if lines else None


# ---------------------------------------------------------------------------
# Distribution
# ---------------------------------------------------------------------------

def parse_os_release(text):
    """The KEY=value pairs of an os-release file, with shell quoting removed."""
    values = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _equals, value = line.partition("=")
        key = key.strip()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = re.sub(r'\\(["\\`$])', r"\1", value)
        values[key] = value
    return values


def is_supported(dist_id, version_id):
    return find_release(dist_id, version_id) is not None


def distribution_facts(root):
    text = None
    source = None
    for rel in ("etc/os-release", "usr/lib/os-release"):
        text = read_text(under(root, rel))
        if text is not None:
            source = "/" + rel
            break
    values = parse_os_release(text)
    dist_id = (values.get("ID") or "").strip().lower() or None
    version_id = (values.get("VERSION_ID") or "").strip() or None
    return {
        "id": dist_id,
        "version_id": version_id,
        "pretty_name": values.get("PRETTY_NAME") or None,
        "codename": values.get("VERSION_CODENAME") or None,
        "source": source,
        "supported": is_supported(dist_id, version_id),
        "supported_list": SUPPORTED_LIST,
    }


# ---------------------------------------------------------------------------
# PCI bus
# ---------------------------------------------------------------------------

def normalize_id(value):
    """'0x10DE' / '10de' -> '0x10de'; None for anything that is not a hexadecimal ID."""
    if not value:
        return None
    text = value.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if not text or not re.match(r"^[0-9a-f]{1,8}$", text):
        return None
    return "0x" + text.zfill(4)


def is_gpu_class(pci_class):
    return bool(pci_class) and pci_class.startswith(GPU_CLASS_PREFIXES)


def parse_pci_ids(text, vendor="10de"):
    """Device names of one vendor from pci.ids text: {'0x2330': 'GH100 [H100 SXM5 80GB]', ...}."""
    names = {}
    inside = False
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith("\t"):
            if inside:
                break
            head = line.split(None, 1)
            inside = bool(head) and head[0].lower() == vendor
            continue
        if not inside or line.startswith("\t\t"):
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            device = normalize_id(parts[0])
            if device:
                names[device] = parts[1].strip()
    return names


def model_from_pci_ids_name(name):
    """'GH100 [H100 SXM5 80GB]' -> 'NVIDIA H100 SXM5 80GB'; names without brackets keep their text."""
    match = re.search(r"\[([^\]]+)\]", name)
    text = match.group(1).strip() if match else name.strip()
    return text if text.upper().startswith("NVIDIA") else "NVIDIA " + text


class PciIds:
    """The NVIDIA block of the first readable pci.ids under the root, read once and only if needed."""

    def __init__(self, root):
        self.root = root
        self._names = None

    def names(self):
        if self._names is None:
            self._names = {}
            for rel in PCI_IDS_PATHS:
                text = read_text(under(self.root, rel), limit=16 * 1024 * 1024)
                if text:
                    self._names = parse_pci_ids(text)
                    break
        return self._names

    def model(self, device_id):
        name = self.names().get(device_id)
        return model_from_pci_ids_name(name) if name else None


def model_name(device_id, pci_ids=None):
    if device_id in KNOWN_MODELS:
        return KNOWN_MODELS[device_id]
    if pci_ids is not None and device_id:
        found = pci_ids.model(device_id)
        if found:
            return found
    return "NVIDIA device %s" % (device_id or "(unknown ID)")


def driver_of(device_dir):
    try:
        target = os.readlink(os.path.join(device_dir, "driver"))
    except (OSError, ValueError):
        return None
    name = os.path.basename(target.rstrip("/"))
    return name or None


def nvidia_pci_devices(root):
    """(address, sysfs directory, class) of each NVIDIA device on the PCI bus, by address."""
    base = under(root, "sys/bus/pci/devices")
    try:
        entries = sorted(os.listdir(base))
    except (OSError, ValueError):
        return []
    found = []
    for address in entries:
        device_dir = os.path.join(base, address)
        if normalize_id(read_value(os.path.join(device_dir, "vendor"))) == NVIDIA_VENDOR:
            found.append((address, device_dir, normalize_id(read_value(os.path.join(device_dir, "class")))))
    return found


def pci_gpus(root):
    pci_ids = PciIds(root)
    gpus = []
    for address, device_dir, pci_class in nvidia_pci_devices(root):
        if not is_gpu_class(pci_class):
            continue
        device_id = normalize_id(read_value(os.path.join(device_dir, "device")))
        gpus.append({
            "address": address,
            "device_id": device_id,
            "class": pci_class,
            "driver": driver_of(device_dir),
            "model": model_name(device_id, pci_ids),
        })
    return gpus


def is_nvswitch_class(pci_class):
    return bool(pci_class) and pci_class.startswith(BRIDGE_CLASS_PREFIX)


def pci_nvswitches(root):
    """The PCI addresses of the NVSwitches: NVIDIA devices of class bridge (0x0680xx)."""
    return [address for address, _device_dir, pci_class in nvidia_pci_devices(root) if is_nvswitch_class(pci_class)]


def pci_address(bus_id):
    """nvidia-smi's '00000000:1B:00.0' -> sysfs's '0000:1b:00.0'; None when it is not a PCI address."""
    match = _PCI_ADDR_RE.match((bus_id or "").strip())
    if not match:
        return None
    domain, bus, dev, fn = match.groups()
    return "%04x:%02x:%02x.%s" % (int(domain, 16), int(bus, 16), int(dev, 16), fn)


# ---------------------------------------------------------------------------
# Kernel driver
# ---------------------------------------------------------------------------

def loaded_modules(text):
    names = set()
    for line in (text or "").splitlines():
        fields = line.split()
        if fields:
            names.add(fields[0])
    return names


def running_kernel(root):
    """The running kernel's release (uname -r) from proc/sys/kernel/osrelease, or None."""
    return parse_osrelease(read_text(under(root, "proc/sys/kernel/osrelease"), limit=4096))


def driver_facts(root, installed):
    """The driver as the kernel reports it, and its packages among `installed` (dpkg's
    installed packages, parse_dpkg_installed)."""
    version_text = read_text(under(root, "proc/driver/nvidia/version"))
    modules = loaded_modules(read_text(under(root, "proc/modules")))
    version, flavor = parse_nvrm_version(version_text)
    packages, packaging = driver_packaging(installed, running_kernel(root), loaded_version=version)
    return {
        "loaded": version_text is not None or "nvidia" in modules,
        "version": version,
        "flavor": flavor,
        "nouveau_loaded": "nouveau" in modules,
        "packages": dict(packages),
        "packaging": dict(packaging) if packaging is not None else None,
    }


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

def find_program(root, name, which):
    """`name` on the PATH for the host itself, `<root>/usr/bin/<name>` for any other root."""
    if is_host_root(root):
        return which(name) if which else None
    candidate = under(root, "usr/bin", name)
    return candidate if os.path.lexists(candidate) else None


def is_host_root(root):
    return os.path.realpath(root or "/") == "/"


# ---------------------------------------------------------------------------
# nvidia-smi
# ---------------------------------------------------------------------------

def _optional(value):
    text = (value or "").strip()
    return None if text.lower() in NOT_AVAILABLE else text


def _int_or_none(value):
    text = _optional(value)
    if text is None:
        return None
    try:
        return int(float(text))
    except ValueError:
        return None


def parse_smi_csv(text):
    """GPUs from `nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader,nounits`."""
    gpus = []
    n = len(SMI_FIELDS)
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < n:
            continue
        if len(fields) > n:  # a comma in the name
            extra = len(fields) - n
            fields = [fields[0], ", ".join(fields[1:2 + extra])] + fields[2 + extra:]
        index = _int_or_none(fields[0])
        if index is None:
            continue
        bus_id = _optional(fields[6])
        gpus.append({
            "index": index,
            "name": _optional(fields[1]),
            "uuid": _optional(fields[2]),
            "memory_mib": _int_or_none(fields[3]),
            "driver_version": _optional(fields[4]),
            "mig_mode": _optional(fields[5]),
            "pci_bus_id": bus_id,
            "pci_address": pci_address(bus_id),
        })
    return gpus


def parse_cuda_version(text):
    match = _CUDA_RE.search(text or "")
    return match.group(1) if match else None


def nvidia_smi_facts(path, timeout, run=run_command):
    facts = {"available": False, "path": path, "error": None, "exit_status": None,
             "cuda_version": None, "driver_version": None, "gpus": []}
    if not path:
        facts["error"] = "nvidia-smi was not found"
        return facts
    if not is_executable(path):
        facts["error"] = "%s is not an executable file" % path
        return facts
    rc, out, err = run([path] + SMI_QUERY, timeout)
    if rc != 0:
        facts["exit_status"] = rc
        facts["error"] = first_line(err, out) or "nvidia-smi printed nothing (exit status %s)" % rc
        return facts
    gpus = parse_smi_csv(out)
    if not gpus and out.strip():
        facts["error"] = "unexpected output from nvidia-smi --query-gpu: %s" % first_line(out)
        return facts
    facts["available"] = True
    facts["gpus"] = gpus
    versions = [g["driver_version"] for g in gpus if g["driver_version"]]
    facts["driver_version"] = versions[0] if versions else None
    rc, out, _err = run([path], timeout)
    if rc == 0:
        facts["cuda_version"] = parse_cuda_version(out)
    return facts


# ---------------------------------------------------------------------------
# Docker
# ---------------------------------------------------------------------------

def load_daemon_json(text):
    """(the object daemon.json holds, error): an empty object and the error when it holds none."""
    try:
        data = json.loads(text)
    except ValueError as e:
        return {}, "not valid JSON: %s" % e
    if not isinstance(data, dict):
        return {}, "not a JSON object"
    return data, None


def daemon_json_settings(data):
    """(default runtime, runtime names, `features.cdi`) of daemon.json's object.

    `features.cdi` is True, False, or None when it is not set.
    """
    default = data.get("default-runtime")
    runtimes = data.get("runtimes")
    features = data.get("features")
    cdi = features.get("cdi") if isinstance(features, dict) else None
    return (default if isinstance(default, str) else None,
            sorted(str(k) for k in runtimes) if isinstance(runtimes, dict) else None,
            cdi if isinstance(cdi, bool) else None)


def parse_daemon_json(text):
    """(default runtime, runtime names, `features.cdi`, error) from the text of daemon.json."""
    data, error = load_daemon_json(text)
    return daemon_json_settings(data) + (error,)


def runtime_paths(runtimes):
    """{name: executable} of the runtimes of daemon.json's or `docker info`'s `runtimes` that
    name one (a `path`; a containerd shim named by `runtimeType` has none)."""
    if not isinstance(runtimes, dict):
        return {}
    return {str(name): spec["path"] for name, spec in runtimes.items()
            if isinstance(spec, dict) and isinstance(spec.get("path"), str) and spec["path"].strip()}


def parse_docker_info(text):
    """(default runtime, runtime names, {runtime: executable}) from `docker info --format '{{json .}}'`."""
    try:
        data = json.loads(text)
    except ValueError:
        return None, None, {}
    if not isinstance(data, dict):
        return None, None, {}
    default = data.get("DefaultRuntime")
    runtimes = data.get("Runtimes")
    return (default if isinstance(default, str) and default else None,
            sorted(str(k) for k in runtimes) if isinstance(runtimes, dict) else None,
            runtime_paths(runtimes))


def parse_registry_mirrors(text):
    """The registry mirrors dockerd runs with (RegistryConfig.Mirrors of `docker info`), or None."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    config = data.get("RegistryConfig") if isinstance(data, dict) else None
    mirrors = config.get("Mirrors") if isinstance(config, dict) else None
    if mirrors is None and isinstance(config, dict):
        return []
    return [str(m) for m in mirrors] if isinstance(mirrors, list) else None


# The PATH dockerd runs with under systemd (docker.service sets none): where it looks for a
# runtime's executable given by a bare name.
DOCKERD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Docker's own runtimes (containerd's runc shims), which `docker info` lists on every engine.
BUILTIN_RUNTIMES = ("runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux")


def find_runtime(root, path, search=DOCKERD_PATH):
    """Where a runtime's executable is under `root`, or None: a path with a slash as given, a bare
    name in the directories of dockerd's PATH, as dockerd looks it up."""
    candidates = [path] if "/" in path else [os.path.join(d, path) for d in search]
    for candidate in candidates:
        if is_executable(under(root, candidate)):
            return candidate
    return None


def runtime_executables(root, configured, reported):
    """Each runtime daemon.json registers, and each other one `docker info` reports besides Docker's
    own, with its executable: {runtime, path, source, found}; `found` is where the executable is,
    None when it is missing or not executable."""
    entries = []
    for source, runtimes in (("/etc/docker/daemon.json", configured), ("docker info", reported)):
        for name, path in sorted(runtimes.items()):
            if source == "docker info" and (name in BUILTIN_RUNTIMES or name in configured):
                continue
            entries.append({"runtime": name, "path": path, "source": source, "found": find_runtime(root, path)})
    return entries


DOCKER_LOCAL_FACT = "etc/ansible/facts.d/gpuhost_docker.fact"


def recorded_docker_version(root):
    """server_version from the local fact the docker role writes, or None."""
    text = read_text(under(root, DOCKER_LOCAL_FACT), limit=64 * 1024)
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    version = data.get("server_version") if isinstance(data, dict) else None
    return version.strip() if isinstance(version, str) and version.strip() else None


def docker_facts(root, timeout, which=None, run=run_command):
    facts, configured, reported = engine_facts(root, timeout, which=which, run=run)
    # A saved copy of a host's files holds no programs: the executables are looked for on the host itself only.
    facts["runtime_executables"] = runtime_executables(root, configured, reported) if is_host_root(root) else None
    facts["recorded_version"] = recorded_docker_version(root)
    facts["cdi_supported"], facts["cdi_enabled"] = docker_cdi(
        facts["version"] or facts["recorded_version"], facts["configured_cdi"])
    return facts


def engine_facts(root, timeout, which=None, run=run_command):
    """(facts, {runtime: executable} of daemon.json, {runtime: executable} of `docker info`)."""
    facts = {"installed": False, "running": None, "version": None, "default_runtime": None,
             "runtimes": None, "error": None, "configured_default_runtime": None,
             "configured_runtimes": None, "configured_cdi": None, "daemon_json_error": None,
             "registry_mirrors": None}
    configured, reported = {}, {}

    path = under(root, "etc/docker/daemon.json")
    if os.path.lexists(path):
        text = read_text(path)
        if text is None:
            facts["daemon_json_error"] = "cannot read /etc/docker/daemon.json"
        elif text.strip():
            data, error = load_daemon_json(text)
            (facts["configured_default_runtime"], facts["configured_runtimes"],
             facts["configured_cdi"]) = daemon_json_settings(data)
            configured = runtime_paths(data.get("runtimes"))
            if error:
                facts["daemon_json_error"] = "/etc/docker/daemon.json is %s" % error

    docker = find_program(root, "docker", which)
    facts["installed"] = bool(docker)
    if not is_host_root(root):
        return facts, configured, reported
    if not docker:
        facts["running"] = False
        facts["error"] = "docker was not found"
        return facts, configured, reported
    rc, out, err = run([docker, "version", "--format", "{{.Server.Version}}"], timeout)
    version = (out or "").strip()
    if rc != 0 or not version:
        facts["running"] = False
        facts["error"] = first_line(err, out) or "docker version failed (exit status %s)" % rc
        return facts, configured, reported
    facts["running"] = True
    facts["version"] = version.splitlines()[0].strip()
    rc, out, _err = run([docker, "info", "--format", "{{json .}}"], timeout)
    if rc == 0:
        facts["default_runtime"], facts["runtimes"], reported = parse_docker_info(out)
        facts["registry_mirrors"] = parse_registry_mirrors(out)
    return facts, configured, reported


# ---------------------------------------------------------------------------
# dpkg
# ---------------------------------------------------------------------------

def parse_dpkg_status(text, wanted=TOOLKIT_PACKAGES):
    """{package: version} for the `wanted` packages that dpkg has in state 'install ok installed'."""
    return select_packages(parse_dpkg_installed(text), wanted)


def select_packages(installed, wanted=TOOLKIT_PACKAGES):
    """The `wanted` packages of `installed` ({package: version}), in the order of `wanted`."""
    return OrderedDict((name, installed[name]) for name in wanted if name in installed)


def read_dpkg_status(root):
    return read_text(under(root, "var/lib/dpkg/status"), limit=64 * 1024 * 1024)


def toolkit_facts(root, installed, timeout=20, run=run_command):
    """The toolkit among `installed` (dpkg's installed packages), its config and CDI state."""
    packages = select_packages(installed)
    version = packages.get("nvidia-container-toolkit")
    try:
        lacking = missing_fixes(version) if version else []
    except ValueError:
        lacking = []  # not a Debian version; dpkg would not have installed it
    installed = "nvidia-container-toolkit" in packages
    runtime_config = runtime_config_facts(root)
    return {
        "installed": installed,
        "version": version,
        "packages": dict(packages),
        "security_floor": security_floor(),
        "below_security_floor": bool(lacking),
        "missing_fixes": lacking,
        "runtime_config": runtime_config,
        "isolation": isolation_of(runtime_config) if installed or runtime_config["present"] else None,
        "cdi": cdi_facts(root, timeout, run=run),
        "cdi_refresh": cdi_refresh_facts(root),
        "persistenced": persistenced_facts(root),
    }


# ---------------------------------------------------------------------------
# The toolkit's runtime configuration, CDI specifications, nvidia-persistenced
# ---------------------------------------------------------------------------

RUNTIME_CONFIG = "etc/nvidia-container-runtime/config.toml"
# The keys and defaults of NVIDIA's config.toml (api/config/v1/config.go in nvidia-container-toolkit).
ENVVAR_UNPRIVILEGED_KEY = "accept-nvidia-visible-devices-envvar-when-unprivileged"
VOLUME_MOUNTS_KEY = "accept-nvidia-visible-devices-as-volume-mounts"
RUNTIME_TABLE = "nvidia-container-runtime"
DEFAULT_MODE = "auto"

CDI_SPEC_DIRS = ("etc/cdi", "var/run/cdi")
CDI_GPU_KIND = "nvidia.com/gpu"
CDI_SUFFIXES = (".yaml", ".yml", ".json")
CDI_REFRESH_UNITS = ("nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service")
UNIT_DIRS = ("lib/systemd/system", "usr/lib/systemd/system", "etc/systemd/system")
PERSISTENCED = "nvidia-persistenced"
# The kernel keeps 15 characters of a program's name in /proc/<pid>/comm.
PERSISTENCED_COMM = PERSISTENCED[:15]
PERSISTENCED_SOCKET = "var/run/nvidia-persistenced/socket"
PERSISTENCED_UNIT = "nvidia-persistenced.service"

_CDI_DEVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*=[A-Za-z0-9][A-Za-z0-9._:-]*$")
_TOML_KEY_RE = re.compile(r"^([A-Za-z0-9_-]+|\"[^\"]*\")\s*=\s*(.*)$")
_TOML_TABLE_RE = re.compile(r"^\[\s*([A-Za-z0-9_.\"-]+)\s*\]\s*(?:#.*)?$")


class ConfigError(ValueError):
    pass


class Unparsed(str):
    """A TOML value that the narrow reader keeps as text: a number, an array, a date."""


def _toml_scalar(text):
    """A narrow reading of one TOML value: true/false, a quoted string, or anything else as text."""
    value = text.strip()
    if value.startswith(('"', "'")):
        quote = value[0]
        end = value.find(quote, 1)
        if end < 0:
            raise ConfigError("unterminated string: %s" % value)
        rest = value[end + 1:].strip()
        if rest and not rest.startswith("#"):
            raise ConfigError("unexpected text after a string: %s" % value)
        return value[1:end]
    value = value.split("#", 1)[0].strip()
    if value == "true":
        return True
    if value == "false":
        return False
    if not value:
        raise ConfigError("a key without a value")
    return Unparsed(value)


def parse_toml_narrowly(text):
    """The top-level keys and the [nvidia-container-runtime] table's keys of a config.toml.

    For Python 3.10, which has no tomllib: only single-line `key = value` pairs are read; values
    that are not booleans or strings are kept as Unparsed text. Other tables are skipped.
    """
    data = {}
    table = data
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            match = _TOML_TABLE_RE.match(line)
            if not match or line.startswith("[["):
                table = None  # an array of tables or a form this reader does not need
                continue
            name = match.group(1).strip().strip('"')
            table = data.setdefault(RUNTIME_TABLE, {}) if name == RUNTIME_TABLE else None
            continue
        match = _TOML_KEY_RE.match(line)
        if not match:
            raise ConfigError("line %d is not a key = value pair: %s" % (number, line))
        if table is None:
            continue
        try:
            table[match.group(1).strip('"')] = _toml_scalar(match.group(2))
        except ConfigError as e:
            raise ConfigError("line %d: %s" % (number, e))
    return data


def parse_runtime_config(text):
    """The settings gpuhost reports from the text of config.toml; ConfigError when it does not parse."""
    if tomllib is not None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(str(e))
    else:
        data = parse_toml_narrowly(text)
    runtime = data.get(RUNTIME_TABLE, {})
    if not isinstance(runtime, dict):
        raise ConfigError("%s is not a table" % RUNTIME_TABLE)

    def setting(table, key, default, kind):
        value = table.get(key, default)
        if not isinstance(value, kind) or isinstance(value, Unparsed):
            raise ConfigError("%s = %r is not a %s" % (key, value, "boolean" if kind is bool else "string"))
        return value

    return {
        "mode": setting(runtime, "mode", DEFAULT_MODE, str),
        "accept_envvar_unprivileged": setting(data, ENVVAR_UNPRIVILEGED_KEY, True, bool),
        "accept_volume_mounts": setting(data, VOLUME_MOUNTS_KEY, False, bool),
    }


def runtime_config_facts(root):
    facts = {"path": "/" + RUNTIME_CONFIG, "present": False, "error": None, "mode": DEFAULT_MODE,
             "accept_envvar_unprivileged": True, "accept_volume_mounts": False}
    path = under(root, RUNTIME_CONFIG)
    if not os.path.lexists(path):
        return facts
    facts["present"] = True
    text = read_text(path)
    try:
        if text is None:
            raise ConfigError("cannot be read")
        facts.update(parse_runtime_config(text))
    except ConfigError as e:
        facts.update(mode=None, accept_envvar_unprivileged=None, accept_volume_mounts=None,
                     error="%s does not parse: %s" % (facts["path"], e))
    return facts


def isolation_of(runtime_config):
    """How a container asks the toolkit for GPUs, from the two accept-* settings (None when unknown)."""
    envvar = runtime_config.get("accept_envvar_unprivileged")
    mounts = runtime_config.get("accept_volume_mounts")
    if envvar is None or mounts is None:
        return None
    if envvar:
        return "envvar"
    return "volume-mounts" if mounts else "privileged-only"


def cdi_devices_from_json(text):
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise ValueError("no kind")
    devices = data.get("devices")
    names = [d.get("name") for d in devices if isinstance(d, dict)] if isinstance(devices, list) else []
    return ["%s=%s" % (data["kind"], name) for name in names if isinstance(name, str) and name]


def _yaml_scalar(text):
    value = text.split(" #", 1)[0].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value


def cdi_devices_from_yaml(text):
    """`kind=name` of each device of a CDI spec in YAML, read narrowly: the top-level `kind:` and
    the `name:` keys of the entries of the top-level `devices:` list."""
    kind = None
    names = []
    in_devices = False
    item_column = None
    for line in (text or "").splitlines():
        if not line.strip() or line.lstrip().startswith("#") or line.strip() in ("---", "..."):
            continue
        if not line[0].isspace() and not line.startswith("-"):
            key, _sep, value = line.partition(":")
            in_devices = key.strip() == "devices"
            if key.strip() == "kind":
                kind = _yaml_scalar(value) or None
            continue
        if not in_devices:
            continue
        match = re.match(r"^(\s*)(-\s+)?([A-Za-z]+):(.*)$", line)
        if not match:
            continue
        indent, dash, key, value = match.groups()
        column = len(indent) + len(dash or "")
        if dash and item_column is None:
            item_column = column
        if key == "name" and column == item_column:
            name = _yaml_scalar(value)
            if name:
                names.append(name)
    if not kind:
        raise ValueError("no kind")
    return ["%s=%s" % (kind, name) for name in names]


def parse_cdi_list(text):
    """The fully qualified device names that `nvidia-ctk cdi list` prints, one a line."""
    return [line.strip() for line in (text or "").splitlines() if _CDI_DEVICE_RE.match(line.strip())]


def cdi_facts(root, timeout=20, run=run_command):
    facts = {"specs": [], "devices": [], "source": None, "errors": []}
    seen = set()
    for spec_dir in CDI_SPEC_DIRS:
        for path in sorted(glob.glob(os.path.join(glob.escape(under(root, spec_dir)), "*"))):
            real = os.path.realpath(path)
            if not path.endswith(CDI_SUFFIXES) or real in seen:
                continue
            seen.add(real)
            facts["specs"].append("/" + os.path.relpath(path, root).replace(os.sep, "/"))
    if not facts["specs"]:
        return facts
    ctk = under(root, "usr/bin/nvidia-ctk")
    if is_host_root(root) and is_executable(ctk):
        rc, out, _err = run([ctk, "cdi", "list"], timeout)
        if rc == 0:
            facts["source"] = "nvidia-ctk cdi list"
            facts["devices"] = parse_cdi_list(out)
            return facts
    facts["source"] = "files"
    devices = []
    for spec in facts["specs"]:
        text = read_text(under(root, spec))
        try:
            if text is None:
                raise ValueError("cannot be read")
            found = cdi_devices_from_json(text) if spec.endswith(".json") else cdi_devices_from_yaml(text)
        except ValueError as e:
            facts["errors"].append("%s: %s" % (spec, str(e).splitlines()[0] if str(e) else "does not parse"))
            continue
        devices.extend(name for name in found if name not in devices)
    facts["devices"] = devices
    return facts


def unit_facts(root, unit):
    installed = any(os.path.lexists(under(root, unit_dir, unit)) for unit_dir in UNIT_DIRS)
    try:
        masked = os.readlink(under(root, "etc/systemd/system", unit)) == "/dev/null"
    except (OSError, ValueError):
        masked = False
    wants = glob.glob(os.path.join(glob.escape(under(root, "etc/systemd/system")), "*.wants", unit))
    return {"installed": installed and not masked, "enabled": bool(wants) and not masked, "masked": masked}


def cdi_refresh_facts(root):
    return {unit.rsplit(".", 1)[1]: unit_facts(root, unit) for unit in CDI_REFRESH_UNITS}


def program_running(root, names):
    """True when a process under proc/ has one of `names` in its comm."""
    for comm in glob.glob(os.path.join(glob.escape(under(root, "proc")), "[0-9]*", "comm")):
        if (read_text(comm, limit=256) or "").strip() in names:
            return True
    return False


def persistenced_facts(root):
    facts = {"running": program_running(root, (PERSISTENCED, PERSISTENCED_COMM)),
             "socket": os.path.exists(under(root, PERSISTENCED_SOCKET))}
    facts.update(unit_facts(root, PERSISTENCED_UNIT))
    return facts


# ---------------------------------------------------------------------------
# NVSwitches and Fabric Manager
# ---------------------------------------------------------------------------

FABRICMANAGER_UNIT = "nvidia-fabricmanager.service"
FABRICMANAGER = "nv-fabricmanager"
# NVIDIA's packages: nvidia-fabricmanager-<branch> (CUDA repository, Ubuntu's archive) and, from
# branch 580 in NVIDIA's repository, nvidia-fabricmanager. Not the -dev packages.
_FABRICMANAGER_PACKAGE_RE = re.compile(r"^nvidia-fabricmanager(?:-(\d{3,4}))?$")


def upstream_version(debian_version):
    """'1:550.54.15-0ubuntu1' -> '550.54.15': without epoch and Debian revision."""
    version = (debian_version or "").strip()
    if ":" in version:
        version = version.split(":", 1)[1]
    return version.rsplit("-", 1)[0] if "-" in version else version or None


def fabricmanager_facts(root, installed, driver_version):
    """Fabric Manager's package among `installed`, its unit and process, and whether its version
    is the loaded driver's (it refuses to run otherwise)."""
    names = sorted(name for name in installed if _FABRICMANAGER_PACKAGE_RE.match(name))
    # Two branches installed at once: the one at the driver's version is the one that can run.
    package = next((name for name in names if upstream_version(installed[name]) == driver_version),
                   names[0] if names else None)
    version = installed[package] if package else None
    upstream = upstream_version(version) if version else None
    return {
        "installed": package is not None,
        "package": package,
        "version": version,
        "unit": unit_facts(root, FABRICMANAGER_UNIT),
        "running": program_running(root, (FABRICMANAGER, FABRICMANAGER[:15])),
        "version_matches": (upstream == driver_version) if upstream and driver_version else None,
    }


def nvswitch_facts(root, installed, driver_version):
    addresses = pci_nvswitches(root)
    return {
        "count": len(addresses),
        "addresses": addresses,
        "fabricmanager": fabricmanager_facts(root, installed, driver_version),
    }


# ---------------------------------------------------------------------------
# Findings and summary
# ---------------------------------------------------------------------------

def driver_install_advice(dist_id):
    debian = ("Debian: enable the contrib, non-free and non-free-firmware components, then "
              "apt install linux-headers-amd64 nvidia-driver firmware-misc-nonfree")
    ubuntu = "Ubuntu: ubuntu-drivers install (on servers: ubuntu-drivers install --gpgpu)"
    if dist_id == "debian":
        return debian
    if dist_id == "ubuntu":
        return ubuntu
    return "%s; %s" % (debian, ubuntu)


def find_problems(gpu):
    """The findings for the collected facts: dicts with code, severity and message."""
    findings = []
    dist = gpu["distribution"]
    driver = gpu["driver"]
    smi = gpu["nvidia_smi"]
    pci = gpu["pci_gpus"]

    def add(code, severity, message):
        findings.append({"code": code, "severity": severity, "message": message})

    if not dist["supported"]:
        if dist["id"] is None:
            add("unknown_distribution", "error",
                "The distribution is unknown: /etc/os-release is missing or has no ID. gpuhost supports %s."
                % SUPPORTED_LIST)
        else:
            name = dist["pretty_name"] or " ".join(v for v in (dist["id"], dist["version_id"]) if v)
            add("unsupported_distribution", "error",
                "%s is not supported: gpuhost supports %s. Reinstall the host with one of these "
                "before provisioning it." % (name, SUPPORTED_LIST))

    if driver["nouveau_loaded"]:
        bound = [g["address"] for g in pci if g["driver"] == "nouveau"]
        where = " (bound to %s)" % ", ".join(bound) if bound else ""
        add("nouveau_loaded", "error",
            "nouveau is loaded%s and blocks the NVIDIA driver: blacklist it (write 'blacklist nouveau' "
            "and 'options nouveau modeset=0' to /etc/modprobe.d/blacklist-nouveau.conf, then run "
            "update-initramfs -u) and reboot. Installing the NVIDIA driver packages usually adds "
            "this blacklist too." % where)

    if pci and not driver["loaded"]:
        add("driver_not_loaded", "error",
            "%d NVIDIA GPU(s) found on the PCI bus but the NVIDIA driver is not loaded: containers will "
            "not see them. Install the driver (%s) and reboot."
            % (len(pci), driver_install_advice(dist["id"])))

    if driver["loaded"] and not smi["available"]:
        version = " (%s)" % driver["version"] if driver["version"] else ""
        if smi["path"] is None:
            add("nvidia_smi_missing", "warning",
                "The NVIDIA driver%s is loaded but nvidia-smi was not found, so the GPUs cannot be "
                "checked and containers get no nvidia-smi either. Install it (Debian: apt install "
                "nvidia-smi; Ubuntu: apt install nvidia-utils-<driver branch>, for example "
                "nvidia-utils-550-server)." % version)
        else:
            status = " (exit status %s)" % smi["exit_status"] if smi["exit_status"] is not None else ""
            add("nvidia_smi_failed", "error",
                "The NVIDIA driver%s is loaded but nvidia-smi fails%s: %s Usually the kernel module "
                "and the user-space driver libraries differ in version (for example after a driver "
                "upgrade without a reboot) or the /dev/nvidia* device files are missing: reboot, or "
                "reinstall the driver packages so that both match; the lines with NVRM in dmesg show "
                "the driver's own error." % (version, status, _sentence(smi["error"])))

    for code, severity, message in packaging_findings(driver):
        add(code, severity, message)

    if smi["available"] and pci and len(smi["gpus"]) < len(pci):
        others = sorted({g["driver"] or "no driver" for g in pci if g["driver"] != "nvidia"})
        detail = " (other drivers on the bus: %s)" % ", ".join(others) if others else ""
        add("gpus_missing_from_nvidia_smi", "warning",
            "%d NVIDIA GPU(s) are on the PCI bus but nvidia-smi lists only %d%s: the missing ones "
            "are bound to another driver or failed to initialise. Check dmesg for NVRM errors; "
            "GPUs bound to vfio-pci are reserved for virtual machines."
            % (len(pci), len(smi["gpus"]), detail))

    toolkit = gpu.get("toolkit") or {}
    if toolkit.get("below_security_floor"):
        floor = toolkit["security_floor"]
        add("toolkit_below_security_floor", "error",
            "NVIDIA Container Toolkit %s is installed, older than the security floor %s: it lacks NVIDIA's "
            "fixes for %s, which let a container image escape to the host. Upgrade the toolkit to %s or "
            "newer: run gpuhost provision with nvidia_container_toolkit_version \"%s-1\" or newer (or \"\" "
            "for the newest)."
            % (toolkit["version"], floor, describe_fixes(toolkit["missing_fixes"]), floor, floor))

    docker = gpu.get("docker") or {}
    default_runtime = docker.get("default_runtime") or docker.get("configured_default_runtime")
    for runtime in docker.get("runtime_executables") or []:
        if runtime["found"] is None:
            add("runtime_executable_missing", "error", runtime_missing_message(runtime, default_runtime))

    runtime_config = toolkit.get("runtime_config") or {}
    if runtime_config.get("error"):
        add("runtime_config_invalid", "warning",
            "%s NVIDIA's runtime and hook stop with an error when they cannot load it, so GPU containers "
            "fail to start: correct the file, or write NVIDIA's defaults with nvidia-ctk config default "
            "--output=/etc/nvidia-container-runtime/config.toml." % _sentence(runtime_config["error"]))

    cdi = toolkit.get("cdi") or {}
    gpu_devices = [d for d in cdi.get("devices") or [] if d.startswith(CDI_GPU_KIND + "=")]
    if runtime_config.get("mode") == "cdi" and driver["loaded"] and not gpu_devices:
        specs = cdi.get("specs") or []
        where = (" (specifications found: %s)" % ", ".join(specs)) if specs else " (none in /etc/cdi or /var/run/cdi)"
        add("cdi_spec_missing", "error",
            "The NVIDIA Container Runtime is in mode \"cdi\" but no CDI specification lists %s devices%s: "
            "containers that ask for a GPU fail to start. Generate the specification with nvidia-ctk cdi "
            "generate --output=/var/run/cdi/nvidia.yaml, or enable NVIDIA's refresh unit (systemctl enable "
            "--now nvidia-cdi-refresh.path, toolkit 1.18 or newer), which regenerates it after driver "
            "and toolkit upgrades." % (CDI_GPU_KIND, where))

    for code, severity, message in node_service_findings(gpu):
        add(code, severity, message)

    mig = [g for g in smi["gpus"] if (g["mig_mode"] or "").lower() == "enabled"]
    if mig:
        which = ", ".join("%d (%s)" % (g["index"], g["name"] or "unknown GPU") for g in mig)
        first = mig[0]["index"]
        add("mig_enabled", "info",
            "For information: MIG mode is enabled on GPU %s. As NVIDIA's MIG User Guide describes, a "
            "container started with --gpus all also gets every MIG device of such a GPU, and CUDA "
            "in it uses the MIG devices, not the whole GPU; one MIG device is selected with "
            "--gpus '\"device=%d:0\"' (GPU index:MIG index) or its MIG UUID. To use the whole GPU "
            "instead, disable MIG with nvidia-smi -i %d -mig 0 while no process uses the GPU."
            % (which, first, first))
    return findings


def _unit_state(unit):
    if unit.get("masked"):
        return "masked"
    return "enabled" if unit.get("enabled") else "not enabled"


def node_service_findings(gpu):
    """(code, severity, message) for Fabric Manager on NVSwitch systems and for nvidia-persistenced."""
    driver = gpu["driver"]
    if not driver["loaded"] or not gpu["pci_gpus"]:
        return []
    found = []
    version = driver["version"]
    branch = version.split(".", 1)[0] if version else "<branch>"
    exact = version or "the driver's version"
    package = "nvidia-fabricmanager-%s" % branch
    install = ("install %s at exactly %s (apt install %s=%s-<revision>; apt-cache policy %s lists them, "
               "from the repository the driver came from)" % (package, exact, package, exact, package))
    start = ("systemctl enable --now nvidia-fabricmanager (gpuhost provision does this with "
             "nvidia_container_toolkit_fabricmanager: true)")
    nvswitch = gpu.get("nvswitch") or {}
    fm = nvswitch.get("fabricmanager") or {}
    count = nvswitch.get("count") or 0
    if count:
        switches = "%d NVSwitch%s" % (count, "" if count == 1 else "es")
        consequence = ("until it runs, CUDA fails with \"system not yet initialized\" and containers "
                       "cannot use the GPUs")
        if not fm.get("installed"):
            found.append(("fabricmanager_missing", "error",
                          "%s found on the PCI bus (an HGX or DGX system), but NVIDIA Fabric Manager is not "
                          "installed: %s. Fix: %s, then %s."
                          % (switches, consequence, install, start)))
        elif fm.get("version_matches") is False:
            found.append(("fabricmanager_version_mismatch", "error",
                          "NVIDIA Fabric Manager %s %s does not match the loaded driver %s on this system "
                          "with %s: Fabric Manager refuses to start with another driver version, and %s. "
                          "Fix: %s, then systemctl restart nvidia-fabricmanager."
                          % (fm["package"], fm["version"], version, switches, consequence, install)))
        elif not fm.get("running"):
            found.append(("fabricmanager_not_running", "error",
                          "NVIDIA Fabric Manager %s %s is installed but not running (nvidia-fabricmanager.service "
                          "is %s) on this system with %s: %s. Fix: %s; journalctl -u nvidia-fabricmanager "
                          "tells why it stopped."
                          % (fm["package"], fm["version"], _unit_state(fm.get("unit") or {}), switches,
                             consequence, start)))
    persistenced = (gpu.get("toolkit") or {}).get("persistenced") or {}
    if persistenced.get("installed") and not persistenced.get("running"):
        found.append(("persistenced_not_running", "warning",
                      "nvidia-persistenced is installed but not running (nvidia-persistenced.service is %s), "
                      "so persistence mode is off: the driver tears the GPUs down whenever no process uses "
                      "them and sets them up again for the next container, which delays every start (seconds "
                      "on machines with many GPUs) and loses GPU settings between jobs. Fix: systemctl enable "
                      "--now nvidia-persistenced (gpuhost provision does this with "
                      "nvidia_container_toolkit_persistenced: true)." % _unit_state(persistenced)))
    return found


def runtime_missing_message(runtime, default_runtime):
    """Why a registered runtime whose executable is missing breaks containers, and the fix."""
    name, path = runtime["runtime"], runtime["path"]
    if "/" in path:
        where = "%s, which does not exist or is not executable" % path
    else:
        where = "%s, which is not in any directory of dockerd's PATH (%s)" % (path, ":".join(DOCKERD_PATH))
    who = ("every container (it is the default runtime) and every one started with --runtime=%s" % name
           if name == default_runtime else "containers started with --runtime=%s" % name)
    if name == "nvidia":
        fix = ("Install the NVIDIA Container Toolkit (gpuhost provision installs it), or set "
               "docker_daemon_nvidia_runtime_path to where nvidia-container-runtime is")
    else:
        fix = ("Install the runtime, or correct runtimes.%s.path in docker_daemon_options (null removes "
               "the runtime: docker_daemon_options: {runtimes: {%s: null}})" % (name, name))
    return ("Docker runtime \"%s\" (registered in %s) runs the executable %s: %s fail to start. %s, "
            "then run gpuhost provision." % (name, runtime["source"], where, who, fix))


def _sentence(text):
    text = (text or "").strip() or "no error message"
    return text if text.endswith((".", "!", "?")) else text + "."


def _names(names):
    counts = OrderedDict()
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join("%d x %s" % (n, name) for name, n in counts.items())


def make_summary(gpu):
    smi = gpu["nvidia_smi"]
    driver = gpu["driver"]
    if smi["available"] and smi["gpus"]:
        names = [g["name"] or "unknown GPU" for g in smi["gpus"]]
    else:
        names = [g["model"] for g in gpu["pci_gpus"]]
    parts = []
    if names:
        parts.append("%d GPU%s (%s)" % (len(names), "" if len(names) == 1 else "s", _names(names)))
    else:
        parts.append("no NVIDIA GPU found")
    version = driver["version"] or smi["driver_version"]
    if driver["loaded"]:
        parts.append("driver %s" % version if version else "driver loaded (version unknown)")
    elif driver["nouveau_loaded"]:
        parts.append("NVIDIA driver not loaded (nouveau in use)")
    elif names:
        parts.append("NVIDIA driver not loaded")
    if smi["cuda_version"]:
        parts.append("CUDA %s" % smi["cuda_version"])
    if driver["loaded"] and not smi["available"]:
        parts.append("nvidia-smi fails" if smi["path"] else "nvidia-smi not found")
    switches = (gpu.get("nvswitch") or {}).get("count") or 0
    if switches:
        parts.append("%d NVSwitch%s" % (switches, "" if switches == 1 else "es"))
    mig = [g for g in smi["gpus"] if (g["mig_mode"] or "").lower() == "enabled"]
    if mig:
        parts.append("MIG enabled on %d of %d" % (len(mig), len(smi["gpus"])))
    return ", ".join(parts)


# ---------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------

def collect(root="/", nvidia_smi=None, timeout=20, which=None, run=run_command):
    """All facts for the tree at `root`. `which(name)` finds programs on the host's PATH."""
    root = os.path.abspath(root or "/")
    smi_path = nvidia_smi if nvidia_smi else find_program(root, "nvidia-smi", which)
    gpu = OrderedDict()
    gpu["root"] = root
    gpu["distribution"] = distribution_facts(root)
    gpu["pci_gpus"] = pci_gpus(root)
    # dpkg's status (megabytes on a real host) is read and parsed once, for the driver and the toolkit.
    installed = parse_dpkg_installed(read_dpkg_status(root))
    gpu["driver"] = driver_facts(root, installed)
    gpu["nvidia_smi"] = nvidia_smi_facts(smi_path, timeout, run=run)
    gpu["docker"] = docker_facts(root, timeout, which=which, run=run)
    gpu["toolkit"] = toolkit_facts(root, installed, timeout, run=run)
    gpu["nvswitch"] = nvswitch_facts(root, installed, gpu["driver"]["version"])
    findings = find_problems(gpu)
    gpu["findings"] = findings
    gpu["problems"] = [f["message"] for f in findings]
    gpu["summary"] = make_summary(gpu)
    return dict(gpu)


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", default="/"),
            nvidia_smi=dict(type="path"),
            timeout=dict(type="int", default=20),
        ),
        supports_check_mode=True,
    )


def main():
    module = build_module()
    p = module.params
    root = p["root"] or "/"
    if not os.path.isdir(root):
        module.fail_json(msg="root %s is not a directory." % root, changed=False)
    if p["timeout"] is None or p["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds, got %s." % p["timeout"], changed=False)

    def which(name):
        return module.get_bin_path(name, opt_dirs=["/usr/local/sbin", "/usr/sbin", "/sbin"])

    gpu = collect(root, p["nvidia_smi"], p["timeout"], which=which)
    module.exit_json(changed=False, gpu=gpu, ansible_facts={"gpuhost_gpu": gpu})


if __name__ == "__main__":
    main()
