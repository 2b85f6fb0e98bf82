"""Action plugin gpuhost_host_state: the controller's half of the converged-host plan.

With C(mode: plan) it takes C(roles) (names) and C(roles_dir) instead of C(inputs): it works
out, on the controller, the digest of each role's inputs (gpuhost_cli.host_plan: the role's
option values as the inventory sets them, the distribution facts, gpuhost's code) and runs
the module gpuhost_host_state on the host with them, in one round trip. The result adds
C(inputs), the digests, which the roles pass back when they record a converged run.
With C(mode: record) it runs the module as it is given.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

try:
    from gpuhost_cli import host_plan
except ImportError:
    # Loaded by Ansible's plugin loader from a plain checkout: the repository root that
    # holds gpuhost_cli/ is three directories above this file's directory.
    _ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    for _name in [m for m in sys.modules if m == "gpuhost_cli" or m.startswith("gpuhost_cli.")]:
        del sys.modules[_name]
    from gpuhost_cli import host_plan

PLUGINS_DIR = Path(__file__).resolve().parent.parent


class ActionModule(ActionBase):
    """Compute the digests here, compare on the host."""

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if args.get("mode") != "plan":
            result.update(self._execute_module(module_name="gpuhost_host_state", module_args=args,
                                               task_vars=task_vars))
            return result

        roles = [str(role) for role in args.pop("roles", []) or []]
        roles_dir = Path(str(args.pop("roles_dir", "")))
        if not roles or not (roles_dir / roles[0]).is_dir():
            result.update(failed=True, msg=f"gpuhost_host_state: mode plan needs roles and the roles_dir that holds "
                                           f"them; got roles {roles!r}, roles_dir {str(roles_dir)!r}")
            return result
        inputs = host_plan.role_inputs(roles_dir)
        playbooks = roles_dir.parent / "playbooks"
        code = host_plan.code_digest([roles_dir, PLUGINS_DIR] + ([playbooks] if playbooks.is_dir() else []))

        def resolve(name):
            if name not in task_vars:
                return host_plan.UNSET
            try:
                value = self._templar.template(task_vars[name])
            except AnsibleError as exc:
                raise LookupError(name) from exc
            return host_plan.bundle_identity(value) if name == host_plan.BUNDLE_VARIABLE else value

        facts = task_vars.get("ansible_facts", {}) or {}
        digests = host_plan.digests(inputs, roles, resolve, facts, code)
        # A digest that could not be made never matches a record: that role runs.
        args["inputs"] = {role: digest or "unrendered" for role, digest in digests.items()}
        result.update(self._execute_module(module_name="gpuhost_host_state", module_args=args, task_vars=task_vars))
        result["inputs"] = args["inputs"]
        return result
