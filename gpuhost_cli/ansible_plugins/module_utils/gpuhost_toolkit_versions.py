# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""How each release of the NVIDIA Container Toolkit is driven, by version.

The version comparison is dpkg's, from ``gpuhost_toolkit_security`` (one implementation).
The ``nvidia_toolkit`` filter plugin imports this file on the controller for the
``nvidia_container_toolkit`` role.

``nvidia-ctk system create-dev-char-symlinks`` (NVIDIA's source,
``cmd/nvidia-ctk/system/create-dev-char-symlinks/create-dev-char-symlinks.go``):

- up to 1.17.x, ``--create-all`` creates links for every device node the driver can have;
  ``validateFlags`` refuses it only together with ``--watch``;
- 1.18.0 removed ``--watch`` but kept the check as ``if cfg.createAll``, so every call
  with ``--create-all`` fails with "create-all and watch are mutually exclusive" (exit 1).
  Every 1.18.0 pre-release (``v1.18.0-rc.1`` to ``v1.18.0-rc.6``) has the same check;
- 1.18.1 dropped the check ("Fix bug in create-dev-char-symlinks command"); 1.18.x after it,
  1.19.x and 1.20.0 accept ``--create-all``.

Without ``--create-all`` every release links the ``/dev/nvidia*`` nodes that exist.

The ``nvidia-cdi-refresh.path`` and ``.service`` units, which run ``nvidia-ctk cdi generate``
into ``/var/run/cdi/nvidia.yaml`` at boot and when the driver (``modules.dep``) changes
(from ``v1.18.0-rc.3`` also when ``/usr/bin/nvidia-ctk`` changes), come with the
``nvidia-container-toolkit-base`` package (``packaging/debian/nvidia-container-toolkit-base.install``):

- up to 1.17.x (checked up to ``v1.17.9``) the package installs no unit; NVIDIA's instructions are to run
  ``nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`` by hand after every driver change;
- ``v1.18.0-rc.1`` is the first release that installs both units, into ``/etc/systemd/system``;
  every later release has them (from ``v1.20.0-rc.1`` in ``/lib/systemd/system``).
"""

from __future__ import annotations

from ansible.module_utils.gpuhost_toolkit_security import compare_versions, parse_version

# Upstream versions whose create-dev-char-symlinks refuses --create-all, as a half-open
# range [first, end): 1.18.0, its pre-releases and any rebuild of it. "~" sorts before
# everything, so 1.18.0~ is older than every 1.18.0~rc.N and 1.18.1~ older than any 1.18.1.
CREATE_ALL_BROKEN = ("1.18.0~", "1.18.1~")

DEV_CHAR_SYMLINKS_ARGS = ["system", "create-dev-char-symlinks"]

# The first upstream version whose packages ship the nvidia-cdi-refresh units: the first
# 1.18.0 pre-release. Every later version ships them.
REFRESH_UNITS_FIRST = "1.18.0~rc.1"


def _upstream(version):
    """``<epoch>:<upstream>`` of the toolkit ``version``, without the Debian revision.

    Raises ValueError for text that is not a package version, including an empty one.
    """
    text = str(version if version is not None else "").strip()
    if not text:
        raise ValueError("no toolkit version given; expected the installed apt version, such as '1.17.8-1'.")
    epoch, upstream, _revision = parse_version(text)
    return "%d:%s" % (epoch, upstream)


def create_all_refused(version):
    """True when the toolkit ``version`` (an apt version such as ``1.18.0-1``) refuses --create-all.

    Only the upstream version counts; the Debian revision does not. Raises ValueError for text
    that is not a package version, including an empty one: the caller knows the version.
    """
    have = _upstream(version)
    first, end = CREATE_ALL_BROKEN
    return compare_versions(have, first) >= 0 and compare_versions(have, end) < 0


def refresh_units_shipped(version):
    """True when the toolkit ``version`` (an apt version such as ``1.18.0-1``) ships the
    ``nvidia-cdi-refresh.path`` and ``.service`` units: 1.18.0's first pre-release and newer.

    Only the upstream version counts; the Debian revision does not. Raises ValueError for text
    that is not a package version, including an empty one.
    """
    return compare_versions(_upstream(version), REFRESH_UNITS_FIRST) >= 0


def dev_char_symlinks_args(version):
    """The nvidia-ctk arguments that create the /dev/char links on the toolkit ``version``.

    ``--create-all`` (links for every node the driver can create, so a GPU whose node
    appears later is covered too) wherever the release accepts it; on 1.18.0 and its
    pre-releases, which refuse it, only the nodes that exist.
    """
    args = list(DEV_CHAR_SYMLINKS_ARGS)
    if not create_all_refused(version):
        args.append("--create-all")
    return args
