"""The scheduler's and the quota controller's shortcuts give the long way's answers.

- A cap change re-shares only what it affects: after every change the allocation
  equals a from-scratch ``allocate_tree``, and every recorded node's last row is
  its current demand and allocation (rows are written only for nodes that moved).
- CFS periods that cannot throttle roll over without events: ``cpu.stat`` and the
  CPU used equal a period-by-period oracle written here from the kernel's rules.
"""

from __future__ import annotations

import math

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.hosting.containers import CfsBandwidth
from fleet_sim.model.cputree import CpuNode
from fleet_sim.model.demand import DemandWorkload
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import Job, JobWorkload
from fleet_sim.numerics.fairshare import allocate_tree
from fleet_sim.results.recorder import ChangePointRecorder

CAPS = [math.inf, 0.0, 0.5, 1.0, 2.0, 3.5]

steps = st.lists(
    st.tuples(
        st.sampled_from(["job", "cap", "wait"]),
        st.integers(0, 11),                          # node or workload index (mod n)
        st.sampled_from([0.5, 1.0, 2.0, 4.0]),       # job's max_cores
        st.sampled_from(CAPS),                       # a node's new cap
        st.floats(0.01, 3.0),                        # job's work (core-s) or wait (s)
    ),
    min_size=1, max_size=30,
)


