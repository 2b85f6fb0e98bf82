"""Action plugin apt_signing_key: fetch the key on the controller, once per run.

With O(url) (and without O(content)), the controller downloads the key once for every host of
the run (gpuhost_cli.controller_keys), and the module on each host gets its bytes as
O(content): it checks the pinned fingerprint and writes the keyring as before, without a
download of its own, so the vendor is asked once per run, not two or three times per host,
and hosts that cannot reach the vendor's key server get the key anyway. When the controller
cannot fetch it (a mirror only the hosts can reach), each host downloads it as before; the
controller tries each URL once per run. C(fetch_on: host) skips the controller.
"""

from __future__ import annotations

import base64
import os
import sys

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

try:
    from gpuhost_cli import controller_keys
except ImportError:
    # Loaded by Ansible's plugin loader from a plain checkout: the repository root that
    # holds gpuhost_cli/ is three directories above this file's directory.
    _ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    for _name in [m for m in sys.modules if m == "gpuhost_cli" or m.startswith("gpuhost_cli.")]:
        del sys.modules[_name]
    from gpuhost_cli import controller_keys


def _validate_certs(value):
    """validate_certs as the module reads it ("no" from an INI inventory or k=v is false); a
    value the module refuses keeps certificates checked."""
    try:
        return boolean(value, strict=True)
    except TypeError:
        return True


class ActionModule(ActionBase):
    """Download on the controller, check and write on the host."""

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        fetch_on = args.pop("fetch_on", "controller")
        if fetch_on not in ("controller", "host"):
            result.update(failed=True, msg=f"apt_signing_key: fetch_on must be controller or host, got {fetch_on!r}")
            return result
        url = args.get("url")
        if fetch_on == "controller" and url and args.get("content") is None and not args.get("src"):
            label = args.get("label") or "apt signing key"
            try:
                fetch = controller_keys.http_fetch(int(args.get("timeout", 30)),
                                                   _validate_certs(args.get("validate_certs", True)))
                data, downloaded = controller_keys.fetch_once(str(url), fetch, controller_keys.cache_dir())
            except (controller_keys.KeyFetchError, OSError, TypeError, ValueError) as exc:
                result["key_fetched_on"] = "host"
                result["controller_fetch_error"] = f"{label}: the controller could not download {url}: {exc}"
            else:
                args["content"] = base64.b64encode(data).decode("ascii")
                result["key_fetched_on"] = "controller"
                result["key_downloaded_by_this_task"] = downloaded
        result.update(self._execute_module(module_name="apt_signing_key", module_args=args, task_vars=task_vars))
        return result
