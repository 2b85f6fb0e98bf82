"""Start, describe and remove the lab fleet (see the package docstring)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import yaml

from gpuhost_cli.ansible_plugins.module_utils.gpuhost_platforms import RELEASES

ASSETS = Path(__file__).resolve().parent / "assets"

#: The host images the lab can run, one per supported release, in the order of gpuhost's
#: release list: debian12, debian13, and the simulated Ubuntu hosts ubuntu22-sim and
#: ubuntu24-sim (a Debian 12 or 13 userland that identifies as Ubuntu 22.04 or 24.04).
DISTROS = tuple(release["lab_image"] for release in RELEASES)

#: What a systemd host with Docker inside needs where --privileged is refused.
CAPABILITIES = (
    "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "SYS_NICE", "SYS_TIME", "IPC_LOCK",
    "MKNOD", "NET_RAW", "AUDIT_CONTROL", "SYSLOG", "DAC_READ_SEARCH", "LINUX_IMMUTABLE",
)

MIRROR_PORT = 8080
#: The one apt-cacher-ng on this machine that every lab and test host uses for Debian's
#: archive (assets/apt-cache.sh); the stand-in mirror is reached directly.
APT_CACHE_NAME = "gpuhost-apt-cache"
APT_CACHE_PORT = 3142
KEY_NAMES = ("docker", "nvidia", "rogue", "ubuntu")
STAND_IN_NOTICE = (
    "The lab's Docker and NVIDIA repositories (and, for the simulated Ubuntu hosts, Ubuntu's "
    "archive) are a local STAND-IN mirror: packages under the real names that install the real "
    "entry points, signed with keys made for the lab. They are not Docker's, NVIDIA's or "
    "Ubuntu's software."
)
#: On a simulated Ubuntu host (build-images.sh): the marker file, the keyring its stand-in
#: of Ubuntu's archive is signed-by, and its apt source for that archive.
SIM_MARKER = "/etc/gpuhost-simulated-release"
SIM_KEYRING = "/usr/share/keyrings/ubuntu-archive-standin.gpg"
SIM_SOURCES = "/etc/apt/sources.list.d/ubuntu-standin.list /etc/apt/sources.list.d/ubuntu-standin.sources"


class LabError(Exception):
    """A lab operation that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class LabHost:
    name: str
    distro: str
    address: str


