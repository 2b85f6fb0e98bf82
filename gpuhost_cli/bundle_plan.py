"""What an offline bundle holds: the packages the roles would install on an inventory's hosts.

Nothing here names a package. The package lists, the repository lines, the key URLs and the
pinned fingerprints are the roles' own variables (roles/docker and
roles/nvidia_container_toolkit: defaults/main.yml, vars/main.yml, vars/<Distribution>.yml),
rendered by Ansible's templating with each host's inventory variables over the role
defaults, as a play would render them. The host's release and architecture, which a play
reads from its facts, come from the host's variables (``ansible_distribution_release``, or
``ansible_facts.distribution_release``) or, where the inventory does not say, from the
``--release`` the command was given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpuhost_cli import inventory_validation, paths
from gpuhost_cli.ansible_plugins.module_utils import gpuhost_platforms, gpuhost_toolkit_security
from gpuhost_cli.inputs import UserError

__all__ = ["HostPlan", "Repository", "ReleasePlan", "host_plan", "inventory_hosts", "plan_releases"]

#: The roles whose packages a bundle carries, and the files each one's variables come from.
ROLES = ("docker", "nvidia_container_toolkit")
#: The role variables a bundle is made of (the roles' internal vars/main.yml values).
_DOCKER_PACKAGES = "__docker_packages"
_TOOLKIT_PACKAGES = "__nvidia_container_toolkit_install"
#: The package names apt_source installs before it adds a repository (tasks/present.yml).
_APT_SOURCE_TASKS = Path("apt_source") / "tasks" / "present.yml"
#: dpkg architecture -> Ansible's ansible_facts.architecture, inverted from the docker role's map.
_ARCH_MAP_VAR = "__docker_deb_arch_map"


@dataclass(frozen=True)
class Repository:
    """A vendor repository a host's packages come from, as the role writes its apt source."""

    name: str          # "docker" or "nvidia_container_toolkit"
    line: str          # the role's "deb [...] URL SUITE COMPONENT" line
    key_url: str
    fingerprint: str   # the pinned primary fingerprint, 40 hex digits
    fingerprint_var: str


@dataclass
class HostPlan:
    """One host's packages (apt install arguments, a pin as name=version) and repositories."""

    host: str
    release: str
    packages: list[str]
    repositories: list[Repository]


@dataclass
class ReleasePlan:
    """Everything a bundle holds for one release: the distinct package sets of its hosts."""

    release: str
    distribution: str          # debian or ubuntu
    hosts: list[str] = field(default_factory=list)
    package_sets: list[tuple[str, ...]] = field(default_factory=list)
    repositories: list[Repository] = field(default_factory=list)


def _trusted(value: Any) -> Any:
    """``value`` with every string marked as a template Ansible may render, as a play marks
    the role files and inventory it loads."""
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, Mapping):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


def _yaml_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {path}: {exc}", 1) from None
    return data or {}


def role_variables(distribution_name: str, roles_dir: Path | None = None) -> dict[str, Any]:
    """The docker and toolkit roles' defaults and internal vars, with the per-distribution
    file the docker role's preflight loads (vars/Debian.yml or vars/Ubuntu.yml)."""
    roles = roles_dir or paths.roles_dir()
    merged: dict[str, Any] = {}
    for role in ROLES:
        merged.update(_yaml_file(roles / role / "defaults" / "main.yml"))
    for role in ROLES:
        merged.update(_yaml_file(roles / role / "vars" / "main.yml"))
        per_os = roles / role / "vars" / f"{distribution_name}.yml"
        if per_os.is_file():
            merged.update(_yaml_file(per_os))
    return merged


def apt_source_prerequisites(roles_dir: Path | None = None) -> list[str]:
    """The packages apt_source installs before it adds a vendor repository: the ``name`` of
    the ansible.builtin.apt task with state present in its tasks/present.yml."""
    tasks = _yaml_file((roles_dir or paths.roles_dir()) / _APT_SOURCE_TASKS)
    for task in tasks if isinstance(tasks, list) else []:
        apt = task.get("ansible.builtin.apt") if isinstance(task, dict) else None
        if isinstance(apt, dict) and apt.get("state") == "present" and isinstance(apt.get("name"), list):
            return [str(name) for name in apt["name"]]
    raise UserError(f"no package install found in roles/{_APT_SOURCE_TASKS}", 1)


def _release(codename: str) -> dict[str, Any]:
    for release in gpuhost_platforms.RELEASES:
        if release["codename"] == codename:
            return release
    raise UserError(f"release '{codename}' is not one gpuhost supports; give one of "
                    f"{', '.join(r['codename'] for r in gpuhost_platforms.RELEASES)}")


def host_release(host: str, variables: Mapping[str, Any], default: str | None) -> str:
    """The host's release codename: its variables, else ``default`` (--release)."""
    facts = variables.get("ansible_facts") if isinstance(variables.get("ansible_facts"), Mapping) else {}
    for value in (variables.get("ansible_distribution_release"), facts.get("distribution_release"), default):
        if isinstance(value, str) and value.strip():
            return _release(value.strip().lower())["codename"]
    raise UserError(
        f"{host}: the inventory does not say which release the host runs; pass --release CODENAME "
        f"(one of {', '.join(r['codename'] for r in gpuhost_platforms.RELEASES)}) or set "
        f"ansible_distribution_release in the host's variables")


