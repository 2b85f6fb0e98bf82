#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuhost contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_cdi_spec
short_description: Keep the NVIDIA CDI specification of a host present and current
description:
  - Makes sure the Container Device Interface (CDI) specification that lists the host's NVIDIA
    GPUs (C(nvidia.com/gpu=0), C(nvidia.com/gpu=all), ...) exists and matches the installed
    driver, so that C(docker run --device nvidia.com/gpu=all) and the NVIDIA runtime's V(cdi)
    mode find it.
  - The driver version comes from the C(NVRM version) line of O(proc_driver_version) when that
    file exists, and otherwise from the first line of
    C(nvidia-smi --query-gpu=driver_version --format=csv,noheader) run from the first executable
    of O(nvidia_smi). A failing or missing C(nvidia-smi) and no O(proc_driver_version) means no
    driver.
  - Without a driver, O(state=present) changes nothing and says so in RV(msg); it does not fail.
  - How the specification is kept depends on O(toolkit_version), by the rule
    C(refresh_units_shipped) of C(module_utils/gpuhost_toolkit_versions.py) (the same code the
    role's filters use on the controller). NVIDIA Container Toolkit 1.18.0 (from its first
    pre-release, apt version C(1.18.0~rc.1-1)) and newer ship the C(nvidia-cdi-refresh.path) and
    C(nvidia-cdi-refresh.service) units, which run C(nvidia-ctk cdi generate) into
    O(refresh_unit_spec) at boot and whenever the driver or C(nvidia-ctk) changes. Older toolkits
    ship none, and NVIDIA's instructions are to run C(nvidia-ctk cdi generate) by hand after every
    driver change.
  - Method V(refresh-units) (toolkit 1.18.0 and newer). The module never enables units; the role
    does that before it calls the module. When O(refresh_unit_spec) is missing, or the driver or
    toolkit version differs from the one O(state_file) records (the C(.path) unit of the 1.18.0
    pre-releases before C(rc.3) does not watch C(nvidia-ctk)), it runs
    C(systemctl start nvidia-cdi-refresh.service), which waits for the oneshot service to finish,
    and then looks for O(refresh_unit_spec). The service skips itself when its conditions fail
    (toolkit 1.18.0 finds the module in C(modules.dep) only as C(nvidia.ko), not as Debian's
    C(nvidia-current.ko); 1.18.1 only uncompressed), and then the module generates O(path) itself as
    for older toolkits, warns with the last lines of the service's journal, and keeps to that spec
    until the driver or toolkit changes, when it tries the units again. A specification gpuhost generated earlier for an older toolkit (O(state_file)
    records it and its SHA-256 still matches) is removed, since the units own the specification now
    and two files listing the same devices conflict. A file at O(path) that gpuhost did not write, or
    that changed since, is left alone with a warning.
  - Method V(generate) (toolkits before 1.18.0). When O(state_file) records the same driver and
    toolkit version and O(path) still has the recorded SHA-256, nothing is run. Otherwise
    C(nvidia-ctk cdi generate) writes a candidate into a private C(0700) temporary directory; O(path)
    is replaced atomically (temporary file beside it, fsync, rename; mode C(0644), a missing
    directory is created with C(0755)) only when the candidate's bytes differ. A spec gpuhost
    generated before at another path (O(path) was changed) is removed on the same terms as above.
  - O(state=absent) removes the specification gpuhost generated (when its SHA-256 still matches the
    record; otherwise it is left alone with a warning) and O(state_file). O(refresh_unit_spec) is
    never touched, by any state; the package's units own it.
  - O(state=query) only reports the driver, which method O(state=present) would use and which
    specification files exist.
author:
  - gpuhost maintainers (!UNKNOWN)
