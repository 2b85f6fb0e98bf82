"""The NVIDIA Container Toolkit's security table, and the two places that use it.

The table (module_utils/gpuhost_toolkit_security.py) is read by the nvidia_container_toolkit
role's preflight through the nvidia_toolkit filters on the controller, and by the gpu_facts
module on hosts. These tests check the table, the version rule, and that the preflight's
tasks, run by ansible-playbook, refuse and warn with the table's CVEs.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from plugin_loader import run_local_play, use_module_utils

from gpuhost_cli.ansible_plugins.filter.nvidia_toolkit import (
    FilterModule,
    nvidia_toolkit_missing_fixes,
    nvidia_toolkit_security,
    nvidia_toolkit_security_floor,
)

use_module_utils()
from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible.module_utils import gpuhost_toolkit_security as sec  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "nvidia_container_toolkit"
JULY_2025 = "https://nvidia.custhelp.com/app/answers/detail/a_id/5659"


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

def test_every_row_names_cves_a_fixed_release_and_a_bulletin():
    rows = sec.security_fixes()
    assert len(rows) >= 5
    for row in rows:
        assert re.fullmatch(r"\d+\.\d+\.\d+", row["fixed_in"]), row
        assert row["cves"] and all(re.fullmatch(r"CVE-\d{4}-\d{4,}", cve) for cve in row["cves"]), row
        assert re.fullmatch(r"https://nvidia\.custhelp\.com/app/answers/detail/a_id/\d+", row["bulletin"]), row
        assert re.fullmatch(r"\d{4}-\d{2}", row["published"]), row
    cves = [cve for row in rows for cve in row["cves"]]
    assert len(cves) == len(set(cves)), "a CVE is listed twice"


def test_rows_are_oldest_first():
    rows = sec.security_fixes()
    for older, newer in zip(rows, rows[1:]):
        assert sec.compare_versions(older["fixed_in"], newer["fixed_in"]) < 0
        assert older["published"] <= newer["published"]


def test_the_july_2025_bulletin_sets_the_floor():
    assert sec.security_floor() == "1.17.8"
    last = sec.security_fixes()[-1]
    assert last == {"fixed_in": "1.17.8", "cves": ["CVE-2025-23266", "CVE-2025-23267"],
                    "bulletin": JULY_2025, "published": "2025-07"}


def test_security_fixes_returns_copies():
    rows = sec.security_fixes()
    rows[0]["cves"].append("CVE-0000-0000")
    assert "CVE-0000-0000" not in sec.security_fixes()[0]["cves"]


# ---------------------------------------------------------------------------
# What a version lacks
# ---------------------------------------------------------------------------

def test_1_17_7_lacks_the_july_2025_fixes():
    assert sec.missing_cves("1.17.7-1") == ["CVE-2025-23266", "CVE-2025-23267"]
    (row,) = sec.missing_fixes("1.17.7-1")
    assert (row["fixed_in"], row["bulletin"]) == ("1.17.8", JULY_2025)


@pytest.mark.parametrize("version", ["1.17.8-1", "1.17.8-0ubuntu1", "1.17.9-1", "1.17.10-1", "1.18.0-1",
                                     "1.18.0~rc.1-1", "2.0.0-1", "1:1.0.0-1"])
def test_versions_at_or_above_the_floor_lack_nothing(version):
    assert sec.missing_fixes(version) == []
    assert sec.security_check(version)["below_floor"] is False


def test_1_17_3_lacks_more_rows_than_1_17_7():
    lacking = sec.missing_fixes("1.17.3-1")
    assert [row["fixed_in"] for row in lacking] == ["1.17.4", "1.17.8"]
    assert sec.missing_cves("1.17.3-1") == ["CVE-2025-23359", "CVE-2025-23266", "CVE-2025-23267"]
    assert len(lacking) > len(sec.missing_fixes("1.17.7-1"))


def test_1_16_1_lacks_every_row():
    assert [row["fixed_in"] for row in sec.missing_fixes("1.16.1-1")] == [
        row["fixed_in"] for row in sec.security_fixes()]


@pytest.mark.parametrize("version, lacking", [
    ("1.17.8~rc.1-1", ["1.17.8"]),          # a release candidate comes before the release
    ("1.17.4~rc.2-1", ["1.17.4", "1.17.8"]),
    ("1.17.0~rc.1-1", ["1.17.0", "1.17.3", "1.17.4", "1.17.8"]),
    ("1.16.2-1", ["1.17.0", "1.17.3", "1.17.4", "1.17.8"]),
    ("1.17.8", []),                          # without a Debian revision
])
def test_release_candidates_and_revisions(version, lacking):
    assert [row["fixed_in"] for row in sec.missing_fixes(version)] == lacking


@pytest.mark.parametrize("a, b, expected", [
    ("1.17.10-1", "1.17.9-1", 1),
    ("1.18.0~rc.1-1", "1.18.0-1", -1),
    ("1.18.0~rc.1-1", "1.18.0~rc.2-1", -1),
    ("1.17.8-1", "1.17.8-1", 0),
    ("1.17.8-2", "1.17.8-1", 1),
    ("1:0.1-1", "9.9-1", 1),
    ("1.17.8+dfsg-1", "1.17.8-1", 1),
])
def test_compare_versions_as_dpkg_does(a, b, expected):
    assert sec.compare_versions(a, b) == expected
    assert sec.compare_versions(b, a) == -expected


def test_compare_versions_agrees_with_dpkg():
    dpkg = "/usr/bin/dpkg"
    if not os.path.exists(dpkg):
        pytest.skip("dpkg is not installed")
    pairs = [("1.18.0~rc.1-1", "1.17.8-1"), ("1.17.8~rc.1-1", "1.17.8-1"), ("1.17.10-1", "1.17.8-1"),
             ("1.17.8-1", "1.17.8-1ubuntu1"), ("1.17.8a-1", "1.17.8+b1-1")]
    for a, b in pairs:
        lt = subprocess.run([dpkg, "--compare-versions", a, "lt", b]).returncode == 0
        eq = subprocess.run([dpkg, "--compare-versions", a, "eq", b]).returncode == 0
        assert sec.compare_versions(a, b) == (-1 if lt else 0 if eq else 1), (a, b)


@pytest.mark.parametrize("version", ["latest", "v1.17.8", "1.17.8 -1", "", None])
def test_text_that_is_not_a_version_is_an_error(version):
    with pytest.raises(ValueError, match="is not a package version"):
        sec.missing_fixes(version)


def test_security_check_of_no_pin_lacks_nothing():
    assert sec.security_check("") == {"version": "", "floor": "1.17.8", "below_floor": False,
                                      "missing_fixes": [], "cves": [], "summary": ""}


def test_security_check_summary_names_each_cve_release_and_bulletin():
    check = sec.security_check("1.17.3-1")
    assert check["below_floor"] is True and check["floor"] == "1.17.8"
    assert check["cves"] == ["CVE-2025-23359", "CVE-2025-23266", "CVE-2025-23267"]
    assert check["summary"] == (
        "CVE-2025-23359 (fixed in 1.17.4, NVIDIA bulletin https://nvidia.custhelp.com/app/answers/detail/a_id/5616); "
        "CVE-2025-23266, CVE-2025-23267 (fixed in 1.17.8, NVIDIA bulletin %s)" % JULY_2025)


# ---------------------------------------------------------------------------
# The filters give the module_utils answer
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["", "1.16.1-1", "1.17.3-1", "1.17.7-1", "1.17.8-1", "1.18.0~rc.1-1"])
def test_filters_give_the_same_answer_as_module_utils(version):
    assert nvidia_toolkit_security(version) == sec.security_check(version)
    if version:
        assert nvidia_toolkit_missing_fixes(version) == sec.missing_fixes(version)
    assert nvidia_toolkit_security_floor(version) == sec.security_floor()
    assert {"nvidia_toolkit_security", "nvidia_toolkit_missing_fixes", "nvidia_toolkit_security_floor"} \
        <= set(FilterModule().filters())


def test_filter_reports_text_that_is_not_a_version():
    with pytest.raises(AnsibleFilterError, match="nvidia_toolkit_missing_fixes: 'latest' is not a package version"):
        nvidia_toolkit_missing_fixes("latest")


def test_role_keeps_no_copy_of_the_floor_or_the_cves():
    for path in ROLE.rglob("*.yml"):
        text = path.read_text()
        assert not re.search(r"CVE-\d{4}-\d+", text) or path.name == "main.yml" and "defaults" in path.parts, path
        assert "__nvidia_container_toolkit_security_floor" not in text, path
        assert "__nvidia_container_toolkit_cves" not in text, path


# ---------------------------------------------------------------------------
# The preflight's tasks, run by ansible-playbook
# ---------------------------------------------------------------------------

PREFLIGHT_TASKS = ("NVIDIA toolkit | Refuse a version with known container-escape vulnerabilities",
                   "NVIDIA toolkit | Warn about a vulnerable version that was allowed")


def run_preflight(tmp_path, version, allow=False):
    """Run the preflight's security tasks, as the role has them, on localhost; return (rc, host results)."""
    tasks = [t for t in yaml.safe_load((ROLE / "tasks" / "preflight.yml").read_text())
             if t.get("name") in PREFLIGHT_TASKS]
    assert [t["name"] for t in tasks] == list(PREFLIGHT_TASKS)
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
             "tasks": tasks}]
    # As inventory values would, these override the role's defaults (extra vars, as JSON).
    given = {"nvidia_container_toolkit_version": version, "nvidia_container_toolkit_allow_vulnerable": allow}
    rc, report = run_local_play(play, tmp_path, given, name="preflight.yml")
    return rc, [t["hosts"]["localhost"] for t in report["plays"][0]["tasks"]]


