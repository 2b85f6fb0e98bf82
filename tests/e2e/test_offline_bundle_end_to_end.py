"""End to end, air-gapped: two lab hosts (Debian 12 and Debian 13) on an internal Docker
network with no way out (no proxy, no apt cache: neither the stand-in mirror nor Debian's
archive). This machine makes an offline bundle with `gpuhost bundle create` from the
stand-in mirror and Debian's archive, against the hosts' own dpkg status; gpuhost
provision installs from it, the Debian 12 host from the bundle's directory copied to it,
the Debian 13 host from the bundle served over HTTP by a third container on the internal
network. A bundle with one package swapped for another valid one is refused by bundle
verify and by provision before anything changes on a host; the good bundle converges both
hosts, a second run changes nothing and gpuhost verify passes.
Needs root and a running Docker engine, the test-host images and the harness's stand-in
mirror (tests/run.sh serves it; the fixture serves it when it is not), and Debian's archive
from this machine."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from lab_commands import on_host, run, standin_fingerprint

from gpuhost_cli.lab.fleet import Lab, LabError, inventory_documents, write_inventory

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "harness"
GPUHOST = Path(sys.executable).parent / "gpuhost"
#: The harness's stand-in mirror, its network and its tree (tests/harness/build-mirror.sh).
MIRROR = "gpuhost-mirror"
TEST_NETWORK = "gpuhost-test"
MIRROR_TREE = REPO / ".cache" / "test" / "mirror"
#: The hosts' internal network, the hosts and the container that serves the bundle over HTTP.
INTERNAL = "gpuhost-e2e-offline"
HOSTS = {f"{INTERNAL}-1": "debian12", f"{INTERNAL}-2": "debian13"}
BOOKWORM, TRIXIE = list(HOSTS)
RELEASE = {BOOKWORM: "bookworm", TRIXIE: "trixie"}
SERVER = f"{INTERNAL}-bundle-server"
SERVER_PORT = 8080
#: What the role side writes on a host.
HOST_BUNDLE = "/var/lib/gpuhost/bundle"
KEYRING = "/etc/apt/keyrings/gpuhost-bundle.gpg"
BUNDLE_LIST = "/etc/apt/sources.list.d/gpuhost-bundle.list"
VENDOR_LISTS = ("/etc/apt/sources.list.d/docker.list", "/etc/apt/sources.list.d/nvidia-container-toolkit.list")
#: The packages the docker and nvidia_container_toolkit roles install (with the toolkit's own dependencies).
VENDOR_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin",
                   "nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
                   "libnvidia-container1")
#: The package whose file the tampered bundle replaces, by the other stand-in version from the
#: mirror's pool: a valid package from the same signed repository (built when the mirror is, so
#: its size may equal the original's, and then only the sha256 tells it apart).
SWAPPED = "docker-ce_27.6.0-1~debian.12~bookworm_amd64.deb"
SWAPPED_BY = MIRROR_TREE / "linux/debian/pool/stable/bookworm/docker-ce_27.5.1-1~debian.12~bookworm_amd64.deb"




def container_address(name, network):
    fmt = '{{(index .NetworkSettings.Networks "%s").IPAddress}}' % network
    address = run(["docker", "inspect", "--format", fmt, name]).stdout.strip()
    assert address, f"{name} has no address on {network}"
    return address



def write_yaml(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def installed(host):
    """dpkg-query -W of the host: every package and its version."""
    return on_host(host, "dpkg-query", "-W").stdout


def host_traces(host):
    """What a provision from a bundle leaves on a host, that a fresh host does not have."""
    probe = on_host(host, "sh", "-c", f"ls -d {BUNDLE_LIST} {KEYRING} {HOST_BUNDLE} {' '.join(VENDOR_LISTS)} "
                    "2>/dev/null || true")
    return probe.stdout.split()


def gpuhost_env(lab):
    """gpuhost's environment: the served bundle's metadata cached in the lab's directory."""
    return {**os.environ, "XDG_CACHE_HOME": str(lab["state"] / "cache")}


