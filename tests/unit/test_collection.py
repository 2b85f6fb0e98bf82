"""The collection gpuhost.gpuhost: staged from the repository with every reference qualified,
built with ansible-galaxy, installed into an empty path and used from a directory with no
checkout, and checked as Galaxy checks it."""

from __future__ import annotations

import json
import os
import py_compile
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpuhost_cli import __version__, collection
from gpuhost_cli.cli import app

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FQ = "gpuhost.gpuhost."


@pytest.fixture(scope="module")
def names():
    return collection.own_names()


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    return collection.stage(tmp_path_factory.mktemp("staged"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(tarball, collections path, a working directory with no checkout, an environment with no
    Ansible settings of the checkout)."""
    tmp = tmp_path_factory.mktemp("collection")
    tarball = collection.build(tmp / "dist", repository="https://git.example.invalid/gpuhost")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(HOME=str(tmp / "home"), ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"), NO_COLOR="1")
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "/usr/bin:/bin")])
    done = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(tmp / "collections"),
                           str(tarball)], capture_output=True, text=True, env=env, cwd=tmp)
    assert done.returncode == 0, done.stderr
    work = tmp / "work"
    work.mkdir()
    return tarball, tmp / "collections", work, env


def _run(argv, env, cwd, timeout=300):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


# --- Rewriting, by name -------------------------------------------------------------------

def test_modules_roles_filters_and_playbooks_are_qualified(names):
    text = """\
- name: A module of gpuhost's, a builtin, a filter and a role
  gpu_facts:
    mode: x
  when: (ansible_facts | gpuhost_platform).supported and x | default(1) | int > 0
- name: Include
  ansible.builtin.include_role:
    name: apt_source
    tasks_from: preflight
- name: Dynamic
  ansible.builtin.include_role:
    name: "{{ __gpuhost_role }}"
- name: Not a role, a service of the same name
  ansible.builtin.systemd_service:
    name: docker
    state: started
"""
    out = collection.qualify_yaml(text, names)
    assert "  gpuhost.gpuhost.gpu_facts:\n" in out
    assert "(ansible_facts | gpuhost.gpuhost.gpuhost_platform).supported" in out
    assert "| default(1) | int" in out
    assert "    name: gpuhost.gpuhost.apt_source\n" in out
    assert '    name: "gpuhost.gpuhost.{{ __gpuhost_role }}"\n' in out
    assert "    name: docker\n    state: started" in out
    assert collection.qualify_yaml(out, names) == out, "qualifying twice changes nothing"


def test_play_roles_are_qualified_and_site_imports_its_siblings(names):
    text = """\
- name: Check
  ansible.builtin.import_playbook: playbooks/boilerplate.yml
- name: Verify
  ansible.builtin.import_playbook: verify.yml
- name: Play
  hosts: gpu_hosts
  roles:
    - role: gpuhost_verify
      tags: [verify]
    - docker_users
  tasks:
    - name: A task named like a role
      ansible.builtin.debug:
        msg: docker
"""
    out = collection.qualify_yaml(text, names)
    assert "ansible.builtin.import_playbook: boilerplate.yml\n" in out, "site.yml moves beside the playbooks"
    assert "ansible.builtin.import_playbook: verify.yml\n" in out
    assert "    - role: gpuhost.gpuhost.gpuhost_verify\n      tags: [verify]\n" in out
    assert "    - gpuhost.gpuhost.docker_users\n" in out
    assert "        msg: docker\n" in out


def test_python_imports_point_at_the_collection(names):
    source = '''\
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpuhost_atomic_file import write_atomic
from ansible.module_utils import gpuhost_docker_cdi as cdi
from gpuhost_cli import host_plan
from gpuhost_cli.rollout import host_list
EXAMPLES = r"""
- name: Facts
  gpu_facts:
"""
'''
    out = collection.qualify_python(source, names)
    assert "from ansible.module_utils.basic import AnsibleModule" in out
    assert "from ansible_collections.gpuhost.gpuhost.plugins.module_utils.gpuhost_atomic_file import write_atomic" in out
    assert "from ansible_collections.gpuhost.gpuhost.plugins.module_utils import gpuhost_docker_cdi as cdi" in out
    assert "from ansible_collections.gpuhost.gpuhost.plugins.plugin_utils import host_plan" in out
    assert "from ansible_collections.gpuhost.gpuhost.plugins.plugin_utils.rollout import host_list" in out
    assert "  gpuhost.gpuhost.gpu_facts:\n" in out


# --- The staged tree ----------------------------------------------------------------------

def test_own_names_are_read_from_the_folders(names):
    assert {"docker_daemon_config", "gpu_facts", "gpuhost_host_state", "gpuhost_rollout_gate"} <= names.modules
    assert names.roles == {p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir()}
    assert {"gpuhost_platform", "gpuhost_plan_report", "docker_daemon_drift"} <= names.filters


def test_staged_collection_names_nothing_of_gpuhost_by_its_short_name(staged, names):
    assert collection.unqualified_references(staged, names) == []


def _strip(node, names):
    """A staged document with gpuhost's qualified names turned back into the checkout's."""
    if isinstance(node, list):
        return [_strip(item, names) for item in node]
    if isinstance(node, dict):
        return {_strip(key, names): _strip(value, names) for key, value in node.items()}
    if isinstance(node, str):
        return node.replace(FQ, "")
    return node


def _checkout_form(node):
    """site.yml imports playbooks/<name>.yml; the other playbooks import <name>.yml."""
    if isinstance(node, list):
        return [_checkout_form(item) for item in node]
    if isinstance(node, dict):
        return {key: (value.removeprefix("playbooks/") if key == "ansible.builtin.import_playbook" else _checkout_form(value))
                for key, value in node.items()}
    return node


def test_staged_yaml_is_the_checkout_but_for_qualified_names(staged, names):
    """Every role and playbook file, parsed, equals its source once the qualified names are read
    back: the rewriting changed nothing but names, and changed every name it had to."""
    pairs = [(REPO / "roles" / p.relative_to(staged / "roles"), p) for p in (staged / "roles").rglob("*.yml")]
    pairs += [(REPO / "site.yml" if p.stem == "site" else REPO / "playbooks" / p.name, p)
              for p in (staged / "playbooks").glob("*.yml")]
    assert len(pairs) > 40
    for source, target in pairs:
        original = _checkout_form(yaml.safe_load(source.read_text()))
        assert _strip(yaml.safe_load(target.read_text()), names) == original, target
    for template in (staged / "roles").rglob("*.j2"):
        source = REPO / "roles" / template.relative_to(staged / "roles")
        assert template.read_text().replace(FQ, "") == source.read_text(), template


def test_staged_python_compiles_and_imports_only_the_collection(staged):
    files = list((staged / "plugins").rglob("*.py"))
    assert {p.parent.name for p in files} == {"modules", "module_utils", "action", "filter", "plugin_utils"}
    for path in files:
        py_compile.compile(str(path), doraise=True, cfile=str(path) + "c")
        text = path.read_text()
        assert "from ansible.module_utils.gpuhost_" not in text, path
        assert "from ansible.module_utils import gpuhost_" not in text, path
        assert "from gpuhost_cli" not in text, path


def test_galaxy_yml_has_the_package_version_and_takes_the_repository(tmp_path, staged):
    galaxy = yaml.safe_load((staged / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"], str(galaxy["version"])) == ("gpuhost", "gpuhost", __version__)
    assert "repository" not in galaxy
    assert f'version = "{__version__}"' in (REPO / "pyproject.toml").read_text()
    target = collection.stage(tmp_path, repository="https://git.example.invalid/gpuhost")
    assert yaml.safe_load((target / "galaxy.yml").read_text())["repository"] == "https://git.example.invalid/gpuhost"
    with pytest.raises(collection.CollectionError, match="not a URL"):
        collection.stage(tmp_path, repository="gpuhost")


def test_a_galaxy_yml_of_another_version_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    for name in ("roles", "playbooks", "site.yml", "collection"):
        (root / name).symlink_to(REPO / name)
    monkeypatch.setattr(collection, "__version__", "9.9.9")
    with pytest.raises(collection.CollectionError, match="version is 0.1.0, gpuhost is 9.9.9"):
        collection.stage(tmp_path / "out", root=root)


def test_runtime_requires_what_the_boilerplate_checks(staged):
    runtime = yaml.safe_load((staged / "meta" / "runtime.yml").read_text())
    boilerplate = (REPO / "playbooks" / "boilerplate.yml").read_text()
    assert runtime["requires_ansible"] == ">=2.17.0"
    assert "ansible_version.full is version('2.17.0', '>=')" in boilerplate


def test_changelog_fragments_lint_clean(staged):
    out = _run([BIN / "antsibull-changelog", "lint"], env=os.environ, cwd=staged)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


def _pip_version_ansible_test_wants() -> str:
    import ansible_test

    text = (Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
    return re.search(r"pip='([0-9.]+)'", text).group(1)


def test_ansible_test_sanity_passes(tmp_path):
    """Every sanity test ansible-test runs for a collection, on this Python, with the pinned tool
    versions it installs in environments of its own. Its pip bootstrap script comes from a host
    that is not always reachable: tests/harness/ansible_test_get_pip.py stands in for it, in a
    home folder kept under .cache/ so the environments are made once."""
    home = REPO / ".cache" / "ansible-test-home"
    cache = home / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    shim = (REPO / "tests" / "harness" / "ansible_test_get_pip.py").read_text()
    (cache / f"get_pip_{_pip_version_ansible_test_wants().replace('.', '_')}.py").write_text(shim)
    target = collection.stage(tmp_path)
    env = dict(os.environ, HOME=str(home))
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "/usr/bin:/bin")])
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = _run([BIN / "ansible-test", "sanity", "--local", "--python", python, "--color", "no"], env, target,
               timeout=1200)
    report = "\n".join(line for line in (out.stdout + out.stderr).splitlines()
                       if line.startswith(("ERROR", "FATAL", "Running sanity test")))
    assert out.returncode == 0, report
    assert report.count("Running sanity test") >= 20, report


# --- Built, installed, used with no checkout ----------------------------------------------

def test_every_module_and_role_is_documented_for_ansible_doc(installed, names, staged):
    _, _, work, env = installed
    modules = sorted(p.stem for p in (staged / "plugins" / "modules").glob("*.py"))
    out = _run([BIN / "ansible-doc", "--json", "-t", "module", *(FQ + m for m in modules)], env, work)
    assert out.returncode == 0, out.stderr
    docs = json.loads(out.stdout)
    assert sorted(docs) == [FQ + m for m in modules]
    for role in sorted(names.roles):
        out = _run([BIN / "ansible-doc", "--json", "-t", "role", FQ + role], env, work)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[FQ + role]["entry_points"]["main"]["options"], role


def test_playbooks_of_the_installed_collection_parse(installed):
    _, _, work, env = installed
    (work / "hosts.yml").write_text("gpu_hosts:\n  hosts:\n    gpu1:\n      ansible_host: gpu1.invalid\n")
    for playbook in ("site", "verify", "render"):
        out = _run([BIN / "ansible-playbook", "-i", "hosts.yml", "--syntax-check", FQ + playbook], env, work)
        assert out.returncode == 0, out.stdout + out.stderr


def test_installed_collection_renders_daemon_json_from_a_directory_with_no_checkout(installed):
    """The render playbook runs the boilerplate's inventory check (an action plugin and the
    controller code in plugin_utils), the docker_daemon role, its filters and its module with
    the module_utils, all from the installed collection."""
    _, collections, work, env = installed
    (work / "inv" / "group_vars" / "gpu_hosts").mkdir(parents=True)
    (work / "inv" / "hosts.yml").write_text("gpu_hosts:\n  hosts:\n    gpu1:\n      ansible_host: gpu1.invalid\n")
    (work / "inv" / "group_vars" / "gpu_hosts" / "docker.yml").write_text(
        "docker_daemon_registry_mirrors: [https://mirror.example.invalid]\n")
    run_env = dict(env, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_SHOW_CUSTOM_STATS="true")
    out = _run([BIN / "ansible-playbook", "-i", "inv", FQ + "render", "-e", '{"gpuhost_render_offline": true}'],
               run_env, work)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    result = json.loads(out.stdout)
    rendered = result["custom_stats"]["gpu1"]["docker_daemon_render"]
    assert rendered["config"]["registry-mirrors"] == ["https://mirror.example.invalid"]
    assert rendered["config"]["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    paths = {task["task"]["path"] for play in result["plays"] for task in play["tasks"] if task["task"].get("path")}
    assert paths and all(str(collections) in path for path in paths), paths
    assert not any(str(REPO) in path for path in paths)


def test_installed_collection_refuses_a_misspelled_variable_before_any_host(installed):
    _, _, work, env = installed
    (work / "bad").mkdir()
    (work / "bad" / "hosts.yml").write_text(
        "gpu_hosts:\n  hosts:\n    gpu1:\n      ansible_host: gpu1.invalid\n      docker_daemon_registry_mirror: [x]\n")
    out = _run([BIN / "ansible-playbook", "-i", "bad", FQ + "site"], env, work)
    assert out.returncode != 0
    assert "docker_daemon_registry_mirror" in out.stdout and "docker_daemon_registry_mirrors" in out.stdout
    assert "UNREACHABLE" not in out.stdout


def test_galaxy_importer_accepts_the_tarball(installed, tmp_path):
    tarball, _, _, env = installed
    out = _run([BIN / "python", "-m", "galaxy_importer.main", tarball], env, tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    log = out.stdout + out.stderr
    assert "Importer processing completed successfully" in log
    assert "Linting collection via ansible-lint" in log and "Getting doc strings via ansible-doc" in log
    # Only the note that ignore files exist (Apache-2.0 modules lack validate-modules' GPLv3 header).
    problems = [line for line in log.splitlines() if line.startswith(("ERROR", "WARNING"))
                and not line.startswith("WARNING: Ignore files skip ansible-test sanity tests")]
    assert problems == [], "\n".join(problems)


def test_gpuhost_collection_build_prints_the_tarball(tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["collection", "build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    tarball = Path(result.output.strip())
    assert tarball == tmp_path / f"gpuhost-gpuhost-{__version__}.tar.gz" and tarball.is_file()
    assert not (tmp_path / ".staging").exists()
