"""Property tests: the incremental scheduler always equals a from-scratch allocation.

Random trees (caps, weights, overhead scales, reservations) and random job
streams; after every change the allocation the scheduler holds must equal what
``numerics.fairshare.allocate_tree`` computes from scratch, and docs/model.md §2's
invariants must hold.
"""

from __future__ import annotations

import math

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.model.cputree import CpuNode, CpuShare
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import Job, JobWorkload
from fleet_sim.numerics.fairshare import FairNode, allocate_tree, distribute, effective_demand
from fleet_sim.results.recorder import ChangePointRecorder

node_specs = st.lists(
    st.tuples(
        st.sampled_from([math.inf, 0.5, 1.0, 2.0, 3.5]),   # cap
        st.sampled_from([1.0, 2.0, 4.0]),                  # weight
        st.sampled_from([1.0, 1.1, 1.5]),                  # scale
        st.integers(1, 3),                                 # workloads below
    ),
    min_size=1, max_size=4,
)
job_specs = st.lists(
    st.tuples(
        st.floats(0.0, 3.0),                               # gap before arrival, s
        st.integers(0, 11),                                # workload index (mod n)
        st.floats(0.01, 5.0),                              # work, core-s
        st.sampled_from([0.5, 1.0, 2.0, 4.0]),             # max_cores
    ),
    min_size=1, max_size=25,
)


def build(cores, nodes, recorder=None, table=None):
    env = simpy.Environment()
    host = Host(env, "h", cores=cores, recorder=recorder)
    workloads = []
    for i, (cap, weight, scale, n_wl) in enumerate(nodes):
        node = host.attach(CpuNode(f"n{i}", cap=cap, weight=weight, scale=scale, table=table))
        for k in range(n_wl):
            workloads.append(JobWorkload(host, f"n{i}.w{k}", parent=node, weight=1 + k))
    return env, host, workloads


def job_by_job(node, shares, copies=None):
    """A from-scratch copy of ``node``'s tree in which every job is a leaf of its own
    (weight 1, wanting its ``max_cores``), as docs/model.md §2 defines the sharing;
    ``shares`` maps each job to its leaf, ``copies`` (if given) each other node to its copy."""
    copy = FairNode(weight=node.weight, cap=node.cap, floor=node.floor, scale=node.scale,
                    demand=0.0 if node.children or node.is_pool else node.demand)
    if copies is not None:
        copies[node] = copy
    for c in node.children:
        if c.is_pool:  # its jobs, one by one
            for job in c.jobs():
                shares[job] = copy.add(FairNode(demand=job.max_cores))
        else:
            copy.add(job_by_job(c, shares, copies))
    return copy


def check(host):
    sched = host.cpu
    shares = {}
    allocate_tree(job_by_job(host.root, shares), sched.capacity)
    for job, leaf in shares.items():  # a pool gives each job what max-min gives it
        assert math.isclose(job.alloc, leaf.alloc, rel_tol=1e-9, abs_tol=1e-9)
    leaves = [(leaf, leaf.alloc) for leaf in host.root.leaves() if leaf.is_job]
    internal = []
    stack = [host.root]
    while stack:
        n = stack.pop()
        internal.append((n, n.eff))
        stack.extend(c for c in n.children if not c.is_job)
    allocate_tree(host.root, sched.capacity)  # the reference, from scratch
    for leaf, alloc in leaves:
        assert math.isclose(alloc, leaf.alloc, rel_tol=1e-9, abs_tol=1e-9)
        assert alloc <= leaf.max_cores + 1e-9
        assert math.isclose(leaf.rate, alloc * sched.speed, rel_tol=1e-9, abs_tol=1e-12)
    for n, eff in internal:
        assert math.isclose(eff, n.eff, rel_tol=1e-9, abs_tol=1e-9)
        kids = sum(c.alloc for c in n.children)
        assert kids * n.scale <= n.alloc + 1e-9           # children within the parent
        assert n.alloc <= n.cap + 1e-9                     # caps on every path
    used = host.root.alloc
    assert used <= sched.capacity + 1e-9
    # work conservation: nothing idle while some demand is unmet
    assert math.isclose(used, min(sched.capacity, host.root.eff), rel_tol=1e-9, abs_tol=1e-9)


def run(cores, nodes, jobs, recorder=None, checks=True, table=None, checker=None, also=None):
    """Run ``jobs`` on the tree ``nodes`` (its nodes recorded in ``table``), calling
    ``checker`` (default :func:`check`) on the host after every change if ``checks``;
    ``also(env, host)``, if given, is a process of other changes run beside them."""
    checker = checker or check
    env, host, workloads = build(cores, nodes, recorder, table)
    if checks:
        inner = host.cpu.on_job_done

        def checked(job):
            inner(job)
            checker(host)

        host.cpu.on_job_done = checked

    def arrivals():
        for gap, idx, work, max_cores in jobs:
            yield env.timeout(gap)
            workloads[idx % len(workloads)].submit(Job(work, max_cores))
            if checks:
                checker(host)

    env.process(arrivals())
    if also is not None:
        env.process(also(env, host))
    env.run()
    host.finalize(env.now + 1e6)
    return host, workloads


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([1.0, 2.0, 3.0, 8.0]), node_specs, job_specs)
def test_incremental_equals_from_scratch(cores, nodes, jobs):
    host, workloads = run(cores, nodes, jobs)
    done = sum(len(w.finished) for w in workloads)
    assert done == len(jobs)
    # conservation: work delivered = work of finished jobs (all finished)
    work = sum(j.work_core_s for w in workloads for j in w.finished)
    assert math.isclose(host.cpu.delivered_core_s, work, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([1.0, 2.0, 8.0]), node_specs, job_specs)
