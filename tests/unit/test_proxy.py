"""Hosts behind an HTTP proxy: the rules of module_utils/gpuhost_proxy.py, the module
gpuhost_proxy_settings (a host's own settings), the filters, the daemon.json module's
proxies and the key download's proxy."""

import json
import os
import stat

import pytest

import plugin_loader
from plugin_loader import load_module, run_adhoc, run_main

plugin_loader.use_module_utils()

from ansible.module_utils import gpuhost_proxy as proxy  # noqa: E402

from gpuhost_cli.ansible_plugins.filter.proxy import (FilterModule, gpuhost_no_proxy,  # noqa: E402
                                                     gpuhost_proxy_files, gpuhost_proxy_problems)

settings_module = load_module("gpuhost_proxy_settings")
ddc = load_module("docker_daemon_config")
signing = load_module("apt_signing_key")

URL = "http://alice:s3cret@proxy.cluster.lan:3128"
VARS = {"http": "gpuhost_proxy_http", "https": "gpuhost_proxy_https", "no_proxy": "gpuhost_proxy_no_proxy"}


# ---- no_proxy ------------------------------------------------------------------------------

@pytest.mark.parametrize("host", [
    "10.1.2.3", "172.16.0.9", "192.168.1.1", "127.0.0.1", "169.254.10.1", "::1", "fd00::5", "fe80::1",
    "registry", "mirror.local", "mirror.internal", "hub.lan", "hub.home.arpa", "box.localdomain", "MIRROR.LAN.",
])
def test_internal_hosts(host):
    assert proxy.is_internal_host(host)


@pytest.mark.parametrize("host", ["8.8.8.8", "2001:4860::8888", "mirror.gcr.io", "registry-1.docker.io",
                                  "local.example.com", "lan.example.org", ""])
def test_outside_hosts(host):
    assert not proxy.is_internal_host(host)


def test_a_domain_the_user_lists_makes_its_hosts_internal():
    assert proxy.is_internal_host("mirror.corp.example", [".corp.example"])
    assert proxy.is_internal_host("corp.example", ["*.corp.example"])
    assert not proxy.is_internal_host("mirror.notcorp.example", [".corp.example"])


@pytest.mark.parametrize("url, host", [
    ("https://mirror.lan:5000/v2", "mirror.lan"), ("https://user:pw@10.0.0.5", "10.0.0.5"),
    ("https://[fd00::1]:5000", "fd00::1"), ("mirror.lan:5000", "mirror.lan"), ("", ""),
])
def test_url_host(url, host):
    assert proxy.url_host(url) == host


def test_no_proxy_always_holds_localhost_the_host_and_internal_mirrors_then_the_user_s():
    entries = proxy.no_proxy_list(
        ["10.0.0.0/8", "build.example.com, .corp.example"], "gpu1", "gpu1.cluster.lan",
        ["https://mirror.cluster.lan:5000", "https://mirror.gcr.io", "https://hub.corp.example",
         "https://192.168.5.5"])
    assert entries == ["localhost", "127.0.0.1", "::1", "gpu1", "gpu1.cluster.lan", "mirror.cluster.lan",
                       "hub.corp.example", "192.168.5.5", "10.0.0.0/8", "build.example.com", ".corp.example"]


def test_no_proxy_has_no_repeats_and_keeps_the_local_entries_without_input():
    assert proxy.no_proxy_list([], "", "", []) == ["localhost", "127.0.0.1", "::1"]
    assert proxy.no_proxy_list(["localhost", "gpu1"], "gpu1", "gpu1", []) == ["localhost", "127.0.0.1", "::1", "gpu1"]


# ---- The engine's version ------------------------------------------------------------------

@pytest.mark.parametrize("version, method", [
    ("20.10.24+dfsg1", proxy.DROP_IN), ("22.06.0-beta", proxy.DROP_IN), ("23.0.0", proxy.DAEMON_JSON),
    ("26.1.5+dfsg1", proxy.DAEMON_JSON), ("28.2.1", proxy.DAEMON_JSON), ("", proxy.UNKNOWN), (None, proxy.UNKNOWN),
    ("garbage", proxy.UNKNOWN),
])
def test_the_engine_s_version_picks_where_it_takes_the_proxy(version, method):
    assert proxy.docker_proxy_method(version) == method


