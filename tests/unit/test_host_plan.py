"""The controller's half of the converged-host plan (gpuhost_cli.host_plan, the action plugin
gpuhost_host_state and the gpuhost_plan_report filter).

What each role's inputs are (its options, and the other roles' options its files name),
the digest of the code and of a role's inputs, and the report of the plan. The action
plugin runs once inside a real ansible-playbook on localhost, with the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpuhost_cli import host_plan, inventory_validation
from gpuhost_cli.ansible_plugins.filter.host_plan import FilterModule, gpuhost_plan_report

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"
PROXY_SETTINGS = tuple(n for n in inventory_validation.HOST_SETTINGS if n.startswith("gpuhost_proxy_"))
FACTS = {"distribution": "Ubuntu", "distribution_version": "24.04", "distribution_release": "noble",
         "distribution_major_version": "24", "os_family": "Debian", "architecture": "x86_64"}


def own_options(role: str) -> list[str]:
    return host_plan.spec_options(ROLES / role / "meta" / "argument_specs.yml")


def role_files_text(role: str) -> str:
    """Every file of ROLE but its meta/ directory."""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace")
                     for path in sorted((ROLES / role).rglob("*"))
                     if path.is_file() and path.relative_to(ROLES / role).parts[0] != "meta")


# ---- Inputs of the real roles ----------------------------------------------------------

@pytest.fixture(scope="module")
def inputs():
    return host_plan.role_inputs(ROLES)


def test_every_role_with_an_argument_spec_has_inputs(inputs):
    specs = sorted(path.parent.parent.name for path in ROLES.glob("*/meta/argument_specs.yml"))
    assert sorted(inputs) == specs
    assert {"apt_source", "docker", "docker_daemon", "docker_users", "gpuhost_verify",
            "nvidia_container_toolkit"} <= set(inputs)


def test_each_role_s_own_options_are_its_inputs(inputs):
    for role, names in inputs.items():
        own = own_options(role)
        assert own, role
        assert set(own) <= set(names), role
        assert names == sorted(set(names)), role


def test_no_role_has_an_input_of_a_role_it_never_names(inputs):
    every = {role: set(own_options(role)) for role in inputs}
    for role, names in inputs.items():
        text = role_files_text(role)
        for name in set(names) - every[role]:
            if name in inventory_validation.HOST_SETTINGS:
                # A playbook-level host setting the role, or apt_source or offline_bundle it
                # imports, reads.
                imported = role_files_text("apt_source") + role_files_text("offline_bundle")
                assert name in text + imported, (role, name)
                continue
            assert any(name in options for other, options in every.items() if other != role), (role, name)
            assert name in text, (role, name)


def test_docker_daemon_follows_the_toolkit_s_cdi_setting(inputs):
    # docker_daemon_cdi defaults to nvidia_container_toolkit_cdi: a change of that setting
    # is a change of docker_daemon's inputs.
    defaults = (ROLES / "docker_daemon" / "defaults" / "main.yml").read_text()
    assert "nvidia_container_toolkit_cdi" in defaults
    assert "nvidia_container_toolkit_cdi" in inputs["docker_daemon"]
    # The toolkit's own inputs include it too, and the engine's inputs do not.
    assert "nvidia_container_toolkit_cdi" in inputs["nvidia_container_toolkit"]
    assert not any(name.startswith("nvidia_container_toolkit_") for name in inputs["docker"])


def test_the_roles_that_import_apt_source_take_its_options(inputs):
    # docker and the toolkit pass apt_source_* to the role they import.
    for role in ("docker", "nvidia_container_toolkit"):
        assert {"apt_source_file", "apt_source_repo_url", "apt_source_keyring"} <= set(inputs[role]), role
    assert "apt_source_stale_files" in inputs["nvidia_container_toolkit"]


def test_docker_users_reads_only_its_own_options(inputs):
    assert inputs["docker_users"] == own_options("docker_users") == ["docker_users", "docker_users_group"]
    assert inputs["apt_source"] == sorted(own_options("apt_source") + list(PROXY_SETTINGS))


def test_the_proxy_settings_are_inputs_of_the_roles_that_use_the_proxy(inputs):
    # gpuhost_proxy_* reach apt (through apt_source, which docker and the toolkit import) and
    # Docker: changing the proxy makes those roles run again; docker_users never reads it.
    for role in ("apt_source", "docker", "nvidia_container_toolkit", "docker_daemon"):
        assert set(PROXY_SETTINGS) <= set(inputs[role]), role
    assert not set(inventory_validation.HOST_SETTINGS) & set(inputs["docker_users"])


def test_the_offline_bundle_is_an_input_of_the_roles_that_install_from_it(inputs):
    # gpuhost_offline_bundle_* reach the docker and toolkit roles (through offline_bundle, which
    # they import); apt_source and docker_daemon never read them.
    bundle = {"gpuhost_offline_bundle", "gpuhost_offline_bundle_fingerprint"}
    assert bundle <= set(inventory_validation.HOST_SETTINGS)
    for role in ("docker", "nvidia_container_toolkit"):
        assert bundle <= set(inputs[role]), role
    for role in ("apt_source", "docker_daemon", "docker_users"):
        assert not bundle & set(inputs[role]), role


def test_an_included_role_s_text_counts_for_the_role_that_includes_it(tmp_path):
    write_role(tmp_path, "apt_source", ["apt_source_name"], {"defaults/main.yml": "x: '{{ gpuhost_proxy_http }}'\n"})
    write_role(tmp_path, "user", ["user_a"], {"tasks/main.yml": "- ansible.builtin.import_role:\n    name: apt_source\n"})
    write_role(tmp_path, "other", ["other_a"], {"tasks/main.yml": "- ansible.builtin.debug:\n    msg: apt_source\n"})
    inputs = host_plan.role_inputs(tmp_path)
    assert "gpuhost_proxy_http" in inputs["user"]
    assert "gpuhost_proxy_http" not in inputs["other"]
    # A playbook variable that is not a host setting is never an input.
    write_role(tmp_path, "full", ["full_a"], {"tasks/main.yml": "when: gpuhost_full_run\n"})
    assert host_plan.role_inputs(tmp_path)["full"] == ["full_a"]


def write_role(roles: Path, role: str, options: list[str], files: dict[str, str]) -> None:
    meta = roles / role / "meta"
    meta.mkdir(parents=True)
    (meta / "argument_specs.yml").write_text(yaml.safe_dump(
        {"argument_specs": {"main": {"options": {name: {"type": "str"} for name in options}}}}))
    for name, text in files.items():
        path = roles / role / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_role_inputs_of_a_made_up_roles_dir(tmp_path):
    roles = tmp_path / "roles"
    write_role(roles, "alpha", ["alpha_x", "alpha_y"], {"tasks/main.yml": "- debug: {msg: '{{ alpha_x }}'}\n"})
    write_role(roles, "beta", ["beta_z"], {"defaults/main.yml": "beta_z: \"{{ alpha_y | default('a') }}\"\n"})
    # A name in the role's meta/ (its argument spec, its dependencies) is no input.
    write_role(roles, "gamma", ["gamma_w"], {"tasks/main.yml": "- debug: {msg: hi}\n",
                                             "meta/main.yml": "# alpha_x beta_z\n"})
    (roles / "no_spec" / "tasks").mkdir(parents=True)
    (roles / "no_spec" / "tasks" / "main.yml").write_text("# alpha_x\n")
    assert host_plan.role_inputs(roles) == {
        "alpha": ["alpha_x", "alpha_y"],
        "beta": ["alpha_y", "beta_z"],
        "gamma": ["gamma_w"],
    }


# ---- Digests -----------------------------------------------------------------------------

def make_tree(base: Path) -> Path:
    tree = base / "roles"
    (tree / "docker" / "tasks").mkdir(parents=True)
    (tree / "docker" / "tasks" / "main.yml").write_text("- name: one\n")
    (tree / "docker" / "defaults").mkdir()
    (tree / "docker" / "defaults" / "main.yml").write_text("docker_version: ''\n")
    return tree


def test_code_digest_changes_with_a_file(tmp_path):
    tree = make_tree(tmp_path)
    before = host_plan.code_digest([tree])
    assert len(before) == 64 and before == host_plan.code_digest([tree])
    main = tree / "docker" / "tasks" / "main.yml"
    main.write_text("- name: two\n")
    changed = host_plan.code_digest([tree])
    assert changed != before
    main.write_text("- name: one\n")
    assert host_plan.code_digest([tree]) == before
    # A new file, a renamed file and an empty file count.
    (tree / "docker" / "tasks" / "extra.yml").write_text("")
    assert host_plan.code_digest([tree]) != before
    (tree / "docker" / "tasks" / "extra.yml").rename(tree / "docker" / "tasks" / "other.yml")
    with_other = host_plan.code_digest([tree])
    (tree / "docker" / "tasks" / "other.yml").unlink()
    assert host_plan.code_digest([tree]) == before != with_other


def test_code_digest_ignores_caches_and_editor_files(tmp_path):
    tree = make_tree(tmp_path)
    before = host_plan.code_digest([tree])
    cache = tree / "docker" / "__pycache__"
    cache.mkdir()
    (cache / "x.cpython-311.pyc").write_bytes(b"\0compiled")
    (cache / "notes.txt").write_text("anything in a cache")
    (tree / "docker" / "module.pyc").write_bytes(b"\0")
    (tree / "docker" / "module.pyo").write_bytes(b"\0")
    (tree / "docker" / "tasks" / ".main.yml.swp").write_bytes(b"\0")
    (tree / "docker" / "tasks" / "main.yml~").write_text("old")
    assert host_plan.code_digest([tree]) == before


def test_code_digest_covers_every_directory_given(tmp_path):
    tree = make_tree(tmp_path)
    plugins = tmp_path / "ansible_plugins"
    (plugins / "filter").mkdir(parents=True)
    (plugins / "filter" / "f.py").write_text("x = 1\n")
    both = host_plan.code_digest([tree, plugins])
    assert both != host_plan.code_digest([tree])
    (plugins / "filter" / "f.py").write_text("x = 2\n")
    assert host_plan.code_digest([tree, plugins]) != both


def test_the_real_code_digest_is_stable():
    plugins = REPO / "gpuhost_cli" / "ansible_plugins"
    assert host_plan.code_digest([ROLES, plugins]) == host_plan.code_digest([ROLES, plugins])


def test_inputs_digest_changes_with_what_the_role_reads():
    base = host_plan.inputs_digest({"docker_version": "", "docker_install_source": "upstream"}, FACTS, "code1")
    assert base == host_plan.inputs_digest({"docker_install_source": "upstream", "docker_version": ""}, dict(FACTS),
                                           "code1")
    assert host_plan.inputs_digest({"docker_version": "5:27.5.1-1", "docker_install_source": "upstream"},
                                   FACTS, "code1") != base
    assert host_plan.inputs_digest({"docker_version": "", "docker_install_source": host_plan.UNSET},
                                   FACTS, "code1") != base
    assert host_plan.inputs_digest({"docker_version": "", "docker_install_source": "upstream"}, FACTS, "code2") != base
    for fact in host_plan.FACTS:
        assert host_plan.inputs_digest({"docker_version": "", "docker_install_source": "upstream"},
                                       {**FACTS, fact: "other"}, "code1") != base, fact
    # Facts the roles do not read change nothing.
    assert host_plan.inputs_digest({"docker_version": "", "docker_install_source": "upstream"},
                                   {**FACTS, "hostname": "gpu7", "memtotal_mb": 64000}, "code1") == base


def test_inputs_digest_takes_any_value():
    # Values are rendered variables: lists, mappings, None, booleans; what JSON cannot
    # write is written as text.
    values = {"a": [1, "x"], "b": {"k": None}, "c": True, "d": Path("/x")}
    assert len(host_plan.inputs_digest(values, {}, "c")) == 64
    assert host_plan.inputs_digest({"c": True}, {}, "c") != host_plan.inputs_digest({"c": "True"}, {}, "c")


def test_digests_leave_out_a_role_whose_value_cannot_be_rendered():
    inputs = {"docker": ["docker_version"], "docker_users": ["docker_users", "docker_users_group"],
              "docker_daemon": ["docker_daemon_options", "nvidia_container_toolkit_cdi"]}
    variables = {"docker_version": "", "docker_users": ["alice"]}
    asked = []

    def resolve(name):
        asked.append(name)
        if name == "docker_daemon_options":
            raise LookupError(name)
        return variables.get(name, host_plan.UNSET)

    out = host_plan.digests(inputs, ["docker", "docker_users", "docker_daemon", "gpuhost_verify"], resolve,
                            FACTS, "code")
    assert list(out) == ["docker", "docker_users", "docker_daemon", "gpuhost_verify"]
    assert out["docker_daemon"] is None
    assert out["docker"] == host_plan.inputs_digest({"docker_version": ""}, FACTS, "code")
    assert out["docker_users"] == host_plan.inputs_digest(
        {"docker_users": ["alice"], "docker_users_group": host_plan.UNSET}, FACTS, "code")
    # A role the inputs do not know has no values: only facts and code.
    assert out["gpuhost_verify"] == host_plan.inputs_digest({}, FACTS, "code")
    assert "docker_users_group" in asked
    # Another value of one role's input changes that role's digest only.
    variables["docker_users"] = ["alice", "bob"]
    again = host_plan.digests(inputs, ["docker", "docker_users"], resolve, FACTS, "code")
    assert again["docker"] == out["docker"] and again["docker_users"] != out["docker_users"]


# ---- The report --------------------------------------------------------------------------

def host_facts(needs, drift=None):
    return {"__gpuhost_needs_work": needs, "__gpuhost_plan": {"drift": drift or {}}}


def test_plan_report_names_the_converged_hosts_and_the_work():
    facts = {
        "gpu1": host_facts([]),
        "gpu2": host_facts(["docker", "docker_daemon"], {
            "docker": ["package docker-ce: absent, was installed version=5:27.5.1", "unit docker.service: x",
                       "file:/etc/x: absent, was y", "and 2 more"],
            "docker_daemon": ["its inputs changed (variables, facts or gpuhost's code) since the last converged run"]}),
        "gpu3": host_facts([]),
        "gpu4": host_facts(["gpuhost_verify"]),
    }
    lines = host_plan.plan_report(["gpu1", "gpu2", "gpu3", "gpu4"], facts)
    assert lines == [
        "Plan: 2 of 4 host(s) converged, nothing to do (gpu1, gpu3); work on 2.",
        "gpu2: docker: package docker-ce: absent, was installed version=5:27.5.1; unit docker.service: x; "
        "file:/etc/x: absent, was y | docker_daemon: its inputs changed (variables, facts or gpuhost's code) "
        "since the last converged run",
        "gpu4: gpuhost_verify: needs work",
    ]


def test_plan_report_of_a_converged_fleet_and_of_a_fleet_with_work_everywhere():
    assert host_plan.plan_report(["a", "b"], {"a": host_facts([]), "b": host_facts([])}) == [
        "Plan: 2 of 2 host(s) converged, nothing to do (a, b)."]
    # A host without facts (it did not answer) counts as converged: it has no work noted.
    assert host_plan.plan_report(["a", "b"], {"a": host_facts(["docker"])})[0] == (
        "Plan: 1 of 2 host(s) converged, nothing to do (b); work on 1.")
    assert host_plan.plan_report(["a"], {"a": host_facts(["docker"])}) == [
        "Plan: 0 of 1 host(s) converged, nothing to do; work on 1.", "a: docker: needs work"]
    assert host_plan.plan_report([], {}) == ["Plan: 0 of 0 host(s) converged, nothing to do."]


def test_plan_report_of_a_full_run_is_its_headline():
    roles = ["nvidia_container_toolkit", "docker", "docker_users", "docker_daemon"]
    facts = {host: host_facts(roles, {"docker": ["x"]}) for host in ("a", "b", "c")}
    assert host_plan.plan_report(["a", "b", "c"], facts, full_run=True) == [
        "Plan: every role runs on 3 host(s) (gpuhost_full_run)."]


def test_plan_report_is_limited():
    hosts = [f"gpu{i:02d}" for i in range(30)]
    facts = {host: host_facts([] if i < 12 else ["docker"]) for i, host in enumerate(hosts)}
    lines = host_plan.plan_report(hosts, facts, limit=5)
    assert lines[0] == ("Plan: 12 of 30 host(s) converged, nothing to do (gpu00, gpu01, gpu02, gpu03, gpu04, "
                        "gpu05, gpu06, gpu07, gpu08, gpu09 and 2 more); work on 18.")
    assert lines[1:6] == [f"gpu{i:02d}: docker: needs work" for i in range(12, 17)]
    assert lines[6:] == ["and 13 more host(s) with work"]
    assert len(host_plan.plan_report(hosts, facts)) == 1 + 18  # the default limit is 20
    assert host_plan.plan_report(hosts, facts, limit=18)[-1] == "gpu29: docker: needs work"


def test_the_filter_gives_the_same_report():
    assert FilterModule().filters()["gpuhost_plan_report"] is gpuhost_plan_report
    needs = [[], ["docker"], None]
    plans = [{"drift": {}}, {"drift": {"docker": ["unit docker.service: inactive"]}}, None]
    assert gpuhost_plan_report(["a", "b", "c"], needs, plans) == [
        "Plan: 2 of 3 host(s) converged, nothing to do (a, c); work on 1.",
        "b: docker: unit docker.service: inactive"]
    assert gpuhost_plan_report(["a", "b"], [["docker"], ["docker"]], [{}, {}], full_run="yes") == [
        "Plan: every role runs on 2 host(s) (gpuhost_full_run)."]


# ---- The action plugin and the module in a real run -------------------------------------

PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan
      gpuhost_host_state:
        mode: plan
        roles: [docker_users, docker_daemon]
        roles_dir: "{{ roles_dir }}"
        path: "{{ record }}"
      register: first

    - name: Record docker_users
      gpuhost_host_state:
        mode: record
        role: docker_users
        inputs: "{{ first.inputs.docker_users }}"
        items: [{file: "{{ watched }}"}]
        path: "{{ record }}"
      when: record_it | default(true) | bool

    - name: Record docker_daemon
      gpuhost_host_state:
        mode: record
        role: docker_daemon
        inputs: "{{ first.inputs.docker_daemon }}"
        items: []
        path: "{{ record }}"
      when: record_it | default(true) | bool

    - name: Plan again
      gpuhost_host_state:
        mode: plan
        roles: [docker_users, docker_daemon]
        roles_dir: "{{ roles_dir }}"
        path: "{{ record }}"
      register: second

    - name: Bad plan
      gpuhost_host_state:
        mode: plan
        roles: [no_such_role]
        roles_dir: "{{ roles_dir }}"
      register: bad
      ignore_errors: true
"""


