"""Variable tables for the roles' READMEs, generated from ``meta/argument_specs.yml``.

Each role's README carries a table of every variable between two marker lines; the table
is written from the argument spec (type, default, choices, description), never by hand.

    python -m gpuhost_cli.role_docs            rewrite the tables in roles/*/README.md
    python -m gpuhost_cli.role_docs --check    exit 1 when a table is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

BEGIN = "<!-- BEGIN VARIABLES (generated from meta/argument_specs.yml; do not edit) -->"
END = "<!-- END VARIABLES -->"


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


def render(readme_text: str, table: str) -> str:
    """``readme_text`` with the generated table between the markers."""
    if BEGIN not in readme_text or END not in readme_text:
        raise ValueError("the README has no variables markers")
    head, rest = readme_text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def role_readmes(roles_dir: Path) -> list[tuple[Path, Path]]:
    """(README, argument spec) pairs of every role under ``roles_dir``."""
    pairs = []
    for spec in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        pairs.append((spec.parent.parent / "README.md", spec))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", type=Path, default=Path(__file__).resolve().parent.parent / "roles")
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
    if args.check and stale:
        for readme in stale:
            print(f"{readme}: variables table is out of date; run python -m gpuhost_cli.role_docs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
