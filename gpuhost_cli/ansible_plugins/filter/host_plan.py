"""The converged-host plan's report, for playbooks/provision.yml.

``hosts | gpuhost_plan_report(needs_work_list, plan_list, full_run=false)``
    One headline (how many hosts are converged) and one line per host with work naming each
    role's drift, from each host's ``__gpuhost_plan`` and ``__gpuhost_needs_work``. The logic
    is ``gpuhost_cli.host_plan.plan_report``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

try:
    from gpuhost_cli import host_plan
except ImportError:
    # Loaded by Ansible's plugin loader from a plain checkout: the repository root that
    # holds gpuhost_cli/ is three directories above this file's directory.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    from gpuhost_cli import host_plan


def gpuhost_plan_report(hosts: list[str], needs_work: list[Any], plans: list[Any], full_run: bool = False) -> list[str]:
    facts = {str(host): {"__gpuhost_needs_work": list(needs or []), "__gpuhost_plan": dict(plan or {})}
             for host, needs, plan in zip(hosts, needs_work, plans)}
    return host_plan.plan_report([str(host) for host in hosts], facts, bool(full_run))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"gpuhost_plan_report": gpuhost_plan_report}
