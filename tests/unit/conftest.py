"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gpuhost_cli.cli import app


@pytest.fixture
def cli(monkeypatch):
    """Invoke gpuhost in-process; SSH gives up fast on the .invalid hosts."""
    monkeypatch.setenv("ANSIBLE_TIMEOUT", "5")
    monkeypatch.setenv("COLUMNS", "160")
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke
