# -*- coding: utf-8 -*-
"""Which Docker engines inject CDI devices (``docker run --device nvidia.com/gpu=all``).

Docker Engine 25.0 added CDI device requests behind the daemon's ``"features": {"cdi": true}``;
28.2.0 turned them on by default. Shared by the gpu_facts module (what a host can do) and
the docker_daemon role's filter (whether daemon.json needs the feature), so the rule has one
implementation.
"""

from __future__ import annotations

import re

CDI_SUPPORTED = (25, 0)
CDI_DEFAULT = (28, 2)

NONE = "none"          # the engine has no CDI support
FLAG = "flag"          # CDI works once daemon.json says "features": {"cdi": true}
DEFAULT = "default"    # CDI is on unless daemon.json turns it off
UNKNOWN = "unknown"    # no engine version to judge by


def engine_release(version):
    """'28.2.1' -> (28, 2); None when the text does not start with a major.minor version."""
    match = re.match(r"^v?(\d+)\.(\d+)", (version or "").strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def engine_cdi_support(version):
    """NONE, FLAG, DEFAULT or UNKNOWN for an engine version such as '26.1.5'."""
    release = engine_release(version)
    if release is None:
        return UNKNOWN
    if release < CDI_SUPPORTED:
        return NONE
    return FLAG if release < CDI_DEFAULT else DEFAULT


def docker_cdi(version, cdi_feature):
    """(cdi_supported, cdi_enabled) for an engine version and daemon.json's features.cdi
    (True, False or None when the file does not set it); (None, None) without a version."""
    support = engine_cdi_support(version)
    if support == UNKNOWN:
        return None, None
    if support == NONE:
        return False, False
    if cdi_feature is not None:
        return True, bool(cdi_feature)
    return True, support == DEFAULT
