"""The distribution releases gpuhost supports.

This is the one list: the roles' preflights read it through the ``gpuhost_platform`` filter,
the ``gpu_facts`` module imports it on hosts, and the README's support table is generated from
it (``python -m gpuhost_cli.role_docs``). Adding a release here, with its per-distribution vars
in the roles, is what supporting it means.

``tested_as`` says how the release is tested, for the support table: Debian's releases run as
real Debian hosts; Ubuntu's as simulated hosts (a Debian userland that identifies as Ubuntu),
since no Ubuntu archive is reachable from the test machines.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

RELEASES = (
    {"id": "debian", "name": "Debian", "version": "12", "codename": "bookworm",
     "lab_image": "debian12", "tested_as": "real Debian 12 hosts (debootstrap, systemd): every Molecule scenario and the "
                  "end-to-end lab test over SSH"},
    {"id": "debian", "name": "Debian", "version": "13", "codename": "trixie",
     "lab_image": "debian13", "tested_as": "real Debian 13 hosts (debootstrap, systemd): Molecule default, daemon-safety "
                  "(with docker_install_source: distro) and fleet"},
    {"id": "ubuntu", "name": "Ubuntu", "version": "22.04", "codename": "jammy",
     "lab_image": "ubuntu22-sim",
     "tested_as": "simulated: a Debian 12 userland that identifies as Ubuntu 22.04, with stand-ins "
                  "of Docker's and Ubuntu's packages; Molecule default and fleet"},
    {"id": "ubuntu", "name": "Ubuntu", "version": "24.04", "codename": "noble",
     "lab_image": "ubuntu24-sim",
     "tested_as": "simulated: a Debian 13 userland that identifies as Ubuntu 24.04, with stand-ins "
                  "of Docker's and Ubuntu's packages; Molecule default and fleet, and the end-to-end "
                  "lab test over SSH"},
)


def label(release):
    """'Ubuntu 24.04 (noble)'."""
    return "%s %s (%s)" % (release["name"], release["version"], release["codename"])


SUPPORTED_LIST = ", ".join(label(r) for r in RELEASES)


def find_release(dist_id, version):
    """The supported release for a distribution ID and version, or None.

    ``dist_id`` is os-release's ID or Ansible's ``distribution`` (any case). ``version`` is
    os-release's VERSION_ID or Ansible's ``distribution_version``: Debian's point releases
    ("12.7") belong to their major release; Ubuntu's versions must match exactly ("22.04",
    never "22.10").
    """
    dist_id = (dist_id or "").strip().lower()
    version = (version or "").strip()
    for release in RELEASES:
        if release["id"] != dist_id:
            continue
        if version == release["version"]:
            return release
        if release["id"] == "debian" and version.startswith(release["version"] + "."):
            return release
    return None


def platform_verdict(dist_name, version, host=None):
    """What the roles' preflights need: {supported, id, version, codename, label,
    supported_list, message}. ``message`` names the host, what it runs and the supported
    releases, and says what to do; it is empty for a supported release."""
    release = find_release(dist_name, version)
    shown = " ".join(v for v in ((dist_name or "").strip(), (version or "").strip()) if v) or "an unknown distribution"
    message = ""
    if release is None:
        message = (
            "%sruns %s, which gpuhost does not support. Supported: %s. Remove the host from the "
            "inventory or reinstall it with a supported release."
            % ("%s " % host if host else "", shown, SUPPORTED_LIST)
        )
    return {
        "supported": release is not None,
        "id": release["id"] if release else (dist_name or "").strip().lower() or None,
        "version": release["version"] if release else (version or "").strip() or None,
        "codename": release["codename"] if release else None,
        "label": label(release) if release else shown,
        "supported_list": SUPPORTED_LIST,
        "message": message,
    }
