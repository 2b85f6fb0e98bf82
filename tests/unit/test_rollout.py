"""The batch plan and the rollout gate's decisions (gpuhost_cli.rollout)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from gpuhost_cli import rollout, rollout_report, views
from gpuhost_cli.events import HostRun, RunModel
from gpuhost_cli.rollout import RolloutError, batch_sizes, decide, parse_batches, parse_max_fail, plan

HOSTS = [f"gpu{i}" for i in range(1, 7)]


# ---- Batch sizes -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("1,25%,100%", [1, "25%", "100%"]),
    (" 2 , 50% ", [2, "50%"]),
    ([1, "25%", "100%"], [1, "25%", "100%"]),
    (["3", "100 %"], [3, "100%"]),
    ("100%", ["100%"]),
])
def test_parse_batches(text, expected):
    assert parse_batches(text) == expected


@pytest.mark.parametrize("bad, words", [
    ("", "is empty"),
    (" ", "is empty"),
    ([], "is empty"),
    ("0", "0 hosts is not a batch"),
    ("-1", "-1 hosts is not a batch"),
    ("1,,100%", "an empty batch size"),
    ("1,", "an empty batch size"),
    ("²", "'²' is not a host count"),  # str.isdigit() is true for it, int() refuses it
    ("٣", "'٣' is not a host count"),  # int() reads it as 3: only the digits 0-9 count
    ("５", "'５' is not a host count"),
    ("١٠٠%", "is not a share from 1% to 100%"),
    ("1e3", "'1e3' is not a host count"),
    ("1_000", "'1_000' is not a host count"),
    ("+3", "'+3' is not a host count"),
    ("0x10", "'0x10' is not a host count"),
    ("50%%", "'50%%' is not a share from 1% to 100%"),
    ("-5%", "'-5%' is not a share from 1% to 100%"),
    ("9" * 5000, "is not a batch size (at most 1000000 hosts)"),  # int() refuses 4,300 digits and more
    ("1" * 5000 + "%", "is not a share from 1% to 100%"),
    ("1000001", "1000001 hosts is more than a batch can hold"),
    pytest.param([10 ** 5000], "hosts is more than a batch can hold", id="int-of-5001-digits"),
    (",".join(["1"] * 101), "more than 100 batch sizes"),
    ([1.0], "1.0 is not a host count"),
    ([None], "None is not a host count"),
    ("101%", "from 1% to 100%"),
    ("0%", "from 1% to 100%"),
    ("abc", "'abc'"),
    ([True], "True"),
    ([-1], "-1 hosts"),
    ({"a": 1}, "must be a list"),
])
def test_parse_batches_refuses(bad, words):
    with pytest.raises(RolloutError) as caught:
        parse_batches(bad, "--batches")
    assert words in str(caught.value)
    assert str(caught.value).startswith("--batches")


def test_refusals_are_one_short_line():
    for bad in ("9" * 5000, "1" * 5000 + "%", "x" * 5000, "1\n2"):
        with pytest.raises(RolloutError) as caught:
            parse_batches(bad, "--batches")
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 200, str(caught.value)


@pytest.mark.parametrize("value, expected", [(0, 0), ("10", 10), ("25%", 25), (100, 100), (" 5 % ", 5), ("007", 7)])
def test_parse_max_fail(value, expected):
    assert parse_max_fail(value) == expected


@pytest.mark.parametrize("bad", [-1, 101, "ten", True, None, "²", "٣", "1_0", "50%%", "1e3", "-1", "", 5.0,
                                 "9" * 5000, pytest.param(10 ** 5000, id="int-of-5001-digits")])
def test_parse_max_fail_refuses(bad):
    with pytest.raises(RolloutError):
        parse_max_fail(bad)


@pytest.mark.parametrize("count, batches, sizes", [
    (6, [1, "25%", "100%"], [1, 1, 4]),
    (20, [1, "25%", "100%"], [1, 5, 14]),
    (100, [1, "10%", "100%"], [1, 10, 89]),
    (2, [1, "25%", "100%"], [1, 1]),
    (1, [1, "25%", "100%"], [1]),
    (7, [2], [2, 2, 2, 1]),
    (6, ["100%"], [6]),
    (6, [1, 2, "100%"], [1, 2, 3]),
])
def test_batch_sizes_split_like_ansible_serial(count, batches, sizes):
    assert batch_sizes(count, batches) == sizes
    assert sum(sizes) == count


def test_plan_keeps_the_inventory_order():
    assert plan(HOSTS, [1, 2, "100%"]) == [["gpu1"], ["gpu2", "gpu3"], ["gpu4", "gpu5", "gpu6"]]


# ---- Host states -----------------------------------------------------------------------------

@pytest.mark.parametrize("facts, state", [
    ({}, "not_reached"),
    ({"gpuhost_rollout_reached": True}, "not_reached"),
    ({"gpuhost_rollout_batch": 1}, "failed"),
    ({"gpuhost_rollout_batch": "2", "gpuhost_rollout_done": True}, "ok"),
    ({"gpuhost_rollout_batch": 1, "docker_daemon_deferred": True}, "deferred"),
    # Done without a batch: the plan found nothing to do (playbooks/provision.yml).
    ({"gpuhost_rollout_reached": True, "gpuhost_rollout_done": True}, "converged"),
    ({"gpuhost_rollout_done": "True"}, "converged"),
    ({"gpuhost_rollout_done": "False", "gpuhost_rollout_reached": True}, "not_reached"),
    ({"gpuhost_rollout_done": False}, "not_reached"),
    ({"gpuhost_rollout_done": True, "docker_daemon_deferred": True}, "deferred"),
    ({"gpuhost_rollout_done": True, "gpuhost_rollout_batch": None}, "converged"),
])
def test_host_state(facts, state):
    assert rollout.host_state(facts) == state


def facts_for(done=(), failed=(), deferred=(), batch_of=None, reached=HOSTS):
    batch_of = batch_of or {}
    out = {}
    for host in HOSTS:
        f = {"gpuhost_rollout_reached": host in reached}
        if host in batch_of:
            f["gpuhost_rollout_batch"] = batch_of[host]
        if host in done:
            f["gpuhost_rollout_done"] = True
        if host in deferred:
            f["docker_daemon_deferred"] = True
        out[host] = f
    return out


# ---- The gate ----------------------------------------------------------------------------------

def test_preflight_stops_on_a_lost_host_by_default():
    d = decide("preflight", HOSTS, facts_for(reached=HOSTS[1:]), 0)
    assert d.stop and d.failed == ["gpu1"]
    assert d.msg.startswith("Rollout stopped before any host changed: 1 of 6 hosts could not be reached (17% > ")
    assert "--limit '!gpu1'" in d.msg and "--max-fail" in d.msg


def test_preflight_goes_on_within_the_budget():
    d = decide("preflight", HOSTS, facts_for(reached=HOSTS[1:]), 20)
    assert not d.stop and d.msg == "5 of 6 hosts answered"


def test_first_batch_goes_on():
    d = decide("batch", HOSTS, facts_for(), 0, batch_hosts=["gpu1"], batches=[1, 2, "100%"])
    assert not d.stop and d.batch == 1 and d.checked_batch is None


def test_a_failed_canary_stops_the_next_batch():
    d = decide("batch", HOSTS, facts_for(batch_of={"gpu1": 1}), 0, batch_hosts=["gpu2", "gpu3"],
               batches=[1, 2, "100%"])
    assert d.stop and d.batch == 2 and d.checked_batch == 1 and d.failed == ["gpu1"]
    assert d.msg.startswith("Rollout stopped after batch 1: 1 of 1 hosts failed, were rolled back or were lost "
                            "(100% > gpuhost_rollout_max_fail_percentage 0%): gpu1.")
    assert "Not rolled out: gpu4, gpu5, gpu6, gpu2, gpu3." in d.msg
    assert "--limit gpu1,gpu4,gpu5,gpu6,gpu2,gpu3" in d.msg


def test_a_deferred_host_does_not_count_as_failed():
    facts = facts_for(batch_of={"gpu1": 1}, deferred=["gpu1"])
    d = decide("batch", HOSTS, facts, 0, batch_hosts=["gpu2", "gpu3"], batches=[1, 2, "100%"])
    assert not d.stop and d.batch == 2


@pytest.mark.parametrize("max_fail, stops", [(0, True), (49, True), (50, False), (100, False)])
def test_the_failure_budget_is_a_share_of_the_batch(max_fail, stops):
    facts = facts_for(batch_of={"gpu1": 1, "gpu2": 2, "gpu3": 2}, done=["gpu1", "gpu2"])
    d = decide("batch", HOSTS, facts, max_fail, batch_hosts=["gpu4", "gpu5", "gpu6"], batches=[1, 2, "100%"])
    assert d.stop is stops
    assert d.failed == ["gpu3"] and d.checked_batch == 2 and d.batch == 3


def test_only_the_batch_before_is_checked():
    # gpu1 failed in batch 1 within a 100% budget; batch 2 went well.
    facts = facts_for(batch_of={"gpu1": 1, "gpu2": 2, "gpu3": 2}, done=["gpu2", "gpu3"])
    d = decide("batch", HOSTS, facts, 0, batch_hosts=["gpu4", "gpu5", "gpu6"], batches=[1, 2, "100%"])
    assert not d.stop


def test_a_batch_ansible_formed_from_other_sizes_is_refused():
    # The inventory asks for [1, 2, 100%] but Ansible's serial used its default.
    d = decide("batch", HOSTS, facts_for(), 0, batch_hosts=["gpu1", "gpu2", "gpu3", "gpu4", "gpu5", "gpu6"],
               batches=[1, 2, "100%"])
    assert d.stop
    assert "Ansible takes a play's batch sizes (serial) from extra vars only" in d.msg
    assert "-e '{\"gpuhost_rollout_batches\": [1, 2, \"100%\"]}'" in d.msg


def test_final_summary_names_every_kind_of_host():
    facts = facts_for(batch_of={"gpu1": 1, "gpu2": 2, "gpu3": 2}, done=["gpu1"], deferred=["gpu2"])
    d = decide("final", HOSTS, facts, 100)
    assert not d.stop
    assert d.msg.startswith("Rollout: 1 of 6 hosts done. Failed, rolled back or lost: gpu3. "
                            "Not rolled out: gpu4, gpu5, gpu6. Deferred")
    assert "--limit gpu2 -e docker_daemon_allow_disruption=true" in d.msg
    assert d.states == {"gpu1": "ok", "gpu2": "deferred", "gpu3": "failed", "gpu4": "not_reached",
                        "gpu5": "not_reached", "gpu6": "not_reached"}


def test_final_summary_counts_converged_hosts_as_done():
    facts = facts_for(batch_of={"gpu1": 1, "gpu2": 2}, done=["gpu1", "gpu2", "gpu4", "gpu5"])
    d = decide("final", HOSTS, facts, 100)
    assert not d.stop
    assert d.states == {"gpu1": "ok", "gpu2": "ok", "gpu3": "not_reached", "gpu4": "converged",
                        "gpu5": "converged", "gpu6": "not_reached"}
    assert d.msg == ("Rollout: 4 of 6 hosts done (2 already converged, nothing to do). "
                     "Not rolled out: gpu3, gpu6.")


def test_summary_of_a_converged_fleet():
    states = {h: rollout.CONVERGED for h in HOSTS}
    assert rollout.summary(HOSTS, states) == "Rollout: 6 of 6 hosts done (6 already converged, nothing to do)."
    # Without converged hosts the summary is as before.
    assert rollout.summary(HOSTS, {h: rollout.OK for h in HOSTS}) == "Rollout: 6 of 6 hosts done."
    mixed = {**{h: rollout.OK for h in HOSTS}, "gpu2": rollout.CONVERGED, "gpu3": rollout.FAILED}
    assert rollout.summary(HOSTS, mixed) == ("Rollout: 5 of 6 hosts done (1 already converged, nothing to do). "
                                             "Failed, rolled back or lost: gpu3.")


def test_converged_hosts_are_not_counted_in_a_batch():
    # The batches' play holds only the hosts with work: a converged host is no target.
    facts = facts_for(batch_of={"gpu1": 1}, done=["gpu1", "gpu2"])
    d = decide("batch", ["gpu1", "gpu3", "gpu4"], facts, 0, batch_hosts=["gpu3"], batches=[1, 1, "100%"])
    assert not d.stop and d.batch == 2 and d.failed == []


def test_long_host_lists_are_shortened():
    hosts = [f"n{i:03d}" for i in range(40)]
    d = decide("preflight", hosts, {}, 0)
    assert "n009 and 30 more" in d.msg and "n010" not in d.msg


# ---- The rollout report -------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def model_of(hosts, gates, plans=None):
    """A run's model: HOSTS {name: (changed, failed, unreachable)}, the gates' results, and
    what the plan found on each host (PLANS {name: roles with work})."""
    model = RunModel()
    for name, (changed, failed, unreachable) in hosts.items():
        model.hosts[name] = HostRun(name=name, changed=changed, failed=failed, unreachable=unreachable,
                                    done=True, error="boom" if failed else None)
        if plans and name in plans:
            model.hosts[name].plan = {"needs_work": plans[name], "drift": {}}
    model.gates = gates
    return model


def build(model, rc=0):
    return rollout_report.build(model, inventory="inv", batches=[1, "100%"], max_fail_percentage=0, check=False,
                                started=T0, ended=T0 + timedelta(seconds=5), rc=rc)


def gate(stage, batch=0, hosts=(), states=None, **extra):
    return {"stage": stage, "batch": batch, "batch_hosts": list(hosts), "states": states or {}, "stop": False,
            "msg": "", "created": T0.isoformat(), **extra}


def test_report_counts_converged_hosts():
    states = {"gpu1": "ok", "gpu2": "converged", "gpu3": "ok", "gpu4": "converged"}
    model = model_of({h: (1 if states[h] == "ok" else 0, 0, 0) for h in states}, [
        gate("preflight", states={h: "not_reached" for h in states}),
        gate("batch", 1, ["gpu1"], {"gpu1": "not_reached", "gpu3": "not_reached"}),
        gate("batch", 2, ["gpu3"], {"gpu1": "ok", "gpu3": "not_reached"}),
        gate("final", 2, states=states, msg=rollout.summary(list(states), states)),
    ], plans={"gpu1": ["docker"], "gpu2": [], "gpu3": ["docker_daemon"], "gpu4": []})
    report = build(model)
    assert {h: v["status"] for h, v in report["hosts"].items()} == states
    assert report["counts"] == {"ok": 2, "converged": 2, "failed": 0, "unreachable": 0, "deferred": 0,
                                "not_reached": 0}
    assert list(report["counts"]) == ["ok", "converged", "failed", "unreachable", "deferred", "not_reached"]
    assert report["outcome"] == "completed" and report["stopped"] is None
    assert report["hosts"]["gpu2"]["batch"] is None
    assert report["summary"] == "Rollout: 4 of 4 hosts done (2 already converged, nothing to do)."
    assert rollout_report.resume_hosts(report) == []
    assert rollout.CONVERGED not in rollout_report.RESUMABLE


def test_report_of_a_converged_fleet():
    states = {"gpu1": "converged", "gpu2": "converged"}
    model = model_of({"gpu1": (0, 0, 0), "gpu2": (0, 0, 0)}, [
        gate("preflight", states={h: "not_reached" for h in states}), gate("final", 0, states=states)],
        plans={"gpu1": [], "gpu2": []})
    report = build(model)
    assert report["counts"]["converged"] == 2 and report["outcome"] == "completed" and report["batches"] == []


def test_a_stopped_report_keeps_converged_hosts_done():
    # The gate stopped before batch 2: there is no final gate; gpu4 was no target of the batches.
    model = model_of({"gpu1": (1, 1, 0), "gpu2": (0, 0, 0), "gpu3": (0, 0, 0), "gpu4": (0, 0, 0)}, [
        gate("preflight", states={h: "not_reached" for h in ("gpu1", "gpu2", "gpu3", "gpu4")}),
        gate("batch", 1, ["gpu1"], {h: "not_reached" for h in ("gpu1", "gpu2", "gpu3")}),
        gate("batch", 2, ["gpu2", "gpu3"], {"gpu1": "failed", "gpu2": "not_reached", "gpu3": "not_reached"},
             stop=True, msg="Rollout stopped after batch 1"),
    ], plans={"gpu1": ["docker"], "gpu2": ["docker"], "gpu3": ["docker"], "gpu4": []})
    report = build(model, rc=2)
    assert {h: v["status"] for h, v in report["hosts"].items()} == {
        "gpu1": "failed", "gpu2": "not_reached", "gpu3": "not_reached", "gpu4": "converged"}
    assert report["outcome"] == "stopped"
    assert rollout_report.resume_hosts(report) == ["gpu1", "gpu2", "gpu3"]


@pytest.mark.parametrize("plans, gpu2", [
    ({"gpu1": ["docker"], "gpu2": []}, "converged"),
    ({"gpu1": ["docker"], "gpu2": ["docker_users"]}, "not_reached"),
    ({"gpu1": ["docker"]}, "not_reached"),
])
def test_a_run_that_ended_before_any_batch_tells_converged_hosts_by_their_plan(plans, gpu2):
    # The inputs of gpu1's roles were bad: the run ended before the batches' play.
    model = model_of({"gpu1": (0, 1, 0), "gpu2": (0, 0, 0)},
                     [gate("preflight", states={"gpu1": "not_reached", "gpu2": "not_reached"})], plans=plans)
    report = build(model, rc=2)
    assert report["hosts"]["gpu1"]["status"] == "failed"
    assert report["hosts"]["gpu2"]["status"] == gpu2
    assert report["outcome"] == "failed"


def test_a_final_gate_is_believed_over_the_plan():
    # gpuhost_full_run: the plan found nothing to do, yet the host ran; the final gate says how it ended.
    model = model_of({"gpu1": (0, 0, 0)}, [gate("preflight", states={"gpu1": "not_reached"}),
                                           gate("final", 0, states={"gpu1": "not_reached"})], plans={"gpu1": []})
    assert build(model)["hosts"]["gpu1"]["status"] == "not_reached"


def test_the_table_counts_converged_hosts():
    states = {"gpu1": "ok", "gpu2": "converged"}
    model = model_of({"gpu1": (1, 0, 0), "gpu2": (0, 0, 0)}, [
        gate("batch", 1, ["gpu1"], {"gpu1": "not_reached"}), gate("final", 1, states=states)])
    console = Console(width=200, record=True, color_system=None)
    console.print(views.rollout_table(build(model)))
    text = console.export_text()
    assert "1 done, 1 converged (nothing to do), 0 failed, 0 unreachable, 0 deferred, 0 not reached" in text
    assert re.search(r"-\s+gpu2\s+converged", text)
    # A report written before converged hosts were counted still renders.
    old = build(model)
    del old["counts"]["converged"]
    console = Console(width=200, record=True, color_system=None)
    console.print(views.rollout_table(old))
    assert "1 done, 0 converged (nothing to do)" in console.export_text()


# ---- Any text at all -------------------------------------------------------------------------

def _valid(batch):
    if isinstance(batch, int):
        return not isinstance(batch, bool) and 1 <= batch <= rollout.MAX_BATCH_HOSTS
    return isinstance(batch, str) and batch.endswith("%") and batch[:-1].isascii() and 1 <= int(batch[:-1]) <= 100


_BATCH_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from("0123456789%, -+_.e²٣５\t\n"), max_size=30),
    st.lists(st.one_of(st.integers(-3, 150).map(str), st.integers(0, 150).map("{}%".format)), max_size=5).map(",".join),
)


@settings(max_examples=400, deadline=None)
@given(_BATCH_TEXT)
def test_any_batches_text_parses_or_is_refused(text):
    try:
        batches = parse_batches(text, "--batches")
    except RolloutError as refused:
        assert str(refused).startswith("--batches")
        return
    assert batches and len(batches) <= rollout.MAX_BATCHES and all(_valid(b) for b in batches), batches
    assert batch_sizes(7, batches)[0] >= 1


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.floats(), st.none(), st.booleans()))
def test_any_max_fail_parses_or_is_refused(value):
    try:
        number = parse_max_fail(value, "--max-fail")
    except RolloutError as refused:
        assert str(refused).startswith("--max-fail")
        return
    assert type(number) is int and 0 <= number <= 100
