"""The collection gpuhost.gpuhost as a collection user runs it: built from the checkout,
installed into an empty path with ansible-galaxy, and its site playbook run with plain
ansible-playbook from a directory with no checkout (no ansible.cfg, no roles path, no
plugin paths) against a lab host over SSH: converge, then a second run that changes
nothing. Needs root and a running Docker engine (tests/run.sh provides both)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpuhost_cli import collection

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
NAME = "gpuhost-e2e-collection"


def _run(argv, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=1800, **kwargs)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, lab_fleet):
    with lab_fleet(NAME, tmp_path_factory.mktemp("lab")) as summary:
        yield summary


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A working directory with no checkout and the environment of a collection user."""
    tmp = tmp_path_factory.mktemp("collection-user")
    tarball = collection.build(tmp / "dist")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "PYTHONPATH"))}
    env.update(HOME=str(tmp / "home"), ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"),
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_HOST_KEY_CHECKING="false")
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "/usr/bin:/bin")])
    work = tmp / "work"
    work.mkdir()
    installed = _run([BIN / "ansible-galaxy", "collection", "install", "-p", tmp / "collections", tarball],
                     env=env, cwd=work)
    assert installed.returncode == 0, installed.stderr
    return work, env


def _site(user, inventory):
    work, env = user
    run = _run([BIN / "ansible-playbook", "-i", inventory, "gpuhost.gpuhost.site"], env=env, cwd=work)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    result = json.loads(run.stdout)
    paths = {task["task"]["path"] for play in result["plays"] for task in play["tasks"] if task["task"].get("path")}
    assert paths and not any(str(REPO) in path for path in paths), "a task ran from the checkout"
    return result


def test_site_playbook_of_the_installed_collection_converges_then_changes_nothing(lab, user):
    host = f"{NAME}-1"
    first = _site(user, lab["inventory"])
    stats = first["stats"][host]
    assert stats["failures"] == 0 and stats["unreachable"] == 0 and stats["changed"] > 0, stats
    ran = {task["task"]["name"] for play in first["plays"] for task in play["tasks"]}
    assert any(name.startswith("Provision | ") for name in ran)
    second = _site(user, lab["inventory"])
    assert second["stats"][host]["changed"] == 0, second["stats"][host]
    assert second["stats"][host]["failures"] == 0


def test_the_host_runs_gpu_containers_after_the_collection(lab):
    """gpuhost verify, from the checkout, on the host the collection converged."""
    verify = _run([BIN / "gpuhost", "verify", "-i", lab["inventory"], "--format", "json"])
    assert verify.returncode == 0, verify.stderr[-3000:]
    host = json.loads(verify.stdout)["hosts"][f"{NAME}-1"]
    assert host["status"] == "passed", host
    checks = {check["name"]: check["status"] for check in host["checks"]}
    assert checks["nvidia runtime registered"] == "passed" and checks["default runtime"] == "passed"
