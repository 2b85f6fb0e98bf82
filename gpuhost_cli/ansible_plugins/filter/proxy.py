"""The files gpuhost writes for hosts behind an HTTP proxy.

``http | gpuhost_proxy_files(https, no_proxy, apt_skip=[], docker_skip=[], header='')``
    ``{apt, dropin, proxies}``: the text of gpuhost's apt.conf.d file (empty when there is
    nothing to set), the text of the docker.service drop-in for engines older than 23.0, and
    the daemon.json ``proxies`` value for 23.0 and later. ``no_proxy`` is the list the
    gpuhost_proxy_settings module assembled; the skip lists name what the host already sets
    alike in another file (``http``, ``https``, ``no_proxy``), which gpuhost writes no second
    copy of. The rules are those of ``module_utils/gpuhost_proxy.py``.

``entries | gpuhost_no_proxy(hostname='', fqdn='', mirrors=[])``
    The no_proxy list: localhost, 127.0.0.1, ::1, the host's names, the internal registry
    mirrors, then the user's ENTRIES (a list, or a comma-separated string), without repeats.

``http | gpuhost_proxy_problems(https, no_proxy, names)``
    The preflight's check of the proxy settings: one message per problem, naming the
    variable (``names`` maps http, https and no_proxy to the variables the user sets).
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

from ansible.module_utils import gpuhost_proxy as proxy  # noqa: E402


def gpuhost_proxy_files(http: Any, https: Any = "", no_proxy: Any = None, apt_skip: Any = None,
                        docker_skip: Any = None, header: str = "") -> dict[str, Any]:
    http, https = str(http or ""), str(https or "")
    no_proxy = [str(entry) for entry in (no_proxy or [])]
    apt_skip = [str(s) for s in (apt_skip or [])]
    docker_skip = [str(s) for s in (docker_skip or [])]
    docker_http = "" if "http" in docker_skip else http
    docker_https = "" if "https" in docker_skip else https
    docker_no_proxy = [] if "no_proxy" in docker_skip else no_proxy
    wanted = bool(docker_http or docker_https or (docker_no_proxy and (http or https)))
    return {
        "apt": proxy.apt_conf_text(http, https, no_proxy, skip=apt_skip, header=header),
        "dropin": proxy.dropin_text(docker_http, docker_https, docker_no_proxy, header=header) if wanted else "",
        "proxies": proxy.daemon_json_proxies(docker_http, docker_https, docker_no_proxy) if wanted else {},
    }


def gpuhost_no_proxy(entries: Any, hostname: str = "", fqdn: str = "", mirrors: Any = None) -> list[str]:
    entries = [entries] if isinstance(entries, str) else list(entries or [])
    return proxy.no_proxy_list(entries, str(hostname or ""), str(fqdn or ""), list(mirrors or []))


def gpuhost_proxy_problems(http: Any, https: Any = "", no_proxy: Any = None,
                           names: Any = None) -> list[str]:
    """The preflight: why the proxy settings cannot be used, one message each, naming the
    variables of ``names`` ({http, https, no_proxy}: the variables a user sets)."""
    names = dict(names or {})
    problems = [proxy.url_problem(http, names.get("http", "gpuhost_proxy_http")),
                proxy.url_problem(https, names.get("https", "gpuhost_proxy_https"))]
    problems += proxy.no_proxy_problems(no_proxy if no_proxy is not None else [],
                                        names.get("no_proxy", "gpuhost_proxy_no_proxy"))
    return [problem for problem in problems if problem]


class FilterModule:
    """gpuhost's proxy filters."""

    def filters(self):
        return {"gpuhost_proxy_files": gpuhost_proxy_files, "gpuhost_proxy_problems": gpuhost_proxy_problems,
                "gpuhost_no_proxy": gpuhost_no_proxy}
