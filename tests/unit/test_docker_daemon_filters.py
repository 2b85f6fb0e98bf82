"""How a daemon.json change is applied: drift detection and the restart plan."""

import pytest

from gpuhost_cli.ansible_plugins.filter.docker_daemon import (
    FilterModule,
    docker_daemon_drift,
    docker_daemon_restart_plan,
)

CONFIG = {
    "default-runtime": "nvidia",
    "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
    "registry-mirrors": ["https://mirror.example.com"],
    "live-restore": True,
    "log-driver": "json-file",
}
INFO = {
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
        "action": "restart", "reload_first": False, "drift": [], "reason": ""}
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


def test_docker_not_running_gets_started_with_the_new_file():
    plan = {"changed_keys": ["registry-mirrors"], "reload_sufficient": True, "config": CONFIG}
    assert docker_daemon_restart_plan(plan, None)["action"] == "restart"
    assert docker_daemon_restart_plan({**plan, "changed_keys": []}, None)["action"] == "none"


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"docker_daemon_drift", "docker_daemon_restart_plan"}


def test_the_planning_task_s_own_changed_flag_is_ignored():
    # The planning task runs with changed_when: false; only the keys it found count.
    plan = {"changed": False, "changed_keys": ["gpuhost-test-unknown-directive"],
            "reload_sufficient": False, "config": CONFIG}
    assert docker_daemon_restart_plan(plan, INFO)["action"] == "restart"
