"""The pure parts of benchmarks/converged_fleet.py: stages, interleaving, the mirror address,
medians and ratios, targets, the capacity estimate and the Markdown tables."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("converged_fleet", REPO / "benchmarks" / "converged_fleet.py")
cf = importlib.util.module_from_spec(_spec)
sys.modules["converged_fleet"] = cf  # dataclasses look their module up
_spec.loader.exec_module(cf)


def run(kind, wall, controller=1.0, hosts_cpu=None, changed=None, repeat=1):
    return cf.Run(kind, wall, controller, hosts_cpu, changed, repeat)


def stage(hosts, runs, anchor=True):
    return cf.StageResult(hosts=hosts, anchor=anchor, runs=runs)


def converged(hosts, floor=2.0, noop=4.0, default=4.4, first=30.0, anchor_first=40.0, anchor_noop=10.0,
              noop_cpu=2.0, noop_hosts_cpu=1.0):
    """A stage with one run of every kind, the no-op's CPU given in all (not per host)."""
    return stage(hosts, [
        run(cf.FIRST, first, controller=10.0, hosts_cpu=20.0, changed=40, repeat=0),
        run(cf.ANCHOR_FIRST, anchor_first, changed=30, repeat=0),
        run(cf.FLOOR, floor),
        run(cf.NOOP_ONE, noop, controller=noop_cpu, hosts_cpu=noop_hosts_cpu, changed=0),
        run(cf.NOOP_DEFAULT, default, changed=0),
        run(cf.ANCHOR_NOOP, anchor_noop, changed=6),
    ])


# ---- Stages and interleaving ---------------------------------------------------------------
def test_stage_sizes_add_the_comparison_size_once_smallest_first():
    assert cf.stage_sizes([1, 4, 8], 2) == [1, 2, 4, 8]
    assert cf.stage_sizes([8, 1, 4], 4) == [1, 4, 8]
    assert cf.stage_sizes([1], None) == [1]
    with pytest.raises(cf.BenchmarkError):
        cf.stage_sizes([0, 2], 2)


def test_rounds_rotate_so_every_kind_runs_once_a_round_in_each_position():
    kinds = cf.round_kinds(anchor=True)
    assert kinds == [cf.FLOOR, cf.NOOP_ONE, cf.NOOP_DEFAULT, cf.ANCHOR_NOOP]
    rounds = cf.interleaved(kinds, 5)
    assert rounds[0] == kinds
    assert rounds[1] == [cf.NOOP_ONE, cf.NOOP_DEFAULT, cf.ANCHOR_NOOP, cf.FLOOR]
    assert rounds[4] == kinds  # wraps around after len(kinds) rounds
    assert all(sorted(order) == sorted(kinds) for order in rounds)
    # Over len(kinds) rounds, each kind takes each position once.
    for position in range(len(kinds)):
        assert sorted(order[position] for order in rounds[:4]) == sorted(kinds)
    assert cf.interleaved(kinds, 0) == []


def test_without_the_anchor_the_rounds_leave_it_out():
    assert cf.round_kinds(anchor=False) == [cf.FLOOR, cf.NOOP_ONE, cf.NOOP_DEFAULT]
    assert cf.interleaved(cf.round_kinds(anchor=False), 2)[1] == [cf.NOOP_ONE, cf.NOOP_DEFAULT, cf.FLOOR]
    assert cf.rotated([], 3) == []


# ---- The mirror, the anchor's recap ---------------------------------------------------------
LAB_YML = """---
# The lab's Docker and NVIDIA repositories are a local STAND-IN mirror.
docker_apt_repo_url: http://gpuhost-bench-anchor-mirror:8080/linux
docker_apt_key_fingerprint: 0123456789ABCDEF0123456789ABCDEF01234567
nvidia_container_toolkit_repo_url: http://gpuhost-bench-anchor-mirror:8080/libnvidia-container
nvidia_container_toolkit_key_fingerprint: 89ABCDEF0123456789ABCDEF0123456789ABCDEF
docker_daemon_options:
  storage-driver: vfs
"""


def test_the_mirror_address_comes_from_the_lab_inventory(tmp_path):
    (tmp_path / "group_vars" / "gpu_hosts").mkdir(parents=True)
    (tmp_path / "group_vars" / "gpu_hosts" / "lab.yml").write_text(LAB_YML)
    (tmp_path / "hosts.yml").write_text("all: {children: {gpu_hosts: {hosts: {a: {}}}}}\n")
    lab_vars = cf.read_lab_vars(tmp_path)
    assert lab_vars["docker_daemon_options"] == {"storage-driver": "vfs"}
    assert cf.mirror_address(lab_vars) == "gpuhost-bench-anchor-mirror:8080"


