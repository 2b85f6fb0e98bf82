"""The registry mirror probe's proxy, for the gpuhost_verify role.

``docker_info | gpuhost_registry_probe_env(http, https, no_proxy)``
    The ``*_proxy`` environment the registry_mirror_probe module runs in: dockerd's own proxy
    from ``docker info``, unless it has none or masks the password, else the inventory's
    (gpuhost_proxy_*). The rule is ``module_utils/gpuhost_registry_probe.probe_environment``.
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

from ansible.module_utils import gpuhost_registry_probe as registry_probe  # noqa: E402


def gpuhost_registry_probe_env(docker_info: Any, http: Any = "", https: Any = "", no_proxy: Any = None) -> dict[str, str]:
    return registry_probe.probe_environment(docker_info if isinstance(docker_info, dict) else {},
                                            str(http or ""), str(https or ""),
                                            no_proxy if isinstance(no_proxy, str) else list(no_proxy or []))


class FilterModule:
    """The registry probe's filters."""

    def filters(self):
        return {"gpuhost_registry_probe_env": gpuhost_registry_probe_env}
