"""How a daemon.json change is applied: drift detection, the restart plan and the preflight's rules."""

import re

import pytest

from gpuhost_cli.ansible_plugins.filter.docker_daemon import (
    FilterModule,
    docker_daemon_cdi_plan,
    docker_daemon_drift,
    docker_daemon_restart_plan,
    docker_daemon_settings_problems,
)

CONFIG = {
    "default-runtime": "nvidia",
    "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
    "registry-mirrors": ["https://mirror.example.com"],
    "live-restore": True,
    "log-driver": "json-file",
}
INFO = {
    "ServerVersion": "20.10.24",
    "DefaultRuntime": "nvidia",
    "Runtimes": {"io.containerd.runc.v2": {}, "nvidia": {"path": "nvidia-container-runtime"}, "runc": {}},
    "RegistryConfig": {"Mirrors": ["https://mirror.example.com/"]},
    "LiveRestoreEnabled": True,
    "Debug": False,
    "Labels": [],
    "ContainersRunning": 2,
}


def test_no_drift_when_docker_runs_what_the_file_says():
    assert docker_daemon_drift(CONFIG, INFO) == []


@pytest.mark.parametrize("key, info_change", [
    ("default-runtime", {"DefaultRuntime": "runc"}),
    ("runtimes", {"Runtimes": {"runc": {}}}),
    ("registry-mirrors", {"RegistryConfig": {"Mirrors": []}}),
    ("live-restore", {"LiveRestoreEnabled": False}),
    ("debug", {"Debug": True}),
])
def test_each_key_docker_does_not_run_is_reported(key, info_change):
    assert docker_daemon_drift(CONFIG, {**INFO, **info_change}) == [key]


def test_mirror_order_matters_and_trailing_slashes_do_not():
    config = {**CONFIG, "registry-mirrors": ["https://a.example.com/", "https://b.example.com"]}
    info = {**INFO, "RegistryConfig": {"Mirrors": ["https://a.example.com/", "https://b.example.com/"]}}
    assert docker_daemon_drift(config, info) == []
    info["RegistryConfig"]["Mirrors"].reverse()
    assert docker_daemon_drift(config, info) == ["registry-mirrors"]


def test_absent_keys_mean_docker_defaults():
    info = {"DefaultRuntime": "runc", "Runtimes": {"runc": {}}, "RegistryConfig": {"Mirrors": None},
            "LiveRestoreEnabled": False, "Debug": False}
    assert docker_daemon_drift({}, info) == []
    assert docker_daemon_drift({"default-runtime": "io.containerd.runc.v2"}, info) == []


def test_no_change_and_no_drift_does_nothing():
    plan = {"changed_keys": [], "reload_sufficient": False, "config": CONFIG}
    assert docker_daemon_restart_plan(plan, INFO)["action"] == "none"


def test_an_interrupted_run_is_finished_with_one_reload():
    plan = {"changed_keys": [], "reload_sufficient": False, "config": CONFIG}
    result = docker_daemon_restart_plan(plan, {**INFO, "RegistryConfig": {"Mirrors": []}})
    assert result["action"] == "reload"
    assert result["drift"] == ["registry-mirrors"]


def test_reloadable_change_reloads_even_with_containers_running():
    plan = {"changed_keys": ["registry-mirrors"], "reload_sufficient": True, "config": CONFIG}
    assert docker_daemon_restart_plan(plan, {**INFO, "LiveRestoreEnabled": False})["action"] == "reload"


def test_restart_is_plain_when_no_container_runs_or_live_restore_is_on():
    plan = {"changed_keys": ["log-level"], "reload_sufficient": False, "config": {**CONFIG, "live-restore": False}}
    assert docker_daemon_restart_plan(plan, {**INFO, "ContainersRunning": 0, "LiveRestoreEnabled": False}) == {
        "action": "restart", "reload_first": False, "drift": [], "reason": "", "start_after_failure": False}
    assert docker_daemon_restart_plan(plan, {**INFO, "ContainersRunning": 0})["action"] == "restart"
    assert docker_daemon_restart_plan(plan, INFO)["reload_first"] is False


