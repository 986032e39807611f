"""Exact hand cases of the per-host CPU scheduler (docs/model.md §2, §3)."""

from __future__ import annotations

import pandas as pd
import pytest
import simpy

from fleet_sim.model.cputree import CpuNode
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import Job, JobWorkload
from fleet_sim.model.scheduler import FINISH
from fleet_sim.numerics.power import LinearPower
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.results.tables import build_tables


def finishes(wl: JobWorkload) -> dict[int, float]:
    return {j.job_id: j.finish for j in wl.finished}


def test_small_jobs_finish_at_1_big_at_2_5():
    env = simpy.Environment()
    host = Host(env, "h0", cores=4)
    wl = JobWorkload(host, "w")
    for work, cores in [(8, 4), (1, 1), (1, 1)]:
        wl.submit(Job(work, cores))
    env.run()
    host.finalize(10)
    assert finishes(wl) == {0: 2.5, 1: 1.0, 2: 1.0}


def test_weights_two_to_one_finish_at_1_5w_and_2w():
    # SimGrid exec-basic: two equal jobs on one core with weights 2:1
    env = simpy.Environment()
    host = Host(env, "h", cores=1)
    a, b = JobWorkload(host, "a", weight=2), JobWorkload(host, "b", weight=1)
    w = 0.001
    a.submit(Job(w, 1))
    b.submit(Job(w, 1))
    host.finalize(1)
    assert a.finished[0].finish == pytest.approx(1.5 * w, rel=1e-12)
    assert b.finished[0].finish == pytest.approx(2 * w, rel=1e-12)


def test_staggered_arrival_slows_the_first_job():
    # 2 cores: A (4 core-s, 2 cores) alone for 1 s, then shares with B (1 core-s, 1 core)
    env = simpy.Environment()
    host = Host(env, "h", cores=2)
    wl = JobWorkload(host, "w")

    def later():
        yield env.timeout(1)
        wl.submit(Job(1, 1))

    wl.submit(Job(4, 2))
    env.process(later())
    env.run()
    host.finalize(10)
    assert finishes(wl) == {0: 2.5, 1: 2.0}


def test_workloads_share_equally_and_jobs_max_min_inside():
    # 2 cores, workload a has three 1-core jobs, b one 1-core job: a gets 1, b 1;
    # inside a each job runs at 1/3 core
    env = simpy.Environment()
    host = Host(env, "h", cores=2)
    a, b = JobWorkload(host, "a"), JobWorkload(host, "b")
    for _ in range(3):
        a.submit(Job(1, 1))
    b.submit(Job(1, 1))
    host.finalize(10)
    assert finishes(b) == {0: 1.0}
    # a's jobs: 1/3 core until t=1 (1/3 done), then 2 cores shared -> 2/3 each: +1 s
    assert all(f == pytest.approx(2.0) for f in finishes(a).values())


def test_speed_scales_progress():
    env = simpy.Environment()
    host = Host(env, "h", cores=2, speed=2.0)
    wl = JobWorkload(host, "w")
    wl.submit(Job(4, 1))
    host.finalize(10)
    assert finishes(wl) == {0: 2.0}


def test_cap_on_workload_limits_its_jobs():
    env = simpy.Environment()
    host = Host(env, "h", cores=8)
    wl = JobWorkload(host, "w", cap=2)
    wl.submit(Job(4, 4))
    host.finalize(10)
    assert finishes(wl) == {0: 2.0}


def test_scaled_node_charges_overhead():
    # a VM-like node with 25% overhead and a 4-core cap: a 3-core job gets 3.2 guest cores
    env = simpy.Environment()
    host = Host(env, "h", cores=16)
    vm = host.attach(CpuNode("vm", cap=4, scale=1.25))
    wl = JobWorkload(host, "w", parent=vm)
    wl.submit(Job(6.4, 8))
    host.finalize(10)
    assert finishes(wl) == {0: pytest.approx(2.0)}
    assert host.cpu.used_core_s == pytest.approx(8.0)


def test_queued_start_when_capacity_is_zero_until_attach():
    env = simpy.Environment()
    host = Host(env, "h", cores=2)
    vm = CpuNode("vm", cap=0.0)
    host.attach(vm)
    wl = JobWorkload(host, "w", parent=vm)
    wl.submit(Job(1, 1))

    def boot():
        yield env.timeout(5)
        host.sync()
        host.cpu.set_limits(vm, cap=2)

    env.process(boot())
    env.run()
    host.finalize(10)
    job = wl.finished[0]
    assert (job.arrival, job.start, job.finish) == (0.0, 5.0, 6.0)