def host_plan(host: str, variables: Mapping[str, Any], release: str, architecture: str,
              roles_dir: Path | None = None) -> HostPlan:
    """The packages and repositories the roles would give ``host``, rendered from the role
    files and the host's variables (which override the role defaults, as in a play)."""
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    info = _release(release)
    defaults = role_variables(info["name"], roles_dir)
    arch_names = {deb: kernel for kernel, deb in (defaults.get(_ARCH_MAP_VAR) or {}).items()}
    facts = {"distribution": info["name"], "distribution_release": info["codename"],
             "distribution_version": info["version"], "distribution_major_version": info["version"].split(".")[0],
             "os_family": "Debian", "architecture": arch_names.get(architecture, architecture)}
    context = {**_trusted(defaults), **_trusted(dict(variables)), "inventory_hostname": host,
               "ansible_facts": facts}
    templar = Templar(loader=DataLoader(), variables=context)

    def render(expression: str) -> Any:
        try:
            return templar.template(trust_as_template("{{ " + expression + " }}"))
        except AnsibleError as exc:
            raise UserError(f"{host}: cannot render the roles' {expression} with the host's variables: "
                            f"{str(exc).splitlines()[0]}; fix the variable it names") from None

    _check_toolkit_floor(host, render)
    packages = list(render(_DOCKER_PACKAGES)) + list(render(_TOOLKIT_PACKAGES))
    repositories = []
    if render("docker_install_source") == "upstream":
        repositories.append(Repository("docker", str(render("__docker_source_line")), str(render("__docker_key_url")),
                                       _fingerprint(render("docker_apt_key_fingerprint")),
                                       "docker_apt_key_fingerprint"))
    for line in render("__nvidia_container_toolkit_source_lines"):
        repositories.append(Repository("nvidia_container_toolkit", str(line),
                                       str(render("__nvidia_container_toolkit_key_url")),
                                       _fingerprint(render("nvidia_container_toolkit_key_fingerprint")),
                                       "nvidia_container_toolkit_key_fingerprint"))
    return HostPlan(host, info["codename"], [str(p) for p in packages], repositories)


def _fingerprint(value: Any) -> str:
    return "".join(str(value).split()).upper()


def _check_toolkit_floor(host: str, render: Any) -> None:
    """The toolkit role refuses a pin below NVIDIA's security floor; so does a bundle."""
    version = str(render("nvidia_container_toolkit_version") or "")
    check = gpuhost_toolkit_security.security_check(version)
    if check["below_floor"] and not render("nvidia_container_toolkit_allow_vulnerable"):
        raise UserError(
            f"{host}: nvidia_container_toolkit_version {version} is below the security floor {check['floor']} "
            f"({check['summary']}); pin {check['floor']} or newer, or set "
            f"nvidia_container_toolkit_allow_vulnerable: true to accept it")


def inventory_hosts(inventory: Path, limit: str | None = None, group: str = "gpu_hosts",
                    env: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The variables of each host of ``group`` (after --limit), read with ansible-inventory."""
    from gpuhost_cli.inputs import _group_hosts

    argv = ["ansible-inventory", "-i", str(inventory), "--list"] + (["--limit", limit] if limit else [])
    run_env = {**os.environ, **paths.ansible_env(), **(env or {})}
    # ansible-inventory of the Python that runs gpuhost (a virtual environment's), as the runner does.
    run_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), run_env.get("PATH", os.defpath)])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=run_env, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"cannot read the inventory {inventory} with ansible-inventory: {exc}") from None
    if done.returncode != 0:
        raise UserError(f"cannot read the inventory {inventory}: {done.stderr.strip()[-500:]}")
    listing = json.loads(done.stdout or "{}")
    hostvars = (listing.get("_meta") or {}).get("hostvars") or {}
    hosts = {host: dict(hostvars.get(host) or {}) for host in _group_hosts(listing, group)}
    if not hosts:
        raise UserError(f"no hosts matched '{limit or group}' in {inventory}; list the hosts in group {group}")
    return hosts


def _validate(hosts: Mapping[str, Mapping[str, Any]], roles_dir: Path) -> None:
    """The strict inventory checks the playbooks run first, so a bundle never holds what a
    misspelled or mistyped variable would have made of it."""
    spec_files = sorted(roles_dir.glob("*/meta/argument_specs.yml"))
    specs, prefixes = inventory_validation.load_catalog(spec_files)
    errors = [error for host, variables in hosts.items()
              for error in inventory_validation.validate_vars(host, variables, specs, prefixes)]
    if errors:
        raise UserError("; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))


def plan_releases(hosts: Mapping[str, Mapping[str, Any]], release: str | None, architecture: str,
                  roles_dir: Path | None = None, extra_packages: Iterable[str] = ()) -> list[ReleasePlan]:
    """One ReleasePlan per release the hosts run, in the order of gpuhost's release table."""
    roles = roles_dir or paths.roles_dir()
    _validate(hosts, roles)
    prerequisites = apt_source_prerequisites(roles)
    plans: dict[str, ReleasePlan] = {}
    for host in sorted(hosts):
        codename = host_release(host, hosts[host], release)
        plan = host_plan(host, hosts[host], codename, architecture, roles)
        entry = plans.setdefault(codename, ReleasePlan(codename, _release(codename)["id"]))
        entry.hosts.append(host)
        package_set = tuple(dict.fromkeys([*prerequisites, *plan.packages, *extra_packages]))
        if package_set not in entry.package_sets:
            entry.package_sets.append(package_set)
        for repository in plan.repositories:
            if repository not in entry.repositories:
                entry.repositories.append(repository)
    order = [r["codename"] for r in gpuhost_platforms.RELEASES]
    return [plans[c] for c in order if c in plans]
