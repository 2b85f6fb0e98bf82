"""The pure parts of benchmarks/fleet_size.py: the floor playbook, medians, ratios, table."""

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fleet_size", REPO / "benchmarks" / "fleet_size.py")
fleet_size = importlib.util.module_from_spec(_spec)
sys.modules["fleet_size"] = fleet_size  # dataclasses look their module up
_spec.loader.exec_module(fleet_size)


def result(hosts, first, noop, floor):
    return fleet_size.SizeResult(hosts=hosts, first_converge=first, noop=noop, floor=floor)


def test_the_floor_gathers_the_same_facts_as_the_provision_playbook():
    plays = yaml.safe_load((REPO / "playbooks" / "provision.yml").read_text())
    gathering = next(p for p in plays if p.get("gather_facts"))
    subset = fleet_size.gather_subset_of(REPO / "playbooks" / "provision.yml")
    assert subset == gathering.get("gather_subset", ["all"])
    (play,) = fleet_size.floor_playbook(subset)
    assert play["hosts"] == "gpu_hosts"
    assert play["gather_facts"] is True and play["gather_subset"] == subset
    assert [next(k for k in task if k != "name") for task in play["tasks"]] == ["ansible.builtin.ping"]


def test_gather_subset_defaults_to_all_and_accepts_a_string(tmp_path):
    path = tmp_path / "play.yml"
    path.write_text("- hosts: all\n  gather_facts: false\n- hosts: all\n  tasks: []\n")
    assert fleet_size.gather_subset_of(path) == ["all"]
    path.write_text("- hosts: all\n  gather_subset: network\n")
    assert fleet_size.gather_subset_of(path) == ["network"]
    path.write_text("- hosts: all\n  gather_facts: false\n")
    with pytest.raises(fleet_size.BenchmarkError):
        fleet_size.gather_subset_of(path)


def test_rows_take_medians_and_compare_with_the_smallest_fleet():
    rows = fleet_size.summarise([
        result(4, 60.0, [30.0, 90.0, 32.0], [3.0, 4.0, 30.0]),
        result(1, 40.0, [20.0, 21.0, 19.0], [2.0, 2.5, 1.5]),
    ])
    assert [row["hosts"] for row in rows] == [1, 4]
    one, four = rows
    assert one["noop_s"] == 20.0 and one["floor_s"] == 2.0
    assert one["noop_over_floor"] == pytest.approx(10.0)
    assert four["noop_s"] == 32.0 and four["floor_s"] == 4.0
    assert four["first_over_smallest"] == pytest.approx(1.5)
    assert four["noop_over_smallest"] == pytest.approx(1.6)


def test_verdicts_check_both_targets():
    met = fleet_size.summarise([result(1, 40.0, [4.0], [2.0]), result(8, 80.0, [8.0], [4.0])])
    assert fleet_size.verdicts(met) == {"noop_within_floor_ratio": True,
                                        "first_converge_within_size_ratio": True,
                                        "noop_within_size_ratio": True}
    missed = fleet_size.summarise([result(1, 40.0, [20.0], [2.0]), result(8, 81.0, [41.0], [4.0])])
    assert fleet_size.verdicts(missed) == {"noop_within_floor_ratio": False,
                                           "first_converge_within_size_ratio": False,
                                           "noop_within_size_ratio": False}
    assert fleet_size.verdicts([]) == {}


def test_changed_tasks_add_up_over_hosts():
    summary = {"hosts": {"a": {"changed": 3}, "b": {"changed": 0}, "c": {}}, "rc": 0}
    assert fleet_size.changed_tasks(summary) == 3


def test_markdown_table_has_one_line_per_size():
    rows = fleet_size.summarise([result(1, 33.44, [21.9], [1.74]), result(4, 50.0, [25.0], [2.0])])
    lines = fleet_size.markdown_table(rows).splitlines()
    assert lines[0].startswith("| hosts | first converge |") and "/ 1 host |" in lines[0]
    assert lines[1] == "| --- | --- | --- | --- | --- | --- | --- |"
    assert lines[2] == "| 1 | 33.4 s | 21.9 s | 1.7 s | 12.6x | 1.00x | 1.00x |"
    assert lines[3] == "| 4 | 50.0 s | 25.0 s | 2.0 s | 12.5x | 1.50x | 1.14x |"


def test_rows_carry_the_median_cpu_time_of_controller_and_hosts():
    timing = fleet_size.Timing
    size = result(2, 50.0, [20.0, 22.0, 21.0], [2.0, 2.0, 2.0])
    size.noop_cpu = [timing(20.0, 9.0, 12.0), timing(22.0, 11.0, None), timing(21.0, 10.0, 14.0)]
    size.floor_cpu = [timing(2.0, 1.0, None)] * 3
    (row,) = fleet_size.summarise([size])
    assert row["noop_controller_cpu_s"] == 10.0
    assert row["noop_hosts_cpu_s"] == 13.0  # the runs whose hosts' cgroups could be read
    assert row["floor_controller_cpu_s"] == 1.0 and row["floor_hosts_cpu_s"] is None


def test_no_containers_means_no_host_cpu_figure():
    assert fleet_size.containers_cpu([]) is None


def test_measure_keeps_each_figure_in_its_place(monkeypatch, tmp_path):
    timing = fleet_size.Timing
    runs = iter([(timing(40.0, 15.0, 30.0), 14), (timing(20.0, 9.0, 12.0), 0), (timing(21.0, 10.0, 13.0), 0)])
    monkeypatch.setattr(fleet_size, "provision", lambda inventory, hosts: next(runs))
    monkeypatch.setattr(fleet_size, "floor", lambda inventory, playbook, hosts: timing(2.0, 1.0, 0.5))

    class FakeLab:
        def up(self, hosts):
            return tmp_path / "inventory", [f"h{i}" for i in range(hosts)]

    size = fleet_size.measure(FakeLab(), 2, 2, tmp_path / "floor.yml", lambda message: None)
    assert size.hosts == 2 and size.first_converge == 40.0 and size.first_changed == 14
    assert size.noop == [20.0, 21.0] and size.noop_changed == [0, 0] and size.floor == [2.0, 2.0]
    assert size.first_cpu == timing(40.0, 15.0, 30.0)
    assert [t.controller_cpu for t in size.noop_cpu] == [9.0, 10.0]
    assert len(size.load_before) == 3 and len(size.load_after) == 3
    (row,) = fleet_size.summarise([size])
    assert row["noop_controller_cpu_s"] == 9.5 and row["floor_hosts_cpu_s"] == 0.5
