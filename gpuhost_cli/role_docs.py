"""Role documentation generated from ``meta/argument_specs.yml``.

Each role's README carries a table of every variable between two marker lines, and the
sample inventory carries every variable commented out with its default; both are written
from the argument spec (type, default, choices, description), never by hand. The project
README's table of supported releases is written the same way from the one release list,
``module_utils/gpuhost_platforms.py``.

    python -m gpuhost_cli.role_docs            rewrite the tables and the sample group_vars
    python -m gpuhost_cli.role_docs --check    exit 1 when either is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from gpuhost_cli.ansible_plugins.module_utils.gpuhost_platforms import RELEASES, label

BEGIN = "<!-- BEGIN VARIABLES (generated from meta/argument_specs.yml; do not edit) -->"
END = "<!-- END VARIABLES -->"
RELEASES_BEGIN = "<!-- BEGIN SUPPORTED RELEASES (generated from module_utils/gpuhost_platforms.py; do not edit) -->"
RELEASES_END = "<!-- END SUPPORTED RELEASES -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _default(attrs: dict[str, Any]) -> str:
    if attrs.get("required"):
        return "*required*"
    if "default" not in attrs:
        return "*unset*"
    return "`" + json.dumps(attrs["default"]) + "`"


def _type(attrs: dict[str, Any]) -> str:
    kind = attrs.get("type", "str")
    if kind == "list" and attrs.get("elements"):
        kind = f"list of {attrs['elements']}"
    if attrs.get("choices"):
        kind += " (" + ", ".join(f"`{c}`" for c in attrs["choices"]) + ")"
    return kind


def variables_table(spec_file: Path) -> str:
    """The Markdown table of every option in a role's ``main`` entry point."""
    spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    options = spec["argument_specs"]["main"].get("options", {})
    rows = ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, attrs in options.items():
        description = attrs.get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        rows.append(f"| `{name}` | {_cell(_type(attrs))} | {_cell(_default(attrs))} | {_cell(description)} |")
    return "\n".join(rows)


def render(readme_text: str, table: str, begin: str = BEGIN, end: str = END) -> str:
    """``readme_text`` with the generated table between the markers."""
    if begin not in readme_text or end not in readme_text:
        raise ValueError(f"the README has no {begin!r} ... {end!r} markers")
    head, rest = readme_text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table}\n{end}{tail}"


def releases_table() -> str:
    """The Markdown table of the supported releases and how each is tested."""
    rows = ["| Release | Lab and test image | How it is tested |", "| --- | --- | --- |"]
    for release in RELEASES:
        rows.append(f"| {_cell(label(release))} | `{release['lab_image']}` | {_cell(release['tested_as'])} |")
    return "\n".join(rows)


#: Roles whose variables other roles pass; inventories never set them.
INTERNAL_ROLES = ("apt_source", "offline_bundle")


def sample_group_vars(spec_file: Path) -> str:
    """A group_vars file with every option of a role commented out at its default."""
    role = spec_file.parent.parent.name
    spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    main = spec["argument_specs"]["main"]
    lines = [
        "---",
        f"# Role {role}: {main.get('short_description', '')}".rstrip(),
        f"# Every variable below is shown at its default (roles/{role}/defaults/main.yml);",
        "# uncomment and change what this group of hosts needs.",
        "# Generated from the role's meta/argument_specs.yml by python -m gpuhost_cli.role_docs.",
    ]
    for name, attrs in main.get("options", {}).items():
        description = attrs.get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        lines.append("")
        lines.append(f"# {description} ({_type(attrs).replace('`', '')})")
        if attrs.get("required"):
            lines.append(f"# {name}:   (required, no default)")
            continue
        dumped = yaml.safe_dump({name: attrs.get("default")}, default_flow_style=True, width=1000)
        lines.append("# " + dumped.strip()[1:-1])
    return "\n".join(lines) + "\n"


def sample_files(roles_dir: Path, sample_dir: Path) -> list[tuple[Path, str]]:
    """(path, wanted text) of each role's file in the sample inventory."""
    out = []
    for spec in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        role = spec.parent.parent.name
        if role in INTERNAL_ROLES:
            continue
        out.append((sample_dir / "group_vars" / "gpu_hosts" / f"{role}.yml", sample_group_vars(spec)))
    return out


def role_readmes(roles_dir: Path) -> list[tuple[Path, Path]]:
    """(README, argument spec) pairs of every role under ``roles_dir``."""
    pairs = []
    for spec in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        pairs.append((spec.parent.parent / "README.md", spec))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--roles", type=Path, default=root / "roles")
    parser.add_argument("--sample", type=Path, default=root / "inventories" / "sample")
    parser.add_argument("--check", action="store_true", help="report stale tables, change nothing")
    args = parser.parse_args(argv)
    stale = []
    for readme, spec in role_readmes(args.roles):
        current = readme.read_text(encoding="utf-8")
        wanted = render(current, variables_table(spec))
        if wanted != current:
            stale.append(readme)
            if not args.check:
                readme.write_text(wanted, encoding="utf-8")
    project_readme = args.roles.parent / "README.md"
    if project_readme.exists():
        current = project_readme.read_text(encoding="utf-8")
        wanted = render(current, releases_table(), RELEASES_BEGIN, RELEASES_END)
        if wanted != current:
            stale.append(project_readme)
            if not args.check:
                project_readme.write_text(wanted, encoding="utf-8")
    for path, wanted in sample_files(args.roles, args.sample):
        if not path.exists() or path.read_text(encoding="utf-8") != wanted:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(wanted, encoding="utf-8")
    if args.check and stale:
        for path in stale:
            print(f"{path}: out of date; run python -m gpuhost_cli.role_docs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
