"""RolloutRun: executes strategies, records timelines, rolls back on failures."""

from __future__ import annotations

import math

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.model.rollout import TIMELINE_COLUMNS, InstanceRecord, RolloutRun
from fleet_sim.model.views import Create
from fleet_sim.policies.rollout import AllAtOnce, Batches, BlueGreen, Canary, Rolling
from fleet_sim.results.recorder import ChangePointRecorder


class Scripted:
    """Transfer, start and health check of fixed durations; ``fails`` decides outcomes."""

    def __init__(self, env, transfer_s=5.0, start_s=1.0, health_s=2.0, fails=lambda r: False,
                 durations=None):
        self.env = env
        self.steps = (transfer_s, start_s, health_s)
        self.fails = fails
        self.durations = durations
        self.stopped: list[tuple[float, str]] = []

    def provision(self, record: InstanceRecord):
        record.host = record.instance.split("@")[0]  # slots are named by their hosts here
        record.attempts += 1
        transfer_s, start_s, health_s = self.steps
        if self.durations is not None:
            transfer_s = self.durations(record)
        record.mark("transfer_start", self.env.now)
        yield self.env.timeout(transfer_s)
        record.mark("transfer_end", self.env.now)
        yield self.env.timeout(start_s)
        record.mark("started", self.env.now)
        yield self.env.timeout(health_s)
        if self.fails(record):
            record.failure = "health check failed"
            return False
        return True

    def stop(self, record: InstanceRecord) -> None:
        self.stopped.append((self.env.now, record.instance))


def rollout(strategy, n=10, *, in_place=False, rollback_failures=None, **scripted):
    env = simpy.Environment()
    rec = ChangePointRecorder(tables=("events",))
    run = RolloutRun(env, {f"h{i}": f"h{i}" for i in range(n)}, strategy,
                     Scripted(env, **scripted), rec,
                     old_version="v1", new_version="v2", in_place=in_place,
                     rollback_failures=rollback_failures)
    run.start()
    env.run()
    rows = [{c: getattr(r, c) for c in TIMELINE_COLUMNS} for r in run.instances]
    return run, rows, rec.data["events"]


def makespan(rows) -> float:
    return max(r[c] for r in rows for c in ("healthy", "failed", "stopped")
               if not math.isnan(r[c]))


@pytest.mark.parametrize(("batch", "expected_s"), [(1, 80.0), (3, 32.0), (4, 24.0), (10, 8.0)])
def test_makespan_is_batches_times_transfer_boot_and_health(batch, expected_s):
    """ceil(10 / batch) x (5 + 1 + 2) s."""
    run, rows, _ = rollout(Batches(batch))
    assert run.outcome == "complete"
    assert makespan(rows) == pytest.approx(expected_s)


def test_timeline_has_one_row_per_instance_with_nan_where_not_reached():
    _, rows, events = rollout(AllAtOnce(), n=2)
    old = [r for r in rows if r["version"] == "v1"]
    new = [r for r in rows if r["version"] == "v2"]
    assert [(r["host"], r["healthy"], r["stopped"]) for r in old] == [("h0", 0, 0), ("h1", 0, 0)]
    assert all(math.isnan(r["queued"]) for r in old)
    assert [(r["queued"], r["transfer_end"], r["started"], r["healthy"]) for r in new] == [
        (0, 5, 6, 8)] * 2
    assert all(math.isnan(r["failed"]) and math.isnan(r["stopped"]) for r in new)
    assert events["kind"] == ["rollout_end"]
    assert events["detail"] == ["complete"]


def test_rolling_keeps_serving_capacity_above_the_floor():
    _, rows, _ = rollout(Rolling(max_surge=1, max_unavailable=0), n=4)
    changes = sorted({r[c] for r in rows for c in ("healthy", "stopped") if not math.isnan(r[c])})
    for t in changes:
        serving = sum(r["healthy"] <= t and not r["stopped"] <= t for r in rows)
        assert serving >= 4
    assert makespan(rows) == pytest.approx(4 * 8.0)


def test_rollback_when_failures_reach_the_threshold():
    run, rows, events = rollout(Batches(2), n=6, rollback_failures=2,
                                fails=lambda r: r.version == "v2" and r.host in ("h2", "h3"))
    assert run.outcome == "rolled-back"
    assert "rollback" in events["kind"]
    serving = [r for r in rows if not math.isnan(r["healthy"]) and math.isnan(r["stopped"])]
    assert sorted(r["host"] for r in serving) == [f"h{i}" for i in range(6)]
    assert {r["version"] for r in serving} == {"v1"}
    # h0, h1 got v2 and then v1 again; h4, h5 never left v1
    assert sum(r["version"] == "v2" for r in rows) == 4