def test_restart_turns_live_restore_on_with_a_reload_first():
    plan = {"changed_keys": ["log-level", "live-restore"], "reload_sufficient": False, "config": CONFIG}
    result = docker_daemon_restart_plan(plan, {**INFO, "LiveRestoreEnabled": False})
    assert (result["action"], result["reload_first"]) == ("restart", True)


def test_restart_that_would_stop_containers_is_deferred_unless_allowed():
    plan = {"changed_keys": ["log-level"], "reload_sufficient": False, "config": {**CONFIG, "live-restore": False}}
    info = {**INFO, "LiveRestoreEnabled": False, "ContainersRunning": 3}
    deferred = docker_daemon_restart_plan(plan, info)
    assert deferred["action"] == "defer"
    assert "3 container(s) running and live-restore is off" in deferred["reason"]
    assert docker_daemon_restart_plan(plan, info, allow_disruption=True)["action"] == "restart"


@pytest.mark.parametrize("keys, reload_sufficient", [
    (["registry-mirrors"], True), (["data-root"], False), ([], False)])
def test_docker_not_running_gets_started_with_the_new_file(keys, reload_sufficient):
    plan = {"changed_keys": keys, "reload_sufficient": reload_sufficient, "config": CONFIG}
    assert docker_daemon_restart_plan(plan, None) == {
        "action": "restart", "reload_first": False, "drift": [], "reason": "", "start_after_failure": True}


def test_a_running_docker_is_not_started_after_failure():
    plan = {"changed_keys": ["log-level"], "reload_sufficient": False, "config": CONFIG}
    assert docker_daemon_restart_plan(plan, INFO)["start_after_failure"] is False


@pytest.mark.parametrize("key", ["data-root", "bip", "storage-driver", "exec-opts", "default-address-pools"])
def test_restart_that_live_restore_does_not_survive_is_deferred(key):
    plan = {"changed_keys": sorted([key, "debug"]), "reload_sufficient": False, "config": CONFIG}
    info = {**INFO, "LiveRestoreEnabled": True, "ContainersRunning": 2}
    deferred = docker_daemon_restart_plan(plan, info)
    assert deferred["action"] == "defer"
    assert deferred["reason"].startswith("2 container(s) running and %s changes: " % key)
    assert "live-restore does not keep containers across a restart that changes it" in deferred["reason"]
    assert docker_daemon_restart_plan(plan, info, allow_disruption=True)["action"] == "restart"
    assert docker_daemon_restart_plan(plan, {**info, "ContainersRunning": 0})["action"] == "restart"


def test_every_unsafe_key_is_named():
    plan = {"changed_keys": ["bip", "data-root", "log-level"], "reload_sufficient": False, "config": CONFIG}
    reason = docker_daemon_restart_plan(plan, INFO)["reason"]
    assert "bip, data-root changes" in reason
    assert "a restart that changes them" in reason


def test_reloadable_change_stays_a_reload_beside_unsafe_settings():
    plan = {"changed_keys": ["registry-mirrors"], "reload_sufficient": True,
            "config": {**CONFIG, "data-root": "/srv/docker"}}
    assert docker_daemon_restart_plan(plan, INFO)["action"] == "reload"


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {
        "docker_daemon_cdi_plan", "docker_daemon_drift", "docker_daemon_restart_plan",
        "docker_daemon_settings_problems", "docker_daemon_registry_ca_problems", "docker_daemon_registry_ca_files"}


def test_the_planning_task_s_own_changed_flag_is_ignored():
    # The planning task runs with changed_when: false; only the keys it found count.
    plan = {"changed": False, "changed_keys": ["gpuhost-test-unknown-directive"],
            "reload_sufficient": False, "config": CONFIG}
    assert docker_daemon_restart_plan(plan, INFO)["action"] == "restart"


# ---------------------------------------------------------------------------
# The preflight: the module's rules on the inventory's settings
# ---------------------------------------------------------------------------