def test_the_mirror_address_takes_the_scheme_port_and_needs_one_mirror():
    assert cf.mirror_address({"docker_apt_repo_url": "http://mirror.lan/linux"}) == "mirror.lan:80"
    assert cf.mirror_address({"nvidia_container_toolkit_repo_url": "https://m.example/x"}) == "m.example:443"
    with pytest.raises(cf.BenchmarkError, match="no single mirror"):
        cf.mirror_address({"docker_apt_repo_url": "http://a:8080/linux",
                           "nvidia_container_toolkit_repo_url": "http://b:8080/libnvidia-container"})
    with pytest.raises(cf.BenchmarkError, match="found none"):
        cf.mirror_address({})
    with pytest.raises(cf.BenchmarkError, match="not a URL"):
        cf.mirror_address({"docker_apt_repo_url": "mirror/linux"})


def test_the_anchor_changes_come_from_the_play_recap():
    output = """
TASK [geerlingguy.docker : Install Docker packages.] ***
changed: [gpuhost-bench-anchor-1]

PLAY RECAP *********************************************************************
gpuhost-bench-anchor-1     : ok=25   changed=3    unreachable=0    failed=0    skipped=12
gpuhost-bench-anchor-2     : ok=25   changed=4    unreachable=0    failed=0    skipped=12
"""
    assert cf.recap_changed(output) == 7
    assert cf.recap_changed("changed: [a]\nno recap here") == 0


# ---- Medians, ratios, targets --------------------------------------------------------------
def test_kind_summary_takes_medians_in_all_and_per_host():
    runs = [run(cf.NOOP_ONE, 10.0, 4.0, 2.0, 0), run(cf.NOOP_ONE, 30.0, 8.0, None, 1),
            run(cf.NOOP_ONE, 12.0, 6.0, 4.0, 0)]
    summary = cf.kind_summary(runs, hosts=2)
    assert summary["runs"] == 3
    assert summary["wall_s"] == 12.0 and summary["wall_per_host_s"] == 6.0
    assert summary["controller_cpu_s"] == 6.0 and summary["controller_cpu_per_host_s"] == 3.0
    assert summary["hosts_cpu_s"] == 3.0 and summary["hosts_cpu_per_host_s"] == 1.5  # unread cgroups left out
    assert summary["changed"] == [0, 1, 0]
    assert cf.kind_summary([run(cf.FLOOR, 1.0)], 1)["hosts_cpu_per_host_s"] is None


def test_rows_hold_each_kind_and_the_ratios():
    rows = cf.summarise([converged(4, noop=8.0, default=10.0, first=60.0, anchor_first=50.0, anchor_noop=20.0),
                         converged(1)])
    assert [row["hosts"] for row in rows] == [1, 4]
    one, four = rows
    assert one["noop_over_floor"] == pytest.approx(2.0)
    assert one["default_over_one_batch"] == pytest.approx(1.1)
    assert one["first_converge_over_anchor"] == pytest.approx(0.75)
    assert one["noop_over_anchor_noop"] == pytest.approx(0.4)
    assert four["default_over_one_batch"] == pytest.approx(1.25)
    assert four["first_converge_over_anchor"] == pytest.approx(1.2)
    assert set(four["kinds"]) == set(cf.LABELS)


def test_rows_without_the_anchor_have_no_anchor_ratios():
    (row,) = cf.summarise([stage(1, [run(cf.FIRST, 30.0, repeat=0), run(cf.FLOOR, 2.0),
                                     run(cf.NOOP_ONE, 5.0), run(cf.NOOP_DEFAULT, 5.0)], anchor=False)])
    assert row["first_converge_over_anchor"] is None and row["noop_over_anchor_noop"] is None
    assert row["noop_over_floor"] == pytest.approx(2.5)
    assert cf.ratio(1.0, 0.0) is None and cf.ratio(None, 2.0) is None and cf.ratio(3.0, 2.0) == 1.5


def test_targets_read_each_figure_at_its_fleet_size():
    rows = cf.summarise([
        converged(1, floor=2.0, noop=3.0),                                   # no-op / floor at 1 host: 1.5
        converged(2, first=20.0, anchor_first=40.0, noop=4.0, anchor_noop=10.0),  # the comparison
        converged(8, noop=10.0, default=11.0, noop_cpu=4.0, noop_hosts_cpu=16.0),  # the largest fleet
    ])
    report = cf.targets_met(rows, compare_hosts=2)
    assert list(report) == [target.key for target in cf.TARGETS]
    assert report["noop_over_floor_1_host"] == {
        "text": "gpuhost no-op run of 1 converged host / floor", "figure": 1.5, "limit": 2.0,
        "hosts": 1, "met": True}
    assert report["noop_controller_cpu_per_host_s"]["figure"] == pytest.approx(0.5)
    assert report["noop_controller_cpu_per_host_s"]["hosts"] == 8
    assert report["noop_controller_cpu_per_host_s"]["met"] is True
    assert report["noop_hosts_cpu_per_host_s"]["figure"] == pytest.approx(2.0)
    assert report["noop_hosts_cpu_per_host_s"]["met"] is False
    assert report["default_over_one_batch"]["figure"] == pytest.approx(1.1)
    assert report["default_over_one_batch"]["met"] is True
    assert report["first_converge_over_anchor"]["figure"] == pytest.approx(0.5)
    assert report["first_converge_over_anchor"]["hosts"] == 2
    assert report["noop_over_anchor_noop"]["figure"] == pytest.approx(0.4)
    assert report["noop_over_anchor_noop"]["met"] is True


