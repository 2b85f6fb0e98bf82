"""Action plugin gpuhost_validate_inventory: strict checks of a host's gpuhost variables.

Its documentation (options, return values) is in modules/gpuhost_validate_inventory.py, where
ansible-doc reads it.
"""

from __future__ import annotations

import glob
import os
import sys

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

try:
    from gpuhost_cli import inventory_validation
except ImportError:
    # Loaded by Ansible's plugin loader from a plain checkout: the repository root that
    # holds gpuhost_cli/ is three directories above this file's directory.
    _ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    for _name in [m for m in sys.modules if m == "gpuhost_cli" or m.startswith("gpuhost_cli.")]:
        del sys.modules[_name]
    from gpuhost_cli import inventory_validation


class ActionModule(ActionBase):
    """Check the host's gpuhost variables on the controller."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("spec_files", "internal_roles"))

    @staticmethod
    def _str_list(args, key, default):
        value = args.get(key, default)
        if value is None:
            return list(default)
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise AnsibleError(f"gpuhost_validate_inventory: {key} must be a list, got {type(value).__name__}")
        return [str(item) for item in value]

    def run(self, tmp=None, task_vars=None):
        if task_vars is None:
            task_vars = {}
        result = super().run(tmp, task_vars)
        del tmp

        if "spec_files" not in self._task.args:
            result.update(failed=True, msg="gpuhost_validate_inventory: spec_files is required")
            return result
        patterns = self._str_list(self._task.args, "spec_files", [])
        internal_roles = self._str_list(self._task.args, "internal_roles", inventory_validation.INTERNAL_ROLES)
        if not patterns:
            result.update(failed=True, msg="gpuhost_validate_inventory: spec_files names no file")
            return result
        spec_files = []
        for pattern in patterns:
            matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            if not matches:
                msg = f"gpuhost_validate_inventory: spec_files pattern {pattern} matches no file; is the roles path right?"
                result.update(failed=True, msg=msg)
                return result
            spec_files.extend(os.path.normpath(match) for match in matches)

        try:
            specs, prefixes = inventory_validation.load_catalog(spec_files, internal_roles)
        except inventory_validation.SpecError as exc:
            result.update(failed=True, msg=f"gpuhost_validate_inventory: {exc}")
            return result

        host = str(task_vars.get("inventory_hostname", "?"))
        prefix_tuple = tuple(prefixes)
        templar = self._templar
        values = {}
        unchecked = []
        for name in sorted(task_vars, key=str):
            if not isinstance(name, str) or not name.startswith(prefix_tuple):
                continue
            try:
                values[name] = templar.template(task_vars[name])
            except AnsibleError:
                # Needs something that is not there yet (facts are gathered later): only
                # the name is checked here; the role's argument spec checks the value.
                unchecked.append(name)

        errors = inventory_validation.validate_vars(host, values, specs, prefixes, unrendered=unchecked)
        result["changed"] = False
        if unchecked:
            result["unchecked"] = unchecked
        if errors:
            result["failed"] = True
            result["errors"] = errors
            result["msg"] = "\n".join(errors)
        else:
            ignored = inventory_validation.ignored_names(values) - {inventory_validation.IGNORE_VARIABLE}
            checked = [name for name in values if name not in ignored]
            result["msg"] = f"{len(checked)} gpuhost variables checked"
        return result