def test_host_table_records_used_cores_and_power():
    env = simpy.Environment()
    rec = ChangePointRecorder(["hosts"])
    host = Host(env, "h", cores=4, recorder=rec, power=LinearPower(100.0, 400.0))
    wl = JobWorkload(host, "w")
    wl.submit(Job(4, 2))
    host.finalize(10)
    cols = rec.data["hosts"]
    assert list(cols["t"]) == [0.0, 0.0, 2.0]
    assert list(cols["cpu_used_cores"]) == [0.0, 2.0, 0.0]
    fleet = pd.DataFrame({"host": ["h"], "type": "std", "cores": 4.0, "speed": 1.0,
                          "ram_mib": 65_536.0, "monthly_cost_usd": 0.0})
    hosts = build_tables(rec.data, ["hosts"], fleet, 10.0, power={"h": host.power})["hosts"]
    # the change at t=0 keeps only its last row
    assert list(hosts["power_w"]) == [250.0, 100.0]


def last_rows(rec: ChangePointRecorder) -> dict[str, tuple]:
    """Each recorded workload's last (demand, allocated, throttled, contention), cores."""
    cols = rec.data["workloads"]
    return {name: (cols["demand_cores"][i], cols["allocated_cores"][i],
                   cols["throttled_cores"][i], cols["contention_cores"][i])
            for i, name in enumerate(cols["workload"])}


def test_contention_and_throttled_split():
    # 2 cores; a (cap 1) wants 3, b wants 3: a gets 1 (throttled 2), b gets 1 (contention 2)
    env = simpy.Environment()
    rec = ChangePointRecorder(["workloads"])
    host = Host(env, "h", cores=2, recorder=rec)
    a = JobWorkload(host, "a", cap=1)
    b = JobWorkload(host, "b")
    a.submit(Job(100, 3))
    b.submit(Job(100, 3))
    host.finalize(1)
    last = last_rows(rec)
    assert last["a"] == (3.0, 1.0, 2.0, 0.0)
    assert last["b"] == (3.0, 1.0, 0.0, 2.0)


def test_the_split_below_a_capped_unit_follows_a_change_that_stops_at_its_cap():
    # 1 core; n0 wants 0.5; n2 (cap 1) holds w0 (weight 1, wants 1) and then w1 (weight
    # 2, wants 0.5): n2 stays at its cap, so the change stops there. Each of n0 and n2
    # gets 0.5; in n2, w0 gets 1/6 and w1 1/3. On an idle host n2 would get its cap of 1,
    # w1 its 0.5 and w0 the other 0.5: so w0 is throttled 1 - 0.5 and contended
    # 0.5 - 1/6, w1 contended 0.5 - 1/3
    env = simpy.Environment()
    rec = ChangePointRecorder(["workloads"])
    host = Host(env, "h", cores=1, recorder=rec)
    n0 = host.attach(CpuNode("n0"))
    n2 = host.attach(CpuNode("n2", cap=1.0))
    v = JobWorkload(host, "v", parent=n0)
    w0 = JobWorkload(host, "w0", parent=n2, weight=1)
    w1 = JobWorkload(host, "w1", parent=n2, weight=2)
    for wl, cores in ((v, 0.5), (w0, 1.0), (w1, 0.5)):
        wl.submit(Job(100, cores))
    host.finalize(1)
    last = last_rows(rec)
    assert last["w0"] == pytest.approx((1.0, 1 / 6, 0.5, 1 / 3))
    assert last["w1"] == pytest.approx((0.5, 1 / 3, 0.0, 1 / 6))
    assert last["v"] == pytest.approx((0.5, 0.5, 0.0, 0.0))


def test_eager_host_wakes_simpy_at_completion():
    env = simpy.Environment()
    host = Host(env, "h", cores=1, eager=True)
    wl = JobWorkload(host, "w")
    seen = []
    wl.submit(Job(3, 1))

    def watcher():
        while not wl.finished:
            yield env.timeout(0.5)
        seen.append(env.now)

    env.process(watcher())
    env.run(until=10)
    assert wl.finished[0].finish == 3.0
    assert seen == [3.0]


def test_jobs_of_a_detached_workload_get_no_cpu_until_attached():
    env = simpy.Environment()
    host = Host(env, "h", cores=2)
    vm = CpuNode("vm")
    wl = JobWorkload(host, "w", parent=host.root)
    host.detach(wl)
    vm.add(wl)  # a subtree built off the host
    wl.submit(Job(2, 1))
    assert wl.jobs()[0].rate == 0.0

    def boot():
        yield env.timeout(3)
        host.attach(vm)

    env.process(boot())
    env.run()
    host.finalize(10)
    job = wl.finished[0]
    assert (job.start, job.finish) == (3.0, 5.0)


