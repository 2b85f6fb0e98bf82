"""Action plugin gpuhost_offline_bundle: check an offline bundle on the controller, before any
host changes, and describe it for the roles.

Its documentation (options, return values) is in modules/gpuhost_offline_bundle.py, where
ansible-doc reads it. The logic is gpuhost_cli.bundle_use.
"""

from __future__ import annotations

import os
import sys

from ansible.plugins.action import ActionBase

try:
    from gpuhost_cli import bundle_use
    from gpuhost_cli.inputs import UserError
except ImportError:
    # Loaded by Ansible's plugin loader from a plain checkout: the repository root that
    # holds gpuhost_cli/ is three directories above this file's directory.
    _ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    for _name in [m for m in sys.modules if m == "gpuhost_cli" or m.startswith("gpuhost_cli.")]:
        del sys.modules[_name]
    from gpuhost_cli import bundle_use
    from gpuhost_cli.inputs import UserError


class ActionModule(ActionBase):
    """Verify the bundle here; the hosts are not contacted."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("src", "fingerprint", "hosts"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        source = str(args.get("src") or "").strip()
        hosts = [str(h) for h in args.get("hosts") or []]
        used_by = f" (used by {', '.join(hosts)})" if hosts else ""
        try:
            bundle = bundle_use.check(source, str(args.get("fingerprint") or ""))
        except UserError as exc:
            result.update(failed=True, changed=False,
                          msg=f"{bundle_use.SOURCE_VAR} {source}{used_by}: {exc}. Nothing was changed on any host.")
            return result
        result.update(changed=False, bundle=bundle,
                      msg=f"{bundle_use.SOURCE_VAR} {source}{used_by}: verified, signed by {bundle['fingerprint']}; "
                          f"releases {', '.join(sorted(bundle['releases'])) or 'none'}")
        return result
