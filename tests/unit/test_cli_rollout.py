"""gpuhost provision's rollout options: --batches, --max-fail, the inventory's settings, --resume.

Hosts are reserved ``.invalid`` names: every connection fails at once, so a run ends in the
preflight, before any host could change, and its report says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuhost_cli import inputs, rollout, rollout_report, runner
from gpuhost_cli.cli.provision import rollout_options
from gpuhost_cli.inputs import UserError


def inventory(tmp_path, hosts=("gpu1", "gpu2"), group_vars=None, host_vars=None):
    directory = tmp_path / "inv"
    directory.mkdir()
    (directory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"gpu_hosts": {"hosts": {
        h: {"ansible_host": f"{h}.invalid", "ansible_connection": "ssh", **(host_vars or {}).get(h, {})}
        for h in hosts}}}}}))
    if group_vars:
        (directory / "group_vars").mkdir()
        (directory / "group_vars" / "gpu_hosts.yml").write_text(yaml.safe_dump(group_vars))
    return directory


def env():
    return runner.ansible_envvars()


def test_defaults_when_nothing_is_set(tmp_path):
    assert rollout_options(inventory(tmp_path), {}, None, None) == {
        "gpuhost_rollout_batches": [1, "25%", "100%"], "gpuhost_rollout_max_fail_percentage": 0}


def test_the_inventory_settings_reach_the_run(tmp_path):
    inv = inventory(tmp_path, group_vars={"gpuhost_rollout_batches": [2, "50%"],
                                          "gpuhost_rollout_max_fail_percentage": 10})
    assert rollout_options(inv, {}, None, None) == {
        "gpuhost_rollout_batches": [2, "50%"], "gpuhost_rollout_max_fail_percentage": 10}


def test_command_line_beats_extra_vars_beats_inventory(tmp_path):
    inv = inventory(tmp_path, group_vars={"gpuhost_rollout_batches": [2], "gpuhost_rollout_max_fail_percentage": 10})
    extra = {"gpuhost_rollout_batches": [3], "gpuhost_rollout_max_fail_percentage": 20}
    assert rollout_options(inv, extra, None, None) == {
        "gpuhost_rollout_batches": [3], "gpuhost_rollout_max_fail_percentage": 20}
    assert rollout_options(inv, extra, "1,100%", 30) == {
        "gpuhost_rollout_batches": [1, "100%"], "gpuhost_rollout_max_fail_percentage": 30}


def test_hosts_that_disagree_are_refused(tmp_path):
    inv = inventory(tmp_path, host_vars={"gpu2": {"gpuhost_rollout_batches": ["100%"]}},
                    group_vars={"gpuhost_rollout_batches": [1, "100%"]})
    with pytest.raises(UserError) as caught:
        inputs.inventory_rollout_settings(inv, env())
    assert str(caught.value.message).startswith("gpuhost_rollout_batches differs between hosts (gpu1: [1, \"100%\"], "
                                                "gpu2: [\"100%\"])")
    assert "set it once for the group gpu_hosts" in caught.value.message


@pytest.mark.parametrize("args, words", [
    (["--batches", "0,100%"], "--batches: 0 hosts is not a batch"),
    (["--batches", "1,150%"], "--batches: '150%' is not a share from 1% to 100%"),
    (["--max-fail", "101"], "--max-fail must be from 0 to 100, got 101"),
])
def test_bad_rollout_options_stop_before_any_run(cli, tmp_path, args, words):
    result = cli("provision", "-i", inventory(tmp_path), *args)
    assert result.exit_code == 2
    assert words in result.output
    assert not rollout_report.reports_dir(tmp_path / "inv").exists()


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if gpuhost got as far as running Ansible."""
    def refuse(*args, **kwargs):
        raise AssertionError("site.yml was run")

    monkeypatch.setattr(runner, "run_playbook", refuse)


