"""The gpuhost_verify role, run by Ansible on this machine (read-only) against recorded hosts.

gpu_facts reads a recorded host tree from tests/fixtures/gpu (module_defaults sets its
root), and a stand-in ``docker`` first on the PATH answers docker info, pull, image
inspect and run, so the GPU container checks run without a GPU and without touching the
machine's Docker engine. The run goes through gpuhost_cli.runner, as the CLI's does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from gpuhost_cli import runner, views

from stand_in_docker import install_stand_in_docker

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gpu"


PLAYBOOK = """\
- name: Verify a recorded host
  hosts: gpu_hosts
  gather_facts: false
  module_defaults:
    gpu_facts:
      root: "{{ gpuhost_test_root }}"
  roles:
    - role: gpuhost_verify
"""


@pytest.fixture
def verify(tmp_path, monkeypatch):
    install_stand_in_docker(tmp_path, monkeypatch)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"gpu_hosts": {"hosts": {"node": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}), encoding="utf-8")
    playbook = tmp_path / "verify.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")

    def run(tree, **variables):
        result = runner.run_playbook(playbook, inventory, extravars={"gpuhost_test_root": str(FIXTURES / tree),
                                                                     **variables})
        host = result.model.hosts["node"]
        return result, host, {c["name"]: c for c in views.verify_checks(host)}

    return run


ALL_CHECKS = [
    "Docker answers", "nvidia runtime registered", "default runtime", "NVIDIA GPUs", "NVIDIA driver loaded",
    "test image", "docker run --gpus all", "docker run --gpus '\"device=0\"'", "docker run --device nvidia.com/gpu=all",
    "docker run --runtime=nvidia",
]
CDI = "docker run --device nvidia.com/gpu=all"
CDI_SPEC = """\
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
"""


def cdi_host(tmp_path, features_cdi=True, spec=CDI_SPEC):
    """eight-gpus-driver with a CDI spec and daemon.json's features.cdi (Docker 27.5.1 needs it)."""
    root = tmp_path / "cdi-host"
    shutil.copytree(FIXTURES / "eight-gpus-driver", root, symlinks=True)
    daemon = root / "etc/docker/daemon.json"
    config = json.loads(daemon.read_text(encoding="utf-8"))
    if features_cdi is not None:
        config["features"] = {"cdi": features_cdi}
    daemon.write_text(json.dumps(config), encoding="utf-8")
    if spec:
        (root / "etc/cdi").mkdir(parents=True)
        (root / "etc/cdi/nvidia.yaml").write_text(spec, encoding="utf-8")
    return root


def test_a_working_gpu_host_passes_every_check(verify):
    result, host, checks = verify("eight-gpus-driver")
    assert result.rc == 0, result.stdout[-2000:]
    assert list(checks) == ALL_CHECKS
    assert all(c["status"] == "passed" for n, c in checks.items() if n != CDI), checks
    # Docker 27.5.1 without "features": {"cdi": true}: CDI does not apply, and says why.
    assert checks[CDI] == {"name": CDI, "status": "not_applicable", "detail":
                           'CDI is off in Docker ("features": {"cdi": true} is not in daemon.json; see docker_daemon_cdi)'}
    assert checks["NVIDIA GPUs"]["detail"] == "8 found: NVIDIA H100 SXM5 80GB"
    assert checks["NVIDIA driver loaded"]["detail"] == "driver 550.54.15"
    assert checks["docker run --gpus all"]["detail"] == "NVIDIA-SMI 550.54.15 Driver Version: 550.54.15 CUDA Version: 12.4"
    assert checks["docker run --gpus '\"device=0\"'"]["detail"].startswith("GPU 0: NVIDIA H100")
    assert checks["test image"]["detail"] == "ubuntu:24.04 present"
    assert host.succeeded


def test_gpu_containers_use_nvidias_sample_image_and_skip_the_cuda_requirement(verify, tmp_path, monkeypatch):
    """A CUDA image's NVIDIA_REQUIRE_CUDA refuses drivers older than its CUDA (525, 545, 555
    for CUDA 12.6): the checks use a plain image, as NVIDIA's sample workload does, and
    disable that requirement, so a working host with an older driver is not reported broken."""
    log = tmp_path / "docker.log"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    result, host, checks = verify("eight-gpus-driver")
    assert result.rc == 0, result.stdout[-2000:]
    runs = [line.split() for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("run ")]
    assert len(runs) == 3
    for argv in runs:
        assert "ubuntu:24.04" in argv
        assert argv[argv.index("NVIDIA_DISABLE_REQUIRE=true") - 1] == "-e"
        assert argv.index("NVIDIA_DISABLE_REQUIRE=true") < argv.index("ubuntu:24.04")


