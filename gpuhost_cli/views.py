"""What the command line shows: rich tables built from the run model and the facts.

The pure parts (rows of text from a model or a facts dict) are separate functions, so the
tests check the words without a terminal; the ``*_table`` functions wrap them in rich.
Everything is defensive about missing keys: a fact the host could not report shows as
"unknown", never as an error.

A host name, a path or a task name is never broken by a line break, so that it can be
copied: text wraps at spaces only (:class:`Wrapped`), a table too wide for the terminal
gives way to one block per row (:class:`Fit`), and what the commands print goes out with
``crop=False`` (``cli._common.show``), so a value longer than the terminal runs on.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from gpuhost_cli.events import HostRun, RunModel

UNKNOWN = "unknown"
STATUS_STYLE = {
    "ok": "green",
    "changed": "yellow",
    "passed": "green",
    "deferred": "magenta",
    "running": "cyan",
    "failed": "bold red",
    "unreachable": "bold red",
    "not_applicable": "dim",
    "warning": "yellow",
    "not_reached": "dim",
    "converged": "green",
}
SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}
DIFF_STYLE = (("+++", "bold"), ("---", "bold"), ("+", "green"), ("-", "red"), ("@@", "cyan"), ("\\", "dim"))
CHECK_WORDS = {"passed": "passed", "warning": "warning", "failed": "FAILED", "not_applicable": "n/a"}


# ---- Small helpers ----------------------------------------------------------------------


def elapsed_text(seconds: float | None) -> str:
    """12.3s, 4m05s, 1h02m; '' when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _get(data: Any, *keys: str, default: Any = None) -> Any:
    """data[k1][k2]..., or default where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, Mapping):
            return default
        data = data.get(key)
    return default if data is None else data


def _yes_no(value: Any) -> str:
    if value is None:
        return UNKNOWN
    return "yes" if value else "no"


def _styled(word: str, status: str) -> Text:
    return Text(word, style=STATUS_STYLE.get(status, ""))


# ---- Layout: long values stay whole -------------------------------------------------------

_WORD = re.compile(r"\S+")
#: Wide enough for any table: how wide it is when nothing wraps.
_UNBOUNDED = 100_000


def whole(text: str | Text, style: str = "") -> Text:
    """A value (a host name, a path) on a line of its own, never broken or cut."""
    value = text if isinstance(text, Text) else Text(text, style=style)
    return Text.assemble(value, no_wrap=True, overflow="ignore")


def _breaks(plain: str, width: int) -> list[int]:
    """Where to break a line: before each word that would run past ``width``."""
    breaks, start = [], 0
    for word in _WORD.finditer(plain):
        if plain[start:word.start()].strip() and cell_len(plain[start:word.end()]) > width:
            breaks.append(word.start())
            start = word.start()
    return breaks


class Wrapped:
    """Text wrapped at spaces to the width it is given, every line after ``indent``; a word
    longer than a line (a path, a host name) stays whole on a line of its own."""

    def __init__(self, text: str | Text, indent: str = "", style: str = "") -> None:
        self.text = text if isinstance(text, Text) else Text(text, style=style)
        self.indent = indent

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterable[Text]:
        width = max(1, options.max_width - cell_len(self.indent))
        for line in self.text.split(allow_blank=True):
            for part in line.divide(_breaks(line.plain, width)):
                part.rstrip()
                yield whole(Text.assemble(self.indent, part))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, Text(self.indent + self.text.plain))


class Fit:
    """``wide`` (a table) where it fits the width given, else ``narrow``. A table fits when each
    cell fits on one line (``need="maximum"``), or, for one that wraps its text at spaces, when
    each column is as wide as its longest word (``need="minimum"``)."""

    def __init__(self, wide: RenderableType, narrow: RenderableType, need: str = "maximum") -> None:
        self.wide = wide
        self.narrow = narrow
        self.need = need

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterable[RenderableType]:
        measured = Measurement.get(console, options.update_width(_UNBOUNDED), self.wide)
        yield self.wide if getattr(measured, self.need) <= options.max_width else self.narrow


Cell = str | Text | Sequence[Text]


def _lines_of(cell: Cell) -> list[Text]:
    if isinstance(cell, str):
        return [Text(cell)]
    return [cell] if isinstance(cell, Text) else list(cell)


def fitting_table(table: Table, rows: Sequence[Sequence[Cell]], name_at: int = 0, need: str = "maximum") -> Fit:
    """``table`` (whose rows are ``rows``) where it fits (:class:`Fit`), else a block per row: the
    row's name (its ``name_at`` cell, a host) on a line of its own, then under it the other
    cells, "header value, ..." (a table without headers: each line of each cell)."""
    headers = [str(column.header) for column in table.columns]
    blocks: list[RenderableType] = [Wrapped(Text(str(table.title), style="italic"))] if table.title else []
    for row in rows:
        blocks.append(whole(Text.assemble(*_lines_of(row[name_at])), style="bold"))
        others = [(header, _lines_of(cell)) for at, (header, cell) in enumerate(zip(headers, row)) if at != name_at]
        if table.show_header:
            labelled = [Text.assemble(f"{header} ", *lines) for header, lines in others if any(map(str, lines))]
            blocks.append(Wrapped(Text(", ").join(labelled), indent="  "))
        else:
            blocks.extend(Wrapped(line, indent="  ") for _, lines in others for line in lines)
    return Fit(table, Group(*blocks), need)


def note(name: str, label: str, text: str, style: str = "") -> Wrapped:
    """``name (label): text``, the name in bold, wrapped at spaces."""
    return Wrapped(Text.assemble((f"{name} ({label}): ", "bold"), (text, style)))


# ---- Runs: progress and summary ---------------------------------------------------------


def summary_rows(model: RunModel) -> list[list[str]]:
    """host, status, ok, changed, failed, unreachable, deferred, elapsed, first error or note."""
    rows = []
    for name, host in sorted(model.hosts.items()):
        note = host.error or (host.deferred or "")
        rows.append([
            name,
            host.status,
            str(host.ok),
            str(host.changed),
            str(host.failed),
            str(host.unreachable),
            "yes" if host.deferred else "",
            elapsed_text(host.elapsed),
            note,
        ])
    return rows


def summary_table(model: RunModel, title: str = "gpuhost", check: bool = False) -> RenderableType:
    """The per-host counts (host coloured by how it ended), then each first error in full and
    the tasks that changed (``check``: would change) on each host."""
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", pad_edge=False)
    for header in ("host", "ok", "changed", "failed", "unreachable", "deferred", "elapsed"):
        table.add_column(header, justify="left" if header in ("host", "deferred") else "right",
                         no_wrap=True, overflow="ellipsis" if header == "host" else "fold")
    notes: list[RenderableType] = []
    rows = []
    for row in summary_rows(model):
        name, status, text = row[0], row[1], row[8]
        rows.append([_styled(name, status), *row[2:8]])
        table.add_row(*rows[-1])
        if text:
            label = "deferred" if status == "deferred" else "first error" if status in ("failed", "unreachable") else "note"
            notes.append(note(name, label, text, STATUS_STYLE.get(status, "")))
    changed = {name: host.changed_tasks for name, host in sorted(model.hosts.items())}
    return Group(fitting_table(table, rows), *notes, *changed_task_lines(changed, check))


def progress_table(model: RunModel, title: str) -> Table:
    """The live view: each host, its current task, and how far it got."""
    table = Table(title=title, box=box.SIMPLE, title_justify="left")
    table.add_column("host")
    table.add_column("status")
    table.add_column("current task", overflow="ellipsis", no_wrap=True)
    table.add_column("ok", justify="right")
    table.add_column("changed", justify="right")
    table.add_column("failed", justify="right")
    for name, host in sorted(list(model.hosts.items())):
        status = host.status if (host.failed or host.unreachable or host.done or host.deferred) else "running"
        table.add_row(name, _styled(status, status), host.task or "", str(host.ok), str(host.changed),
                      str(host.failed + host.unreachable))
    if not model.hosts:
        table.add_row("…", "starting", "", "", "", "")
    return table


@contextlib.contextmanager
def live_progress(console: Console, title: str) -> Iterator[Any]:
    """Show progress_table() live while a run goes on; yields the runner's on_event callback."""
    from rich.live import Live

    holder: dict[str, RunModel] = {"model": RunModel()}

    def render() -> RenderableType:
        return progress_table(holder["model"], title)

    with Live(get_renderable=render, console=console, refresh_per_second=4, transient=True):
        def on_event(model: RunModel, event: Mapping[str, Any]) -> None:
            holder["model"] = model

        yield on_event