def test_dockerd_version_is_read_from_its_banner():
    assert proxy.dockerd_version("Docker version 20.10.24+dfsg1, build 297e128\n") == "20.10.24+dfsg1"
    assert proxy.dockerd_version("Docker version 26.1.5+dfsg1, build a72d7cd") == "26.1.5+dfsg1"
    assert proxy.dockerd_version("") == ""


# ---- Redaction ------------------------------------------------------------------------------

def test_passwords_are_redacted_everywhere_in_a_text():
    text = f'{{"http-proxy": "{URL}", "https-proxy": "https://bob:p%40ss@p:1/"}} and http://plain:8080'
    out = proxy.redact_text(text)
    assert "s3cret" not in out and "p%40ss" not in out
    assert "http://alice:***@proxy.cluster.lan:3128" in out and "https://bob:***@p:1/" in out
    assert "http://plain:8080" in out
    assert proxy.redact_url("http://proxy:3128") == "http://proxy:3128"
    assert proxy.redact_data({"a": [URL], "b": 1}) == {"a": ["http://alice:***@proxy.cluster.lan:3128"], "b": 1}


# ---- Input checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["", None, "http://proxy:3128", URL, "https://proxy.example.com", "http://[fd00::1]:3128/",
                                   "http://u:p%23x@10.0.0.1:8080"])
def test_good_proxy_urls(value):
    assert proxy.url_problem(value, "gpuhost_proxy_http") == ""


@pytest.mark.parametrize("value, words", [
    ("proxy:3128", "expected http://"), ("socks5://proxy:1080", "expected http://"),
    ("http://proxy:3128/path", "expected http://"), ("http://a b:3128", "white space"),
    ('http://u:pa"ss@proxy:1', "quotes"), ("http://proxy:99999", "port"), (3128, "must be a string"),
])
def test_bad_proxy_urls_name_the_variable_and_never_show_the_password(value, words):
    problem = proxy.url_problem(value, "gpuhost_proxy_http")
    assert problem.startswith("gpuhost_proxy_http ") and words in problem
    assert "pa\"ss" not in problem


def test_the_preflight_filter_names_each_variable():
    problems = gpuhost_proxy_problems("proxy:3128", "http://ok:1", ["ok.lan", "bad entry"],
                                      {"http": "gpuhost_proxy_http (docker_daemon_proxy_http)"})
    assert len(problems) == 2
    assert problems[0].startswith("gpuhost_proxy_http (docker_daemon_proxy_http) is 'proxy:3128'")
    assert problems[1].startswith("gpuhost_proxy_no_proxy holds 'bad entry'")
    assert gpuhost_proxy_problems("", "", None) == []
    assert gpuhost_proxy_problems(URL, URL, "a.lan,.b.lan") == []
    assert set(FilterModule().filters()) == {"gpuhost_proxy_files", "gpuhost_proxy_problems", "gpuhost_no_proxy"}


def test_the_no_proxy_filter_is_the_module_s_list_for_a_list_or_a_comma_separated_string():
    local = ["localhost", "127.0.0.1", "::1"]
    assert gpuhost_no_proxy([]) == local
    assert gpuhost_no_proxy(None) == local
    # A string is one entry list, split on commas, trimmed, blanks dropped, not split into characters.
    assert gpuhost_no_proxy(" .corp.example, 10.0.0.0/8,,") == local + [".corp.example", "10.0.0.0/8"]
    assert gpuhost_no_proxy(["a.lan", "localhost", "a.lan"], "gpu1", "gpu1.corp.example") == (
        local + ["gpu1", "gpu1.corp.example", "a.lan"])
    # An internal registry mirror is reached directly; a public one through the proxy.
    assert gpuhost_no_proxy([], mirrors=["https://mirror.internal:5000", "https://mirror.gcr.io"]) == (
        local + ["mirror.internal"])
    assert gpuhost_no_proxy("x.lan", "h") == proxy.no_proxy_list(["x.lan"], "h")


# ---- The files gpuhost writes -----------------------------------------------------------

def test_apt_file_has_the_generic_proxy_and_direct_lines_for_plain_hosts():
    text = proxy.apt_conf_text(URL, URL, ["localhost", "::1", "gpu1", ".corp.example", "10.0.0.0/8"])
    assert f'Acquire::http::Proxy "{URL}";' in text and f'Acquire::https::Proxy "{URL}";' in text
    assert 'Acquire::http::Proxy::gpu1 "DIRECT";' in text and 'Acquire::https::Proxy::localhost "DIRECT";' in text
    assert "corp.example" not in text and "10.0.0.0" not in text and "::1" not in text
    # What apt reads back is what was meant.
    assert ("Acquire::http::Proxy", URL) in proxy.parse_apt_conf(text)


