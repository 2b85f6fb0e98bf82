"""The controller's half of the converged-host plan: what each role's inputs are, and their digest.

A role has nothing to do on a host when the host's record of the role's last converged run
(module gpuhost_host_state) holds the digest of the same inputs and every item the role
manages reads as recorded. The inputs of a role are:

* the values of its options (``meta/argument_specs.yml``), and of every other role's options
  that its files, or those of a role it includes (apt_source), name (the docker_daemon role
  reads ``nvidia_container_toolkit_cdi``), and of the host settings among the playbook
  variables that they name (``gpuhost_proxy_*``), as the inventory and extra vars set them; an option left unset counts by its default, which is
  part of the code;
* the distribution facts the roles read;
* the code: every file of the roles and of gpuhost's Ansible plugins, so a new gpuhost
  version runs every role once.

A value that cannot be rendered yet makes the digest None: that role always runs, and its
preflight says what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from gpuhost_cli import inventory_validation
from gpuhost_cli.rollout import host_list

#: The facts the roles read (playbooks/provision.yml gathers distribution and platform).
FACTS = ("distribution", "distribution_version", "distribution_release", "distribution_major_version",
         "os_family", "architecture")

#: What the code digest leaves out: caches and editor files change nothing the roles do.
_SKIPPED_PARTS = ("__pycache__",)
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")

UNSET = "<unset: the role's default>"


def spec_options(spec_file: Path) -> list[str]:
    return sorted(inventory_validation._spec_options(spec_file))


def _role_text(role_dir: Path) -> str:
    parts = []
    for path in sorted(role_dir.rglob("*")):
        if path.is_file() and "meta" not in path.relative_to(role_dir).parts[:1]:
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


def role_inputs(roles_dir: Path) -> dict[str, list[str]]:
    """{role: the option names that are its inputs}, for every role with an argument spec."""
    specs = {path.parent.parent.name: spec_options(path)
             for path in sorted(roles_dir.glob("*/meta/argument_specs.yml"))}
    inputs = {}
    for role, own in specs.items():
        text = _role_text(roles_dir / role)
        named = {option for other, options in specs.items() if other != role
                 for option in options if option in text}
        # The host settings a role reads, or a role it imports (apt_source) reads.
        for internal in inventory_validation.INTERNAL_ROLES:
            if internal != role and (roles_dir / internal).is_dir() and re.search(
                    rf"\bname:\s*[\w.]*\b{re.escape(internal)}\b", text):
                text += "\n" + _role_text(roles_dir / internal)
        named |= {name for name in inventory_validation.HOST_SETTINGS if name in text}
        inputs[role] = sorted(set(own) | named)
    return inputs


#: The playbook variable naming an offline bundle: a directory bundle counts by its
#: manifest too, so a bundle made again in the same place is a new input.
BUNDLE_VARIABLE = "gpuhost_offline_bundle"


def bundle_identity(value: Any) -> Any:
    """VALUE of gpuhost_offline_bundle as an input: a directory with a manifest.json becomes
    ``{path, manifest_sha256}``; anything else (a URL, an empty value) counts as it is."""
    if not isinstance(value, str) or not value.startswith("/"):
        return value
    try:
        manifest = (Path(value) / "manifest.json").read_bytes()
    except OSError:
        return value
    return {"path": value, "manifest_sha256": hashlib.sha256(manifest).hexdigest()}


def _files(directories: Iterable[Path]) -> list[Path]:
    found = []
    for directory in directories:
        for root, dirs, names in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_PARTS)
            found.extend(Path(root) / name for name in sorted(names) if not name.endswith(_SKIPPED_SUFFIXES))
    return found


def code_digest(directories: Iterable[Path]) -> str:
    """sha256 over the relative path and bytes of every file under DIRECTORIES."""
    digest = hashlib.sha256()
    for directory in directories:
        directory = Path(directory)
        for path in _files([directory]):
            digest.update(str(path.relative_to(directory.parent)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def inputs_digest(values: Mapping[str, Any], facts: Mapping[str, Any], code: str) -> str:
    """sha256 of a role's option values, the distribution facts and the code digest."""
    document = json.dumps({"values": values, "facts": {name: facts.get(name) for name in FACTS}, "code": code},
                          sort_keys=True, default=str)
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def digests(inputs: Mapping[str, list[str]], roles: Iterable[str], resolve: Callable[[str], Any],
            facts: Mapping[str, Any], code: str) -> dict[str, str | None]:
    """{role: digest} for ROLES. RESOLVE(name) gives a variable's rendered value, UNSET for
    one that is not set, and raises LookupError for one that cannot be rendered (that
    role's digest is None)."""
    out: dict[str, str | None] = {}
    for role in roles:
        try:
            values = {name: resolve(name) for name in inputs.get(role, [])}
        except LookupError:
            out[role] = None
            continue
        out[role] = inputs_digest(values, facts, code)
    return out


def plan_report(hosts: Iterable[str], facts: Mapping[str, Mapping[str, Any]], full_run: bool = False,
                limit: int = 20) -> list[str]:
    """What the plan found, one line per host with work (at most LIMIT), after a headline.

    FACTS maps each host to its variables: ``__gpuhost_plan`` (the module's result) and
    ``__gpuhost_needs_work``."""
    hosts = list(hosts)
    converged, busy = [], []
    for host in hosts:
        (busy if facts.get(host, {}).get("__gpuhost_needs_work") else converged).append(host)
    head = (f"Plan: every role runs on {len(busy)} host(s) (gpuhost_full_run)" if full_run else
            f"Plan: {len(converged)} of {len(hosts)} host(s) converged, nothing to do"
            + (f" ({host_list(converged)})" if converged else "")
            + (f"; work on {len(busy)}" if busy else ""))
    lines = [head + "."]
    if full_run:
        return lines
    for host in busy[:limit]:
        plan = facts[host].get("__gpuhost_plan", {}) or {}
        drift = plan.get("drift", {}) or {}
        parts = [f"{role}: {'; '.join(drift.get(role, [])[:3]) or 'needs work'}"
                 for role in facts[host].get("__gpuhost_needs_work", [])]
        lines.append(f"{host}: " + " | ".join(parts))
    if len(busy) > limit:
        lines.append(f"and {len(busy) - limit} more host(s) with work")
    return lines
