"""The stand-ins of Docker's CLI plugins and of Ubuntu's packages of them, built with
build-mirror.sh's own functions: each ships the real plugin path, answers Docker's CLI plugin
protocol, and Docker's and Ubuntu's packages of one plugin collide in dpkg as the real ones do."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "gpuhost_cli" / "lab" / "assets"
PLUGINS = "usr/libexec/docker/cli-plugins"

pytestmark = pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb is not installed")

PACKAGES = {
    # name: (version, plugin)
    "docker-compose-plugin": ("2.32.4-1~ubuntu.22.04~jammy", "docker-compose"),
    "docker-buildx-plugin": ("0.20.0-1~ubuntu.22.04~jammy", "docker-buildx"),
    "docker-compose-v2": ("2.24.6+ds1-0ubuntu1~22.04.1", "docker-compose"),
    "docker-buildx": ("0.14.1-0ubuntu1~22.04.1", "docker-buildx"),
}


def run(args, env=None, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, **kwargs)


def arch():
    return run(["dpkg", "--print-architecture"]).stdout.strip()


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """The four packages as build-mirror.sh's docker_repo and ubuntu_archive build them."""
    out = tmp_path_factory.mktemp("debs")
    lines = [f'source "{ASSETS}/build-mirror.sh"', f'work="{out}/work"', 'mkdir -p "$work"']
    for name, (version, plugin) in PACKAGES.items():
        lines.append(f'build_deb {name} "{version}" "" "{out}" '
                     f'"$here/standin/{plugin}:$cli_plugins/{plugin}"')
    proc = run(["bash", "-c", "; ".join(lines)], {"GPUHOST_CACHE": str(out / "cache")})
    assert proc.returncode == 0, proc.stderr
    found = {}
    for name, (version, _plugin) in PACKAGES.items():
        deb = out / f"{name}_{version}_{arch()}.deb"
        tree = out / f"tree-{name}"
        subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
        found[name] = (deb, tree)
    return found


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_ships_its_cli_plugin(debs, name):
    _deb, tree = debs[name]
    plugin = tree / PLUGINS / PACKAGES[name][1]
    assert plugin.is_file() and os.access(plugin, os.X_OK)
    assert "STAND-IN" in (tree / "DEBIAN" / "control").read_text()


@pytest.mark.parametrize("name, version, description", [
    ("docker-compose-plugin", "v2.32.4", "STAND-IN of Docker Compose, built for gpuhost's tests"),
    ("docker-compose-v2", "v2.24.6+ds1", "STAND-IN of Docker Compose, built for gpuhost's tests"),
    ("docker-buildx-plugin", "v0.20.0", "STAND-IN of Docker Buildx, built for gpuhost's tests"),
    ("docker-buildx", "v0.14.1", "STAND-IN of Docker Buildx, built for gpuhost's tests"),
])
def test_the_plugin_answers_docker_s_cli_plugin_protocol(debs, name, version, description):
    plugin = debs[name][1] / PLUGINS / PACKAGES[name][1]
    proc = run([str(plugin), "docker-cli-plugin-metadata"])
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"SchemaVersion": "0.1.0", "Vendor": "gpuhost stand-in",
                                       "Version": version, "ShortDescription": description}


def test_docker_compose_version_names_a_stand_in(debs):
    plugin = debs["docker-compose-plugin"][1] / PLUGINS / "docker-compose"
    # Docker runs a plugin as PLUGIN SUBCOMMAND ARGS...: `docker compose version` is this.
    assert run([str(plugin), "compose", "version"]).stdout == \
        "Docker Compose version v2.32.4 (gpuhost STAND-IN, not Docker's software)\n"
    assert run([str(plugin), "compose", "version", "--short"]).stdout == "2.32.4\n"
    assert json.loads(run([str(plugin), "compose", "version", "--format", "json"]).stdout) == {"version": "v2.32.4"}
    up = run([str(plugin), "compose", "up"])
    assert up.returncode == 1 and "STAND-IN" in up.stderr


def test_docker_buildx_version_names_a_stand_in(debs):
    plugin = debs["docker-buildx-plugin"][1] / PLUGINS / "docker-buildx"
    assert run([str(plugin), "buildx", "version"]).stdout == \
        "github.com/docker/buildx v0.20.0 gpuhost-stand-in (STAND-IN, not Docker's software)\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="dpkg --root needs root")
@pytest.mark.parametrize("ubuntu, docker, path", [
    ("docker-compose-v2", "docker-compose-plugin", "docker-compose"),
    ("docker-buildx", "docker-buildx-plugin", "docker-buildx"),
])
def test_docker_s_plugin_over_ubuntu_s_package_fails_as_dpkg_does(debs, tmp_path, ubuntu, docker, path):
    root = tmp_path / "root"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").touch()
    dpkg = ["dpkg", f"--root={root}", "--log=/dev/null", "--force-script-chrootless", "--force-not-root", "-i"]
    first = run([*dpkg, str(debs[ubuntu][0])])
    assert first.returncode == 0, first.stderr
    second = run([*dpkg, str(debs[docker][0])])
    assert second.returncode != 0
    assert (f"trying to overwrite '/{PLUGINS}/{path}', which is also in package {ubuntu}") in second.stderr
