"""Load gpuhost's Ansible modules as plain Python modules, as Ansible ships them to hosts."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULES_DIR = REPO / "gpuhost_cli" / "ansible_plugins" / "modules"
MODULE_UTILS_DIR = REPO / "gpuhost_cli" / "ansible_plugins" / "module_utils"


def use_module_utils():
    """Make ``ansible.module_utils.gpuhost_*`` importable here, as Ansible makes it on hosts."""
    import ansible.module_utils

    if str(MODULE_UTILS_DIR) not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(str(MODULE_UTILS_DIR))


def load_module(name):
    """The module file ``gpuhost_cli/ansible_plugins/modules/<name>.py``, imported."""
    use_module_utils()
    spec = importlib.util.spec_from_file_location(name, MODULES_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_adhoc(module, args, tmp_path, *extra, timeout=180):
    """Run ``module`` on localhost through the real ``ansible`` command.

    Returns (exit status, the host's result). Ansible's own settings from the environment
    are left out so the run is the same everywhere; results come back as JSON.
    """
    import json
    import os
    import subprocess
    import sys

    ansible = Path(sys.executable).parent / "ansible"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_MODULE_UTILS=str(MODULE_UTILS_DIR),
    )
    argv = [str(ansible), "localhost", "-i", "localhost,", "-c", "local", "-m", module,
            "-M", str(MODULES_DIR), "-e", f"ansible_python_interpreter={sys.executable}"]
    if args:
        argv += ["-a", json.dumps(args)]
    proc = subprocess.run(argv + list(extra), cwd=str(REPO), env=env, capture_output=True, text=True,
                          timeout=timeout)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"ansible printed no JSON (rc={proc.returncode})\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}") from None
    return proc.returncode, report["plays"][0]["tasks"][0]["hosts"]["localhost"]


class ModuleExit(Exception):
    """A module's exit_json, caught in-process; ``result`` is what it returned."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


class ModuleFail(Exception):
    """A module's fail_json, caught in-process; ``result`` holds msg and failed."""

    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


def run_main(module, args, check_mode=False, diff=False):
    """Run a loaded module's main() in-process with ``args``.

    Returns what it passed to exit_json; raises ModuleFail with what it passed to fail_json.
    """
    from unittest import mock

    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    def exit_json(self, **result):
        raise ModuleExit(result)

    def fail_json(self, msg, **result):
        raise ModuleFail({**result, "msg": msg, "failed": True})

    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, "exit_json", exit_json), \
            mock.patch.object(basic.AnsibleModule, "fail_json", fail_json):
        try:
            module.main()
        except ModuleExit as done:
            return done.result
    raise AssertionError("the module returned without calling exit_json or fail_json")


def run_local_play(play, tmp_path, extravars, *args, name="play.yml", timeout=180):
    """Run ``play`` (a list of plays) on localhost with gpuhost's filters; JSON results.

    ``extravars`` are given as JSON, as inventory values would override a role's defaults.
    Returns (exit status, Ansible's JSON report).
    """
    import json
    import os
    import subprocess
    import sys

    import yaml

    playbook = tmp_path / name
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_FILTER_PLUGINS=str(REPO / "gpuhost_cli" / "ansible_plugins" / "filter"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           *args, "-e", f"ansible_python_interpreter={sys.executable}",
                           "-e", json.dumps(extravars), str(playbook)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=timeout)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"no JSON (rc={proc.returncode})\n{proc.stdout}\n{proc.stderr}") from None

