#!/usr/bin/python3
"""Print, as JSON, what the daemon-safety checks compare before and after each step."""
import grp
import hashlib
import json
import os
import stat
import subprocess


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


journal = run("journalctl", "--unit", "docker.service", "--no-pager", "--output", "cat")
info_text = run("docker", "info", "--format", "{{json .}}")
info = json.loads(info_text) if info_text.startswith("{") else {}
try:
    with open("/etc/docker/daemon.json", "rb") as handle:
        raw = handle.read()
    daemon_json = hashlib.sha256(raw).hexdigest()
    st = os.stat("/etc/docker/daemon.json")
    daemon_json_mode = oct(stat.S_IMODE(st.st_mode))
    daemon_json_group = grp.getgrgid(st.st_gid).gr_name
    bom = raw.startswith(b"\xef\xbb\xbf")
except OSError:
    daemon_json = daemon_json_mode = daemon_json_group = bom = None
job = run("docker", "inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", "gpuhost-job")
print(json.dumps({
    "pid": run("systemctl", "show", "--property", "MainPID", "--value", "docker.service"),
    "active": run("systemctl", "is-active", "docker.service"),
    "reloads": sum(1 for line in journal.splitlines() if line.startswith("Reloaded ")),
    "daemon_json": daemon_json,
    "daemon_json_mode": daemon_json_mode,
    "daemon_json_group": daemon_json_group,
    "bom": bom,
    # Files gpuhost leaves beside daemon.json: backups only, no temporary or rollback copies.
    "leftovers": sorted(name for name in os.listdir("/etc/docker") if name.startswith(".daemon.json")),
    "backups": sum(1 for name in os.listdir("/etc/docker") if name.endswith(".bak")),
    "job": job,
    "job_running": job.startswith("true"),
    "mirrors": (info.get("RegistryConfig") or {}).get("Mirrors") or [],
    "live_restore": info.get("LiveRestoreEnabled"),
    "default_runtime": info.get("DefaultRuntime"),
}))
