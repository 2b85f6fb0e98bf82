"""gpuhost_cli.runner and gpuhost_cli.paths: how a run is put together."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from pathlib import Path

from rich.console import Console

from gpuhost_cli import paths, runner, views
from gpuhost_cli.events import RunModel

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_is_its_own_project_root():
    assert paths.project_root() == REPO
    assert paths.playbook("site") == REPO / "site.yml"
    assert paths.playbook("verify") == REPO / "playbooks" / "verify.yml"
    assert paths.plugins_dir() == REPO / "gpuhost_cli" / "ansible_plugins"


def test_ansible_is_pointed_at_gpuhost_with_absolute_paths():
    env = runner.ansible_envvars({"ANSIBLE_TIMEOUT": "5"})
    for key in ("ANSIBLE_CONFIG", "ANSIBLE_ROLES_PATH", "ANSIBLE_LIBRARY", "ANSIBLE_ACTION_PLUGINS",
                "ANSIBLE_FILTER_PLUGINS"):
        assert os.path.isabs(env[key]) and os.path.exists(env[key]), key
    assert env["ANSIBLE_CONFIG"] == str(REPO / "ansible.cfg")
    assert Path(env["ANSIBLE_LIBRARY"], "docker_daemon_config.py").is_file()
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["ANSIBLE_TIMEOUT"] == "5"


def test_a_run_passes_an_argument_list_with_typed_extra_vars(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    gpu_hosts:\n      hosts:\n        x:\n          ansible_host: x.invalid\n")
    seen = []
    result = runner.run_playbook(
        "render", inventory, limit="x", tags="daemon", check=True, diff=True, forks=3,
        extravars={"gpuhost_render_host": "x", "gpuhost_render_offline": True},
        on_event=lambda model, event: seen.append(event["event"]),
    )
    assert result.rc == 0, result.stdout[-2000:]
    command = result.command
    assert command[0] == "ansible-playbook" and command[-1] == str(REPO / "playbooks" / "render.yml")
    assert command[command.index("-i") + 1] == str(inventory)
    assert command[command.index("--limit") + 1] == "x"
    assert command[command.index("--tags") + 1] == "daemon"
    assert command[command.index("--forks") + 1] == "3"
    assert "--check" in command and "--diff" in command
    assert json.loads(command[command.index("-e") + 1]) == {"gpuhost_render_host": "x", "gpuhost_render_offline": True}
    assert seen[0] == "playbook_on_start" and seen[-1] == "playbook_on_stats"
    # --tags daemon leaves out the render play's untagged tasks; the boilerplate ran (always)
    assert result.model.hosts["x"].ok >= 2 and "docker_daemon_render" not in result.model.hosts["x"].stats


def test_ctrl_c_during_a_run_asks_ansible_runner_to_cancel():
    previous = signal.getsignal(signal.SIGINT)
    with runner._Interrupt() as interrupt:
        assert interrupt() is False
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt() is True
    assert signal.getsignal(signal.SIGINT) is previous


def test_live_progress_follows_the_model():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    model = RunModel()
    with views.live_progress(console, "gpuhost provision") as on_event:
        event = {"event": "runner_on_start", "event_data": {"host": "gpu1", "task": "Docker | Install"}}
        model.handle(event)
        on_event(model, event)
    text = views.render_text([views.progress_table(model, "gpuhost provision")])
    assert "gpu1" in text and "Docker | Install" in text and "running" in text
