"""The NVIDIA driver's packaging on Ubuntu and Debian, from dpkg's status.

Recognises the driver's packages by name (``classify_driver_package``): Ubuntu's
``nvidia-driver-<branch>``, ``nvidia-headless-(no-dkms-)<branch>``, ``nvidia-utils-<branch>``,
``libnvidia-compute-<branch>``, ``nvidia-dkms-<branch>``, ``nvidia-kernel-common/source-<branch>``
and the precompiled ``linux-modules/objects/signatures-nvidia-*`` (NVIDIA's repository for Ubuntu
uses the same names); NVIDIA's ``cuda-drivers(-<branch>)``, ``nvidia-open(-<branch>)``,
``nvidia-driver-pinning-<branch>``, ``nvidia-kernel-open-dkms`` and the unbranched
``nvidia-dkms(-open)``; Debian's ``nvidia-driver``, ``nvidia-(open-)kernel-dkms``,
``nvidia-kernel-support``, ``nvidia-smi``, ``libcuda1`` and ``nvidia-tesla-<branch>-*``.
A branch is Ubuntu's (``550``, ``550-server``; ``-open`` is the kernel modules' flavor, not
another branch), ``tesla-<branch>`` for Debian's Tesla packages, and the upstream major version
for Debian's unbranched names.

``driver_packaging`` turns dpkg's installed packages and the running kernel's release into
gpu_facts' ``driver.packages`` and ``driver.packaging``: the source (``driver_source``, whose
docstring has the rule: the graphics-drivers PPA by ``~gpu``, NVIDIA's repository by its own
package names or a bare ``0ubuntu1``/``1ubuntu1`` revision, Ubuntu's archive by
``<n>ubuntu<n>.<YY.MM>`` or another ``<n>ubuntu<n>`` revision, Debian's archive by ``~deb<n>`` or
``+deb<n>``, else unknown), the branch (the loaded driver's when several are installed), the
version (of the user-space package first, then the driver, dkms and repository packages), the
flavor, precompiled and/or dkms kernel modules, the kernels precompiled modules are installed for
and the newest installed ``linux-image-<release>`` of the running kernel's flavour.

``packaging_findings`` gives gpu_facts' findings about them: ``precompiled_modules_missing``
(hosts that rely on precompiled modules alone, without them for the running kernel or for a newer
installed kernel of its flavour), ``driver_version_mismatch`` (the loaded kernel module differs
from the installed packages' upstream version) and ``several_driver_branches``.

Everything here works on text and plain data; gpu_facts reads the files. Used by the gpu_facts
module on hosts and by tests/harness/capture_gpu_tree.py (``describes_packaging``), so it imports
the standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import OrderedDict

# A driver branch in Ubuntu's package names: 550, 550-server, 570-open, 570-server-open.
_BRANCH = r"(?P<branch>\d{3,4}(?:-server)?(?:-open)?)"
# A kernel release as uname -r prints it on Ubuntu and Debian: 5.15.0-105-generic, 6.8.0-1015-aws.
_KERNEL_RELEASE_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)-(\d+)-([a-z0-9][a-z0-9.+-]*)$")
# The kernel image packages: linux-image-5.15.0-105-generic, linux-image-unsigned-5.15.0-110-lowlatency.
_KERNEL_IMAGE_RE = re.compile(r"^linux-image-(?:unsigned-)?(.+)$")

# (pattern, role) of the driver packages, matched in this order. Roles: "driver" (the metapackage a
# host installs), "userspace" (the libraries and nvidia-smi, whose version must match the loaded
# kernel module), "dkms", "precompiled" (linux-modules-nvidia-*), "objects" and "signatures" (the
# parts Ubuntu's precompiled modules are linked and signed from), "kernel-support", "repository"
# (NVIDIA's own metapackages and pinning packages).
DRIVER_PACKAGE_PATTERNS = tuple((re.compile(pattern), role) for pattern, role in (
    # Ubuntu's names; NVIDIA's repository for Ubuntu uses the same ones.
    (r"^nvidia-driver-" + _BRANCH + r"$", "driver"),
    (r"^nvidia-headless-(?:no-dkms-)?" + _BRANCH + r"$", "driver"),
    (r"^nvidia-utils-" + _BRANCH + r"$", "userspace"),
    (r"^libnvidia-compute-" + _BRANCH + r"$", "userspace"),
    (r"^nvidia-dkms-" + _BRANCH + r"$", "dkms"),
    (r"^nvidia-kernel-(?:common|source)-" + _BRANCH + r"$", "kernel-support"),
    (r"^linux-modules-nvidia-" + _BRANCH + r"-(?P<target>[a-z0-9][a-z0-9.+-]*)$", "precompiled"),
    (r"^linux-objects-nvidia-" + _BRANCH + r"-(?P<target>[a-z0-9][a-z0-9.+-]*)$", "objects"),
    (r"^linux-signatures-nvidia-(?P<target>[a-z0-9][a-z0-9.+-]*)$", "signatures"),
    # NVIDIA's repository (CUDA and driver repositories, Ubuntu and Debian).
    (r"^cuda-drivers(?:-(?P<branch>\d{3,4}))?$", "repository"),
    (r"^nvidia-open(?:-(?P<branch>\d{3,4}))?$", "repository"),
    (r"^nvidia-driver-pinning-(?P<branch>\d{3,4})(?:\.[0-9.]+)?$", "repository"),
    (r"^nvidia-kernel-open-dkms$", "dkms"),
    # From branch 590 NVIDIA's repository for Ubuntu drops the branch from the names.
    (r"^nvidia-dkms(?:-open)?$", "dkms"),
    # Debian's names.
    (r"^nvidia-driver$", "driver"),
    (r"^nvidia-tesla-(?P<branch>\d{3,4})-driver$", "driver"),
    (r"^nvidia-(?:tesla-(?P<branch>\d{3,4})-)?(?:open-)?kernel-dkms$", "dkms"),
    (r"^nvidia-(?:tesla-(?P<branch>\d{3,4})-)?kernel-support$", "kernel-support"),
    (r"^nvidia-smi$", "userspace"),
    (r"^libcuda1$", "userspace"),
    (r"^nvidia-tesla-(?P<branch>\d{3,4})-libcuda1$", "userspace"),
))

# Which package's version is the driver's version: the first of these roles that is installed.
VERSION_ROLES = ("userspace", "driver", "dkms", "repository")

SOURCE_WORDS = {
    "ubuntu-archive": "Ubuntu's archive (restricted)",
    "graphics-drivers-ppa": "the graphics-drivers PPA",
    "nvidia-repository": "NVIDIA's CUDA/driver repository",
    "debian-archive": "Debian's archive (non-free)",
    "unknown": "an unknown source",
}


def dpkg_stanzas(text):
    """The stanzas of dpkg's status file, each a dict of its fields (names in lower case,
    continuation lines left out), in file order."""
    stanzas = []
    for stanza in re.split(r"\n\s*\n", (text or "").replace("\r\n", "\n")):
        fields = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t"):
                continue  # continuation of the previous field
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        stanzas.append(fields)
    return stanzas


def parse_dpkg_installed(text):
    """{package: version} of every package that dpkg has in state 'install ok installed', in file order."""
    found = OrderedDict()
    for fields in dpkg_stanzas(text):
        name = fields.get("package")
        if name and fields.get("status") == "install ok installed" and fields.get("version"):
            found[name] = fields["version"]
    return found


def classify_driver_package(name):
    """(role, branch, target) of a driver package, or None. `target` is the kernel release or
    kernel flavour of linux-modules/objects/signatures-nvidia-* packages."""
    for pattern, role in DRIVER_PACKAGE_PATTERNS:
        match = pattern.match(name)
        if match:
            groups = match.groupdict()
            return role, groups.get("branch"), groups.get("target")
    return None


def _package_branch(name, version):
    """The branch of a driver package: from its name (550-server), or for Debian's names without
    one (nvidia-driver, libcuda1) the upstream major version; 'tesla-535' for nvidia-tesla-535-*."""
    found = classify_driver_package(name)
    if found is None:
        return None
    role, branch, _target = found
    if branch is None and role in ("driver", "userspace", "dkms"):
        major = (upstream_version(version) or "").split(".")[0]
        branch = major if major.isdigit() else None
    if branch and name.startswith("nvidia-tesla-"):
        branch = "tesla-" + branch
    # The open kernel modules' packages (nvidia-driver-570-open, nvidia-dkms-570-open) share the
    # libraries and nvidia-utils-570 of their branch: "-open" is the flavor, not another branch.
    if branch and branch.endswith("-open"):
        branch = branch[:-len("-open")]
    return branch


def upstream_version(version):
    """'1:550.120-0ubuntu0.22.04.1' -> '550.120': the Debian version without epoch and revision."""
    text = (version or "").strip()
    if ":" in text:
        text = text.split(":", 1)[1]
    return text.rsplit("-", 1)[0] if "-" in text else text or None


def parse_kernel_release(release):
    """'5.15.0-105-generic' -> ((5, 15, 0, 105), 'generic'); None when it is not that form."""
    match = _KERNEL_RELEASE_RE.match((release or "").strip())
    if not match:
        return None
    return tuple(int(n) for n in match.groups()[:4]), match.group(5)


def driver_source(packages, roles):
    """Where the driver packages came from, by their names and versions.

    The rule, first match wins, looking at the versions of the driver, user-space and dkms packages:
    - a version with '~gpu' (0ubuntu0~gpu22.04.1): Launchpad's graphics-drivers PPA, whose uploads
      carry that suffix;
    - cuda-drivers, cuda-drivers-<branch>, nvidia-open, nvidia-driver-pinning-<branch>,
      nvidia-kernel-open-dkms or the unbranched nvidia-dkms(-open) installed: NVIDIA's repository,
      the only one with those names;
    - a revision '<n>ubuntu<n>.<YY.MM>...' (0ubuntu0.22.04.1): Ubuntu's archive; every update of
      the nvidia-graphics-drivers-* sources for a stable release is versioned that way;
    - a revision exactly '0ubuntu1' or '1ubuntu1' with no release after it: NVIDIA's repository,
      which rebuilds Ubuntu's packaging as 550.54.15-0ubuntu1. (A version a release first shipped
      with can look the same; Ubuntu's later updates do not);
    - any other '<n>ubuntu<n>' revision: Ubuntu's archive (a release's own pocket);
    - '~deb<n>' or '+deb<n>' in the revision: Debian's archive (stable updates and backports);
    - otherwise 'unknown' (for example a plain '-1' on Debian, which both Debian and NVIDIA use).
    """
    main = [packages[name] for name, role in roles.items() if role in ("driver", "userspace", "dkms")]
    if any("~gpu" in v for v in main):
        return "graphics-drivers-ppa"
    if any(role == "repository" for role in roles.values()) or any(
            name in ("nvidia-kernel-open-dkms", "nvidia-dkms", "nvidia-dkms-open") for name in roles):
        return "nvidia-repository"
    revisions = [v.rsplit("-", 1)[1] if "-" in v else "" for v in main]
    if any(re.match(r"^\d+ubuntu\d+\.\d\d\.\d\d", r) for r in revisions):
        return "ubuntu-archive"
    if any(r in ("0ubuntu1", "1ubuntu1") for r in revisions):
        return "nvidia-repository"
    if any(re.match(r"^\d+ubuntu\d+", r) for r in revisions):
        return "ubuntu-archive"
    if any(re.search(r"[~+]deb\d", r) for r in revisions):
        return "debian-archive"
    return "unknown"


def driver_packaging(installed, kernel, loaded_version=None):
    """(packages, packaging) from dpkg's installed packages and the running kernel's release.

    `packages` maps each recognised driver package to its version; `packaging` is None when
    there is none."""
    roles = OrderedDict()
    branches = {}
    targets = {}
    for name in sorted(installed):
        found = classify_driver_package(name)
        if found is None:
            continue
        roles[name] = found[0]
        branch = _package_branch(name, installed[name])
        if branch:
            branches[name] = branch
        if found[2]:
            targets[name] = found[2]
    packages = OrderedDict((name, installed[name]) for name in roles)
    if not packages:
        return packages, None

    # A branch counts as installed when its driver, user-space or dkms packages are; leftover
    # precompiled modules of another branch for an old kernel do not.
    installed_branches = sorted({branches[n] for n, r in roles.items() if n in branches and r in ("driver", "userspace", "dkms")},
                                key=_branch_key)
    loaded_major = (loaded_version or "").split(".")[0]
    branch = None
    if installed_branches:
        same = [b for b in installed_branches if b.replace("tesla-", "").split("-")[0] == loaded_major]
        branch = same[0] if same else installed_branches[-1]

    version = None
    for wanted in VERSION_ROLES:
        for name, role in roles.items():
            if role == wanted and (branch is None or branches.get(name) in (branch, None)):
                version = packages[name]
                break
        if version:
            break

    precompiled = [n for n, r in roles.items() if r == "precompiled" and (branch is None or branches.get(n) == branch)]
    precompiled_kernels = sorted({targets[n] for n in precompiled if parse_kernel_release(targets[n])},
                                 key=lambda r: parse_kernel_release(r)[0])
    precompiled_flavours = sorted({targets[n] for n in precompiled if not parse_kernel_release(targets[n])})
    dkms = [n for n, r in roles.items() if r == "dkms"]
    modules = " and ".join(kind for kind, present in (("precompiled", precompiled), ("dkms", dkms)) if present) or None

    kernel_names = [n for n, r in roles.items() if r in ("dkms", "precompiled")]
    if not kernel_names:
        flavor = None
    elif any((branches.get(n) or "").endswith("-open") or "open" in n.split("-") for n in kernel_names):
        flavor = "open"
    else:
        flavor = "proprietary"

    running = None
    if precompiled and kernel:
        running = kernel in precompiled_kernels
    packaging = OrderedDict([
        ("source", driver_source(packages, roles)),
        ("branch", branch),
        ("branches", installed_branches),
        ("version", version),
        ("upstream_version", upstream_version(version) if version else None),
        ("flavor", flavor),
        ("kernel_modules", modules),
        ("kernel", kernel),
        ("precompiled_kernels", precompiled_kernels),
        ("precompiled_flavours", precompiled_flavours),
        ("modules_for_running_kernel", running),
        ("newest_kernel", newest_installed_kernel(installed, kernel)),
    ])
    return packages, packaging


def _branch_key(branch):
    number = re.search(r"\d+", branch)
    return (int(number.group(0)) if number else 0, branch)


def newest_installed_kernel(installed, running):
    """The newest installed linux-image-<release> of the running kernel's flavour (the kernel the
    boot loader starts by default), or None when unknown."""
    parsed = parse_kernel_release(running)
    if parsed is None:
        return None
    flavour = parsed[1]
    best = None
    for name in installed:
        release = kernel_image_release(name)
        candidate = parse_kernel_release(release)
        if candidate is None or candidate[1] != flavour:
            continue
        if best is None or candidate[0] > parse_kernel_release(best)[0]:
            best = release
    return best


def kernel_image_release(name):
    """'linux-image-5.15.0-107-generic' -> '5.15.0-107-generic': the kernel release that a
    linux-image(-unsigned)-<release> package installs; None for other packages and for
    metapackages such as linux-image-generic."""
    match = _KERNEL_IMAGE_RE.match(name)
    if match and parse_kernel_release(match.group(1)):
        return match.group(1)
    return None


def describes_packaging(name):
    """True for the packages driver_packaging reads: the driver's packages and the kernel images."""
    return classify_driver_package(name) is not None or kernel_image_release(name) is not None


