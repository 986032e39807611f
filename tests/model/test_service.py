"""A service's one stream routed to its healthy replicas (docs/model.md §3.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from fleet_sim.model.distributions import Deterministic, Exponential
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import FAILED, FINISHED, JobWorkload, PoissonJobs
from fleet_sim.model.service import ROUTINGS, Service
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.rng import Streams

RATE = 50.0
WORK = Exponential(0.01)


def _service(n: int, routing: str, *, seed: int = 1, retry: bool = False,
             work=WORK) -> tuple[simpy.Environment, list[JobWorkload], Service,
                                 ChangePointRecorder]:
    env = simpy.Environment()
    rec = ChangePointRecorder(["jobs"])
    hosts = [Host(env, f"h{i}", cores=4, recorder=rec) for i in range(n)]
    wls = [JobWorkload(h, f"r{i}.w", instance=f"r{i}") for i, h in enumerate(hosts)]
    s = Streams(seed)
    svc = Service(env, "svc.w", RATE, work, 1.0, routing, s.get("a"), s.get("s"),
                  s.get("r"), retry=retry, recorder=rec)
    return env, wls, svc, rec


def _run(env, wls, until: float) -> None:
    env.run(until=until)
    for wl in wls:
        wl.host.finalize(until)


def _jobs(wls) -> dict[int, tuple[str, float]]:
    """job id → (replica, arrival) of every finished job."""
    return {j.job_id: (wl.instance, j.arrival) for wl in wls for j in wl.finished}


def _stream(seed: int, until: float) -> list[float]:
    """The service's arrival times drawn independently from the same streams."""
    s = Streams(seed)
    feed = PoissonJobs(RATE, WORK, 1.0, s.get("a"), s.get("s"), t_end=until)
    return [t for t, *_ in feed.arrivals()]


def test_round_robin_sends_the_kth_request_to_replica_k_mod_n():
    env, wls, svc, _ = _service(3, "round-robin")
    svc.set_replicas([(wl, 1.0) for wl in wls])
    _run(env, wls, 20.0)
    jobs = _jobs(wls)
    arrivals = _stream(1, 20.0)
    assert sorted(jobs) == list(range(len(arrivals)))
    assert all(jobs[k] == (f"r{k % 3}", arrivals[k]) for k in jobs)


def test_state_independent_routing_leaves_the_hosts_lazy():
    """Thinned per-replica feeds run on the hosts' own clocks: until something syncs
    them, no host has moved, whatever the number of requests."""
    env, wls, svc, _ = _service(3, "random")
    svc.set_replicas([(wl, 1.0) for wl in wls])
    env.run(until=100.0)
    assert all(wl.host.cpu.now == 0.0 for wl in wls)
    for wl in wls:
        wl.host.finalize(100.0)
    assert len(_jobs(wls)) == len(_stream(1, 100.0))


def test_random_routing_follows_the_weights():
    env, wls, svc, _ = _service(2, "random")
    svc.set_replicas([(wls[0], 1.0), (wls[1], 3.0)])
    _run(env, wls, 400.0)
    n = [len(wl.finished) for wl in wls]
    total = sum(n)
    # binomial: share of replica 1 is 3/4 within 4 standard deviations
    assert abs(n[1] / total - 0.75) < 4 * math.sqrt(0.75 * 0.25 / total)


def test_a_resplit_moves_only_requests_not_yet_delivered():
    env, wls, svc, _ = _service(3, "random")
    svc.set_replicas([(wl, 1.0) for wl in wls])
    env.run(until=10.0)
    svc.set_replicas([(wls[0], 1.0), (wls[2], 1.0)])
    _run(env, wls, 20.0)
    jobs = _jobs(wls)
    arrivals = _stream(1, 20.0)
    assert sorted(jobs) == list(range(len(arrivals)))  # none lost, none twice
    assert [jobs[k][1] for k in sorted(jobs)] == arrivals
    after = [r for r, t in jobs.values() if t > 10.0]
    before = {r for r, t in jobs.values() if t <= 10.0}
    assert before == {"r0", "r1", "r2"} and set(after) == {"r0", "r2"}


@pytest.mark.parametrize("routing", ROUTINGS)
def test_requests_without_a_healthy_replica_fail_at_once(routing):
    env, wls, svc, rec = _service(2, routing)
    env.run(until=5.0)  # nobody healthy yet
    svc.set_replicas([(wl, 1.0) for wl in wls])
    env.run(until=10.0)
    svc.set_replicas([])
    _run(env, wls, 15.0)
    for wl in wls:  # the rows of the finished ones; none is left in flight
        assert not wl.in_flight
    jobs = rec.data["jobs"]
    arrivals = _stream(1, 15.0)
    outcome = dict(zip(jobs["job_id"], jobs["outcome"], strict=True))
    assert sorted(outcome) == list(range(len(arrivals)))
    for k, t in enumerate(arrivals):
        inside = 5.0 < t <= 10.0
        assert outcome[k] == (FINISHED if inside else FAILED), (k, t)
    failed = [r for r, o in zip(jobs["replica"], jobs["outcome"], strict=True) if o == FAILED]
    assert set(failed) == {""}


def test_least_outstanding_sends_each_request_to_the_emptiest_replica():
    """Long requests (100 core-s) never finish within the run: the k-th goes where
    fewest are in flight, so the replicas fill up evenly, one at a time."""
    env, wls, svc, _ = _service(3, "least-outstanding", work=Deterministic(100.0))
    svc.set_replicas([(wl, 1.0) for wl in wls])
    env.run(until=2.0)
    for wl in wls:
        wl.host.sync()
    counts = [wl.in_flight for wl in wls]
    assert max(counts) - min(counts) <= 1 and sum(counts) == len(_stream(1, 2.0))


def test_power_of_two_never_picks_the_busier_of_its_two():
    """With two replicas it always compares both: they stay within one request."""
    env, wls, svc, _ = _service(2, "power-of-two", work=Deterministic(100.0))
    svc.set_replicas([(wl, 1.0) for wl in wls])
    env.run(until=3.0)
    for wl in wls:
        wl.host.sync()
    counts = [wl.in_flight for wl in wls]
    assert abs(counts[0] - counts[1]) <= 1 and sum(counts) == len(_stream(1, 3.0))


@pytest.mark.parametrize("retry", [False, True])
def test_requests_lost_with_a_replica_fail_or_are_retried(retry):
    """Requests of 100 core-s in flight on r0 when it is lost: failed, or with retry
    started again on r1 (same id and arrival, from scratch)."""
    env, wls, svc, rec = _service(2, "round-robin", retry=retry, work=Deterministic(100.0))
    svc.set_replicas([(wl, 1.0) for wl in wls])
    env.run(until=1.0)
    svc.set_replicas([(wls[1], 1.0)])
    lost = wls[0].host.detach(wls[0])
    assert lost
    wls[0].lose(lost)
    ids_on_r1 = {j.job_id for j in wls[1].jobs()}
    rows = rec.data["jobs"]
    failed = {k for k, o in zip(rows["job_id"], rows["outcome"], strict=True) if o == FAILED}
    lost_ids = {j.job_id for j in lost}
    if retry:
        assert lost_ids <= ids_on_r1 and not failed
        assert all(j.arrival < 1.0 and j.rem == j.work_core_s
                   for j in wls[1].jobs() if j.job_id in lost_ids)
    else:
        assert failed == lost_ids and not lost_ids & ids_on_r1


def test_unknown_routing_is_refused_with_the_valid_ones():
    env = simpy.Environment()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="random, round-robin"):
        Service(env, "s.w", 1.0, WORK, 1.0, "sticky", rng, rng, rng)
