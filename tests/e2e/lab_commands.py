"""Commands the end-to-end lab tests share: run a command, run one on a lab host, read a
stand-in key's fingerprint. Import into a test module: ``from lab_commands import run, on_host``."""

from __future__ import annotations

import subprocess
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"


def run(argv, check=True, timeout=1800, env=None):
    """ARGV's completed process; with CHECK, an assertion that it exited 0, with its stderr."""
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert proc.returncode == 0, f"{' '.join(map(str, argv))}: rc={proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


def on_host(host, *command, check=True):
    """COMMAND run in the lab host's container (docker exec)."""
    return run(["docker", "exec", host, *command], check=check, timeout=120)


def standin_fingerprint(name):
    """The primary fingerprint of the harness's stand-in key NAME (docker, nvidia)."""
    listing = run(["gpg", "--batch", "--with-colons", "--show-keys",
                   HARNESS / "mirror" / "keys" / f"{name}-standin.public.asc"]).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
