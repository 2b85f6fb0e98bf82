# -*- coding: utf-8 -*-
"""Probes the host-side modules share: running a program with a time limit, and reading the
NVIDIA kernel driver's version. Used by gpu_facts (what a host has) and nvidia_cdi_spec
(whether a driver is there to list in a CDI spec)."""

from __future__ import annotations

import os
import re
import subprocess

# The first line of /proc/driver/nvidia/version, e.g.
# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build ...".
NVRM_RE = re.compile(r"NVRM version:.*?Kernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)")


def run_command(argv, timeout):
    """Run `argv`; return (rc, stdout, stderr). Failures to start or time-outs come back as rc None."""
    env = dict(os.environ, LC_ALL="C", LANG="C", LANGUAGE="C")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    except (OSError, ValueError) as e:
        return None, "", "cannot run %s: %s" % (argv[0], getattr(e, "strerror", None) or e)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            # A program stuck in the kernel (a hung GPU) may not die; do not wait for it forever.
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        return None, "", "%s did not finish within %s seconds" % (os.path.basename(argv[0]), timeout)
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def is_executable(path):
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def first_line(*texts):
    """The first non-blank line of the first text that has one, or None."""
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return None


def parse_nvrm_version(text):
    """(version, flavor) from /proc/driver/nvidia/version; (None, None) when it is not there."""
    for line in (text or "").splitlines():
        match = NVRM_RE.search(line)
        if match:
            flavor = "open" if "Open Kernel Module" in line else "proprietary"
            return match.group(1), flavor
    return None, None
