"""An installed wheel gives a working gpuhost outside the checkout.

Builds the wheel (pip wheel), installs it without its dependencies into a fresh virtual
environment, and lets that environment see the test environment's dependencies through a
.pth line (so nothing is downloaded). The test environment's editable install of the
checkout is not seen: .pth files inside a directory added that way are not read. The
commands then run from a directory outside the checkout, with the checkout on no path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])


def _run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv directory, environment) of a venv holding only the built wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(REPO)])
    assert built.returncode == 0, f"pip wheel failed: {built.stderr.strip()[-2000:]}"
    wheel = next((tmp / "dist").glob("gpuhost-*.whl"))

    venv = tmp / "venv"
    created = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    done = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)])
    assert done.returncode == 0, done.stderr

    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(purelib, "gpuhost-test-deps.pth").write_text(f"{SITE_PACKAGES}\n", encoding="utf-8")
    # ansible-runner starts ansible and ansible-playbook from the PATH; gpuhost puts its own
    # interpreter's bin directory first, so launchers there run with the wheel's gpuhost_cli.
    for name in ("ansible", "ansible-playbook", "ansible-galaxy"):
        source = (Path(sys.executable).parent / name).read_text(encoding="utf-8").splitlines()
        launcher = venv / "bin" / name
        launcher.write_text("\n".join([f"#!{python}", *source[1:]]) + "\n", encoding="utf-8")
        launcher.chmod(0o755)

    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "ANSIBLE_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(["/usr/local/bin", "/usr/bin", "/bin"])
    env["HOME"] = str(tmp / "home")
    return venv, env, tmp


def test_wheel_carries_the_playbooks_and_finds_them(installed):
    venv, env, tmp = installed
    code = "from gpuhost_cli import paths; print(paths.project_root()); print(paths.plugins_dir())"
    out = _run([str(venv / "bin" / "python"), "-c", code], cwd=tmp, env=env)
    assert out.returncode == 0, out.stderr
    root, plugins = (Path(line) for line in out.stdout.splitlines())
    assert root.name == "_data" and venv in root.parents
    assert REPO not in root.parents and REPO not in plugins.parents
    for name in ("site.yml", "ansible.cfg", "playbooks/render.yml", "playbooks/verify.yml",
                 "roles/docker_daemon/tasks/render.yml", "roles/gpuhost_verify/tasks/main.yml",
                 "inventories/sample/hosts.yml"):
        assert (root / name).is_file(), name
    assert (plugins / "modules" / "docker_daemon_config.py").is_file()


def test_installed_gpuhost_help_and_version(installed):
    venv, env, tmp = installed
    out = _run([str(venv / "bin" / "gpuhost"), "--help"], cwd=tmp, env=env)
    assert out.returncode == 0, out.stderr
    assert "Usage: gpuhost" in out.stdout and "provision" in out.stdout and "render" in out.stdout
    out = _run([str(venv / "bin" / "gpuhost"), "--version"], cwd=tmp, env=env)
    assert out.returncode == 0 and out.stdout.startswith("gpuhost ")


def test_installed_gpuhost_renders_offline_outside_the_checkout(installed):
    venv, env, tmp = installed
    inventory = tmp / "inv"
    (inventory / "group_vars" / "gpu_hosts").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  children:\n    gpu_hosts:\n      hosts:\n        x:\n"
        "          ansible_host: x.invalid\n          ansible_connection: ssh\n", encoding="utf-8")
    (inventory / "group_vars" / "gpu_hosts" / "docker_daemon.yml").write_text(
        "docker_daemon_registry_mirrors: [https://mirror.example.com]\n", encoding="utf-8")
    out = _run([str(venv / "bin" / "gpuhost"), "render", "-i", "inv", "x", "--offline"], cwd=tmp, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    config = json.loads(out.stdout)
    assert config["registry-mirrors"] == ["https://mirror.example.com"]
    assert config["default-runtime"] == "nvidia"


def test_installed_gpuhost_writes_an_inventory_from_its_sample(installed):
    venv, env, tmp = installed
    out = _run([str(venv / "bin" / "gpuhost"), "inventory", "init", "new"], cwd=tmp, env=env)
    assert out.returncode == 0, out.stderr
    assert (tmp / "new" / "hosts.yml").is_file()
    assert (tmp / "new" / "group_vars" / "gpu_hosts" / "docker_daemon.yml").is_file()


def test_installed_gpuhost_builds_the_collection_outside_the_checkout(installed):
    venv, env, tmp = installed
    out = _run([str(venv / "bin" / "gpuhost"), "collection", "build", "--out", "dist"], cwd=tmp, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    tarball = Path(out.stdout.strip())
    assert tarball.is_file() and tarball.parent == tmp / "dist", out.stdout
    listed = _run(["tar", "-tzf", str(tarball)], cwd=tmp, env=env).stdout.splitlines()
    for name in ("MANIFEST.json", "playbooks/site.yml", "roles/docker_daemon/tasks/main.yml",
                 "plugins/modules/docker_daemon_config.py", "plugins/plugin_utils/host_plan.py", "meta/runtime.yml"):
        assert name in listed or any(entry.rstrip("/") == name for entry in listed), name
