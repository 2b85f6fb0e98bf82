"""The supported-release check for the roles' preflights.

The release list lives in ``module_utils/gpuhost_platforms.py``, which the ``gpu_facts`` module
also imports on hosts and the role docs read; this filter imports the same file on the
controller.

``gpuhost_platform(ansible_facts, host)``
    ``{supported, id, version, codename, label, supported_list, message}`` for the host's
    ``distribution`` and ``distribution_version`` facts. ``message`` (empty when supported)
    names ``host``, what it runs and the supported releases.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ansible.module_utils
from ansible.errors import AnsibleFilterError

_MODULE_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.gpuhost_platforms import platform_verdict  # noqa: E402 - needs the path above


def gpuhost_platform(facts: Any, host: str | None = None) -> dict[str, Any]:
    if not isinstance(facts, Mapping):
        raise AnsibleFilterError(f"gpuhost_platform expects ansible_facts (a mapping), got {type(facts).__name__}")
    return platform_verdict(str(facts.get("distribution") or ""), str(facts.get("distribution_version") or ""), host)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"gpuhost_platform": gpuhost_platform}