def test_apt_file_leaves_out_what_another_file_sets_and_is_empty_with_nothing_left():
    text = proxy.apt_conf_text(URL, "http://other:1", ["gpu1"], skip=["http"])
    assert "Acquire::http::" not in text and 'Acquire::https::Proxy "http://other:1";' in text
    assert proxy.apt_conf_text(URL, "", ["gpu1"], skip=["http"]) == ""
    assert proxy.apt_conf_text("", "", ["gpu1"]) == ""


def test_dropin_quotes_values_and_doubles_percent_signs():
    text = proxy.dropin_text("http://u:p%40w@p:1", "", ["localhost", "gpu1"])
    assert text == '[Service]\nEnvironment="HTTP_PROXY=http://u:p%%40w@p:1"\nEnvironment="NO_PROXY=localhost,gpu1"\n'


def test_files_filter_drops_what_the_docker_service_already_sets():
    files = gpuhost_proxy_files(URL, URL, ["localhost"], [], ["http", "no_proxy"])
    assert files["proxies"] == {"https-proxy": URL}
    assert "HTTP_PROXY" not in files["dropin"] and "HTTPS_PROXY" in files["dropin"] and "NO_PROXY" not in files["dropin"]
    assert gpuhost_proxy_files("", "", ["localhost"]) == {"apt": "", "dropin": "", "proxies": {}}


# ---- A host's own settings ----------------------------------------------------------------

def test_apt_conf_parser_reads_both_syntaxes_and_skips_comments():
    text = ('// Acquire::http::Proxy "http://commented:1";\n# also a comment\n/* and\n this */\n'
            'Acquire { http { Proxy "http://nested:3128"; Proxy::deb.debian.org "DIRECT"; }; };\n'
            'Acquire::https::Proxy "http://flat:3128"; // trailing\n')
    assert proxy.parse_apt_conf(text) == [("Acquire::http::Proxy", "http://nested:3128"),
                                          ("Acquire::http::Proxy::deb.debian.org", "DIRECT"),
                                          ("Acquire::https::Proxy", "http://flat:3128")]


def test_only_generic_proxy_lines_count_not_per_host_ones():
    files = [("/etc/apt/apt.conf.d/01gpuhost-apt-cache",
              'Acquire::http::Proxy::deb.debian.org "http://gpuhost-apt-cache:3142";\n'),
             ("/etc/apt/apt.conf.d/50direct", 'Acquire::http::Proxy "DIRECT";\n'),
             ("/etc/apt/apt.conf.d/80corp", 'Acquire::HTTP::Proxy "http://corp:3128";\n')]
    assert proxy.apt_proxy_settings(files) == [
        {"file": "/etc/apt/apt.conf.d/80corp", "scheme": "http", "value": "http://corp:3128"}]


def test_judge_reports_an_equal_setting_and_refuses_a_different_one():
    wanted = proxy.wanted_settings(URL, "http://other:1", ["localhost"])
    found = [{"file": "/etc/apt/apt.conf.d/80corp", "scheme": "http", "value": URL},
             {"file": "/etc/apt/apt.conf", "scheme": "https", "value": "http://corp:3128"}]
    verdict = proxy.judge(found, wanted, "apt", VARS)
    assert verdict["skip"] == ["http"]
    assert len(verdict["warnings"]) == 1 and "/etc/apt/apt.conf.d/80corp already sets" in verdict["warnings"][0]
    assert "writes no second copy" in verdict["warnings"][0]
    assert len(verdict["errors"]) == 1
    error = verdict["errors"][0]
    assert "/etc/apt/apt.conf sets Acquire::https::Proxy to http://corp:3128" in error
    assert "gpuhost_proxy_https" in error and "Remove that setting" in error
    assert "s3cret" not in json.dumps(verdict)
    # With no proxy asked for, the host's own settings are not gpuhost's business.
    assert proxy.judge(found, {}, "apt", VARS) == {"errors": [], "warnings": [], "skip": []}


