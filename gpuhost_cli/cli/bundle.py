"""gpuhost bundle: the packages for hosts without a route to Docker's or NVIDIA's repositories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gpuhost_cli.cli._common import (
    Format,
    Inventory,
    Limit,
    OutputFormat,
    command_group,
    help_text,
    print_json,
    user_errors,
)

CREATE_HELP = """\
Download the packages the roles would install on the inventory's GPU hosts into DIR, as a
signed offline bundle: one flat apt repository per release the hosts run, a manifest and
the bundle's public key.

Run it on a machine that reaches the repositories the inventory names (Docker's, NVIDIA's
or their mirrors, and the distribution's archive; a proxy in http_proxy and https_proxy is
used). apt checks each repository's signature against the pinned key fingerprints
(docker_apt_key_fingerprint, nvidia_container_toolkit_key_fingerprint) and the
distribution's archive keyring, and downloads the pinned versions (docker_version,
nvidia_container_toolkit_version) with every dependency that is not in the base system.

The base system is the release's packages of Priority required and important; give a
host's /var/lib/dpkg/status with --base-status RELEASE=FILE to leave out what the hosts
already have. A host's release comes from its variables (ansible_distribution_release),
else from --release. The bundle is signed with a key kept in --key-home, made on first
use: later bundles carry the same key. DIR must be new or empty.
"""

CREATE_EPILOG = """\
Examples:

  gpuhost bundle create -i inventories/prod --out bundle-2026-12 --release bookworm
  gpuhost bundle create -i inventories/prod --out b --base-status bookworm=node1-dpkg-status
  gpuhost bundle verify bundle-2026-12 --fingerprint FINGERPRINT

Re-running with the same inventory and repositories gives the same manifest.json (only the
signatures differ): diff two manifests to see what a changed pin changed.
"""

VERIFY_HELP = """\
Check a bundle: every file's sha256 and size against its manifest, the manifest's and each
Release's signature against the bundle key, and each Packages index against its Release.
A missing, truncated, changed or extra file, or a signature by another key, refuses the
bundle with the file named (exit status 1). With --fingerprint the bundle key must be
that key. Changes nothing.
"""

VERIFY_EPILOG = """\
Examples:

  gpuhost bundle verify bundle-2026-12
  gpuhost bundle verify bundle-2026-12 --fingerprint 6E62744D0C6FE5EABBE8B8236A5EACF4197A0BFF
  gpuhost bundle verify bundle-2026-12 --format json | jq .packages
"""


def _size(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def create(
    inventory: Inventory,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Where the bundle goes (new or empty).",
                                      show_default=False)],
    limit: Limit = None,
    release: Annotated[str | None, typer.Option(
        "--release", metavar="CODENAME",
        help="The release of hosts whose variables do not say (bookworm, trixie, jammy, noble).")] = None,
    architecture: Annotated[str, typer.Option("--arch", metavar="ARCH", help="The hosts' dpkg architecture.")] = "amd64",
    base_status: Annotated[list[str] | None, typer.Option(
        "--base-status", metavar="RELEASE=FILE",
        help="A host's /var/lib/dpkg/status: what the hosts of RELEASE already have (repeat per release).")] = None,
    key_home: Annotated[Path | None, typer.Option(
        "--key-home", metavar="DIR",
        help="GnuPG home of the bundle key (default: $XDG_DATA_HOME/gpuhost/bundle-key).")] = None,
    distro_mirror: Annotated[str | None, typer.Option(
        "--distro-mirror", metavar="URL",
        help="The distribution archive to use instead of deb.debian.org or archive.ubuntu.com.")] = None,
    no_install_recommends: Annotated[bool, typer.Option(
        "--no-install-recommends", help="Leave out recommended packages (as hosts with that apt setting do).")] = False,
    output: Format = OutputFormat.table,
) -> None:
    """Make an offline bundle (help: CREATE_HELP)."""
    from gpuhost_cli import bundle_create, bundle_plan, bundle_signing, inputs

    with user_errors():
        path = inputs.check_inventory(inventory)
        bases = bundle_create.parse_base_status(base_status or [])
        hosts = bundle_plan.inventory_hosts(path, inputs.check_limit(limit))
        summary = bundle_create.create(out, hosts, release=release, architecture=architecture,
                                       key_home=key_home or bundle_signing.default_key_home(), base_status=bases,
                                       distro_mirror=distro_mirror, install_recommends=not no_install_recommends,
                                       progress=lambda line: typer.echo(f"gpuhost: {line}", err=True))
    if output is OutputFormat.json:
        print_json(summary)
        return
    _show_summary(summary, "made")


def _show_summary(summary: dict[str, Any], verb: str) -> None:
    typer.echo(f"Bundle {summary['bundle']} {verb}: {summary['packages']} packages, {_size(summary['size'])}.")
    for entry in summary["releases"]:
        typer.echo(f"  {entry['release']}: {entry['packages']} packages for {', '.join(entry['hosts'])}")
    typer.echo(f"Bundle key: {summary['key_fingerprint']}")


def verify(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The bundle's directory.", show_default=False)],
    fingerprint: Annotated[str | None, typer.Option(
        "--fingerprint", metavar="FINGERPRINT", help="The bundle key the bundle must be signed with.")] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Check a bundle (help: VERIFY_HELP)."""
    from gpuhost_cli import bundle_verify
    from gpuhost_cli.inputs import UserError

    try:
        summary = bundle_verify.verify(directory, fingerprint)
    except UserError as exc:
        if output is OutputFormat.json:
            print_json({"bundle": str(directory), "ok": False, "problems": getattr(exc, "problems", [exc.message])})
            raise typer.Exit(exc.code) from None
        with user_errors():
            raise
        raise  # pragma: no cover - user_errors always exits
    if output is OutputFormat.json:
        print_json(summary)
        return
    _show_summary(summary, "verified")


def register(app: typer.Typer) -> None:
    group = command_group(app, "bundle", "Offline bundles for air-gapped hosts.")
    group.command(short_help="Download the hosts' packages into a signed offline bundle.",
                  help=help_text(CREATE_HELP), epilog=help_text(CREATE_EPILOG))(create)
    group.command(short_help="Check a bundle's files and signatures.",
                  help=help_text(VERIFY_HELP), epilog=help_text(VERIFY_EPILOG))(verify)
