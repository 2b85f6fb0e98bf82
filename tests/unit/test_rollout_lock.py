"""Two rollouts on one inventory at once: the second stops before it connects to a host."""

import contextlib
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
