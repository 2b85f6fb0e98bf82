"""gpuhost as the Ansible collection ``gpuhost.gpuhost``, built from this repository.

The roles, playbooks and plugins have one source: the checkout (or the installed wheel's
copy of it). ``stage`` lays them out as a collection, with every reference to gpuhost's own
content turned into its fully qualified name, and ``build`` packs the staged tree with
``ansible-galaxy collection build``:

* roles/<role>/             the roles; ``include_role``/``import_role`` name ``gpuhost.gpuhost.<role>``
* playbooks/                site.yml (from the repository root), provision, verify, render, boilerplate;
                            they import each other as sibling files
* plugins/modules/          the host-side modules, ``gpuhost.gpuhost.<module>`` in tasks
* plugins/module_utils/     imported as ``ansible_collections.gpuhost.gpuhost.plugins.module_utils``
* plugins/action/, filter/  the controller plugins; filters are called ``gpuhost.gpuhost.<filter>``
* plugins/plugin_utils/     the controller library code those plugins import (CONTROLLER_MODULES)
* galaxy.yml, meta/runtime.yml, README.md, changelogs/   from the repository's collection/ folder

The rewriting is by name: only the names of gpuhost's own modules, roles and filters, found
by listing the plugin and role folders, are touched, and only where YAML uses them as a
task's module, a role to include, or a Jinja filter. ``unqualified_references`` checks a
staged tree for any that were missed.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

from gpuhost_cli import __version__, paths

NAMESPACE = "gpuhost"
NAME = "gpuhost"
FQCN = f"{NAMESPACE}.{NAME}"
PYTHON_PACKAGE = f"ansible_collections.{NAMESPACE}.{NAME}.plugins"

#: Controller library code the action and filter plugins import (``from gpuhost_cli import ...``);
#: in the collection it lives in plugins/plugin_utils/.
CONTROLLER_MODULES = ("host_plan", "inventory_validation", "rollout", "controller_keys", "bundle_use", "bundle_verify",
                      "bundle_manifest", "bundle_repository", "bundle_signing", "inputs")

#: The playbooks a collection user runs as gpuhost.gpuhost.<name>; site comes from the repository root.
PLAYBOOKS = ("site", "boilerplate", "provision", "verify", "render")

#: The ansible-core releases the collection supports (meta/runtime.yml); ansible-test reads
#: one sanity ignore file per release.
ANSIBLE_CORE_RELEASES = ("2.17", "2.18", "2.19")

#: Plugin folders of the package, as the collection names them.
PLUGIN_DIRS = ("modules", "module_utils", "action", "filter")

_SKIPPED = ("__pycache__", "*.pyc", "*.pyo", "__init__.py")


class CollectionError(Exception):
    """The collection cannot be staged or built; the message says why and what to do."""


@dataclass(frozen=True)
class Names:
    """gpuhost's own content, by the short names the checkout uses."""

    modules: frozenset[str]
    roles: frozenset[str]
    filters: frozenset[str]
    playbooks: frozenset[str]


def own_names(root: Path | None = None, plugins: Path | None = None) -> Names:
    """List gpuhost's modules (and action plugins), roles and filters by reading their folders."""
    root = root or paths.project_root()
    plugins = plugins or paths.plugins_dir()
    modules = {p.stem for kind in ("modules", "action") for p in (plugins / kind).glob("*.py") if p.stem != "__init__"}
    roles = {p.name for p in (root / "roles").iterdir() if (p / "tasks").is_dir()}
    filters = {name for source in sorted((plugins / "filter").glob("*.py")) for name in _filter_names(source)}
    return Names(frozenset(modules), frozenset(roles), frozenset(filters), frozenset(PLAYBOOKS))


def _filter_names(source: Path) -> list[str]:
    """The names a filter plugin file's FilterModule returns, read by loading it as Ansible does."""
    spec = importlib.util.spec_from_file_location(f"_gpuhost_filter_{source.stem}", source)
    if spec is None or spec.loader is None:
        raise CollectionError(f"{source}: cannot be loaded as a filter plugin")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return sorted(module.FilterModule().filters())


# --- YAML: tasks, playbooks, vars and templates ---------------------------------------------

_ROLE_INCLUDES = ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role")


