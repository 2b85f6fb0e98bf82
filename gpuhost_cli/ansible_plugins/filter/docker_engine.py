"""Filters of the docker role: whether the engine package may change now, and why Docker did not start.

``docker_engine_plan(dpkg_stdout, package, pin, policy_stdout, info, allow_disruption)``
    What the role's install step would do to the engine package (``docker-ce`` from Docker's
    repository, ``docker.io`` from the distribution): nothing, install it, change it, or
    defer the host. Installing a different engine version restarts dockerd. Docker's
    live-restore keeps containers running across an engine upgrade only between patch
    releases of one major.minor, and only when it is on; a new major or minor release, a
    downgrade across one, or a switch between docker-ce and docker.io stops them. Such a
    change while containers run defers the host unless ``allow_disruption``.

``docker_config_refusal(content_b64, path, validate, journal)``
    Whether Docker refuses its daemon.json: the file (read with slurp) starts with a UTF-8
    byte-order mark (Docker 20.10 refuses one), is not a JSON object, ``dockerd --validate``
    (Docker 23 and later) rejects it, or the last lines of Docker's journal say so. Returns
    the reason, or an empty string.

``docker_installed_packages(dpkg_stdout)``
    The names of the installed packages in ``dpkg-query`` output of the role's format
    (``__docker_dpkg_query``), in output order: the same reading the engine plan uses.

``docker_engine_cdi(server_version, configured_cdi)``
    ``[cdi_supported, cdi_enabled]`` of a running engine and daemon.json's features.cdi, by
    the rule of ``module_utils/gpuhost_docker_cdi.py`` (None where the version is unknown).

Pure functions over the probes' output; the role's tasks only run the probes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ansible.module_utils

# The module_utils the host-side modules import, under the same names, so daemon.json is
# parsed by one implementation on the host and on the controller.
_MODULE_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.gpuhost_docker_cdi import docker_cdi  # noqa: E402
from ansible.module_utils.gpuhost_daemon_json import (  # noqa: E402
    BOM,
    DaemonConfigError,
    parse_config_text,
)

NONE = "none"
INSTALL = "install"
CHANGE = "change"
DEFER = "defer"

_RELEASE = re.compile(r"^(\d+)\.(\d+)")
# dockerd's own words when it stops on its configuration file (20.10 to 28).
_JOURNAL_CONFIG = re.compile(
    r"unable to configure the Docker daemon with file (?P<file>\S+?):? (?P<why>.*)"
    r"|(?P<conflict>the following directives are specified both as a flag and in the configuration file.*)"
    r"|(?P<unknown>the following directives don't match any configuration option.*)",
    re.IGNORECASE,
)


def installed_packages(dpkg_stdout: str) -> dict[str, str]:
    """``{package: version}`` of the installed packages in ``dpkg-query --showformat
    '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'`` output (not removed ones)."""
    found: dict[str, str] = {}
    for line in (dpkg_stdout or "").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not parts[0] or not parts[1]:
            continue
        status = parts[2]
        # The second letter is the package's state: n(ot-installed) and c(onfig-files) are gone.
        if len(status) >= 2 and status[1] not in "nc":
            found[parts[0]] = parts[1]
    return found


def docker_installed_packages(dpkg_stdout: str) -> list[str]:
    return list(installed_packages(dpkg_stdout))


def policy_candidate(policy_stdout: str) -> str:
    """The ``Candidate:`` version of ``apt-cache policy PACKAGE``, or an empty string."""
    match = re.search(r"^\s*Candidate:\s*(\S+)", policy_stdout or "", re.MULTILINE)
    return match.group(1) if match and match.group(1) != "(none)" else ""


def _without_epoch(version: str) -> str:
    return version.split(":", 1)[1] if re.match(r"^\d+:", version) else version


def upstream_version(version: str) -> str:
    """The upstream part of a Debian version: ``5:27.5.1-1~debian.12~bookworm`` → ``27.5.1``."""
    bare = _without_epoch(version or "")
    return bare.rsplit("-", 1)[0] if "-" in bare else bare


def release(version: str) -> tuple[int, int] | None:
    """The major.minor release of a Debian version of Docker (``27.5``), or None."""
    match = _RELEASE.match(upstream_version(version))
    return (int(match.group(1)), int(match.group(2))) if match else None


def same_version(installed: str, pin: str) -> bool:
    """A pin names the installed version (apt takes a pin with or without the epoch)."""
    if installed == pin:
        return True
    return not re.match(r"^\d+:", pin) and _without_epoch(installed) == pin


def _show_release(version: str) -> str:
    found = release(version)
    return f"{found[0]}.{found[1]}" if found else upstream_version(version) or "?"


def docker_engine_plan(dpkg_stdout: str, package: str, pin: str = "", policy_stdout: str = "",
                       info: Mapping[str, Any] | None = None, allow_disruption: bool = False) -> dict[str, Any]:
    """Decide whether the engine package may change on this host now.

    ``dpkg_stdout`` lists the installed engine packages (see :func:`installed_packages`);
    ``package`` is the one the role installs (docker-ce or the distribution's docker.io);
    ``pin`` is docker_version ("" for none); ``policy_stdout`` is ``apt-cache policy
    PACKAGE`` (its candidate names what a switch of package would install); ``info`` is
    ``docker info`` as a dict, or None when Docker does not answer.

    Returns ``action`` (none, install, change, defer), ``installed`` and ``target`` ("name
    version"), ``change`` (what would change, in words), ``running`` (containers),
    ``reason`` (why the change is safe, allowed or deferred) and ``message`` (for defer:
    the sentence after "DEFERRED <host>: ").
    """
    installed = installed_packages(dpkg_stdout)
    running = int((info or {}).get("ContainersRunning") or 0)
    live_restore = bool((info or {}).get("LiveRestoreEnabled"))
    candidate = pin or policy_candidate(policy_stdout)
    plan: dict[str, Any] = {"action": NONE, "installed": "", "target": "", "change": "", "running": running,
                            "reason": "", "message": ""}

    if package in installed:
        current = installed[package]
        plan["installed"] = f"{package} {current}"
        if not pin or same_version(current, pin):
            plan["reason"] = f"{package} {current} is installed" + (" as pinned" if pin else " (no pin: not upgraded)")
            return plan
        plan["target"] = f"{package} {pin}"
        old, new = release(current), release(pin)
        plan["change"] = f"{package} {current} would become {pin}"
        if old is not None and old == new:
            kind = "patch"
            why = f"a patch release within {_show_release(pin)}"
        else:
            kind = "release"
            why = (f"{_show_release(current)} to {_show_release(pin)}, another major or minor release: Docker's "
                   f"live-restore keeps containers only across patch releases")
    else:
        others = {name: version for name, version in installed.items() if name != package}
        if not others:
            plan.update(action=INSTALL, target=f"{package} {candidate}".strip(),
                        reason=f"no Docker engine is installed: {package} is installed")
            return plan
        name, current = sorted(others.items())[0]
        plan["installed"] = f"{name} {current}"
        plan["target"] = f"{package} {candidate}".strip()
        plan["change"] = f"{name} {current} would be replaced by {plan['target']}"
        kind = "switch"
        why = f"{package} replaces {name}: the engine is removed and installed again, which stops every container"

    if running == 0:
        plan.update(action=CHANGE, reason=f"{why}; no container runs")
        return plan
    if kind == "patch" and live_restore:
        plan.update(action=CHANGE, reason=f"{why}, and live-restore is on: the {running} running container(s) "
                                          f"keep running")
        return plan
    if kind == "patch":
        why = f"{why}, but live-restore is off: restarting Docker stops the containers"
    if allow_disruption:
        plan.update(action=CHANGE, reason=f"{why}; docker_allow_disruption is true: the {running} running "
                                          f"container(s) stop when Docker restarts")
        return plan
    plan.update(
        action=DEFER,
        reason=why,
        message=(
            f"{plan['change']} while {running} container(s) run ({why}). Nothing was changed on this host. "
            f"To finish it: stop the containers and run again, or set docker_allow_disruption: true "
            f"(the containers stop when Docker restarts)."
        ),
    )
    return plan


def _decode(content_b64: str | None) -> bytes | None:
    if not content_b64:
        return None
    try:
        return base64.b64decode(content_b64, validate=True)
    except (binascii.Error, ValueError):
        return None


def docker_config_refusal(content_b64: str | None, path: str, validate: Mapping[str, Any] | None = None,
                          journal: str = "") -> str:
    """Why Docker refuses its configuration file ``path``, or "" when nothing says it does.

    ``content_b64`` is the file as slurp returns it (None or "" when missing); ``validate``
    the result of ``dockerd --validate --config-file PATH`` (ignored where dockerd has no
    --validate, before Docker 23); ``journal`` the last lines of Docker's journal.
    """
    raw = _decode(content_b64)
    if raw is not None:
        if raw.startswith(BOM.encode("utf-8")):
            return "it starts with a UTF-8 byte-order mark, which Docker 20.10 refuses"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"it is not UTF-8 text (invalid byte at offset {exc.start})"
        try:
            parse_config_text(text, path)
        except DaemonConfigError as exc:
            return exc.msg.removeprefix("docker_daemon: ").split(". The file was left untouched")[0]
    if validate and not validate.get("skipped") and validate.get("rc") not in (None, 0):
        said = f"{validate.get('stderr') or ''}\n{validate.get('stdout') or ''}".strip()
        if "unknown flag" not in said:
            return f"dockerd --validate: {said.splitlines()[-1] if said else 'rejected'}"
    lines = (journal or "").splitlines()
    # Only Docker's last start: after the last "Starting ..." line systemd wrote for it.
    starts = [i for i, line in enumerate(lines) if re.match(r"^Starting (docker|Docker)", line)]
    for line in reversed(lines[starts[-1] if starts else 0:]):
        match = _JOURNAL_CONFIG.search(line)
        if not match:
            continue
        if match.group("file") and match.group("file").rstrip(":") != path:
            continue
        said = match.group(0).strip()
        return f"Docker's journal: {said[:300]}"
    return ""


def docker_engine_cdi(server_version: str | None, configured_cdi: bool | None = None) -> list[bool | None]:
    """``[cdi_supported, cdi_enabled]`` for a running engine's version and features.cdi."""
    return list(docker_cdi(server_version, configured_cdi))


class FilterModule:
    """The docker role's decisions."""

    def filters(self) -> dict[str, Any]:
        return {
            "docker_engine_plan": docker_engine_plan,
            "docker_config_refusal": docker_config_refusal,
            "docker_engine_cdi": docker_engine_cdi,
            "docker_installed_packages": docker_installed_packages,
        }