def parse_osrelease(text):
    """The running kernel's release (uname -r) from the text of /proc/sys/kernel/osrelease, or None."""
    lines = (text or "").strip().splitlines()
    return lines[0].strip() or None if lines else None


# ---------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------

def packaging_findings(driver):
    """(code, severity, message) about the driver's packages; none without driver packages."""
    packaging = driver.get("packaging")
    packages = driver.get("packages") or {}
    if not packaging:
        return []
    found = []
    branch = packaging.get("branch")
    kernel = packaging.get("kernel")
    modules = packaging.get("kernel_modules")
    precompiled = packaging.get("precompiled_kernels") or []
    # Precompiled modules (Ubuntu's linux-modules-nvidia-<branch>-<kernel release>) load only on the
    # kernel they were built for. With a dkms package too, dkms builds for other kernels, so only
    # hosts that rely on precompiled modules alone are checked.
    if modules == "precompiled" and kernel and branch and precompiled:
        flavours = packaging.get("precompiled_flavours") or []
        flavour = (parse_kernel_release(kernel) or (None, None))[1]
        # Ubuntu's names carry the open flavor after the branch: linux-modules-nvidia-570-open-<kernel>.
        module_branch = branch + ("-open" if packaging.get("flavor") == "open" else "")
        meta = "linux-modules-nvidia-%s-%s" % (module_branch, flavour) if flavour else None
        follow = ("" if meta is None or flavour in flavours else
                  " and the metapackage %s, which installs the modules for each new kernel of that flavour" % meta)
        newest = packaging.get("newest_kernel")
        if kernel not in precompiled:
            state = ("is loaded now but will not load again after the next reboot"
                     if driver.get("loaded") else "cannot be loaded")
            found.append(("precompiled_modules_missing", "warning",
                          "The NVIDIA driver's precompiled kernel modules (branch %s) are installed for %s but not "
                          "for the running kernel %s: the driver %s. Install linux-modules-nvidia-%s-%s%s "
                          "(ubuntu-drivers install installs the metapackage), then reboot."
                          % (branch, ", ".join(precompiled), kernel, state, module_branch, kernel, follow)))
        elif (newest and newest != kernel and newest not in precompiled
              and parse_kernel_release(newest)[0] > parse_kernel_release(kernel)[0]):
            found.append(("precompiled_modules_missing", "warning",
                          "The newest installed kernel %s, which the boot loader starts by default, has no NVIDIA "
                          "precompiled kernel modules (branch %s; installed for %s): the driver will not load "
                          "after the next reboot. Install linux-modules-nvidia-%s-%s%s (ubuntu-drivers install "
                          "installs the metapackage) before rebooting."
                          % (newest, branch, ", ".join(precompiled), module_branch, newest, follow)))

    installed_version = packaging.get("upstream_version")
    loaded_version = driver.get("version")
    if driver.get("loaded") and loaded_version and installed_version and installed_version != loaded_version:
        found.append(("driver_version_mismatch", "warning",
                      "The loaded NVIDIA kernel module is %s but the installed driver packages are %s (%s): "
                      "programs that use the installed libraries, nvidia-smi and containers among them, fail with "
                      "\"Failed to initialize NVML: Driver/library version mismatch\". Reboot to load the "
                      "installed driver (or, with no process using the GPUs, unload the nvidia modules and "
                      "load them again)."
                      % (loaded_version, installed_version, packaging.get("version"))))

    branches = packaging.get("branches") or []
    if len(branches) > 1:
        others = [name for name in sorted(packages)
                  if _package_branch(name, packages[name]) in branches and _package_branch(name, packages[name]) != branch]
        found.append(("several_driver_branches", "warning",
                      "NVIDIA driver packages of %d branches are installed (%s); only one driver can be loaded, "
                      "and upgrades of the others can replace its libraries or kernel modules. Keep branch %s "
                      "and remove the others' packages: apt purge %s."
                      % (len(branches), ", ".join(branches), branch, " ".join(others))))
    return found
