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

``docker_daemon_cdi_plan(server_version, wanted, spec_present)``
    Whether daemon.json needs ``"features": {"cdi": true}`` for ``docker run --device
    nvidia.com/gpu=all`` (Docker 25.0 to 28.1), by the rule of
    ``module_utils/gpuhost_docker_cdi.py``, and what to tell or refuse.

``docker_daemon_registry_ca_problems(entries)``
    The preflight of docker_daemon_registry_ca_certs (``module_utils/gpuhost_registry_ca.py``):
    each registry a ``host[:port]``, each cert PEM text of certificates OpenSSL reads.

``docker_daemon_registry_ca_files(entries, certs_dir)``
    The files those entries write, as items of the converged-host plan.

``docker_daemon_settings_problems(settings, allow_insecure, extra_keys, origins)``
    The role's preflight: the daemon.json rules of ``module_utils/gpuhost_daemon_schema.py``
    (the module's own code) run on the controller against the settings of the inventory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ansible.module_utils

# The module_utils the host-side modules import, under the same names, so each rule has
# one implementation on the host and on the controller.
_MODULE_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.gpuhost_daemon_json import merge_settings  # noqa: E402
from ansible.module_utils.gpuhost_daemon_schema import check_config, live_restore_unsafe  # noqa: E402
from ansible.module_utils import gpuhost_docker_cdi as cdi  # noqa: E402
from ansible.module_utils.gpuhost_registry_ca import ca_cert_path, ca_cert_problems  # noqa: E402


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


def docker_daemon_running(info: dict[str, Any] | None) -> bool:
    """Whether ``docker info`` came from a running dockerd.

    The client prints its own part and exits 0 with ``ServerErrors`` when it cannot reach
    the daemon (Docker 20.10 does so as JSON), so a reading without a server version is a
    dockerd that does not run.
    """
    return bool(info) and not info.get("ServerErrors") and bool(info.get("ServerVersion"))


def docker_daemon_restart_plan(plan: dict[str, Any], info: dict[str, Any] | None,
                               allow_disruption: bool = False) -> dict[str, Any]:
    """Decide how to apply a planned daemon.json change.

    ``plan`` is the docker_daemon_config module's check-mode result (``changed``,
    ``changed_keys``, ``reload_sufficient``, ``config``). ``info`` is ``docker info`` as a
    dict, or None when dockerd is not running. Returns ``action`` (none, reload, restart,
    defer), ``reload_first``, ``drift``, ``start_after_failure`` and, for defer, ``reason``.

    A restart stops running containers unless live-restore is on, and even then when it
    changes a key live-restore does not survive (bridge addresses, data root, storage
    driver, ...). Such a restart while containers run is deferred unless
    ``allow_disruption``. A dockerd that does not run is started with the new file.
    """
    config = plan.get("config") or {}
    keys = list(plan.get("changed_keys") or [])
    running = docker_daemon_running(info)
    drift = docker_daemon_drift(config, info) if running else []
    result = {"action": "none", "reload_first": False, "drift": drift, "reason": "",
              "start_after_failure": not running}
    if not running:
        # Docker is down (its daemon.json was refused, or it was stopped): start it with
        # the repaired file. Nothing runs that a restart could stop.
        result["action"] = "restart"
        return result
    if not keys:
        if drift:
            result["action"] = "reload"
        return result
    if plan.get("reload_sufficient"):
        result["action"] = "reload"
        return result
    result["action"] = "restart"
    containers = int(info.get("ContainersRunning") or 0)
    if containers == 0 or allow_disruption:
        return result
    unsafe = live_restore_unsafe(keys)
    if unsafe:
        result["action"] = "defer"
        result["reason"] = (
            f"{containers} container(s) running and {', '.join(unsafe)} changes: live-restore does not "
            "keep containers across a restart that changes "
            f"{'it' if len(unsafe) == 1 else 'them'}, so a restart of Docker would stop them"
        )
        return result
    if bool(info.get("LiveRestoreEnabled")):
        return result
    if bool(config.get("live-restore", False)):
        # live-restore is applied by a reload; after it the restart keeps containers running.
        result["reload_first"] = True
        return result
    result["action"] = "defer"
    result["reason"] = (
        f"{containers} container(s) running and live-restore is off: a restart of Docker "
        "would stop them"
    )
    return result


def docker_daemon_cdi_plan(server_version: str | None, wanted: Any = "auto",
                           spec_present: bool = False) -> dict[str, Any]:
    """What the docker_daemon role does about CDI on one host.

    ``server_version`` is what dockerd reports (None or "" when it does not run),
    ``wanted`` is docker_daemon_cdi (``auto``, true or false) and ``spec_present`` whether
    a CDI spec lies in /etc/cdi or /var/run/cdi. Returns ``support`` (none, flag, default,
    unknown), ``set_feature`` (merge ``"features": {"cdi": true}``), ``problem`` (a reason
    to stop the host, else "") and ``note`` (something to report, else "").
    """
    support = cdi.engine_cdi_support(server_version)
    result = {"support": support, "set_feature": False, "problem": "", "note": ""}
    if wanted is False or wanted == "false":
        return result
    required = wanted is True or wanted == "true"
    if support == cdi.UNKNOWN:
        result["note"] = ("Docker is not running, so whether it needs \"features\": {\"cdi\": true} "
                          "is decided on a run where it does")
    elif support == cdi.NONE:
        why = (f"Docker {server_version} cannot inject CDI devices (--device nvidia.com/gpu=all): "
               "that needs Docker 25.0 or newer")
        if required:
            result["problem"] = why
        elif spec_present:
            result["note"] = why + "; --gpus and the nvidia runtime work as before"
    elif support == cdi.FLAG:
        if required or spec_present:
            result["set_feature"] = True
        else:
            result["note"] = ("no CDI spec in /etc/cdi or /var/run/cdi (no NVIDIA driver?), so "
                              "\"features\": {\"cdi\": true} is not set")
    return result


def _origin_label(origins: dict[str, str]):
    def label(path: str) -> str:
        top = path
        for index, char in enumerate(path):
            if char in ".[":
                top = path[:index]
                break
        if top in origins:
            return origins[top] + path[len(top):]
        return f"docker_daemon_options['{top}']{path[len(top):]}"
    return label


def docker_daemon_settings_problems(settings: dict[str, Any], allow_insecure: bool = False,
                                    extra_keys: list[str] | None = None,
                                    origins: dict[str, str] | None = None) -> dict[str, list[str]]:
    """The daemon.json rules run on the settings gpuhost would merge: ``errors`` and ``warnings``.

    ``origins`` maps a top-level key to the role variable it comes from (for example
    ``registry-mirrors`` to ``docker_daemon_registry_mirrors``), so messages name what
    the user wrote; other keys are named as ``docker_daemon_options['key']``.
    """
    if not isinstance(settings, dict):
        return {"errors": [f"docker_daemon: the settings to merge must be a dictionary, got {settings!r}"],
                "warnings": []}
    # What the settings add, as the module merges them: a null (at any depth) removes a key
    # and is not a value to judge.
    settings = merge_settings({}, settings)
    errors, warnings = check_config(settings, user_keys=None, allow_insecure=bool(allow_insecure),
                                    extra_keys=extra_keys or (), label=_origin_label(origins or {}))
    return {"errors": errors, "warnings": warnings}


def docker_daemon_registry_ca_problems(entries: Any) -> list[str]:
    """The problems of docker_daemon_registry_ca_certs, each with the entry and the fix."""
    return ca_cert_problems(entries)


def docker_daemon_registry_ca_files(entries: Any, certs_dir: str) -> list[dict[str, Any]]:
    """The converged-host plan's items for the CA files the role writes (their bytes, mode, owner)."""
    return [{"file": ca_cert_path(entry["registry"], certs_dir), "attrs": True} for entry in entries or []]


class FilterModule:
    """gpuhost's docker_daemon filters."""

    def filters(self):
        return {
            "docker_daemon_cdi_plan": docker_daemon_cdi_plan,
            "docker_daemon_drift": docker_daemon_drift,
            "docker_daemon_restart_plan": docker_daemon_restart_plan,
            "docker_daemon_settings_problems": docker_daemon_settings_problems,
            "docker_daemon_registry_ca_problems": docker_daemon_registry_ca_problems,
            "docker_daemon_registry_ca_files": docker_daemon_registry_ca_files,
        }
