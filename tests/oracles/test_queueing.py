"""Analytic oracles: processor sharing queues (docs/model.md §3), fixed seeds."""

from __future__ import annotations

import statistics

import pytest
import simpy

from fleet_sim.model.distributions import Exponential
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import JobWorkload, PoissonJobs
from fleet_sim.rng import Streams

pytestmark = pytest.mark.oracle


def mm1_ps(rho: float, seed: int, jobs: int, service_s: float = 1.0):
    """One core, Poisson arrivals of 1-core jobs with exponential work: M/M/1-PS."""
    env = simpy.Environment()
    host = Host(env, "h", cores=1)
    wl = JobWorkload(host, "q")
    streams = Streams(seed)
    horizon = jobs * service_s / rho
    wl.add_feed(PoissonJobs(rho / service_s, Exponential(service_s), 1.0,
                            streams.get("q.arrivals"), streams.get("q.sizes"), t_end=horizon))
    host.finalize(horizon)
    warm = horizon * 0.05
    return [j.response_time_s for j in wl.finished if j.arrival > warm], host, wl


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mm1_ps_mean_response_time(rho):
    # E[T] = S / (1 - rho); averaged over 4 independent seeds of 60k jobs each
    means = [statistics.fmean(mm1_ps(rho, seed, 60_000)[0]) for seed in range(4)]
    expected = 1.0 / (1 - rho)
    assert statistics.fmean(means) == pytest.approx(expected, rel=0.05)


def test_ps_conditional_response_is_linear_in_size():
    # M/G/1-PS: E[T | work = x] = x / (1 - rho); check small vs large jobs at rho = 0.5
    _, _, wl = mm1_ps(0.5, 11, 60_000)
    small = [j.response_time_s / j.work_core_s for j in wl.finished if j.work_core_s < 0.5]
    large = [j.response_time_s / j.work_core_s for j in wl.finished if j.work_core_s > 2.0]
    assert statistics.fmean(small) == pytest.approx(2.0, rel=0.1)
    assert statistics.fmean(large) == pytest.approx(2.0, rel=0.1)


def test_littles_law():
    # time-average number in system = arrival rate x mean response time
    _, host, wl = mm1_ps(0.8, 3, 40_000)
    jobs = wl.finished
    horizon = host.cpu.now
    in_system = sum(min(j.finish, horizon) - j.arrival for j in jobs) / horizon
    lam = len(jobs) / horizon
    mean_t = statistics.fmean(j.response_time_s for j in jobs)
    assert in_system == pytest.approx(lam * mean_t, rel=0.02)


def test_uncontended_jobs_take_work_over_max_cores():
    # M/M/inf-like: a 64-core host with light load never makes a job wait
    env = simpy.Environment()
    host = Host(env, "h", cores=64)
    wl = JobWorkload(host, "w")
    streams = Streams(5)
    wl.add_feed(PoissonJobs(0.5, Exponential(2.0), 2.0, streams.get("a"), streams.get("s"),
                            t_end=2000))
    host.finalize(5000)
    assert len(wl.finished) > 800
    for j in wl.finished:
        assert j.response_time_s == pytest.approx(j.work_core_s / 2.0, rel=1e-9)


def test_conservation_work_delivered_equals_done_plus_progress():
    env = simpy.Environment()
    host = Host(env, "h", cores=4)
    wls = [JobWorkload(host, f"w{i}") for i in range(3)]
    streams = Streams(9)
    for i, wl in enumerate(wls):
        wl.add_feed(PoissonJobs(1.0, Exponential(3.0), 2.0, streams.get(f"{i}.a"),
                                streams.get(f"{i}.s")))
    running = []
    orig = host.cpu.submit

    def track(job, parent):
        running.append(job)
        orig(job, parent)

    host.cpu.submit = track
    host.finalize(500.0)
    done = sum(j.work_core_s for wl in wls for j in wl.finished)
    progress = sum(j.work_core_s - host.cpu.remaining(j) for j in running if j.finish is None)
    assert host.cpu.delivered_core_s == pytest.approx(done + progress, rel=1e-9)
    # only jobs run here, at speed 1: every allocated core-s is delivered work
    assert host.cpu.used_core_s == pytest.approx(host.cpu.delivered_core_s, rel=1e-9)
    # overloaded (9 core-s/s offered to 4 cores): busy all but the first moments
    assert 0.99 * 4 * 500.0 < host.cpu.used_core_s <= 4 * 500.0
