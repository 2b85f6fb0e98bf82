"""Run gpuhost's playbooks and modules through ansible-runner.

Every run gets:

* the playbook as an absolute path inside :func:`gpuhost_cli.paths.project_root`, so it
  works from any directory and from an installed wheel;
* ``ANSIBLE_CONFIG`` and absolute roles/modules/action/filter paths (:func:`paths.ansible_env`);
* extra variables as a dict (ansible-runner passes them as JSON: typed values, never
  ``-e key=value`` strings), ``--check``/``--diff`` as fixed flags, no shell;
* a private data directory of its own, removed afterwards;
* a :class:`gpuhost_cli.events.RunModel` fed from ansible-runner's event stream, and an
  optional callback called with the model after each event (for a progress view).

Ctrl-C stops the run (ansible-runner terminates the ansible process group) and is
reported as ``RunResult.interrupted``.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuhost_cli import paths
from gpuhost_cli.events import RunModel

__all__ = ["RunResult", "ansible_envvars", "run_module", "run_playbook"]

#: The return code ansible-runner reports for a run it stopped.
CANCELED_RC = 254


@dataclass
class RunResult:
    """How a run ended: Ansible's return code and the per-host model."""

    rc: int
    status: str
    model: RunModel
    stdout: str = ""
    interrupted: bool = False
    command: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.interrupted


OnEvent = Callable[[RunModel, Mapping[str, Any]], None]


def ansible_envvars(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a run: gpuhost's paths, plain output, this Python's Ansible first."""
    env = paths.ansible_env()
    # The ansible executables next to this interpreter (the virtual environment or the
    # system gpuhost was installed into) come first, even when it is not activated.
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", os.defpath)])
    env["ANSIBLE_NOCOLOR"] = "1"
    if extra:
        env.update(extra)
    return env


def _cmdline(check: bool, diff: bool) -> str | None:
    flags = [flag for flag, on in (("--check", check), ("--diff", diff)) if on]
    return " ".join(flags) or None


class _Interrupt:
    """Turns Ctrl-C into ansible-runner's cancel callback for the length of a run."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


def _run(on_event: OnEvent | None, keep_results: Sequence[str] = (), **kwargs: Any) -> RunResult:
    import ansible_runner  # imported here: it is slow to import and only runs need it

    model = RunModel(keep_results)

    def handler(event: Mapping[str, Any]) -> bool:
        model.handle(event)
        if on_event is not None:
            on_event(model, event)
        return True

    with tempfile.TemporaryDirectory(prefix="gpuhost-run-") as private_data_dir, _Interrupt() as interrupt:
        runner = ansible_runner.run(
            private_data_dir=private_data_dir,
            quiet=True,
            suppress_env_files=True,
            event_handler=handler,
            cancel_callback=interrupt,
            **kwargs,
        )
        try:
            stdout = runner.stdout.read()
        except Exception:  # the stdout artifact is a convenience; the events carry the run
            stdout = ""
        command = list(getattr(runner.config, "command", []) or [])
    rc = runner.rc if isinstance(runner.rc, int) else 1
    return RunResult(
        rc=rc,
        status=str(runner.status),
        model=model,
        stdout=stdout,
        interrupted=interrupt.requested or runner.status == "canceled",
        command=command,
    )


def _inventory(inventory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    items = [inventory] if isinstance(inventory, (str, os.PathLike)) else list(inventory)
    return [str(Path(item).resolve()) for item in items]


def run_playbook(
    name: str | os.PathLike[str],
    inventory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    limit: str | None = None,
    tags: str | None = None,
    check: bool = False,
    diff: bool = False,
    forks: int | None = None,
    extravars: Mapping[str, Any] | None = None,
    envvars: Mapping[str, str] | None = None,
    on_event: OnEvent | None = None,
    keep_results: Sequence[str] = (),
) -> RunResult:
    """Run site.yml ('site'), playbooks/<name>.yml, or the playbook at a path; return how it ended."""
    playbook = Path(name).resolve() if isinstance(name, os.PathLike) else paths.playbook(name)
    if not playbook.is_file():
        raise FileNotFoundError(f"gpuhost's playbook {playbook} is missing; the installation is incomplete")
    return _run(
        on_event,
        keep_results,
        playbook=str(playbook),
        inventory=_inventory(inventory),
        limit=limit or None,
        tags=tags or None,
        forks=forks,
        cmdline=_cmdline(check, diff),
        extravars=dict(extravars) if extravars else None,
        envvars=ansible_envvars(envvars),
    )


def run_module(
    module: str,
    host_pattern: str,
    inventory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    module_args: str | None = None,
    limit: str | None = None,
    forks: int | None = None,
    envvars: Mapping[str, str] | None = None,
    on_event: OnEvent | None = None,
) -> RunResult:
    """Run one module ad hoc (``ansible HOST_PATTERN -m MODULE``) and return how it ended."""
    return _run(
        on_event,
        (module,),
        module=module,
        module_args=module_args,
        host_pattern=host_pattern,
        inventory=_inventory(inventory),
        limit=limit or None,
        forks=forks,
        envvars=ansible_envvars(envvars),
    )