def test_recording_does_not_change_finish_times(cores, nodes, jobs):
    # recording also keeps every idle-host share and writes rows: it must not move a finish time
    _, plain = run(cores, nodes, jobs, checks=False)
    _, recorded = run(cores, nodes, jobs, recorder=ChangePointRecorder(), checks=False)
    for a, b in zip(plain, recorded, strict=True):
        fa = sorted((j.job_id, j.finish) for j in a.finished)
        fb = sorted((j.job_id, j.finish) for j in b.finished)
        assert [x[0] for x in fa] == [x[0] for x in fb]
        for (_, x), (_, y) in zip(fa, fb, strict=True):
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([1.0, 2.0, 8.0]), node_specs, job_specs, st.floats(0.0, 20.0),
       st.integers(0, 3), st.sampled_from([1.0, 4.0]))
def test_a_subtree_moved_to_another_host_keeps_both_exact(cores, nodes, jobs, move_at, which,
                                                           target_cores):
    # as a VM migrating: a node with its workloads and jobs in flight moves to another
    # host mid-run; both hosts stay equal to a from-scratch allocation after every change
    # (allocations and recorded rows) and every job's work is done exactly once, on one
    # host or the other
    env, host, workloads = build(cores, nodes, ChangePointRecorder(), table="instances")

    def check_both():
        for h in (host, other):
            check(h)
            check_rows(h)

    other = Host(env, "g", cores=target_cores, recorder=ChangePointRecorder())
    for h in (host, other):
        inner = h.cpu.on_job_done

        def checked(job, inner=inner):
            inner(job)
            check_both()
        h.cpu.on_job_done = checked
    node = host.root.children[which % len(host.root.children)]

    def arrivals():
        for gap, idx, work, max_cores in jobs:
            yield env.timeout(gap)
            wl = workloads[idx % len(workloads)]
            wl.submit(Job(work, max_cores))
            check_both()

    def move():
        yield env.timeout(move_at)
        host.move(node, other, other.root)
        check_both()

    env.process(arrivals())
    env.process(move())
    env.run()
    for h in (host, other):
        h.finalize(env.now + 1e6)
    assert node.parent is other.root
    done = [j for w in workloads for j in w.finished]
    assert len(done) == len(jobs)
    delivered = host.cpu.delivered_core_s + other.cpu.delivered_core_s
    assert math.isclose(delivered, sum(j.work_core_s for j in done), rel_tol=1e-9,
                        abs_tol=1e-9)


def check_rows(host):
    """Every recorded node's last row is what a from-scratch allocation gives it now: its
    demand, its allocation, and its unmet demand split by what it would get on an idle
    host (docs/model.md §2.5)."""
    sched = host.cpu
    copies = {}
    root = job_by_job(host.root, {}, copies)
    allocate_tree(root, sched.capacity)
    alloc = {n: c.alloc for n, c in copies.items()}
    distribute(root, effective_demand(root))  # an idle host: every node gets its share
    for n, c in copies.items():
        if n.table not in sched.recorded_tables or n.last is None:
            continue
        want = CpuShare.of(n.raw, alloc[n], c.alloc)
        for got, expected in zip(n.last, want, strict=True):
            assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9), (n.name, n.last,
                                                                              want)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([1.0, 2.0, 3.0, 8.0]), node_specs, job_specs)
def test_recorded_rows_equal_a_from_scratch_allocation(cores, nodes, jobs):
    # the recorded nodes are the workloads and, as instances (a VM, a container), the
    # nodes above them: throttled (own caps) and contention (neighbours) after every change
    _, workloads = run(cores, nodes, jobs, ChangePointRecorder(), table="instances",
                       checker=check_rows)
    assert sum(len(w.finished) for w in workloads) == len(jobs)


limit_edits = st.lists(
    st.tuples(
        st.floats(0.0, 4.0),                               # gap before the edit, s
        st.integers(0, 3),                                 # node index (mod n)
        st.sampled_from([math.inf, 0.0, 0.5, 1.0, 2.5]),   # new cap (0: a quota ran out)
        st.sampled_from([None, 1.0, 3.0]),                 # new weight (None: unchanged)
    ),
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([1.0, 2.0, 8.0]), node_specs, job_specs, limit_edits)
def test_cap_and_weight_edits_keep_allocations_and_rows_exact(cores, nodes, jobs, edits):
    # as a cgroup edit or a CFS quota period: caps and weights of the nodes above the
    # workloads change mid-run; allocations and recorded rows stay equal to a
    # from-scratch computation after every change
    def check_all(host):
        check(host)
        check_rows(host)

    def set_limits(host, node, **limits):
        host.sync()
        host.cpu.set_limits(node, **limits)
        host.woke()
        check_all(host)

    def limits(env, host):
        for gap, idx, cap, weight in edits:
            yield env.timeout(gap)
            set_limits(host, host.root.children[idx % len(host.root.children)], cap=cap,
                       weight=weight)
        yield env.timeout(1.0)
        for node in host.root.children:  # open every cap again, so every job finishes
            set_limits(host, node, cap=math.inf)

    _, workloads = run(cores, nodes, jobs, ChangePointRecorder(), table="instances",
                       checker=check_all, also=limits)
    assert sum(len(w.finished) for w in workloads) == len(jobs)