def test_a_host_without_gpus_reports_the_gpu_checks_not_applicable(verify):
    result, host, checks = verify("no-gpu")
    assert result.rc == 0
    for name in ALL_CHECKS[3:]:
        assert checks[name] == {"name": name, "status": "not_applicable", "detail": "no NVIDIA GPU on this host"}
    assert [checks[n]["status"] for n in ALL_CHECKS[:3]] == ["passed"] * 3


def test_a_gpu_without_a_driver_fails_and_says_why(verify):
    result, host, checks = verify("nouveau")
    assert result.rc != 0
    assert checks["NVIDIA GPUs"]["status"] == "passed"
    assert checks["NVIDIA driver loaded"] == {
        "name": "NVIDIA driver loaded", "status": "failed",
        "detail": "the nvidia kernel module is not loaded (nouveau is loaded instead)"}
    for name in ALL_CHECKS[5:]:
        assert checks[name]["status"] == "failed"
        assert checks[name]["detail"] == "not tried: the NVIDIA driver is not loaded"
    assert host.status == "failed"
    assert host.error.startswith("node failed 6 of 10 checks: NVIDIA driver loaded, test image")


def test_a_failing_container_fails_the_host_with_dockers_message(verify, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_DEVICE", "bad")
    result, host, checks = verify("eight-gpus-driver")
    assert result.rc != 0
    bad = checks["docker run --gpus '\"device=0\"'"]
    assert bad["status"] == "failed" and bad["detail"] == "docker: Error response from daemon: invalid device"
    assert checks["docker run --gpus all"]["status"] == "passed"
    text = views.render_text([views.verify_table(result.model)])
    assert "FAILED" in text and "node: docker run --gpus '\"device=0\"': docker: Error response" in text


def test_the_default_runtime_follows_the_docker_daemon_role(verify):
    result, host, checks = verify("no-gpu", docker_daemon_default_runtime="runc")
    assert result.rc != 0
    assert checks["default runtime"] == {"name": "default runtime", "status": "failed",
                                         "detail": "default runtime is nvidia, expected runc"}
    result, host, checks = verify("no-gpu", docker_daemon_default_runtime="")
    assert result.rc == 0
    assert checks["default runtime"]["status"] == "not_applicable"


def test_without_pull_a_missing_image_is_named(verify, monkeypatch, tmp_path):
    bindir = Path(os.environ["PATH"].split(os.pathsep)[0])
    docker = bindir / "docker"
    docker.write_text(docker.read_text().replace('  image) echo "sha256:0123456789abcdef" ;;',
                                                 '  image) echo "Error: No such image: $5" >&2; exit 1 ;;'))
    result, host, checks = verify("eight-gpus-driver", gpuhost_verify_pull=False)
    assert result.rc != 0
    assert checks["test image"]["detail"] == (
        "ubuntu:24.04 is not on the host; docker load it, or set gpuhost_verify_pull: true")
    assert checks["docker run --gpus all"]["detail"] == "not tried: the test image is missing"


def test_the_captured_h200_host_without_docker(verify, monkeypatch):
    """The real H200 host (tests/fixtures/gpu-captured) had its driver but no Docker engine."""
    monkeypatch.setenv("FAKE_DOCKER_STATE", "down")
    result, host, checks = verify("h200-captured")
    assert result.rc != 0
    assert checks["Docker answers"] == {
        "name": "Docker answers", "status": "failed",
        "detail": "Docker is not installed (no docker program on the host); run gpuhost provision"}
    assert checks["NVIDIA GPUs"] == {"name": "NVIDIA GPUs", "status": "passed", "detail": "1 found: NVIDIA H200 SXM 141GB"}
    assert checks["NVIDIA driver loaded"]["detail"] == "driver 580.159.04"
    recorded = json.loads((REPO / "tests/fixtures/gpu-captured/verify-cli.json").read_text())
    (real,) = recorded["hosts"].values()
    for check in real["checks"]:
        if check["name"] != "Docker answers":
            assert checks[check["name"]] == check, check["name"]


def test_a_cdi_host_runs_the_cdi_container(verify, tmp_path, monkeypatch):
    log = tmp_path / "docker.log"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    result, host, checks = verify(cdi_host(tmp_path))
    assert result.rc == 0, result.stdout[-2000:]
    assert all(c["status"] == "passed" for c in checks.values()), checks
    assert checks[CDI]["detail"] == "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d2b6a0e)"
    runs = [line.split() for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("run ")]
    (cdi,) = [argv for argv in runs if "nvidia.com/gpu=all" in argv]
    assert cdi[cdi.index("nvidia.com/gpu=all") - 1] == "--device"
    assert "--gpus" not in cdi and "--runtime=nvidia" not in cdi


def test_a_failing_cdi_container_fails_the_host(verify, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_CDI", "bad")
    result, host, checks = verify(cdi_host(tmp_path))
    assert result.rc != 0
    assert checks[CDI]["status"] == "failed"
    assert "unresolvable CDI devices nvidia.com/gpu=all" in checks[CDI]["detail"]


@pytest.mark.parametrize("features_cdi, spec, detail", [
    (False, CDI_SPEC, 'CDI is off in Docker ("features": {"cdi": true} is not in daemon.json; see docker_daemon_cdi)'),
    (True, None, "no CDI spec lists nvidia.com/gpu=all (see nvidia_container_toolkit_cdi)"),
    (True, CDI_SPEC.replace("name: all", "name: gpu-all"),
     "no CDI spec lists nvidia.com/gpu=all (see nvidia_container_toolkit_cdi)"),
])
def test_cdi_does_not_apply_without_the_engine_feature_or_a_spec(verify, tmp_path, features_cdi, spec, detail):
    result, host, checks = verify(cdi_host(tmp_path, features_cdi, spec))
    assert result.rc == 0, result.stdout[-2000:]
    assert checks[CDI] == {"name": CDI, "status": "not_applicable", "detail": detail}


def test_an_isolated_host_runs_the_cdi_container_and_not_the_envvar_ones(verify, tmp_path, monkeypatch):
    """With accept-nvidia-visible-devices-envvar-when-unprivileged = false the runtime refuses
    NVIDIA_VISIBLE_DEVICES in unprivileged containers, and Docker's --gpus hands GPUs over in
    that variable: those checks do not apply; the CDI one does."""
    log = tmp_path / "docker.log"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    root = cdi_host(tmp_path)
    config = root / "etc/nvidia-container-runtime/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("accept-nvidia-visible-devices-envvar-when-unprivileged = false\n"
                      "accept-nvidia-visible-devices-as-volume-mounts = true\n", encoding="utf-8")
    result, host, checks = verify(root)
    assert result.rc == 0, result.stdout[-2000:]
    for name in ("docker run --gpus all", "docker run --gpus '\"device=0\"'", "docker run --runtime=nvidia"):
        assert checks[name]["status"] == "not_applicable", checks[name]
        assert checks[name]["detail"].startswith(
            "GPU isolation: the runtime ignores NVIDIA_VISIBLE_DEVICES in unprivileged containers "
            "(toolkit isolation volume-mounts)")
    assert checks[CDI]["status"] == "passed"
    runs = [line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("run ")]
    assert len(runs) == 1 and "nvidia.com/gpu=all" in runs[0]


# ---- Registry mirrors ----------------------------------------------------------------------

MIRROR_NAME = "registry mirror {}"


def mirrors_json(*urls):
    return json.dumps(list(urls))


def test_a_dead_mirror_is_a_warning_that_does_not_fail_the_host(verify, monkeypatch):
    from registry_servers import closed_port

    dead = f"http://127.0.0.1:{closed_port()}/"
    monkeypatch.setenv("FAKE_DOCKER_MIRRORS", mirrors_json(dead))
    result, host, checks = verify("no-gpu")
    assert result.rc == 0, result.stdout[-2000:]
    assert host.succeeded
    check = checks[MIRROR_NAME.format(dead)]
    assert check["status"] == "warning"
    assert check["detail"].startswith(f"{dead} is dead: connection refused. Docker skips it")
    text = views.render_text([views.verify_table(result.model)])
    assert re.search(rf"registry mirror {re.escape(dead)}\s+warning", text), text
    assert f"node: warning: registry mirror {dead}: {dead} is dead: connection refused" in " ".join(text.split())
    report = views.verify_hosts_json(result.model)["node"]
    assert report["status"] == "passed"
    assert report["warnings"] == [MIRROR_NAME.format(dead)]


def test_with_mirrors_required_a_bad_mirror_fails_the_host(verify, monkeypatch):
    from registry_servers import REGISTRY_HEADERS, serve

    with serve(401, REGISTRY_HEADERS) as good_port, serve(404, {}) as apt_port:
        good, apt = f"http://127.0.0.1:{good_port}/", f"http://127.0.0.1:{apt_port}/"
        monkeypatch.setenv("FAKE_DOCKER_MIRRORS", mirrors_json(good, apt))
        result, host, checks = verify("no-gpu", gpuhost_verify_mirrors_required=True)
    assert result.rc != 0
    assert not host.succeeded
    assert checks[MIRROR_NAME.format(good)]["status"] == "passed"
    assert checks[MIRROR_NAME.format(good)]["detail"] == (
        f"{good} answers as a registry: HTTP 401 with Docker-Distribution-API-Version: registry/2.0")
    assert checks[MIRROR_NAME.format(apt)]["status"] == "failed"
    assert "is not a registry: answered HTTP 404 without Docker-Distribution-API-Version" in \
        checks[MIRROR_NAME.format(apt)]["detail"]
    assert f"failed 1 of {len(checks)} checks: registry mirror {apt}" in " ".join(host.error.split())
    report = views.verify_hosts_json(result.model)["node"]
    assert report["status"] == "failed"
    assert report["warnings"] == []


def test_the_mirror_probe_goes_through_the_inventorys_proxy(verify, monkeypatch):
    from registry_servers import REGISTRY_HEADERS, serve

    seen = []
    mirror = "http://registry-mirror.gpuhost.invalid:5000/"
    monkeypatch.setenv("FAKE_DOCKER_MIRRORS", mirrors_json(mirror))
    with serve(200, REGISTRY_HEADERS, seen=seen) as proxy_port:
        result, host, checks = verify("no-gpu", gpuhost_proxy_http=f"http://127.0.0.1:{proxy_port}")
    assert result.rc == 0, result.stdout[-2000:]
    assert checks[MIRROR_NAME.format(mirror)]["status"] == "passed"
    assert checks[MIRROR_NAME.format(mirror)]["detail"].endswith(f"(through the proxy http://127.0.0.1:{proxy_port})")
    assert seen == ["GET http://registry-mirror.gpuhost.invalid:5000/v2/ HTTP/1.1"]


@pytest.mark.parametrize("masked", [False, True])
def test_the_mirror_probe_prefers_dockers_own_proxy_unless_docker_masks_its_password(verify, monkeypatch, masked):
    from registry_servers import REGISTRY_HEADERS, closed_port, serve

    mirror = "http://registry-mirror.gpuhost.invalid:5000/"
    monkeypatch.setenv("FAKE_DOCKER_MIRRORS", mirrors_json(mirror))
    dockers, inventorys = [], []
    with serve(200, REGISTRY_HEADERS, seen=dockers) as docker_port, \
            serve(200, REGISTRY_HEADERS, seen=inventorys) as inventory_port:
        credentials = "xxxxx:xxxxx@" if masked else ""
        monkeypatch.setenv("FAKE_DOCKER_HTTP_PROXY", f"http://{credentials}127.0.0.1:{docker_port}")
        result, host, checks = verify("no-gpu", gpuhost_proxy_http=f"http://127.0.0.1:{inventory_port}",
                                      gpuhost_proxy_no_proxy=[".example.com", f"127.0.0.{closed_port() % 200 + 2}"])
    assert result.rc == 0, result.stdout[-2000:]
    assert checks[MIRROR_NAME.format(mirror)]["status"] == "passed"
    used = inventorys if masked else dockers
    assert used == ["GET http://registry-mirror.gpuhost.invalid:5000/v2/ HTTP/1.1"]
    assert (dockers if masked else inventorys) == []