def check(host: Host) -> None:
    leaves = [(leaf, leaf.alloc) for leaf in host.root.leaves() if leaf.is_job]
    recorded = []
    stack = [host.root]
    while stack:
        n = stack.pop()
        if n.table is not None:
            recorded.append(n)
        stack.extend(c for c in n.children if not c.is_job)
    for n in recorded:  # the last row written is the node's current state
        last = n.last if n.last is not None else (0.0, 0.0)
        assert last[:2] == (n.raw, n.alloc), n
    allocate_tree(host.root, host.cpu.capacity)  # the reference, from scratch
    for leaf, alloc in leaves:
        assert math.isclose(alloc, leaf.alloc, rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(leaf.rate, alloc, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=120, deadline=None)
@given(st.sampled_from([1.0, 3.0, 8.0]), st.integers(1, 3), steps)
def test_cap_changes_re_share_exactly_what_a_from_scratch_allocation_gives(cores, n_nodes,
                                                                           script):
    env = simpy.Environment()
    host = Host(env, "h", cores=cores, recorder=ChangePointRecorder(["workloads", "instances"]))
    nodes, workloads = [], []
    for i in range(n_nodes):
        node = host.attach(CpuNode(f"n{i}", cap=2.0, table="instances"))
        nodes.append(node)
        for k in range(2):
            workloads.append(JobWorkload(host, f"n{i}.w{k}", parent=node, weight=1 + k))
    inner = host.cpu.on_job_done

    def checked(job):
        inner(job)
        check(host)

    host.cpu.on_job_done = checked

    def drive():
        for kind, idx, max_cores, cap, x in script:
            if kind == "job":
                workloads[idx % len(workloads)].submit(Job(x, max_cores))
            elif kind == "cap":
                host.sync()
                host.cpu.set_limits(nodes[idx % len(nodes)], cap=cap)
            else:
                yield env.timeout(x)
            check(host)
        for node in nodes:  # release every cap so that all jobs finish
            host.sync()
            host.cpu.set_limits(node, cap=math.inf)

    env.process(drive())
    env.run()
    host.finalize(env.now + 1e4)
    check(host)
    assert not [leaf for leaf in host.root.leaves() if leaf.is_job]


# ---------------------------------------------------------------- CFS bandwidth
PERIOD_S = 0.1
QUOTA_CORE_S = 0.2  # 2 cores
OPEN_CAP = 8.0


class Steps:
    """A demand profile of given (t, cores) steps."""

    def __init__(self, steps: list[tuple[float, float]]):
        self._steps = steps

    def steps(self):
        return iter(self._steps)


def oracle(profile: list[tuple[float, float]], horizon: float) -> tuple[int, int, float, float]:
    """(nr_periods, nr_throttled, throttled_s, used core-s) by walking every period.

    Kernel rules: each period of the grid gives ``QUOTA_CORE_S``; the cgroup runs at
    min(demand, OPEN_CAP) until the period's quota is spent, then is throttled until
    the period ends. A period counts if the cgroup was busy in it; a period that ends
    idle stops the timer, and the first demand after restarts it on the grid with the
    whole quota of that period.
    """
    changes = [*profile[1:], (math.inf, 0.0)]
    demand = profile[0][1]
    t, k, used, total = 0.0, 0, 0.0, 0.0
    periods = throttles = 0
    throttled_s = 0.0
    throttled = dormant = False
    active = demand > 0
    i = 0
    while t < horizon:
        rate = 0.0 if throttled or dormant else min(demand, OPEN_CAP)
        end = math.inf if dormant else (k + 1) * PERIOD_S
        t_out = t + (QUOTA_CORE_S - used) / rate if rate > 0 else math.inf
        t_next = min(changes[i][0], end, t_out, horizon)
        used += rate * (t_next - t)
        total += rate * (t_next - t)
        if throttled:
            throttled_s += t_next - t
        t = t_next
        if t >= horizon:
            break
        if t == end:  # the quota running out just then throttles nothing
            throttled = False
            periods += active
            if demand > 0:
                k, used, active = k + 1, 0.0, True
            else:
                dormant = True
        elif t == t_out:
            throttled = True
            throttles += 1
        else:
            demand = changes[i][1]
            i += 1
            if demand > 0:
                if dormant:
                    k, used, dormant = math.floor(t / PERIOD_S), 0.0, False
                active = True
    return periods, throttles, throttled_s, total


# demand steps strictly inside periods, at offsets that make no ties (a change, or the
# quota running out, exactly at a period end is decided by rounding)
step_list = st.lists(
    st.tuples(st.integers(0, 40), st.sampled_from([0.137, 0.291, 0.4613, 0.6181, 0.8527]),
              st.sampled_from([0.0, 0.5, 1.0, 1.5, 3.0, 5.0, 12.0])),
    min_size=0, max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([0.0, 1.0, 1.5, 12.0]), step_list)
def test_rolling_cfs_periods_equal_a_period_by_period_oracle(first, raw_steps):
    times = sorted({(k + f) * PERIOD_S for k, f, _ in raw_steps})
    cores = {(k + f) * PERIOD_S: c for k, f, c in raw_steps}
    profile = [(0.0, first), *((t, cores[t]) for t in times)]
    horizon = 4.25
    env = simpy.Environment()
    host = Host(env, "h", cores=64)
    node = host.attach(CpuNode("c", cap=OPEN_CAP))
    DemandWorkload(host, "c.cpu", Steps(profile), parent=node).start()
    bw = CfsBandwidth(host, node, QUOTA_CORE_S, PERIOD_S, OPEN_CAP)
    bw.start()
    env.run(until=horizon)
    host.finalize(horizon)
    periods, throttles, throttled_s, used = oracle(profile, horizon)
    stat = bw.stat(horizon)
    assert (stat["nr_periods"], stat["nr_throttled"]) == (periods, throttles)
    assert math.isclose(stat["throttled_s"], throttled_s, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(host.cpu.usage_core_s(node), used, rel_tol=1e-9, abs_tol=1e-9)


def test_a_steady_container_under_its_quota_costs_no_period_events():
    env = simpy.Environment()
    host = Host(env, "h", cores=8)
    node = host.attach(CpuNode("c", cap=OPEN_CAP))
    DemandWorkload(host, "c.cpu", Steps([(0.0, 1.0)]), parent=node).start()
    bw = CfsBandwidth(host, node, QUOTA_CORE_S, PERIOD_S, OPEN_CAP)
    bw.start()
    host.finalize(3600.0)
    assert host.cpu.events <= 2
    assert bw.stat()["nr_periods"] == 36_000
    assert bw.stat()["nr_throttled"] == 0
