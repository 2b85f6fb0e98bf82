"""Tests for the strict inventory checks (gpuhost_cli.inventory_validation) and the
gpuhost_validate_inventory action plugin that runs them first in every playbook.

The unit tests use the roles' real meta/argument_specs.yml and defaults/main.yml. The
end-to-end tests run the real site.yml against a host named gpu1 whose address is
gpu1.invalid (a reserved name that never resolves): a bad inventory must stop the run in
the validation task, before any connection is tried.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gpuhost_cli import inventory_validation as iv

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"
SPEC_FILES = sorted(ROLES.glob("*/meta/argument_specs.yml"))
ROLE_DIRS = sorted(p for p in ROLES.iterdir() if p.is_dir())
PLUGIN = REPO / "gpuhost_cli" / "ansible_plugins" / "action" / "gpuhost_validate_inventory.py"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

SPECS, PREFIXES = iv.load_catalog(SPEC_FILES)


def check(variables, ignore=()):
    return iv.validate_vars("gpu1", variables, SPECS, PREFIXES, ignore=ignore)


def only_error(variables):
    errors = check(variables)
    assert len(errors) == 1, errors
    return errors[0]


def _load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _spec_options(role_dir):
    return _load_yaml(role_dir / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


# ---- Reading the specs -----------------------------------------------------------------


def test_every_role_has_an_argument_spec_and_defaults():
    assert ROLE_DIRS, "no roles found"
    for role_dir in ROLE_DIRS:
        assert (role_dir / "meta" / "argument_specs.yml").is_file(), role_dir.name
        assert (role_dir / "defaults" / "main.yml").is_file(), role_dir.name


def test_prefixes_come_from_role_names_without_internal_roles():
    expected = {f"{d.name}_" for d in ROLE_DIRS if d.name not in iv.INTERNAL_ROLES} | {"gpuhost_"}
    assert PREFIXES == expected
    assert "docker_daemon_" in PREFIXES
    assert "apt_source_" not in PREFIXES


def test_specs_hold_every_public_option_and_no_internal_one():
    for role_dir in ROLE_DIRS:
        options = _spec_options(role_dir)
        for name in options:
            if role_dir.name in iv.INTERNAL_ROLES:
                assert name not in SPECS, name
            else:
                assert SPECS[name].role == role_dir.name
    assert SPECS["docker_users"].type == "list"
    assert SPECS["docker_users"].elements == "str"
    assert SPECS["docker_install_source"].choices == ("upstream", "distro")
    assert SPECS["docker_daemon_live_restore"].type == "raw"


def test_internal_roles_can_be_checked_when_asked():
    specs, prefixes = iv.load_catalog(SPEC_FILES, internal_roles=())
    assert specs["apt_source_name"].required is True
    assert "apt_source_" in prefixes


def test_an_unsupported_spec_type_is_an_error(tmp_path):
    spec = tmp_path / "roles" / "odd" / "meta" / "argument_specs.yml"
    spec.parent.mkdir(parents=True)
    spec.write_text("argument_specs: {main: {options: {odd_size: {type: bytes}}}}\n")
    with pytest.raises(iv.SpecError, match="odd_size"):
        iv.load_specs([spec])


def test_a_spec_without_main_is_an_error(tmp_path):
    spec = tmp_path / "roles" / "odd" / "meta" / "argument_specs.yml"
    spec.parent.mkdir(parents=True)
    spec.write_text("argument_specs: {other: {options: {}}}\n")
    with pytest.raises(iv.SpecError, match="argument_specs.main"):
        iv.load_specs([spec])


# ---- Defaults and specs agree ------------------------------------------------------------


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=lambda p: p.name)
def test_defaults_and_argument_specs_name_the_same_variables(role_dir):
    defaults = set(_load_yaml(role_dir / "defaults" / "main.yml"))
    options = _spec_options(role_dir)
    settable = {name for name, attrs in options.items() if not (attrs or {}).get("required")}
    assert defaults - set(options) == set(), f"{role_dir.name}: defaults without an option in argument_specs"
    assert settable - defaults == set(), f"{role_dir.name}: options without a default in defaults/main.yml"
    required = set(options) - settable
    assert defaults & required == set(), f"{role_dir.name}: required options must not have defaults"


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=lambda p: p.name)
def test_role_defaults_pass_the_checks(role_dir):
    defaults = _load_yaml(role_dir / "defaults" / "main.yml")
    assert defaults
    specs, prefixes = iv.load_catalog(SPEC_FILES, internal_roles=())
    assert iv.validate_vars("gpu1", defaults, specs, prefixes) == []
    if role_dir.name not in iv.INTERNAL_ROLES:
        assert check(defaults) == []


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=lambda p: p.name)
def test_spec_defaults_pass_the_checks(role_dir):
    specs, prefixes = iv.load_catalog(SPEC_FILES, internal_roles=())
    values = {name: attrs["default"] for name, attrs in _spec_options(role_dir).items() if "default" in attrs}
    assert iv.validate_vars("gpu1", values, specs, prefixes) == []


def test_defaults_of_all_roles_together_pass_the_checks():
    merged = {}
    for role_dir in ROLE_DIRS:
        if role_dir.name not in iv.INTERNAL_ROLES:
            merged.update(_load_yaml(role_dir / "defaults" / "main.yml"))
    assert set(merged) == {name for name, spec in SPECS.items() if not spec.required}
    assert check(merged) == []


# ---- Unknown variables ------------------------------------------------------------------


def test_misspelled_variable_gets_a_suggestion():
    error = only_error({"docker_daemon_registry_mirror": ["https://mirror.example.com"]})
    assert error == (
        "host gpu1: unknown variable 'docker_daemon_registry_mirror'; "
        "did you mean 'docker_daemon_registry_mirrors' or 'docker_daemon_registry_ca_certs'? "
        "(a misspelled variable is otherwise silently ignored)"
    )


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("docker_user", "docker_users"),
        ("docker_service_enable", "docker_service_enabled"),
        ("nvidia_container_toolkit_legacy_nvidia_docker", "nvidia_container_toolkit_legacy_nvidia_docker2"),
        ("docker_daemon_live_restor", "docker_daemon_live_restore"),
        ("gpuhost_verify_imag", "gpuhost_verify_image"),
    ],
)
def test_common_typos_are_caught(typo, meant):
    error = only_error({typo: "x"})
    assert f"unknown variable {typo!r}" in error
    assert f"did you mean {meant!r}" in error


def test_unknown_variable_without_a_close_match_points_to_the_ignore_list():
    error = only_error({"docker_compose_version": "2.29.0"})
    assert error.startswith("host gpu1: unknown variable 'docker_compose_version': ")
    assert "did you mean" not in error
    assert "not a gpuhost variable" in error
    assert "'docker_'" in error
    assert "gpuhost_validate_ignore_vars" in error


def test_the_hosts_ignore_list_silences_a_variable():
    variables = {"docker_compose_version": "2.29.0", "gpuhost_validate_ignore_vars": ["docker_compose_version"]}
    assert check(variables) == []


def test_the_ignore_argument_silences_a_variable():
    assert check({"docker_compose_version": "2.29.0"}, ignore=["docker_compose_version"]) == []


def test_an_ignore_list_that_is_a_string_is_reported_and_ignores_nothing():
    errors = check({"docker_compose_version": "2.29.0", "gpuhost_validate_ignore_vars": "docker_compose_version"})
    assert len(errors) == 2, errors
    assert any("'gpuhost_validate_ignore_vars': expected a list of str, got str" in e for e in errors)
    assert any("unknown variable 'docker_compose_version'" in e for e in errors)


@pytest.mark.parametrize(
    "name",
    ["ansible_host", "foo", "ansible_python_interpreter", "dockerfile", "nvidia_driver_version",
     "apt_source_name", "inventory_hostname", "groups"],
)
def test_variables_outside_gpuhost_prefixes_are_never_reported(name):
    assert check({name: "alice,bob"}) == []


def test_unrendered_variables_get_their_names_checked_only():
    errors = iv.validate_vars(
        "gpu1", {}, SPECS, PREFIXES, unrendered=["docker_daemon_options", "docker_daemon_option"]
    )
    assert len(errors) == 1
    assert "unknown variable 'docker_daemon_option'" in errors[0]
    assert "did you mean 'docker_daemon_options'" in errors[0]


# ---- Types --------------------------------------------------------------------------------


def test_string_where_a_list_belongs_is_rejected():
    error = only_error({"docker_users": "alice,bob"})
    assert error == (
        "host gpu1: variable 'docker_users': expected a list of str, got str 'alice,bob'; "
        "write a YAML list, not a string: docker_users: [alice, bob]"
    )


def test_single_string_where_a_list_belongs_is_rejected():
    error = only_error({"docker_daemon_registry_mirrors": "https://mirror.example.com"})
    assert "expected a list of str, got str 'https://mirror.example.com'" in error
    assert error.endswith("docker_daemon_registry_mirrors: ['https://mirror.example.com']")
    assert yaml.safe_load(error.rsplit(": ", 1)[1]) == ["https://mirror.example.com"]


@pytest.mark.parametrize("value", ["yes", "true", "True", "1", "on", 1])
def test_truthy_non_booleans_are_rejected_where_a_bool_belongs(value):
    error = only_error({"nvidia_container_toolkit_legacy_nvidia_docker2": value})
    assert error.startswith("host gpu1: variable 'nvidia_container_toolkit_legacy_nvidia_docker2': ")
    assert "expected a bool (true or false)" in error
    assert f"got {type(value).__name__} {value!r}" in error
    assert "write true, without quotes" in error


@pytest.mark.parametrize("value", ["no", "false", "0", 0, "off"])
def test_falsy_non_booleans_are_rejected_where_a_bool_belongs(value):
    error = only_error({"docker_service_enabled": value})
    assert "expected a bool" in error
    assert "write false, without quotes" in error


def test_yes_in_quotes_is_rejected_exactly():
    assert only_error({"nvidia_container_toolkit_legacy_nvidia_docker2": "yes"}) == (
        "host gpu1: variable 'nvidia_container_toolkit_legacy_nvidia_docker2': expected a bool (true or false), "
        "got str 'yes'; write true, without quotes"
    )


def test_quoted_number_where_an_int_belongs_is_rejected():
    assert only_error({"docker_apt_retries": "3"}) == (
        "host gpu1: variable 'docker_apt_retries': expected an int, got str '3'; drop the quotes: docker_apt_retries: 3"
    )


@pytest.mark.parametrize("value", [True, False, 3.5, "three", [3], None])
def test_other_non_ints_are_rejected_where_an_int_belongs(value):
    error = only_error({"docker_service_wait_timeout": value})
    assert "'docker_service_wait_timeout': expected an int, got " in error


def test_a_whole_float_where_an_int_belongs_suggests_the_int():
    assert "write a whole number: docker_apt_retry_delay: 10" in only_error({"docker_apt_retry_delay": 10.0})


def test_value_outside_the_choices_is_rejected():
    error = only_error({"docker_install_source": "snap"})
    assert error.startswith("host gpu1: variable 'docker_install_source': expected a str from the choices, got 'snap'")
    assert "set it to one of: upstream, distro" in error


def test_choices_are_case_sensitive_with_a_suggestion():
    error = only_error({"nvidia_container_toolkit_channel": "Stable"})
    assert "one of: stable, experimental" in error
    assert "did you mean 'stable'" in error


def test_number_where_a_string_belongs_is_rejected_with_a_quoting_hint():
    error = only_error({"docker_version": 27.5})
    assert error == (
        "host gpu1: variable 'docker_version': expected a str, got float 27.5; "
        'quote the value as written, e.g. docker_version: "27.5" (YAML reads it as a number)'
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("docker_daemon_default_runtime", False), ("docker_apt_keyring", True), ("docker_users_group", 999),
     ("docker_apt_repo_url", ["https://x"]), ("nvidia_container_toolkit_version", None)],
)
def test_non_strings_are_rejected_where_a_str_or_path_belongs(name, value):
    error = only_error({name: value})
    assert f"variable {name!r}: expected a " in error
    assert "str" in error


def test_list_elements_are_checked_strictly():
    errors = check({"docker_users": ["alice", 42, None], "docker_distro_packages": ["docker.io", True]})
    assert len(errors) == 3, errors
    assert "host gpu1: variable 'docker_distro_packages', item 2: expected a str, got bool True" in errors[0]
    assert "host gpu1: variable 'docker_users', item 2: expected a str, got int 42" in errors[1]
    assert 'quote the value as written, e.g. "42"' in errors[1]
    assert "variable 'docker_users', item 3: expected a str, got an empty value (null)" in errors[2]


def test_list_choices_and_int_elements_are_checked():
    specs = {
        "gpuhost_test_modes": iv.OptionSpec("gpuhost_test_modes", type="list", elements="str", choices=("a", "b")),
        "gpuhost_test_ports": iv.OptionSpec("gpuhost_test_ports", type="list", elements="int"),
    }
    errors = iv.validate_vars(
        "gpu1", {"gpuhost_test_modes": ["a", "c"], "gpuhost_test_ports": [80, True, "443"]}, specs, {"gpuhost_"}
    )
    assert len(errors) == 3, errors
    assert "'gpuhost_test_modes', item 2: expected one of the choices, got 'c'; set it to one of: a, b" in errors[0]
    assert "'gpuhost_test_ports', item 2: expected an int, got bool True" in errors[1]
    assert "'gpuhost_test_ports', item 3: expected an int, got str '443'; drop the quotes: 443" in errors[2]


def test_string_where_a_dict_belongs_is_rejected():
    error = only_error({"docker_daemon_options": '{"log-driver": "json-file"}'})
    assert "expected a dict (a YAML mapping), got str" in error


def test_raw_accepts_anything():
    for value in (True, False, None, "true", 1, [1], {"a": 1}):
        assert check({"docker_daemon_live_restore": value}) == []


def test_valid_values_pass():
    assert check({
        "docker_users": ["alice", "bob"],
        "docker_install_source": "distro",
        "docker_version": "5:27.5.1-1~debian.12~bookworm",
        "docker_apt_retries": 5,
        "docker_service_enabled": False,
        "docker_daemon_registry_mirrors": ["https://mirror.example.com"],
        "docker_daemon_options": {"log-driver": "json-file", "log-opts": {"max-size": "100m"}},
        "nvidia_container_toolkit_legacy_nvidia_docker2": True,
        "ansible_host": "gpu1.invalid",
        "foo": "yes",
    }) == []


def test_playbook_variables_are_known_and_typed():
    assert check({
        "gpuhost_verify_image": "nvidia/cuda:12.4.1-base-ubuntu22.04",
        "gpuhost_rollout_batches": [1, "25%", "100%"],
        "gpuhost_rollout_max_fail_percentage": 10,
        "gpuhost_validate_ignore_vars": [],
    }) == []
    error = only_error({"gpuhost_rollout_max_fail_percentage": "10"})
    assert "expected an int, got str '10'" in error
    assert "rollout_batches" in only_error({"gpuhost_rollout_batches": "1,25%"})


def test_extra_specs_replace_the_playbook_variables():
    errors = iv.validate_vars("gpu1", {"gpuhost_rollout_batches": [1]}, SPECS, PREFIXES, extra_specs={})
    assert len(errors) == 1 and "unknown variable 'gpuhost_rollout_batches'" in errors[0]


def test_role_variables_come_from_the_role_spec_not_the_playbook_list():
    assert "gpuhost_verify_image" not in iv.PLAYBOOK_VARIABLES
    assert SPECS["gpuhost_verify_image"].role == "gpuhost_verify"
    assert not set(iv.PLAYBOOK_VARIABLES) & set(SPECS)


def test_long_values_are_shortened():
    error = only_error({"docker_users": "a," * 200})
    assert "..." in error
    assert len(error) < 300


def test_every_problem_is_reported_once_and_names_the_host():
    errors = iv.validate_vars(
        "node-7",
        {"docker_users": "alice", "docker_apt_retries": "3", "docker_daemon_registry_mirror": [], "docker_version": 1},
        SPECS,
        PREFIXES,
    )
    assert len(errors) == 4
    assert all(error.startswith("host node-7: ") for error in errors)


@settings(max_examples=200, deadline=None)
@given(st.text())
@example("0\x1f")  # str.strip() drops \x1f, float() does not accept it
def test_no_string_passes_where_a_list_or_a_bool_belongs(text):
    for name in ("docker_users", "docker_daemon_registry_mirrors", "docker_service_enabled", "docker_apt_retries"):
        errors = check({name: text})
        assert len(errors) == 1 and f"variable {name!r}: expected " in errors[0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text()), st.booleans(), st.integers())
def test_well_typed_values_always_pass(items, flag, number):
    assert check({"docker_users": items, "docker_service_enabled": flag, "docker_apt_retries": number}) == []


# ---- The action plugin --------------------------------------------------------------------


def test_action_plugin_finds_the_library_from_a_plain_checkout(tmp_path):
    """Without gpuhost_cli importable, the plugin imports it from the checkout it sits in."""
    checkout = tmp_path / "checkout"
    package = checkout / "gpuhost_cli"
    action = package / "ansible_plugins" / "action"
    action.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "ansible_plugins" / "__init__.py").write_text("")
    (package / "inventory_validation.py").write_text((REPO / "gpuhost_cli" / "inventory_validation.py").read_text())
    (action / PLUGIN.name).write_text(PLUGIN.read_text())
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        sys.modules["gpuhost_cli"] = None  # not installed
        spec = importlib.util.spec_from_file_location("gpuhost_validate_inventory", {str(action / PLUGIN.name)!r})
        plugin = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(plugin)
        print(plugin.inventory_validation.__file__)
        print(plugin.ActionModule._requires_connection)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(package / "inventory_validation.py"), "False"]


def test_action_plugin_never_runs_a_module():
    source = PLUGIN.read_text()
    assert "_execute_module" not in source
    assert "_requires_connection = False" in source


# ---- End to end: the real playbook ----------------------------------------------------------


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def _run_site(inventory):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        # Results as JSON: messages are never folded across lines or re-quoted.
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_LOCAL_TEMP=str(inventory.parent / "ansible-tmp"),
        ANSIBLE_HOME=str(inventory.parent / "ansible-home"),
    )
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(REPO / "site.yml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


HOSTS = """\
all:
  children:
    gpu_hosts:
      hosts:
        gpu1:
          ansible_host: gpu1.invalid