def qualify_yaml(text: str, names: Names) -> str:
    """Qualify gpuhost's modules, roles, filters and playbooks in one YAML (or Jinja) file."""
    modules = "|".join(sorted(names.modules, key=len, reverse=True))
    filters = "|".join(sorted(names.filters, key=len, reverse=True))
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    role_block: int | None = None  # indent of an include_role/import_role key whose name comes next
    in_roles_list: int | None = None  # indent of a play's roles: key
    for line in lines:
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        body = stripped.lstrip("- ")
        key_indent = indent + (len(stripped) - len(body))
        if role_block is not None and stripped.strip() and key_indent <= role_block:
            role_block = None
        if in_roles_list is not None and stripped.strip() and indent <= in_roles_list and not stripped.startswith("- "):
            in_roles_list = None
        if modules:
            line = re.sub(rf"^(\s*(?:-\s+)?)({modules}):(?=\s|$)", rf"\g<1>{FQCN}.\g<2>:", line)
        if filters:
            line = re.sub(rf"\|(\s*)({filters})\b(?!\.)", rf"|\g<1>{FQCN}.\g<2>", line)
        if role_block is not None:
            line = _qualify_role_name(line, r"name:\s*", names)
        if in_roles_list is not None:
            # "- role: name" or "- name"
            line = _qualify_role_name(line, r"-\s+(?:role:\s*)?", names)
        # site.yml moves into playbooks/, beside the playbooks it imports; an import of a sibling
        # file stays a file name, which ansible-lint (as Galaxy runs it) can follow.
        line = re.sub(r"^(\s*ansible\.builtin\.import_playbook:\s*)playbooks/([a-z_]+\.yml)[ \t]*$", r"\g<1>\g<2>", line, flags=re.MULTILINE)
        if body.rstrip().rstrip(":") in _ROLE_INCLUDES and body.rstrip().endswith(":"):
            role_block = key_indent
        if re.match(r"^\s*roles:\s*$", line):
            in_roles_list = indent
        out.append(line)
    return "".join(out)


def _qualify_role_name(line: str, lead: str, names: Names) -> str:
    """Qualify the role a line names after ``lead`` (a pattern), when it is one of gpuhost's or
    a Jinja expression that chooses one."""
    match = re.match(rf"^(\s*{lead})([\"']?)(.+?)\2\s*$", line.rstrip("\n"))
    if not match:
        return line
    prefix, quote, value = match.groups()
    if value in names.roles:
        value = f"{FQCN}.{value}"
    elif value.startswith("{{") and not value.startswith(f"{FQCN}."):
        # A role chosen at run time by a variable holding one of gpuhost's role names.
        value = f"{FQCN}.{value}"
    else:
        return line
    return f"{prefix}{quote}{value}{quote}" + ("\n" if line.endswith("\n") else "")


# --- Python: plugins and controller library -----------------------------------------------

def qualify_python(text: str, names: Names) -> str:
    """Point imports of gpuhost's module_utils and controller library at the collection's packages,
    and qualify the module names in a plugin's EXAMPLES."""
    text = re.sub(r"\bfrom ansible\.module_utils\.(gpuhost_\w+) import", rf"from {PYTHON_PACKAGE}.module_utils.\1 import",
                  text)
    text = re.sub(r"\bfrom ansible\.module_utils import (gpuhost_\w+)", rf"from {PYTHON_PACKAGE}.module_utils import \1",
                  text)
    text = re.sub(r"\bfrom gpuhost_cli\.(\w+) import", rf"from {PYTHON_PACKAGE}.plugin_utils.\1 import", text)
    text = re.sub(r"\bfrom gpuhost_cli import (\w+)", rf"from {PYTHON_PACKAGE}.plugin_utils import \1", text)
    return re.sub(r'(EXAMPLES\s*=\s*r?""")(.*?)(""")',
                  lambda m: m.group(1) + qualify_yaml(m.group(2), names) + m.group(3), text, flags=re.DOTALL)


# --- Staging and building -------------------------------------------------------------------

def stage(dest: Path, root: Path | None = None, plugins: Path | None = None, repository: str | None = None) -> Path:
    """Lay gpuhost out as a collection under ``dest/ansible_collections/gpuhost/gpuhost`` and return that folder.

    ``repository`` is the URL of the source repository the collection is published from;
    Galaxy requires it to publish, and ``ansible-galaxy collection build`` does not.
    """
    root = root or paths.project_root()
    plugins = plugins or paths.plugins_dir()
    sources = root / "collection"
    if not (sources / "galaxy.yml").is_file():
        raise CollectionError(f"{sources / 'galaxy.yml'} is missing; the collection is built from a gpuhost checkout "
                              f"or an installed gpuhost, which carries it")
    names = own_names(root, plugins)
    target = Path(dest) / "ansible_collections" / NAMESPACE / NAME
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(sources, target, ignore=shutil.ignore_patterns(*_SKIPPED))
    _write_galaxy_yml(target / "galaxy.yml", repository)
    _copy_tree(root / "roles", target / "roles", names)
    (target / "playbooks").mkdir()
    for playbook in PLAYBOOKS:
        source = root / "site.yml" if playbook == "site" else root / "playbooks" / f"{playbook}.yml"
        (target / "playbooks" / f"{playbook}.yml").write_text(qualify_yaml(source.read_text(), names))
    for kind in PLUGIN_DIRS:
        _copy_tree(plugins / kind, target / "plugins" / kind, names)
    utils = target / "plugins" / "plugin_utils"
    utils.mkdir(parents=True)
    for module in CONTROLLER_MODULES:
        (utils / f"{module}.py").write_text(qualify_python((paths.PACKAGE_DIR / f"{module}.py").read_text(), names))
    _write_sanity_ignores(target)
    return target


