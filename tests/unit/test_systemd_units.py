"""Masked systemd units in the roles' preflights (filter/systemd_units.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from gpuhost_cli.ansible_plugins.filter.systemd_units import (
    FilterModule,
    gpuhost_masked_units,
    masked_units,
    parse_systemctl_show,
)

REPO = Path(__file__).resolve().parents[2]

# systemctl show --property=Id,LoadState,FragmentPath,UnitFileState -- docker.service
#   nvidia-persistenced.service systemd-journald.service, as systemd 252 prints it after
#   `systemctl mask docker.service` and `systemctl mask --runtime systemd-journald.service`
SHOW = """Id=docker.service
LoadState=masked
FragmentPath=/etc/systemd/system/docker.service
UnitFileState=masked

Id=nvidia-persistenced.service
LoadState=not-found
FragmentPath=
UnitFileState=

Id=systemd-journald.service
LoadState=masked
FragmentPath=/run/systemd/system/systemd-journald.service
UnitFileState=masked-runtime
"""

LOADED = """Id=docker.service
LoadState=loaded
FragmentPath=/lib/systemd/system/docker.service
UnitFileState=enabled
"""


def test_show_output_is_read_as_one_block_per_unit():
    blocks = parse_systemctl_show(SHOW)
    assert [b["Id"] for b in blocks] == ["docker.service", "nvidia-persistenced.service", "systemd-journald.service"]
    assert blocks[1] == {"Id": "nvidia-persistenced.service", "LoadState": "not-found", "FragmentPath": "", "UnitFileState": ""}


def test_masked_units_are_found_with_the_file_that_masks_them():
    assert masked_units(SHOW) == [
        {"unit": "docker.service", "path": "/etc/systemd/system/docker.service", "runtime": False},
        {"unit": "systemd-journald.service", "path": "/run/systemd/system/systemd-journald.service", "runtime": True},
    ]


def test_a_loaded_or_missing_unit_is_not_masked():
    assert masked_units(LOADED) == []
    assert gpuhost_masked_units(LOADED, "gpu1", {"docker.service": "x"}) == []
    assert masked_units("Id=nvidia-fabricmanager.service\nLoadState=not-found\nFragmentPath=\nUnitFileState=\n") == []
    assert masked_units("") == []


def test_message_names_the_host_the_unit_the_mask_and_the_fix():
    [message] = gpuhost_masked_units(SHOW, "gpu1", {"docker.service": {"why": "gpuhost starts Docker"}})
    assert message.startswith("gpu1: docker.service is masked: /etc/systemd/system/docker.service -> /dev/null,")
    assert "systemd refuses to start it, and gpuhost starts Docker." in message
    assert "Nothing was changed." in message
    assert "`sudo systemctl unmask docker.service`" in message
    assert "set " not in message  # no variable turns Docker off


def test_a_unit_a_variable_asks_for_names_the_variable_as_the_other_fix():
    show = SHOW.replace("docker.service", "nvidia-persistenced.service", 2).replace(
        "Id=nvidia-persistenced.service\nLoadState=not-found", "Id=docker.service\nLoadState=not-found"
    )
    [message] = gpuhost_masked_units(show, "gpu2", {"nvidia-persistenced.service": "nvidia_container_toolkit_persistenced"})
    assert message.startswith(
        "gpu2: nvidia-persistenced.service is masked: /etc/systemd/system/nvidia-persistenced.service -> /dev/null"
    )
    assert "and nvidia_container_toolkit_persistenced is true." in message
    assert (
        "Unmask it with `sudo systemctl unmask nvidia-persistenced.service`, or set "
        "nvidia_container_toolkit_persistenced: false for this host, then run gpuhost again." in message
    )


def test_a_runtime_mask_is_lifted_with_runtime():
    [message] = gpuhost_masked_units(SHOW, "gpu1", {"systemd-journald.service": "x_enabled"})
    assert "/run/systemd/system/systemd-journald.service -> /dev/null (a runtime mask, gone at the next boot)" in message
    assert "`sudo systemctl unmask --runtime systemd-journald.service`" in message


def test_a_masked_unit_gpuhost_does_not_start_is_left_alone():
    assert gpuhost_masked_units(SHOW, "gpu1", {"nvidia-persistenced.service": "x"}) == []
    assert len(gpuhost_masked_units(SHOW, "gpu1", {"docker.service": "a", "systemd-journald.service": "b"})) == 2


def test_a_masked_unit_without_a_fragment_path_is_named_under_etc():
    show = "Id=docker.socket\nLoadState=masked\nFragmentPath=\nUnitFileState=masked\n"
    assert masked_units(show) == [{"unit": "docker.socket", "path": "/etc/systemd/system/docker.socket", "runtime": False}]


@pytest.mark.parametrize("show, needed_by", [(None, {}), (["Id=x"], {}), ("", ["docker.service"])])
def test_wrong_input_types_are_errors(show, needed_by):
    with pytest.raises(AnsibleFilterError, match="gpuhost_masked_units expects"):
        gpuhost_masked_units(show, "gpu1", needed_by)


def test_the_filter_is_registered_and_documented():
    assert FilterModule().filters() == {"gpuhost_masked_units": gpuhost_masked_units}
    doc = yaml.safe_load((REPO / "gpuhost_cli/ansible_plugins/filter/gpuhost_masked_units.yml").read_text())
    assert doc["DOCUMENTATION"]["name"] == "gpuhost_masked_units"


@pytest.mark.parametrize(
    "role, units",
    [
        ("docker", ["docker.service", "docker.socket"]),
        ("nvidia_container_toolkit", ["__nvidia_container_toolkit_service_units"]),
    ],
)
def test_each_preflight_reads_its_units_and_refuses_a_masked_one(role, units):
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / "preflight.yml").read_text())
    probes = [t for t in tasks if "systemctl" in str(t.get("ansible.builtin.command", {}).get("argv", ""))]
    assert len(probes) == 1
    probe = probes[0]
    assert probe["check_mode"] is False and probe["changed_when"] is False
    assert all(unit in str(probe["ansible.builtin.command"]["argv"]) for unit in units)
    refusals = [t for t in tasks if "gpuhost_masked_units" in str(t.get("vars", {}))]
    assert len(refusals) == 1 and "ansible.builtin.assert" in refusals[0]
    assert tasks.index(probe) < tasks.index(refusals[0])