"""


def _inventory(tmp_path, group_vars=None, host_vars=None):
    inventory = tmp_path / "inventory" / "hosts.yml"
    _write(inventory, HOSTS)
    if group_vars is not None:
        _write(inventory.parent / "group_vars" / "all.yml", group_vars)
    if host_vars is not None:
        _write(inventory.parent / "host_vars" / "gpu1.yml", host_vars)
    return inventory


def _assert_stopped_before_connecting(output):
    assert "TASK [Boilerplate | Validate the inventory's gpuhost variables]" in output
    assert "fatal: [gpu1]: FAILED!" in output
    assert "UNREACHABLE" not in output
    assert "gpu1.invalid" not in output
    assert "Gathering Facts" not in output
    assert "PLAY [Check the inputs of every role]" not in output
    assert "PLAY [Provision GPU container hosts]" not in output


@pytest.mark.parametrize(
    ("where", "content", "expected"),
    [
        pytest.param(
            "group_vars",
            """\
            docker_daemon_registry_mirror:
              - https://mirror.example.com
            """,
            ["host gpu1: unknown variable 'docker_daemon_registry_mirror'",
             "did you mean 'docker_daemon_registry_mirrors'"],
            id="misspelled",
        ),
        pytest.param(
            "host_vars",
            """\
            docker_users: "alice,bob"
            """,
            ["host gpu1: variable 'docker_users': expected a list of str, got str 'alice,bob'",
             "docker_users: [alice, bob]"],
            id="string-for-list",
        ),
        pytest.param(
            "group_vars",
            """\
            nvidia_container_toolkit_legacy_nvidia_docker2: "yes"
            """,
            ["host gpu1: variable 'nvidia_container_toolkit_legacy_nvidia_docker2': expected a bool (true or false), "
             "got str 'yes'"],
            id="string-for-bool",
        ),
        pytest.param(
            "host_vars",
            """\
            docker_apt_retries: 3
            docker_apt_retry_delay: "{{ docker_apt_retries | string }}"
            """,
            ["host gpu1: variable 'docker_apt_retry_delay': expected an int, got str '3'"],
            id="templated-value-is-rendered",
        ),
        pytest.param(
            "group_vars",
            """\
            docker_daemon_option:
              data-root: "{{ ansible_facts['mounts'][0]['mount'] }}"
            """,
            ["host gpu1: unknown variable 'docker_daemon_option'", "did you mean 'docker_daemon_options'"],
            id="unrendered-misspelled",
        ),
    ],
)
def test_playbook_stops_on_a_bad_inventory_before_connecting(tmp_path, where, content, expected):
    inventory = _inventory(tmp_path, **{where: content})
    rc, output = _run_site(inventory)
    assert rc != 0, output
    for text in expected:
        assert text in output, output
    _assert_stopped_before_connecting(output)


def test_playbook_passes_validation_of_a_good_inventory(tmp_path):
    inventory = _inventory(
        tmp_path,
        group_vars="""\
        docker_users: [alice]
        docker_install_source: distro
        nvidia_container_toolkit_legacy_nvidia_docker2: true
        docker_apt_retries: 3
        docker_daemon_registry_mirrors: ["https://mirror.example.com"]
        docker_daemon_options:
          data-root: "{{ ansible_facts['mounts'][0]['mount'] }}"
        docker_compose_version: "2.29.0"
        gpuhost_validate_ignore_vars: [docker_compose_version]
        some_other_role_setting: "yes"
        """,
        host_vars="""\
        docker_version: "{{ '5:27.5.1-1~debian.12~bookworm' }}"
        """,
    )
    rc, output = _run_site(inventory)
    # The next play tries gpu1.invalid, which never resolves.
    assert rc != 0, output
    validation = output.split("TASK [Boilerplate | Validate the inventory's gpuhost variables]", 1)[1]
    validation = validation.split("\nPLAY [", 1)[0]
    assert "ok: [gpu1]" in validation, output
    assert "FAILED" not in validation
    assert "host gpu1:" not in output
    assert "PLAY [Reach every host]" in output
    assert "UNREACHABLE" in output
