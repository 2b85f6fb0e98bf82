"""Load gpuhost's Ansible modules as plain Python modules, as Ansible ships them to hosts."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULES_DIR = REPO / "gpuhost_cli" / "ansible_plugins" / "modules"


def load_module(name):
    """The module file ``gpuhost_cli/ansible_plugins/modules/<name>.py``, imported."""
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