ODD_INPUTS = [
    (["--batches", "²"], "--batches: '²' is not a host count"),
    (["--batches", "²%"], "--batches: '²%' is not a share from 1% to 100%"),
    (["--batches", "٣"], "--batches: '٣' is not a host count"),
    (["--batches", "1,,2"], "--batches: an empty batch size"),
    (["--batches", "0"], "--batches: 0 hosts is not a batch"),
    (["--batches", "-1"], "--batches: -1 hosts is not a batch"),
    (["--batches", "1e3"], "--batches: '1e3' is not a host count"),
    (["--batches", "50%%"], "--batches: '50%%' is not a share from 1% to 100%"),
    (["--batches", "101%"], "--batches: '101%' is not a share from 1% to 100%"),
    (["--batches", " "], "--batches is empty"),
    (["--batches", "9" * 5000], "is not a batch size (at most 1000000 hosts)"),
    (["--batches", ",".join(["1"] * 500)], "--batches has more than 100 batch sizes"),
    (["--max-fail", "²"], "--max-fail must be a whole number from 0 to 100, got '²'"),
    (["--max-fail", "٣"], "--max-fail must be a whole number from 0 to 100, got '٣'"),
    (["--max-fail", "-1"], "--max-fail must be a whole number from 0 to 100, got '-1'"),
    (["--max-fail", "1_0"], "--max-fail must be a whole number from 0 to 100"),
    (["--max-fail", "9" * 5000], "--max-fail must be from 0 to 100"),
    (["--max-fail", ""], "--max-fail must be a whole number from 0 to 100, got ''"),
    (["--limit", ""], "--limit is empty"),
    (["--limit", " , "], "--limit is empty"),
    (["--limit", "gpu1\x1b[2J"], "--limit 'gpu1\\x1b[2J' holds control characters"),
]


@pytest.mark.parametrize("args, words", ODD_INPUTS, ids=lambda v: repr(v)[:30] if isinstance(v, list) else None)
def test_odd_input_is_one_line_and_exit_2(cli, tmp_path, no_run, args, words):
    args = ["--batches", "1", "--max-fail", "0", *args]  # both given: no inventory read, only the check
    result = cli("provision", "-i", inventory(tmp_path), *args)
    assert result.exit_code == 2, (result.exception, result.output)
    assert result.output.startswith("gpuhost: ") and result.output.count("\n") == 1, result.output
    assert words in result.output
    assert len(result.output) < 400


@pytest.mark.parametrize("path, words", [
    ("~no-such-user-of-gpuhost/inv", "cannot find the home directory its '~' names"),
    ("x" * 5000, "cannot be used: File name too long"),
    ("/" + "a/" * 3000, "cannot be used: File name too long"),
    ("", "no inventory given"),
    ("-", "inventory '-' not found"),
])
def test_odd_inventory_paths_are_one_line_and_exit_2(cli, no_run, path, words):
    result = cli("provision", "-i", path)
    assert result.exit_code == 2, (result.exception, result.output)
    assert result.output.startswith("gpuhost: ") and result.output.count("\n") == 1, result.output
    assert words in result.output


class _Ran(Exception):
    pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.text(max_size=40), max_fail=st.text(max_size=8))
def test_any_text_for_batches_and_max_fail_runs_or_is_refused(cli, tmp_path_factory, monkeypatch, batches, max_fail):
    def ran(*args, **kwargs):
        raise _Ran(kwargs["extravars"])

    monkeypatch.setattr(runner, "run_playbook", ran)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    result = cli("provision", "-i", inventory(tmp_path_factory.mktemp("any")), "--batches", batches,
                 "--max-fail", max_fail)
    if isinstance(result.exception, _Ran):
        extravars = result.exception.args[0]
        assert extravars["gpuhost_rollout_batches"] == rollout.parse_batches(batches)
        assert extravars["gpuhost_rollout_max_fail_percentage"] == rollout.parse_max_fail(max_fail)
        return
    assert result.exit_code == 2, (result.exception, result.output)
    assert result.output.startswith("gpuhost: ") and result.output.count("\n") == 1, result.output


