"""What the end-to-end tests share: a lab fleet started and always removed."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GPUHOST = Path(sys.executable).parent / "gpuhost"


@contextlib.contextmanager
def _lab_fleet(name: str, state: Path, hosts: int = 1, distro: str = "debian12") -> Iterator[dict]:
    """``gpuhost lab up`` (its JSON summary: hosts, inventory, ...) and, whatever happens,
    ``gpuhost lab down``."""
    try:
        up = subprocess.run([str(GPUHOST), "lab", "up", "--hosts", str(hosts), "--distro", distro, "--name", name,
                             "--state-dir", str(state), "--format", "json"],
                            capture_output=True, text=True, timeout=1800)
        assert up.returncode == 0, up.stderr[-3000:]
        yield json.loads(up.stdout)
    finally:
        down = subprocess.run([str(GPUHOST), "lab", "down", "--name", name, "--state-dir", str(state)],
                              capture_output=True, text=True, timeout=600)
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="session")
def lab_fleet():
    """The context manager that starts a lab fleet and removes it: ``with lab_fleet(name, state) as summary``."""
    return _lab_fleet
