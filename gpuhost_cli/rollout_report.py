"""The rollout report of ``gpuhost provision``: per batch and per host, written as JSON.

Built from a run's :class:`~gpuhost_cli.events.RunModel`: the rollout gate's results say
which hosts each batch held and where the rollout stopped; each host's events say whether
it failed, was lost or was deferred, how many and which tasks changed something (in a
``--check`` run: would change), how long it took and the error. Reports are kept beside
the inventory, in ``.gpuhost/rollouts/``; the newest real (not ``--check``) one is
``.gpuhost/rollouts/last.json``, which ``--resume`` reads.
Those directories and files must be the user's own; they are written and read without
following links (:mod:`gpuhost_cli.safe_files`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gpuhost_cli import rollout, safe_files
from gpuhost_cli.events import RunModel
from gpuhost_cli.inputs import UserError

REPORT_VERSION = 1
RESUMABLE = (rollout.FAILED, rollout.UNREACHABLE, rollout.NOT_REACHED)
WHAT = "rollout reports"
LAST = "last.json"


def verify_warnings(run: Any) -> list[str]:
    """``check: detail`` of each verify check the host recorded as a warning."""
    checks = run.stats.get("gpuhost_verify") if run is not None else None
    if not isinstance(checks, list):
        return []
    return [f"{c.get('name')}: {c.get('detail') or ''}" for c in checks
            if isinstance(c, Mapping) and c.get("status") == "warning"]

def reports_dir(inventory: str | os.PathLike[str]) -> Path:
    """``<inventory directory>/.gpuhost/rollouts`` (the directory of an inventory file)."""
    path = Path(inventory).resolve()
    base = path if path.is_dir() else path.parent
    return base / ".gpuhost" / "rollouts"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _host_state(name: str, host: Any, stopped_before: set[str], batch: int | None, gate_state: str | None,
                left_out: bool = False) -> str:
    if name in stopped_before or host is None:
        return rollout.NOT_REACHED
    if host.unreachable:
        return rollout.UNREACHABLE
    if host.failed:
        return rollout.FAILED
    if host.deferred or gate_state == rollout.DEFERRED:
        return rollout.DEFERRED
    if batch is None:
        return rollout.CONVERGED if gate_state == rollout.CONVERGED or left_out else rollout.NOT_REACHED
    return rollout.OK


def _left_out_by_plan(name: str, host: Any, batch_targets: set[str]) -> bool:
    """Whether the converged-host plan left HOST out of the batches (nothing to do), for a
    run that ended before the final gate: no target of the batches' play, or, when no
    batch started, a host the plan found no work on."""
    if batch_targets:
        return name not in batch_targets
    plan = getattr(host, "plan", None)
    return isinstance(plan, Mapping) and not plan.get("needs_work")


def build(
    model: RunModel,
    *,
    inventory: str,
    batches: Sequence[int | str],
    max_fail_percentage: int,
    check: bool,
    started: datetime,
    ended: datetime,
    rc: int,
    limit: str | None = None,
    resumed_from: str | None = None,
) -> dict[str, Any]:
    """The report of one run of site.yml, as plain data."""
    gates = model.gates
    order: list[str] = []
    for gate in gates:
        for host in gate.get("states") or {}:
            if host not in order:
                order.append(host)
    for host in model.hosts:
        if host not in order:
            order.append(host)

    batch_of: dict[str, int] = {}
    batch_list: list[dict[str, Any]] = []
    stopped: str | None = None
    stopped_before: set[str] = set()
    summary: str | None = None
    for gate in gates:
        stage = gate.get("stage")
        if stage == "final":
            summary = gate.get("msg")
            continue
        if gate.get("stop"):
            stopped = gate.get("msg")
            stopped_before.update(gate.get("batch_hosts") or [])
            if stage == "preflight":
                stopped_before.update(h for h in order if h not in (gate.get("failed_hosts") or []))
            continue
        if stage == "batch":
            number = int(gate.get("batch") or len(batch_list) + 1)
            hosts = list(gate.get("batch_hosts") or [])
            for host in hosts:
                batch_of[host] = number
            batch_list.append({"number": number, "hosts": hosts, "started": gate.get("created")})

    # What the last gate read from the hosts' facts (the final one knows the deferred hosts).
    gate_states: dict[str, str] = next((g.get("states") or {} for g in reversed(gates) if g.get("states")), {})
    batch_play = next((g.get("play") for g in gates if g.get("stage") == "batch"), None)

    def rollout_times(run: Any) -> list[datetime] | None:
        """The host's first and last event in the batches' play."""
        return run.plays.get(batch_play) if run is not None and batch_play else None

    # A run that stopped has no final gate to tell the hosts done without a batch: those the
    # batches' play did not take (every host it takes is in the states of its gates).
    final = any(g.get("stage") == "final" for g in gates)
    batch_targets = {h for g in gates if g.get("stage") == "batch" for h in g.get("states") or {}}

    hosts: dict[str, dict[str, Any]] = {}
    for name in order:
        run = model.hosts.get(name)
        left_out = not final and run is not None and _left_out_by_plan(name, run, batch_targets)
        state = _host_state(name, run, stopped_before, batch_of.get(name), gate_states.get(name), left_out)
        times = rollout_times(run)
        elapsed = (times[1] - times[0]).total_seconds() if times else None
        reached = run is not None and state != rollout.NOT_REACHED
        hosts[name] = {
            "status": state,
            "batch": batch_of.get(name),
            "changed": run.changed if reached else 0,
            # In a --check run: the tasks that would change something.
            "changed_tasks": list(run.changed_tasks) if reached else [],
            "elapsed_s": round(elapsed, 1) if elapsed is not None and reached else None,
            "error": run.error if run is not None and state in (rollout.FAILED, rollout.UNREACHABLE) else None,
            "error_task": run.error_task if run is not None and state in (rollout.FAILED, rollout.UNREACHABLE) else None,
            "deferred": run.deferred if run is not None and state == rollout.DEFERRED else None,
            # The verify gate's warnings (a registry mirror that does not answer): the host passed.
            "warnings": verify_warnings(run) if reached else [],
        }

    for entry in batch_list:
        states = [hosts[h]["status"] for h in entry["hosts"] if h in hosts]
        bad = [h for h in entry["hosts"] if hosts.get(h, {}).get("status") in (rollout.FAILED, rollout.UNREACHABLE)]
        entry["failed"] = bad
        entry["status"] = "failed" if bad else ("deferred" if rollout.DEFERRED in states else "ok")
        times = [t for t in (rollout_times(model.hosts.get(h)) for h in entry["hosts"]) if t]
        entry["ended"] = _iso(max(t[1] for t in times)) if times else None
        entry["first_task"] = _iso(min(t[0] for t in times)) if times else None

    counts = {state: 0 for state in (rollout.OK, rollout.CONVERGED, rollout.FAILED, rollout.UNREACHABLE,
                                     rollout.DEFERRED, rollout.NOT_REACHED)}
    for host in hosts.values():
        counts[host["status"]] += 1
    not_reached = [h for h, v in hosts.items() if v["status"] == rollout.NOT_REACHED]
    if not stopped and not_reached and batch_list and batch_list[-1]["failed"]:
        # Ansible itself ends the batches when every host of one failed or was lost.
        last = batch_list[-1]
        stopped = rollout.stopped_message(last["number"], last["failed"], len(last["hosts"]), not_reached,
                                          "(Ansible stops a rollout when a whole batch fails)")
    lost_first = [h for h, v in hosts.items() if v["status"] == rollout.UNREACHABLE and v["batch"] is None]
    if not stopped and not batch_list and lost_first:
        # Every host was lost before the gate could run.
        stopped = rollout.unreached_message(lost_first, len(hosts), "(no host was left to go on with)")
    if stopped:
        outcome = "stopped"
    elif counts[rollout.FAILED] or counts[rollout.UNREACHABLE] or counts[rollout.NOT_REACHED] or rc != 0:
        outcome = "failed"
    else:
        outcome = "completed"

    return {
        "version": REPORT_VERSION,
        "inventory": str(inventory),
        "limit": limit,
        "resumed_from": resumed_from,
        "check": check,
        "batches_requested": list(batches),
        "max_fail_percentage": max_fail_percentage,
        "started": _iso(started),
        "ended": _iso(ended),
        "elapsed_s": round((ended - started).total_seconds(), 1),
        "rc": rc,
        "outcome": outcome,
        "stopped": stopped,
        "summary": summary,
        "counts": counts,
        "batches": batch_list,
        "hosts": hosts,
        "finish_deferred": rollout.finish_hint([h for h, v in hosts.items() if v["status"] == rollout.DEFERRED])
        if counts[rollout.DEFERRED] else None,
    }


def check_writable(inventory: str | os.PathLike[str], extra: str | os.PathLike[str] | None = None,
                   check: bool = False) -> Path:
    """Before a run: the reports directory can be used (created when missing), and last.json (which a
    real run replaces) and ``extra`` are no links; raise UserError otherwise. Returns the directory."""
    directory = reports_dir(inventory)
    with safe_files.own_directory(directory, WHAT, own=2) as dir_fd:
        if not check:
            safe_files.check_replaceable(dir_fd, directory, LAST, WHAT)
    if extra:
        safe_files.check_named(extra, "rollout report")
    return directory


def save(report: Mapping[str, Any], inventory: str | os.PathLike[str], extra: str | os.PathLike[str] | None = None) -> Path:
    """Write the report under reports_dir(inventory) (and to ``extra``); return its path.

    A real run also becomes ``last.json``, the report ``--resume`` reads; a check run does not.
    Each report is a new file (an exclusive create); last.json is replaced at once, through a
    temporary file of a name no one can guess. A link in the way is refused (UserError).
    """
    directory = reports_dir(inventory)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"rollout-{stamp}{'-check' if report.get('check') else ''}.json"
    data = (json.dumps(report, indent=2) + "\n").encode("utf-8")
    with safe_files.own_directory(directory, WHAT, own=2) as dir_fd:
        if not report.get("check"):
            safe_files.check_replaceable(dir_fd, directory, LAST, WHAT)
        safe_files.write_new(dir_fd, directory, name, data, WHAT)
        if not report.get("check"):
            safe_files.replace(dir_fd, directory, LAST, data, WHAT)
    if extra:
        safe_files.write_named(extra, data, "rollout report")
    return directory / name


def load_last(inventory: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The last real rollout's report, or a UserError that says there is none."""
    directory = reports_dir(inventory)
    path = directory / LAST
    try:
        with safe_files.own_directory(directory, WHAT, own=2, create=False) as dir_fd:
            data = json.loads(safe_files.read(dir_fd, directory, LAST, WHAT).decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"--resume: no earlier rollout of {inventory} is recorded ({path} is missing); "
                        f"run gpuhost provision without --resume") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"--resume: cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict):
        raise UserError(f"--resume: {path} is not a gpuhost rollout report")
    return path, data


def resume_hosts(report: Mapping[str, Any]) -> list[str]:
    """The hosts a resumed rollout runs: those that failed, were lost or were not reached."""
    return [name for name, host in report["hosts"].items() if host.get("status") in RESUMABLE]
