"""End to end behind an HTTP proxy: two lab hosts (Debian 12 with Docker 20.10, Debian 13
with Docker 26.1) on an internal Docker network that reaches the stand-in mirror only
through tinyproxy (with a password) and Debian's archive only through the shared apt
cache. gpuhost provision with gpuhost_proxy_* converges them, a second run changes
nothing, the proxy's log shows the mirror's traffic, and the password shows nowhere.
Needs root and a running Docker engine, and the test harness's stand-in mirror
(tests/run.sh serves it; the fixture serves it when it is not)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from lab_commands import on_host, run, standin_fingerprint

from gpuhost_cli.lab.fleet import Lab, LabError, inventory_documents, write_inventory

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "harness"
GPUHOST = Path(sys.executable).parent / "gpuhost"
#: The harness's stand-in mirror and its network (tests/harness/build-mirror.sh).
MIRROR = "gpuhost-mirror"
MIRROR_URL = f"http://{MIRROR}:8080"
TEST_NETWORK = "gpuhost-test"
#: The hosts' internal network (no way out but the proxy and the apt cache) and the hosts.
INTERNAL = "gpuhost-e2e-proxy"
PROXY = "gpuhost-e2e-proxy-tinyproxy"
HOSTS = {f"{INTERNAL}-1": "debian12", f"{INTERNAL}-2": "debian13"}
BOOKWORM, TRIXIE = list(HOSTS)
USER = "gpuhost"
APT_FILE = "/etc/apt/apt.conf.d/90gpuhost-proxy"
DROPIN = "/etc/systemd/system/docker.service.d/90-gpuhost-proxy.conf"
DAEMON_JSON = "/etc/docker/daemon.json"





def remove_everything(hosts_lab):
    subprocess.run(["bash", str(HARNESS / "http-proxy.sh"), "--name", PROXY, "--remove"], capture_output=True,
                   check=False, timeout=120)
    hosts_lab.down()


@pytest.fixture(scope="module")
def proxied_lab(tmp_path_factory):
    """The proxy, the internal network and its two hosts, the inventory; always removed."""
    state = tmp_path_factory.mktemp("proxy-lab")
    password = "pw-" + secrets.token_hex(12)
    hosts_lab = Lab(state_dir=state, prefix=INTERNAL)
    try:
        remove_everything(hosts_lab)
        hosts_lab.require_docker()
        run(["bash", HARNESS / "build-mirror.sh", "--serve"])
        hosts_lab.ensure_images(list(HOSTS.values()))
        hosts_lab.ensure_ssh_key()
        run(["docker", "network", "create", "--internal", "--label", f"gpuhost.lab={INTERNAL}", INTERNAL])
        run(["bash", HARNESS / "http-proxy.sh", "--name", PROXY, "--network", TEST_NETWORK, "--network", INTERNAL],
            env={**os.environ, "GPUHOST_PROXY_AUTH": f"{USER}:{password}"})
        hosts = hosts_lab.start_hosts(HOSTS, trust_mirror=False)
        # Debian's archive through the shared apt cache, which joins the internal network.
        run(["bash", HARNESS / "apt-cache.sh", "--network", INTERNAL, *HOSTS])
        inventory = write_inventory(state / "inventory", inventory_documents(
            hosts, hosts_lab.ssh_key, MIRROR_URL,
            {"docker": standin_fingerprint("docker"), "nvidia": standin_fingerprint("nvidia")}))
        (inventory / "group_vars" / "gpu_hosts" / "proxy.yml").write_text(
            "---\n"
            f"gpuhost_proxy_http: http://{USER}:{password}@{PROXY}:8888\n"
            "gpuhost_proxy_no_proxy: [.cluster.internal]\n"
            # The checks of gpuhost verify have their own test (test_lab_end_to_end.py); kept short here.
            "gpuhost_rollout_verify: false\n", encoding="utf-8")
        yield {"inventory": inventory, "password": password}
    except LabError as exc:
        pytest.fail(str(exc))
    finally:
        remove_everything(hosts_lab)


def test_the_hosts_reach_the_mirror_only_through_the_proxy(proxied_lab):
    # Without the proxy, the mirror is out of reach of the internal network.
    probe = on_host(BOOKWORM, "python3", "-c",
                    f"import urllib.request; urllib.request.urlopen('{MIRROR_URL}/', timeout=5)", check=False)
    assert probe.returncode != 0


def test_converge_behind_the_proxy_then_a_second_run_that_changes_nothing(proxied_lab):
    inventory, password = proxied_lab["inventory"], proxied_lab["password"]
    # Both hosts in one batch: the rollout's batches are not what this test is about.
    first = run([GPUHOST, "provision", "-i", inventory, "--batches", "100%", "--diff", "--format", "json"],
                check=False)
    outputs = [first.stdout, first.stderr]
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-3000:]
    data = json.loads(first.stdout)
    assert data["ok"] is True
    for host in data["hosts"].values():
        assert host["failed"] == 0 and host["unreachable"] == 0 and host["changed"] > 0
    # The daemon.json diff of the 26.1 host shows the proxy, with the password redacted.
    assert f"{USER}:***@{PROXY}:8888" in first.stdout

    second = run([GPUHOST, "provision", "-i", inventory, "--batches", "100%", "--diff", "--format", "json"],
                 check=False)
    outputs += [second.stdout, second.stderr]
    assert second.returncode == 0, second.stdout[-4000:]
    assert {name: host["changed"] for name, host in json.loads(second.stdout)["hosts"].items()} == {
        BOOKWORM: 0, TRIXIE: 0}

    print(f"converge {data['rollout']['elapsed_s']} s, no-op {json.loads(second.stdout)['rollout']['elapsed_s']} s")
    # The password is in no output and no report file.
    assert not [i for i, text in enumerate(outputs) if password in text]
    reports = [p for p in (inventory / ".gpuhost").rglob("*") if p.is_file()]
    assert reports
    assert not [str(p) for p in reports if password in p.read_text(encoding="utf-8", errors="replace")]

    # The proxy forwarded the hosts' requests to the stand-in mirror (packages and keys).
    log = run(["bash", HARNESS / "http-proxy.sh", "--name", PROXY, "--log"]).stdout
    assert f"http://{MIRROR}:8080/" in log
    assert "/linux/" in log and "/libnvidia-container/" in log


@pytest.mark.parametrize("host", list(HOSTS))
def test_apt_s_file_is_private_and_holds_the_proxy(proxied_lab, host):
    password = proxied_lab["password"]
    assert on_host(host, "stat", "-c", "%a %U", APT_FILE).stdout.split() == ["600", "root"]
    text = on_host(host, "cat", APT_FILE).stdout
    assert f'Acquire::http::Proxy "http://{USER}:{password}@{PROXY}:8888";' in text
    assert f'Acquire::http::Proxy::{host} "DIRECT";' in text
    # The test harness's per-host line for Debian's archive is left as it was.
    assert "gpuhost-apt-cache:3142" in on_host(host, "cat", "/etc/apt/apt.conf.d/01gpuhost-apt-cache").stdout


def docker_info(host):
    return json.loads(on_host(host, "docker", "info", "--format", "{{json .}}").stdout)


def test_docker_20_10_takes_the_proxy_from_the_drop_in_only(proxied_lab):
    password = proxied_lab["password"]
    assert on_host(BOOKWORM, "stat", "-c", "%a", DROPIN).stdout.strip() == "600"
    dropin = on_host(BOOKWORM, "cat", DROPIN).stdout
    assert f"HTTP_PROXY=http://{USER}:{password}@{PROXY}:8888" in dropin
    assert f"NO_PROXY=localhost,127.0.0.1,::1,{BOOKWORM}" in dropin and ".cluster.internal" in dropin
    assert "proxies" not in json.loads(on_host(BOOKWORM, "cat", DAEMON_JSON).stdout)
    info = docker_info(BOOKWORM)
    assert info["ServerVersion"].startswith("20.10")
    assert f"@{PROXY}:8888" in info["HttpProxy"] and password not in info["HttpProxy"]
    assert ".cluster.internal" in info["NoProxy"]


def test_docker_26_takes_the_proxy_from_daemon_json_only(proxied_lab):
    password = proxied_lab["password"]
    assert on_host(TRIXIE, "test", "-e", DROPIN, check=False).returncode != 0
    assert on_host(TRIXIE, "stat", "-c", "%a", DAEMON_JSON).stdout.strip() == "600"
    proxies = json.loads(on_host(TRIXIE, "cat", DAEMON_JSON).stdout)["proxies"]
    assert proxies["http-proxy"] == proxies["https-proxy"] == f"http://{USER}:{password}@{PROXY}:8888"
    assert proxies["no-proxy"].startswith(f"localhost,127.0.0.1,::1,{TRIXIE}")
    info = docker_info(TRIXIE)
    assert info["ServerVersion"].startswith("26.")
    assert f"@{PROXY}:8888" in info["HttpProxy"] and password not in info["HttpProxy"]
    assert f"@{PROXY}:8888" in info["HttpsProxy"]
