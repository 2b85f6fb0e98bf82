"""How fast `gpuhost --help` starts, and which imports the time goes to.

    .venv/bin/python benchmarks/cli_startup.py [--runs 20] [--top 12]

Runs `gpuhost --help` RUNS times in fresh processes (median and 90th percentile of the
wall time), then once under `python -X importtime` and lists the top-level packages that
took the most import time (cumulative, as Python reports it). Not a test: timings depend
on the machine; use it to see what a change to the command line costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def gpuhost_command() -> list[str]:
    """The installed gpuhost next to this interpreter, or python -m gpuhost_cli."""
    script = Path(sys.executable).parent / "gpuhost"
    if script.is_file():
        return [str(script)]
    found = shutil.which("gpuhost")
    return [found] if found else [sys.executable, "-m", "gpuhost_cli"]


def time_help(runs: int) -> list[float]:
    command = [*gpuhost_command(), "--help"]
    env = {**os.environ, "COLUMNS": "100"}
    subprocess.run(command, capture_output=True, check=True, env=env)  # warm the file cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env)
        samples.append(time.perf_counter() - start)
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def import_times() -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    """Of one `gpuhost --help`: the import roots (module, cumulative us), the time spent in
    each top-level package's own modules (package, self us), and the total."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gpuhost_cli", "--help"],
        capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "100"},
    )
    roots: list[tuple[str, int]] = []
    by_package: dict[str, int] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        own, cumulative, raw_name = int(fields[0]), int(fields[1]), fields[2]
        name = raw_name.strip()
        package = name.split(".")[0]
        by_package[package] = by_package.get(package, 0) + own
        if not raw_name.startswith("  "):  # nested imports are indented by two spaces a level
            roots.append((name, cumulative))
    total = sum(by_package.values())
    return (sorted(roots, key=lambda item: item[1], reverse=True),
            sorted(by_package.items(), key=lambda item: item[1], reverse=True), total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console()
    samples = time_help(args.runs)
    table = Table(title=f"gpuhost --help, {args.runs} runs ({' '.join(gpuhost_command())})", title_justify="left")
    for column in ("median", "p90", "min", "max"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{value * 1000:.0f} ms" for value in (
        statistics.median(samples), percentile(samples, 0.9), min(samples), max(samples))))
    console.print(table)

    roots, packages, total = import_times()
    for title, rows, header in (
        ("Import roots of gpuhost --help (cumulative)", roots, "module"),
        ("Import time by package (own modules only)", packages, "package"),
    ):
        table = Table(title=f"{title}; {total / 1000:.0f} ms of imports in all", title_justify="left")
        table.add_column(header)
        table.add_column("time", justify="right")
        table.add_column("share", justify="right")
        for name, micros in rows[: args.top]:
            table.add_row(name, f"{micros / 1000:.1f} ms", f"{100 * micros / total:.0f}%" if total else "")
        console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
