"""docker_daemon_registry_ca_certs: the checks that stop bad entries before any host changes
(module_utils/gpuhost_registry_ca.py, through the docker_daemon role's filter)."""

from __future__ import annotations

import pytest
from plugin_loader import use_module_utils
from registry_servers import LabCA

from gpuhost_cli.ansible_plugins.filter.docker_daemon import FilterModule

use_module_utils()

from ansible.module_utils import gpuhost_registry_ca as rc  # noqa: E402

FILTERS = FilterModule().filters()
problems = FILTERS["docker_daemon_registry_ca_problems"]


@pytest.fixture(scope="module")
def ca():
    return LabCA()


@pytest.mark.parametrize("registry", [
    "mirror.example.com:5000", "mirror.example.com", "gpuhost-registry:5000", "10.0.0.5:443", "[fd00::5]:5000",
    "localhost:1",
])
def test_good_entries_pass(ca, registry):
    assert problems([{"registry": registry, "cert": ca.pem}]) == []


def test_several_cas_in_one_text_pass(ca):
    assert problems([{"registry": "mirror.example.com:5000", "cert": ca.pem + LabCA("second CA").pem}]) == []


def test_nothing_to_check():
    assert problems([]) == []
    assert problems(None) == []


@pytest.mark.parametrize("registry, fix", [
    ("https://mirror.example.com:5000", "without https:// or a path"),
    ("mirror.example.com:5000/v2", "without https:// or a path"),
    ("mirror.example.com:99999", "the port must be a number from 1 to 65535"),
    ("mirror.example.com:http", "the port must be a number from 1 to 65535"),
    ("mirror_example.com", "'mirror_example.com' is not a host name or IPv4 address"),
    ("fd00::5", "write an IPv6 address in brackets"),
    ("", "is empty; give the registry as host:port"),
    (None, "is empty; give the registry as host:port"),
])
def test_a_bad_registry_is_named_with_its_fix(ca, registry, fix):
    found = problems([{"registry": "ok.example.com:5000", "cert": ca.pem}, {"registry": registry, "cert": ca.pem}])
    assert len(found) == 1, found
    assert found[0].startswith("docker_daemon_registry_ca_certs[1].registry ")
    assert fix in found[0]


@pytest.mark.parametrize("cert, fix", [
    ("not a certificate", "holds no PEM certificate"),
    (None, "holds no PEM certificate"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "is not a certificate OpenSSL can read"),
])
def test_a_bad_cert_is_named_with_its_fix(cert, fix):
    found = problems([{"registry": "mirror.example.com:5000", "cert": cert}])
    assert len(found) == 1, found
    assert found[0].startswith("docker_daemon_registry_ca_certs[0].cert ")
    assert fix in found[0]


def test_a_private_key_is_refused(ca):
    found = problems([{"registry": "mirror.example.com:5000", "cert": ca.pem + ca.key_pem}])
    assert found == ["docker_daemon_registry_ca_certs[0].cert holds a private key; give only the CA's certificate, "
                     "never a key."]


def test_a_registry_given_twice_and_unknown_keys_are_refused(ca):
    found = problems([{"registry": "m.example.com:5000", "cert": ca.pem},
                      {"registry": "m.example.com:5000", "cert": ca.pem, "src": "/tmp/ca.crt"}])
    assert found[0] == "docker_daemon_registry_ca_certs[1] has unknown keys src; each entry has registry and cert only"
    assert found[1].startswith("docker_daemon_registry_ca_certs[1].registry m.example.com:5000 is also "
                               "docker_daemon_registry_ca_certs[0].registry")


def test_not_a_list_of_entries():
    assert problems({"registry": "m:1"})[0].startswith("docker_daemon_registry_ca_certs must be a list of {registry, cert}")
    assert problems(["m:1"]) == ["docker_daemon_registry_ca_certs[0] is 'm:1'; each entry is {registry: host:port, "
                                 "cert: PEM text}"]


def test_the_plan_records_each_ca_file_with_its_mode_and_owner(ca):
    files = FILTERS["docker_daemon_registry_ca_files"]
    assert files([{"registry": "m.example.com:5000", "cert": ca.pem}], "/etc/docker/certs.d") == [
        {"file": "/etc/docker/certs.d/m.example.com:5000/ca.crt", "attrs": True}]
    assert files([], "/etc/docker/certs.d") == []
    assert rc.ca_cert_path("m", "/etc/docker/certs.d/") == "/etc/docker/certs.d/m/ca.crt"


PREFLIGHT = """\
- name: The docker_daemon role's preflight
  hosts: gpu_hosts
  gather_facts: false
  tasks:
    - name: Check the inputs
      ansible.builtin.include_role:
        name: docker_daemon
        tasks_from: preflight
"""


def run_preflight(tmp_path, entries):
    import sys

    import yaml

    from gpuhost_cli import runner

    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"gpu_hosts": {"hosts": {"gpu-node-7": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}), encoding="utf-8")
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(PREFLIGHT, encoding="utf-8")
    return runner.run_playbook(playbook, inventory, extravars={"docker_daemon_registry_ca_certs": entries})


def test_the_role_stops_a_bad_entry_naming_the_host_the_entry_and_the_fix(tmp_path, ca):
    result = run_preflight(tmp_path, [{"registry": "https://mirror.example.com:5000", "cert": ca.pem}])
    assert result.rc != 0
    host = result.model.hosts["gpu-node-7"]
    error = " ".join((host.error or "").split())
    assert error.startswith("gpu-node-7: docker_daemon_registry_ca_certs[0].registry is "
                            "'https://mirror.example.com:5000'; give the registry as host:port"), error
    assert error.endswith("Nothing was changed on this host.")


def test_the_role_takes_good_entries(tmp_path, ca):
    result = run_preflight(tmp_path, [{"registry": "mirror.example.com:5000", "cert": ca.pem}])
    assert result.rc == 0, result.stdout[-3000:]
