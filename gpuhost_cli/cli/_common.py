"""What the commands share: option types, error reporting, the console, output.

Kept light: only typer is imported here. rich, ansible-runner and the views are imported
inside the functions that need them, so ``gpuhost --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from gpuhost_cli.runner import RunResult


class OutputFormat(str, Enum):
    """How a command prints its result."""

    table = "table"
    json = "json"


Inventory = Annotated[
    str,
    typer.Option(
        "--inventory",
        "-i",
        metavar="INVENTORY",
        help="Inventory file or directory (for example inventories/prod).",
        show_default=False,
    ),
]
Limit = Annotated[
    str | None,
    typer.Option("--limit", "-l", metavar="PATTERN", help="Only these hosts or groups (Ansible's --limit)."),
]
Format = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="table for people, json for programs.", case_sensitive=False),
]


def help_text(text: str) -> str:
    """Help or epilog text for click's plain help formatter.

    Paragraphs are separated by blank lines and rewrapped to the terminal; a paragraph
    indented by two spaces (examples) is marked with click's \\b so it stays as written.
    gpuhost uses the plain formatter, not typer's rich one: it halves the start-up time of
    ``gpuhost --help`` (benchmarks/cli_startup.py).
    """
    paragraphs = []
    for paragraph in text.strip("\n").split("\n\n"):
        lines = paragraph.splitlines()
        if lines and lines[0].startswith("  "):
            paragraphs.append("\b\n" + "\n".join(lines))
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``gpuhost: message`` on stderr and exit with ``code``; no traceback."""
    typer.echo(f"gpuhost: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn gpuhost's UserError into a one-line message and exit status."""
    from gpuhost_cli.inputs import UserError

    try:
        yield
    except UserError as exc:
        fail(exc.message, exc.code)
    except FileNotFoundError as exc:
        fail(str(exc), 1)


_console: Console | None = None


def console() -> Console:
    """gpuhost's one rich console, on stdout: in colour on a terminal, plain text when stdout
    is not one or NO_COLOR is set (https://no-color.org)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(highlight=False, color_system=None if os.environ.get("NO_COLOR") else "auto")
    return _console


def show(*renderables: RenderableType) -> None:
    """Print on the console, lines longer than the terminal left whole (a host name or a path
    runs on instead of being cut, see gpuhost_cli.views)."""
    from rich.console import Group

    console().print(Group(*renderables), crop=False)


def stdout_is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else, so it can be piped."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def finish(result: RunResult, output: OutputFormat, hosts_json: Any, show_table: Any,
           extra: dict[str, Any] | None = None) -> NoReturn:
    """Print the result as JSON ({"hosts", "rc", "ok"} and ``extra``) or as tables, and exit
    with Ansible's status.

    ``show_table`` is called only for the table format, so JSON runs never import rich.
    """
    if output is OutputFormat.json:
        print_json({"hosts": hosts_json, "rc": result.rc, "ok": result.ok, **(extra or {})})
    else:
        show_table()
    raise typer.Exit(result.rc)


def register_command(app: typer.Typer, command: Any, short_help: str, help_: str, epilog: str) -> None:
    """Add ``command`` to ``app`` with its help and examples."""
    app.command(short_help=short_help, help=help_text(help_), epilog=help_text(epilog))(command)


def command_group(app: typer.Typer, name: str, help_: str) -> typer.Typer:
    """A group of subcommands (``gpuhost NAME ...``) under ``app``, with gpuhost's help options."""
    group = typer.Typer(help=help_, no_args_is_help=True, rich_markup_mode=None,
                        context_settings={"help_option_names": ["-h", "--help"]})
    app.add_typer(group, name=name)
    return group


def check_matched(result: RunResult, inventory: str, limit: str | None, group: str = "gpu_hosts") -> None:
    """Exit with a clear message when the run found no host to work on."""
    model = result.model
    if result.interrupted:
        fail("interrupted; the run was stopped", 130)
    problem = model.inventory_problem()
    if problem and not model.hosts:
        fail(f"cannot read inventory '{inventory}': {problem}", result.rc or 2)
    outside_group = bool(limit) and limit != group and not model.unmatched_patterns
    if model.no_hosts_matched or (limit and model.unmatched_patterns and not model.hosts):
        where = f"group {group} of {inventory}" if outside_group else str(inventory)
        fail(f"no hosts matched '{limit or group}' in {where}", result.rc or 2)
    if not model.hosts and not model.stats_seen:
        errors = model.errors()
        detail = "; ".join(errors[-3:]) if errors else f"Ansible exited with {result.rc} before any task ran"
        fail(detail, result.rc or 1)
    if group in model.plays_without_hosts or not model.hosts:
        where = f"group {group} of {inventory}" if outside_group else str(inventory)
        fail(f"no hosts matched '{limit or group}' in {where}", result.rc or 2)


def live_run(enabled: bool, title: str) -> Any:
    """A context manager yielding an on_event callback that keeps a live per-host view.

    Disabled (a no-op callback) unless ``enabled``; the caller passes whether stdout is a
    terminal and the format is a table.
    """
    if not enabled:
        return contextlib.nullcontext(None)
    from gpuhost_cli import views

    return views.live_progress(console(), title)
