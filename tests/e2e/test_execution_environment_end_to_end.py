"""The execution environment as AWX runs it: built from ee/execution-environment.yml with
ansible-builder (on the local Debian 12 base image, ee/build-base-image.sh; the collection
from this checkout), then the collection's site playbook run from that image by
ansible-runner with process isolation against a lab host: converge, then a second run that
changes nothing. Needs root and a running Docker engine (tests/run.sh provides both, and
builds the base image beside the other test images). benchmarks/execution_environment.py
times the same steps; this test checks their outcome only."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NAME = "gpuhost-e2e-ee"
TAG = "gpuhost-ee:e2e"

_spec = importlib.util.spec_from_file_location("ee_benchmark", REPO / "benchmarks" / "execution_environment.py")
ee = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ee)


def _run(argv, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=1800, cwd=REPO, **kwargs)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    work = tmp_path_factory.mktemp("ee")
    base = _run(["bash", "ee/build-base-image.sh", "--tag", ee.BASE_IMAGE])
    assert base.returncode == 0, base.stdout[-3000:] + base.stderr[-3000:]
    build = _run(["bash", "ee/build.sh", "--base-image", ee.BASE_IMAGE, "--tag", TAG, "--work", work])
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    yield TAG
    _run(["docker", "image", "rm", TAG])


@pytest.fixture(scope="module")
def lab(tmp_path_factory, lab_fleet):
    state = tmp_path_factory.mktemp("lab")
    with lab_fleet(NAME, state) as summary:
        yield summary, state


def test_image_carries_the_collection_and_ansible_core(image):
    out = _run(["docker", "run", "--rm", image, "ansible-galaxy", "collection", "list", "gpuhost.gpuhost",
                "--format", "json"])
    assert out.returncode == 0, out.stderr
    found = {name: meta for path in json.loads(out.stdout).values() for name, meta in path.items()}
    assert "gpuhost.gpuhost" in found
    core = _run(["docker", "run", "--rm", image, "ansible", "--version"])
    assert core.returncode == 0 and "core 2.1" in core.stdout.splitlines()[0], core.stdout


def test_site_playbook_from_the_image_converges_then_changes_nothing(image, lab, tmp_path):
    summary, state = lab
    host = f"{NAME}-1"
    pdd = ee.private_data_dir(tmp_path / "runner", Path(summary["inventory"]), state / "id_ed25519")
    logs = tmp_path / "logs"
    logs.mkdir()
    first = ee.ee_run(pdd, "first", image, NAME, logs)
    assert first["recap"][host]["failed"] == 0 and first["recap"][host]["unreachable"] == 0
    assert first["recap"][host]["changed"] > 0, first["recap"]
    second = ee.ee_run(pdd, "second", image, NAME, logs)
    assert second["recap"][host]["changed"] == 0, second["recap"]
    assert second["recap"][host]["failed"] == 0
    # The playbook ran inside the image, from the installed collection.
    events = (pdd / "artifacts" / "second" / "stdout").read_text()
    assert "gpuhost.gpuhost" in (pdd / "artifacts" / "second" / "command").read_text()
    assert "PLAY RECAP" in events
