"""gpuhost verify: check that every GPU host runs GPU containers (playbooks/verify.yml)."""

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
Check that every GPU host runs GPU containers the way its users start them.

Checks that Docker answers and that the nvidia runtime is registered and is the default;
then, on hosts with NVIDIA GPUs and a loaded driver, that docker run --gpus all,
--gpus '"device=0"' and --runtime=nvidia each run nvidia-smi. Hosts without GPUs report
the GPU checks as n/a. Each registry mirror Docker uses is asked for /v2/ from the host:
one that is dead, not a registry or fails TLS is a warning (a failed check with
gpuhost_verify_mirrors_required: true). Changes nothing on the hosts apart from pulling the
test image.
"""

EPILOG = """\
Examples:

  gpuhost verify -i inventories/prod
  gpuhost verify -i inventories/prod --limit gpu-node-1 --image nvidia/cuda:12.6.3-base-ubuntu24.04
  gpuhost verify -i inventories/prod --no-pull     # the image is on the hosts already
  gpuhost verify -i inventories/prod --format json | jq '.hosts[].status'

Exits non-zero when a check failed on any host; warnings do not count.
"""


def verify(
    inventory: Inventory,
    limit: Limit = None,
    image: Annotated[
        str | None,
        typer.Option("--image", metavar="IMAGE",
                     help="Image of the GPU container tests (default: gpuhost_verify_image, "
                          "ubuntu:24.04, as in NVIDIA's sample workload)."),
    ] = None,
    pull: Annotated[
        bool | None,
        typer.Option("--pull/--no-pull", help="Pull the image first (default: gpuhost_verify_pull, true)."),
    ] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Run playbooks/verify.yml and show each host's checks (help: HELP)."""
    from gpuhost_cli import inputs

    with user_errors():
        path = inputs.check_inventory(inventory)
        if image is not None and (not image.strip() or any(c.isspace() for c in image)):
            raise inputs.UserError(f"--image '{image}' is not an image reference")

    from gpuhost_cli import runner, views

    variables: dict[str, object] = {}
    if image is not None:
        variables["gpuhost_verify_image"] = image
    if pull is not None:
        variables["gpuhost_verify_pull"] = pull

    show_live = output is OutputFormat.table and stdout_is_tty()
    with user_errors(), live_run(show_live, "gpuhost verify") as on_event:
        result = runner.run_playbook("verify", path, limit=limit, extravars=variables, on_event=on_event)
    check_matched(result, inventory, limit)

    finish(result, output, views.verify_hosts_json(result.model),
           lambda: console().print(views.verify_table(result.model)))


def register(app: typer.Typer) -> None:
    register_command(app, verify, "Check that GPU containers run on every GPU host.", HELP, EPILOG)
