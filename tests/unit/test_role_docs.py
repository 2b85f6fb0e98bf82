"""The roles' README variable tables are generated from their argument specs and current."""

from pathlib import Path

import pytest

from gpuhost_cli import role_docs

ROLES = Path(__file__).resolve().parents[2] / "roles"


def test_every_role_has_a_readme_with_a_current_table():
    pairs = role_docs.role_readmes(ROLES)
    assert {readme.parent.name for readme, _ in pairs} >= {
        "docker", "nvidia_container_toolkit", "docker_users", "docker_daemon", "apt_source"}
    for readme, spec in pairs:
        text = readme.read_text(encoding="utf-8")
        assert role_docs.render(text, role_docs.variables_table(spec)) == text, (
            f"{readme} is stale: run python -m gpuhost_cli.role_docs")


def test_table_lists_every_option_with_type_and_default(tmp_path):
    spec = tmp_path / "argument_specs.yml"
    spec.write_text(
        "argument_specs:\n  main:\n    options:\n"
        "      demo_list:\n        type: list\n        elements: str\n        default: [a]\n"
        "        description: A | list.\n"
        "      demo_choice:\n        type: str\n        choices: [x, y]\n        required: true\n",
        encoding="utf-8")
    table = role_docs.variables_table(spec)
    assert "| `demo_list` | list of str | `[\"a\"]` | A \\| list. |" in table
    assert "| `demo_choice` | str (`x`, `y`) | *required* |  |" in table


def test_render_replaces_only_between_markers():
    text = f"head\n{role_docs.BEGIN}\nold\n{role_docs.END}\ntail\n"
    assert role_docs.render(text, "new") == f"head\n{role_docs.BEGIN}\nnew\n{role_docs.END}\ntail\n"
    with pytest.raises(ValueError):
        role_docs.render("no markers", "new")


def test_check_mode_reports_a_stale_table(tmp_path):
    role = tmp_path / "demo" / "meta"
    role.mkdir(parents=True)
    (role / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n      demo_x:\n        type: int\n        default: 1\n",
        encoding="utf-8")
    readme = tmp_path / "demo" / "README.md"
    readme.write_text(f"# demo\n{role_docs.BEGIN}\n{role_docs.END}\n", encoding="utf-8")
    args = ["--roles", str(tmp_path), "--sample", str(tmp_path / "sample")]
    assert role_docs.main([*args, "--check"]) == 1
    assert role_docs.main(args) == 0
    assert "`demo_x`" in readme.read_text(encoding="utf-8")
    assert (tmp_path / "sample" / "group_vars" / "gpu_hosts" / "demo.yml").is_file()
    assert role_docs.main([*args, "--check"]) == 0


def test_sample_inventory_lists_every_public_variable_and_is_current():
    sample = ROLES.parent / "inventories" / "sample"
    files = role_docs.sample_files(ROLES, sample)
    assert {p.stem for p, _ in files} == {
        "docker", "nvidia_container_toolkit", "docker_users", "docker_daemon", "gpuhost_verify"}
    for path, wanted in files:
        assert path.read_text(encoding="utf-8") == wanted, f"{path} is stale: run python -m gpuhost_cli.role_docs"


def test_sample_group_vars_uncommented_give_the_role_defaults():
    import yaml

    for path, text in role_docs.sample_files(ROLES, ROLES.parent / "inventories" / "sample"):
        uncommented = "\n".join(
            line[2:] for line in text.splitlines() if line.startswith("# ") and ":" in line
            and not line.startswith(("# Role ", "# Every ", "# uncomment", "# Generated"))
            and line.split(":")[0][2:].replace("_", "").isalnum() and " " not in line.split(":")[0][2:])
        values = yaml.safe_load(uncommented)
        defaults = yaml.safe_load((ROLES / path.stem / "defaults" / "main.yml").read_text(encoding="utf-8"))
        assert values == defaults, path


def test_readme_support_table_is_generated_from_the_release_list():
    from gpuhost_cli.ansible_plugins.module_utils.gpuhost_platforms import RELEASES

    table = role_docs.releases_table()
    for release in RELEASES:
        assert f"| {release['name']} {release['version']} ({release['codename']}) | `{release['lab_image']}` |" in table
    readme = (ROLES.parent / "README.md").read_text(encoding="utf-8")
    assert role_docs.render(readme, table, role_docs.RELEASES_BEGIN, role_docs.RELEASES_END) == readme, (
        "README.md's support table is stale: run python -m gpuhost_cli.role_docs")
