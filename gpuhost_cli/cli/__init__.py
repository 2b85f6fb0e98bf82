"""The gpuhost command line.

Each command lives in its own module under gpuhost_cli/cli/ with a ``register(app)``
function; COMMANDS lists them in the order ``gpuhost --help`` shows them. A new command is
a new module and one more name in COMMANDS. The modules import only typer at the top;
what a command needs to run (ansible-runner, rich, the views) is imported inside it, so
``gpuhost --help`` starts fast.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from gpuhost_cli import __version__
from gpuhost_cli.cli._common import help_text

COMMANDS: tuple[str, ...] = ("provision", "facts", "verify", "render", "inventory", "bundle", "collection", "lab")

HELP = """\
Turn Debian and Ubuntu machines with NVIDIA GPUs into GPU container hosts.

Runs gpuhost's Ansible playbooks on the hosts of an inventory's gpu_hosts group and shows
what happened to each host.
"""

EPILOG = """\
Start a new inventory:

  gpuhost inventory init inventories/prod     # then list your hosts in its hosts.yml
  gpuhost facts -i inventories/prod           # what the hosts have
  gpuhost provision -i inventories/prod --check --diff
  gpuhost provision -i inventories/prod
  gpuhost verify -i inventories/prod          # GPU containers run

Each command's --help has more examples.
"""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gpuhost {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="gpuhost",
    help=help_text(HELP),
    epilog=help_text(EPILOG),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print gpuhost's version and exit."),
    ] = False,
) -> None:
    """gpuhost's options that come before the command."""


for _name in COMMANDS:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Entry point of the gpuhost command."""
    app(prog_name="gpuhost")
