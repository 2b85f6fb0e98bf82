"""Filters that compare what daemon.json asks for with what dockerd runs (``docker info``).

``docker_daemon_drift(config, info)``
    The daemon.json keys whose effect ``docker info`` does not show: the file changed but
    Docker was not reloaded or restarted since (a run stopped between writing the file and
    applying it, or someone edited the file by hand). Every key it checks is one Docker
    applies on reload.

``docker_daemon_restart_plan(plan, info, allow_disruption)``
    What applying a daemon.json change takes on this host: nothing, a reload, a restart
    (first a reload when that switches live-restore on, so running containers survive), or
    deferring the host because a restart would stop running containers.
"""

from __future__ import annotations

from typing import Any


def _mirror(url: str) -> str:
    # dockerd reports each registry mirror with one trailing slash.
    return url.rstrip("/") + "/"


def docker_daemon_drift(config: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """Keys of ``config`` whose value dockerd does not run with, per ``docker info``."""
    drift = []
    default_runtime = config.get("default-runtime", "runc")
    if default_runtime in ("io.containerd.runc.v2",):
        default_runtime = "runc"
    if (info.get("DefaultRuntime") or "runc") != default_runtime:
        drift.append("default-runtime")
    running_runtimes = set((info.get("Runtimes") or {}).keys())
    if not set((config.get("runtimes") or {}).keys()) <= running_runtimes:
        drift.append("runtimes")
    mirrors = [_mirror(m) for m in config.get("registry-mirrors") or []]
    running_mirrors = [_mirror(m) for m in ((info.get("RegistryConfig") or {}).get("Mirrors") or [])]
    if mirrors != running_mirrors:
        drift.append("registry-mirrors")
    if bool(config.get("live-restore", False)) != bool(info.get("LiveRestoreEnabled", False)):
        drift.append("live-restore")
    if bool(config.get("debug", False)) != bool(info.get("Debug", False)):
        drift.append("debug")
    if not set(config.get("labels") or []) <= set(info.get("Labels") or []):
        drift.append("labels")
    return sorted(drift)


def docker_daemon_restart_plan(plan: dict[str, Any], info: dict[str, Any] | None,
                               allow_disruption: bool = False) -> dict[str, Any]:
    """Decide how to apply a planned daemon.json change.

    ``plan`` is the docker_daemon_config module's check-mode result (``changed_keys``,
    ``reload_sufficient``, ``config``); its ``changed`` flag is not used, since the task
    that plans reports no change itself. ``info`` is ``docker info`` as a dict, or None
    when dockerd is not running. Returns ``action`` (none, reload, restart, defer),
    ``reload_first``, ``drift`` and, for defer, ``reason``.
    """
    config = plan.get("config") or {}
    running = info is not None
    drift = docker_daemon_drift(config, info) if running else []
    result = {"action": "none", "reload_first": False, "drift": drift, "reason": ""}
    if not plan.get("changed_keys"):
        if drift:
            result["action"] = "reload"
        return result
    if plan.get("reload_sufficient") or not running:
        result["action"] = "reload" if running else "restart"
        return result
    containers = int(info.get("ContainersRunning") or 0)
    live_restore_now = bool(info.get("LiveRestoreEnabled"))
    live_restore_next = bool(config.get("live-restore", False))
    result["action"] = "restart"
    if containers == 0 or live_restore_now or allow_disruption:
        return result
    if live_restore_next:
        # live-restore is applied by a reload; after it the restart keeps containers running.
        result["reload_first"] = True
        return result
    result["action"] = "defer"
    result["reason"] = (
        f"{containers} container(s) running and live-restore is off: a restart of Docker "
        "would stop them"
    )
    return result


class FilterModule:
    """gpuhost's docker_daemon filters."""

    def filters(self):
        return {
            "docker_daemon_drift": docker_daemon_drift,
            "docker_daemon_restart_plan": docker_daemon_restart_plan,
        }
