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
    finish,
    live_run,
    register_command,
    show,
    stdout_is_tty,
    user_errors,
)

HELP = """\
Turn the inventory's gpu_hosts into GPU container hosts (runs site.yml).

Checks the Ansible version, that every host answers and every host's variables first;
nothing changes on any host when that fails. Then rolls out in batches (default: one
canary host, then a quarter of the hosts, then the rest): installs the NVIDIA Container
Toolkit and Docker, adds the docker_users to the docker group, merges the daemon.json
settings, and runs the checks of gpuhost verify. A host that failed, was rolled back or
was lost counts as failed; when more than --max-fail percent of a batch failed (default
0), the rollout stops before the next batch. Hosts whose Docker restart would stop running
containers are deferred: left as they were and listed with how to finish them.

Shows each host's progress while it runs, then the rollout report per batch and host,
which is also written as JSON beside the inventory (.gpuhost/rollouts/), with the tasks
that changed something on each host (with --check: would change). With --diff, the
changes to files follow, by host and task.
"""

EPILOG = """\
Examples:

  gpuhost provision -i inventories/prod --check --diff    # what would change
  gpuhost provision -i inventories/prod                   # do it
  gpuhost provision -i inventories/prod --limit gpu-node-1 --tags daemon
  gpuhost provision -i inventories/prod -e @overrides.yml -e docker_users='[alice, bob]'
  gpuhost provision -i inventories/prod --check --diff -e '{"docker_daemon_options": {"bip": "10.98.0.1/24"}}'
  gpuhost provision -i inventories/prod --batches 1,10%,100% --max-fail 5
  gpuhost provision -i inventories/prod --resume          # only the hosts the last rollout did not finish
  gpuhost provision -i inventories/prod --format json | jq .rollout.hosts

The exit status is Ansible's: 0 when every host succeeded or was deferred.
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
        typer.Option("--extra-vars", "-e", metavar="@FILE|KEY=VALUE|{JSON}",
                     help="Extra variables, as ansible-playbook takes them: key=value pairs (several in "
                          "one argument; an unquoted value is read as YAML: 3, true, [a, b]; a quoted one "
                          "is text), "
                          "@file.yml (a YAML or JSON mapping) or a YAML or JSON mapping such as "
                          "'{\"docker_daemon_options\": {\"bip\": \"10.98.0.1/24\"}}'. Repeat to add more; "
                          "a later one wins."),
    ] = None,
    forks: Annotated[
        int | None,
        typer.Option("--forks", min=1, metavar="N", help="Hosts worked on at once (default: ansible.cfg's 20)."),
    ] = None,
    batches: Annotated[
        str | None,
        typer.Option("--batches", metavar="SIZES",
                     help="Batch sizes, comma-separated host counts and percentages of the hosts "
                          "(default: gpuhost_rollout_batches, 1,25%,100%)."),
    ] = None,
    max_fail: Annotated[
        str | None,
        typer.Option("--max-fail", metavar="PERCENT",
                     help="Largest share of a batch that may fail before the rollout stops, 0 to 100 "
                          "(default: gpuhost_rollout_max_fail_percentage, 0)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Run only the hosts the last rollout of this inventory left failed, "
                                      "unreachable or not reached."),
    ] = False,
    report: Annotated[
        str | None,
        typer.Option("--report", metavar="FILE", help="Also write the rollout report (JSON) to FILE."),
    ] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Run site.yml on the inventory's gpu_hosts (help: HELP)."""
    from gpuhost_cli import inputs

    with user_errors():
        path = inputs.check_inventory(inventory)
        limit = inputs.check_limit(limit)
        variables = inputs.parse_extra_vars(extra_vars)

    from datetime import datetime, timezone

    from gpuhost_cli import rollout_report, runner, views
    from gpuhost_cli.rollout_lock import rollout_lock

    resumed_from = None
    with user_errors():
        settings = rollout_options(path, variables, batches, max_fail)
        if resume:
            if limit:
                raise inputs.UserError("--resume picks the hosts itself (those the last rollout did not finish); "
                                       "leave out --limit")
            report_path, last = rollout_report.load_last(path)
            hosts = rollout_report.resume_hosts(last)
            if not hosts:
                show(views.Wrapped(f"Nothing to resume: the last rollout ({last.get('started')}) finished every "
                                   f"host it was given. {last.get('finish_deferred') or ''}".strip()))
                raise typer.Exit(0)
            limit, resumed_from = ",".join(hosts), str(report_path)
        # The report is written after the run: a directory it cannot use is refused before the run.
        try:
            rollout_report.check_writable(path, report, check)
        except OSError as exc:
            raise inputs.UserError(f"cannot write the rollout report under {rollout_report.reports_dir(path)}: "
                                   f"{exc.strerror or exc}", 1) from None
    variables.update(settings)

    show_live = output is OutputFormat.table and stdout_is_tty()
    started = datetime.now(timezone.utc)
    # One rollout per inventory: a second one stops here, before it connects to any host.
    with user_errors(), rollout_lock(path), live_run(show_live, "gpuhost provision") as on_event:
        result = runner.run_playbook(
            "site", path, limit=limit, tags=tags, check=check, diff=diff, forks=forks,
            extravars=variables, on_event=on_event,
        )
    check_matched(result, inventory, limit)

    rollout = rollout_report.build(
        result.model, inventory=str(path), batches=settings["gpuhost_rollout_batches"],
        max_fail_percentage=settings["gpuhost_rollout_max_fail_percentage"], check=check, started=started,
        ended=datetime.now(timezone.utc), rc=result.rc, limit=limit, resumed_from=resumed_from)
    with user_errors():
        try:
            saved = rollout_report.save(rollout, path, report)
        except OSError as exc:
            raise inputs.UserError(f"cannot write the rollout report: {exc}", 1) from None

    title = "gpuhost provision" + (" (check mode: nothing was changed)" if check else "")

    def show_table() -> None:
        diffs = {name: host.diffs for name, host in sorted(result.model.hosts.items())}
        show(views.rollout_table(rollout, title=title), *views.diff_lines(diffs, check),
             views.whole(f"Report: {saved}", style="dim"))

    finish(result, output, result.model.to_dict(), show_table,
           extra={"rollout": rollout, "report_file": str(saved)})