ORIGINS = {"registry-mirrors": "docker_daemon_registry_mirrors",
           "default-runtime": "docker_daemon_default_runtime",
           "live-restore": "docker_daemon_live_restore"}
INSECURE_HINT = "allow insecure settings (docker_daemon_allow_insecure: true)"


def did_you_mean(key):
    return re.compile("Did you mean [\"']%s[\"']\\?" % re.escape(key))


def test_good_settings_have_no_problems():
    settings = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
                "default-runtime": "nvidia", "registry-mirrors": ["https://mirror.example.com"],
                "live-restore": True, "log-opts": {"max-size": "100m"}}
    assert docker_daemon_settings_problems(settings, False, [], ORIGINS) == {"errors": [], "warnings": []}


def test_settings_must_be_a_dictionary():
    problems = docker_daemon_settings_problems(["debug"])
    assert problems["warnings"] == []
    assert problems["errors"] == ["docker_daemon: the settings to merge must be a dictionary, got ['debug']"]


def test_a_mirror_is_named_by_the_variable_it_came_from():
    problems = docker_daemon_settings_problems({"registry-mirrors": ["https://m.example.com", "http://m.local"]},
                                               False, [], ORIGINS)
    assert problems["errors"] == [
        'docker_daemon: docker_daemon_registry_mirrors[1] is "http://m.local": it is plain http: images come '
        "without TLS. Use an https mirror, or %s to accept it." % INSECURE_HINT]
    problems = docker_daemon_settings_problems({"registry-mirrors": ["https://m.example.com/v2"]}, False, [], ORIGINS)
    assert problems["errors"][0].startswith(
        'docker_daemon: invalid value for docker_daemon_registry_mirrors[0]: got "https://m.example.com/v2"')


def test_other_keys_are_named_as_options():
    problems = docker_daemon_settings_problems({"log-opt": {"max-size": "1m"}, "debug": "yes"}, False, [], ORIGINS)
    assert len(problems["errors"]) == 2
    unknown = [e for e in problems["errors"] if "docker_daemon_options['log-opt']" in e]
    assert unknown and did_you_mean("log-opts").search(unknown[0])
    assert "docker_daemon: invalid value for docker_daemon_options['debug']: got \"yes\"" in problems["errors"][1]


def test_a_key_set_through_options_is_named_as_an_option():
    # vars/main.yml leaves a key out of the origins when docker_daemon_options sets it.
    problems = docker_daemon_settings_problems({"registry-mirrors": ["http://m.local"]}, False, [], {})
    assert problems["errors"][0].startswith("docker_daemon: docker_daemon_options['registry-mirrors'][0] is")


@pytest.mark.parametrize("key, value, suggestion", [
    ("log-opt", {"max-size": "10m"}, "log-opts"),
    ("Debug", True, "debug"),
    ("registry-mirror", ["https://mirror.example.com"], "registry-mirrors"),
])
def test_misspelt_keys_are_refused_unless_listed_as_extra(key, value, suggestion):
    problems = docker_daemon_settings_problems({key: value}, False, [], ORIGINS)
    assert len(problems["errors"]) == 1
    assert did_you_mean(suggestion).search(problems["errors"][0])
    assert "docker_daemon_extra_keys" in problems["errors"][0]
    assert docker_daemon_settings_problems({key: value}, False, [key], ORIGINS) == {"errors": [], "warnings": []}


def test_null_values_are_not_judged():
    settings = {"x-gone": None, "debug": None, "live-restore": True}
    assert docker_daemon_settings_problems(settings, False, None, ORIGINS) == {"errors": [], "warnings": []}


def test_nested_null_values_are_not_judged():
    # A null inside a dictionary removes that nested key, as the module does; it is no value to judge.
    settings = {"log-opts": {"max-file": None, "max-size": "10m"}, "runtimes": {"old-runtime": None}}
    assert docker_daemon_settings_problems(settings, False, [], ORIGINS) == {"errors": [], "warnings": []}


