"""gpuhost provision: run site.yml on the inventory's GPU hosts."""

from __future__ import annotations

from typing import Annotated

import typer

from gpuhost_cli.cli._common import (
    Format,
    Inventory,
    Limit,
    OutputFormat,
    check_matched,
    console,
    finish,
    live_run,
    register_command,
    stdout_is_tty,
    user_errors,
)

HELP = """\
Turn the inventory's gpu_hosts into GPU container hosts (runs site.yml).

Checks the Ansible version and every host's variables first; nothing changes on any
host when that fails. Then installs the NVIDIA Container Toolkit and Docker, adds the
docker_users to the docker group, and merges the daemon.json settings. Shows each host's
progress while it runs, then a summary per host.
"""

EPILOG = """\
Examples:

  gpuhost provision -i inventories/prod --check --diff    # what would change
  gpuhost provision -i inventories/prod                   # do it
  gpuhost provision -i inventories/prod --limit gpu-node-1 --tags daemon
  gpuhost provision -i inventories/prod -e @overrides.yml -e docker_users='[alice, bob]'
  gpuhost provision -i inventories/prod --format json | jq .hosts

The exit status is Ansible's: 0 when every host succeeded.
"""


def provision(
    inventory: Inventory,
    limit: Limit = None,
    tags: Annotated[
        str | None,
        typer.Option("--tags", "-t", metavar="TAGS",
                     help="Only these parts, comma-separated: toolkit, docker, users, daemon."),
    ] = None,
    check: Annotated[bool, typer.Option("--check", "-C", help="Change nothing; report what would change.")] = False,
    diff: Annotated[bool, typer.Option("--diff", "-D", help="Show the changes to files.")] = False,
    extra_vars: Annotated[
        list[str] | None,
        typer.Option("--extra-vars", "-e", metavar="@FILE|KEY=VALUE",
                     help="Extra variables: @file.yml (a YAML or JSON mapping) or key=value (the value is "
                          "read as YAML: 3, true, [a, b]). Repeat to add more."),
    ] = None,
    forks: Annotated[
        int | None,
        typer.Option("--forks", min=1, metavar="N", help="Hosts worked on at once (default: ansible.cfg's 20)."),
    ] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Run site.yml on the inventory's gpu_hosts (help: HELP)."""
    from gpuhost_cli import inputs

    with user_errors():
        path = inputs.check_inventory(inventory)
        variables = inputs.parse_extra_vars(extra_vars)

    from gpuhost_cli import runner, views

    from gpuhost_cli.rollout_lock import rollout_lock

    show_live = output is OutputFormat.table and stdout_is_tty()
    # One rollout per inventory: a second one stops here, before it connects to any host.
    with user_errors(), rollout_lock(path), live_run(show_live, "gpuhost provision") as on_event:
        result = runner.run_playbook(
            "site", path, limit=limit, tags=tags, check=check, diff=diff, forks=forks,
            extravars=variables, on_event=on_event,
        )
    check_matched(result, inventory, limit)

    title = "gpuhost provision" + (" (check mode: nothing was changed)" if check else "")
    finish(result, output, result.model.to_dict(),
           lambda: console().print(views.summary_table(result.model, title=title)))


def register(app: typer.Typer) -> None:
    register_command(app, provision, "Provision the GPU hosts (runs site.yml).", HELP, EPILOG)
