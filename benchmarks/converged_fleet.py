"""A converged fleet, side by side: gpuhost, the anchor stack and the floor, on fresh lab hosts.

    .venv/bin/python benchmarks/converged_fleet.py [--sizes 1 4 8] [--repeats 3]
        [--compare-hosts 2] [--anchors DIR | --skip-anchor]
        [--json docs/converged-fleet.json] [--plot docs/converged-fleet.png]

For each fleet size N (the --sizes and --compare-hosts, smallest first) it starts two fresh
labs of N Debian 12 hosts one right after the other (`gpuhost lab up --name NAME` for gpuhost,
`--name NAME-anchor` for the anchor stack), so both stacks meet equally fresh hosts, and times:

* the first converge of each stack: `gpuhost provision -e 'gpuhost_rollout_batches=["100%"]'`
  (one batch) on the one lab, the anchor playbook on the other;
* then REPEATS rounds of the converged fleet, each round in a rotated order: the floor (facts
  + ping, benchmarks/fleet_size.py), the gpuhost no-op run in one batch, the gpuhost no-op run
  in its default batches (a canary host, then 25%, then the rest) and the anchor no-op run.

The anchor stack is what people would otherwise use for the same end state (NVIDIA DeepOps'
nvidia_container_toolkit role and geerlingguy.docker). It never ships with this repository:
--anchors names the folder that holds its anchor.yml and roles/, and the benchmark only reads
it. The anchor playbook gets the anchor lab's stand-in mirror as anchor_mirror=HOST:PORT, read
from the repository URLs of the inventory `gpuhost lab up` writes. Without --anchors (or with
--skip-anchor) the anchor figures are left out and the report says so.

Every run records its wall time, the controller's CPU seconds (Ansible and its workers) and
the lab hosts' CPU seconds (their containers' cgroups), in all and per host, and every
gpuhost no-op run its changed-task count (a no-op run that changes something is flagged).
From the largest fleet it estimates what 1,000 hosts need (capacity_estimate), and it checks
the project's targets (figures and booleans; the benchmark never fails on them).

Prints Markdown tables for docs/benchmarks.md and the command that produced them, writes
the raw figures, the machine and its load as JSON and plots time and CPU against fleet size
(needs matplotlib: pip install -e '.[bench]'). The labs are removed at the end, also when a
step fails. Not a test: the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import urlsplit

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_size import (  # noqa: E402
    ONE_BATCH,
    PROVISION_PLAYBOOK,
    BenchmarkError,
    Lab,
    Timing,
    changed_tasks,
    floor,
    floor_playbook,
    gather_subset_of,
    gpuhost_command,
    machine,
    run,
)

REPO = Path(__file__).resolve().parents[1]
LAB_NAME = "gpuhost-bench"
ANCHOR_SUFFIX = "-anchor"

FIRST = "first_converge"
ANCHOR_FIRST = "anchor_first_converge"
FLOOR = "floor"
NOOP_ONE = "noop_one_batch"
NOOP_DEFAULT = "noop_default_batches"
ANCHOR_NOOP = "anchor_noop"
#: What each round of the converged fleet runs, in this order for the first round.
ROUND_KINDS = (FLOOR, NOOP_ONE, NOOP_DEFAULT, ANCHOR_NOOP)
LABELS = {
    FIRST: "gpuhost first converge",
    ANCHOR_FIRST: "anchor first converge",
    FLOOR: "floor: facts + ping",
    NOOP_ONE: "gpuhost no-op, one batch",
    NOOP_DEFAULT: "gpuhost no-op, default batches",
    ANCHOR_NOOP: "anchor no-op",
}
GPUHOST_NOOPS = (NOOP_ONE, NOOP_DEFAULT)

CAPACITY_HOSTS = 1000
CAPACITY_WALL_S = 600.0
CAPACITY_CORES = (8, 16, 32)
CAPACITY_FORKS = (50, 100, 200)


@dataclass
class Run:
    """One timed run of one kind; changed is the changed-task count over all hosts (None
    where the run does not report one)."""

    kind: str
    wall: float
    controller_cpu: float
    hosts_cpu: float | None
    changed: int | None = None
    repeat: int = 0


@dataclass
class StageResult:
    """Everything measured on one pair of fresh labs of HOSTS hosts each."""

    hosts: int
    anchor: bool
    runs: list[Run] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Target:
    key: str
    limit: float
    text: str


TARGETS = (
    Target("noop_over_floor_1_host", 2.0, "gpuhost no-op run of 1 converged host / floor"),
    Target("noop_controller_cpu_per_host_s", 1.0, "controller CPU-s per host per no-op run"),
    Target("noop_hosts_cpu_per_host_s", 1.0, "host CPU-s per host per no-op run"),
    Target("default_over_one_batch", 1.2, "no-op run of the converged fleet, default batches / one batch"),
    Target("first_converge_over_anchor", 1.0, "first converge of fresh hosts, gpuhost / anchor stack"),
    Target("noop_over_anchor_noop", 0.5, "no-op run, gpuhost / anchor stack, same hosts"),
)


# ---- Pure logic ----------------------------------------------------------------------------
def stage_sizes(sizes: Iterable[int], compare_hosts: int | None) -> list[int]:
    """The fleet sizes to measure: the curve's and the comparison's, smallest first, once each."""
    wanted = set(sizes) | ({compare_hosts} if compare_hosts else set())
    if any(size < 1 for size in wanted):
        raise BenchmarkError(f"fleet sizes must be at least 1, got {sorted(wanted)}")
    return sorted(wanted)


def rotated(items: Sequence[str], shift: int) -> list[str]:
    """ITEMS started at position SHIFT (modulo their count) and wrapped around."""
    if not items:
        return []
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def interleaved(kinds: Sequence[str], repeats: int) -> list[list[str]]:
    """The order of the runs in each of REPEATS rounds: every kind once a round, the order
    rotated by one each round, so no kind always runs first or right after another."""
    return [rotated(kinds, repeat) for repeat in range(repeats)]


def round_kinds(anchor: bool) -> list[str]:
    return [kind for kind in ROUND_KINDS if anchor or kind != ANCHOR_NOOP]


def mirror_address(lab_vars: dict[str, Any]) -> str:
    """HOST:PORT of the stand-in mirror, as the lab hosts reach it, from the repository URLs
    of a lab inventory (docker_apt_repo_url, nvidia_container_toolkit_repo_url)."""
    found = set()
    for key in ("docker_apt_repo_url", "nvidia_container_toolkit_repo_url"):
        url = lab_vars.get(key)
        if not url:
            continue
        parts = urlsplit(str(url))
        if not parts.hostname:
            raise BenchmarkError(f"{key} is not a URL with a host: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found.add(f"{parts.hostname}:{port}")
    if len(found) != 1:
        raise BenchmarkError("the lab inventory names no single mirror in docker_apt_repo_url and "
                             f"nvidia_container_toolkit_repo_url (found {sorted(found) or 'none'})")
    return found.pop()


def read_lab_vars(inventory: Path) -> dict[str, Any]:
    """The variables of the inventory's group_vars files (YAML), merged in name order."""
    merged: dict[str, Any] = {}
    for path in sorted((inventory / "group_vars").rglob("*.y*ml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if isinstance(data, dict):
            merged.update(data)
    return merged


_RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=\d+\s+changed=(?P<changed>\d+)", re.MULTILINE)


def recap_changed(output: str) -> int:
    """Changed tasks over all hosts, from the PLAY RECAP of ansible-playbook's output."""
    recap = output.rsplit("PLAY RECAP", 1)[-1] if "PLAY RECAP" in output else ""
    return sum(int(match["changed"]) for match in _RECAP.finditer(recap))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """NUMERATOR / DENOMINATOR, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def median_or_none(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def kind_summary(runs: Sequence[Run], hosts: int) -> dict[str, Any]:
    """Medians of runs of one kind on HOSTS hosts, in all and per host, and their changes."""
    wall = statistics.median(run.wall for run in runs)
    controller = statistics.median(run.controller_cpu for run in runs)
    hosts_cpu = median_or_none(run.hosts_cpu for run in runs)
    return {
        "runs": len(runs),
        "wall_s": wall,
        "controller_cpu_s": controller,
        "hosts_cpu_s": hosts_cpu,
        "wall_per_host_s": wall / hosts,
        "controller_cpu_per_host_s": controller / hosts,
        "hosts_cpu_per_host_s": None if hosts_cpu is None else hosts_cpu / hosts,
        "changed": [run.changed for run in runs],
    }


def summarise(stages: Sequence[StageResult]) -> list[dict[str, Any]]:
    """One row per fleet size: each kind's medians and the ratios the targets are about."""
    rows = []
    for stage in sorted(stages, key=lambda s: s.hosts):
        kinds: dict[str, dict[str, Any]] = {}
        for kind in LABELS:
            runs = [run for run in stage.runs if run.kind == kind]
            if runs:
                kinds[kind] = kind_summary(runs, stage.hosts)

        def wall(kind: str) -> float | None:
            return kinds[kind]["wall_s"] if kind in kinds else None

        rows.append({
            "hosts": stage.hosts,
            "anchor": stage.anchor,
            "kinds": kinds,
            "noop_over_floor": ratio(wall(NOOP_ONE), wall(FLOOR)),
            "default_over_one_batch": ratio(wall(NOOP_DEFAULT), wall(NOOP_ONE)),
            "first_converge_over_anchor": ratio(wall(FIRST), wall(ANCHOR_FIRST)),
            "noop_over_anchor_noop": ratio(wall(NOOP_ONE), wall(ANCHOR_NOOP)),
        })
    return rows


def row_for(rows: Sequence[dict[str, Any]], hosts: int | None) -> dict[str, Any] | None:
    return next((row for row in rows if row["hosts"] == hosts), None)


def figure_of(row: dict[str, Any] | None, kind: str, key: str) -> float | None:
    if row is None or kind not in row["kinds"]:
        return None
    return row["kinds"][kind][key]


def target_figures(rows: Sequence[dict[str, Any]], compare_hosts: int | None) -> dict[str, tuple[float | None, int | None]]:
    """Each target's figure and the fleet size it was read at: the no-op / floor ratio at 1
    host (the smallest fleet when 1 is not measured), the CPU and batch figures at the largest
    fleet, the comparisons with the anchor stack at COMPARE_HOSTS."""
    if not rows:
        return {target.key: (None, None) for target in TARGETS}
    smallest = row_for(rows, 1) or min(rows, key=lambda row: row["hosts"])
    largest = max(rows, key=lambda row: row["hosts"])
    compare = row_for(rows, compare_hosts)
    return {
        "noop_over_floor_1_host": (smallest["noop_over_floor"], smallest["hosts"]),
        "noop_controller_cpu_per_host_s": (figure_of(largest, NOOP_ONE, "controller_cpu_per_host_s"),
                                           largest["hosts"]),
        "noop_hosts_cpu_per_host_s": (figure_of(largest, NOOP_ONE, "hosts_cpu_per_host_s"), largest["hosts"]),
        "default_over_one_batch": (largest["default_over_one_batch"], largest["hosts"]),
        "first_converge_over_anchor": (compare["first_converge_over_anchor"] if compare else None, compare_hosts),
        "noop_over_anchor_noop": (compare["noop_over_anchor_noop"] if compare else None, compare_hosts),
    }


def targets_met(rows: Sequence[dict[str, Any]], compare_hosts: int | None) -> dict[str, dict[str, Any]]:
    """Each target: its figure, its limit, the fleet size, and whether it is met (None when
    the figure was not measured). Reports only: nothing fails on a missed target."""
    figures = target_figures(rows, compare_hosts)
    report = {}
    for target in TARGETS:
        figure, hosts = figures[target.key]
        report[target.key] = {
            "text": target.text,
            "figure": figure,
            "limit": target.limit,
            "hosts": hosts if figure is not None else None,
            "met": None if figure is None else figure <= target.limit,
        }
    return report


def capacity_estimate(controller_cpu_per_host_s: float, latency_s: float, hosts: int = CAPACITY_HOSTS,
                      wall_budget_s: float = CAPACITY_WALL_S, cores: Sequence[int] = CAPACITY_CORES,
                      forks: Sequence[int] = CAPACITY_FORKS) -> dict[str, Any]:
    """What a run on HOSTS hosts needs from the controller, from measured per-host figures.

    The model: every host costs the controller CONTROLLER_CPU_PER_HOST_S CPU seconds (Ansible's
    main process and its workers: templating, module transfer, SSH, result handling), spread
    over LATENCY_S seconds of wall time during which the host is in flight (one fork is taken
    for all of it). So a fork keeps a core busy C / L of the time, and
    * the controller CPU in all is C x HOSTS;
    * finishing within WALL_BUDGET_S takes ceil(C x HOSTS / WALL_BUDGET_S) cores;
    * those cores stay busy with forks = ceil(cores x L / C) hosts in flight;
    * with K cores and F forks the run takes HOSTS x max(C / K, L / min(F, HOSTS)) seconds:
      either the cores or the forks are the limit, whichever is slower.

    Assumptions: the controller is the bottleneck (each host's own CPU runs on that host, in
    parallel with the others, and only adds to L); the controller's CPU spreads evenly over its
    cores (Ansible's single main process is not the limit); the per-host cost does not grow
    with the fleet (measured at the largest lab fleet, where the run's fixed cost is shared by
    its hosts); one batch (the default batches add a pause at each batch boundary); the SSH
    latency of a real network is not included (the lab hosts are on this machine), nor are
    retries, slow or unreachable hosts.
    """
    if controller_cpu_per_host_s <= 0 or latency_s <= 0 or hosts < 1 or wall_budget_s <= 0:
        raise BenchmarkError("capacity_estimate needs positive per-host CPU, latency, hosts and wall budget")
    cpu, latency = controller_cpu_per_host_s, latency_s
    total = cpu * hosts
    cores_needed = max(1, math.ceil(total / wall_budget_s - 1e-9))
    grid = []
    for core_count in cores:
        for fork_count in forks:
            cpu_bound = hosts * cpu / core_count
            fork_bound = hosts * latency / min(fork_count, hosts)
            grid.append({
                "cores": core_count,
                "forks": fork_count,
                "wall_s": max(cpu_bound, fork_bound),
                "limit": "cores" if cpu_bound >= fork_bound else "forks",
            })
    return {
        "hosts": hosts,
        "controller_cpu_per_host_s": cpu,
        "latency_s": latency,
        "controller_cpu_total_s": total,
        "wall_budget_s": wall_budget_s,
        "cores_needed": cores_needed,
        "forks_needed": math.ceil(cores_needed * latency / cpu - 1e-9),
        "forks_per_core": latency / cpu,
        "wall": grid,
    }


def capacity_from(rows: Sequence[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """The capacity estimate for the no-op run (one batch) and the first converge, from the
    largest fleet measured: its per-host controller CPU, and its wall time as the latency of
    one host (one batch, so every host is in flight for the whole run)."""
    if not rows:
        return {}
    largest = max(rows, key=lambda row: row["hosts"])
    estimates: dict[str, Any] = {"from_hosts": largest["hosts"]}
    for label, kind in (("noop", NOOP_ONE), ("first_converge", FIRST)):
        cpu = figure_of(largest, kind, "controller_cpu_per_host_s")
        wall = figure_of(largest, kind, "wall_s")
        if cpu and wall:
            estimates[label] = capacity_estimate(cpu, wall, **options)
    return estimates


def anchor_noop_changes(stages: Sequence[StageResult]) -> dict[int, list[int | None]]:
    """The changed-task count of each anchor no-op run, per fleet size: reported, not flagged
    (the anchor stack is the comparison, and its no-op runs may report changes)."""
    found: dict[int, list[int | None]] = {}
    for stage in sorted(stages, key=lambda s: s.hosts):
        changes = [run.changed for run in stage.runs if run.kind == ANCHOR_NOOP]
        if changes:
            found[stage.hosts] = changes
    return found


def changed_noops(stages: Sequence[StageResult]) -> list[str]:
    """One line for each gpuhost no-op run that changed something."""
    return [f"{stage.hosts} host(s), {LABELS[run.kind]}, round {run.repeat}: {run.changed} changed task(s)"
            for stage in sorted(stages, key=lambda s: s.hosts) for run in stage.runs
            if run.kind in GPUHOST_NOOPS and run.changed]


# ---- Markdown ------------------------------------------------------------------------------
def seconds(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def cpu_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(header: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def wall_table(rows: Sequence[dict[str, Any]]) -> str:
    """Wall time (medians) of every kind of run against the fleet size, and the ratios."""
    kinds = (FLOOR, FIRST, NOOP_ONE, NOOP_DEFAULT, ANCHOR_FIRST, ANCHOR_NOOP)
    header = ["hosts", *(LABELS[kind] for kind in kinds), "no-op / floor", "default / one batch",
              "first converge / anchor", "no-op / anchor no-op"]
    lines = [[str(row["hosts"]), *(seconds(figure_of(row, kind, "wall_s")) for kind in kinds),
              times(row["noop_over_floor"]), times(row["default_over_one_batch"]),
              times(row["first_converge_over_anchor"]), times(row["noop_over_anchor_noop"])]
             for row in rows]
    return table(header, lines)


def changed_text(changed: Sequence[int | None]) -> str:
    values = [value for value in changed if value is not None]
    return ", ".join(str(value) for value in values) if values else "-"


def cpu_table(rows: Sequence[dict[str, Any]]) -> str:
    """Per fleet size and kind of run: wall time, controller and host CPU-s, in all and per
    host (medians), and the changed-task count of each run."""
    header = ["hosts", "run", "wall", "controller CPU-s", "host CPU-s", "wall / host",
              "controller CPU-s / host", "host CPU-s / host", "changed tasks (each run)"]
    lines = []
    for row in rows:
        for kind, figures in row["kinds"].items():
            lines.append([str(row["hosts"]), LABELS[kind], seconds(figures["wall_s"]),
                          cpu_seconds(figures["controller_cpu_s"]), cpu_seconds(figures["hosts_cpu_s"]),
                          seconds(figures["wall_per_host_s"], 2), cpu_seconds(figures["controller_cpu_per_host_s"]),
                          cpu_seconds(figures["hosts_cpu_per_host_s"]), changed_text(figures["changed"])])
    return table(header, lines)


def targets_table(report: dict[str, dict[str, Any]]) -> str:
    def met(value: bool | None) -> str:
        return "not measured" if value is None else ("yes" if value else "**no**")

    lines = [[entry["text"], "-" if entry["hosts"] is None else str(entry["hosts"]),
              "-" if entry["figure"] is None else f"{entry['figure']:.2f}", f"<= {entry['limit']:g}",
              met(entry["met"])]
             for entry in report.values()]
    return table(["target", "hosts", "figure", "limit", "met"], lines)


def capacity_table(capacity: dict[str, Any]) -> str:
    """The 1,000-host estimate: one block per run kind, then the wall time grid."""
    parts = []
    for label, title in (("noop", "no-op run"), ("first_converge", "first converge")):
        estimate = capacity.get(label)
        if not estimate:
            continue
        parts.append(
            f"{title} of {estimate['hosts']} hosts (from {capacity['from_hosts']} lab host(s): "
            f"{estimate['controller_cpu_per_host_s']:.2f} controller CPU-s and {estimate['latency_s']:.1f} s "
            f"per host): controller CPU {estimate['controller_cpu_total_s']:.0f} s in all; "
            f"{estimate['cores_needed']} core(s) to finish within {estimate['wall_budget_s']:.0f} s, "
            f"kept busy by {estimate['forks_needed']} forks")
        forks = sorted({cell["forks"] for cell in estimate["wall"]})
        cores = sorted({cell["cores"] for cell in estimate["wall"]})
        cell_of = {(cell["cores"], cell["forks"]): cell for cell in estimate["wall"]}
        lines = [[f"{core} cores", *(f"{cell_of[core, fork]['wall_s'] / 60:.1f} min "
                                     f"({cell_of[core, fork]['limit']})" for fork in forks)]
                 for core in cores]
        parts.append(table([f"{title}, {estimate['hosts']} hosts", *(f"{fork} forks" for fork in forks)], lines))
    return "\n\n".join(parts)


def markdown_report(rows: Sequence[dict[str, Any]], report: dict[str, dict[str, Any]],
                    capacity: dict[str, Any]) -> str:
    sections = [wall_table(rows), cpu_table(rows), targets_table(report)]
    if capacity:
        sections.append(capacity_table(capacity))
    return "\n\n".join(sections)


def command_line(python: str, script: str, argv: Sequence[str], cwd: Path = REPO) -> str:
    """The command as someone would type it in CWD: paths under CWD made relative."""
    def relative(path: str) -> str:
        # abspath, not resolve: the virtual environment's python is a link out of the checkout.
        absolute = os.path.abspath(path)
        return os.path.relpath(absolute, cwd) if Path(absolute).is_relative_to(os.path.abspath(cwd)) else path

    return shlex.join([relative(python), relative(script), *argv])


# ---- Running things ------------------------------------------------------------------------
def provision_run(inventory: Path, hosts: Sequence[str], one_batch: bool) -> tuple[Timing, int]:
    """gpuhost provision in one batch of every host, or in its default batches."""
    batches = ["-e", ONE_BATCH] if one_batch else []
    timing, out = run([*gpuhost_command(), "provision", "-i", str(inventory), *batches, "--format", "json"],
                      containers=hosts)
    return timing, changed_tasks(json.loads(out))


def anchor_env(anchors: Path, control_dir: str) -> dict[str, str]:
    """gpuhost's Ansible settings (ansible.cfg and its plugins) with the anchor stack's roles,
    and a fresh SSH connection per run, as gpuhost provision and the floor get."""
    from gpuhost_cli.paths import ansible_env

    return {**os.environ, **ansible_env(), "ANSIBLE_ROLES_PATH": str(anchors / "roles"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir, "ANSIBLE_NOCOLOR": "1"}


def anchor_run(anchors: Path, inventory: Path, mirror: str, hosts: Sequence[str]) -> tuple[Timing, int]:
    """The anchor playbook on the inventory's gpu_hosts, against the stand-in mirror."""
    with tempfile.TemporaryDirectory(prefix="gpuhost-bench-cp-") as control_dir:
        ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
        timing, out = run([str(ansible_playbook), "-i", str(inventory), str(anchors / "anchor.yml"),
                           "-e", f"anchor_mirror={mirror}"],
                          env=anchor_env(anchors, control_dir), containers=hosts)
    return timing, recap_changed(out)


@dataclass
class Stage:
    """The labs of one fleet size and how to run each kind on them."""

    hosts: int
    inventory: Path
    names: list[str]
    floor_path: Path
    anchors: Path | None = None
    anchor_inventory: Path | None = None
    anchor_names: list[str] = field(default_factory=list)
    mirror: str = ""

    def execute(self, kind: str, repeat: int) -> Run:
        if kind == FLOOR:
            timing, changed = floor(self.inventory, self.floor_path, self.names), None
        elif kind in (FIRST, NOOP_ONE, NOOP_DEFAULT):
            timing, changed = provision_run(self.inventory, self.names, one_batch=kind != NOOP_DEFAULT)
        elif kind in (ANCHOR_FIRST, ANCHOR_NOOP) and self.anchors and self.anchor_inventory:
            timing, changed = anchor_run(self.anchors, self.anchor_inventory, self.mirror, self.anchor_names)
        else:
            raise BenchmarkError(f"cannot run {kind} on this stage")
        return Run(kind, timing.wall, timing.controller_cpu, timing.hosts_cpu, changed, repeat)


def measure(lab: Lab, anchor_lab: Lab | None, anchors: Path | None, hosts: int, repeats: int,
            floor_path: Path, index: int, log: Callable[[str], None]) -> StageResult:
    """Two fresh labs of HOSTS hosts, one right after the other; both first converges; then
    REPEATS interleaved rounds of the converged fleet."""
    inventory, names = lab.up(hosts)
    stage = Stage(hosts, inventory, names, floor_path)
    if anchor_lab is not None and anchors is not None:
        stage.anchor_inventory, stage.anchor_names = anchor_lab.up(hosts)
        stage.anchors = anchors
        stage.mirror = mirror_address(read_lab_vars(stage.anchor_inventory))
        log(f"anchor stack on {anchor_lab.name}, mirror {stage.mirror}")
    with_anchor = stage.anchors is not None
    result = StageResult(hosts=hosts, anchor=with_anchor, load_before=os.getloadavg())
    for kind in rotated([FIRST, ANCHOR_FIRST] if with_anchor else [FIRST], index):
        log(f"{hosts} host(s): {LABELS[kind]}")
        result.runs.append(stage.execute(kind, 0))
    for repeat, order in enumerate(interleaved(round_kinds(with_anchor), repeats), start=1):
        for kind in order:
            log(f"{hosts} host(s), round {repeat}/{repeats}: {LABELS[kind]}")
            result.runs.append(stage.execute(kind, repeat))
    result.load_after = os.getloadavg()
    return result


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (walls, cpus) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    styles = {FIRST: "o-", NOOP_ONE: "s-", NOOP_DEFAULT: "D-", FLOOR: "^-", ANCHOR_FIRST: "o--",
              ANCHOR_NOOP: "s--"}
    for kind, style in styles.items():
        points = [(row["hosts"], figure_of(row, kind, "wall_s")) for row in rows]
        points = [(x, y) for x, y in points if y is not None]
        if points:
            walls.plot(*zip(*points), style, label=LABELS[kind] + ("" if kind in (FIRST, ANCHOR_FIRST) else " (median)"))
    walls.set_ylabel("wall time (s)")
    for kind, colour in ((NOOP_ONE, "tab:orange"), (FIRST, "tab:blue"), (ANCHOR_NOOP, "tab:red")):
        for key, style, who in (("controller_cpu_per_host_s", "o-", "controller"),
                                ("hosts_cpu_per_host_s", "x:", "host")):
            points = [(row["hosts"], figure_of(row, kind, key)) for row in rows]
            points = [(x, y) for x, y in points if y is not None]
            if points:
                cpus.plot(*zip(*points), style, color=colour, label=f"{LABELS[kind]}: {who}")
    cpus.axhline(1.0, color="grey", linestyle=":", label="target for the no-op run: 1 CPU-s per host")
    cpus.set_ylabel("CPU seconds per host (median)")
    sizes = [row["hosts"] for row in rows]
    for axes in (walls, cpus):
        axes.set_xlabel("hosts in the fleet")
        axes.set_xticks(sizes)
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


# ---- The command ---------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8], metavar="N",
                        help="fleet sizes of the curve")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per fleet size (median)")
    parser.add_argument("--compare-hosts", type=int, default=2, metavar="N",
                        help="fresh hosts per stack for the comparison with the anchor stack")
    parser.add_argument("--anchors", type=Path, default=None, metavar="DIR",
                        help="the anchor stack's folder (anchor.yml, roles/); default: no anchor figures")
    parser.add_argument("--skip-anchor", action="store_true", help="leave the anchor stack out")
    parser.add_argument("--name", default=LAB_NAME, help="name of gpuhost's lab; the anchor's is NAME-anchor")
    parser.add_argument("--capacity-wall", type=float, default=CAPACITY_WALL_S, metavar="SECONDS",
                        help="wall time the 1,000-host no-op run should finish within")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "converged-fleet.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "converged-fleet.png")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def anchors_of(args: argparse.Namespace) -> tuple[Path | None, str]:
    """The anchor stack's folder, or None and why it is left out."""
    if args.skip_anchor:
        return None, "anchor stack not measured: --skip-anchor"
    if args.anchors is None:
        return None, "anchor stack not measured: pass --anchors DIR (the folder with anchor.yml and roles/)"
    anchors = args.anchors.resolve()
    missing = [name for name in ("anchor.yml", "roles") if not (anchors / name).exists()]
    if missing:
        raise BenchmarkError(f"--anchors {args.anchors}: no {' or '.join(missing)} there")
    return anchors, f"anchor stack: {anchors}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if shutil.which("docker") is None:
        print("converged_fleet: needs Docker and root, like gpuhost lab up", file=sys.stderr)
        return 2
    try:
        anchors, anchor_note = anchors_of(args)
        sizes = stage_sizes(args.sizes, args.compare_hosts)
    except BenchmarkError as exc:
        print(f"converged_fleet: {exc}", file=sys.stderr)
        return 2

    def log(message: str) -> None:
        print(f"[converged_fleet {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)

    log(anchor_note)
    # A stop (Ctrl-C, kill) still removes the labs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = command_line(sys.executable, __file__, argv, Path.cwd())
    started = datetime.now(timezone.utc)
    load_start = os.getloadavg()
    stages: list[StageResult] = []
    with tempfile.TemporaryDirectory(prefix="gpuhost-bench-") as work:
        floor_path = Path(work) / "floor.yml"
        floor_path.write_text(yaml.safe_dump(floor_playbook(gather_subset_of(PROVISION_PLAYBOOK)), sort_keys=False),
                              encoding="utf-8")
        lab = Lab(args.name, Path(work) / "lab", log)
        anchor_lab = Lab(args.name + ANCHOR_SUFFIX, Path(work) / "lab-anchor", log) if anchors else None
        try:
            for index, size in enumerate(sizes):
                stages.append(measure(lab, anchor_lab, anchors, size, args.repeats, floor_path, index, log))
                # The raw figures so far, kept even when a later size fails.
                write_json(args.json, {"partial": True, "command": command,
                                       "stages": [asdict(stage) for stage in stages]})
        except BenchmarkError as exc:
            print(f"converged_fleet: {exc}", file=sys.stderr)
            return 1
        finally:
            log("removing the labs")
            for each in (lab, anchor_lab):
                if each is not None:
                    each.down()

    rows = summarise(stages)
    report = targets_met(rows, args.compare_hosts if anchors else None)
    capacity = capacity_from(rows, wall_budget_s=args.capacity_wall)
    flagged = changed_noops(stages)
    result = {
        "date": started.isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "load_at_start": load_start,
        "load_at_end": os.getloadavg(),
        "repeats": args.repeats,
        "compare_hosts": args.compare_hosts,
        "anchors": str(anchors) if anchors else None,
        "anchor_note": anchor_note,
        "gather_subset": gather_subset_of(PROVISION_PLAYBOOK),
        "stages": [asdict(stage) for stage in stages],
        "rows": rows,
        "targets": report,
        "capacity": capacity,
        "noop_runs_that_changed": flagged,
        "anchor_noop_changed": anchor_noop_changes(stages),
    }
    write_json(args.json, result)
    print(markdown_report(rows, report, capacity))
    print()
    print(anchor_note)
    if flagged:
        print("FLAGGED: gpuhost no-op runs that changed something:")
        print("\n".join(f"  {line}" for line in flagged))
    else:
        print("every gpuhost no-op run changed nothing")
    for hosts, changes in result["anchor_noop_changed"].items():
        print(f"anchor no-op runs on {hosts} host(s) changed (tasks, each run): {changes}")
    print(f"load average (1, 5, 15 min) at start {load_start}, at end {result['load_at_end']}")
    print(f"command: {command}")
    plot(rows, args.plot, f"gpuhost{' and the anchor stack' if anchors else ''} over SSH, lab hosts, "
                          f"{result['machine']['cores']} cores, {started:%Y-%m-%d}")
    print(f"wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
