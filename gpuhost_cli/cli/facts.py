"""gpuhost facts: what each GPU host has, read by the gpu_facts module; changes nothing."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gpuhost_cli.cli._common import (
    Format,
    Inventory,
    Limit,
    OutputFormat,
    check_matched,
    finish,
    register_command,
    show,
    user_errors,
)

HELP = """\
Show each GPU host's distribution, GPUs, driver, nvidia-smi, Docker and toolkit.

Runs the read-only gpu_facts module on every host of gpu_hosts: one table per host, and
each problem it finds in plain words, with the fix. Changes nothing.
"""

EPILOG = """\
Examples:

  gpuhost facts -i inventories/prod
  gpuhost facts -i inventories/prod --limit gpu-node-1
  gpuhost facts -i inventories/prod --format json | jq '.hosts[].facts.summary'

Exits non-zero when a host was unreachable or the module failed on it.
"""


def facts(
    inventory: Inventory,
    limit: Limit = None,
    root: Annotated[
        str | None,
        typer.Option("--root", metavar="DIR",
                     help="Read the files under DIR on each host instead of the host's own "
                          "(a saved copy of a host's /etc, /proc, /sys and /var/lib/dpkg)."),
    ] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Run gpu_facts on every GPU host and show what it found (help: HELP)."""
    from gpuhost_cli import inputs

    with user_errors():
        path = inputs.check_inventory(inventory)

    from gpuhost_cli import runner, views

    module_args = json.dumps({"root": root}) if root else None
    with user_errors():
        result = runner.run_module("gpu_facts", "gpu_hosts", path, module_args=module_args, limit=limit)
    check_matched(result, inventory, limit)

    hosts = {}
    for name, host in sorted(result.model.hosts.items()):
        hosts[name] = {
            "status": "ok" if host.succeeded and "gpu_facts" in host.results else host.status,
            "facts": views.facts_of(host.results.get("gpu_facts")) if host.succeeded else None,
            "error": host.error,
        }

    def show_tables() -> None:
        for name, host in sorted(result.model.hosts.items()):
            if host.succeeded and hosts[name]["facts"] is not None:
                show(views.facts_table(name, hosts[name]["facts"]))
            else:
                show(views.Wrapped(f"{name}: {views.host_error_text(host)}", style="bold red"))

    finish(result, output, hosts, show_tables)


def register(app: typer.Typer) -> None:
    register_command(app, facts, "Show each GPU host's GPUs, driver, Docker, toolkit.", HELP, EPILOG)