def changed_task_lines(changed: Mapping[str, Sequence[str]], check: bool = False) -> list[RenderableType]:
    """The tasks that changed something (``check``: would change) on each host, under a
    heading; hosts with the same tasks share one list. Nothing when no task changed."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, tasks in changed.items():
        if tasks:
            groups.setdefault(tuple(tasks), []).append(name)
    if not groups:
        return []
    verb = "would change (check mode: nothing was changed)" if check else "changed"
    lines: list[RenderableType] = [Text(""), Wrapped(f"Tasks that {verb}:", style="bold")]
    for tasks, names in groups.items():
        count = f"{len(tasks)} task{'' if len(tasks) == 1 else 's'}"
        lines.append(Wrapped(Text.assemble((", ".join(names), "bold"), f" ({count}):")))
        lines.extend(Wrapped(f"• {task}", indent="  ") for task in tasks)
    return lines


def diff_lines(diffs: Mapping[str, Sequence[Mapping[str, Any]]], check: bool = False) -> list[RenderableType]:
    """Each host's file diffs (``--diff``), by task, in colour where the console has it; each
    line as the module reported it, never wrapped. Nothing when there are none."""
    hosts = {name: entries for name, entries in diffs.items() if entries}
    if not hosts:
        return []
    heading = "Diffs (check mode: what would change)" if check else "Diffs"
    lines: list[RenderableType] = [Text(""), Wrapped(f"{heading}:", style="bold")]
    for name, entries in hosts.items():
        lines.append(whole(f"{name}:", style="bold"))
        for entry in entries:
            item = f" (item {entry['item']})" if entry.get("item") is not None else ""
            lines.append(Wrapped(f"task: {entry.get('task') or ''}{item}", indent="  ", style="italic"))
            lines.append(diff_text_styled(str(entry.get("diff") or "")))
    return lines


def diff_text_styled(diff: str) -> Text:
    """A unified diff, its lines coloured as ansible-playbook colours them; never wrapped."""
    text = Text(no_wrap=True, overflow="ignore")
    for line in diff.rstrip("\n").split("\n"):
        style = next((style for lead, style in DIFF_STYLE if line.startswith(lead)), "")
        text.append(line + "\n", style=style)
    text.rstrip()
    return text


def host_error_text(host: HostRun) -> str:
    if host.unreachable:
        return f"unreachable: {host.error or 'no message'}"
    if host.failed:
        where = f" (task: {host.error_task})" if host.error_task else ""
        return f"failed{where}: {host.error or 'no message'}"
    return ""


# ---- gpuhost facts ------------------------------------------------------------------------


def facts_of(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The gpu_facts dict from a module result (``gpu`` or ``ansible_facts.gpuhost_gpu``)."""
    if not isinstance(result, Mapping):
        return {}
    facts = result.get("gpu")
    if not isinstance(facts, Mapping):
        facts = _get(result, "ansible_facts", "gpuhost_gpu", default={})
    return dict(facts) if isinstance(facts, Mapping) else {}


