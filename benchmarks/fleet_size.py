"""How the wall time of a rollout grows with the size of the fleet, over SSH to lab hosts.

    .venv/bin/python benchmarks/fleet_size.py [--sizes 1 4 8] [--repeats 3]
        [--json docs/fleet-size.json] [--plot docs/fleet-size.png]

For each fleet size N it starts a fresh lab of N Debian 12 hosts (`gpuhost lab up --name
gpuhost-bench`, reached over SSH like real hosts) and times:

* the first converge: `gpuhost provision` on the fresh hosts, one batch of all of them;
* the no-op run: `gpuhost provision` again, which changes nothing (REPEATS times, median);
* the floor: one playbook that gathers the facts the roles gather (the same gather_subset
  as playbooks/provision.yml) and pings every host, with the same ansible.cfg and a fresh
  SSH connection per run as `gpuhost provision` has (REPEATS times, median).

Each run also records the CPU time it took on this machine: the controller's (Ansible and
its workers) and the lab hosts' (their containers' cgroups), which shows what the wall
time goes to when the controller and the hosts share the same cores.

Prints a table, writes the figures, the machine and its load as JSON, and plots time
against fleet size (needs matplotlib: pip install -e '.[bench]'). The lab is removed at
the end, also when a step fails. Not a test: the figures depend on the machine and on what
else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import yaml

REPO = Path(__file__).resolve().parents[1]
PROVISION_PLAYBOOK = REPO / "playbooks" / "provision.yml"
LAB_NAME = "gpuhost-bench"
# One batch of every host: the benchmark measures a whole fleet at once.
ONE_BATCH = 'gpuhost_rollout_batches=["100%"]'
TARGET_RATIO = 2.0


class BenchmarkError(Exception):
    """A step of the benchmark failed; the message says which and why."""


@dataclass
class Timing:
    """One run: wall time, and CPU seconds of the controller and of the hosts (None when
    the hosts' cgroups cannot be read)."""

    wall: float
    controller_cpu: float
    hosts_cpu: float | None = None


@dataclass
class SizeResult:
    hosts: int
    first_converge: float
    noop: list[float]
    floor: list[float]
    first_changed: int = 0
    noop_changed: list[int] = field(default_factory=list)
    first_cpu: Timing | None = None
    noop_cpu: list[Timing] = field(default_factory=list)
    floor_cpu: list[Timing] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


# ---- Pure logic ----------------------------------------------------------------------------
def gather_subset_of(playbook: Path) -> list[str]:
    """The gather_subset of the first play that gathers facts (Ansible's default: all)."""
    plays = yaml.safe_load(playbook.read_text(encoding="utf-8")) or []
    for play in plays:
        if isinstance(play, dict) and "hosts" in play and play.get("gather_facts", True):
            subset = play.get("gather_subset", ["all"])
            return [subset] if isinstance(subset, str) else list(subset)
    raise BenchmarkError(f"no play in {playbook} gathers facts")


def floor_playbook(gather_subset: Sequence[str]) -> list[dict[str, Any]]:
    """The least a run on every host costs: the roles' fact gathering and a ping."""
    return [{
        "name": "Floor: gather the facts the roles gather and ping every host",
        "hosts": "gpu_hosts",
        "gather_facts": True,
        "gather_subset": list(gather_subset),
        "tasks": [{"name": "Floor | Ping", "ansible.builtin.ping": {}}],
    }]


def changed_tasks(summary: dict[str, Any]) -> int:
    """Changed tasks over all hosts of a `gpuhost provision --format json` summary."""
    return sum(int(host.get("changed", 0)) for host in summary.get("hosts", {}).values())


def summarise(results: Sequence[SizeResult]) -> list[dict[str, Any]]:
    """One row per fleet size: medians and the ratios the targets are about."""
    rows = []
    base = min(results, key=lambda r: r.hosts) if results else None
    base_first = base.first_converge if base else 0.0
    base_noop = statistics.median(base.noop) if base else 0.0
    for result in sorted(results, key=lambda r: r.hosts):
        noop = statistics.median(result.noop)
        floor = statistics.median(result.floor)
        cpu = {}
        for label, timings in (("noop", result.noop_cpu), ("floor", result.floor_cpu)):
            if timings:
                cpu[f"{label}_controller_cpu_s"] = statistics.median(t.controller_cpu for t in timings)
                hosts_cpu = [t.hosts_cpu for t in timings if t.hosts_cpu is not None]
                cpu[f"{label}_hosts_cpu_s"] = statistics.median(hosts_cpu) if hosts_cpu else None
        rows.append({
            "hosts": result.hosts,
            "first_converge_s": result.first_converge,
            "noop_s": noop,
            "floor_s": floor,
            "noop_over_floor": noop / floor if floor else float("inf"),
            "first_over_smallest": result.first_converge / base_first if base_first else float("inf"),
            "noop_over_smallest": noop / base_noop if base_noop else float("inf"),
            **cpu,
        })
    return rows


def verdicts(rows: Sequence[dict[str, Any]], ratio: float = TARGET_RATIO) -> dict[str, bool]:
    """The targets: the no-op run costs at most RATIO x the floor at every size, and the
    largest fleet at most RATIO x the smallest (first converge and no-op each)."""
    if not rows:
        return {}
    largest = max(rows, key=lambda row: row["hosts"])
    return {
        "noop_within_floor_ratio": all(row["noop_over_floor"] <= ratio for row in rows),
        "first_converge_within_size_ratio": largest["first_over_smallest"] <= ratio,
        "noop_within_size_ratio": largest["noop_over_smallest"] <= ratio,
    }


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as the Markdown table docs/benchmarks.md shows."""
    smallest = min((row["hosts"] for row in rows), default=1)
    lines = [
        f"| hosts | first converge | no-op run (median) | floor (median) | no-op / floor "
        f"| first converge / {smallest} host{'s' if smallest != 1 else ''} "
        f"| no-op / {smallest} host{'s' if smallest != 1 else ''} |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['hosts']} | {row['first_converge_s']:.1f} s | {row['noop_s']:.1f} s "
            f"| {row['floor_s']:.1f} s | {row['noop_over_floor']:.1f}x "
            f"| {row['first_over_smallest']:.2f}x | {row['noop_over_smallest']:.2f}x |")
    return "\n".join(lines)


# ---- The machine ---------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    def first_line(*command: str) -> str:
        try:
            proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
        except OSError:
            return ""
        return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""

    cpu_model = ""
    memory_kib = 0
    try:
        cpu_model = next((line.split(":", 1)[1].strip() for line in
                          Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
                          if line.startswith("model name")), "")
        memory_kib = int(next(line.split()[1] for line in
                              Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
                              if line.startswith("MemTotal:")))
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": first_line("sh", "-c", ". /etc/os-release && echo \"$PRETTY_NAME\""),
        "python": platform.python_version(),
        "ansible_core": first_line(sys.executable, "-c", "import ansible; print(ansible.__version__)"),
        "docker_server": first_line("docker", "version", "--format", "{{.Server.Version}}"),
    }


# ---- Running things -----------------------------------------------------------------------
def gpuhost_command() -> list[str]:
    script = Path(sys.executable).parent / "gpuhost"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gpuhost_cli"]


def children_cpu() -> float:
    """CPU seconds of every finished child process of this one (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def containers_cpu(names: Sequence[str]) -> float | None:
    """CPU seconds the containers NAMES have used so far, from their cgroups (v1 or v2)."""
    if not names:
        return None
    proc = subprocess.run(["docker", "inspect", "--format", "{{.Id}}", *names],
                          capture_output=True, text=True, check=False)
    total = 0.0
    for ident in proc.stdout.split():
        for path, scale, key in (
            (Path(f"/sys/fs/cgroup/cpuacct/docker/{ident}/cpuacct.usage"), 1e-9, None),
            (Path(f"/sys/fs/cgroup/system.slice/docker-{ident}.scope/cpu.stat"), 1e-6, "usage_usec"),
        ):
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                continue
            if key is None:
                total += int(text.strip()) * scale
            else:
                total += next(int(line.split()[1]) for line in text.splitlines() if line.startswith(key)) * scale
            break
        else:
            return None
    return total


def run(command: Sequence[str], env: dict[str, str] | None = None,
        containers: Sequence[str] = ()) -> tuple[Timing, str]:
    """Run COMMAND; its wall and CPU time and its stdout. A failure stops the benchmark."""
    cpu_before, hosts_before = children_cpu(), containers_cpu(containers)
    start = time.perf_counter()
    proc = subprocess.run(list(command), capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    hosts_after = containers_cpu(containers)
    if proc.returncode != 0:
        raise BenchmarkError(f"{' '.join(command[:3])} ... failed (exit {proc.returncode}):\n"
                             f"{(proc.stderr or proc.stdout)[-3000:]}")
    hosts_cpu = hosts_after - hosts_before if hosts_before is not None and hosts_after is not None else None
    return Timing(elapsed, children_cpu() - cpu_before, hosts_cpu), proc.stdout


def provision(inventory: Path, hosts: Sequence[str]) -> tuple[Timing, int]:
    timing, out = run([*gpuhost_command(), "provision", "-i", str(inventory), "-e", ONE_BATCH,
                       "--format", "json"], containers=hosts)
    return timing, changed_tasks(json.loads(out))


def floor(inventory: Path, playbook: Path, hosts: Sequence[str]) -> Timing:
    from gpuhost_cli.paths import ansible_env

    # A fresh SSH connection per run, as gpuhost provision gets one (ansible-runner gives
    # every run its own ControlPath directory).
    with tempfile.TemporaryDirectory(prefix="gpuhost-bench-cp-") as control_dir:
        env = {**os.environ, **ansible_env(), "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir,
               "ANSIBLE_NOCOLOR": "1"}
        ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
        timing, _ = run([str(ansible_playbook), "-i", str(inventory), str(playbook)], env=env, containers=hosts)
    return timing


class Lab:
    def __init__(self, name: str, state_dir: Path, log) -> None:
        self.name, self.state_dir, self.log = name, state_dir, log

    def up(self, hosts: int) -> tuple[Path, list[str]]:
        self.down()
        self.log(f"starting a lab of {hosts} host(s)")
        _, out = run([*gpuhost_command(), "lab", "up", "--hosts", str(hosts), "--distro", "debian12",
                      "--name", self.name, "--state-dir", str(self.state_dir), "--format", "json"])
        summary = json.loads(out)
        return Path(summary["inventory"]), [host["name"] for host in summary["hosts"]]

    def down(self) -> None:
        subprocess.run([*gpuhost_command(), "lab", "down", "--name", self.name, "--state-dir", str(self.state_dir)],
                       capture_output=True, text=True, check=False)


def measure(lab: Lab, hosts: int, repeats: int, floor_path: Path, log) -> SizeResult:
    inventory, names = lab.up(hosts)
    load_before = os.getloadavg()
    log(f"{hosts} host(s): first converge")
    first, first_changed = provision(inventory, names)
    noop, noop_changed, floors = [], [], []
    for attempt in range(1, repeats + 1):
        log(f"{hosts} host(s): floor and no-op run {attempt}/{repeats}")
        floors.append(floor(inventory, floor_path, names))
        timing, changed = provision(inventory, names)
        noop.append(timing)
        noop_changed.append(changed)
    return SizeResult(hosts=hosts, first_converge=first.wall, noop=[t.wall for t in noop],
                      floor=[t.wall for t in floors], first_changed=first_changed, noop_changed=noop_changed,
                      load_before=load_before, load_after=os.getloadavg(),
                      first_cpu=first, noop_cpu=noop, floor_cpu=floors)


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["hosts"] for row in rows]
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=110)
    axes.plot(sizes, [row["first_converge_s"] for row in rows], "o-", label="first converge")
    axes.plot(sizes, [row["noop_s"] for row in rows], "s-", label="no-op run (median)")
    axes.plot(sizes, [row["floor_s"] for row in rows], "^-", label="floor: facts + ping (median)")
    axes.plot(sizes, [TARGET_RATIO * row["floor_s"] for row in rows], ":", color="grey",
              label=f"target for the no-op run: {TARGET_RATIO:g}x floor")
    axes.set_xlabel("hosts in the fleet")
    axes.set_ylabel("wall time (s)")
    axes.set_xticks(sizes)
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend()
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8], metavar="N")
    parser.add_argument("--repeats", type=int, default=3, help="no-op and floor runs per size (median)")
    parser.add_argument("--name", default=LAB_NAME, help="name of the lab the benchmark starts")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "fleet-size.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "fleet-size.png")
    args = parser.parse_args(argv)
    if shutil.which("docker") is None:
        print("fleet_size: needs Docker and root, like gpuhost lab up", file=sys.stderr)
        return 2

    def log(message: str) -> None:
        print(f"[fleet_size {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)

    # A stop (Ctrl-C, kill) still removes the lab.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(timezone.utc)
    load_start = os.getloadavg()
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="gpuhost-bench-") as work:
        floor_path = Path(work) / "floor.yml"
        floor_path.write_text(yaml.safe_dump(floor_playbook(gather_subset_of(PROVISION_PLAYBOOK)), sort_keys=False),
                              encoding="utf-8")
        lab = Lab(args.name, Path(work) / "lab", log)
        try:
            for size in args.sizes:
                results.append(measure(lab, size, args.repeats, floor_path, log))
                # The raw figures so far, kept even when a later size fails.
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps({"partial": True, "results": [asdict(r) for r in results]},
                                                indent=2) + "\n", encoding="utf-8")
        except BenchmarkError as exc:
            print(f"fleet_size: {exc}", file=sys.stderr)
            return 1
        finally:
            log("removing the lab")
            lab.down()

    rows = summarise(results)
    report = {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "load_at_start": load_start,
        "load_at_end": os.getloadavg(),
        "repeats": args.repeats,
        "gather_subset": gather_subset_of(PROVISION_PLAYBOOK),
        "results": [asdict(result) for result in results],
        "rows": rows,
        "targets_met": verdicts(rows),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(rows))
    print(json.dumps(report["targets_met"]))
    print(f"no-op runs changed: {[r.noop_changed for r in results]} (tasks, per repeat)")
    for row in rows:
        print(f"{row['hosts']} host(s), CPU seconds (median): no-op run: controller "
              f"{row.get('noop_controller_cpu_s', 0):.1f}, hosts {row.get('noop_hosts_cpu_s') or 0:.1f}; "
              f"floor: controller {row.get('floor_controller_cpu_s', 0):.1f}, hosts {row.get('floor_hosts_cpu_s') or 0:.1f}")
    print(f"load average (1, 5, 15 min) at start {load_start}, at end {report['load_at_end']}")
    plot(rows, args.plot, f"gpuhost provision over SSH, lab hosts, {report['machine']['cores']} cores, "
                          f"{started:%Y-%m-%d}")
    print(f"wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