def provision(lab, inventory):
    return run([GPUHOST, "provision", "-i", inventory, "--batches", "100%", "--format", "json"], check=False,
               env=gpuhost_env(lab))


@pytest.fixture(scope="module")
def offline_lab():
    """The internal network, its two hosts, the bundle made here, the bundle's HTTP server and
    the inventory; always removed, with every file the fixture made."""
    state = Path(tempfile.mkdtemp(prefix="gpuhost-e2e-offline-"))
    hosts_lab = Lab(state_dir=state, prefix=INTERNAL, apt_cache=False)
    try:
        hosts_lab.down()
        hosts_lab.require_docker()
        run(["bash", HARNESS / "build-mirror.sh", "--serve"])
        hosts_lab.ensure_images(list(HOSTS.values()))
        hosts_lab.ensure_ssh_key()
        run(["docker", "network", "create", "--internal", "--label", f"gpuhost.lab={INTERNAL}", INTERNAL])
        hosts = hosts_lab.start_hosts(HOSTS, trust_mirror=False)

        # The bundle, made on this machine from the stand-in mirror (by its address: this machine
        # does not resolve the test network's names) and Debian's archive, against the hosts' own
        # dpkg status. The inventory the bundle is made from says each host's release.
        mirror_url = f"http://{container_address(MIRROR, TEST_NETWORK)}:8080"
        fingerprints = {"docker": standin_fingerprint("docker"), "nvidia": standin_fingerprint("nvidia")}
        documents = inventory_documents(hosts, hosts_lab.ssh_key, mirror_url, fingerprints)
        make_from = write_inventory(state / "inventory-bundle", documents)
        statuses = []
        for host in hosts:
            status = state / f"{host.name}.dpkg-status"
            status.write_text(on_host(host.name, "cat", "/var/lib/dpkg/status").stdout, encoding="utf-8")
            statuses += ["--base-status", f"{RELEASE[host.name]}={status}"]
            write_yaml(make_from / "host_vars" / f"{host.name}.yml",
                       {"ansible_distribution_release": RELEASE[host.name]})
        bundle = state / "bundle"
        started = time.monotonic()
        made = run([GPUHOST, "bundle", "create", "--out", bundle, "-i", make_from, "--key-home", state / "bundle-key",
                    *statuses, "--format", "json"])
        create_s = time.monotonic() - started
        summary = json.loads(made.stdout)
        per_release = ", ".join(f"{r['release']} {r['packages']}" for r in summary["releases"])
        print(f"\nbundle create {create_s:.1f} s: {summary['packages']} packages, "
              f"{summary['size'] / 1e6:.1f} MB ({per_release})")

        # The bundle over HTTP on the internal network, from a container that needs nothing from outside.
        run(["docker", "run", "--detach", "--name", SERVER, "--network", INTERNAL,
             "--label", f"gpuhost.lab={INTERNAL}", "--volume", f"{bundle}:/srv/bundle:ro",
             f"{hosts_lab.image_repo}/debian12:latest",
             "python3", "-m", "http.server", str(SERVER_PORT), "--directory", "/srv/bundle"])
        bundle_url = f"http://{container_address(SERVER, INTERNAL)}:{SERVER_PORT}"
        for _ in range(30):
            if on_host(BOOKWORM, "python3", "-c", f"import urllib.request; urllib.request.urlopen("
                       f"'{bundle_url}/manifest.json', timeout=5)", check=False).returncode == 0:
                break
            time.sleep(1)
        else:
            pytest.fail(f"the bundle server {SERVER} does not answer at {bundle_url}: "
                        + run(["docker", "logs", SERVER], check=False).stderr[-2000:])

        # The inventory of the run: the lab's, with the bundle (host 1 its directory, host 2 its URL).
        inventory = write_inventory(state / "inventory", documents)
        write_yaml(inventory / "group_vars" / "gpu_hosts" / "offline.yml",
                   {"gpuhost_offline_bundle_fingerprint": summary["key_fingerprint"]})
        write_yaml(inventory / "host_vars" / f"{BOOKWORM}.yml", {"gpuhost_offline_bundle": str(bundle)})
        write_yaml(inventory / "host_vars" / f"{TRIXIE}.yml", {"gpuhost_offline_bundle": bundle_url})
        yield {"state": state, "inventory": inventory, "bundle": bundle, "bundle_url": bundle_url,
               "mirror_url": mirror_url, "summary": summary, "fingerprint": summary["key_fingerprint"],
               "documents": documents}
    except LabError as exc:
        pytest.fail(str(exc))
    finally:
        hosts_lab.down()
        shutil.rmtree(state, ignore_errors=True)


