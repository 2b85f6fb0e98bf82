"""What the bundle tests share: a small stand-in mirror, served on loopback, and a bundle made from it.

The mirror is built with the lab's own build-mirror.sh functions and the stand-in keys
(tests/harness/mirror/keys), in the layouts of Docker's and NVIDIA's repositories: the same
package names, versions and signatures as the full stand-in mirror, but small packages
built here, so the tests need neither the test-host images nor the full mirror. Every
package in it is a STAND-IN (build_deb marks it so). A rogue copy of NVIDIA's repository
serves NVIDIA's stand-in key but is signed by another key.

The distribution's packages come from Debian's archive (deb.debian.org). The base system
is tests/fixtures/dpkg-status/bookworm-gpu-node, a dpkg status of a Debian 12 host that has
most of what the roles' packages depend on, so a bundle fetches only two small packages
from Debian (tini, which the stand-in docker-ce depends on, and python3-tomlkit).

Import the fixtures into a test module: ``from bundle_lab import standin_mirror, ...``.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "tests" / "harness" / "mirror" / "keys"
BASE_STATUS = REPO / "tests" / "fixtures" / "dpkg-status" / "bookworm-gpu-node"
TOOLKIT_VERSIONS = ("1.17.8-1", "1.18.1-1")
DOCKER_VERSIONS = ("5:27.5.1-1~debian.12~bookworm", "5:27.6.0-1~debian.12~bookworm")

BUILD = r"""
set -euo pipefail
source "$REPO/tests/harness/env.sh"
source "$GPUHOST_ASSETS/build-mirror.sh"
here="$GPUHOST_ASSETS"
out="$DEST"
work="$DEST.work"
arch="$(dpkg --print-architecture)"
mkdir -p "$work" "$out/linux/debian" "$out/libnvidia-container" "$out/rogue/libnvidia-container"
export GNUPGHOME="$work/gnupg"
mkdir -m 0700 "$GNUPGHOME"
for k in docker nvidia rogue; do gpg --batch -q --import "$KEYS/$k-standin.secret.asc" 2>/dev/null; done
cp "$KEYS/docker-standin.public.asc" "$out/linux/debian/gpg"
cp "$KEYS/nvidia-standin.public.asc" "$out/libnvidia-container/gpgkey"
cp "$KEYS/nvidia-standin.public.asc" "$out/rogue/libnvidia-container/gpgkey"
pool="$out/linux/debian/pool/stable/bookworm"
for version in $DOCKER_VERSIONS; do
  build_deb docker-ce-cli "$version" "" "$pool"
  build_deb docker-ce "$version" "docker-ce-cli (= $version), containerd.io, tini" "$pool"
done
build_deb containerd.io 1.7.25-1 "" "$pool"
build_deb docker-buildx-plugin 0.20.0-1~debian.12~bookworm "" "$pool"
build_deb docker-compose-plugin 2.32.4-1~debian.12~bookworm "" "$pool"
index_suite "$out/linux/debian" bookworm stable pool/stable/bookworm docker
flat_repo "$out/libnvidia-container/stable" nvidia $TOOLKIT_VERSIONS
flat_repo "$out/rogue/libnvidia-container/stable" rogue $TOOLKIT_VERSIONS
gpgconf --homedir "$GNUPGHOME" --kill gpg-agent 2>/dev/null || true
rm -rf "$work"
"""


def key_fingerprint(name: str) -> str:
    """The primary fingerprint of the stand-in key NAME (docker, nvidia, rogue)."""
    from gpuhost_cli.bundle_signing import keyring_fingerprints

    return keyring_fingerprints(KEYS / f"{name}-standin.public.asc")[0]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def standin_mirror(tmp_path_factory):
    """{url, docker_fpr, nvidia_fpr, path}: the small stand-in mirror, served on 127.0.0.1."""
    for tool in ("dpkg-deb", "apt-ftparchive", "gpg", "gpgv", "apt-get"):
        assert shutil.which(tool), f"{tool} is needed (tests/run.sh installs the host tools)"
    dest = tmp_path_factory.mktemp("standin") / "mirror"
    env = {**os.environ, "REPO": str(REPO), "DEST": str(dest), "KEYS": str(KEYS),
           "DOCKER_VERSIONS": " ".join(DOCKER_VERSIONS), "TOOLKIT_VERSIONS": " ".join(TOOLKIT_VERSIONS)}
    done = subprocess.run(["bash", "-c", BUILD], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(dest)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "path": dest,
               "docker_fpr": key_fingerprint("docker"), "nvidia_fpr": key_fingerprint("nvidia")}
    finally:
        server.shutdown()
        server.server_close()


def host_vars(mirror, **overrides):
    """A bookworm host's variables that point the roles at the stand-in mirror."""
    return {"ansible_distribution_release": "bookworm",
            "docker_apt_repo_url": f"{mirror['url']}/linux",
            "docker_apt_key_fingerprint": mirror["docker_fpr"],
            "nvidia_container_toolkit_repo_url": f"{mirror['url']}/libnvidia-container",
            "nvidia_container_toolkit_key_fingerprint": mirror["nvidia_fpr"],
            "docker_version": DOCKER_VERSIONS[0],
            "nvidia_container_toolkit_version": TOOLKIT_VERSIONS[1],
            **overrides}