options:
  state:
    description:
      - V(present) makes sure the specification exists and is current.
      - V(absent) removes what gpuhost generated (CDI turned off).
      - V(query) changes nothing and reports.
    type: str
    choices: [present, absent, query]
    default: present
  toolkit_version:
    description:
      - The installed apt version of C(nvidia-container-toolkit), such as V(1.17.8-1) or
        V(1.18.0~rc.1-1). Only the upstream part decides the method.
      - Required for O(state=present) and O(state=absent).
    type: str
  path:
    description:
      - Where gpuhost generates the specification for toolkits without the refresh units.
      - Must end in C(.yaml) or C(.json), the only files CDI reads; the ending also chooses the
        format C(nvidia-ctk) writes.
    type: path
    default: /etc/cdi/nvidia.yaml
  refresh_unit_spec:
    description:
      - Where C(nvidia-cdi-refresh.service) writes the specification (C(NVIDIA_CTK_CDI_OUTPUT_FILE_PATH),
        which C(/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env) may change).
      - Only checked for existence; never written or removed by this module.
    type: path
    default: /var/run/cdi/nvidia.yaml
  state_file:
    description:
      - JSON record of what gpuhost last did, written atomically with mode C(0644) (its directory is
        created with C(0755)). It holds C(method), C(driver_version), C(toolkit_version), and for
        method V(generate) the C(path) and C(sha256) of the specification gpuhost generated.
      - Only a file whose path and SHA-256 match this record is ever removed.
    type: path
    default: /var/lib/gpuhost/nvidia-cdi-spec.json
  nvidia_ctk:
    description: The C(nvidia-ctk) program that generates the specification (method V(generate)).
    type: path
    default: /usr/bin/nvidia-ctk
  nvidia_smi:
    description:
      - C(nvidia-smi) programs to ask for the driver version when O(proc_driver_version) does not
        exist; the first executable one is run.
    type: list
    elements: path
    default: [/usr/bin/nvidia-smi, /usr/sbin/nvidia-smi]
  proc_driver_version:
    description: The kernel driver's version file.
    type: path
    default: /proc/driver/nvidia/version
  systemctl:
    description: The C(systemctl) program, a path or a name looked up on the PATH (and in the C(sbin) directories).
    type: str
    default: systemctl
  journalctl:
    description:
      - The C(journalctl) program, a path or a name looked up on the PATH, used only to quote the
        refresh service's journal when it fails.
    type: str
    default: journalctl
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - C(changed) is V(true) only when a specification's bytes changed, the refresh service was started,
    or a file was removed. O(state_file) alone may be rewritten without C(changed), for example when
    the record was missing and the regenerated specification has the same bytes as the file on disk.
  - In check mode, method V(generate) still runs C(nvidia-ctk cdi generate) into a private temporary
    directory (removed afterwards; nothing on the host changes), so that C(changed) and the diff tell
    the truth. Method V(refresh-units) does not start the service in check mode; C(changed) says
    whether a real run would. No file is written or removed in check mode.
  - Commands run with C(LC_ALL=C). C(nvidia-smi) may run 20 seconds, C(nvidia-ctk cdi generate) and
    C(systemctl start) 120 seconds.
  - The refresh service skips itself, and so writes nothing, when its conditions fail, for example
    when C(/lib/modules/<kernel>/modules.dep) lists no C(nvidia.ko); toolkit 1.18.0 matches only
    C(nvidia.ko) (not Debian's C(nvidia-current.ko)) and 1.18.1 no compressed module
    (C(nvidia.ko.zst)). The module then fails with the journal rather than report success.
seealso:
  - name: NVIDIA Container Toolkit, Support for Container Device Interface
    description: C(nvidia-ctk cdi generate) and the C(nvidia-cdi-refresh) units.
    link: https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/cdi-support.html
  - name: Container Device Interface specification
    description: The spec directories C(/etc/cdi) and C(/var/run/cdi) and how runtimes read them.
    link: https://github.com/cncf-tags/container-device-interface/blob/main/SPEC.md
"""

EXAMPLES = r"""
- name: Make sure the NVIDIA CDI specification is current
  nvidia_cdi_spec:
    toolkit_version: "{{ __nvidia_container_toolkit_installed_version }}"
  register: __nvidia_container_toolkit_cdi

- name: Report a host without a driver
  ansible.builtin.debug:
    msg: "{{ __nvidia_container_toolkit_cdi.msg }}"
  when: not __nvidia_container_toolkit_cdi.driver_present

- name: Remove the specification gpuhost generated
  nvidia_cdi_spec:
    state: absent
    toolkit_version: 1.17.8-1

- name: See what a host has, without changing it
  nvidia_cdi_spec:
    state: query
  register: __nvidia_container_toolkit_cdi_query
"""

RETURN = r"""
method:
  description:
    - How the specification is kept. V(refresh-units) by NVIDIA's C(nvidia-cdi-refresh) units
      (toolkit 1.18.0 and newer), V(generate) by this module with C(nvidia-ctk cdi generate), V(none)
      when there is no driver or for O(state=absent).
    - For O(state=query) the method O(state=present) would use, V(null) without O(toolkit_version).
  returned: always
  type: str
  sample: generate
driver_present:
  description: Whether an NVIDIA driver was found (O(proc_driver_version) exists or C(nvidia-smi) succeeded).
  returned: always
  type: bool
  sample: true
driver_version:
  description: The driver's version, V(null) when there is no driver or it cannot be read.
  returned: always
  type: str
  sample: 550.54.15
spec_path:
  description:
    - The specification in effect after the run (in check mode, after a real run), or V(null).
    - O(refresh_unit_spec) for method V(refresh-units), O(path) for V(generate). For O(state=absent),
      O(refresh_unit_spec) when it exists (the units own it). For O(state=query), the spec of the
      method when it exists, else the first of O(refresh_unit_spec) and O(path) that exists.
  returned: always
  type: str
  sample: /etc/cdi/nvidia.yaml
generated:
  description: Whether C(nvidia-ctk cdi generate) ran in this call (also in check mode, into a private directory).
  returned: always
  type: bool
  sample: true
refresh_started:
  description: Whether C(nvidia-cdi-refresh.service) was started in this call (never in check mode).
  returned: always
  type: bool
  sample: false
removed:
  description:
    - Files removed (in check mode, that would be removed), such as a specification gpuhost
      generated before and O(state_file).
  returned: always
  type: list
  elements: str
  sample: [/etc/cdi/nvidia.yaml]
spec_files:
  description: Whether O(path) and O(refresh_unit_spec) exist, before the run.
  returned: always
  type: dict
  sample: {"/etc/cdi/nvidia.yaml": true, "/var/run/cdi/nvidia.yaml": false}
recorded:
  description: The record O(state_file) held before the run, V(null) when there was none or it did not parse.
  returned: always
  type: dict
  sample:
    method: generate
    driver_version: 550.54.15
    toolkit_version: 1.17.8-1
    path: /etc/cdi/nvidia.yaml
    sha256: 3b0c4f5e1d0a7d6c2c1b8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3
msg:
  description: What was done, or would be done in check mode, in one or two sentences.
  returned: always
  type: str
  sample: Generated /etc/cdi/nvidia.yaml for driver 550.54.15 with nvidia-ctk (toolkit 1.17.8-1).
diff:
  description:
    - In diff mode, one entry per file that is (or in check mode would be) written or removed, with its
      text before and after (V("") for a file that does not exist).
  returned: in diff mode, when a file changes
  type: list
  elements: dict
  sample:
    - before: ""
      after: "---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\n"
      before_header: /etc/cdi/nvidia.yaml
      after_header: /etc/cdi/nvidia.yaml
"""

import hashlib
import json
import os
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpuhost_atomic_file import (
    make_parent_dirs,
    new_file_owner,
    private_copy,
    remove_orphans,
    write_atomic,
)
from ansible.module_utils.gpuhost_host_probe import first_line, is_executable, parse_nvrm_version, run_command
from ansible.module_utils.gpuhost_toolkit_versions import refresh_units_shipped

REFRESH_SERVICE = "nvidia-cdi-refresh.service"
SPEC_SUFFIXES = (".yaml", ".json")
FILE_MODE = 0o644
DIR_MODE = 0o755
SMI_TIMEOUT = 20
GENERATE_TIMEOUT = 120
START_TIMEOUT = 120
JOURNAL_LINES = 20
SBIN_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin"]
RECORD_KEYS = ("method", "driver_version", "toolkit_version", "path", "sha256")

ARGUMENT_SPEC = {
    "state": {"type": "str", "default": "present", "choices": ["present", "absent", "query"]},
    "toolkit_version": {"type": "str"},
    "path": {"type": "path", "default": "/etc/cdi/nvidia.yaml"},
    "refresh_unit_spec": {"type": "path", "default": "/var/run/cdi/nvidia.yaml"},
    "state_file": {"type": "path", "default": "/var/lib/gpuhost/nvidia-cdi-spec.json"},
    "nvidia_ctk": {"type": "path", "default": "/usr/bin/nvidia-ctk"},
    "nvidia_smi": {"type": "list", "elements": "path", "default": ["/usr/bin/nvidia-smi", "/usr/sbin/nvidia-smi"]},
    "proc_driver_version": {"type": "path", "default": "/proc/driver/nvidia/version"},
    "systemctl": {"type": "str", "default": "systemctl"},
    "journalctl": {"type": "str", "default": "journalctl"},
}


class CdiSpecError(Exception):
    """A failure the module reports with ``fail_json``; ``details`` go into the result."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


# ---------------------------------------------------------------------------
# Commands and files
# ---------------------------------------------------------------------------

def default_which(name):
    """``name`` when it is an executable path, else its path on the PATH or in the sbin directories."""
    if os.path.isabs(name):
        return name if is_executable(name) else None
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", os.defpath)] + SBIN_DIRS))


def read_bytes(path):
    """The bytes of the regular file at ``path``, ``None`` when nothing is there.

    Anything else at ``path`` (a directory, a FIFO that would block the read) is an error.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CdiSpecError(f"nvidia_cdi_spec: {path} is not a regular file; move it away.")
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CdiSpecError(f"nvidia_cdi_spec: cannot read {path}: {exc.strerror or exc}") from None


def sha256_of(data):
    return hashlib.sha256(data).hexdigest() if data is not None else None


def text_of(data):
    return data.decode("utf-8", "replace") if data is not None else ""


def write_file(path, data):
    """Replace ``path`` with ``data`` atomically, mode 0644, creating missing directories 0755."""
    try:
        make_parent_dirs(path, DIR_MODE)
        write_atomic(path, data, FILE_MODE, new_file_owner())
    except OSError as exc:
        raise CdiSpecError(f"nvidia_cdi_spec: cannot write {path}: {exc.strerror or exc}") from None


def remove_file(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CdiSpecError(f"nvidia_cdi_spec: cannot remove {path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------

def detect_driver(proc_driver_version, nvidia_smi, run=run_command):
    """``(present, version)`` of the NVIDIA driver; ``version`` may be ``None`` when present."""
    try:
        with open(proc_driver_version, "rb") as handle:
            text = handle.read(65536).decode("utf-8", "replace")
    except OSError:
        text = None
    if text is not None:
        version = parse_nvrm_version(text)[0]
        if version:
            return True, version
    for smi in nvidia_smi or []:
        if not is_executable(smi):
            continue
        rc, out, _err = run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], SMI_TIMEOUT)
        version = first_line(out) if rc == 0 else None
        if version:
            return True, version
        break
    return text is not None, None


# ---------------------------------------------------------------------------
# The record of what gpuhost did
# ---------------------------------------------------------------------------

def read_record(state_file):
    """``(record, warning)``: the record in ``state_file`` (``None`` when absent or unreadable)."""
    data = read_bytes(state_file)
    if data is None:
        return None, None
    try:
        loaded = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        return None, f"nvidia_cdi_spec: {state_file} is not valid JSON ({exc}); it is treated as no record."
    if not isinstance(loaded, dict):
        return None, f"nvidia_cdi_spec: {state_file} holds no JSON object; it is treated as no record."
    record = {key: loaded.get(key) if isinstance(loaded.get(key), str) else None for key in RECORD_KEYS}
    return record, None


def format_record(record):
    return (json.dumps({key: record.get(key) for key in RECORD_KEYS}, indent=2, sort_keys=True) + "\n").encode()


def save_record(state_file, record):
    """Write ``record`` unless ``state_file`` already holds exactly it; return whether it was written."""
    data = format_record(record)
    if read_bytes(state_file) == data:
        return False
    write_file(state_file, data)
    return True


def owned_spec(record):
    """``(path, sha256)`` of the spec the record says gpuhost generated, or ``(None, None)``."""
    if not record or not record.get("path") or not record.get("sha256"):
        return None, None
    return record["path"], record["sha256"]


# ---------------------------------------------------------------------------
# The work
# ---------------------------------------------------------------------------

class Run:
    """One call of the module: the options, the facts found, and what is being done."""

    def __init__(self, params, check_mode=False, run=run_command, which=None):
        self.p = params
        self.check_mode = check_mode
        self.run = run
        self.which = which or default_which
        self.warnings = []
        self.diff = []
        self.result = {
            "changed": False,
            "method": None,
            "driver_present": False,
            "driver_version": None,
            "spec_path": None,
            "generated": False,
            "refresh_started": False,
            "removed": [],
            "spec_files": {},
            "recorded": None,
            "msg": "",
        }

    # -- shared steps -------------------------------------------------------

    def look(self):
        """Find the driver, the spec files and the record; nothing is changed."""
        p = self.p
        present, version = detect_driver(p["proc_driver_version"], p["nvidia_smi"], run=self.run)
        self.result["driver_present"] = present
        self.result["driver_version"] = version
        self.result["spec_files"] = {path: os.path.exists(path) for path in (p["path"], p["refresh_unit_spec"])}
        self.record, warning = read_record(p["state_file"])
        if warning:
            self.warnings.append(warning)
        self.result["recorded"] = dict(self.record) if self.record else None

    def method_for(self, toolkit_version):
        try:
            return "refresh-units" if refresh_units_shipped(toolkit_version) else "generate"
        except ValueError as exc:
            raise CdiSpecError(f"nvidia_cdi_spec: toolkit_version: {exc}") from None

    def clean_orphans(self):
        if not self.check_mode:
            for target in (self.p["path"], self.p["state_file"]):
                remove_orphans(target)

    def remove_owned(self, keep=None):
        """Remove the spec the record says gpuhost generated, unless it is ``keep``.

        A file whose bytes changed since is left alone with a warning.
        """
        path, digest = owned_spec(self.record)
        if not path or path == keep:
            return
        data = read_bytes(path)
        if data is None:
            return
        if sha256_of(data) != digest:
            self.warnings.append(
                f"nvidia_cdi_spec: {path} changed since gpuhost generated it, so it is left alone. Remove it by "
                "hand when it is no longer wanted: CDI specifications that list the same devices conflict.")
            return
        self.removed(path, data)

    def removed(self, path, data):
        if not self.check_mode:
            remove_file(path)
        self.result["removed"].append(path)
        self.diff.append({"before": text_of(data), "after": "", "before_header": path, "after_header": path})

    def warn_foreign(self, path, why):
        """Warn about a spec at ``path`` that the record does not name as gpuhost's.

        The one it names was removed or warned about by :meth:`remove_owned`.
        """
        owned, _digest = owned_spec(self.record)
        if path == owned or not os.path.exists(path):
            return
        self.warnings.append(f"nvidia_cdi_spec: {path} was not written by gpuhost, so it is left alone; {why}")

    def journal(self):
        journalctl = self.which(self.p["journalctl"])
        if not journalctl:
            return f"({self.p['journalctl']} was not found, so the service's journal is not shown.)"
        rc, out, err = self.run([journalctl, "-u", REFRESH_SERVICE, "-n", str(JOURNAL_LINES), "--no-pager"],
                                SMI_TIMEOUT)
        if rc != 0 or not out.strip():
            return f"(The service's journal could not be read: {first_line(err, out) or f'exit status {rc}'}.)"
        return f"The last lines of journalctl -u {REFRESH_SERVICE}:\n{out.rstrip()}"

    # -- the states ---------------------------------------------------------

    def query(self):
        p = self.p
        exists = self.result["spec_files"]
        if p["toolkit_version"]:
            self.result["method"] = self.method_for(p["toolkit_version"])
        by_method = {"refresh-units": p["refresh_unit_spec"], "generate": p["path"]}.get(self.result["method"])
        if by_method and exists[by_method]:
            self.result["spec_path"] = by_method
        elif not by_method:
            self.result["spec_path"] = next(
                (path for path in (p["refresh_unit_spec"], p["path"]) if exists[path]), None)
        found = [path for path, there in exists.items() if there]
        if not self.result["driver_present"]:
            driver = "No NVIDIA driver"
        else:
            driver = f"NVIDIA driver {self.result['driver_version'] or '(version unknown)'}"
        self.result["msg"] = f"{driver}; CDI specifications present: {', '.join(found) if found else 'none'}."

    def present(self):
        if not self.result["driver_present"]:
            self.result["method"] = "none"
            self.result["msg"] = ("No NVIDIA driver was found (no "
                                  f"{self.p['proc_driver_version']} and no working nvidia-smi), so no CDI "
                                  "specification is made. Install the driver, then run this again.")
            return
        method = self.method_for(self.p["toolkit_version"])
        self.result["method"] = method
        self.clean_orphans()
        if method == "refresh-units":
            self.present_refresh_units()
        else:
            self.present_generate()

    def present_refresh_units(self):
        p = self.p
        spec = p["refresh_unit_spec"]
        driver, toolkit = self.result["driver_version"], p["toolkit_version"]
        recorded = self.record or {}
        if not os.path.exists(spec) and recorded.get("method") == "generate" \
                and recorded.get("driver_version") == driver and recorded.get("toolkit_version") == toolkit:
            # The units skipped themselves for this driver and toolkit before (see
            # fall_back_to_generate): gpuhost's own spec stands in; a new driver or toolkit
            # tries the units again.
            self.result["method"] = "generate"
            self.present_generate()
            return
        reasons = []
        if not os.path.exists(spec):
            reasons.append(f"{spec} is missing")
        if not self.record:
            reasons.append(f"{p['state_file']} holds no record")
        elif recorded.get("method") != "refresh-units" or recorded.get("driver_version") != driver \
                or recorded.get("toolkit_version") != toolkit:
            reasons.append(f"the driver or toolkit differs from what {p['state_file']} records")
        self.result["spec_path"] = spec
        if reasons and not self.check_mode and not self.start_refresh_service(spec):
            self.fall_back_to_generate(spec)
            return
        self.remove_owned()
        self.warn_foreign(p["path"], f"the refresh units write {spec}, and a second specification listing "
                          "the same devices hides or conflicts with it.")
        if not self.check_mode:
            save_record(p["state_file"], {"method": "refresh-units", "driver_version": driver,
                                          "toolkit_version": toolkit})
        self.result["changed"] = bool(reasons) or bool(self.result["removed"])
        done = []
        if reasons:
            verb = "Would start" if self.check_mode else "Started"
            done.append(f"{verb} {REFRESH_SERVICE} ({'; '.join(reasons)})")
        if self.result["removed"]:
            verb = "would remove" if self.check_mode else "removed"
            done.append(f"{verb} the specification gpuhost generated before ({', '.join(self.result['removed'])})")
        if done:
            text = "; ".join(done)
            self.result["msg"] = f"{text[0].upper()}{text[1:]}. NVIDIA's refresh units keep {spec} for driver {driver}."
        else:
            self.result["msg"] = f"{spec} is current for driver {driver}; NVIDIA's refresh units keep it."

    def start_refresh_service(self, spec):
        systemctl = self.which(self.p["systemctl"])
        if not systemctl:
            raise CdiSpecError(f"nvidia_cdi_spec: {self.p['systemctl']} was not found, so {REFRESH_SERVICE} "
                               f"cannot be started to write {spec}.")
        rc, out, err = self.run([systemctl, "start", REFRESH_SERVICE], START_TIMEOUT)
        if rc != 0:
            said = first_line(err, out) or (f"exit status {rc}" if rc is not None else "it did not run")
            raise CdiSpecError(f"nvidia_cdi_spec: systemctl start {REFRESH_SERVICE} failed: {said}\n{self.journal()}",
                               rc=rc, stdout=out, stderr=err)
        self.result["refresh_started"] = True
        return os.path.exists(spec)

    def fall_back_to_generate(self, spec):
        """The refresh service ran but wrote no spec: it skips itself when its conditions fail
        (nvidia-smi and /usr/bin/nvidia-ctk must exist and /lib/modules/<kernel>/modules.dep
        must list the nvidia module: 1.18.0 matches only nvidia.ko, not Debian's
        nvidia-current.ko; 1.18.1 no compressed module). gpuhost generates the spec itself,
        where it lasts, and says why."""
        self.warnings.append(
            f"nvidia_cdi_spec: {REFRESH_SERVICE} ran but wrote no CDI specification at {spec} (the service skips "
            "itself when its conditions fail: nvidia-smi and /usr/bin/nvidia-ctk must exist and "
            "/lib/modules/<kernel>/modules.dep must list the nvidia module, which toolkit 1.18.0 finds only as "
            "nvidia.ko and 1.18.1 only uncompressed; or /etc/nvidia-container-toolkit/nvidia-cdi-refresh.env "
            "sends it elsewhere with NVIDIA_CTK_CDI_OUTPUT_FILE_PATH). gpuhost generated "
            f"{self.p['path']} itself instead; a newer driver or toolkit tries the units again. "
            f"{self.journal()}")
        self.result["method"] = "generate"
        self.present_generate()

    def present_generate(self):
        p = self.p
        path, driver, toolkit = p["path"], self.result["driver_version"], p["toolkit_version"]
        self.result["spec_path"] = path
        recorded = self.record or {}
        owned, digest = owned_spec(self.record)
        current = read_bytes(path)
        if driver and recorded.get("method") == "generate" and recorded.get("driver_version") == driver \
                and recorded.get("toolkit_version") == toolkit and owned == path and sha256_of(current) == digest:
            self.result["msg"] = f"{path} is current for driver {driver} (toolkit {toolkit}); nothing was run."
            self.warn_refresh_spec()
            return
        candidate = self.generate()
        spec_changed = candidate != current
        if spec_changed:
            self.diff.append({"before": text_of(current), "after": text_of(candidate),
                              "before_header": path, "after_header": path})
        if not self.check_mode:
            if spec_changed:
                write_file(path, candidate)
            save_record(p["state_file"], {"method": "generate", "driver_version": driver, "toolkit_version": toolkit,
                                          "path": path, "sha256": sha256_of(candidate)})
        self.remove_owned(keep=path)
        self.warn_refresh_spec()
        self.result["changed"] = spec_changed or bool(self.result["removed"])
        if spec_changed:
            verb = "Would write" if self.check_mode else "Generated"
            why = "a new" if current is None else "an updated"
            msg = f"{verb} {why} {path} for driver {driver or '(version unknown)'} with nvidia-ctk (toolkit {toolkit})."
        else:
            msg = f"{path} is current for driver {driver or '(version unknown)'}: nvidia-ctk generated the same bytes."
        if self.result["removed"]:
            verb = "Would remove" if self.check_mode else "Removed"
            msg += f" {verb} the specification gpuhost generated before at {', '.join(self.result['removed'])}."
        self.result["msg"] = msg

    def warn_refresh_spec(self):
        spec = self.p["refresh_unit_spec"]
        if os.path.exists(spec):
            self.warnings.append(
                f"nvidia_cdi_spec: {spec} exists too, although toolkit {self.p['toolkit_version']} ships no refresh "
                f"units; CDI prefers it to {self.p['path']} for devices both list. It was left alone (a newer "
                "toolkit's units or a manual nvidia-ctk cdi generate wrote it; it lasts until the next reboot "
                "when /var/run is a tmpfs).")

    def generate(self):
        """Run nvidia-ctk cdi generate into a private directory; return the bytes it wrote."""
        ctk = self.p["nvidia_ctk"]
        if not is_executable(ctk):
            raise CdiSpecError(f"nvidia_cdi_spec: {ctk} is not an executable file, so no CDI specification can "
                               "be generated. Install nvidia-container-toolkit-base (it ships nvidia-ctk).")
        name = os.path.basename(self.p["path"])
        # The marker makes the private directory; the candidate gets its own name beside it, and
        # the marker's name is no CDI spec, so nvidia-ctk reads nothing but its own output there.
        with private_copy(b"", ".gpuhost-candidate") as marker:
            output = os.path.join(os.path.dirname(marker), name)
            rc, out, err = self.run([ctk, "cdi", "generate", f"--output={output}"], GENERATE_TIMEOUT)
            self.result["generated"] = True
            if rc != 0:
                said = (err.strip() or out.strip() or (f"exit status {rc}" if rc is not None else "it did not run"))
                said = said.replace(output, self.p["path"])
                raise CdiSpecError(f"nvidia_cdi_spec: nvidia-ctk cdi generate failed; {self.p['path']} was left "
                                   f"as it was. nvidia-ctk said: {said}", rc=rc, stdout=out, stderr=err)
            try:
                data = read_bytes(output) or b""
            except CdiSpecError:
                data = b""
        if not data.strip():
            raise CdiSpecError(f"nvidia_cdi_spec: nvidia-ctk cdi generate succeeded but wrote no specification; "
                               f"{self.p['path']} was left as it was. nvidia-ctk said: {err.strip() or 'nothing'}",
                               stdout=out, stderr=err)
        return data

    def absent(self):
        p = self.p
        self.result["method"] = "none"
        self.method_for(p["toolkit_version"])
        self.clean_orphans()
        self.remove_owned()
        self.warn_foreign(p["path"], "remove it by hand when CDI is no longer wanted.")
        state_data = read_bytes(p["state_file"])
        if state_data is not None:
            if not self.check_mode:
                remove_file(p["state_file"])
            self.result["removed"].append(p["state_file"])
        self.result["changed"] = bool(self.result["removed"])
        if os.path.exists(p["refresh_unit_spec"]):
            self.result["spec_path"] = p["refresh_unit_spec"]
        verb = "Would remove" if self.check_mode else "Removed"
        msg = f"{verb} {', '.join(self.result['removed'])}." if self.result["removed"] else \
            "gpuhost had generated no CDI specification; nothing to remove."
        if self.result["spec_path"]:
            msg += (f" {self.result['spec_path']} is left to the nvidia-cdi-refresh units, which own it; "
                    "it stays in effect while it exists.")
        self.result["msg"] = msg

    def apply(self):
        self.look()
        state = self.p["state"]
        if state == "query":
            self.query()
        elif state == "present":
            self.present()
        else:
            self.absent()
        return self.result


def check_params(params):
    for name in ("path", "refresh_unit_spec", "state_file", "proc_driver_version"):
        if not params[name] or not os.path.isabs(params[name]):
            raise CdiSpecError(f"nvidia_cdi_spec: {name} must be an absolute path, got {params[name]!r}.")
    if not params["path"].endswith(SPEC_SUFFIXES):
        raise CdiSpecError(f"nvidia_cdi_spec: path must end in .yaml or .json, the only files CDI reads; got "
                           f"{params['path']!r}.")
    if os.path.normpath(params["path"]) == os.path.normpath(params["refresh_unit_spec"]):
        raise CdiSpecError(f"nvidia_cdi_spec: path and refresh_unit_spec are both {params['path']}; gpuhost's "
                           "specification and the refresh units' must be different files.")
    if os.path.normpath(params["state_file"]) in (os.path.normpath(params["path"]),
                                                  os.path.normpath(params["refresh_unit_spec"])):
        raise CdiSpecError("nvidia_cdi_spec: state_file must not be a CDI specification's path.")
    if params["state"] != "query" and not (params["toolkit_version"] or "").strip():
        raise CdiSpecError(f"nvidia_cdi_spec: toolkit_version is required for state={params['state']}: the "
                           "installed apt version of nvidia-container-toolkit, such as '1.17.8-1'.")


def apply_spec(params, check_mode=False, run=run_command, which=None):
    """What the module does; returns ``(result, warnings, diff)`` or raises :class:`CdiSpecError`."""
    check_params(params)
    work = Run(params, check_mode=check_mode, run=run, which=which)
    result = work.apply()
    return result, work.warnings, work.diff


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "present", ["toolkit_version"]), ("state", "absent", ["toolkit_version"])],
        supports_check_mode=True,
    )

    def which(name):
        if os.path.isabs(name):
            return name if is_executable(name) else None
        return module.get_bin_path(name, opt_dirs=SBIN_DIRS)

    try:
        result, warnings, diff = apply_spec(module.params, check_mode=module.check_mode, which=which)
    except CdiSpecError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.details)
    for warning in warnings:
        module.warn(warning)
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
