"""Containers: cpu.weight, cpu.max per CFS period (and fluid), cpuset, memory.max + back-off."""

from __future__ import annotations

import math

import pytest
from conftest import NOW, events, job_app, launch_all, make_host, steady

from fleet_sim.hosting.kernel import host_kernel
from fleet_sim.hosting.specs import AppSpec
from fleet_sim.hosting.containers import ContainerParams, ContainerRuntime
from fleet_sim.model.distributions import Deterministic
from fleet_sim.model.jobs import Job


def runtime(host, streams, **kw):
    kw.setdefault("start_s", NOW)
    return ContainerRuntime(host_kernel(host), streams, ContainerParams(**kw))


def test_with_equal_weights_the_victim_gets_its_full_core(env, streams):
    rt = runtime(make_host(env, cores=8), streams)
    victim, noisy = launch_all(env, rt, steady("victim", 1.0, threads=1),
                          steady("noisy", 16.0, threads=16))
    assert victim.workloads[0].alloc == 1.0
    assert noisy.workloads[0].alloc == pytest.approx(7.0, rel=1e-12)


def test_weights_share_a_saturated_host_in_proportion(env, streams):
    rt = runtime(make_host(env, cores=8), streams)
    a, b = launch_all(env, rt, steady("a", 16.0, threads=16, cpu_weight=300),
                 steady("b", 16.0, threads=16, cpu_weight=100))
    assert (a.node.alloc, b.node.alloc) == (6.0, 2.0)


def test_a_fluid_quota_caps_the_neighbour_at_its_average(env, streams):
    rt = runtime(make_host(env, cores=8), streams, cfs="fluid")
    victim, noisy = launch_all(env, rt, steady("victim", 1.0, threads=1),
                          steady("noisy", 16.0, threads=16, cpu_limit_cores=2.0))
    assert (victim.workloads[0].alloc, noisy.workloads[0].alloc) == (1.0, 2.0)


def test_a_period_quota_caps_the_neighbour_exactly_per_period(env, streams):
    # 100 ms periods, quota 2 cores = 0.2 core-s: the neighbour runs on the 7 cores the
    # victim leaves for 0.2/7 s, then is throttled for the rest of each period
    host = make_host(env, cores=8)
    rt = runtime(host, streams)
    victim, noisy = launch_all(env, rt, steady("victim", 1.0, threads=1),
                          steady("noisy", 16.0, threads=16, cpu_limit_cores=2.0), until=1.0)
    assert victim.workloads[0].alloc == 1.0
    assert host.cpu.usage_core_s(noisy.node) == pytest.approx(2.0, rel=1e-12)
    stat = noisy.cpu_stat(1.0)
    assert (stat["nr_periods"], stat["nr_throttled"]) == (10, 10)
    assert stat["throttled_s"] == pytest.approx(10 * (0.1 - 0.2 / 7), rel=1e-12)


@pytest.mark.parametrize(("cfs", "finish"), [("period", 0.4125), ("fluid", 0.45)])
def test_a_burst_runs_wide_then_waits_out_each_period(env, streams, cfs, finish):
    # 0.9 core-s on 8 threads under a 2-core quota: per period 0.025 s at 8 cores
    # (0.2 core-s) then throttled; the 5th period finishes it at 0.4 + 0.1/8 = 0.4125.
    # As an average cap (fluid) it takes 0.9 / 2 = 0.45 s.
    rt = runtime(make_host(env, cores=8), streams, cfs=cfs)
    ctr = rt.admit(job_app("burst", threads=8, cpu_limit_cores=2.0))
    wl = ctr.workloads[0]
    wl.keep_jobs = True
    wl.submit(Job(0.9, 8))
    ctr.launch()
    env.run(until=2)
    rt.kernel.host.sync()
    assert wl.finished[0].finish == pytest.approx(finish, rel=1e-12)
    if cfs == "period":
        stat = ctr.cpu_stat(2.0)
        assert (stat["nr_periods"], stat["nr_throttled"]) == (5, 4)
        assert stat["throttled_s"] == pytest.approx(4 * 0.075, rel=1e-12)


