"""Tests for the nvidia_cdi_spec module and the rule that picks its method.

Every path lies under tmp_path. The host's programs are shell scripts written here: an
nvidia-ctk whose specification names the driver version in a file (and that counts its
calls), an nvidia-smi, a systemctl that runs the refresh service's generation as NVIDIA's
unit does, and a journalctl.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from plugin_loader import ModuleFail, load_module, run_adhoc, run_main, use_module_utils

use_module_utils()
from ansible.module_utils import gpuhost_toolkit_security as sec  # noqa: E402
from ansible.module_utils import gpuhost_toolkit_versions as tv  # noqa: E402

cdi = load_module("nvidia_cdi_spec")

OLD_TOOLKIT = "1.17.8-1"
NEW_TOOLKIT = "1.18.0-1"
DRIVER = "550.54.15"
NEWER_DRIVER = "550.127.05"


# ---------------------------------------------------------------------------
# The rule: which toolkits ship the nvidia-cdi-refresh units
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("version, shipped", [
    ("1.16.2-1", False),
    ("1.17.0-1", False),
    ("1.17.8-1", False),
    ("1.17.9-1", False),
    ("1.17.99-1", False),
    ("1.18.0~rc.1-1", True),
    ("1.18.0~rc.6-1", True),
    ("1.18.0-1", True),
    ("1.18.0-0ubuntu1", True),
    ("1.18.1-1", True),
    ("1.19.0~rc.7-1", True),
    ("1.20.0-1", True),
    ("2.0.0-1", True),
    ("1:1.17.0-1", True),
])
def test_refresh_units_ship_from_the_first_1_18_0_pre_release(version, shipped):
    assert tv.refresh_units_shipped(version) is shipped


def test_a_pre_release_before_rc_1_has_no_units_and_the_debian_revision_does_not_count():
    assert tv.refresh_units_shipped("1.18.0~rc.0-1") is False
    assert tv.refresh_units_shipped("1.18.0~rc.1") is True
    assert tv.refresh_units_shipped("1.18.0~rc.1-99") is True
    assert sec.compare_versions(tv.REFRESH_UNITS_FIRST, "1.17.9") > 0
    assert sec.compare_versions(tv.REFRESH_UNITS_FIRST, "1.18.0") < 0


@pytest.mark.parametrize("version", ["", "  ", None, "latest", "v1.18.0"])
def test_the_rule_refuses_what_is_not_a_version(version):
    with pytest.raises(ValueError, match="version"):
        tv.refresh_units_shipped(version)


def test_the_existing_rules_still_answer():
    assert tv.create_all_refused("1.18.0-1") is True
    assert tv.create_all_refused("1.18.1-1") is False
    assert tv.dev_char_symlinks_args("1.17.8-1") == ["system", "create-dev-char-symlinks", "--create-all"]


# ---------------------------------------------------------------------------
# A host made of files and shell scripts
# ---------------------------------------------------------------------------

CTK = """#!/bin/sh
echo "$*" >> '{calls}'
if [ -e '{fail}' ]; then
    echo 'level=error msg="failed to generate CDI spec: failed to initialize NVML: Driver/library version mismatch"' >&2
    exit 1
fi
[ "$1 $2" = "cdi generate" ] || {{ echo "unexpected arguments: $*" >&2; exit 2; }}
out=
for arg in "$@"; do
    case "$arg" in --output=*) out="${{arg#--output=}}" ;; esac
done
[ -n "$out" ] || {{ echo "no --output" >&2; exit 2; }}
dir=$(dirname "$out")
stat -c '%a %n' "$dir" > '{outdir}'
version=$(cat '{driver}')
tmp="$dir/spec.$$.tmp"
cat > "$tmp" <<EOF
---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  mounts:
  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.$version
    containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.$version
EOF
mv "$tmp" "$out"
echo 'level=info msg="Generated CDI spec with version 0.5.0"' >&2
"""

SMI = """#!/bin/sh
echo "$*" >> '{calls}'
if [ -e '{fail}' ]; then
    echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2
    exit 9
fi
cat '{driver}'
cat '{driver}'
"""

SYSTEMCTL = """#!/bin/sh
echo "$*" >> '{calls}'
[ "$1 $2" = "start nvidia-cdi-refresh.service" ] || {{ echo "unexpected arguments: $*" >&2; exit 2; }}
if [ -e '{masked}' ]; then
    echo "Failed to start nvidia-cdi-refresh.service: Unit nvidia-cdi-refresh.service is masked." >&2
    exit 1
