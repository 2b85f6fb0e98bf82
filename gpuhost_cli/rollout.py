"""Batched rollouts: the batch plan, and the gate that stops a rollout between batches.

site.yml provisions gpu_hosts in batches (``serial: gpuhost_rollout_batches``). Before each
batch, and once after the last, the ``gpuhost_rollout_gate`` action plugin calls
:func:`decide` with what every host recorded so far (facts set by the playbook):

* ``gpuhost_rollout_reached``: the host answered in the preflight (set after fact gathering);
* ``gpuhost_rollout_batch``: the number of the batch the host was rolled out in;
* ``gpuhost_rollout_done``: the host converged and passed the verification gate;
* ``docker_daemon_deferred``: the docker_daemon role left the host alone because a restart
  of Docker would have stopped running containers.

A host that started a batch and is neither done nor deferred failed, was rolled back or was
lost (unreachable): all three count as failed, which Ansible's own ``max_fail_percentage``
does not do for lost hosts. The gate stops the rollout when the failed share of a batch is
above ``gpuhost_rollout_max_fail_percentage``, naming the hosts and the fix.

Pure functions only: the action plugin, the command line and the tests share them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BATCHES: tuple[int | str, ...] = (1, "25%", "100%")
DEFAULT_MAX_FAIL_PERCENTAGE = 0

BATCHES_VARIABLE = "gpuhost_rollout_batches"
MAX_FAIL_VARIABLE = "gpuhost_rollout_max_fail_percentage"

# Host states, as the gate and the rollout report name them.
OK = "ok"
FAILED = "failed"
UNREACHABLE = "unreachable"
DEFERRED = "deferred"
NOT_REACHED = "not_reached"
#: Done without a batch: the plan found nothing to do on the host (playbooks/provision.yml).
CONVERGED = "converged"


class RolloutError(ValueError):
    """A batch list or a failure percentage that cannot be used; the message says why."""


MAX_BATCH_HOSTS = 1_000_000
MAX_BATCHES = 100

# Only the digits 0-9 (and ASCII spaces), not "²" or "٣", which str.isdigit() and int() take.
_COUNT = re.compile(r"-?[0-9]+", re.ASCII)
_SHARE = re.compile(r"(-?[0-9]+)\s*%", re.ASCII)
_PERCENT = re.compile(r"([0-9]+)\s*%?", re.ASCII)


def _shown(value: Any, width: int = 40) -> str:
    """``repr(value)``, cut short: error messages stay one readable line whatever was typed."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = f"<a number of {value.bit_length()} bits>" if isinstance(value, int) else "<value>"
    return text if len(text) <= width else text[:width - 5] + "…" + text[-4:]


def parse_batches(value: Any, source: str = BATCHES_VARIABLE) -> list[int | str]:
    """A list of batch sizes: host counts (``1``) and shares of the fleet (``"25%"``).

    Takes a list, or a comma-separated string as typed on the command line
    (``1,25%,100%``). Counts must be whole numbers of at least 1, written with the digits
    0-9; shares from 1% to 100%. Anything else raises RolloutError, whatever the input.
    """
    if isinstance(value, str):
        items: Sequence[Any] = [part.strip() for part in value.split(",", MAX_BATCHES)] if value.strip() else []
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise RolloutError(f"{source} must be a list such as [1, \"25%\", \"100%\"], got {_shown(value)}")
    if not items:
        raise RolloutError(f"{source} is empty; give at least one batch size, such as [\"100%\"]")
    if len(items) > MAX_BATCHES:
        raise RolloutError(f"{source} has more than {MAX_BATCHES} batch sizes; the last size repeats until "
                           f"every host has a batch, so a short list such as 1,10%,100% is enough")
    batches: list[int | str] = []
    for item in items:
        batches.append(_batch_size(item, source))
    return batches


def _count(count: int, source: str, hint: str) -> int:
    if count < 1:
        raise RolloutError(f"{source}: {count} hosts is not a batch; use {hint} (at least 1)")
    if count > MAX_BATCH_HOSTS:
        raise RolloutError(f"{source}: {_shown(count)} hosts is more than a batch can hold (at most "
                           f"{MAX_BATCH_HOSTS}); use \"100%\" for all the hosts")
    return count


def _batch_size(item: Any, source: str) -> int | str:
    hint = "a host count such as 1 or a share of the hosts such as \"25%\""
    if isinstance(item, bool):
        raise RolloutError(f"{source}: {item!r} is not {hint}")
    if isinstance(item, int):
        return _count(item, source, hint)
    if not isinstance(item, str):
        raise RolloutError(f"{source}: {_shown(item)} is not {hint}")
    text = item.strip()
    if not text:
        raise RolloutError(f"{source}: an empty batch size (two commas in a row, or a comma at an end); use {hint}")
    if _COUNT.fullmatch(text):
        if len(text.lstrip("-").lstrip("0")) > len(str(MAX_BATCH_HOSTS)):  # int() refuses 4,300 digits and more
            raise RolloutError(f"{source}: {_shown(text)} is not a batch size (at most {MAX_BATCH_HOSTS} "
                               f"hosts); use {hint}")
        return _count(int(text), source, hint)
    share = _SHARE.fullmatch(text)
    if share:
        number = share.group(1)
        if number.startswith("-") or len(number.lstrip("0")) > 3 or not 1 <= int(number) <= 100:
            raise RolloutError(f"{source}: {_shown(text)} is not a share from 1% to 100%")
        return f"{int(number)}%"
    if text.endswith("%"):
        raise RolloutError(f"{source}: {_shown(text)} is not a share from 1% to 100% (write it as 25%)")
    raise RolloutError(f"{source}: {_shown(item)} is not {hint}")


