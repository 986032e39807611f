"""Bare metal, one shared OS: per-thread CFS, dependency conflicts, install, kernel OOM."""

from __future__ import annotations

import pytest
from conftest import NOW, events, job_app, launch_all, make_host, steady

from fleet_sim.errors import ConflictError
from fleet_sim.hosting.kernel import host_kernel
from fleet_sim.hosting.specs import AppSpec
from fleet_sim.hosting.baremetal import BareMetalParams, SharedOS
from fleet_sim.model.distributions import Deterministic
from fleet_sim.model.jobs import Job


def shared_os(host, streams, restart=True, **kw):
    """A shared OS with BareMetalParams ``kw``; ``restart=None``: it never restarts."""
    kw.setdefault("install_s", NOW)
    kw.setdefault("install_step_failure_p", 0.0)
    os_ = SharedOS(host_kernel(host, os_ram_mib=kw.pop("os_ram_mib", 0.0)), streams,
                   BareMetalParams(**kw))
    if restart is None:
        os_.restart = None
    return os_


def test_victim_gets_8_17_of_a_core_next_to_16_busy_threads(env, streams):
    host = make_host(env, cores=8)
    victim, noisy = launch_all(env, shared_os(host, streams),
                            steady("victim", 1.0, threads=1), steady("noisy", 16.0, threads=16))
    assert victim.workloads[0].alloc == pytest.approx(8 / 17, rel=1e-12)
    assert noisy.workloads[0].alloc == pytest.approx(8 * 16 / 17, rel=1e-12)


def test_thread_count_caps_a_process_weight_and_cores(env, streams):
    # same spike from a process with only 4 threads: weights 4:1 would give the victim
    # 8/5 > 1, so it is satisfied; the 4-thread process is capped at 4 cores
    host = make_host(env, cores=8)
    victim, noisy = launch_all(env, shared_os(host, streams),
                            steady("victim", 1.0, threads=1), steady("noisy", 16.0, threads=4))
    assert victim.workloads[0].alloc == 1.0
    assert noisy.workloads[0].alloc == 4.0


def test_job_process_weight_follows_its_runnable_threads(env, streams):
    # 2 cores: a steady 2-thread process (weight 2) and three 1-core jobs of 0.4 core-s
    # in a 16-thread process (weight 3): the jobs share 2 × 3/5 = 1.2 cores, 0.4 each,
    # so all finish at t = 1 (with one weight per process they would take 1.8 s)
    host = make_host(env, cores=2)
    os_ = shared_os(host, streams)
    procs = [os_.admit(steady("steady", 2.0, threads=2)), os_.admit(job_app("jobs", threads=16))]
    wl = procs[1].workloads[0]
    wl.keep_jobs = True
    for _ in range(3):
        wl.submit(Job(0.4, 1))  # queued until the process starts, at t = 0
    for p in procs:
        p.launch()
    env.run(until=5)
    host.sync()
    assert [j.finish for j in wl.finished] == pytest.approx([1.0, 1.0, 1.0], rel=1e-12)


def test_conflicting_dependency_versions_are_refused_on_one_os(env, streams):
    os_ = shared_os(make_host(env), streams)
    os_.admit(AppSpec("billing", dependencies={"postgres": "12", "redis": "6"}))
    os_.admit(AppSpec("reports", dependencies={"postgres": "12"}))  # same version: fine
    with pytest.raises(ConflictError, match=r"'shop'.*postgres 13 \(installed: 12\)"):
        os_.admit(AppSpec("shop", dependencies={"postgres": "13"}))


def test_fail_install_policy_fails_the_second_install_at_its_end(env, streams, recorder):
    host = make_host(env, recorder=recorder)
    os_ = shared_os(host, streams, conflict_policy="fail-install", install_s=Deterministic(600))
    first = os_.admit(AppSpec("billing", dependencies={"postgres": "12"}))
    second = os_.admit(AppSpec("shop", dependencies={"postgres": "13"}))
    first.launch()
    second.launch()
    env.run(until=1000)
    assert (first.state, second.state) == ("running", "failed")
    assert events(recorder, "install_failed") == [(600.0, "install_failed", "shop")]
    assert events(recorder, "start") == [(600.0, "start", "billing")]
    assert os_.kernel.installed() == {"postgres": "12"}


def test_jobs_wait_for_the_install_to_finish(env, streams):
    host = make_host(env)
    os_ = shared_os(host, streams, install_s=Deterministic(100))
    app = os_.admit(job_app("web", threads=1))
    app.launch()
    wl = app.workloads[0]
    wl.keep_jobs = True

    def arrive():
        yield env.timeout(10)
        wl.submit(Job(2.0, 1))

    env.process(arrive())
    env.run(until=200)
    host.sync()
    job = wl.finished[0]
    assert (job.arrival, job.start, job.finish) == (10.0, 100.0, 102.0)


def test_every_failed_install_step_is_retried_then_the_app_fails(env, streams, recorder):
    host = make_host(env, recorder=recorder)
    os_ = shared_os(host, streams, install_s=Deterministic(60), install_step_failure_p=1.0,
                    install_max_attempts=3)
    app = os_.admit(AppSpec("web"))
    app.launch()
    env.run(until=1000)
    assert app.state == "failed"
    assert [t for t, *_ in events(recorder, "install_failed")] == [60.0, 120.0, 180.0]


def test_out_of_ram_the_kernel_kills_the_largest_process_not_the_leaking_one(
        env, streams, recorder):
    # 4096 MiB, 1024 for the OS, a steady 2000 MiB app and a 100 MiB app leaking 10 MiB/s:
    # the RAM runs out at t = 97.2 and the kernel kills the 2000 MiB app; the leak then
    # fills the rest alone and is killed when it reaches 3072 MiB, at t = 297.2
    host = make_host(env, ram_mib=4096, recorder=recorder)
    os_ = shared_os(host, streams, os_ram_mib=1024, restart=None)
    big, leaky = launch_all(env, os_, AppSpec("big", ram_mib=2000),
                         AppSpec("leaky", ram_mib=100, ram_growth_mib_s=10), until=1000)
    kills = events(recorder, "oom_kill")
    assert [k[2] for k in kills] == ["big", "leaky"]
    assert [k[0] for k in kills] == pytest.approx([97.2, 297.2], rel=1e-12)
    assert big.state == leaky.state == "failed"


def test_systemd_restarts_a_killed_service_until_its_start_limit(env, streams, recorder):
    # 1024 MiB left, a process of 1000 MiB leaking 1000 MiB/s: killed 0.024 s after each
    # start, restarted after RestartSec = 0.1 s, given up after 6 kills within 10 s
    host = make_host(env, ram_mib=2048, recorder=recorder)
    os_ = shared_os(host, streams, os_ram_mib=1024)
    (hog,) = launch_all(env, os_, AppSpec("hog", ram_mib=1000, ram_growth_mib_s=1000), until=100)
    kills = [t for t, *_ in events(recorder, "oom_kill")]
    assert kills == pytest.approx([0.024 + k * 0.124 for k in range(6)], rel=1e-9)
    assert len(events(recorder, "restart")) == 5
    assert hog.state == "failed"
