"""gpuhost lab: a local fleet of systemd hosts in containers, reached over SSH."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gpuhost_cli.cli._common import OutputFormat, command_group, fail, help_text, print_json
from gpuhost_cli.lab.fleet import DISTROS

UP_HELP = """\
Start a lab fleet on this machine: N systemd hosts (containers from local Debian images,
built once with debootstrap), each reachable over SSH with a key made for the lab, a
signed stand-in mirror of Docker's and NVIDIA's repositories, and an inventory for them.

--distro picks the hosts' release: debian12, debian13, or the SIMULATED Ubuntu hosts
ubuntu22-sim and ubuntu24-sim (a Debian 12 or 13 userland that identifies as Ubuntu 22.04 or
24.04, with a stand-in of Ubuntu's archive in the mirror: no Ubuntu is involved); mixed
cycles through all four in that order, and a comma-separated list (debian12,ubuntu24-sim)
through those.

The stand-in mirror holds packages under the real names that install the real entry
points; it is not Docker's, NVIDIA's or Ubuntu's software. The hosts fetch Debian's own packages
through one local caching proxy (apt-cacher-ng, the container gpuhost-apt-cache, shared by
every lab and the tests), so a fleet downloads each package once; --no-apt-cache fetches
them directly. Needs root and a running Docker engine.
Running it again keeps the hosts that exist and adds or removes hosts to match --hosts.
"""

UP_EPILOG = """\
Examples:

  gpuhost lab up                        # 2 Debian 12 hosts
  gpuhost lab up --hosts 5 --distro mixed
  gpuhost lab up --hosts 1 --distro ubuntu24-sim --name sim24   # a simulated Ubuntu 24.04 host
  gpuhost provision -i ~/.local/state/gpuhost/lab/inventory
  gpuhost verify -i ~/.local/state/gpuhost/lab/inventory
  gpuhost lab down
"""

DOWN_HELP = """\
Remove the lab's hosts, its stand-in mirror and its network. The host images, the SSH
key, the mirror's keys and the shared apt cache (gpuhost-apt-cache; docker rm -f
gpuhost-apt-cache removes it) are kept for the next gpuhost lab up.
"""


#: --distro: the lab's host images (gpuhost's release list), mixed, or a comma-separated list.
DISTRO_METAVAR = "|".join((*DISTROS, "mixed")) + "[,...]"


StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", metavar="DIR", show_default=False,
                 help="Where the lab keeps its inventory and keys (default ~/.local/state/gpuhost/lab)."),
]


Name = Annotated[
    str,
    typer.Option("--name", metavar="NAME", help="Name of the lab: its hosts are NAME-1, NAME-2, ..."),
]


def _lab(state_dir: Path | None, name: str, apt_cache: bool = True):
    from gpuhost_cli.lab import Lab, LabError

    if not name.replace("-", "").isalnum() or not name[0].isalpha():
        fail(f"--name {name!r}: use letters, digits and dashes, starting with a letter", 2)
    try:
        return Lab(state_dir=state_dir, prefix=name, apt_cache=apt_cache)
    except LabError as exc:
        fail(str(exc), 1)


def up(
    hosts: Annotated[int, typer.Option("--hosts", "-n", min=1, max=32, help="How many hosts.")] = 2,
    distro: Annotated[str, typer.Option(
        "--distro", metavar=DISTRO_METAVAR,
        help="Release of the hosts: debian12, debian13, ubuntu22-sim or ubuntu24-sim "
             "(simulated Ubuntu 22.04 / 24.04: a Debian userland that identifies as Ubuntu); "
             "mixed cycles through the four; a comma-separated list cycles through those.")]
    = "debian12",
    state_dir: StateDir = None,
    name: Name = "gpuhost-lab",
    apt_cache: Annotated[bool, typer.Option("--apt-cache/--no-apt-cache",
                                            help="Fetch Debian's packages through the shared local apt cache.")]
    = True,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="table for people, json for programs.")]
    = OutputFormat.table,
) -> None:
    """Start the lab (help: UP_HELP)."""
    from gpuhost_cli.lab import LabError
    from gpuhost_cli.lab.fleet import STAND_IN_NOTICE, distros_for

    try:
        distros_for(hosts, distro)
    except LabError as exc:
        fail(str(exc), 2)
    lab = _lab(state_dir, name, apt_cache)
    try:
        started = lab.up(hosts, distro)
    except LabError as exc:
        fail(str(exc), 1)
    summary = {
        "inventory": str(lab.inventory_dir),
        "hosts": [{"name": h.name, "distro": h.distro, "address": h.address} for h in started],
        "mirror": lab.mirror_url,
        "apt_cache": lab.apt_cache_url,
        "stand_in": True,
        "notice": STAND_IN_NOTICE,
    }
    if output is OutputFormat.json:
        print_json(summary)
        return
    from rich.table import Table

    from gpuhost_cli.cli._common import console

    table = Table(title="gpuhost lab")
    for column in ("host", "distro", "address (SSH)"):
        table.add_column(column)
    for host in started:
        table.add_row(host.name, host.distro, host.address)
    out = console()
    out.print(table)
    out.print(f"inventory: {lab.inventory_dir}")
    out.print(f"NOTE: {STAND_IN_NOTICE}")
    if lab.apt_cache_url:
        out.print(f"Debian's packages come through the local apt cache {lab.apt_cache_url} "
                  "(apt-cacher-ng, shared by every lab and the tests)")
    out.print(f"next: gpuhost provision -i {lab.inventory_dir}")


def down(state_dir: StateDir = None, name: Name = "gpuhost-lab") -> None:
    """Remove the lab (help: DOWN_HELP)."""
    from gpuhost_cli.lab import LabError

    try:
        removed = _lab(state_dir, name).down()
    except LabError as exc:
        fail(str(exc), 1)
    typer.echo(f"removed {', '.join(removed)}" if removed else "no lab to remove")


def register(app: typer.Typer) -> None:
    group = command_group(app, "lab", "A local lab fleet: systemd hosts in containers, reached over SSH.")
    group.command(short_help="Start a lab fleet and write its inventory.", help=help_text(UP_HELP),
                  epilog=help_text(UP_EPILOG))(up)
    group.command(short_help="Remove the lab fleet.", help=help_text(DOWN_HELP))(down)