def parse_max_fail(value: Any, source: str = MAX_FAIL_VARIABLE) -> int:
    """A failure percentage from 0 (no failed host allowed) to 100: a whole number, as 10 or "10%"."""
    wrong = f"{source} must be a whole number from 0 to 100, got {_shown(value)}"
    if isinstance(value, bool):
        raise RolloutError(wrong)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        match = _PERCENT.fullmatch(value.strip())
        if not match:
            raise RolloutError(wrong)
        digits = match.group(1).lstrip("0") or "0"
        if len(digits) > 3:
            raise RolloutError(f"{source} must be from 0 to 100, got {_shown(value.strip())}")
        number = int(digits)
    else:
        raise RolloutError(wrong)
    if not 0 <= number <= 100:
        raise RolloutError(f"{source} must be from 0 to 100, got {_shown(number)}")
    return number


def batch_sizes(host_count: int, batches: Sequence[int | str]) -> list[int]:
    """How many hosts each batch takes, as Ansible's ``serial`` splits ``host_count`` hosts.

    A share is taken of all the hosts (rounded down, at least 1); the last size repeats
    until every host has a batch.
    """
    sizes: list[int] = []
    left = host_count
    index = 0
    while left > 0:
        item = batches[min(index, len(batches) - 1)]
        if isinstance(item, str):
            size = int(int(item[:-1]) / 100.0 * host_count) or 1
        else:
            size = item
        size = min(size, left)
        sizes.append(size)
        left -= size
        index += 1
    return sizes


def plan(hosts: Sequence[str], batches: Sequence[int | str]) -> list[list[str]]:
    """The hosts of each batch, in order."""
    out: list[list[str]] = []
    start = 0
    for size in batch_sizes(len(hosts), batches):
        out.append(list(hosts[start:start + size]))
        start += size
    return out


def host_state(facts: Mapping[str, Any]) -> str:
    """ok, converged (done without a batch), deferred, failed (also rolled back or lost) or
    not_reached, from a host's facts."""
    if _true(facts.get("docker_daemon_deferred")):
        return DEFERRED
    if _true(facts.get("gpuhost_rollout_done")):
        return OK if facts.get("gpuhost_rollout_batch") is not None else CONVERGED
    if facts.get("gpuhost_rollout_batch") is not None:
        return FAILED
    return NOT_REACHED


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "yes", "1"))


def _batch_of(facts: Mapping[str, Any]) -> int | None:
    value = facts.get("gpuhost_rollout_batch")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _percent(part: int, whole: int) -> int:
    return math.ceil(100 * part / whole) if whole else 0


def host_list(hosts: Sequence[str], limit: int = 10) -> str:
    """HOSTS for a message: the first LIMIT, then how many more."""
    shown = ", ".join(hosts[:limit])
    return shown + (f" and {len(hosts) - limit} more" if len(hosts) > limit else "")


@dataclass
class Decision:
    """What the gate decided: go on (``stop`` is False) or stop, and why."""

    stage: str
    batch: int
    stop: bool = False
    msg: str = ""
    checked_batch: int | None = None
    failed: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "batch": self.batch, "stop": self.stop, "msg": self.msg,
            "checked_batch": self.checked_batch, "failed_hosts": self.failed,
            "batch_hosts": self.hosts, "states": self.states,
        }


def finish_hint(deferred: Sequence[str]) -> str:
    """How an operator finishes deferred hosts: the docker_daemon role's (a daemon.json change that
    needs a restart) and the docker role's (an engine upgrade across a minor release)."""
    return (
        f"Deferred (Docker would have to restart with containers running; nothing was changed): "
        f"{host_list(deferred)}. To finish them: stop or drain their containers and run again, or "
        f"set docker_daemon_live_restore: true (a daemon.json change), or accept the interruption with "
        f"--limit {','.join(deferred)} -e docker_daemon_allow_disruption=true (a daemon.json change) or "
        f"-e docker_allow_disruption=true (an engine upgrade); each host's DEFERRED line says which."
    )


