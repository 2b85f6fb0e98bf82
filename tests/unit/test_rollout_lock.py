"""Two rollouts on one inventory at once: the second stops before it connects to a host."""

import contextlib
import os
import subprocess
import sys
import textwrap

import pytest

from gpuhost_cli.inputs import UserError
from gpuhost_cli.rollout_lock import lock_path, rollout_lock


@contextlib.contextmanager
def rollout_in_another_process(inventory, locks=None):
    """Hold the inventory's lock from another process (fcntl locks belong to processes)."""
    where = repr(str(locks)) if locks else "None"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from pathlib import Path
            from gpuhost_cli.rollout_lock import rollout_lock
            locks = {where}
            with rollout_lock(Path({str(inventory)!r}), Path(locks) if locks else None):
                print("held", flush=True)
                sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.communicate("done\n", timeout=30)


def test_the_lock_is_exclusive_per_inventory_and_released_after(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    other = tmp_path / "other.yml"
    other.write_text("all: {}\n")
    locks = tmp_path / "locks"
    with rollout_in_another_process(inventory, locks) as pid:
        with pytest.raises(UserError) as refused:
            with rollout_lock(inventory, locks):
                pass
        assert refused.value.code == 3
        assert f"another rollout on inventory '{inventory}' is running (pid {pid}" in refused.value.message
        with rollout_lock(other, locks):  # another inventory is not blocked
            pass
    with rollout_lock(inventory, locks) as path:  # released when the holder ended
        assert path == lock_path(inventory, locks)


def test_provision_refuses_a_second_rollout_before_running_ansible(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from gpuhost_cli import runner
    from gpuhost_cli.cli import app

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    gpu_hosts:\n      hosts:\n        gpu1: {ansible_host: gpu1.invalid}\n")
    ran = []
    monkeypatch.setattr(runner, "run_playbook", lambda *a, **k: ran.append(a))
    with rollout_in_another_process(inventory.resolve(), tmp_path / "state" / "gpuhost" / "locks"):
        result = CliRunner().invoke(app, ["provision", "-i", str(inventory)])
    assert result.exit_code == 3, result.output
    assert "another rollout on inventory" in result.output
    assert ran == []


# ---- A link or a stranger's file at the lock's path ------------------------------------------

def test_a_link_planted_at_the_lock_path_is_refused_and_its_target_untouched(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    locks = tmp_path / "locks"
    locks.mkdir()
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    path = lock_path(inventory, locks)
    path.symlink_to(target)
    with pytest.raises(UserError) as refused:
        with rollout_lock(inventory, locks):
            pass
    assert refused.value.code == 2
    assert f"{path} is a symbolic link" in refused.value.message
    assert f"rm {path}" in refused.value.message
    assert target.read_text() == "keep me\n"


def test_a_dangling_link_at_the_lock_path_creates_nothing(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    locks = tmp_path / "locks"
    locks.mkdir()
    path = lock_path(inventory, locks)
    path.symlink_to(tmp_path / "created-through-the-link")
    with pytest.raises(UserError, match="is a symbolic link"):
        with rollout_lock(inventory, locks):
            pass
    assert not (tmp_path / "created-through-the-link").exists()


def test_a_linked_lock_directory_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "state" / "gpuhost").mkdir(parents=True)
    (tmp_path / "state" / "gpuhost" / "locks").symlink_to(elsewhere)
    with pytest.raises(UserError) as refused:
        with rollout_lock(inventory):
            pass
    assert f"{tmp_path / 'state' / 'gpuhost' / 'locks'} is a symbolic link" in refused.value.message
    assert list(elsewhere.iterdir()) == []


def test_a_lock_file_of_another_user_is_refused(tmp_path, monkeypatch):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    locks = tmp_path / "locks"
    with rollout_lock(inventory, locks) as path:
        pass
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 4242)  # the files are now a stranger's
    with pytest.raises(UserError) as refused:
        with rollout_lock(inventory, locks):
            pass
    assert f"{locks} belongs to" in refused.value.message and f"chown -R {me + 4242} {locks}" in refused.value.message
    monkeypatch.setattr(os, "geteuid", lambda: me)
    if me == 0:  # root can hand the file itself to someone else
        os.chown(path, 4242, -1)
        with pytest.raises(UserError) as refused:
            with rollout_lock(inventory, locks):
                pass
        assert f"{path} belongs to" in refused.value.message and "4242" in refused.value.message


def test_provision_refuses_a_linked_lock_before_running_ansible(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from gpuhost_cli import runner
    from gpuhost_cli.cli import app

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    gpu_hosts:\n      hosts:\n        gpu1: {ansible_host: gpu1.invalid}\n")
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    path = lock_path(inventory)
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    ran = []
    monkeypatch.setattr(runner, "run_playbook", lambda *a, **k: ran.append(a))
    result = CliRunner().invoke(app, ["provision", "-i", str(inventory), "--batches", "1", "--max-fail", "0"])
    assert result.exit_code == 2, result.output
    assert result.output == (f"gpuhost: {path} is a symbolic link; gpuhost does not follow links for its rollout "
                             f"locks: remove the link (rm {path}) and run again\n")
    assert ran == [] and target.read_text() == "keep me\n"