def rollout_options(inventory, variables: dict, batches: str | None, max_fail: str | int | None) -> dict:
    """gpuhost_rollout_batches and gpuhost_rollout_max_fail_percentage for this run, checked.

    From the command line's --batches and --max-fail, else from -e, else from the
    inventory, else the defaults; passed to Ansible as extra vars, the only variables a
    play's batch sizes (serial) can use.
    """
    from gpuhost_cli import inputs, rollout, runner

    found = {}
    if batches is None or max_fail is None:
        found = {k: v for k, v in variables.items() if k in (rollout.BATCHES_VARIABLE, rollout.MAX_FAIL_VARIABLE)}
        if len(found) < 2:
            found = {**inputs.inventory_rollout_settings(inventory, runner.ansible_envvars()), **found}
    try:
        return {
            rollout.BATCHES_VARIABLE: rollout.parse_batches(batches, "--batches") if batches is not None
            else rollout.parse_batches(found.get(rollout.BATCHES_VARIABLE, list(rollout.DEFAULT_BATCHES))),
            rollout.MAX_FAIL_VARIABLE: rollout.parse_max_fail(max_fail, "--max-fail") if max_fail is not None
            else rollout.parse_max_fail(found.get(rollout.MAX_FAIL_VARIABLE, rollout.DEFAULT_MAX_FAIL_PERCENTAGE)),
        }
    except rollout.RolloutError as exc:
        raise inputs.UserError(str(exc)) from None


def register(app: typer.Typer) -> None:
    register_command(app, provision, "Provision the GPU hosts (runs site.yml).", HELP, EPILOG)