def _write_galaxy_yml(path: Path, repository: str | None) -> None:
    """galaxy.yml's version must be gpuhost's own, so the wheel and the collection never disagree;
    the repository URL is the publisher's."""
    text = path.read_text()
    version = (yaml.safe_load(text) or {}).get("version")
    if str(version) != __version__:
        raise CollectionError(f"{path}: version is {version}, gpuhost is {__version__}; make them the same")
    if re.search(r"^repository:", text, re.MULTILINE):
        raise CollectionError(f"{path}: leave out repository; give it to the build (--repository URL)")
    if repository:
        if not re.match(r"^https?://\S+$", repository):
            raise CollectionError(f"repository {repository!r} is not a URL; give the source repository's "
                                  f"https:// address")
        text = text.rstrip("\n") + f"\nrepository: {repository}\n"
    path.write_text(text)


def _write_sanity_ignores(target: Path) -> None:
    """ansible-test's validate-modules asks every module for a GPLv3 header; gpuhost is Apache-2.0."""
    lines = [f"plugins/modules/{module.name} validate-modules:missing-gplv3-license  # Apache-2.0, as all of gpuhost\n"
             for module in sorted((target / "plugins" / "modules").glob("*.py"))]
    (target / "tests" / "sanity").mkdir(parents=True, exist_ok=True)
    for release in ANSIBLE_CORE_RELEASES:
        (target / "tests" / "sanity" / f"ignore-{release}.txt").write_text("".join(lines))


def _copy_tree(source: Path, target: Path, names: Names) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*_SKIPPED))
    for path in sorted(target.rglob("*")):
        if path.suffix in (".yml", ".yaml", ".j2"):
            path.write_text(qualify_yaml(path.read_text(), names))
        elif path.suffix == ".py":
            path.write_text(qualify_python(path.read_text(), names))


def build(out: Path, work: Path | None = None, repository: str | None = None) -> Path:
    """Stage the collection and build its tarball into ``out`` with ansible-galaxy; return the tarball."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(work or out / ".staging")
    staged = stage(work, repository=repository)
    tarball = out / f"{NAMESPACE}-{NAME}-{__version__}.tar.gz"
    galaxy = shutil.which("ansible-galaxy", path=str(Path(sys.executable).parent)) or "ansible-galaxy"
    cmd = [galaxy, "collection", "build", "--force", "--output-path", str(out), str(staged)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise CollectionError("ansible-galaxy was not found; install ansible-core (pip install gpuhost brings it)") from exc
    if proc.returncode != 0 or not tarball.is_file():
        raise CollectionError(f"ansible-galaxy collection build failed (rc {proc.returncode}):\n{proc.stderr or proc.stdout}")
    shutil.rmtree(work, ignore_errors=True)
    return tarball


# --- Checks on a staged tree ---------------------------------------------------------------

def unqualified_references(collection: Path, names: Names) -> list[str]:
    """Every place in a staged collection's YAML that still names gpuhost's content by its short name."""
    problems: list[str] = []
    for path in sorted(collection.rglob("*")):
        relative = path.relative_to(collection)
        if path.suffix in (".yml", ".yaml") and relative.parts[0] in ("roles", "playbooks") and "meta" not in relative.parts:
            problems.extend(f"{relative}: {where}" for where in _unqualified_in(yaml.safe_load(path.read_text()), names))
        if path.suffix in (".yml", ".yaml", ".j2") and relative.parts[0] in ("roles", "playbooks"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for match in re.finditer(r"\|\s*([a-z_][a-z0-9_.]*)", line):
                    if match.group(1) in names.filters:
                        problems.append(f"{relative}:{number}: filter {match.group(1)}")
        if path.suffix == ".py":
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"^\s*from (gpuhost_cli\b|ansible\.module_utils(\.| import )gpuhost_)", line):
                    problems.append(f"{relative}:{number}: import {line.strip()}")
    return problems


def _unqualified_in(node: object, names: Names, where: str = "") -> Iterable[str]:
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _unqualified_in(item, names, f"{where}[{index}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in names.modules:
                yield f"{where}.{key}: module {key}"
            if key in _ROLE_INCLUDES and isinstance(value, dict) and not str(value.get("name", "")).startswith(f"{FQCN}."):
                yield f"{where}.{key}: role {value.get('name')}"
            if key == "roles" and isinstance(value, list):
                for role in value:
                    role_name = role.get("role", role.get("name")) if isinstance(role, dict) else role
                    if not str(role_name).startswith(f"{FQCN}."):
                        yield f"{where}.roles: role {role_name}"
            if key == "ansible.builtin.import_playbook" and str(value).removesuffix(".yml") not in names.playbooks:
                yield f"{where}.{key}: playbook {value}, not one of the collection's playbooks beside it"
            yield from _unqualified_in(value, names, f"{where}.{key}")