def test_preflight_refuses_a_pin_below_the_floor_listing_every_cve(tmp_path):
    rc, (refuse,) = run_preflight(tmp_path, "1.17.3-1")
    assert rc != 0 and refuse["failed"] is True
    msg = refuse["msg"]
    assert msg.startswith("nvidia_container_toolkit_version 1.17.3-1 is older than the security floor 1.17.8")
    for cve in sec.missing_cves("1.17.3-1"):
        assert cve in msg
    for row in sec.missing_fixes("1.17.3-1"):
        assert row["bulletin"] in msg
    assert sec.security_check("1.17.3-1")["summary"] in msg
    assert "CVE-2024-0132" not in msg
    assert 'Pin 1.17.8-1 or newer (or "" for the newest)' in msg
    assert msg.endswith("or set nvidia_container_toolkit_allow_vulnerable: true if you accept the risk.")


def test_preflight_refuses_1_17_7(tmp_path):
    rc, (refuse,) = run_preflight(tmp_path, "1.17.7-1")
    assert rc != 0
    assert "lacks NVIDIA's fixes for CVE-2025-23266, CVE-2025-23267 (fixed in 1.17.8, NVIDIA bulletin %s)" \
        % JULY_2025 in refuse["msg"]


@pytest.mark.parametrize("version", ["1.17.8-1", "1.18.0~rc.1-1", ""])
def test_preflight_accepts_the_floor_and_newer(tmp_path, version):
    rc, (refuse, warn) = run_preflight(tmp_path, version)
    assert rc == 0, refuse
    assert refuse.get("failed") is not True
    assert warn.get("skipped") is True


def test_preflight_warns_about_an_allowed_vulnerable_pin(tmp_path):
    rc, (refuse, warn) = run_preflight(tmp_path, "1.17.7-1", allow=True)
    assert rc == 0, refuse
    assert warn["msg"] == ("WARNING: localhost gets NVIDIA Container Toolkit 1.17.7-1, older than the "
                                  "security floor 1.17.8 and exposed to CVE-2025-23266, CVE-2025-23267 (fixed in "
                                  "1.17.8, NVIDIA bulletin %s), because nvidia_container_toolkit_allow_vulnerable "
                                  "is true." % JULY_2025)