def facts_overview(facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, value) lines about one host, in words."""
    rows: list[tuple[str, str]] = []
    dist = _get(facts, "distribution", default={})
    name = _get(dist, "pretty_name") or " ".join(
        str(part) for part in (_get(dist, "id"), _get(dist, "version_id")) if part) or UNKNOWN
    supported = _get(dist, "supported")
    support = {True: "supported", False: "NOT supported"}.get(supported, "support unknown")
    rows.append(("Distribution", f"{name} ({support})"))

    pci = _get(facts, "pci_gpus", default=[])
    if isinstance(pci, list) and pci:
        models: dict[str, int] = {}
        for gpu in pci:
            model = str(_get(gpu, "model") or _get(gpu, "device_id") or "NVIDIA GPU")
            models[model] = models.get(model, 0) + 1
        listed = ", ".join(f"{count} × {model}" for model, count in models.items())
        drivers = sorted({str(_get(gpu, "driver") or "none") for gpu in pci})
        rows.append(("NVIDIA GPUs (PCI)", f"{len(pci)}: {listed} (kernel driver: {', '.join(drivers)})"))
    else:
        rows.append(("NVIDIA GPUs (PCI)", "none" if isinstance(pci, list) else UNKNOWN))

    driver = _get(facts, "driver", default={})
    loaded = _get(driver, "loaded")
    if loaded:
        flavor = _get(driver, "flavor")
        text = f"loaded, {_get(driver, 'version') or 'version unknown'}" + (f" ({flavor})" if flavor else "")
    else:
        text = "not loaded" if loaded is not None else UNKNOWN
    rows.append(("NVIDIA driver", text))
    rows.append(("Driver packages", driver_packaging_text(driver if isinstance(driver, Mapping) else {})))
    rows.append(("nouveau loaded", _yes_no(_get(driver, "nouveau_loaded"))))

    smi = _get(facts, "nvidia_smi", default={})
    if _get(smi, "available"):
        text = f"works, CUDA {_get(smi, 'cuda_version') or UNKNOWN}"
    elif smi:
        text = f"not working: {_get(smi, 'error') or 'no reason given'}"
    else:
        text = UNKNOWN
    rows.append(("nvidia-smi", text))

    docker = _get(facts, "docker", default={})
    version = _get(docker, "version")
    error = _get(docker, "error")
    if version:
        text = f"{version}"
    elif _get(docker, "installed") is False:
        text = "not installed"
    elif _get(docker, "running") is False or error:
        text = "not answering" + (f": {error}" if error else "")
    elif _get(docker, "installed"):
        text = "installed (the engine was not asked)"
    else:
        text = UNKNOWN
    rows.append(("Docker", text))
    default_runtime = _get(docker, "default_runtime") or _get(docker, "configured_default_runtime")
    rows.append(("Default runtime", str(default_runtime) if default_runtime else UNKNOWN))
    rows.append(("Runtimes", runtimes_text(docker if isinstance(docker, Mapping) else {})))
    mirrors = _get(docker, "registry_mirrors")
    if isinstance(mirrors, list):
        # What dockerd uses (docker info), whatever set it; `gpuhost verify` asks each one.
        rows.append(("Registry mirrors", ", ".join(str(m) for m in mirrors) or "none"))

    toolkit = _get(facts, "toolkit", default={})
    tk_version = _get(toolkit, "version")
    if tk_version:
        text = str(tk_version)
    elif _get(toolkit, "installed") is False:
        text = "not installed"
    else:
        text = UNKNOWN
    rows.append(("NVIDIA Container Toolkit", text))
    rows.extend(toolkit_rows(toolkit if isinstance(toolkit, Mapping) else {},
                             docker if isinstance(docker, Mapping) else {}))
    nvswitch = _get(facts, "nvswitch", default={})
    rows.extend(nvswitch_rows(nvswitch if isinstance(nvswitch, Mapping) else {}))
    return rows


def missing_runtimes(docker: Mapping[str, Any]) -> list[dict[str, str]]:
    """The registered runtimes whose executable gpu_facts did not find: {runtime, path, source}."""
    entries = _get(docker, "runtime_executables", default=[])
    return [{"runtime": str(_get(e, "runtime")), "path": str(_get(e, "path")), "source": str(_get(e, "source"))}
            for e in entries if isinstance(e, Mapping) and not _get(e, "found")] if isinstance(entries, list) else []


def runtimes_text(docker: Mapping[str, Any]) -> str:
    """The engine's runtimes (else daemon.json's), each whose executable is missing marked so."""
    runtimes = _get(docker, "runtimes") or _get(docker, "configured_runtimes")
    if not isinstance(runtimes, list) or not runtimes:
        return UNKNOWN
    missing = {entry["runtime"]: entry["path"] for entry in missing_runtimes(docker)}
    return ", ".join(f"{name} (MISSING: {missing[name]})" if name in missing else str(name) for name in runtimes)


DRIVER_SOURCE_WORDS = {
    "ubuntu-archive": "Ubuntu's archive",
    "graphics-drivers-ppa": "the graphics-drivers PPA",
    "nvidia-repository": "NVIDIA's repository",
    "debian-archive": "Debian's archive",
}


def driver_packaging_text(driver: Mapping[str, Any]) -> str:
    """One line about the driver's packages: branch, version, source, kernel modules."""
    packaging = _get(driver, "packaging")
    if not isinstance(packaging, Mapping):
        return "none (dpkg has no driver packages)" if _get(driver, "packages") == {} else UNKNOWN
    branch = _get(packaging, "branch")
    flavor = _get(packaging, "flavor")
    parts = [" ".join(str(p) for p in (
        f"branch {branch}" if branch else "branch unknown",
        f"({flavor})" if flavor == "open" else "",
        _get(packaging, "version") or "") if p)]
    source = _get(packaging, "source")
    parts.append(f"from {DRIVER_SOURCE_WORDS.get(source, 'an unknown source')}")
    modules = _get(packaging, "kernel_modules")
    kernel = _get(packaging, "kernel")
    if modules:
        text = f"{modules} kernel modules"
        if "precompiled" in str(modules):
            running = _get(packaging, "modules_for_running_kernel")
            text += {True: f", present for the running kernel {kernel}",
                     False: f", MISSING for the running kernel {kernel}"}.get(running, "")
        parts.append(text)
    else:
        parts.append("no kernel module package")
    branches = _get(packaging, "branches")
    if isinstance(branches, list) and len(branches) > 1:
        parts.append(f"{len(branches)} branches installed: {', '.join(str(b) for b in branches)}")
    return "; ".join(parts)