def decide(
    stage: str,
    targets: Sequence[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    max_fail_percentage: int,
    batch_hosts: Sequence[str] = (),
    batches: Sequence[int | str] | None = None,
) -> Decision:
    """The gate's decision at ``stage``: "preflight", "batch" (before a batch) or "final".

    ``targets`` are the play's hosts in order; ``hostvars`` each host's facts;
    ``batch_hosts`` the hosts of the batch about to start (stage "batch"); ``batches`` the
    batch sizes the inventory asks for, checked against the batch Ansible formed.
    """
    facts = {host: hostvars.get(host, {}) for host in targets}
    states = {host: host_state(facts[host]) for host in targets}

    if stage == "preflight":
        lost = [h for h in targets if not _true(facts[h].get("gpuhost_rollout_reached"))]
        decision = Decision(stage, 0, failed=lost, states=states)
        if lost and _percent(len(lost), len(targets)) > max_fail_percentage:
            decision.stop = True
            decision.msg = unreached_message(
                lost, len(targets), f"({_percent(len(lost), len(targets))}% > {MAX_FAIL_VARIABLE} {max_fail_percentage}%)")
        else:
            decision.msg = f"{len(targets) - len(lost)} of {len(targets)} hosts answered"
        return decision

    numbered = [b for b in (_batch_of(facts[h]) for h in targets) if b is not None]
    last = max(numbered) if numbered else 0
    decision = Decision(stage, last + 1 if stage == "batch" else last, hosts=list(batch_hosts), states=states)

    if last:
        members = [h for h in targets if _batch_of(facts[h]) == last]
        failed = [h for h in members if states[h] == FAILED]
        decision.checked_batch = last
        decision.failed = failed
        share = _percent(len(failed), len(members))
        if stage == "batch" and failed and share > max_fail_percentage:
            later = [h for h in targets if states[h] == NOT_REACHED and h not in batch_hosts] + list(batch_hosts)
            decision.stop = True
            decision.msg = stopped_message(
                last, failed, len(members), later,
                f"({share}% > {MAX_FAIL_VARIABLE} {max_fail_percentage}%)")
            return decision

    if stage == "batch" and batches is not None:
        expected = plan(targets, batches)
        wanted = expected[decision.batch - 1] if decision.batch <= len(expected) else []
        if list(batch_hosts) != wanted:
            decision.stop = True
            decision.msg = (
                f"Batch {decision.batch} holds {host_list(list(batch_hosts))}, but {BATCHES_VARIABLE} "
                f"({_json_list(batches)}) asks for {host_list(wanted) or 'no more hosts'}. Ansible takes a play's batch sizes "
                f"(serial) from extra vars only, not from the inventory: pass "
                f"-e '{{\"{BATCHES_VARIABLE}\": {_json_list(batches)}}}' (gpuhost provision does this for you)."
            )
            return decision

    if stage == "final":
        decision.msg = summary(targets, states)
    else:
        decision.msg = f"batch {decision.batch}: {host_list(list(batch_hosts))}"
    return decision


def unreached_message(lost: Sequence[str], total: int, why: str) -> str:
    """Why a rollout stopped before any host changed: hosts that did not answer."""
    return (
        f"Rollout stopped before any host changed: {len(lost)} of {total} hosts could not be reached {why}: "
        f"{host_list(list(lost))}. Bring them back, or leave them out with --limit '!{lost[0]}', or allow "
        f"failures with --max-fail (gpuhost provision) / -e {MAX_FAIL_VARIABLE}=N."
    )


def stopped_message(batch: int, failed: Sequence[str], members: int, later: Sequence[str], why: str) -> str:
    """Why a rollout stopped after ``batch``, which hosts it left, and how to finish it."""
    return (
        f"Rollout stopped after batch {batch}: {len(failed)} of {members} hosts failed, were rolled back or "
        f"were lost {why}: {host_list(list(failed))}. "
        + (f"Not rolled out: {host_list(list(later))}. " if later else "")
        + "Fix the failed hosts (the run above says why), then finish with: gpuhost provision --resume, "
          f"or ansible-playbook site.yml --limit {','.join(list(failed) + list(later))}."
    )


def _json_list(batches: Sequence[int | str]) -> str:
    return "[" + ", ".join(str(b) if isinstance(b, int) else f"\"{b}\"" for b in batches) + "]"


def summary(targets: Sequence[str], states: Mapping[str, str]) -> str:
    """One paragraph: how many hosts are done, which failed, which were deferred or not reached."""
    by_state: dict[str, list[str]] = {}
    for host in targets:
        by_state.setdefault(states[host], []).append(host)
    done = len(by_state.get(OK, [])) + len(by_state.get(CONVERGED, []))
    parts = [f"Rollout: {done} of {len(targets)} hosts done"
             + (f" ({len(by_state[CONVERGED])} already converged, nothing to do)." if by_state.get(CONVERGED) else ".")]
    if by_state.get(FAILED):
        parts.append(f"Failed, rolled back or lost: {host_list(by_state[FAILED])}.")
    if by_state.get(NOT_REACHED):
        parts.append(f"Not rolled out: {host_list(by_state[NOT_REACHED])}.")
    if by_state.get(DEFERRED):
        parts.append(finish_hint(by_state[DEFERRED]))
    return " ".join(parts)
