"""A per-host model of an Ansible run, built from ansible-runner's event stream.

ansible-runner hands every event Ansible's callback emits to an ``event_handler`` as a dict:

    {"event": "runner_on_failed", "counter": 12, "created": "2025-01-01T10:00:03.5",
     "stdout": "fatal: [gpu1]: FAILED! ...",
     "event_data": {"host": "gpu1", "task": "Docker | Install", "task_action": "apt",
                    "res": {"msg": "...", "changed": false}, "ignore_errors": null, ...}}

:class:`RunModel` folds these into one :class:`HostRun` per host: the task it is running,
its ok/changed/failed/unreachable/skipped counts, when it started and ended, the first
error that stopped it, whether the docker_daemon role deferred it, what it recorded
with ``set_stats``, the tasks that changed something and the file diffs they reported
(``--diff``). It is pure (no I/O, no ansible-runner import), so the command line's
progress view and summaries, and the tests, share it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["DEFERRED_PREFIX", "GATE_ACTIONS", "HostRun", "RunModel", "diff_text", "result_diffs", "result_message"]

#: The docker_daemon role reports a host it leaves alone with a debug message starting so.
DEFERRED_PREFIX = "DEFERRED "

#: The rollout gate of site.yml (gpuhost_cli/ansible_plugins/action/gpuhost_rollout_gate.py).
GATE_ACTIONS = frozenset(("gpuhost_rollout_gate",))

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_UNMATCHED = re.compile(r"Could not match supplied host pattern, ignoring: (\S+)")
#: The groups playbooks/provision.yml forms from the converged-host plan.
PLAN_GROUPS = ("gpuhost_needs_work", "gpuhost_converged")
#: The module of the converged-host plan.
PLAN_ACTIONS = frozenset(("gpuhost_host_state",))
_PARSE_FAILED = re.compile(r"^\[WARNING\]: Failed to parse inventory with '[^']+' plugin: (.+)$")
_LINE_COLUMN = re.compile(r":\d+:\d+$")
_NO_HOSTS = ("leaves us with no hosts to target", "No hosts matched, nothing to do")
_LEADS = ("Task failed: ", "Action failed: ")
#: Lines of context around each change of a diff, as ansible-playbook --diff prints them.
DIFF_CONTEXT = 3
#: Keys of a diff entry that say why Ansible left the file's text out.
_DIFF_SKIPPED = (
    ("dst_binary", "diff skipped: destination file appears to be binary"),
    ("src_binary", "diff skipped: source file appears to be binary"),
    ("dst_larger", "diff skipped: destination file size is greater than {}"),
    ("src_larger", "diff skipped: source file size is greater than {}"),
)
_STATS_FIELDS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


def _plain(text: Any) -> str:
    return _ANSI.sub("", str(text)).replace("\r", "")


def _last_lines(text: Any, count: int = 3) -> str:
    lines = [line.strip() for line in _plain(text).splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def _strip_leads(text: str) -> str:
    changed = True
    while changed:
        changed = False
        for lead in _LEADS:
            if text.startswith(lead):
                text = text[len(lead):]
                changed = True
    return text


def result_message(res: Mapping[str, Any] | None) -> str:
    """The words that say why a task result failed, from Ansible's result dict.

    ``msg`` first (without Ansible's "Task failed: " lead); for a loop the first failed
    item's; for a module crash or a command's non-zero exit, the end of what it wrote to
    stderr as well.
    """
    if not isinstance(res, Mapping):
        return "failed (no details)"
    items = res.get("results")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, Mapping) and (item.get("failed") or item.get("unreachable")):
                return result_message(item)
    modules = res.get("failed_modules")
    if isinstance(modules, Mapping):
        # Fact gathering: "The following modules failed to execute: ..." says less than
        # the first module's own error.
        for name, module_res in modules.items():
            if isinstance(module_res, Mapping) and module_res.get("msg"):
                return f"{name}: {result_message(module_res)}"
    msg = res.get("msg")
    text = _strip_leads(_plain(msg).strip()) if msg not in (None, "") else ""
    stderr = res.get("module_stderr") or res.get("stderr") or ""
    if text.startswith("MODULE FAILURE") or text == "non-zero return code" or not text:
        tail = _last_lines(stderr) or _last_lines(res.get("module_stdout") or res.get("stdout") or "")
        if not text:
            text = tail or (f"rc {res['rc']}" if "rc" in res else "failed (no message)")
        elif tail:
            text = f"{text.splitlines()[0]}: {tail}"
        if "rc" in res and "rc " not in text:
            text = f"{text} (rc {res['rc']})"
    return text


def _diff_side(value: Any) -> list[str]:
    """One side of a diff as lines: a mapping as Ansible serialises it (sorted, indented JSON),
    a last line without its newline marked as ``diff`` marks it."""
    if isinstance(value, Mapping):
        value = json.dumps(value, sort_keys=True, indent=4, separators=(",", ": "), default=str) + "\n"
    lines = ("" if value is None else str(value)).splitlines(True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def diff_text(diff: Mapping[str, Any]) -> str:
    """One entry of a result's ``diff`` as the unified diff ``ansible-playbook --diff`` prints
    (without colour): before/after with their headers, or the module's ``prepared`` text."""
    parts = [message.format(diff[key]) + "\n" for key, message in _DIFF_SKIPPED if key in diff]
    if "before" in diff and "after" in diff:
        before = f"before: {diff['before_header']}" if "before_header" in diff else "before"
        after = f"after: {diff['after_header']}" if "after_header" in diff else "after"
        parts.extend(difflib.unified_diff(_diff_side(diff["before"]), _diff_side(diff["after"]),
                                          fromfile=before, tofile=after, n=DIFF_CONTEXT))
    if diff.get("prepared"):
        prepared = str(diff["prepared"])
        parts.append(prepared if prepared.endswith("\n") else prepared + "\n")
    return "".join(parts)


def _censored(res: Mapping[str, Any]) -> bool:
    """Whether the result is one a task marked no_log (Ansible hides all but its counts)."""
    return bool(res.get("_ansible_no_log")) or "censored" in res


def _changed_result(res: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether a task's result changed something. A no_log result keeps only that it was
    hidden; Ansible's own line for it ("changed: [host]") still tells."""
    if _censored(res) and "changed" not in res:
        return _plain(event.get("stdout") or "").lstrip().startswith("changed:")
    return bool(res.get("changed"))


def result_diffs(res: Any, label: Any = None) -> list[dict[str, Any]]:
    """The file diffs a task result reports for a change: for a loop, each changed item's.

    Each is ``{"item", "before_header", "after_header", "diff"}`` with the unified diff text.
    A result of a no_log task, or of a loop item marked no_log, gives none; so does one that
    changed nothing (as ansible-playbook shows diffs only of changes).
    """
    if not isinstance(res, Mapping) or _censored(res):
        return []
    items = res.get("results")
    if isinstance(items, list):
        return [entry for item in items if isinstance(item, Mapping)
                for entry in result_diffs(item, item.get("_ansible_item_label", item.get("item")))]
    diffs = res.get("diff")
    if not res.get("changed") or not isinstance(diffs, (Mapping, list)):
        return []
    found = []
    for diff in diffs if isinstance(diffs, list) else [diffs]:
        text = diff_text(diff) if isinstance(diff, Mapping) else ""
        if text.strip():
            found.append({"item": None if label is None else str(label),
                          "before_header": diff.get("before_header"), "after_header": diff.get("after_header"),
                          "diff": text})
    return found


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


@dataclass
class HostRun:
    """What one host did in a run."""

    name: str
    task: str | None = None
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    error: str | None = None
    error_task: str | None = None
    deferred: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The tasks that changed something (in check mode: would have), in order; a name twice
    #: when two tasks of that name changed something.
    changed_tasks: list[str] = field(default_factory=list)
    #: The file diffs of those tasks (with ``--diff``): ``{"task", "item", "before_header",
    #: "after_header", "diff"}``, in order.
    diffs: list[dict[str, Any]] = field(default_factory=list)
    #: What the converged-host plan found: the roles with work, and why.
    plan: dict[str, Any] | None = None
    done: bool = False
    #: The time of the host's first and last event in each play, by the play's name.
    plays: dict[str, list[datetime]] = field(default_factory=dict)
    _pending_failure: str | None = field(default=None, repr=False)
    _item_errors: dict[str, str] = field(default_factory=dict, repr=False)
    _changed_keys: set[str] = field(default_factory=set, repr=False)

    @property
    def elapsed(self) -> float | None:
        """Seconds from the first task to the last result, None before the first task."""
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())

    @property
    def status(self) -> str:
        """unreachable, failed, deferred, changed, ok, or running (no recap yet)."""
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        if self.deferred:
            return "deferred"
        if not self.done:
            return "running"
        return "changed" if self.changed else "ok"

    @property
    def succeeded(self) -> bool:
        return not (self.unreachable or self.failed)

    def to_dict(self) -> dict[str, Any]:
        elapsed = self.elapsed
        return {
            "status": self.status,
            "ok": self.ok,
            "changed": self.changed,
            "failed": self.failed,
            "unreachable": self.unreachable,
            "skipped": self.skipped,
            "rescued": self.rescued,
            "ignored": self.ignored,
            "deferred": self.deferred is not None,
            "deferred_message": self.deferred,
            "elapsed": round(elapsed, 3) if elapsed is not None else None,
            "error": self.error,
            "error_task": self.error_task,
            "changed_tasks": list(self.changed_tasks),
            "diffs": [dict(diff) for diff in self.diffs],
            "plan": self.plan,
        }


class RunModel:
    """Every host of a run, updated one ansible-runner event at a time (:meth:`handle`)."""

    def __init__(self, keep_results: Iterable[str] = ()) -> None:
        #: Task actions (module names) whose last result each host keeps in HostRun.results.
        self.keep_results = frozenset(keep_results)
        self.hosts: dict[str, HostRun] = {}
        self.stats_seen = False
        self.finished = False
        self.unmatched_patterns: list[str] = []
        self.plays_without_hosts: list[str] = []
        self.no_hosts_matched = False
        self.messages: list[str] = []
        self.artifact_data: dict[str, Any] = {}
        #: The rollout gate's results (batches, stops, the summary), in order, each with
        #: the time it was decided as ``created``.
        self.gates: list[dict[str, Any]] = []
        self._play_pattern: str | None = None

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]], keep_results: Iterable[str] = ()) -> RunModel:
        model = cls(keep_results)
        for event in events:
            model.handle(event)
        return model

    # ---- Views ---------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """The run reached its recap and no host failed or was unreachable."""
        return self.stats_seen and bool(self.hosts) and all(h.succeeded for h in self.hosts.values())

    def errors(self) -> list[str]:
        """Ansible's own error lines (an unreadable playbook or inventory, no hosts...)."""
        found = []
        for text in self.messages:
            for line in text.splitlines():
                line = line.strip()
                if line.startswith("[ERROR]:"):
                    found.append(_strip_leads(line[len("[ERROR]:"):].strip()))
                elif line.startswith("ERROR!"):
                    found.append(_strip_leads(line[len("ERROR!"):].strip()))
        return found

    def inventory_problem(self) -> str | None:
        """Why Ansible could not read the inventory (its first parse error and where), or None."""
        reason = None
        origin = None
        unreadable = None
        for text in self.messages:
            for line in text.splitlines():
                line = line.strip()
                match = _PARSE_FAILED.match(line)
                if match and reason is None:
                    reason = match.group(1)
                elif line.startswith("Origin: ") and origin is None and _LINE_COLUMN.search(line):
                    origin = line[len("Origin: "):]
                elif line.startswith("[WARNING]: Unable to parse ") and unreadable is None:
                    unreadable = line[len("[WARNING]: "):]
        if reason is None and unreadable is None:
            return None
        if reason is None:
            return unreadable
        return f"{reason} ({origin})" if origin else reason

    def failed_hosts(self) -> list[HostRun]:
        return [h for h in self.hosts.values() if not h.succeeded]

    def to_dict(self) -> dict[str, Any]:
        return {name: host.to_dict() for name, host in sorted(self.hosts.items())}

    # ---- Folding events ------------------------------------------------------------------

    def host(self, name: str) -> HostRun:
        if name not in self.hosts:
            self.hosts[name] = HostRun(name)
        return self.hosts[name]

    def handle(self, event: Mapping[str, Any]) -> bool:
        """Fold one event in. Returns True, as ansible-runner's event_handler must to keep it."""
        kind = event.get("event")
        data = event.get("event_data") or {}
        if not isinstance(data, Mapping):
            data = {}
        created = _time(event.get("created"))
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(data, created, event)
        return True

    def _touch(self, data: Mapping[str, Any], created: datetime | None) -> HostRun | None:
        name = data.get("host")
        if not name:
            return None
        host = self.host(str(name))
        if created is not None:
            if host.started is None:
                host.started = created
            host.ended = created
            play = data.get("play")
            if play:
                host.plays.setdefault(str(play), [created, created])[1] = created
        return host

    def _keep(self, host: HostRun, data: Mapping[str, Any], created: datetime | None = None) -> None:
        action = data.get("task_action")
        res = data.get("res")
        if action in GATE_ACTIONS and isinstance(res, Mapping) and "stage" in res:
            self.gates.append({**res, "created": created.isoformat() if created else None,
                               "play": data.get("play")})
        if action in self.keep_results and isinstance(res, Mapping):
            host.results[str(action)] = res
        if action in PLAN_ACTIONS and isinstance(res, Mapping) and "needs_work" in res:
            host.plan = {"needs_work": list(res.get("needs_work") or []), "drift": dict(res.get("drift") or {})}

    def _continued(self, host: HostRun) -> None:
        """A host that runs another task after a failure had that failure rescued."""
        if host._pending_failure is not None:
            host.failed = max(0, host.failed - 1)
            host.rescued += 1
            if host.error_task == host._pending_failure:
                host.error = None
                host.error_task = None
            host._pending_failure = None

    def _on_playbook_on_play_start(self, data, created, event) -> None:
        self._play_pattern = data.get("pattern") or data.get("play_pattern") or data.get("name")

    def _on_playbook_on_no_hosts_matched(self, data, created, event) -> None:
        pattern = data.get("play_pattern") or self._play_pattern or ""
        self.plays_without_hosts.append(str(pattern))

    def _on_runner_on_start(self, data, created, event) -> None:
        host = self._touch(data, created)
        if host is not None:
            host.task = data.get("task") or host.task

    def _on_runner_on_ok(self, data, created, event) -> None:
        host = self._touch(data, created)
        if host is None:
            return
        self._continued(host)
        self._keep(host, data, created)
        res = data.get("res") or {}
        host.ok += 1
        if isinstance(res, Mapping):
            if _changed_result(res, event):
                host.changed += 1
                self._changed(host, data, res)
            msg = res.get("msg")
            if isinstance(msg, str) and msg.startswith(DEFERRED_PREFIX):
                host.deferred = msg[len(DEFERRED_PREFIX):].strip()
            stats = res.get("ansible_stats")
            if isinstance(stats, Mapping) and isinstance(stats.get("data"), Mapping):
                if stats.get("aggregate", True):
                    _merge(host.stats, stats["data"])
                else:
                    host.stats.update(stats["data"])

    @staticmethod
    def _changed(host: HostRun, data: Mapping[str, Any], res: Mapping[str, Any]) -> None:
        """Note a task that changed something: its name (once per task) and its diffs."""
        task = str(data.get("task") or "")
        if not task:
            return
        key = str(data.get("task_uuid") or task)
        if key not in host._changed_keys:
            host._changed_keys.add(key)
            host.changed_tasks.append(task)
        host.diffs.extend({"task": task, **entry} for entry in result_diffs(res))

    def _on_runner_on_skipped(self, data, created, event) -> None:
        host = self._touch(data, created)
        if host is not None:
            self._continued(host)
            host.skipped += 1

    def _on_runner_on_failed(self, data, created, event) -> None:
        host = self._touch(data, created)
        if host is None:
            return
        self._continued(host)
        self._keep(host, data, created)
        task = str(data.get("task") or "")
        if data.get("ignore_errors"):
            host.ignored += 1
            host._item_errors.pop(task, None)
            return
        host.failed += 1
        host._pending_failure = task
        message = host._item_errors.pop(task, None) or result_message(data.get("res"))
        if host.error is None:
            host.error = message
            host.error_task = task

    def _on_runner_on_unreachable(self, data, created, event) -> None:
        host = self._touch(data, created)
        if host is None:
            return
        self._continued(host)
        host.unreachable += 1
        if host.error is None or host.failed == 0:
            host.error = result_message(data.get("res"))
            host.error_task = str(data.get("task") or "")

    def _on_runner_item_on_failed(self, data, created, event) -> None:
        host = self._touch(data, created)
        if host is not None:
            task = str(data.get("task") or "")
            host._item_errors.setdefault(task, result_message(data.get("res")))

    def _on_runner_item_on_ok(self, data, created, event) -> None:
        self._touch(data, created)

    def _on_runner_retry(self, data, created, event) -> None:
        self._touch(data, created)

    def _on_runner_item_on_skipped(self, data, created, event) -> None:
        self._touch(data, created)

    def _on_verbose(self, data, created, event) -> None:
        text = _plain(event.get("stdout") or "").strip()
        if not text:
            return
        self.messages.append(text)
        for pattern in _UNMATCHED.findall(text):
            # The plan's groups (playbooks/provision.yml) are empty when no host needs them.
            if pattern not in self.unmatched_patterns and pattern not in PLAN_GROUPS:
                self.unmatched_patterns.append(pattern)
        if any(phrase in text for phrase in _NO_HOSTS):
            self.no_hosts_matched = True

    _on_warning = _on_verbose
    _on_error = _on_verbose

    def _on_playbook_on_stats(self, data, created, event) -> None:
        self.stats_seen = True
        self.finished = True
        for key, attr in _STATS_FIELDS.items():
            counts = data.get(key)
            if not isinstance(counts, Mapping):
                continue
            for name, count in counts.items():
                setattr(self.host(str(name)), attr, int(count or 0))
        for host in self.hosts.values():
            host.done = True
            host.task = None
        artifact = data.get("artifact_data")
        if isinstance(artifact, Mapping):
            self.artifact_data = dict(artifact)


def _merge(into: dict[str, Any], data: Mapping[str, Any]) -> None:
    """set_stats' aggregate: mappings merge, lists extend, anything else replaces."""
    for key, value in data.items():
        old = into.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            old.update(value)
        elif isinstance(old, list) and isinstance(value, list):
            old.extend(value)
        else:
            into[key] = value