def test_an_idle_container_stops_its_period_timer_and_restarts_on_the_grid(env, streams):
    # idle until t = 5.03, then 0.5 core-s on 8 threads: the period [5.0, 5.1) still
    # has its whole quota: run 5.03-5.055, throttled to 5.1, run 5.1-5.125,
    # throttled to 5.2, finish at 5.2 + 0.1/8 = 5.2125
    host = make_host(env, cores=8)
    rt = runtime(host, streams)
    ctr = rt.admit(job_app("burst", threads=8, cpu_limit_cores=2.0))
    ctr.launch()
    env.run(until=5.03)
    events_idle = host.cpu.events
    wl = ctr.workloads[0]
    wl.keep_jobs = True
    wl.submit(Job(0.5, 8))
    env.run(until=10)
    host.sync()
    assert events_idle < 5  # no period ticks while idle
    assert wl.finished[0].finish == pytest.approx(5.2125, rel=1e-12)
    stat = ctr.cpu_stat()
    assert (stat["nr_periods"], stat["nr_throttled"]) == (3, 2)


def test_an_exclusive_cpuset_keeps_its_cores_against_a_heavier_neighbour(env, streams):
    rt = runtime(make_host(env, cores=8), streams)
    small, big = launch_all(env, rt, steady("small", 2.0, threads=2, cpu_weight=1, cpuset_cores=2),
                       steady("big", 16.0, threads=16, cpu_weight=1000))
    assert (small.node.alloc, big.node.alloc) == (2.0, 6.0)


def test_memory_max_oom_kills_and_restarts_with_exponential_back_off(env, streams, recorder):
    # 500 MiB leaking 10 MiB/s under memory.max 1000: killed 50 s after each start;
    # restarts after 10, 20, 40 s of back-off plus a 1 s start
    host = make_host(env, recorder=recorder)
    rt = runtime(host, streams, start_s=Deterministic(1.0), restart_backoff_base_s=10,
                 restart_backoff_max_s=300, restart_backoff_reset_s=math.inf)
    ctr = rt.admit(AppSpec("leaky", ram_mib=500, ram_growth_mib_s=10, ram_limit_mib=1000))
    ctr.launch()
    env.run(until=300)
    timeline = [(t, kind) for t, kind, who in events(recorder)
                if who == "leaky" and kind in ("start", "oom_kill", "restart")]
    expected = [(1, "start"), (51, "oom_kill"), (62, "restart"), (112, "oom_kill"),
                (133, "restart"), (183, "oom_kill"), (224, "restart"), (274, "oom_kill")]
    assert [k for _, k in timeline] == [k for _, k in expected]
    assert [t for t, _ in timeline] == pytest.approx([t for t, _ in expected], rel=1e-12)
    assert ctr.kills == 4 and ctr.restarts == 3


def test_an_oom_kill_loses_the_jobs_in_flight_and_queues_new_ones(env, streams, recorder):
    host = make_host(env, recorder=recorder)
    rt = runtime(host, streams, restart_backoff_base_s=10, restart_backoff_max_s=10,
                 restart_backoff_reset_s=math.inf)
    app = AppSpec("api", ram_mib=900, ram_growth_mib_s=10, ram_limit_mib=1000,
                  workloads=job_app("x", 1).workloads)
    ctr = rt.admit(app)
    ctr.launch()
    wl = ctr.workloads[0]
    wl.keep_jobs = True
    wl.submit(Job(100.0, 1))  # still running at the kill (t = 10)

    def later():
        yield env.timeout(15)
        wl.submit(Job(1.0, 1))  # arrives while the container is down

    env.process(later())
    env.run(until=25)
    host.sync()
    (lost,) = [n for k, n in zip(recorder.data["events"]["kind"],
                                 recorder.data["events"]["count"], strict=True)
               if k == "oom_kill"]
    assert lost == 1  # at t = 10
    (job,) = wl.finished
    assert (job.arrival, job.start, job.finish) == (15.0, 20.0, 21.0)
