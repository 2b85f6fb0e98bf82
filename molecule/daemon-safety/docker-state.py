#!/usr/bin/python3
"""Print, as JSON, what the daemon-safety checks compare before and after each step."""
import hashlib
import json
import subprocess


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


journal = run("journalctl", "--unit", "docker.service", "--no-pager", "--output", "cat")
info_text = run("docker", "info", "--format", "{{json .}}")
info = json.loads(info_text) if info_text.startswith("{") else {}
try:
    with open("/etc/docker/daemon.json", "rb") as handle:
        daemon_json = hashlib.sha256(handle.read()).hexdigest()
except OSError:
    daemon_json = None
job = run("docker", "inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", "gpuhost-job")
print(json.dumps({
    "pid": run("systemctl", "show", "--property", "MainPID", "--value", "docker.service"),
    "active": run("systemctl", "is-active", "docker.service"),
    "reloads": sum(1 for line in journal.splitlines() if line.startswith("Reloaded ")),
    "daemon_json": daemon_json,
    "job": job,
    "job_running": job.startswith("true"),
    "mirrors": (info.get("RegistryConfig") or {}).get("Mirrors") or [],
    "live_restore": info.get("LiveRestoreEnabled"),
    "default_runtime": info.get("DefaultRuntime"),
}))
