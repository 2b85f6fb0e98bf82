"""gpu_facts and gpuhost facts show the registry mirrors Docker actually uses (docker info)."""

from __future__ import annotations

import json

import pytest
from plugin_loader import load_module

from gpuhost_cli import views

gf = load_module("gpu_facts")


def info(mirrors):
    config = {"IndexConfigs": {}} if mirrors is None else {"Mirrors": mirrors}
    return json.dumps({"ServerVersion": "26.1.5", "DefaultRuntime": "nvidia", "Runtimes": {"runc": {}},
                       "RegistryConfig": config})


def run_with(info_text):
    def run(argv, timeout):
        if argv[1] == "version":
            return 0, "26.1.5\n", ""
        if argv[1] == "info":
            return 0, info_text, ""
        raise AssertionError(argv)
    return run


@pytest.mark.parametrize("mirrors, expected", [
    (["https://gpuhost-registry:5000/", "http://gpuhost-mirror:8080/"],
     ["https://gpuhost-registry:5000/", "http://gpuhost-mirror:8080/"]),
    ([], []),
    (None, []),
])
def test_facts_report_dockers_mirrors(mirrors, expected):
    docker = gf.docker_facts("/", 7, which=lambda name: "/usr/bin/" + name, run=run_with(info(mirrors)))
    assert docker["registry_mirrors"] == expected


def test_mirrors_are_unknown_when_docker_is_not_asked_or_says_nothing_readable():
    assert gf.parse_registry_mirrors("not json") is None
    assert gf.parse_registry_mirrors("{}") is None
    docker = gf.docker_facts("/", 7, which=lambda name: None, run=run_with(""))
    assert docker["registry_mirrors"] is None


def test_gpuhost_facts_shows_the_mirrors_docker_uses():
    rows = dict(views.facts_overview({"docker": {"version": "26.1.5", "registry_mirrors": [
        "https://gpuhost-registry:5000/", "https://registry-mirror.gpuhost.invalid/"]}}))
    assert rows["Registry mirrors"] == "https://gpuhost-registry:5000/, https://registry-mirror.gpuhost.invalid/"
    assert dict(views.facts_overview({"docker": {"version": "26.1.5", "registry_mirrors": []}}))[
        "Registry mirrors"] == "none"
    assert "Registry mirrors" not in dict(views.facts_overview({"docker": {"version": "26.1.5"}}))