def test_targets_not_measured_are_none_not_failures():
    rows = cf.summarise([converged(1, floor=1.0, noop=3.0)])
    report = cf.targets_met(rows, compare_hosts=None)
    assert report["noop_over_floor_1_host"]["met"] is False
    assert report["first_converge_over_anchor"] == {
        "text": "first converge of fresh hosts, gpuhost / anchor stack", "figure": None, "limit": 1.0,
        "hosts": None, "met": None}
    assert all(entry["met"] is None for entry in cf.targets_met([], 2).values())


def test_changed_noop_runs_are_flagged():
    stages = [converged(1), stage(4, [run(cf.NOOP_ONE, 5.0, changed=0, repeat=1),
                                      run(cf.NOOP_DEFAULT, 5.0, changed=3, repeat=2),
                                      run(cf.ANCHOR_NOOP, 5.0, changed=9, repeat=2)])]
    assert cf.changed_noops(stages) == ["4 host(s), gpuhost no-op, default batches, round 2: 3 changed task(s)"]


# ---- The capacity estimate -----------------------------------------------------------------
def test_capacity_estimate_follows_its_model():
    estimate = cf.capacity_estimate(0.6, 12.0, hosts=1000, wall_budget_s=600, cores=[8, 16], forks=[50, 100])
    assert estimate["controller_cpu_total_s"] == pytest.approx(600.0)
    assert estimate["cores_needed"] == 1            # 600 CPU-s within 600 s
    assert estimate["forks_per_core"] == pytest.approx(20.0)
    assert estimate["forks_needed"] == 20
    walls = {(cell["cores"], cell["forks"]): cell for cell in estimate["wall"]}
    # 8 cores: 75 s of CPU; 50 forks: 1000 x 12 / 50 = 240 s -> the forks are the limit.
    assert walls[8, 50] == {"cores": 8, "forks": 50, "wall_s": pytest.approx(240.0), "limit": "forks"}
    assert walls[16, 100]["wall_s"] == pytest.approx(120.0)


def test_capacity_estimate_when_the_cores_are_the_limit():
    estimate = cf.capacity_estimate(3.0, 6.0, hosts=1000, wall_budget_s=600, cores=[8], forks=[200, 5000])
    assert estimate["controller_cpu_total_s"] == pytest.approx(3000.0)
    assert estimate["cores_needed"] == 5
    assert estimate["forks_needed"] == 10           # 5 cores x 6 s / 3 CPU-s
    cpu_bound, more_forks = estimate["wall"]
    assert cpu_bound["wall_s"] == pytest.approx(375.0) and cpu_bound["limit"] == "cores"
    assert more_forks["wall_s"] == pytest.approx(375.0)  # forks beyond the hosts count add nothing
    assert cf.capacity_estimate(0.01, 1.0, hosts=10, wall_budget_s=600)["cores_needed"] == 1
    with pytest.raises(cf.BenchmarkError):
        cf.capacity_estimate(0.0, 1.0)
    assert "bottleneck" in cf.capacity_estimate.__doc__ and "latency" in cf.capacity_estimate.__doc__


def test_capacity_comes_from_the_largest_fleet():
    rows = cf.summarise([converged(1, noop=5.0, noop_cpu=2.0), converged(8, noop=16.0, noop_cpu=4.0)])
    capacity = cf.capacity_from(rows, hosts=1000, wall_budget_s=600)
    assert capacity["from_hosts"] == 8
    assert capacity["noop"]["controller_cpu_per_host_s"] == pytest.approx(0.5)
    assert capacity["noop"]["latency_s"] == pytest.approx(16.0)
    assert capacity["first_converge"]["controller_cpu_per_host_s"] == pytest.approx(10.0 / 8)
    assert cf.capacity_from([]) == {}


