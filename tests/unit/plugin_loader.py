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