def test_the_hosts_reach_neither_the_mirror_nor_debian_s_archive(offline_lab):
    for host in HOSTS:
        for url in (f"http://{MIRROR}:8080/", f"{offline_lab['mirror_url']}/", "http://deb.debian.org/debian/"):
            probe = on_host(host, "python3", "-c", f"import urllib.request; urllib.request.urlopen('{url}', timeout=5)",
                            check=False)
            assert probe.returncode != 0, f"{host} reaches {url}"


def test_a_bundle_with_a_swapped_package_is_refused_and_provision_changes_nothing(offline_lab):
    bundle, fpr, state = offline_lab["bundle"], offline_lab["fingerprint"], offline_lab["state"]
    good = run([GPUHOST, "bundle", "verify", bundle, "--fingerprint", fpr], check=False)
    assert good.returncode == 0, good.stdout + good.stderr

    swapped = state / "bundle-swapped"
    shutil.copytree(bundle, swapped)
    target = swapped / "bookworm" / SWAPPED
    assert target.is_file() and SWAPPED_BY.is_file() and target.read_bytes() != SWAPPED_BY.read_bytes()
    shutil.copyfile(SWAPPED_BY, target)
    refused = run([GPUHOST, "bundle", "verify", swapped, "--fingerprint", fpr], check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"bookworm/{SWAPPED}" in refused.stderr

    # An inventory whose bundle is the swapped copy, for both hosts: the run stops on the controller.
    inventory = state / "inventory-swapped"
    shutil.copytree(offline_lab["inventory"], inventory)
    for host in HOSTS:
        write_yaml(inventory / "host_vars" / f"{host}.yml", {"gpuhost_offline_bundle": str(swapped)})
    before = {host: installed(host) for host in HOSTS}
    assert {host: host_traces(host) for host in HOSTS} == {host: [] for host in HOSTS}
    failed = provision(offline_lab, inventory)
    assert failed.returncode != 0, failed.stdout[-4000:]
    assert f"bookworm/{SWAPPED}" in failed.stdout + failed.stderr, failed.stdout[-4000:] + failed.stderr[-3000:]
    assert {host: host_traces(host) for host in HOSTS} == {host: [] for host in HOSTS}
    assert {host: installed(host) for host in HOSTS} == before
    shutil.rmtree(swapped)


def test_a_dry_run_shows_the_bundle_s_source_and_changes_nothing(offline_lab):
    before = {host: installed(host) for host in HOSTS}
    dry = run([GPUHOST, "provision", "-i", offline_lab["inventory"], "--batches", "100%", "--check", "--diff",
               "--format", "json"], check=False, env=gpuhost_env(offline_lab))
    assert dry.returncode == 0, dry.stdout[-6000:] + dry.stderr[-3000:]
    assert json.loads(dry.stdout)["ok"] is True
    # The diff shows each host's source line as a real run writes it, and no vendor source.
    assert f"+deb [signed-by={KEYRING} check-date=no] file:{HOST_BUNDLE}/bookworm ./" in dry.stdout
    assert f"+deb [signed-by={KEYRING} check-date=no] {offline_lab['bundle_url']}/trixie ./" in dry.stdout
    assert "download.docker.com" not in dry.stdout and "/linux/debian" not in dry.stdout
    assert {host: host_traces(host) for host in HOSTS} == {host: [] for host in HOSTS}
    assert {host: installed(host) for host in HOSTS} == before


def test_provision_converges_both_hosts_from_the_bundle(offline_lab):
    started = time.monotonic()
    first = provision(offline_lab, offline_lab["inventory"])
    converge_s = time.monotonic() - started
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    data = json.loads(first.stdout)
    assert data["ok"] is True
    assert set(data["hosts"]) == set(HOSTS)
    for host in data["hosts"].values():
        assert host["failed"] == 0 and host["unreachable"] == 0 and host["changed"] > 0
    print(f"\nconverge from the bundle: {data['rollout']['elapsed_s']} s in the rollout, {converge_s:.1f} s in all")

    manifest = json.loads((offline_lab["bundle"] / "manifest.json").read_text(encoding="utf-8"))
    for host, release in RELEASE.items():
        versions = {p["package"]: p["version"] for p in manifest["packages"] if p["release"] == release}
        assert set(VENDOR_PACKAGES) <= set(versions), sorted(versions)
        # Every package of the release's part of the bundle is installed, at the bundle's version: the
        # bundle made against the host's own dpkg status holds what the host lacked, and only that.
        query = on_host(host, "dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n",
                        *sorted(versions), check=False).stdout
        found = {line.split("\t")[0]: tuple(line.split("\t")[1:]) for line in query.splitlines()}
        assert found == {name: (version, "ii ") for name, version in versions.items()}, host

        # apt's source is the bundle alone, signed by the bundle key; Docker's and NVIDIA's are not there.
        source = on_host(host, "cat", BUNDLE_LIST).stdout
        location = f"file:{HOST_BUNDLE}/{release}" if host == BOOKWORM else f"{offline_lab['bundle_url']}/{release}"
        assert f"deb [signed-by={KEYRING} check-date=no] {location} ./" in source, source
        keys = on_host(host, "gpg", "--batch", "--with-colons", "--show-keys", KEYRING).stdout
        assert f":{offline_lab['fingerprint']}:" in keys
        for path in VENDOR_LISTS:
            assert on_host(host, "test", "-e", path, check=False).returncode != 0, f"{host}: {path} exists"
        copied = on_host(host, "test", "-d", f"{HOST_BUNDLE}/{release}", check=False).returncode == 0
        assert copied is (host == BOOKWORM), f"{host}: {HOST_BUNDLE}/{release} copied: {copied}"

        info = json.loads(on_host(host, "docker", "info", "--format", "{{json .}}").stdout)
        assert "nvidia" in info["Runtimes"] and info["Driver"] == "vfs"


def test_a_second_run_changes_nothing(offline_lab):
    started = time.monotonic()
    second = provision(offline_lab, offline_lab["inventory"])
    noop_s = time.monotonic() - started
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    data = json.loads(second.stdout)
    assert {name: host["changed"] for name, host in data["hosts"].items()} == {host: 0 for host in HOSTS}
    print(f"\nno-op run: {data['rollout']['elapsed_s']} s in the rollout, {noop_s:.1f} s in all")


def test_verify_passes_on_the_air_gapped_hosts(offline_lab):
    done = run([GPUHOST, "verify", "-i", offline_lab["inventory"], "--format", "json"], check=False,
               env=gpuhost_env(offline_lab))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    for host in HOSTS:
        checks = {c["name"]: c["status"] for c in result["hosts"][host]["checks"]}
        assert result["hosts"][host]["status"] == "passed", result["hosts"][host]
        assert checks["Docker answers"] == "passed"
        assert checks["nvidia runtime registered"] == "passed"
        assert checks["default runtime"] == "passed"
        assert checks["docker run --gpus all"] == "not_applicable"