fi
# A failed condition skips the service, and systemctl start still succeeds.
[ -e '{skip}' ] && exit 0
mkdir -p "$(dirname '{spec}')"
exec '{ctk}' cdi generate --output='{spec}'
"""

JOURNALCTL = """#!/bin/sh
echo "$*" >> '{calls}'
echo "May 19 10:00:01 gpu17 systemd[1]: nvidia-cdi-refresh.service: Skipped due to 'exec-condition'."
echo "May 19 10:00:01 gpu17 systemd[1]: Finished nvidia-cdi-refresh.service without running nvidia-ctk."
"""


def nvrm_line(version):
    return (f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {version}  Tue Mar  5 22:23:56 UTC 2024\n"
            "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n")


class Host:
    """The files and programs the module looks at, all under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.driver_file = root / "driver-version"
        self.proc = root / "proc" / "driver" / "nvidia" / "version"
        self.spec = root / "etc" / "cdi" / "nvidia.yaml"
        self.refresh_spec = root / "run" / "cdi" / "nvidia.yaml"
        self.state = root / "var" / "lib" / "gpuhost" / "nvidia-cdi-spec.json"
        self.ctk_fail = root / "ctk-fails"
        self.smi_fail = root / "smi-fails"
        self.skip = root / "refresh-skips"
        self.masked = root / "refresh-masked"
        self.outdir = root / "ctk-output-dir"
        self.ctk = self.script("nvidia-ctk", CTK, calls=root / "ctk-calls", fail=self.ctk_fail,
                               outdir=self.outdir, driver=self.driver_file)
        self.smi = self.script("nvidia-smi", SMI, calls=root / "smi-calls", fail=self.smi_fail,
                               driver=self.driver_file)
        self.systemctl = self.script("systemctl", SYSTEMCTL, calls=root / "systemctl-calls", masked=self.masked,
                                     skip=self.skip, spec=self.refresh_spec, ctk=self.ctk)
        self.journalctl = self.script("journalctl", JOURNALCTL, calls=root / "journalctl-calls")

    def script(self, name, template, **values):
        path = self.bin / name
        path.write_text(template.format(**{k: str(v) for k, v in values.items()}))
        path.chmod(0o755)
        return path

    def set_driver(self, version, proc=True):
        """Load driver ``version``: the proc file (unless ``proc`` is false) and what nvidia-smi prints."""
        self.driver_file.write_text(version + "\n")
        if proc:
            self.proc.parent.mkdir(parents=True, exist_ok=True)
            self.proc.write_text(nvrm_line(version))
        return self

    def calls(self, program):
        path = self.root / f"{program}-calls"
        return path.read_text().splitlines() if path.exists() else []

    def params(self, **overrides):
        params = {
            "state": "present",
            "toolkit_version": OLD_TOOLKIT,
            "path": str(self.spec),
            "refresh_unit_spec": str(self.refresh_spec),
            "state_file": str(self.state),
            "nvidia_ctk": str(self.ctk),
            "nvidia_smi": [str(self.bin / "missing-nvidia-smi"), str(self.smi)],
            "proc_driver_version": str(self.proc),
            "systemctl": str(self.systemctl),
            "journalctl": str(self.journalctl),
        }
        params.update(overrides)
        return params

    def apply(self, check_mode=False, **overrides):
        """The module's work; returns ``(result, warnings, diff)``."""
        return cdi.apply_spec(self.params(**overrides), check_mode=check_mode)

    def record(self):
        return json.loads(self.state.read_text())


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def all_files(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------

def test_no_driver_makes_nothing_and_says_so(host):
    host.smi_fail.touch()
    before = all_files(host.root)
    result, warnings, diff = host.apply()
    assert result["changed"] is False
    assert result["driver_present"] is False
    assert result["driver_version"] is None
    assert result["method"] == "none"
    assert result["spec_path"] is None
    assert result["generated"] is False
    assert result["removed"] == []
    assert result["msg"].startswith("No NVIDIA driver was found")
    assert "no CDI specification is made" in result["msg"]
    assert host.calls("ctk") == []
    assert (warnings, diff) == ([], [])
    assert host.calls("smi") == ["--query-gpu=driver_version --format=csv,noheader"]
    assert all_files(host.root) == sorted(before + ["smi-calls"])


def test_the_proc_file_gives_the_version_without_running_nvidia_smi(host):
    host.set_driver(DRIVER)
    host.proc.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build\n")
    result, _, _ = host.apply(state="query")
    assert result["driver_present"] is True
    assert result["driver_version"] == "570.86.15"
    assert host.calls("smi") == []


def test_without_the_proc_file_the_first_executable_nvidia_smi_answers(host):
    host.set_driver(NEWER_DRIVER, proc=False)
    result, _, _ = host.apply(state="query")
    assert result["driver_present"] is True
    assert result["driver_version"] == NEWER_DRIVER
    assert host.calls("smi") == ["--query-gpu=driver_version --format=csv,noheader"]


def test_a_failing_nvidia_smi_is_no_driver(host):
    host.set_driver(DRIVER, proc=False)
    host.smi_fail.touch()
    result, _, _ = host.apply(state="query")
    assert (result["driver_present"], result["driver_version"]) == (False, None)
    assert result["msg"] == "No NVIDIA driver; CDI specifications present: none."


# ---------------------------------------------------------------------------
# Method "generate" (toolkits before 1.18.0)
# ---------------------------------------------------------------------------

def test_generate_writes_the_spec_and_the_record(host):
    host.set_driver(DRIVER)
    result, warnings, _ = host.apply()
    assert result["changed"] is True
    assert result["method"] == "generate"
    assert result["generated"] is True
    assert result["refresh_started"] is False
    assert result["spec_path"] == str(host.spec)
    assert result["driver_version"] == DRIVER
    assert result["recorded"] is None
    assert f"libcuda.so.{DRIVER}" in host.spec.read_text()
    assert host.spec.read_text().startswith("---\ncdiVersion: 0.5.0\n")
    assert mode_of(host.spec) == 0o644
    assert mode_of(host.spec.parent) == 0o755
    assert mode_of(host.state) == 0o644
    assert mode_of(host.state.parent) == 0o755
    assert host.record() == {"method": "generate", "driver_version": DRIVER, "toolkit_version": OLD_TOOLKIT,
                             "path": str(host.spec), "sha256": sha256(host.spec)}
    assert warnings == []
    calls = host.calls("ctk")
    assert len(calls) == 1 and calls[0].startswith("cdi generate --output=")
    # nvidia-ctk wrote into a private 0700 directory that is gone afterwards, under the spec's name.
    mode, outdir = host.outdir.read_text().split()
    assert mode == "700"
    assert not Path(outdir).exists()
    assert calls[0] == f"cdi generate --output={outdir}/nvidia.yaml"
    assert sorted(os.listdir(host.spec.parent)) == ["nvidia.yaml"]


def test_a_second_call_runs_nothing_and_changes_nothing(host):
    host.set_driver(DRIVER)
    host.apply()
    st = os.stat(host.spec)
    record = host.state.read_bytes()
    result, _, _ = host.apply()
    assert result["changed"] is False
    assert result["generated"] is False
    assert result["spec_path"] == str(host.spec)
    assert result["recorded"]["driver_version"] == DRIVER
    assert "nothing was run" in result["msg"]
    assert len(host.calls("ctk")) == 1
    assert os.stat(host.spec).st_ino == st.st_ino
    assert host.state.read_bytes() == record


def test_a_new_driver_regenerates(host):
    host.set_driver(DRIVER)
    host.apply()
    host.set_driver(NEWER_DRIVER)
    result, _, _ = host.apply()
    assert result["changed"] is True
    assert result["generated"] is True
    assert f"libcuda.so.{NEWER_DRIVER}" in host.spec.read_text()
    assert host.record()["driver_version"] == NEWER_DRIVER
    assert host.record()["sha256"] == sha256(host.spec)
    assert len(host.calls("ctk")) == 2


def test_a_new_toolkit_before_1_18_regenerates(host):
    host.set_driver(DRIVER)
    host.apply()
    result, _, _ = host.apply(toolkit_version="1.17.9-1")
    assert result["generated"] is True
    assert result["changed"] is False
    assert host.record()["toolkit_version"] == "1.17.9-1"


def test_the_same_bytes_again_leave_the_file_alone_and_only_the_record_is_written(host):
    host.set_driver(DRIVER)
    host.apply()
    host.state.unlink()
    before = os.stat(host.spec)
    result, _, _ = host.apply()
    after = os.stat(host.spec)
    assert result["changed"] is False
    assert result["generated"] is True
    assert "generated the same bytes" in result["msg"]
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert host.record()["sha256"] == sha256(host.spec)
    assert len(host.calls("ctk")) == 2


def test_a_spec_edited_by_hand_is_regenerated(host):
    host.set_driver(DRIVER)
    host.apply()
    generated = host.spec.read_bytes()
    host.spec.write_text("---\nkind: nvidia.com/gpu\n")
    result, _, _ = host.apply()
    assert result["changed"] is True
    assert host.spec.read_bytes() == generated


def test_check_mode_writes_nothing_reports_the_change_and_diffs(host):
    host.set_driver(DRIVER)
    before = all_files(host.root)
    result = run_main(cdi, host.params(), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["generated"] is True
    assert result["msg"].startswith(f"Would write a new {host.spec}")
    assert not host.spec.exists() and not host.spec.parent.exists()
    assert not host.state.exists() and not host.state.parent.exists()
    (entry,) = result["diff"]
    assert entry["before"] == ""
    assert f"libcuda.so.{DRIVER}" in entry["after"]
    assert entry["before_header"] == entry["after_header"] == str(host.spec)
    assert not Path(host.outdir.read_text().split()[1]).exists()
    assert all_files(host.root) == sorted(before + ["ctk-calls", "ctk-output-dir"])


def test_check_mode_after_a_driver_change_diffs_the_old_and_new_spec(host):
    host.set_driver(DRIVER)
    host.apply()
    old = host.spec.read_text()
    record = host.state.read_bytes()
    host.set_driver(NEWER_DRIVER)
    result = run_main(cdi, host.params(), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"][0]["before"] == old
    assert f"libcuda.so.{NEWER_DRIVER}" in result["diff"][0]["after"]
    assert host.spec.read_text() == old
    assert host.state.read_bytes() == record
    quiet = run_main(cdi, host.params(), check_mode=True)
    assert "diff" not in quiet


def test_a_failing_nvidia_ctk_fails_and_keeps_the_old_spec(host):
    host.set_driver(DRIVER)
    host.apply()
    old = host.spec.read_bytes()
    record = host.state.read_bytes()
    host.set_driver(NEWER_DRIVER)
    host.ctk_fail.touch()
    with pytest.raises(ModuleFail) as failed:
        run_main(cdi, host.params())
    result = failed.value.result
    assert "nvidia-ctk cdi generate failed" in result["msg"]
    assert "Driver/library version mismatch" in result["msg"]
    assert str(host.spec) in result["msg"]
    assert result["rc"] == 1
    assert "Driver/library version mismatch" in result["stderr"]
    assert result["changed"] is False
    assert host.spec.read_bytes() == old
    assert host.state.read_bytes() == record
    assert sorted(os.listdir(host.spec.parent)) == ["nvidia.yaml"]


def test_a_missing_nvidia_ctk_fails_with_the_fix(host):
    host.set_driver(DRIVER)
    with pytest.raises(cdi.CdiSpecError, match="not an executable file.*nvidia-container-toolkit-base"):
        host.apply(nvidia_ctk=str(host.bin / "no-nvidia-ctk"))
    assert not host.spec.exists()


def test_generate_warns_about_a_refresh_spec_it_does_not_own(host):
    host.set_driver(DRIVER)
    host.refresh_spec.parent.mkdir(parents=True)
    host.refresh_spec.write_text("---\nkind: nvidia.com/gpu\n")
    _, warnings, _ = host.apply()
    assert len(warnings) == 1
    assert str(host.refresh_spec) in warnings[0] and "left alone" in warnings[0]
    assert host.refresh_spec.read_text() == "---\nkind: nvidia.com/gpu\n"


def test_a_moved_path_removes_the_spec_gpuhost_generated_before(host):
    host.set_driver(DRIVER)
    host.apply()
    moved = host.root / "etc" / "cdi" / "gpus.yaml"
    result, _, _ = host.apply(path=str(moved))
    assert result["changed"] is True
    assert result["removed"] == [str(host.spec)]
    assert not host.spec.exists()
    assert f"libcuda.so.{DRIVER}" in moved.read_text()
    assert host.record()["path"] == str(moved)


# ---------------------------------------------------------------------------
# Method "refresh-units" (toolkit 1.18.0 and newer)
# ---------------------------------------------------------------------------

def test_refresh_units_start_the_service_once(host):
    host.set_driver(DRIVER)
    result, warnings, _ = host.apply(toolkit_version=NEW_TOOLKIT)
    assert result["changed"] is True
    assert result["method"] == "refresh-units"
    assert result["refresh_started"] is True
    assert result["generated"] is False
    assert result["spec_path"] == str(host.refresh_spec)
    assert result["msg"].startswith("Started nvidia-cdi-refresh.service")
    assert host.calls("systemctl") == ["start nvidia-cdi-refresh.service"]
    assert f"libcuda.so.{DRIVER}" in host.refresh_spec.read_text()
    assert host.record() == {"method": "refresh-units", "driver_version": DRIVER, "toolkit_version": NEW_TOOLKIT,
                             "path": None, "sha256": None}
    assert not host.spec.exists()
    assert warnings == []

    again, _, _ = host.apply(toolkit_version=NEW_TOOLKIT)
    assert again["changed"] is False
    assert again["refresh_started"] is False
    assert "is current" in again["msg"]
    assert host.calls("systemctl") == ["start nvidia-cdi-refresh.service"]


def test_refresh_units_start_again_after_a_driver_change_or_a_lost_spec(host):
    host.set_driver(DRIVER)
    host.apply(toolkit_version=NEW_TOOLKIT)
    host.set_driver(NEWER_DRIVER)
    result, _, _ = host.apply(toolkit_version=NEW_TOOLKIT)
    assert result["refresh_started"] is True and result["changed"] is True
    assert host.record()["driver_version"] == NEWER_DRIVER
    host.refresh_spec.unlink()
    result, _, _ = host.apply(toolkit_version=NEW_TOOLKIT)
    assert result["refresh_started"] is True
    assert f"{host.refresh_spec} is missing" in result["msg"]
    assert len(host.calls("systemctl")) == 3


def test_refresh_units_in_check_mode_start_nothing(host):
    host.set_driver(DRIVER)
    result = run_main(cdi, host.params(toolkit_version=NEW_TOOLKIT), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["refresh_started"] is False
    assert result["msg"].startswith("Would start nvidia-cdi-refresh.service")
    assert host.calls("systemctl") == []
    assert not host.refresh_spec.exists() and not host.state.exists()
    assert "diff" not in result


def test_a_service_that_skips_itself_leaves_gpuhost_to_generate_the_spec(host):
    """1.18.0's service finds only nvidia.ko in modules.dep (not Debian's nvidia-current.ko) and
    skips itself: gpuhost generates the spec where it lasts, says why, and on the next run with
    the same driver and toolkit neither starts the service nor regenerates."""
    host.set_driver(DRIVER)
    host.skip.touch()
    result, warnings, _ = host.apply(toolkit_version=NEW_TOOLKIT)
    assert result["changed"] is True and result["refresh_started"] is True
    assert result["method"] == "generate" and result["spec_path"] == str(host.spec)
    assert host.spec.is_file() and not host.refresh_spec.exists()
    assert host.record()["method"] == "generate" and host.record()["toolkit_version"] == NEW_TOOLKIT
    (warning,) = [w for w in warnings if "wrote no CDI specification" in w]
    assert f"nvidia-cdi-refresh.service ran but wrote no CDI specification at {host.refresh_spec}" in warning
    assert f"gpuhost generated {host.spec} itself instead" in warning
    assert "Skipped due to 'exec-condition'" in warning
    assert host.calls("journalctl") == ["-u nvidia-cdi-refresh.service -n 20 --no-pager"]

    ctk_calls = len(host.calls("nvidia-ctk"))
    result, _, _ = host.apply(toolkit_version=NEW_TOOLKIT)
    assert result["changed"] is False and result["method"] == "generate"
    assert len(host.calls("systemctl")) == 1 and len(host.calls("nvidia-ctk")) == ctk_calls

    # A new driver tries the units again; once they write the spec, gpuhost's goes.
    host.skip.unlink()
    host.set_driver(NEWER_DRIVER)
    result, _, _ = host.apply(toolkit_version=NEW_TOOLKIT)
    assert result["method"] == "refresh-units" and result["refresh_started"] is True
    assert host.refresh_spec.is_file() and not host.spec.exists()
    assert result["removed"] == [str(host.spec)]


def test_a_service_that_cannot_start_fails_with_systemctl_s_words(host):
    host.set_driver(DRIVER)
    host.masked.touch()
    with pytest.raises(cdi.CdiSpecError) as failed:
        host.apply(toolkit_version=NEW_TOOLKIT, journalctl=str(host.bin / "no-journalctl"))
    assert "systemctl start nvidia-cdi-refresh.service failed: Failed to start" in failed.value.msg
    assert "is masked" in failed.value.msg
    assert "was not found, so the service's journal is not shown" in failed.value.msg


def test_an_upgrade_to_refresh_units_removes_the_spec_gpuhost_generated(host):
    host.set_driver(DRIVER)
    host.apply()
    generated = host.spec.read_text()
    result, warnings, diff = host.apply(toolkit_version=NEW_TOOLKIT)
    assert result["changed"] is True
    assert result["refresh_started"] is True
    assert result["removed"] == [str(host.spec)]
    assert not host.spec.exists()
    assert host.refresh_spec.exists()
    assert "removed the specification gpuhost generated before" in result["msg"]
    assert warnings == []
    assert diff == [{"before": generated, "after": "", "before_header": str(host.spec),
                     "after_header": str(host.spec)}]
    assert host.record()["path"] is None


def test_an_upgrade_in_check_mode_only_says_what_it_would_remove(host):
    host.set_driver(DRIVER)
    host.apply()
    result = run_main(cdi, host.params(toolkit_version=NEW_TOOLKIT), check_mode=True)
    assert result["removed"] == [str(host.spec)]
    assert "would remove the specification" in result["msg"]
    assert host.spec.exists()
    assert host.record()["method"] == "generate"


def test_an_upgrade_leaves_a_foreign_spec_and_a_changed_one_alone(host):
    host.set_driver(DRIVER)
    host.spec.parent.mkdir(parents=True)
    host.spec.write_text("---\nkind: nvidia.com/gpu\n# made by hand\n")
    result, warnings, _ = host.apply(toolkit_version=NEW_TOOLKIT)
    assert result["removed"] == []
    assert host.spec.read_text().endswith("# made by hand\n")
    assert len(warnings) == 1 and "was not written by gpuhost" in warnings[0]

    other = Host(host.root / "other")
    other.set_driver(DRIVER)
    other.apply()
    with other.spec.open("a") as handle:
        handle.write("# edited\n")
    result, warnings, _ = other.apply(toolkit_version=NEW_TOOLKIT)
    assert result["removed"] == []
    assert other.spec.exists()
    assert len(warnings) == 1 and "changed since gpuhost generated it" in warnings[0]


# ---------------------------------------------------------------------------
# state=absent and state=query
# ---------------------------------------------------------------------------

def test_absent_removes_what_gpuhost_generated_and_never_the_refresh_spec(host):
    host.set_driver(DRIVER)
    host.apply()
    host.refresh_spec.parent.mkdir(parents=True)
    host.refresh_spec.write_text("---\nkind: nvidia.com/gpu\n")

    checked = run_main(cdi, host.params(state="absent"), check_mode=True)
    assert checked["changed"] is True
    assert checked["removed"] == [str(host.spec), str(host.state)]
    assert host.spec.exists() and host.state.exists()

    result, warnings, _ = host.apply(state="absent")
    assert result["changed"] is True
    assert result["method"] == "none"
    assert result["removed"] == [str(host.spec), str(host.state)]
    assert not host.spec.exists() and not host.state.exists()
    assert host.refresh_spec.exists()
    assert result["spec_path"] == str(host.refresh_spec)
    assert "left to the nvidia-cdi-refresh units" in result["msg"]
    assert warnings == []

    again, _, _ = host.apply(state="absent")
    assert again["changed"] is False
    assert again["removed"] == []


def test_absent_leaves_a_spec_gpuhost_did_not_write(host):
    host.set_driver(DRIVER)
    host.spec.parent.mkdir(parents=True)
    host.spec.write_text("---\nkind: nvidia.com/gpu\n")
    result, warnings, _ = host.apply(state="absent", toolkit_version=NEW_TOOLKIT)
    assert result["changed"] is False
    assert host.spec.exists()
    assert len(warnings) == 1 and "was not written by gpuhost" in warnings[0]


def test_query_reports_and_changes_nothing(host):
    host.set_driver(DRIVER)
    host.apply()
    before = {p: Path(host.root, p).read_bytes() for p in all_files(host.root)}
    result, _, _ = host.apply(state="query", toolkit_version=None)
    assert result["changed"] is False
    assert result["method"] is None
    assert result["spec_files"] == {str(host.spec): True, str(host.refresh_spec): False}
    assert result["spec_path"] == str(host.spec)
    assert result["recorded"]["sha256"] == sha256(host.spec)
    assert result["msg"] == f"NVIDIA driver {DRIVER}; CDI specifications present: {host.spec}."
    by_version, _, _ = host.apply(state="query", toolkit_version=NEW_TOOLKIT)
    assert by_version["method"] == "refresh-units"
    assert by_version["spec_path"] is None
    assert len(host.calls("ctk")) == 1
    assert host.calls("systemctl") == []
    assert {p: Path(host.root, p).read_bytes() for p in all_files(host.root) if p != "smi-calls"} == before


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

def test_a_corrupt_record_is_no_record(host):
    host.set_driver(DRIVER)
    host.state.parent.mkdir(parents=True)
    host.state.write_text("{not json")
    result, warnings, _ = host.apply()
    assert result["recorded"] is None
    assert result["generated"] is True
    assert any("is not valid JSON" in w for w in warnings)
    assert host.record()["sha256"] == sha256(host.spec)


@pytest.mark.parametrize("overrides, message", [
    ({"toolkit_version": None}, "toolkit_version is required for state=present"),
    ({"toolkit_version": "latest"}, "toolkit_version: 'latest' is not a package version"),
    ({"path": "/etc/cdi/nvidia.yml"}, "path must end in .yaml or .json"),
    ({"path": "relative/nvidia.yaml"}, "path must be an absolute path"),
])
def test_bad_options_fail_with_the_reason(host, overrides, message):
    host.set_driver(DRIVER)
    with pytest.raises(cdi.CdiSpecError, match=message.replace(".", r"\.")):
        host.apply(**overrides)
    assert host.calls("ctk") == []


def test_a_directory_or_fifo_where_the_spec_belongs_fails_without_blocking(host):
    host.set_driver(DRIVER)
    host.spec.mkdir(parents=True)
    with pytest.raises(cdi.CdiSpecError, match="is not a regular file"):
        host.apply()
    fifo = host.root / "etc" / "cdi" / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(cdi.CdiSpecError, match="is not a regular file"):
        host.apply(path=str(fifo))


def test_ansible_requires_toolkit_version_for_absent(host):
    with pytest.raises(ModuleFail, match="toolkit_version"):
        run_main(cdi, {"state": "absent", "state_file": str(host.state)})


def test_the_documented_options_are_the_argument_spec():
    options = yaml.safe_load(cdi.DOCUMENTATION)["options"]
    assert sorted(options) == sorted(cdi.ARGUMENT_SPEC)
    for name, spec in cdi.ARGUMENT_SPEC.items():
        for key in ("type", "default", "choices", "elements"):
            assert options[name].get(key) == spec.get(key), (name, key)


def test_the_documented_returns_are_what_the_module_returns(host):
    host.set_driver(DRIVER)
    result = run_main(cdi, host.params(), diff=True)
    documented = set(yaml.safe_load(cdi.RETURN))
    assert set(result) - {"changed", "warnings"} == documented
    yaml.safe_load(cdi.EXAMPLES)


# ---------------------------------------------------------------------------
# Through the ansible command
# ---------------------------------------------------------------------------

def test_through_ansible_check_apply_and_again(host, tmp_path):
    host.set_driver(DRIVER)
    args = host.params()

    rc, checked = run_adhoc("nvidia_cdi_spec", args, tmp_path, "--check", "--diff")
    assert rc == 0, checked
    assert checked["changed"] is True
    assert checked["method"] == "generate"
    assert f"libcuda.so.{DRIVER}" in checked["diff"][0]["after"]
    assert not host.spec.exists() and not host.state.exists()

    rc, applied = run_adhoc("nvidia_cdi_spec", args, tmp_path)
    assert rc == 0, applied
    assert applied["changed"] is True
    assert applied["spec_path"] == str(host.spec)
    assert "diff" not in applied
    assert host.record()["sha256"] == sha256(host.spec)

    rc, again = run_adhoc("nvidia_cdi_spec", args, tmp_path)
    assert rc == 0, again
    assert again["changed"] is False
    assert again["generated"] is False
    assert len(host.calls("ctk")) == 2
