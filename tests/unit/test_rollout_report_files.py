"""The rollout reports beside an inventory are written and read without following links."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpuhost_cli import rollout_report, runner
from gpuhost_cli.inputs import UserError

REPORT = {"check": False, "hosts": {"gpu1": {"status": "failed"}}}


@pytest.fixture
def inv(tmp_path) -> Path:
    directory = tmp_path / "inv"
    directory.mkdir()
    (directory / "hosts.yml").write_text(
        "all:\n  children:\n    gpu_hosts:\n      hosts:\n        gpu1: {ansible_host: gpu1.invalid}\n")
    return directory


@pytest.fixture
def precious(tmp_path) -> Path:
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    return target


def test_reports_and_last_json_are_written(inv):
    saved = rollout_report.save(REPORT, inv)
    assert saved.parent == rollout_report.reports_dir(inv)
    assert json.loads(saved.read_text()) == REPORT
    assert rollout_report.load_last(inv) == (saved.parent / "last.json", REPORT)
    assert sorted(p.name for p in saved.parent.iterdir()) == sorted([saved.name, "last.json"])  # no temporary left


def test_a_linked_last_json_is_refused_and_its_target_untouched(inv, precious):
    directory = rollout_report.reports_dir(inv)
    directory.mkdir(parents=True)
    (directory / "last.json").symlink_to(precious)
    with pytest.raises(UserError) as refused:
        rollout_report.save(REPORT, inv)
    assert f"{directory / 'last.json'} is a symbolic link" in refused.value.message
    assert precious.read_text() == "keep me\n"
    assert list(directory.glob("rollout-*")) == []  # refused before anything was written
    with pytest.raises(UserError, match="is a symbolic link"):
        rollout_report.load_last(inv)


def test_a_link_at_the_old_temporary_name_is_left_alone(inv, precious):
    directory = rollout_report.reports_dir(inv)
    directory.mkdir(parents=True)
    (directory / ".last.json.tmp").symlink_to(precious)
    rollout_report.save(REPORT, inv)
    assert precious.read_text() == "keep me\n"
    assert json.loads((directory / "last.json").read_text()) == REPORT


@pytest.mark.parametrize("linked", [".gpuhost", ".gpuhost/rollouts"])
def test_a_linked_reports_directory_is_refused(inv, tmp_path, linked):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (inv / linked).parent.mkdir(parents=True, exist_ok=True)
    (inv / linked).symlink_to(elsewhere)
    with pytest.raises(UserError) as refused:
        rollout_report.save(REPORT, inv)
    assert refused.value.message.startswith(f"{inv / linked} is a symbolic link; gpuhost does not follow links for "
                                            f"its rollout reports: remove the link (rm {inv / linked})")
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(UserError, match="is a symbolic link"):
        rollout_report.load_last(inv)


def test_a_reports_directory_of_another_user_is_refused(inv, monkeypatch):
    rollout_report.save(REPORT, inv)
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 4242)
    with pytest.raises(UserError) as refused:
        rollout_report.save(REPORT, inv)
    assert f"{inv / '.gpuhost'} belongs to" in refused.value.message
    assert f"chown -R {me + 4242} {inv / '.gpuhost'}" in refused.value.message


def test_a_linked_report_file_is_refused(inv, tmp_path, precious):
    extra = tmp_path / "r.json"
    extra.symlink_to(precious)
    with pytest.raises(UserError, match=f"{extra} is a symbolic link"):
        rollout_report.check_writable(inv, extra)
    with pytest.raises(UserError, match=f"{extra} is a symbolic link"):
        rollout_report.save(REPORT, inv, extra)
    assert precious.read_text() == "keep me\n"


@pytest.mark.parametrize("plant", ["last.json", "report"])
def test_provision_refuses_a_linked_report_before_running_ansible(cli, inv, tmp_path, precious, monkeypatch, plant):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    ran = []
    monkeypatch.setattr(runner, "run_playbook", lambda *a, **k: ran.append(a))
    if plant == "last.json":
        link = rollout_report.reports_dir(inv) / "last.json"
        link.parent.mkdir(parents=True)
    else:
        link = tmp_path / "r.json"
    link.symlink_to(precious)
    result = cli("provision", "-i", inv, "--batches", "1", "--max-fail", "0", "--report", tmp_path / "r.json")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"gpuhost: {link} is a symbolic link") and result.output.count("\n") == 1
    assert ran == [] and precious.read_text() == "keep me\n"