ISOLATION_WORDS = {
    "envvar": "any container that sets NVIDIA_VISIBLE_DEVICES gets GPUs from the nvidia runtime",
    "volume-mounts": "unprivileged containers get GPUs only by volume mounts or CDI",
    "privileged-only": "NVIDIA_VISIBLE_DEVICES honoured only for privileged containers",
}


def _short_device(name: str) -> str:
    """A CDI device name with a long device part (a UUID) cut to its start and end:
    nvidia.com/gpu=GPU-0a1b…0007."""
    kind, sep, device = name.partition("=")
    if not sep or len(device) <= 12:
        return name
    return f"{kind}={device[:8]}…{device[-4:]}"


def toolkit_rows(toolkit: Mapping[str, Any], docker: Mapping[str, Any]) -> list[tuple[str, str]]:
    """How the toolkit gives containers GPUs: runtime mode, isolation, CDI, refresh units, persistenced."""
    rows: list[tuple[str, str]] = []
    config = _get(toolkit, "runtime_config", default={})
    if _get(config, "error"):
        text = f"not readable: {_get(config, 'error')}"
    elif _get(config, "mode"):
        text = str(_get(config, "mode")) + ("" if _get(config, "present") else " (no config.toml: NVIDIA's default)")
    else:
        text = UNKNOWN
    rows.append(("Runtime mode", text))
    isolation = _get(toolkit, "isolation")
    rows.append(("GPU isolation", f"{isolation} ({ISOLATION_WORDS[isolation]})" if isolation in ISOLATION_WORDS
                 else str(isolation) if isolation else UNKNOWN))

    cdi = _get(toolkit, "cdi", default={})
    devices = [str(d) for d in _get(cdi, "devices", default=[])] if isinstance(_get(cdi, "devices"), list) else None
    if devices:
        shown = ", ".join(_short_device(d) for d in devices[:4])
        text = f"{len(devices)}: {shown}" + (f", +{len(devices) - 4} more" if len(devices) > 4 else "")
    elif devices is not None:
        specs = _get(cdi, "specs", default=[])
        text = f"none (in {len(specs)} specification(s))" if specs else "none (no CDI specification)"
    else:
        text = UNKNOWN
    supported, enabled = _get(docker, "cdi_supported"), _get(docker, "cdi_enabled")
    if enabled:
        text += "; Docker CDI enabled"
    elif supported:
        text += "; Docker CDI not enabled"
    elif supported is False:
        text += "; Docker too old for CDI"
    rows.append(("CDI devices", text))

    refresh = _get(toolkit, "cdi_refresh", default={})
    if refresh:
        words = []
        for unit in ("path", "service"):
            state = _get(refresh, unit, default={})
            word = ("masked" if _get(state, "masked") else "enabled" if _get(state, "enabled")
                    else "installed" if _get(state, "installed") else "not installed")
            words.append(f".{unit} {word}")
        rows.append(("CDI refresh", "nvidia-cdi-refresh " + ", ".join(words)))
    else:
        rows.append(("CDI refresh", UNKNOWN))

    persistenced = _get(toolkit, "persistenced", default={})
    if persistenced:
        running = "running" if _get(persistenced, "running") else "not running"
        socket = "socket present" if _get(persistenced, "socket") else "no socket"
        rows.append(("nvidia-persistenced", f"{running}, {_unit_word(persistenced)}, {socket}"))
    else:
        rows.append(("nvidia-persistenced", UNKNOWN))
    return rows


