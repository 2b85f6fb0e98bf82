#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0

# The documentation of the action plugin gpuhost_offline_bundle (action/gpuhost_offline_bundle.py),
# which runs on the controller only; there is no module code to ship to hosts.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpuhost_offline_bundle
short_description: Check an offline bundle on the controller before any host changes
description:
  - Runs on the controller only; it never connects to a host.
  - O(src) is a bundle directory made by C(gpuhost bundle create), or the http(s) URL of a
    web server that serves one.
  - A directory is verified whole, as C(gpuhost bundle verify --fingerprint) does - every
    file against the signed manifest, the manifest and each release's Release, InRelease and
    Release.gpg against the bundle key, each Packages index against its Release, no file the
    manifest does not list.
  - Of a URL, the signed metadata is downloaded into the controller's cache
    (C($XDG_CACHE_HOME/gpuhost/bundles)) and verified the same way; the .deb files stay on
    the server and apt checks each one against the signed Packages index when a host
    downloads it.
  - Fails, naming each file, when the bundle is refused, or when its key is not O(fingerprint).
  - The logic is in C(plugin_utils/bundle_use.py) of the collection (C(gpuhost_cli.bundle_use) in a checkout).
author:
  - gpuhost maintainers (!UNKNOWN)
version_added: 0.1.0
options:
  src:
    description: The bundle's absolute path on the controller, or its http(s) URL.
    type: str
    required: true
  fingerprint:
    description: The bundle key's fingerprint (40 hex digits, spaces allowed), as C(gpuhost bundle create) prints it.
    type: str
    required: true
  hosts:
    description: The hosts that use the bundle, named in messages.
    type: list
    elements: str
notes:
  - An action plugin; use it with C(run_once), it checks the same bundle for every host.
"""

EXAMPLES = r"""
- name: Check the offline bundle before any host changes
  gpuhost.gpuhost.gpuhost_offline_bundle:
    src: /srv/bundles/2026-12
    fingerprint: 6E62744D0C6FE5EABBE8B8236A5EACF4197A0BFF
  run_once: true
  register: bundle
"""

RETURN = r"""
bundle:
  description: What the roles read of the bundle.
  returned: success
  type: dict
  contains:
    source:
      description: O(src) as given.
      type: str
    served:
      description: Whether O(src) is a URL.
      type: bool
    directory:
      description: The bundle directory on the controller (for a URL, its metadata in the cache).
      type: str
    keyring:
      description: The bundle's binary keyring on the controller.
      type: str
    fingerprint:
      description: The bundle key's fingerprint.
      type: str
    architecture:
      description: The dpkg architecture of the bundle's packages.
      type: str
    releases:
      description:
        - Per release codename, its C(distribution), C(hosts), C(packages) (each name's
          [version, architecture] pairs) and C(files) (the names in its directory).
      type: dict
msg:
  description: What was checked, or why the bundle is refused.
  returned: always
  type: str
"""