TCP_ENTRIES = ["0.0.0.0:2375", ":2375", "127.0.0.1:2375", "TCP://x:2375", "ssh://admin@gpu-host"]


@pytest.mark.parametrize("entry", TCP_ENTRIES)
def test_tcp_hosts_need_tlsverify(entry):
    problems = docker_daemon_settings_problems({"hosts": ["unix:///var/run/docker.sock", entry]})
    assert problems["errors"] == [
        "docker_daemon: docker_daemon_options['hosts'] has [\"%s\"], a TCP socket without tlsverify: anyone "
        "who can reach it gets root on this host. Set tlsverify: true with tlscacert, tlscert and tlskey, "
        "listen on unix:// or fd:// only, or %s to accept this." % (entry, INSECURE_HINT)]
    allowed = docker_daemon_settings_problems({"hosts": [entry]}, True)
    assert allowed["errors"] == []
    assert len(allowed["warnings"]) == 1 and entry in allowed["warnings"][0]
    assert docker_daemon_settings_problems({"hosts": [entry], "tlsverify": True}) == {"errors": [], "warnings": []}
    assert docker_daemon_settings_problems({"hosts": [entry], "tlsverify": False})["errors"]


@pytest.mark.parametrize("hosts", [["unix:///var/run/docker.sock"], ["fd://"]])
def test_local_sockets_are_fine(hosts):
    assert docker_daemon_settings_problems({"hosts": hosts}) == {"errors": [], "warnings": []}


def test_insecure_registries_need_allow_insecure():
    settings = {"insecure-registries": ["registry.local:5000"]}
    assert len(docker_daemon_settings_problems(settings)["errors"]) == 1
    allowed = docker_daemon_settings_problems(settings, True)
    assert allowed["errors"] == [] and len(allowed["warnings"]) == 1


def test_docker_info_without_a_server_counts_as_docker_down():
    """docker info exits 0 with ServerErrors when dockerd is down (Docker 20.10)."""
    down = {"ClientInfo": {"Version": "20.10.24"}, "ServerErrors": ["Cannot connect to the Docker daemon"]}
    plan = {"changed": True, "changed_keys": [], "reload_sufficient": False, "config": CONFIG}
    result = docker_daemon_restart_plan(plan, down)
    assert result["action"] == "restart"
    assert result["start_after_failure"] is True
    assert docker_daemon_restart_plan(plan, INFO)["start_after_failure"] is False


# (engine version, docker_daemon_cdi, CDI spec present) -> (set_feature, support, stops the host, says something)
@pytest.mark.parametrize("version, wanted, spec, expected", [
    ("26.1.5", "auto", True, (True, "flag", False, False)),
    ("26.1.5", "auto", False, (False, "flag", False, True)),
    ("25.0.0", True, False, (True, "flag", False, False)),
    ("28.1.1", "true", True, (True, "flag", False, False)),
    ("28.2.0", "auto", True, (False, "default", False, False)),
    ("29.1.0", True, True, (False, "default", False, False)),
    ("20.10.24", "auto", True, (False, "none", False, True)),
    ("20.10.24", "auto", False, (False, "none", False, False)),
    ("24.0.7", True, True, (False, "none", True, False)),
    ("26.1.5", False, True, (False, "flag", False, False)),
    ("20.10.24", "false", True, (False, "none", False, False)),
    ("", "auto", True, (False, "unknown", False, True)),
    (None, True, True, (False, "unknown", False, True)),
])
def test_the_cdi_feature_is_set_where_the_engine_needs_it(version, wanted, spec, expected):
    plan = docker_daemon_cdi_plan(version, wanted, spec)
    assert (plan["set_feature"], plan["support"], bool(plan["problem"]), bool(plan["note"])) == expected


def test_an_engine_without_cdi_is_named_with_its_version_and_the_version_needed():
    plan = docker_daemon_cdi_plan("24.0.7", True, True)
    assert "Docker 24.0.7" in plan["problem"] and "25.0 or newer" in plan["problem"]
    assert "--gpus" in docker_daemon_cdi_plan("20.10.24", "auto", True)["note"]