def _unit_word(unit: Mapping[str, Any]) -> str:
    """A unit as gpu_facts reads it: masked, enabled, installed (not enabled) or no unit file."""
    if _get(unit, "masked"):
        return "unit masked"
    if _get(unit, "enabled"):
        return "enabled"
    return "not enabled" if _get(unit, "installed") else "no unit file"


def nvswitch_rows(nvswitch: Mapping[str, Any]) -> list[tuple[str, str]]:
    """NVSwitches on the PCI bus and NVIDIA Fabric Manager, which such systems need."""
    if not nvswitch:
        return [("NVSwitches", UNKNOWN)]
    count = _get(nvswitch, "count") or 0
    fm = _get(nvswitch, "fabricmanager", default={})
    rows = [("NVSwitches", f"{count} (HGX/DGX: needs Fabric Manager)" if count else "none")]
    if not fm or (not count and not _get(fm, "installed")):
        return rows
    if not _get(fm, "installed"):
        text = "NOT installed" if count else "not installed"
    else:
        matches = {True: "matches the driver", False: "does NOT match the driver",
                   None: "driver version unknown"}[_get(fm, "version_matches")]
        text = (f"{_get(fm, 'package')} {_get(fm, 'version')}, "
                f"{'running' if _get(fm, 'running') else 'not running'}, "
                f"{_unit_word(_get(fm, 'unit', default={}))}, {matches}")
    rows.append(("Fabric Manager", text))
    return rows


