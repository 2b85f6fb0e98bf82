"""Masked systemd units, for the roles' preflights.

A masked unit (``systemctl mask X`` links ``/etc/systemd/system/X`` to ``/dev/null``) cannot be
started or enabled; systemd's own error would come only mid-run, after other changes. The
preflights read the units a role will start with ``systemctl show`` and stop the host first.

``gpuhost_masked_units(show_output, host, needed_by)``
    One message for each masked unit in ``show_output`` (the output of
    ``systemctl show --property=Id,LoadState,FragmentPath,UnitFileState -- UNIT...``) that
    ``needed_by`` names, in the order of the output; an empty list when none is masked.
    ``needed_by`` maps a unit to why gpuhost starts it and, optionally, the variable that turns
    that off: ``{unit: {why, var}}``, or ``{unit: var}`` for a unit a variable asks for. Each message names ``host``, the unit, the file that masks
    it, and the fix: ``systemctl unmask`` (``--runtime`` for a mask under /run), or the variable
    set to false.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

RUNTIME_DIRS = ("/run/systemd/",)


def parse_systemctl_show(text: str) -> list[dict[str, str]]:
    """The blocks of ``systemctl show`` (one per unit, blank-line separated) as dicts."""
    units: list[dict[str, str]] = []
    block: dict[str, str] = {}
    for line in str(text).splitlines():
        if not line.strip():
            if block:
                units.append(block)
                block = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            block[key.strip()] = value.strip()
    if block:
        units.append(block)
    return units


def masked_units(text: str) -> list[dict[str, Any]]:
    """``[{unit, path, runtime}]`` for each masked unit of ``systemctl show``'s output."""
    found = []
    for block in parse_systemctl_show(text):
        if block.get("LoadState") != "masked" and not block.get("UnitFileState", "").startswith("masked"):
            continue
        unit = block.get("Id", "")
        path = block.get("FragmentPath") or ""
        runtime = block.get("UnitFileState") == "masked-runtime" or path.startswith(RUNTIME_DIRS)
        if not path:
            path = ("/run/systemd/system/" if runtime else "/etc/systemd/system/") + unit
        found.append({"unit": unit, "path": path, "runtime": runtime})
    return found


def _message(host: str, masked: Mapping[str, Any], need: Mapping[str, Any]) -> str:
    unit = masked["unit"]
    unmask = f"sudo systemctl unmask {'--runtime ' if masked['runtime'] else ''}{unit}"
    kind = " (a runtime mask, gone at the next boot)" if masked["runtime"] else ""
    why = str(need.get("why") or "gpuhost starts it")
    var = need.get("var")
    fix = f"Unmask it with `{unmask}`"
    if var:
        fix += f", or set {var}: false for this host"
    return (
        f"{host}: {unit} is masked: {masked['path']} -> /dev/null{kind}, so systemd refuses to "
        f"start it, and {why}. Nothing was changed. {fix}, then run gpuhost again."
    )


def _need(value: Any) -> Mapping[str, Any]:
    """``{why, var}``; a plain string is the variable that asks for the unit."""
    if isinstance(value, Mapping):
        return value
    return {"why": f"{value} is true", "var": value} if value else {}


def gpuhost_masked_units(show_output: Any, host: Any, needed_by: Any) -> list[str]:
    if not isinstance(show_output, str):
        raise AnsibleFilterError(
            f"gpuhost_masked_units expects the output of systemctl show (a string), got {type(show_output).__name__}"
        )
    if not isinstance(needed_by, Mapping):
        raise AnsibleFilterError(
            f"gpuhost_masked_units expects needed_by as a mapping of unit to {{why, var}}, got {type(needed_by).__name__}"
        )
    return [
        _message(str(host), masked, _need(needed_by[masked["unit"]]))
        for masked in masked_units(show_output)
        if masked["unit"] in needed_by
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"gpuhost_masked_units": gpuhost_masked_units}
