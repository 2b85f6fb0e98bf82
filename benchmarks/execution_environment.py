"""The execution environment, end to end: build it, then run the collection's site playbook
from it against a lab host, twice, with ansible-runner.

    .venv/bin/python benchmarks/execution_environment.py [--cold] [--no-full-run]
        [--tag gpuhost-ee:latest] [--work .cache/ee] [--json FILE]

Steps, each timed:

* base_image: ee/build-base-image.sh, the local Debian 12 base (debootstrap + docker import);
  reused when it exists, unless --cold;
* collection, wheelhouse, ansible_builder_build: ee/build.sh on that base: the collection
  tarball (`gpuhost collection build`), the wheels the build's pip installs (pip download on
  this machine: no image build here reaches PyPI) and `ansible-builder build`;
* lab_up: `gpuhost lab up --hosts 1 --distro debian12` (a systemd host reached over SSH);
* first_run: `ansible-runner run DIR --process-isolation --process-isolation-executable docker
  --container-image TAG --container-option=--network=LAB -p gpuhost.gpuhost.site`, with the
  lab's inventory in DIR/inventory and its SSH key in DIR/env/ssh_key (ansible-runner hands
  it to ssh-agent in the container, as AWX does with a machine credential);
* second_run: the same again; it must change nothing (changed=0 for every host);
* full_run: the same with gpuhost_full_run=true, every role run again (skip with
  --no-full-run); it must change nothing either;
* lab_down: `gpuhost lab down`, also when a step failed.

--cold measures what a fresh CI machine pays: it deletes the base image and its debootstrap
package cache first, and the lab's state (its SSH key, mirror keys and stand-in mirror), and
builds with no layer cache (ansible-builder --no-cache) and no pip download cache. The lab's
host image (gpuhost-test/debian12) and the shared apt cache are the test suite's and are
reused as they are.

Prints a table and writes a JSON record (date, commit, machine, versions, the steps and each
run's recap) to --json (default WORK/benchmark.json). Exits non-zero when a step fails or a
second run changed something. The figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_size import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
BASE_IMAGE = "gpuhost-ee-base/debian12:latest"
DEBOOTSTRAP_CACHE = Path(os.environ.get("EE_DEBOOTSTRAP_CACHE", "/var/cache/gpuhost-ee/debootstrap"))
LAB_NAME = "gpuhost-eelab"
PLAYBOOK = "gpuhost.gpuhost.site"


class BenchmarkError(Exception):
    """A step failed; the message says which and why."""


def log(message: str) -> None:
    print(f"[ee-benchmark] {message}", file=sys.stderr, flush=True)


def run(command: Sequence[str], log_file: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True, keep_stdout: bool = False) -> subprocess.CompletedProcess:
    """Run a command; its output goes to log_file when one is given (else it is captured);
    keep_stdout captures stdout and logs only stderr."""
    if log_file is not None:
        with log_file.open("w", encoding="utf-8") as out:
            proc = subprocess.run(list(command), stdout=subprocess.PIPE if keep_stdout else out,
                                  stderr=out if keep_stdout else subprocess.STDOUT, text=True,
                                  env=env, cwd=REPO, check=False)
    else:
        proc = subprocess.run(list(command), capture_output=True, text=True, env=env, cwd=REPO, check=False)
    if check and proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace") if log_file else (proc.stderr or proc.stdout)
        tail = "\n".join(tail.strip().splitlines()[-30:])
        raise BenchmarkError(f"{' '.join(command[:3])} ... failed (exit {proc.returncode}):\n{tail}")
    return proc


#: The settings of the checkout's ansible.cfg a collection user copies into the project's own
#: ansible.cfg (docs/awx.md): not its paths, the collection finds its own roles and plugins.
PROJECT_SETTINGS = {"defaults": ("interpreter_python", "forks", "timeout"),
                    "ssh_connection": ("pipelining", "ssh_args")}


def project_ansible_cfg(source: Path = REPO / "ansible.cfg") -> str:
    parser = configparser.RawConfigParser()
    parser.read(source, encoding="utf-8")
    lines = [f"# From {source.name} of the gpuhost checkout: the settings a project copies (docs/awx.md)."]
    for section, keys in PROJECT_SETTINGS.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {parser.get(section, key)}" for key in keys if parser.has_option(section, key)]
    return "\n".join(lines) + "\n"


def private_data_dir(directory: Path, inventory: Path, ssh_key: Path) -> Path:
    """An ansible-runner private data dir for the lab: its inventory (without the key path,
    which names a file on this machine), its SSH key in env/ssh_key, and in project/ the
    ansible.cfg a project of the collection's users has (ansible-runner runs the playbook
    from /runner/project)."""
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "env").mkdir(parents=True)
    (directory / "project").mkdir()
    (directory / "project" / "ansible.cfg").write_text(project_ansible_cfg(), encoding="utf-8")
    shutil.copytree(inventory, directory / "inventory")
    hosts_file = directory / "inventory" / "hosts.yml"
    hosts = yaml.safe_load(hosts_file.read_text(encoding="utf-8"))
    for group in hosts["all"]["children"].values():
        group.get("vars", {}).pop("ansible_ssh_private_key_file", None)
    hosts_file.write_text("---\n" + yaml.safe_dump(hosts, sort_keys=False), encoding="utf-8")
    key = directory / "env" / "ssh_key"
    shutil.copyfile(ssh_key, key)
    key.chmod(0o600)
    return directory


def recap(artifacts: Path) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of one ansible-runner run, per host, from its job events."""
    for event_file in sorted((artifacts / "job_events").glob("*.json")):
        event = json.loads(event_file.read_text(encoding="utf-8"))
        if event.get("event") != "playbook_on_stats":
            continue
        data = event.get("event_data", {})
        hosts = set()
        for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed"):
            hosts.update((data.get(key) or {}).keys())
        names = {"failures": "failed", "dark": "unreachable"}
        return {host: {names.get(key, key): int((data.get(key) or {}).get(host, 0))
                       for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")}
                for host in sorted(hosts)}
    raise BenchmarkError(f"no playbook_on_stats event in {artifacts}/job_events: the playbook did not finish")


def ee_run(pdd: Path, ident: str, tag: str, network: str, logs: Path, cmdline: str | None = None) -> dict[str, Any]:
    command = [str(BIN / "ansible-runner"), "run", str(pdd), "--ident", ident,
               "--process-isolation", "--process-isolation-executable", "docker",
               "--container-image", tag, f"--container-option=--network={network}", "-p", PLAYBOOK]
    if cmdline:
        command += ["--cmdline", cmdline]
    started = time.monotonic()
    proc = run(command, logs / f"{ident}.log", check=False)
    seconds = round(time.monotonic() - started, 1)
    artifacts = pdd / "artifacts" / ident
    rc = int((artifacts / "rc").read_text().strip()) if (artifacts / "rc").exists() else proc.returncode
    result = {"seconds": seconds, "rc": rc, "command": " ".join(command),
              "recap": recap(artifacts) if (artifacts / "job_events").is_dir() else {}}
    if rc != 0 or proc.returncode != 0:
        tail = "\n".join((logs / f"{ident}.log").read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
        raise BenchmarkError(f"{ident}: ansible-runner exited {proc.returncode} (playbook rc {rc}):\n{tail}")
    return result


def git(*args: str) -> str:
    return run(["git", *args], check=False).stdout.strip()


def image_facts(tag: str) -> dict[str, Any]:
    size = run(["docker", "image", "inspect", "--format", "{{.Size}}", tag]).stdout.strip()
    inside = run(["docker", "run", "--rm", tag, "sh", "-c",
                  "python3 -c 'import sys; from importlib.metadata import version; "
                  "print(*(version(p) for p in (\"ansible-core\", \"ansible-runner\", \"jinja2\", \"PyYAML\")), "
                  "sys.version.split()[0])'; "
                  "ansible-galaxy collection list gpuhost.gpuhost 2>/dev/null | awk '/^gpuhost.gpuhost/ {print $2}'"],
                 check=False).stdout.split()
    keys = ("ansible_core", "ansible_runner", "jinja2", "pyyaml", "python", "collection")
    return {"tag": tag, "size_mb": round(int(size) / 1e6), **dict(zip(keys, inside))}


def table(steps: dict[str, float], runs: dict[str, dict[str, Any]]) -> str:
    lines = ["| step | time |", "| --- | --- |"]
    for name, seconds in steps.items():
        extra = ""
        if name in runs:
            extra = "; " + ", ".join(f"{host}: ok={r['ok']} changed={r['changed']} failed={r['failed']}"
                                     for host, r in runs[name]["recap"].items())
        lines.append(f"| {name} | {seconds:.1f} s{extra} |")
    lines.append(f"| **total** | **{sum(steps.values()):.1f} s** |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true",
                        help="no base image, debootstrap cache, layer cache or pip cache to start from")
    parser.add_argument("--no-full-run", action="store_true", help="skip the run with gpuhost_full_run=true")
    parser.add_argument("--tag", default="gpuhost-ee:latest", help="the image to build (default %(default)s)")
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "ee", help="work folder (default .cache/ee)")
    parser.add_argument("--json", type=Path, help="the JSON record (default WORK/benchmark.json)")
    args = parser.parse_args(argv)

    work = args.work.resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "checkout_modified": bool(git("status", "--porcelain", "--untracked-files=no")),
        "cold": args.cold,
        "machine": machine(),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "ansible_builder": run([str(BIN / "python"), "-m", "ansible_builder", "--version"], check=False).stdout.strip(),
        "ansible_runner": run([str(BIN / "ansible-runner"), "--version"], check=False).stdout.strip(),
        "steps": {},
        "runs": {},
    }
    steps: dict[str, float] = record["steps"]
    runs: dict[str, dict[str, Any]] = record["runs"]
    state_dir = work / "lab"
    lab_started = False
    ok = False

    def timed(name: str, command: Sequence[str], env: dict[str, str] | None = None,
              keep_stdout: bool = False) -> subprocess.CompletedProcess:
        log(f"{name}: {' '.join(str(c) for c in command)}")
        started = time.monotonic()
        proc = run(command, logs / f"{name}.log", env=env, keep_stdout=keep_stdout)
        steps[name] = round(time.monotonic() - started, 1)
        log(f"{name}: {steps[name]:.1f} s")
        return proc

    try:
        if args.cold:
            log("cold: removing the base image, the image, the debootstrap cache and the lab's keys and mirror")
            run(["docker", "image", "rm", "--force", args.tag, BASE_IMAGE], check=False)
            shutil.rmtree(DEBOOTSTRAP_CACHE, ignore_errors=True)
            shutil.rmtree(state_dir, ignore_errors=True)
        timed("base_image", ["bash", "ee/build-base-image.sh", "--tag", BASE_IMAGE])

        timings = work / "build-timings.tsv"
        timings.unlink(missing_ok=True)
        build = ["bash", "ee/build.sh", "--base-image", BASE_IMAGE, "--tag", args.tag, "--work", str(work),
                 "--timings", str(timings)]
        env = dict(os.environ)
        if args.cold:
            build.append("--no-cache")
            env["PIP_NO_CACHE_DIR"] = "1"
        timed("ee_build", build, env=env)
        build_total = steps.pop("ee_build")
        for line in timings.read_text(encoding="utf-8").splitlines():
            name, seconds = line.split("\t")
            steps[name] = float(seconds)
        record["ee_build_script_seconds"] = build_total
        record["image"] = image_facts(args.tag)

        lab_started = True
        up = timed("lab_up", [str(BIN / "gpuhost"), "lab", "up", "--hosts", "1", "--distro", "debian12",
                              "--name", LAB_NAME, "--state-dir", str(state_dir), "--format", "json"],
                   keep_stdout=True)
        lab = json.loads(up.stdout)
        record["lab"] = {"hosts": lab["hosts"], "mirror": lab["mirror"], "apt_cache": lab["apt_cache"]}
        pdd = private_data_dir(work / "runner", Path(lab["inventory"]), state_dir / "id_ed25519")
        record["project_ansible_cfg"] = (pdd / "project" / "ansible.cfg").read_text(encoding="utf-8")

        plan = [("first_run", None), ("second_run", None)]
        if not args.no_full_run:
            plan.append(("full_run", """-e '{"gpuhost_full_run": true}'"""))
        for name, cmdline in plan:
            log(f"{name}: ansible-runner ... -p {PLAYBOOK}{' ' + cmdline if cmdline else ''}")
            runs[name] = ee_run(pdd, name, args.tag, LAB_NAME, logs, cmdline)
            steps[name] = runs[name]["seconds"]
            log(f"{name}: {steps[name]:.1f} s, recap {runs[name]['recap']}")
        changed_after_first = {name: {h: r["changed"] for h, r in runs[name]["recap"].items() if r["changed"]}
                               for name in runs if name != "first_run"}
        record["changed_after_first_run"] = changed_after_first
        if any(changed_after_first.values()):
            raise BenchmarkError(f"a run after the first changed something: {changed_after_first}")
        ok = True
    except BenchmarkError as exc:
        record["error"] = str(exc)
        log(f"FAILED: {exc}")
    finally:
        if lab_started:
            started = time.monotonic()
            run([str(BIN / "gpuhost"), "lab", "down", "--name", LAB_NAME, "--state-dir", str(state_dir)],
                logs / "lab_down.log", check=False)
            steps["lab_down"] = round(time.monotonic() - started, 1)
        record["ok"] = ok
        record["total_seconds"] = round(sum(steps.values()), 1)
        path = args.json or work / "benchmark.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(table(steps, runs))
        print(f"\n{'passed' if ok else 'FAILED'}; record: {path}; logs: {logs}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
