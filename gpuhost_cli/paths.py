"""Where gpuhost's playbooks, roles and plugins are.

An installed wheel carries ``site.yml``, ``ansible.cfg``, ``playbooks/``, ``roles/`` and
``inventories/sample/`` inside the package, under ``gpuhost_cli/_data/``. A checkout (or an
editable install of one) has them at the repository root, the directory above the package.
The Ansible plugins (modules, the validation action, filters) are Python files of the
package itself, under ``gpuhost_cli/ansible_plugins/``, in both cases.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@functools.cache
def project_root() -> Path:
    """The directory that holds site.yml, ansible.cfg, playbooks/ and roles/."""
    data = resources.files("gpuhost_cli") / "_data"
    if data.joinpath("site.yml").is_file():
        # Installed from a wheel: the package lives in a plain directory of site-packages.
        return Path(str(data)).resolve()
    return PACKAGE_DIR.parent


def plugins_dir() -> Path:
    """gpuhost's Ansible plugins: modules/, module_utils/, action/ and filter/."""
    return PACKAGE_DIR / "ansible_plugins"


def playbook(name: str) -> Path:
    """playbooks/<name>.yml, or site.yml for 'site'."""
    root = project_root()
    return root / "site.yml" if name == "site" else root / "playbooks" / f"{name}.yml"


def ansible_cfg() -> Path:
    return project_root() / "ansible.cfg"


def roles_dir() -> Path:
    return project_root() / "roles"


def sample_inventory() -> Path:
    return project_root() / "inventories" / "sample"


def ansible_env() -> dict[str, str]:
    """Environment that points Ansible at gpuhost's configuration, roles and plugins.

    The paths are absolute, so a run works from any working directory; they override the
    relative paths of ansible.cfg, which only hold from the checkout's root.
    """
    plugins = plugins_dir()
    return {
        "ANSIBLE_CONFIG": str(ansible_cfg()),
        "ANSIBLE_ROLES_PATH": str(roles_dir()),
        "ANSIBLE_LIBRARY": str(plugins / "modules"),
        "ANSIBLE_MODULE_UTILS": str(plugins / "module_utils"),
        "ANSIBLE_ACTION_PLUGINS": str(plugins / "action"),
        "ANSIBLE_FILTER_PLUGINS": str(plugins / "filter"),
    }