def smi_gpu_rows(facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """('GPU <index>', name, memory, driver, CUDA, MIG, PCI bus id, UUID) of each GPU nvidia-smi lists."""
    gpus = _get(facts, "nvidia_smi", "gpus", default=[])
    cuda = _get(facts, "nvidia_smi", "cuda_version")
    rows = []
    for gpu in gpus if isinstance(gpus, list) else []:
        memory = _get(gpu, "memory_mib")
        parts = [
            str(_get(gpu, "name") or "unknown model"),
            f"{memory / 1024:.0f} GiB" if isinstance(memory, (int, float)) and not isinstance(memory, bool)
            else "memory unknown",
            f"driver {_get(gpu, 'driver_version') or UNKNOWN}",
            f"CUDA {cuda or UNKNOWN}",
            f"MIG {_get(gpu, 'mig_mode') or 'not supported'}",
        ]
        if _get(gpu, "pci_bus_id"):
            parts.append(f"PCI {_get(gpu, 'pci_bus_id')}")
        parts.append(str(_get(gpu, "uuid") or "UUID unknown"))
        rows.append((f"GPU {_get(gpu, 'index', default='?')}", " · ".join(parts)))
    return rows


def facts_problems(facts: Mapping[str, Any]) -> list[str]:
    problems = _get(facts, "problems", default=[])
    return [str(p) for p in problems] if isinstance(problems, list) else []


def facts_table(host: str, facts: Mapping[str, Any]) -> RenderableType:
    """One table per host: the overview, the GPUs nvidia-smi sees, the problems with the fix."""
    summary = _get(facts, "summary")
    table = Table(title=f"{host}" + (f" — {summary}" if summary else ""), title_justify="left",
                  box=box.ROUNDED, show_header=False)
    rows: list[list[Cell]] = []
    for what, value in facts_overview(facts):
        style = "red" if value.startswith(("NOT", "not loaded", "not working", "not installed", "not answering")) \
            or "(MISSING: " in value else ""
        rows.append([what, Text(value, style=style)])
    rows.extend([what, value] for what, value in smi_gpu_rows(facts))
    problems = facts_problems(facts)
    findings = _get(facts, "findings", default=[])
    severities = [str(_get(f, "severity") or "") for f in findings] if isinstance(findings, list) else []
    if len(severities) != len(problems):
        severities = ["warning"] * len(problems)
    if problems:
        rows.append(["Problems", [Text(f"• {problem}", style=SEVERITY_STYLE.get(severity, "yellow"))
                                  for problem, severity in zip(problems, severities)]])
    else:
        rows.append(["Problems", Text("none", style="green")])
    # The labels never wrap, so that the values' column is as wide as the measure promises.
    table.add_column("what", style="bold", no_wrap=True, min_width=max(len(str(row[0])) for row in rows))
    table.add_column("value", overflow="fold")
    for what, value in rows:
        table.add_row(what, value if isinstance(value, (str, Text)) else Group(*value))
    return fitting_table(table, rows, need="minimum")


# ---- gpuhost verify -----------------------------------------------------------------------


def verify_checks(host: HostRun) -> list[dict[str, str]]:
    """The host's recorded checks ({name, status, detail}), [] when it recorded none."""
    checks = host.stats.get("gpuhost_verify")
    if not isinstance(checks, list):
        return []
    out = []
    for check in checks:
        if isinstance(check, Mapping) and check.get("name"):
            out.append({
                "name": str(check["name"]),
                "status": str(check.get("status") or "failed"),
                "detail": str(check.get("detail") or ""),
            })
    return out


def verify_table(model: RunModel, title: str = "gpuhost verify") -> RenderableType:
    """Checks down, hosts across; then every failure and every warning with its detail."""
    hosts = sorted(model.hosts)
    checks_by_host = {name: {c["name"]: c for c in verify_checks(model.hosts[name])} for name in hosts}
    names: list[str] = []
    for name in hosts:
        for check in verify_checks(model.hosts[name]):
            if check["name"] not in names:
                names.append(check["name"])
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("check")
    for name in hosts:
        table.add_column(name, overflow="fold")
    for check_name in names:
        cells: list[Text] = []
        for host in hosts:
            check = checks_by_host[host].get(check_name)
            if check is None:
                cells.append(Text("—", style="dim"))
            else:
                cells.append(_styled(CHECK_WORDS.get(check["status"], check["status"]), check["status"]))
        table.add_row(check_name, *cells)
    if not names:
        table.add_row("(no checks recorded)", *[Text("") for _ in hosts])
    lines: list[RenderableType] = [table]
    for name in hosts:
        host = model.hosts[name]
        failed = [c for c in checks_by_host[name].values() if c["status"] == "failed"]
        for check in failed:
            lines.append(Text(f"{name}: {check['name']}: {check['detail']}", style="red"))
        for check in [c for c in checks_by_host[name].values() if c["status"] == "warning"]:
            lines.append(Text(f"{name}: warning: {check['name']}: {check['detail']}", style="yellow"))
        if not checks_by_host[name] and not host.succeeded:
            lines.append(Text(f"{name}: {host_error_text(host)}", style="red"))
    return Group(*lines)


def verify_hosts_json(model: RunModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, host in sorted(model.hosts.items()):
        checks = verify_checks(host)
        failed = [c for c in checks if c["status"] == "failed"]
        # A warning (a registry mirror that does not answer, by default) does not fail the host.
        out[name] = {
            "status": "passed" if host.succeeded and not failed and checks else "failed",
            "warnings": [c["name"] for c in checks if c["status"] == "warning"],
            "checks": checks,
            "error": host.error,
        }
    return out


def render_text(renderables: Sequence[RenderableType], width: int = 160) -> str:
    """The renderables as plain text (for tests and logs), printed as the commands print them."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    for item in renderables:
        console.print(Group(item), crop=False)
    return console.export_text()


# ---- gpuhost provision: the rollout report -------------------------------------------------


def rollout_table(report: Mapping[str, Any], title: str = "gpuhost provision") -> RenderableType:
    """Each host with its batch, how it ended, what changed and how long it took; then why
    the rollout stopped, how to finish deferred hosts, each host's error in full, and the
    tasks that changed on each host (in a check run: would change)."""
    check = bool(report.get("check"))
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", pad_edge=False)
    for header in ("batch", "host", "status", "would change" if check else "changed", "elapsed"):
        table.add_column(header, justify="left" if header in ("host", "status") else "right",
                         no_wrap=True, overflow="ellipsis" if header == "host" else "fold")
    notes: list[RenderableType] = []
    rows = []
    for name, host in report["hosts"].items():
        status = host["status"]
        word = status.replace("_", " ")
        rows.append([str(host["batch"] or "-"), name, _styled(word, status),
                     str(host["changed"]), elapsed_text(host["elapsed_s"])])
        table.add_row(*rows[-1])
        if host.get("error"):
            notes.append(note(name, word, host["error"], STATUS_STYLE.get(status, "")))
        for warning in host.get("warnings") or []:
            notes.append(note(name, "warning", warning, STATUS_STYLE["warning"]))
    counts = report["counts"]
    line = (f"{counts['ok']} done, {counts.get('converged', 0)} converged (nothing to do), {counts['failed']} failed, {counts['unreachable']} unreachable, "
            f"{counts['deferred']} deferred, {counts['not_reached']} not reached; "
            f"batches {report['batches_requested']}, max fail {report['max_fail_percentage']}%")
    notes.insert(0, Wrapped(line))
    if report.get("stopped"):
        notes.append(Wrapped(report["stopped"], style="bold red"))
    if report.get("finish_deferred"):
        notes.append(Wrapped(report["finish_deferred"], style="yellow"))
    changed = {name: host.get("changed_tasks") or [] for name, host in report["hosts"].items()}
    return Group(fitting_table(table, rows, name_at=1), *notes, *changed_task_lines(changed, check))
