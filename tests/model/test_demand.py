"""Demand profiles and demand workloads (docs/model.md §3)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import simpy

from fleet_sim.model.demand import Constant, DemandWorkload, Diurnal, Replay, Spiky
from fleet_sim.model.distributions import Deterministic, Exponential, LogNormal, Uniform
from fleet_sim.model.host import Host
from fleet_sim.results.recorder import ChangePointRecorder


def test_spiky_levels_are_baseline_plus_active_spikes():
    rng = np.random.default_rng(0)
    steps = list(itertools.islice(Spiky(1.0, 0.1, Exponential(5.0), 4.0, rng).steps(), 400))
    times = [t for t, _ in steps]
    assert times == sorted(times)
    for _, level in steps:
        active = (level - 1.0) / 4.0
        assert active == pytest.approx(round(active)) and round(active) >= 0


def test_spiky_with_deterministic_spikes_is_exact():
    rng = np.random.default_rng(1)
    steps = list(itertools.islice(Spiky(0.5, 1e-3, Deterministic(1.0), 2.0, rng).steps(), 5))
    assert steps[0] == (0.0, 0.5)
    (t1, up), (t2, down) = steps[1], steps[2]
    assert (up, down) == (2.5, 0.5) and t2 == pytest.approx(t1 + 1.0)


def test_replay_holds_each_value_for_the_interval():
    steps = list(Replay([0.1, 0.5, 1.0], 300.0, cores=4.0).steps())
    assert steps == [(0.0, 0.4), (300.0, 2.0), (600.0, 4.0)]


def test_diurnal_peaks_at_peak_time():
    prof = Diurnal(2.0, 1.0, period_s=86_400, peak_s=43_200, step_s=3600)
    steps = dict(itertools.islice(prof.steps(), 24))
    assert max(steps, key=steps.get) in (39_600.0, 43_200.0)
    assert min(steps.values()) >= 1.0 - 1e-9 and max(steps.values()) <= 3.0 + 1e-9


def test_demand_workload_loses_what_it_does_not_get():
    env = simpy.Environment()
    rec = ChangePointRecorder(["workloads"])
    host = Host(env, "h", cores=2, recorder=rec)
    a = DemandWorkload(host, "a", Constant(2.0))
    b = DemandWorkload(host, "b", Replay([1.0, 0.0], 10.0, cores=2.0))
    a.start()
    b.start()
    host.finalize(20)
    cols = rec.data["workloads"]
    rows = [(cols["t"][i], cols["workload"][i], cols["allocated_cores"][i],
             cols["contention_cores"][i]) for i in range(len(cols["t"]))]
    last = {}
    for t, name, alloc, cont in rows:
        last[(t, name)] = (alloc, cont)
    assert last[(0.0, "a")] == (1.0, 1.0)    # shares 2 cores with b
    assert last[(10.0, "a")] == (2.0, 0.0)   # b went idle at t = 10


@pytest.mark.parametrize("dist", [Exponential(3.0), LogNormal(2.0, 1.5), Uniform(1.0, 5.0),
                                  Deterministic(2.5)])
def test_distributions_match_their_moments(dist):
    x = dist.sample(np.random.default_rng(42), 400_000)
    assert x.mean() == pytest.approx(dist.mean, rel=0.02)
    assert x.var() == pytest.approx(dist.variance, rel=0.1, abs=1e-12)


def test_burst_jobs_want_height_for_their_duration():
    from fleet_sim.model.jobs import JobWorkload, PoissonJobs

    env = simpy.Environment()
    host = Host(env, "h", cores=64)
    wl = JobWorkload(host, "w")
    wl.add_feed(PoissonJobs.bursts(0.01, Exponential(30.0), 4.0, np.random.default_rng(1),
                                   np.random.default_rng(2), t_end=20_000))
    host.finalize(30_000)
    assert len(wl.finished) > 150
    for j in wl.finished:
        assert j.max_cores == 4.0
        # uncontended: a burst lasts exactly its duration = work / height
        assert j.response_time_s == pytest.approx(j.work_core_s / 4.0)
    mean_duration = np.mean([j.response_time_s for j in wl.finished])
    assert mean_duration == pytest.approx(30.0, rel=0.15)