def test_rollback_discards_instances_still_provisioning():
    run, rows, _ = rollout(AllAtOnce(), n=3, rollback_failures=1,
                           durations=lambda r: {"h0": 1.0}.get(r.host, 50.0),
                           fails=lambda r: r.version == "v2")
    assert run.outcome == "rolled-back"
    discarded = [r for r in rows if r["version"] == "v2" and r["host"] != "h0"]
    assert [r["stopped"] for r in discarded] == [4.0, 4.0]  # when h0 failed (1 + 1 + 2 s)
    assert all(math.isnan(r["transfer_end"]) for r in discarded)  # later marks ignored


def test_a_failed_canary_rolls_back():
    run, rows, events = rollout(Canary(0.2, then=AllAtOnce()), n=10,
                                fails=lambda r: r.host == "h1" and r.version == "v2")
    assert run.outcome == "rolled-back"
    assert "canary: 1 of 2 instances failed" in events["detail"]
    assert sum(r["version"] == "v2" for r in rows) == 2


def test_blue_green_keeps_full_capacity_and_switches_at_once():
    _, rows, _ = rollout(BlueGreen(), n=5)
    stops = {r["stopped"] for r in rows if r["version"] == "v1"}
    assert stops == {8.0}


def test_in_place_stalls_when_failures_eat_the_unavailability_budget():
    run, _, events = rollout(Rolling(max_surge=0, max_unavailable=1), n=3, in_place=True,
                             fails=lambda r: r.host == "h0")
    assert run.outcome == "stalled"
    assert events["detail"][-1] == "stalled"


def test_invalid_actions_are_refused():
    class CreateTwice:
        def next_actions(self, view):
            return [Create("h0"), Create("h0")]

    with pytest.raises(ValueError, match="already has a new instance"):
        rollout(CreateTwice(), n=1)
    with pytest.raises(ValueError, match="in-place host still runs"):
        rollout(CreateTwice(), n=1, in_place=True)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), surge=st.integers(0, 3), unavailable=st.integers(0, 3),
       durations=st.lists(st.integers(1, 9), min_size=40, max_size=40),
       failures=st.lists(st.booleans(), min_size=40, max_size=40))
def test_rolling_run_never_exceeds_its_budgets(n, surge, unavailable, durations, failures):
    """Whole runs with random durations and failures: between changes, at most
    replicas + surge instances exist and at least replicas - unavailable serve."""
    if surge == unavailable == 0:
        return
    policy = Rolling(surge, unavailable)
    max_surge, max_unavailable = policy.budgets(n)
    seen = iter(range(10**6))
    order = {}

    def index(record):
        return order.setdefault(record.instance, next(seen)) % 40

    _, rows, _ = rollout(policy, n, durations=lambda r: durations[index(r)],
                         fails=lambda r: failures[index(r)])
    times = {r[c] for r in rows for c in TIMELINE_COLUMNS[3:10] if not math.isnan(r[c])}
    for t in sorted(times):
        alive = sum((r["healthy"] <= t or r["queued"] <= t)
                    and not (r["stopped"] <= t or r["failed"] <= t) for r in rows)
        serving = sum(r["healthy"] <= t and not r["stopped"] <= t for r in rows)
        assert alive <= n + max_surge
        assert serving >= n - max_unavailable


def test_retired_and_discarded_instances_are_stopped_through_the_provisioner():
    env = simpy.Environment()
    scripted = Scripted(env, durations=lambda r: {"h0": 1.0}.get(r.host, 50.0),
                        fails=lambda r: r.version == "v2")
    run = RolloutRun(env, {"h0": "h0", "h1": "h1"}, AllAtOnce(), scripted,
                     ChangePointRecorder(tables=("events",)), old_version="v1",
                     new_version="v2", rollback_failures=1)
    run.start()
    env.run()
    # both old instances retired at 0; h1's v2 discarded when h0's failed (1 + 1 + 2 s)
    assert scripted.stopped[:3] == [(0.0, "h0"), (0.0, "h1"), (4.0, "h1@v2")]