# ---- Markdown ------------------------------------------------------------------------------
def test_wall_table_has_one_line_per_size_and_dashes_where_not_measured():
    rows = cf.summarise([converged(1, floor=2.0, noop=4.0, default=4.4, first=30.0, anchor_first=40.0,
                                   anchor_noop=10.0),
                         stage(4, [run(cf.FIRST, 50.0, repeat=0), run(cf.FLOOR, 2.5), run(cf.NOOP_ONE, 5.0),
                                   run(cf.NOOP_DEFAULT, 6.0)], anchor=False)])
    lines = cf.wall_table(rows).splitlines()
    assert lines[0].startswith("| hosts | floor: facts + ping | gpuhost first converge |")
    assert lines[1] == "|" + " --- |" * 11
    assert lines[2] == "| 1 | 2.0 s | 30.0 s | 4.0 s | 4.4 s | 40.0 s | 10.0 s | 2.00x | 1.10x | 0.75x | 0.40x |"
    assert lines[3] == "| 4 | 2.5 s | 50.0 s | 5.0 s | 6.0 s | - | - | 2.00x | 1.20x | - | - |"


def test_cpu_table_shows_per_host_figures_and_changes():
    rows = cf.summarise([converged(2, noop=4.0, noop_cpu=3.0, noop_hosts_cpu=1.0)])
    noop_line = next(line for line in cf.cpu_table(rows).splitlines() if "gpuhost no-op, one batch" in line)
    assert noop_line == "| 2 | gpuhost no-op, one batch | 4.0 s | 3.00 | 1.00 | 2.00 s | 1.50 | 0.50 | 0 |"
    floor_line = next(line for line in cf.cpu_table(rows).splitlines() if "floor" in line)
    assert floor_line == "| 2 | floor: facts + ping | 2.0 s | 1.00 | - | 1.00 s | 0.50 | - | - |"


def test_report_holds_targets_and_capacity():
    rows = cf.summarise([converged(1), converged(2)])
    report = cf.targets_met(rows, 2)
    capacity = cf.capacity_from(rows, cores=[8], forks=[50, 100])
    text = cf.markdown_report(rows, report, capacity)
    assert "| target | hosts | figure | limit | met |" in text
    assert "| gpuhost no-op run of 1 converged host / floor | 1 | 2.00 | <= 2 | yes |" in text
    assert "| no-op run, gpuhost / anchor stack, same hosts | 2 | 0.40 | <= 0.5 | yes |" in text
    assert "| no-op run, 1000 hosts | 50 forks | 100 forks |" in text
    assert "| first converge, 1000 hosts | 50 forks | 100 forks |" in text
    assert "no-op run of 1000 hosts (from 2 lab host(s): 1.00 controller CPU-s" in text
    missed = cf.targets_table({"x": {"text": "t", "hosts": 8, "figure": 3.0, "limit": 1.0, "met": False}})
    assert missed.splitlines()[2] == "| t | 8 | 3.00 | <= 1 | **no** |"


def test_the_command_line_is_relative_to_the_checkout(tmp_path):
    line = cf.command_line(str(REPO / ".venv" / "bin" / "python"), str(REPO / "benchmarks" / "converged_fleet.py"),
                           ["--sizes", "1", "4", "--anchors", "/work/shared/anchors"], cwd=REPO)
    assert line == ".venv/bin/python benchmarks/converged_fleet.py --sizes 1 4 --anchors /work/shared/anchors"
    assert cf.command_line("/usr/bin/python3", "/x/y.py", ["-e", "a b"], cwd=tmp_path) == "/usr/bin/python3 /x/y.py -e 'a b'"


def test_no_anchors_and_skip_anchor_say_why(tmp_path):
    args = cf.parse_args(["--skip-anchor", "--anchors", str(tmp_path)])
    assert cf.anchors_of(args) == (None, "anchor stack not measured: --skip-anchor")
    anchors, note = cf.anchors_of(cf.parse_args([]))
    assert anchors is None and "--anchors DIR" in note
    with pytest.raises(cf.BenchmarkError, match="anchor.yml"):
        cf.anchors_of(cf.parse_args(["--anchors", str(tmp_path)]))
    (tmp_path / "anchor.yml").write_text("[]\n")
    (tmp_path / "roles").mkdir()
    assert cf.anchors_of(cf.parse_args(["--anchors", str(tmp_path)]))[0] == tmp_path.resolve()


def test_anchor_noop_changes_are_reported_per_size():
    stages = [converged(2), stage(1, [run(cf.ANCHOR_NOOP, 5.0, changed=3), run(cf.ANCHOR_NOOP, 5.0, changed=4),
                                      run(cf.NOOP_ONE, 5.0, changed=0)])]
    assert cf.anchor_noop_changes(stages) == {1: [3, 4], 2: [6]}
    assert cf.anchor_noop_changes([stage(1, [run(cf.NOOP_ONE, 5.0)], anchor=False)]) == {}
