"""-e/--extra-vars: what ansible-playbook accepts, typed values, the merge order, and the
errors that stop a run before anything runs."""

from __future__ import annotations

import json

import pytest
from test_cli import write_inventory

from gpuhost_cli import inputs, rollout_report
from gpuhost_cli.inputs import UserError


@pytest.fixture
def unreachable_inventory(tmp_path):
    return write_inventory(tmp_path / "inv", {"gpu1": {"ansible_host": "gpu1.invalid", "ansible_connection": "ssh"}})


@pytest.mark.parametrize(("spec", "expected"), [
    # key=value pairs, several in one argument, split and unquoted as Ansible's parse_kv does
    ("a=1 b=true c=[x,y]", {"a": 1, "b": True, "c": ["x", "y"]}),
    ("a=1   b=two", {"a": 1, "b": "two"}),
    ("name='two words' other=\"more words\"", {"name": "two words", "other": "more words"}),
    ("quoted='007' n=007", {"quoted": "007", "n": 7}),
    ('text="line\\nbreak"', {"text": "line\nbreak"}),
    ("empty= next=1", {"empty": "", "next": 1}),
    ("url=https://m.example.com/a?b=c", {"url": "https://m.example.com/a?b=c"}),
    ("a=1 a=2", {"a": 2}),
    # one key=value whose value has spaces is one variable, as gpuhost always read it
    ("docker_users=[alice, bob]", {"docker_users": ["alice", "bob"]}),
    ("text=hello world", {"text": "hello world"}),
    # JSON and YAML mappings
    ('{"docker_daemon_options": {"bip": "10.98.0.1/24"}}', {"docker_daemon_options": {"bip": "10.98.0.1/24"}}),
    ("{docker_users: [alice], docker_apt_retries: 3}", {"docker_users": ["alice"], "docker_apt_retries": 3}),
    ("{}", {}),
    ("", {}),
    ("   ", {}),
])
def test_each_form_ansible_playbook_takes(spec, expected):
    assert inputs.parse_extra_vars([spec]) == expected


def test_files_yaml_and_json(tmp_path):
    (tmp_path / "a.yml").write_text("docker_users: [alice]\nnested: {x: 1}\n")
    (tmp_path / "b.json").write_text('{"docker_daemon_live_restore": false}')
    (tmp_path / "c.vars").write_text('{"from_json": 1}')
    (tmp_path / "empty.yml").write_text("# nothing\n")
    assert inputs.parse_extra_vars([f"@{tmp_path / n}" for n in ("a.yml", "b.json", "c.vars", "empty.yml")]) == {
        "docker_users": ["alice"], "nested": {"x": 1}, "docker_daemon_live_restore": False, "from_json": 1}


def test_several_merge_left_to_right_and_the_later_wins(tmp_path):
    (tmp_path / "base.yml").write_text("docker_users: [alice]\ndocker_daemon_options: {bip: 10.1.0.1/24, mtu: 1400}\n")
    merged = inputs.parse_extra_vars([
        f"@{tmp_path / 'base.yml'}",
        '{"docker_daemon_options": {"bip": "10.98.0.1/24"}}',
        "docker_users=[bob] flag=true",
        "flag=false",
    ])
    # As ansible-playbook merges extra vars (hash_behaviour replace): a key is replaced as a whole.
    assert merged == {"docker_users": ["bob"], "docker_daemon_options": {"bip": "10.98.0.1/24"}, "flag": False}


@pytest.mark.parametrize(("spec", "words"), [
    ("[1, 2]", "-e '[1, 2]' must hold a mapping of variable names to values, not a list; "
               "write a mapping such as -e '{\"key\": value}', or key=value"),
    ('{"a": ', "-e '{\"a\": ' is not valid YAML or JSON (line 1, column 7)"),
    ('{"1x": 2}', "-e '{\"1x\": 2}': '1x' is not a valid variable name"),
    ("{1: 2}", "-e '{1: 2}': 1 is not a valid variable name"),
    ("foo", "-e 'foo': write key=value (several separated by spaces"),
    ("a=[1, 2] b=3", "-e 'a=[1, 2] b=3': '2]' is not key=value; write key=value"),
    ("a='open", "-e 'a='open': a quote or a {{ }} is not closed"),
    ("1bad=2", "-e '1bad=2': '1bad' is not a valid variable name"),
    ("a=1 b-c=2", "'b-c' is not a valid variable name"),
    ("x=[1,", "-e 'x=[1,': the value of x is not valid YAML; quote it"),
    ("./vars.yml", "-e './vars.yml': to read variables from a file, write -e @./vars.yml"),
    ("/etc/vars.yml", "write -e @/etc/vars.yml"),
])
def test_what_is_not_a_mapping_is_named_with_the_fix(spec, words):
    with pytest.raises(UserError) as caught:
        inputs.parse_extra_vars(["ok=1", spec])
    assert words in caught.value.message
    assert caught.value.code == 2


def test_a_file_must_hold_a_mapping(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="extra vars file '.*list.json' must hold a mapping of variable names to "
                                        "values, not a list"):
        inputs.parse_extra_vars([f"@{tmp_path / 'list.json'}"])


@pytest.mark.parametrize("spec", ["[1, 2]", "foo", "a='open", '{"docker_users": ', "./vars.yml"])
def test_a_bad_extra_var_stops_the_command_before_anything_runs(cli, unreachable_inventory, spec):
    result = cli("provision", "-i", unreachable_inventory, "-e", "docker_users=[]", "-e", spec)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"gpuhost: -e '{spec}'") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    # Nothing ran: not even the rollout report's directory was made.
    assert not rollout_report.reports_dir(unreachable_inventory).exists()


def test_a_json_mapping_reaches_the_run_typed(cli, unreachable_inventory):
    """The role checks read the JSON value as a string where a list belongs, and say so."""
    result = cli("provision", "-i", unreachable_inventory, "-e", json.dumps({"docker_users": "alice"}),
                 "--format", "json")
    assert result.exit_code != 0
    assert "variable 'docker_users': expected a list of str, got str 'alice'" in (
        json.loads(result.stdout)["hosts"]["gpu1"]["error"])


def test_the_help_shows_each_form(cli):
    result = cli("provision", "--help")
    assert "@FILE|KEY=VALUE|{JSON}" in result.output
    assert "--check --diff -e '{\"docker_daemon_options\": {\"bip\": \"10.98.0.1/24\"}}'" in result.output