def make_bundle(out, hosts, key_home, **kwargs):
    from gpuhost_cli import bundle_create

    kwargs.setdefault("base_status", {"bookworm": BASE_STATUS})
    return bundle_create.create(out, hosts, key_home=key_home, **kwargs)


@pytest.fixture(scope="session")
def bundle_key_home(tmp_path_factory):
    return tmp_path_factory.mktemp("bundle-key") / "gnupg"


@pytest.fixture(scope="session")
def made_bundle(standin_mirror, bundle_key_home, tmp_path_factory):
    """{path, hosts, summary}: a bundle made once from the stand-in mirror for two bookworm hosts."""
    hosts = {"gpu-node-1": host_vars(standin_mirror), "gpu-node-2": host_vars(standin_mirror)}
    out = tmp_path_factory.mktemp("made") / "bundle"
    summary = make_bundle(out, hosts, bundle_key_home)
    return {"path": out, "hosts": hosts, "summary": summary}


@pytest.fixture
def bundle_copy(made_bundle, tmp_path):
    """A copy of the made bundle to tamper with."""
    copy = tmp_path / "bundle"
    shutil.copytree(made_bundle["path"], copy)
    return copy


def apt_from_bundle(bundle: Path, release: str, status: Path, packages, work: Path):
    """apt-get -s install PACKAGES on a host with STATUS whose only source is the bundle's
    RELEASE directory, trusted through signed-by the bundle keyring. Returns the completed run."""
    for sub in ("parts", "lists/partial", "archives/partial"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "sources.list").write_text(
        f"deb [signed-by={bundle / 'bundle-keyring.gpg'}] file:{bundle / release} ./\n", encoding="utf-8")
    lines = []
    for key, value in {"Dir::Etc::Parts": work / "parts", "Dir::Etc::main": "/dev/null",
                       "Dir::Etc::SourceList": work / "sources.list", "Dir::Etc::SourceParts": work / "parts",
                       "Dir::Etc::TrustedParts": work / "parts", "Dir::Etc::Trusted": work / "none.gpg",
                       "Dir::State::Lists": work / "lists", "Dir::State::status": status, "Dir::Cache": work,
                       "Dir::Cache::archives": work / "archives", "Debug::NoLocking": "1",
                       "APT::Sandbox::User": "root" if os.geteuid() == 0 else ""}.items():
        if value != "":
            lines.append(f'{key} "{value}";\n')
    (work / "apt.conf").write_text("".join(lines), encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C.UTF-8", "APT_CONFIG": str(work / "apt.conf")}
    update = subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, timeout=300)
    if update.returncode != 0 or "W:" in update.stderr or "E:" in update.stderr:
        return update
    return subprocess.run(["apt-get", "-s", "install", *packages], capture_output=True, text=True,
                          env=env, timeout=300)