def write(path, text, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return str(path)


def module_params(tmp_path, **extra):
    params = {"http": URL, "https": URL, "no_proxy": [], "registry_mirrors": [], "apt": True,
              "apt_paths": [str(tmp_path / "apt.conf"), str(tmp_path / "apt.conf.d")],
              "apt_file": str(tmp_path / "apt.conf.d" / "90gpuhost-proxy"), "docker": True,
              "unit_paths": [str(tmp_path / "docker.service"), str(tmp_path / "docker.service.d")],
              "dropin": str(tmp_path / "docker.service.d" / "90-gpuhost-proxy.conf"),
              "daemon_json": str(tmp_path / "daemon.json"), "server_version": "26.1.5"}
    params.update(extra)
    return params


def test_module_finds_the_host_s_settings_but_not_gpuhost_s_own(tmp_path):
    write(tmp_path / "docker.service", "[Service]\nExecStart=/usr/bin/dockerd\n")
    write(tmp_path / "apt.conf.d" / "90gpuhost-proxy", f'Acquire::http::Proxy "http://old:1";\n', 0o600)
    write(tmp_path / "apt.conf.d" / "01cache", 'Acquire::http::Proxy::deb.debian.org "http://cache:3142";\n')
    write(tmp_path / "apt.conf.d" / "80corp.disabled", 'Acquire::http::Proxy "http://ignored:1";\n')
    write(tmp_path / "docker.service.d" / "90-gpuhost-proxy.conf", '[Service]\nEnvironment="HTTP_PROXY=http://old:1"\n')
    result = settings_module.plan(module_params(tmp_path, registry_mirrors=["https://mirror.lan"]), "gpu1", "gpu1.lan")
    assert result["apt"] == result["docker"] == {"errors": [], "warnings": [], "skip": []}
    assert result["method"] == proxy.DAEMON_JSON and result["engine_version"] == "26.1.5"
    assert result["no_proxy"] == ["localhost", "127.0.0.1", "::1", "gpu1", "gpu1.lan", "mirror.lan"]


def test_module_stops_a_docker_service_with_another_proxy_and_reports_an_equal_one(tmp_path):
    write(tmp_path / "docker.service", "[Service]\nExecStart=/usr/bin/dockerd\n")
    write(tmp_path / "docker.service.d" / "http-proxy.conf",
          f'[Service]\nEnvironment="HTTP_PROXY={URL}" "https_proxy=http://corp:3128" "NO_PROXY=localhost"\n')
    result = settings_module.plan(module_params(tmp_path, server_version="", apt=False), "gpu1", "gpu1",
                                  dockerd_text="Docker version 20.10.24+dfsg1, build 297e128")
    assert result["method"] == proxy.DROP_IN and result["engine_version"] == "20.10.24+dfsg1"
    docker = result["docker"]
    assert sorted(docker["skip"]) == ["http", "no_proxy"]
    assert len(docker["errors"]) == 1 and "https_proxy to http://corp:3128" in docker["errors"][0]
    assert "http-proxy.conf" in docker["errors"][0]
    assert any("NO_PROXY=localhost" in w for w in docker["warnings"])
    assert "s3cret" not in json.dumps(result)


def test_module_on_an_old_engine_refuses_daemon_json_proxies_and_on_a_new_one_reports_them(tmp_path):
    write(tmp_path / "daemon.json", json.dumps({"proxies": {"http-proxy": "http://u:old@corp:1"}}))
    old = settings_module.plan(module_params(tmp_path, server_version="20.10.24", apt=False), "h", "h")
    assert len(old["docker"]["errors"]) == 1 and "Docker 20.10.24 does not read" in old["docker"]["errors"][0]
    assert "u:***@corp:1" in old["docker"]["errors"][0]
    new = settings_module.plan(module_params(tmp_path, apt=False), "h", "h")
    assert new["docker"]["errors"] == [] and "gpuhost replaces that key" in new["docker"]["warnings"][0]
    # Nothing asked for: nothing reported.
    quiet = settings_module.plan(module_params(tmp_path, http="", https="", apt=False), "h", "h")
    assert quiet["docker"] == {"errors": [], "warnings": [], "skip": []}


def test_module_through_ansible_never_returns_the_password(tmp_path):
    write(tmp_path / "apt.conf.d" / "80corp", f'Acquire::http::Proxy "{URL}";\n')
    rc, result = run_adhoc("gpuhost_proxy_settings", module_params(tmp_path, docker=False), tmp_path)
    assert rc == 0 and result.get("failed") is not True, result
    assert result["apt"]["skip"] == ["http"] and "alice:***@" in result["apt"]["warnings"][0]
    assert "s3cret" not in json.dumps(result)


# ---- daemon.json's proxies --------------------------------------------------------------------

def test_daemon_json_gets_proxies_at_mode_0600_and_the_diff_redacts_the_password(tmp_path):
    target = tmp_path / "daemon.json"
    write(target, '{"debug": true}\n', 0o644)
    args = {"path": str(target), "settings": {"live-restore": True}, "unit_paths": [], "validate_with_dockerd": "never",
            "proxy_http": URL, "proxy_https": URL, "proxy_no_proxy": "localhost,gpu1"}
    checked = run_main(ddc, args, check_mode=True, diff=True)
    assert checked["changed"] is True and "proxies" in checked["changed_keys"]
    assert checked["reload_sufficient"] is False
    assert "alice:***@proxy.cluster.lan:3128" in checked["diff"]["after"] and "s3cret" not in json.dumps(checked)
    assert checked["config"]["proxies"]["http-proxy"] == "http://alice:***@proxy.cluster.lan:3128"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644

    applied = run_main(ddc, args)
    assert applied["changed"] is True and "s3cret" not in json.dumps(applied)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert json.loads(target.read_text())["proxies"] == {"http-proxy": URL, "https-proxy": URL,
                                                        "no-proxy": "localhost,gpu1"}
    # The backup of the file without credentials keeps its mode; a second run changes nothing.
    assert run_main(ddc, args)["changed"] is False


def test_daemon_json_without_proxy_parameters_keeps_the_host_s_proxies_and_mode(tmp_path):
    target = tmp_path / "daemon.json"
    write(target, json.dumps({"proxies": {"http-proxy": "http://corp:1"}}), 0o640)
    result = run_main(ddc, {"path": str(target), "settings": {"debug": True}, "unit_paths": [],
                            "validate_with_dockerd": "never"})
    assert result["changed"] is True
    assert json.loads(target.read_text())["proxies"] == {"http-proxy": "http://corp:1"}
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_a_new_daemon_json_with_proxies_is_created_private(tmp_path):
    target = tmp_path / "docker" / "daemon.json"
    ddc.apply_config(str(target), ddc.with_proxies({}, URL, "", "localhost"), unit_paths=[], private=True)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_a_loose_mode_alone_is_a_change_when_the_file_holds_credentials(tmp_path):
    target = tmp_path / "daemon.json"
    settings = ddc.with_proxies({}, URL, "", "")
    write(target, json.dumps(settings), 0o644)
    result = ddc.apply_config(str(target), settings, unit_paths=[], private=True)
    assert result["changed"] is True and any("mode becomes 0600" in w for w in result["warnings"])
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert ddc.apply_config(str(target), settings, unit_paths=[], private=True)["changed"] is False


# ---- The key download ----------------------------------------------------------------------

def test_the_host_s_key_download_uses_the_proxy_asked_for():
    environ = {"http_proxy": "http://env:1"}
    signing.use_proxy({"http_proxy": URL, "https_proxy": None, "no_proxy": "localhost,gpu1"}, environ)
    assert environ == {"http_proxy": URL, "HTTP_PROXY": URL, "no_proxy": "localhost,gpu1", "NO_PROXY": "localhost,gpu1"}
    untouched = {"https_proxy": "http://env:1"}
    signing.use_proxy({"http_proxy": "", "https_proxy": None, "no_proxy": None}, untouched)
    assert untouched == {"https_proxy": "http://env:1"}


# ---- The docker_daemon role's plan: drop-in or daemon.json, through the restart plan -------

def _role_values(names, **overrides):
    """NAMES of the docker_daemon role's variables, rendered by Ansible's templar with its
    defaults and vars and OVERRIDES (inventory values and registered results)."""
    from pathlib import Path

    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import filter_loader
    from ansible.template import Templar, trust_as_template

    repo = Path(__file__).resolve().parents[2]
    filter_loader.add_directory(str(repo / "gpuhost_cli" / "ansible_plugins" / "filter"))

    def trusted(data):
        if isinstance(data, dict):
            return {k: trusted(v) for k, v in data.items()}
        if isinstance(data, list):
            return [trusted(v) for v in data]
        return trust_as_template(data) if isinstance(data, str) else data

    loader = DataLoader()
    variables = {}
    for name in ("roles/docker_daemon/defaults/main.yml", "roles/docker_daemon/vars/main.yml"):
        variables.update(trusted(loader.load_from_file(str(repo / name))))
    variables.update(overrides)
    templar = Templar(loader=loader, variables=variables)
    return {name: templar.template(trust_as_template("{{ %s }}" % name)) for name in names}


PLAN = {"changed": False, "changed_keys": [], "reload_sufficient": False, "config": {"live-restore": True}}
INFO = {"ServerVersion": "20.10.24", "ContainersRunning": 2, "LiveRestoreEnabled": False}
PROBE = {"no_proxy": ["localhost", "gpu1"], "docker": {"errors": [], "warnings": [], "skip": []}}


def test_an_old_engine_gets_the_drop_in_and_its_change_is_a_restart_deferred_while_containers_would_stop():
    values = _role_values(
        ["__docker_daemon_proxy_dropin_state", "__docker_daemon_proxy_json", "__docker_daemon_plan_all",
         "__docker_daemon_plan_all | docker_daemon_restart_plan(info, false)",
         "__docker_daemon_plan_all | docker_daemon_restart_plan(info, true)"],
        gpuhost_proxy_http=URL, __docker_daemon_proxy={**PROBE, "method": "drop-in"},
        __docker_daemon_proxy_dropin_plan={"changed": True},
        __docker_daemon_plan={**PLAN, "config": {"live-restore": False}}, info=INFO)
    assert values["__docker_daemon_proxy_dropin_state"] == "present"
    assert values["__docker_daemon_proxy_json"] == {}
    plan = values["__docker_daemon_plan_all"]
    assert plan["reload_sufficient"] is False
    assert plan["changed_keys"] == ["proxy (/etc/systemd/system/docker.service.d/90-gpuhost-proxy.conf)"]
    assert values["__docker_daemon_plan_all | docker_daemon_restart_plan(info, false)"]["action"] == "defer"
    assert values["__docker_daemon_plan_all | docker_daemon_restart_plan(info, true)"]["action"] == "restart"
    # With live-restore asked for, it is switched on by a reload first and the restart keeps them.
    live = _role_values(["__docker_daemon_plan_all | docker_daemon_restart_plan(info, false)"],
                        gpuhost_proxy_http=URL, __docker_daemon_proxy={**PROBE, "method": "drop-in"},
                        __docker_daemon_proxy_dropin_plan={"changed": True}, __docker_daemon_plan=PLAN, info=INFO)
    assert live["__docker_daemon_plan_all | docker_daemon_restart_plan(info, false)"]["reload_first"] is True


def test_a_new_engine_gets_daemon_json_s_proxies_and_gpuhost_s_drop_in_goes():
    values = _role_values(
        ["__docker_daemon_proxy_dropin_state", "__docker_daemon_proxy_json", "__docker_daemon_proxy_dropin_changes",
         "__docker_daemon_plan_all"],
        gpuhost_proxy_http=URL, gpuhost_proxy_https="", __docker_daemon_proxy={**PROBE, "method": "daemon-json"},
        __docker_daemon_proxy_dropin_found={"stat": {"exists": True}}, __docker_daemon_plan=PLAN)
    assert values["__docker_daemon_proxy_dropin_state"] == "absent"
    assert values["__docker_daemon_proxy_json"] == {"http-proxy": URL, "no-proxy": "localhost,gpu1"}
    # The drop-in an older engine had is removed: a restart, as for the key itself.
    assert values["__docker_daemon_proxy_dropin_changes"] is True
    assert values["__docker_daemon_plan_all"]["changed_keys"][-1].startswith("proxy (")


def test_without_a_proxy_nothing_changes_and_without_an_engine_nothing_is_decided():
    none = _role_values(["__docker_daemon_proxy_dropin_state", "__docker_daemon_proxy_json",
                         "__docker_daemon_proxy_dropin_changes", "__docker_daemon_plan_all"],
                        __docker_daemon_proxy={"skipped": True}, __docker_daemon_plan=PLAN,
                        __docker_daemon_proxy_dropin_found={"stat": {"exists": False}})
    assert none["__docker_daemon_proxy_dropin_state"] == "absent" and none["__docker_daemon_proxy_json"] == {}
    assert none["__docker_daemon_proxy_dropin_changes"] is False and none["__docker_daemon_plan_all"] == PLAN
    unknown = _role_values(["__docker_daemon_proxy_dropin_state", "__docker_daemon_proxy_json"],
                           gpuhost_proxy_http=URL, __docker_daemon_proxy={**PROBE, "method": "unknown"})
    assert unknown == {"__docker_daemon_proxy_dropin_state": "keep", "__docker_daemon_proxy_json": {}}