def test_a_bad_inventory_setting_is_named(cli, tmp_path):
    inv = inventory(tmp_path, group_vars={"gpuhost_rollout_batches": ["1", "two"]})
    result = cli("provision", "-i", inv)
    assert result.exit_code == 2
    assert "gpuhost: gpuhost_rollout_batches: 'two' is not a host count" in result.output


def test_resume_without_an_earlier_rollout(cli, tmp_path):
    result = cli("provision", "-i", inventory(tmp_path), "--resume")
    assert result.exit_code == 2
    assert "--resume: no earlier rollout of" in result.output and "last.json is missing" in result.output


def test_resume_refuses_a_limit(cli, tmp_path):
    result = cli("provision", "-i", inventory(tmp_path), "--resume", "--limit", "gpu1")
    assert result.exit_code == 2
    assert "--resume picks the hosts itself" in result.output


def write_last(inv: Path, statuses: dict) -> Path:
    directory = rollout_report.reports_dir(inv)
    directory.mkdir(parents=True)
    report = {"started": "2026-01-01T00:00:00+00:00", "finish_deferred": None,
              "hosts": {h: {"status": s} for h, s in statuses.items()}}
    (directory / "last.json").write_text(json.dumps(report))
    return directory / "last.json"


def test_resume_with_nothing_left(cli, tmp_path):
    inv = inventory(tmp_path)
    write_last(inv, {"gpu1": "ok", "gpu2": "deferred"})
    result = cli("provision", "-i", inv, "--resume")
    assert result.exit_code == 0
    assert "Nothing to resume" in result.output


def test_resume_leaves_converged_hosts_alone(cli, tmp_path):
    inv = inventory(tmp_path)
    write_last(inv, {"gpu1": "converged", "gpu2": "ok"})
    result = cli("provision", "-i", inv, "--resume")
    assert result.exit_code == 0
    assert "Nothing to resume" in result.output


def test_resume_runs_only_the_unfinished_hosts_not_the_converged_ones(cli, tmp_path):
    inv = inventory(tmp_path, hosts=("gpu1", "gpu2", "gpu3"))
    write_last(inv, {"gpu1": "converged", "gpu2": "not_reached", "gpu3": "converged"})
    result = cli("provision", "-i", inv, "--resume", "--format", "json")
    data = json.loads(result.stdout)
    assert data["rollout"]["limit"] == "gpu2"
    assert list(data["rollout"]["hosts"]) == ["gpu2"]
    assert set(data["rollout"]["counts"]) == {"ok", "converged", "failed", "unreachable", "deferred", "not_reached"}


def test_resume_runs_only_the_unfinished_hosts(cli, tmp_path):
    inv = inventory(tmp_path, hosts=("gpu1", "gpu2", "gpu3"))
    last = write_last(inv, {"gpu1": "ok", "gpu2": "failed", "gpu3": "ok"})
    result = cli("provision", "-i", inv, "--resume", "--format", "json")
    data = json.loads(result.stdout)
    assert list(data["rollout"]["hosts"]) == ["gpu2"]
    assert data["rollout"]["limit"] == "gpu2"
    assert data["rollout"]["resumed_from"] == str(last)
    assert data["rollout"]["hosts"]["gpu2"]["status"] == "unreachable"
    # The new report is the one a later --resume reads.
    assert json.loads(last.read_text())["limit"] == "gpu2"


def test_report_file_and_table(cli, tmp_path):
    inv = inventory(tmp_path)
    result = cli("provision", "-i", inv, "--batches", "1,100%", "--max-fail", "50", "--report", tmp_path / "r.json")
    assert result.exit_code == 4
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["batches_requested"] == [1, "100%"] and report["max_fail_percentage"] == 50
    assert report["outcome"] == "stopped"
    assert "batches [1, '100%'], max fail 50%" in result.output
    assert "Rollout stopped before any host changed: 2 of 2 hosts could not be reached" in result.output