def test_watcher_sees_allocation_changes():
    env = simpy.Environment()
    host = Host(env, "h", cores=2)
    a = JobWorkload(host, "a")
    b = JobWorkload(host, "b")
    seen = []
    host.cpu.watch(a, lambda: seen.append((host.cpu.now, a.alloc)))
    a.submit(Job(4, 2))
    b.submit(Job(1, 2))
    host.finalize(10)
    # a: 2 cores alone, 1 while b runs (t=0..1), 2 again, 0 when done at t=2.5
    assert seen == [(0.0, 2.0), (0.0, 1.0), (1.0, 2.0), (2.5, 0.0)]


def test_jobs_queue_in_a_held_node_and_start_when_released():
    env = simpy.Environment()
    rec = ChangePointRecorder(["workloads", "jobs"])
    host = Host(env, "h", cores=4, recorder=rec)
    vm = host.attach(CpuNode("vm", cap=0.0))
    wl = JobWorkload(host, "w", parent=vm)

    def arrivals():
        for _ in range(500):
            wl.submit(Job(0.01, 1))
            yield env.timeout(0.01)
        host.sync()
        host.cpu.set_limits(vm, cap=4)

    env.process(arrivals())
    env.run()
    host.finalize(100)
    assert len(wl.finished) == 500
    assert all(j.start == pytest.approx(5.0) for j in wl.finished)
    # the held workload's demand grew while it got nothing: all of it throttled
    cols = rec.data["workloads"]
    before = [i for i, t in enumerate(cols["t"]) if t < 4.995]
    assert max(cols["demand_cores"][i] for i in before) == 500.0
    assert all(cols["allocated_cores"][i] == 0.0 for i in before)


def test_a_tree_without_caps_takes_the_fast_path_and_a_cap_leaves_it():
    # the plain fast path is what makes large fleets cheap: guard it against regressions
    env = simpy.Environment()
    host = Host(env, "h", cores=4)
    JobWorkload(host, "a")
    assert host.cpu._plain
    capped = JobWorkload(host, "b", cap=1.0)
    assert not host.cpu._plain
    host.detach(capped)
    assert host.cpu._plain


def test_fleet_counts_finished_jobs_even_when_none_are_kept():
    from fleet_sim.model.fleet import Fleet

    env = simpy.Environment()
    fleet = Fleet(env)
    host = fleet.add(Host(env, "h", cores=2))
    wl = JobWorkload(host, "w", keep_jobs=False)
    for _ in range(3):
        wl.submit(Job(1, 1))
    fleet.finalize(10)
    assert wl.finished == [] and fleet.jobs_finished() == 3


def test_a_detached_workloads_series_ends_with_a_row_of_zeros():
    # a (2 cores wanted) and b (1) share 4 cores; a is taken off the host at 5 s (a
    # stopped instance): its series ends there, so its core-s stop growing, and b's
    # share does not change
    env = simpy.Environment()
    rec = ChangePointRecorder(["workloads"])
    host = Host(env, "h", cores=4, recorder=rec)
    a = JobWorkload(host, "a")
    b = JobWorkload(host, "b")
    a.submit(Job(100, 2))
    b.submit(Job(100, 1))

    def stop():
        yield env.timeout(5)
        host.detach(a)

    env.process(stop())
    env.run(until=10)
    host.finalize(10)
    cols = rec.data["workloads"]
    rows = {name: [(cols["t"][i], cols["demand_cores"][i], cols["allocated_cores"][i])
                   for i, n in enumerate(cols["workload"]) if n == name]
            for name in ("a", "b")}
    assert rows["a"][-2:] == [(0.0, 2.0, 2.0), (5.0, 0.0, 0.0)]
    assert rows["b"][-1] == (0.0, 1.0, 1.0)


def test_a_queue_of_thousands_of_jobs_holds_one_completion_and_finishes_exactly():
    """Processor sharing of n jobs on one core: the k-th finishes at the hand value
    below, and however long the queue the heap holds one pending completion for it
    (the jobs are one pool), not one per job."""
    env = simpy.Environment()
    host = Host(env, "h", cores=1)
    wl = JobWorkload(host, "web")
    n = 3000
    for k in range(n):  # job k needs k + 1 core-s; all arrive at 0
        wl.submit(Job(float(k + 1), 1.0))
    live = [e for e in host.cpu._heap if e[1] == FINISH and e[3].version == e[2]]
    assert wl.in_flight == n and len(live) == 1  # the rest are superseded, left stale
    # job k is done once each job still there has had k + 1 core-s: between the
    # (i-1)-th and the i-th completion, n - i jobs share the core for n - i seconds
    host.finalize(1e9)
    got = finishes(wl)
    want = {k: float(sum(n - i for i in range(k + 1))) for k in range(0, n, 499)}
    for k, t in want.items():
        assert got[k] == pytest.approx(t, rel=1e-12)
    assert len(got) == n and wl.in_flight == 0
