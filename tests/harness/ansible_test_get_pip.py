"""pip for ansible-test's sanity environments, where ansible-test's own bootstrap script
(https://ci-files.testing.ansible.com/ansible-test/get-pip-<version>.py) cannot be
downloaded: Python's bundled pip (ensurepip), then pip at the version ansible-test asks for,
from the package index pip is configured with.

ansible-test runs the script it finds at ~/.ansible/test/cache/get_pip_<version>.py as
get-pip.py, with pip's install arguments (for example ``pip==24.2 --no-setuptools``);
tests/unit/test_collection.py puts this file there in a home folder of its own.
"""

import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def main() -> None:
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *args])


if __name__ == "__main__":
    main()