def default_state_dir(prefix: str = "gpuhost-lab") -> Path:
    """~/.local/state/gpuhost/lab for the default lab, .../gpuhost/<name> for another."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gpuhost" / ("lab" if prefix == "gpuhost-lab" else prefix)


def distros_for(count: int, distro: str) -> list[str]:
    """The host image of each of ``count`` hosts. ``distro`` is one image, a comma-separated
    list of images cycled over the hosts ("debian12,ubuntu24-sim"), or "mixed": all of
    DISTROS in order."""
    if count < 1:
        raise LabError(f"--hosts must be at least 1, got {count}")
    wanted = list(DISTROS) if distro == "mixed" else distro.split(",")
    unknown = [d for d in wanted if d not in DISTROS]
    if unknown or not wanted:
        raise LabError(f"--distro must be one of {', '.join(DISTROS)} or mixed, or a comma-separated list of "
                       f"them, got {distro!r}")
    return [wanted[i % len(wanted)] for i in range(count)]


def inventory_documents(hosts: Sequence[LabHost], ssh_key: Path, mirror: str,
                        fingerprints: dict[str, str]) -> dict[str, dict]:
    """The lab inventory: hosts.yml and group_vars/gpu_hosts/lab.yml, as data."""
    hosts_yml = {
        "all": {
            "children": {
                "gpu_hosts": {
                    "hosts": {h.name: {"ansible_host": h.address} for h in hosts},
                    "vars": {
                        "ansible_user": "root",
                        "ansible_ssh_private_key_file": str(ssh_key),
                        "ansible_ssh_common_args": (
                            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
                        ),
                        "ansible_python_interpreter": "/usr/bin/python3",
                    },
                }
            }
        }
    }
    lab_vars = {
        "docker_apt_repo_url": f"{mirror}/linux",
        "docker_apt_key_fingerprint": fingerprints["docker"],
        "nvidia_container_toolkit_repo_url": f"{mirror}/libnvidia-container",
        "nvidia_container_toolkit_key_fingerprint": fingerprints["nvidia"],
        # Overlay on overlay does not work inside a container: Docker in a lab host uses vfs.
        "docker_daemon_options": {"storage-driver": "vfs"},
    }
    return {"hosts.yml": hosts_yml, "group_vars/gpu_hosts/lab.yml": lab_vars}


LAB_VARS_HEADER = f"""---
# {STAND_IN_NOTICE}
# To use the real upstream repositories instead (the lab hosts then need network access to
# download.docker.com and nvidia.github.io), delete the four repository lines below: the
# roles' defaults point at the vendors' repositories and published keys.
"""


def write_inventory(directory: Path, documents: dict[str, dict]) -> Path:
    """Write the inventory files; returns the inventory directory."""
    for relative, data in documents.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        header = LAB_VARS_HEADER if relative.endswith("lab.yml") else "---\n# Written by gpuhost lab up.\n"
        path.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False),
                        encoding="utf-8")
    return directory


@dataclass
class Lab:
    """The lab on this machine's Docker engine."""

    state_dir: Path | None = None
    prefix: str = "gpuhost-lab"
    image_repo: str = "gpuhost-test"
    #: Hosts fetch Debian's packages through the shared apt cache (assets/apt-cache.sh).
    apt_cache: bool = True
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr)

    def __post_init__(self) -> None:
        if self.state_dir is None:
            self.state_dir = default_state_dir(self.prefix)
        self.state_dir = Path(self.state_dir)

    @property
    def network(self) -> str:
        return self.prefix

    @property
    def mirror_name(self) -> str:
        return f"{self.prefix}-mirror"

    @property
    def inventory_dir(self) -> Path:
        return self.state_dir / "inventory"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "mirror-keys"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def mirror_url(self) -> str:
        return f"http://{self.mirror_name}:{MIRROR_PORT}"

    @property
    def apt_cache_url(self) -> str | None:
        return f"http://{APT_CACHE_NAME}:{APT_CACHE_PORT}" if self.apt_cache else None

    # ---- Docker ------------------------------------------------------------------------
    def _docker(self, *args: str, input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        if shutil.which("docker") is None:
            raise LabError("gpuhost lab needs Docker: no docker command found. "
                           "Install it (Debian: apt-get install docker.io) and start the engine.")
        proc = subprocess.run(["docker", *args], input=input_text, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise LabError(f"docker {' '.join(args[:2])} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc

    def require_docker(self) -> None:
        proc = self._docker("info", "--format", "{{.ServerVersion}}", check=False)
        if proc.returncode != 0:
            raise LabError("gpuhost lab needs a running Docker engine, and this one does not answer: "
                           f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'no answer'}. "
                           "Start it (systemctl start docker, or dockerd in the background) and try again.")

    def _asset_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            # Each lab signs its mirror with its own keys, so each keeps its own mirror tree.
            GPUHOST_CACHE=str(self.state_dir / "cache"),
            GPUHOST_MIRROR_KEYS=str(self.keys_dir),
            GPUHOST_TEST_NETWORK=self.network,
            GPUHOST_MIRROR_NAME=self.mirror_name,
            GPUHOST_TEST_IMAGE_REPO=self.image_repo,
            GPUHOST_APT_CACHE_NAME=APT_CACHE_NAME,
        )
        return env

    def _run_asset(self, script: str, *args: str) -> None:
        proc = subprocess.run(["bash", str(ASSETS / script), *args], env=self._asset_env(), check=False)
        if proc.returncode != 0:
            raise LabError(f"{script} {' '.join(args)} failed (exit {proc.returncode}); see the lines above")

    # ---- Pieces ------------------------------------------------------------------------
    def ensure_images(self, distros: Sequence[str]) -> None:
        """Build the missing host images with build-images.sh: the Debian ones with debootstrap,
        a simulated Ubuntu one from its Debian image (seconds). Needs the mirror keys first:
        a simulated Ubuntu image carries the ubuntu-standin public key."""
        missing = sorted({d for d in distros
                          if self._docker("image", "inspect", f"{self.image_repo}/{d}:latest", check=False).returncode},
                         key=DISTROS.index)
        if missing:
            self.log(f"building host images {', '.join(missing)} (debootstrap for a Debian image: "
                     "a few minutes, once)")
            self._run_asset("build-images.sh", *missing)

    def ensure_mirror_keys(self) -> dict[str, str]:
        """Keys for the lab's stand-in mirror, made once; returns their fingerprints."""
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        gpg = shutil.which("gpg")
        if gpg is None:
            raise LabError("gpuhost lab needs gpg to sign its stand-in mirror: apt-get install gnupg")
        with tempfile.TemporaryDirectory() as home:
            for name in KEY_NAMES:
                secret = self.keys_dir / f"{name}-standin.secret.asc"
                if secret.exists():
                    continue
                uid = f"gpuhost lab {name} stand-in repository key <{name}-standin@gpuhost.invalid>"
                base = [gpg, "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
                subprocess.run(base + ["--quick-gen-key", uid, "rsa3072", "sign", "never"],
                               check=True, capture_output=True)
                secret.write_bytes(subprocess.run(base + ["--armor", "--export-secret-keys", uid],
                                                  check=True, capture_output=True).stdout)
                secret.chmod(0o600)
                (self.keys_dir / f"{name}-standin.public.asc").write_bytes(
                    subprocess.run(base + ["--armor", "--export", uid], check=True, capture_output=True).stdout)
            fingerprints = {}
            for name in KEY_NAMES:
                listing = subprocess.run(
                    [gpg, "--homedir", home, "--batch", "--with-colons", "--show-keys",
                     str(self.keys_dir / f"{name}-standin.public.asc")],
                    check=True, capture_output=True, text=True).stdout
                fingerprints[name] = next(line.split(":")[9] for line in listing.splitlines()
                                          if line.startswith("fpr:"))
        return fingerprints

    def ensure_ssh_key(self) -> Path:
        if not self.ssh_key.exists():
            if shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
                raise LabError("gpuhost lab reaches its hosts over SSH: install the SSH client "
                               "(Debian: apt-get install openssh-client)")
            self.state_dir.mkdir(parents=True, exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gpuhost-lab",
                            "-f", str(self.ssh_key)], check=True)
        return self.ssh_key

    def ensure_network(self) -> None:
        if self._docker("network", "inspect", self.network, check=False).returncode:
            self._docker("network", "create", "--label", f"gpuhost.lab={self.prefix}", self.network)

    def host_names(self, count: int) -> list[str]:
        return [f"{self.prefix}-{i}" for i in range(1, count + 1)]

    def _container_state(self, name: str) -> str | None:
        proc = self._docker("inspect", "--format", "{{.State.Status}}", name, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def start_host(self, name: str, distro: str) -> None:
        state = self._container_state(name)
        if state == "running":
            return
        if state is not None:
            self._docker("rm", "--force", name)
        args = ["run", "--detach", "--name", name, "--hostname", name, "--network", self.network,
                "--label", f"gpuhost.lab={self.prefix}", "--label", f"gpuhost.lab.distro={distro}",
                "--cgroupns", "host", "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                "--device-cgroup-rule", "a *:* rwm", "--stop-signal", "SIGRTMIN+3", "--env", "container=docker"]
        for cap in CAPABILITIES:
            args += ["--cap-add", cap]
        self._docker(*args, f"{self.image_repo}/{distro}:latest", "/lib/systemd/systemd")

    def wait_for_boot(self, name: str, timeout: float = 90.0) -> None:
        """Wait until systemd in the host has finished booting."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            proc = self._docker("exec", name, "systemctl", "is-system-running", "--wait", check=False)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(1)
        raise LabError(f"lab host {name} did not boot within {timeout:.0f} s (systemd says {state or 'nothing'}); "
                       f"docker logs {name} shows its console")

    def trust_lab_mirror(self, name: str) -> None:
        """On a simulated Ubuntu host, point its stand-in of Ubuntu's archive at this lab's
        mirror and trust this lab's ubuntu-standin key. The image carries the key and the
        mirror's name it was built with (the tests', or another lab's); each lab signs its
        own mirror. A Debian host has no such source and is left alone."""
        armored = (self.keys_dir / "ubuntu-standin.public.asc").read_bytes()
        keyring = subprocess.run(["gpg", "--batch", "--dearmor"], input=armored, capture_output=True, check=True).stdout
        script = (
            f'[ -f {SIM_MARKER} ] || exit 0; set -e; umask 022; base64 -d > {SIM_KEYRING}; '
            f'for f in {SIM_SOURCES} {SIM_MARKER}; do [ ! -f "$f" ] || '
            f'sed -i -E "s#http://[^ /()]+/ubuntu#{self.mirror_url}/ubuntu#" "$f"; done'
        )
        self._docker("exec", "-i", name, "sh", "-c", script, input_text=base64.b64encode(keyring).decode())

    def prepare_ssh(self, name: str) -> None:
        self.wait_for_boot(name)
        public = Path(f"{self.ssh_key}.pub").read_text(encoding="utf-8")
        self._docker("exec", "-i", name, "sh", "-c",
                     "umask 077 && mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys", input_text=public)
        self._docker("exec", name, "sh", "-c", "ssh-keygen -A >/dev/null && systemctl enable --now ssh >/dev/null 2>&1")

    def address(self, name: str) -> str:
        fmt = "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % self.network
        address = self._docker("inspect", "--format", fmt, name).stdout.strip()
        if not address:
            raise LabError(f"lab host {name} has no address on network {self.network}")
        return address

    @staticmethod
    def wait_for_ssh(address: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((address, 22), timeout=2) as conn:
                    if conn.recv(4).startswith(b"SSH"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LabError(f"no SSH answer from {address}:22 within {timeout:.0f} s")
            time.sleep(0.5)

    # ---- The whole lab -----------------------------------------------------------------
    def hosts(self) -> list[LabHost]:
        proc = self._docker("ps", "--all", "--filter", f"label=gpuhost.lab={self.prefix}",
                            "--format", "{{json .}}", check=False)
        found = []
        for line in proc.stdout.splitlines():
            row = json.loads(line)
            name = row["Names"]
            if name == self.mirror_name:
                continue
            labels = dict(item.split("=", 1) for item in row.get("Labels", "").split(",") if "=" in item)
            address = self.address(name) if row.get("State") == "running" else ""
            found.append(LabHost(name, labels.get("gpuhost.lab.distro", "?"), address))
        return sorted(found, key=lambda h: int(h.name.rsplit("-", 1)[1]) if h.name.rsplit("-", 1)[1].isdigit() else 0)

    def start_hosts(self, releases: dict[str, str], trust_mirror: bool = True) -> list[LabHost]:
        """Start the hosts (name: distro), all first, then each reachable over SSH; with
        TRUST_MIRROR, each trusts the lab's stand-in mirror."""
        for name, release in releases.items():
            self.log(f"starting {name} ({release})")
            self.start_host(name, release)
        hosts = []
        for name, release in releases.items():
            self.prepare_ssh(name)
            if trust_mirror:
                self.trust_lab_mirror(name)
            address = self.address(name)
            self.wait_for_ssh(address)
            hosts.append(LabHost(name, release, address))
        return hosts

    def up(self, count: int, distro: str = "debian12") -> list[LabHost]:
        releases = distros_for(count, distro)
        self.require_docker()
        fingerprints = self.ensure_mirror_keys()
        self.ensure_images(releases)
        self.ensure_ssh_key()
        self.ensure_network()
        self.log("starting the stand-in mirror")
        self._run_asset("build-mirror.sh", "--serve")
        names = self.host_names(count)
        hosts = self.start_hosts(dict(zip(names, releases)))
        if self.apt_cache:
            self.log(f"pointing the hosts at the apt cache {APT_CACHE_NAME} for Debian's archive")
            self._run_asset("apt-cache.sh", "--network", self.network, *names)
        extra = [h for h in self.hosts() if h.name not in names]
        for host in extra:
            self.log(f"removing {host.name} (the lab now has {count} hosts)")
            self._docker("rm", "--force", host.name)
        if self.inventory_dir.exists():
            shutil.rmtree(self.inventory_dir)
        write_inventory(self.inventory_dir,
                        inventory_documents(hosts, self.ssh_key, self.mirror_url, fingerprints))
        return hosts

    def down(self) -> list[str]:
        removed = []
        proc = self._docker("ps", "--all", "--quiet", "--filter", f"label=gpuhost.lab={self.prefix}", check=False)
        ids = proc.stdout.split()
        if self._container_state(self.mirror_name) is not None:
            ids.append(self.mirror_name)
        for ident in ids:
            name = self._docker("inspect", "--format", "{{.Name}}", ident, check=False).stdout.strip().lstrip("/")
            self._docker("rm", "--force", "--volumes", ident, check=False)
            removed.append(name or ident)
        if self._docker("network", "inspect", self.network, check=False).returncode == 0:
            # The apt cache is shared with other labs and the tests: it stays, off this network.
            self._docker("network", "disconnect", "--force", self.network, APT_CACHE_NAME, check=False)
            self._docker("network", "rm", self.network, check=False)
        if self.inventory_dir.exists():
            shutil.rmtree(self.inventory_dir)
        return sorted(set(removed))
