"""gpuhost inventory: start and look after inventories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gpuhost_cli.cli._common import command_group, help_text, user_errors

INIT_HELP = """\
Write a new inventory: DIRECTORY/hosts.yml and DIRECTORY/group_vars/gpu_hosts/*.yml.

Copied from gpuhost's sample inventory, where every variable of every role is written
out, commented, at its default. Files that exist are never overwritten without --force.
"""

INIT_EPILOG = """\
Examples:

  gpuhost inventory init inventories/prod
  gpuhost inventory init inventories/prod --force    # overwrite the files it writes

Then list the hosts in DIRECTORY/hosts.yml, uncomment what differs from the defaults in
DIRECTORY/group_vars/gpu_hosts/*.yml, and run: gpuhost provision -i DIRECTORY --check --diff
"""


def init(
    directory: Annotated[Path, typer.Argument(metavar="DIRECTORY", help="Directory of the new inventory.",
                                              show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")] = False,
) -> None:
    """Copy the sample inventory into DIRECTORY (help: INIT_HELP)."""
    from gpuhost_cli import inventory_init

    with user_errors():
        written = inventory_init.write(directory, force=force)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"next: list your hosts in {directory / 'hosts.yml'}, then gpuhost provision -i {directory} --check --diff")


def register(app: typer.Typer) -> None:
    group = command_group(app, "inventory", "Start and look after inventories.")
    group.command(
        short_help="Write a new inventory from the sample.",
        help=help_text(INIT_HELP),
        epilog=help_text(INIT_EPILOG),
    )(init)
