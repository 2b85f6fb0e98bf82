"""Filters over the NVIDIA Container Toolkit's security table and per-version behaviour, for the role.

The table and the version rule live in ``module_utils/gpuhost_toolkit_security.py``, which the
``gpu_facts`` module also imports on hosts; these filters import the same file on the controller.
What each release's ``nvidia-ctk`` accepts lives in ``module_utils/gpuhost_toolkit_versions.py``.

``nvidia_toolkit_security(version)``
    What a pin lacks: ``{version, floor, below_floor, missing_fixes, cves, summary}``. An empty
    version (no pin) lacks nothing.

``nvidia_toolkit_missing_fixes(version)``
    The table's rows (``fixed_in``, ``cves``, ``bulletin``, ``published``) whose fix ``version``
    does not carry, oldest first.

``nvidia_toolkit_security_floor(value)``
    The newest fixed-in release of the table; the input is ignored (``'' | nvidia_toolkit_security_floor``).

``nvidia_toolkit_dev_char_symlinks_args(version)``
    The ``nvidia-ctk`` arguments that create the /dev/char links on the installed toolkit
    ``version``: ``[system, create-dev-char-symlinks, --create-all]``, without ``--create-all`` on
    1.18.0 and its pre-releases, which refuse it. An empty or malformed version is an error.

``nvidia_toolkit_refresh_units_shipped(version)``
    Whether the installed toolkit ``version`` ships NVIDIA's ``nvidia-cdi-refresh`` units
    (1.18.0's first pre-release and newer). An empty or malformed version is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ansible.module_utils
from ansible.errors import AnsibleFilterError

_MODULE_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.gpuhost_toolkit_security import (  # noqa: E402 - needs the path above
    missing_fixes,
    security_check,
    security_floor,
)
from ansible.module_utils.gpuhost_toolkit_versions import (  # noqa: E402 - needs the path above
    dev_char_symlinks_args,
    refresh_units_shipped,
)


def nvidia_toolkit_security(version: Any) -> dict[str, Any]:
    try:
        return security_check(version)
    except ValueError as e:
        raise AnsibleFilterError(f"nvidia_toolkit_security: {e}") from None


def nvidia_toolkit_missing_fixes(version: Any) -> list[dict[str, Any]]:
    try:
        return missing_fixes(version)
    except ValueError as e:
        raise AnsibleFilterError(f"nvidia_toolkit_missing_fixes: {e}") from None


def nvidia_toolkit_security_floor(_value: Any = None) -> str:
    return security_floor()


def nvidia_toolkit_dev_char_symlinks_args(version: Any) -> list[str]:
    try:
        return dev_char_symlinks_args(version)
    except ValueError as e:
        raise AnsibleFilterError(f"nvidia_toolkit_dev_char_symlinks_args: {e}") from None


def nvidia_toolkit_refresh_units_shipped(version: Any) -> bool:
    try:
        return refresh_units_shipped(version)
    except ValueError as e:
        raise AnsibleFilterError(f"nvidia_toolkit_refresh_units_shipped: {e}") from None


class FilterModule:
    """gpuhost's NVIDIA Container Toolkit filters."""

    def filters(self):
        return {
            "nvidia_toolkit_security": nvidia_toolkit_security,
            "nvidia_toolkit_missing_fixes": nvidia_toolkit_missing_fixes,
            "nvidia_toolkit_security_floor": nvidia_toolkit_security_floor,
            "nvidia_toolkit_dev_char_symlinks_args": nvidia_toolkit_dev_char_symlinks_args,
            "nvidia_toolkit_refresh_units_shipped": nvidia_toolkit_refresh_units_shipped,
        }
