"""gpuhost render: the daemon.json a host would get; changes nothing."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gpuhost_cli.cli._common import Inventory, check_matched, fail, register_command, user_errors

HELP = """\
Print the /etc/docker/daemon.json HOST would get from the docker_daemon role.

Computed by the role's own module in check mode, so nothing is written. Online it is
merged with the file the host has now (connects to the host); with --offline it is merged
into an empty file on this machine, from the inventory alone, without connecting.
"""

EPILOG = """\
Examples:

  gpuhost render -i inventories/prod gpu-node-1             # merged with the host's file
  gpuhost render -i inventories/prod gpu-node-1 --offline   # from the inventory alone
  gpuhost render -i inventories/prod gpu-node-1 --offline | jq '."registry-mirrors"'

Only the JSON goes to stdout, so it can be piped.
"""


def render(
    inventory: Inventory,
    host: Annotated[str, typer.Argument(metavar="HOST", help="The inventory host name.", show_default=False)],
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Do not connect to the host: merge into an empty file on this machine."),
    ] = False,
) -> None:
    """Run playbooks/render.yml for HOST and print its daemon.json (help: HELP)."""
    from gpuhost_cli import inputs

    with user_errors():
        path = inputs.check_inventory(inventory)
        if not host.strip() or any(c in host for c in ",:*!&[] \t"):
            raise inputs.UserError(f"HOST '{host}' must be one inventory host name, not a pattern")

    from gpuhost_cli import runner, views

    with user_errors():
        result = runner.run_playbook(
            "render", path, limit=host,
            extravars={"gpuhost_render_host": host, "gpuhost_render_offline": offline},
        )
    check_matched(result, inventory, host, group=host)
    state = result.model.hosts.get(host)
    rendered = state.stats.get("docker_daemon_render") if state is not None else None
    if result.rc != 0 or not isinstance(rendered, dict) or "config" not in rendered:
        reason = views.host_error_text(state) if state is not None else ""
        errors = result.model.errors()
        fail(f"cannot render daemon.json for {host}: {reason or '; '.join(errors[-2:]) or 'no result'}",
             result.rc or 1)
    typer.echo(json.dumps(rendered["config"], indent=4))


def register(app: typer.Typer) -> None:
    register_command(app, render, "Print the daemon.json a host would get.", HELP, EPILOG)
