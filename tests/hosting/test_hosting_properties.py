"""Property tests of the hosting modes' CPU semantics over random job streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy
from conftest import NOW, job_app, make_host
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.hosting.kernel import host_kernel
from fleet_sim.hosting.processes import ProcessJobs, cfs_weight
from fleet_sim.hosting.baremetal import BareMetalParams, SharedOS
from fleet_sim.hosting.containers import ContainerParams, ContainerRuntime
from fleet_sim.model.jobs import Job
from fleet_sim.numerics.fairshare import allocate_tree
from fleet_sim.numerics.timeweighted import integral
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.rng import Streams

jobs = st.lists(
    st.tuples(
        st.floats(0.0, 0.3),                   # gap before arrival, s
        st.integers(0, 7),                     # process index (mod n)
        st.floats(0.01, 2.0),                  # work, core-s
        st.sampled_from([0.5, 1.0, 2.0, 3.0]),  # max_cores
    ),
    min_size=1, max_size=30,
)


def check_shared_os(host, procs):
    """The lazy, incremental scheduler agrees with a from-scratch allocation."""
    for p in procs:
        live = [j.max_cores for j in p.jobs()]
        assert math.isclose(p.raw, sum(live), abs_tol=1e-9)  # the weight's input is exact
        assert p.weight == cfs_weight(p.threads, sum(live))
    leaves = [(leaf, leaf.alloc) for leaf in host.root.leaves() if leaf.is_job]
    allocate_tree(host.root, host.cpu.capacity)
    for leaf, alloc in leaves:
        assert math.isclose(alloc, leaf.alloc, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([1.0, 2.0, 4.0]), st.lists(st.integers(1, 8), min_size=1, max_size=4),
       jobs)
def test_per_thread_weights_match_a_from_scratch_allocation(cores, threads, arrivals):
    env = simpy.Environment()
    host = make_host(env, cores=cores)
    os_ = SharedOS(host_kernel(host, cpu_ratio=100), Streams(0), BareMetalParams(install_s=NOW))
    apps = [os_.admit(job_app(f"p{i}", threads=t)) for i, t in enumerate(threads)]
    for a in apps:
        a.launch()
    procs: list[ProcessJobs] = [a.workloads[0] for a in apps]
    for p in procs:
        p.keep_jobs = True
    inner = host.cpu.on_job_done

    def done(job):
        inner(job)
        check_shared_os(host, procs)

    host.cpu.on_job_done = done

    def feed():
        for gap, idx, work, max_cores in arrivals:
            yield env.timeout(gap)
            procs[idx % len(procs)].submit(Job(work, max_cores))
            check_shared_os(host, procs)

    env.process(feed())
    env.run()
    host.finalize(env.now + 1e4)
    assert sum(len(p.finished) for p in procs) == len(arrivals)


def used_by(ts, allocs, times):
    """Core-s used from 0 to each of ``times``, from allocation change points."""
    ts, allocs = np.asarray(ts), np.asarray(allocs)
    cum = np.concatenate([[0.0], np.cumsum(allocs[:-1] * np.diff(ts))])
    i = np.searchsorted(ts, times, side="right") - 1
    return np.where(i < 0, 0.0, cum[i] + allocs[i] * (times - ts[i]))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([0.5, 1.0, 2.5]), st.sampled_from([2, 4, 8]), jobs)
def test_a_period_quota_is_never_exceeded_in_any_period(limit_cores, threads, arrivals):
    period = 0.1
    env = simpy.Environment()
    rec = ChangePointRecorder(["instances"])
    host = make_host(env, cores=4, recorder=rec)
    rt = ContainerRuntime(host_kernel(host, cpu_ratio=100), Streams(0),
                          ContainerParams(start_s=NOW))
    capped = rt.admit(job_app("capped", threads=threads, cpu_limit_cores=limit_cores))
    other = rt.admit(job_app("other", threads=4))
    for c in (capped, other):
        c.launch()
    wls = [capped.workloads[0], other.workloads[0]]
    for w in wls:
        w.keep_jobs = True

    def feed():
        for gap, idx, work, max_cores in arrivals:
            yield env.timeout(gap)
            wls[idx % 2].submit(Job(work, max_cores))

    env.process(feed())
    env.run()
    t_end = env.now + 200.0
    host.finalize(t_end)
    inst = rec.data["instances"]
    rows = [(t, a) for t, name, a in zip(inst["t"], inst["instance"], inst["allocated_cores"],
                                         strict=True) if name == "capped"]
    ts, allocs = [r[0] for r in rows], [r[1] for r in rows]
    used = used_by(ts, allocs, np.arange(0.0, t_end + period, period))
    assert np.all(np.diff(used) <= limit_cores * period + 1e-9)
    assert used[-1] == pytest.approx(integral(ts, allocs, t_end + period))
    # nothing is lost: every job finishes and the work delivered is the work submitted
    finished = [j for w in wls for j in w.finished]
    assert len(finished) == len(arrivals)
    assert math.isclose(host.cpu.delivered_core_s, sum(j.work_core_s for j in finished),
                        rel_tol=1e-9, abs_tol=1e-9)