@pytest.fixture
def play(tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    watched = tmp_path / "watched"
    watched.write_text("one")

    def run(**extravars):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_HOME=str(tmp_path / "ansible-home"),
                   ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "remote"),
                   ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_NOCOLOR="1")
        variables = {"roles_dir": str(ROLES), "record": str(tmp_path / "converged.json"), "watched": str(watched),
                     **extravars}
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
             "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps(variables), str(playbook)],
            cwd=str(REPO), env=env, capture_output=True, text=True, timeout=180)
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"no JSON (rc={proc.returncode})\n{proc.stdout}\n{proc.stderr}") from None
        results = {task["task"]["name"]: task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]}
        return proc.returncode, results

    run.watched = watched
    return run


def test_the_action_computes_digests_and_the_module_compares(play):
    rc, results = play(docker_users=["alice"])
    assert rc == 0, results
    first, second = results["Plan"], results["Plan again"]
    assert first["needs_work"] == ["docker_users", "docker_daemon"] and first["converged"] == []
    assert set(first["inputs"]) == {"docker_users", "docker_daemon"}
    assert all(len(digest) == 64 for digest in first["inputs"].values())
    assert second["inputs"] == first["inputs"]
    assert second["needs_work"] == [] and second["converged"] == ["docker_users", "docker_daemon"]
    assert results["Bad plan"]["failed"] is True and "roles_dir" in results["Bad plan"]["msg"]

    # The same inventory: nothing to do. Another value of a role's option: that role runs.
    rc, results = play(docker_users=["alice"], record_it=False)
    assert results["Plan"]["converged"] == ["docker_users", "docker_daemon"]
    assert results["Plan"]["inputs"] == first["inputs"]
    rc, results = play(docker_users=["alice", "bob"], record_it=False)
    assert results["Plan"]["needs_work"] == ["docker_users"]
    assert results["Plan"]["drift"]["docker_users"] == [
        "its inputs changed (variables, facts or gpuhost's code) since the last converged run"]
    assert results["Plan"]["inputs"]["docker_daemon"] == first["inputs"]["docker_daemon"]
    # The toolkit's CDI setting is one of docker_daemon's inputs.
    rc, results = play(docker_users=["alice"], nvidia_container_toolkit_cdi=False, record_it=False)
    assert results["Plan"]["needs_work"] == ["docker_daemon"]
    # A watched file that changed.
    play.watched.write_text("two")
    rc, results = play(docker_users=["alice"], record_it=False)
    assert results["Plan"]["needs_work"] == ["docker_users"]
    assert results["Plan"]["drift"]["docker_users"][0].startswith(f"file:{play.watched}: sha256=")


def test_a_value_that_cannot_be_rendered_makes_the_role_run(play):
    rc, results = play(docker_users=["alice"], docker_daemon_options="{{ no_such_variable.key }}")
    assert results["Plan"]["inputs"]["docker_daemon"] == "unrendered"
    assert len(results["Plan"]["inputs"]["docker_users"]) == 64
    # It is never recorded, so the role stays on the list of work.
    assert "not recorded" in results["Record docker_daemon"]["msg"]
    assert results["Plan again"]["needs_work"] == ["docker_daemon"]
    assert results["Plan again"]["converged"] == ["docker_users"]
