"""The execution environment's definition and the benchmark's helpers, without Docker.

    .venv/bin/pytest tests/ee

The image itself is built and run by benchmarks/execution_environment.py (Docker, a lab host).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EE = REPO / "ee"
sys.path.insert(0, str(REPO / "benchmarks"))

import execution_environment as bench  # noqa: E402


@pytest.fixture(scope="module")
def containerfile(tmp_path_factory) -> str:
    """The Dockerfile ansible-builder writes for the definition (ansible-builder create)."""
    pytest.importorskip("ansible_builder")
    context = tmp_path_factory.mktemp("context")
    staged = tmp_path_factory.mktemp("definition")
    for name in ("execution-environment.yml", "requirements.txt", "requirements.yml", "bindep.txt",
                 "package-manager"):
        (staged / name).write_bytes((EE / name).read_bytes())
    (staged / "pip").mkdir()
    (staged / "pip" / "pip.conf").write_bytes((EE / "pip" / "pip.conf").read_bytes())
    (staged / "collections").mkdir()
    (staged / "collections" / "gpuhost-gpuhost.tar.gz").write_bytes(b"not read by create")
    subprocess.run([sys.executable, "-m", "ansible_builder", "create", "--file",
                    str(staged / "execution-environment.yml"), "--context", str(context),
                    "--output-filename", "Dockerfile"], check=True, capture_output=True, text=True)
    for built in ("tools/package-manager", "pip/pip.conf", "collections/gpuhost-gpuhost.tar.gz",
                  "requirements.yml", "requirements.txt", "bindep.txt"):
        assert (context / "_build" / built).is_file(), built
    return (context / "Dockerfile").read_text(encoding="utf-8")


def test_definition_is_schema_3_with_the_pinned_ansible():
    definition = yaml.safe_load((EE / "execution-environment.yml").read_text(encoding="utf-8"))
    assert definition["version"] == 3
    assert definition["dependencies"]["ansible_core"]["package_pip"] == "ansible-core>=2.17,<2.20"
    assert definition["dependencies"]["ansible_runner"]["package_pip"].startswith("ansible-runner")
    collections = yaml.safe_load((EE / "requirements.yml").read_text(encoding="utf-8"))["collections"]
    assert collections == [{"name": "collections/gpuhost-gpuhost.tar.gz", "type": "file"}]


def test_containerfile_builds_on_the_base_image_argument(containerfile):
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert 'ARG EE_BASE_IMAGE="ghcr.io/ansible-community/community-ee-minimal:latest"' in containerfile


def test_containerfile_never_asks_galaxy_and_uses_the_package_manager_wrapper(containerfile):
    assert 'ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="--offline"' in containerfile
    assert 'ARG PKGMGR="/usr/local/sbin/ee-package-manager"' in containerfile
    assert "COPY _build/tools/package-manager /usr/local/sbin/ee-package-manager" in containerfile
    # Debian's Python has no ensurepip: the base image brings pip.
    assert "RUN /output/scripts/pip_install" not in containerfile


def test_build_time_pip_settings_stay_out_of_the_image(containerfile):
    lines = containerfile.splitlines()
    assert lines.index("ENV PIP_CONFIG_FILE=/output/pip/pip.conf") < lines.index(
        "RUN $PYCMD -m pip install --no-cache-dir $ANSIBLE_INSTALL_REFS")
    final = lines[lines.index("FROM base AS final"):]
    assert final.index("ENV PIP_CONFIG_FILE=") < final.index("RUN rm -rf /output")
    assert "ENV PIP_BREAK_SYSTEM_PACKAGES=1" in lines


def test_private_data_dir_drops_the_controller_key_path(tmp_path):
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "gpu_hosts").mkdir(parents=True)
    (inventory / "group_vars" / "gpu_hosts" / "lab.yml").write_text("---\nx: 1\n")
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"gpu_hosts": {
        "hosts": {"lab-1": {"ansible_host": "192.0.2.1"}},
        "vars": {"ansible_user": "root", "ansible_ssh_private_key_file": "/somewhere/id_ed25519"}}}}}))
    key = tmp_path / "id_ed25519"
    key.write_text("KEY\n")
    pdd = bench.private_data_dir(tmp_path / "pdd", inventory, key)
    hosts = yaml.safe_load((pdd / "inventory" / "hosts.yml").read_text())
    assert hosts["all"]["children"]["gpu_hosts"]["vars"] == {"ansible_user": "root"}
    assert (pdd / "inventory" / "group_vars" / "gpu_hosts" / "lab.yml").is_file()
    assert (pdd / "env" / "ssh_key").read_text() == "KEY\n"
    assert (pdd / "env" / "ssh_key").stat().st_mode & 0o777 == 0o600
    cfg = (pdd / "project" / "ansible.cfg").read_text()
    assert "pipelining = true" in cfg and "roles_path" not in cfg and "library" not in cfg


def test_recap_reads_the_stats_event(tmp_path):
    events = tmp_path / "job_events"
    events.mkdir()
    (events / "1-a.json").write_text(json.dumps({"event": "playbook_on_start"}))
    (events / "9-b.json").write_text(json.dumps({"event": "playbook_on_stats", "event_data": {
        "ok": {"h1": 11, "h2": 3}, "changed": {"h2": 1}, "failures": {}, "dark": {"h3": 1}, "skipped": {}}}))
    recap = bench.recap(tmp_path)
    assert recap["h1"]["changed"] == 0 and recap["h1"]["ok"] == 11
    assert recap["h2"]["changed"] == 1
    assert recap["h3"]["unreachable"] == 1


def test_recap_without_stats_is_an_error(tmp_path):
    (tmp_path / "job_events").mkdir()
    with pytest.raises(bench.BenchmarkError):
        bench.recap(tmp_path)
