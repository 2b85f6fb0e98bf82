"""gpuhost collection: gpuhost as the Ansible collection gpuhost.gpuhost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gpuhost_cli.cli._common import command_group, fail, help_text

BUILD_HELP = """\
Build the collection gpuhost.gpuhost into OUT (default dist/): the roles, playbooks and
plugins of this gpuhost, with every reference to them fully qualified, packed by
ansible-galaxy collection build. Prints the tarball's path.
"""

BUILD_EPILOG = """\
Examples:

  gpuhost collection build --out dist/
  ansible-galaxy collection install dist/gpuhost-gpuhost-*.tar.gz
  ansible-playbook -i inventories/prod gpuhost.gpuhost.site --check --diff

For AWX or Automation Platform, build the execution environment from
ee/execution-environment.yml with the tarball (docs/awx.md).
"""


def build(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Where the tarball goes.")] = Path("dist"),
    repository: Annotated[str | None, typer.Option(
        "--repository", metavar="URL",
        help="The source repository's URL, for galaxy.yml; Galaxy requires it to publish.")] = None,
) -> None:
    """Build the collection (help: BUILD_HELP)."""
    from gpuhost_cli import collection

    try:
        tarball = collection.build(out, repository=repository)
    except collection.CollectionError as exc:
        fail(str(exc), 1)
    typer.echo(str(tarball))


def register(app: typer.Typer) -> None:
    group = command_group(app, "collection", "gpuhost as the Ansible collection gpuhost.gpuhost.")
    group.command(
        short_help="Build the collection's tarball.",
        help=help_text(BUILD_HELP),
        epilog=help_text(BUILD_EPILOG),
    )(build)
