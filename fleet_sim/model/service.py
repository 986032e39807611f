"""A service: one job stream behind a load balancer, routed to healthy replicas
(docs/model.md §3.4).

A :class:`Service` draws one Poisson stream of requests (jobs) at the service's
total rate and routes each to one of the replicas it was last told are healthy
(:meth:`Service.set_replicas`). Routing:

- ``random`` (by weight) and ``round-robin`` do not depend on the replicas'
  state, so they must not cost the hosts' lazy fast path (see
  :mod:`fleet_sim.model.scheduler`): the stream is *thinned* into one feed per
  replica, which its host fires by itself. Arrivals are assigned in stream order
  as the feeds need them (``random``: each to replica i with probability
  w_i / Σw, so each replica sees a Poisson stream of rate λ·w_i/Σw;
  ``round-robin``: in turn). When the set of healthy replicas changes, every
  arrival not yet delivered is taken back and assigned again among the new set.
- ``least-outstanding`` (fewest requests in flight; ties drawn at random) and
  ``power-of-two`` (of two replicas drawn at random, the one with fewer in
  flight) depend on the replicas' state at each arrival: a SimPy process brings
  the hosts it looks at up to the arrival time.

A request that finds no healthy replica fails at once (the balancer answers an
error). A request lost in flight with its replica (crash, OOM kill, stop) fails,
or with ``retry`` is sent again, from scratch, to a healthy replica (same id and
arrival time). Every request therefore ends as one row of the ``jobs`` table:
``finished``, ``failed`` or ``unfinished`` at the end of the run.

Streams: ``workload.<service>.<workload>.arrivals`` and ``.sizes`` (the same names
a one-replica app's own workload uses), ``.routing`` for the balancer's draws.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np
import simpy

from fleet_sim.model.distributions import Distribution
from fleet_sim.model.jobs import FAILED, JOB_COLUMNS, Job, JobWorkload, PoissonJobs
from fleet_sim.model.protocols import Recorder
from fleet_sim.numerics.fairshare import INF

RANDOM, ROUND_ROBIN, LEAST_OUTSTANDING, POWER_OF_TWO = (
    "random", "round-robin", "least-outstanding", "power-of-two")
ROUTINGS = (RANDOM, ROUND_ROBIN, LEAST_OUTSTANDING, POWER_OF_TWO)
#: routings that look at the replicas' state (requests in flight) at each arrival
STATEFUL = frozenset({LEAST_OUTSTANDING, POWER_OF_TWO})

#: an arrival of the service's stream: (time s, job id, work core-s)
Arrival = tuple[float, int, float]


class _ReplicaFeed:
    """The part of a service's stream routed to one replica; its host fires it."""

    __slots__ = ("pending", "queue", "service", "stopped", "workload")

    def __init__(self, service: Service, workload: JobWorkload):
        self.service = service
        self.workload = workload
        self.queue: deque[Arrival] = deque()
        self.pending: Arrival | None = None
        self.stopped = False

    def next_time(self) -> float | None:
        """Take the next arrival routed here as pending; its time, or None."""
        if not self.queue:
            self.service._fill(self)
        self.pending = self.queue.popleft() if self.queue else None
        return None if self.pending is None else self.pending[0]

    def fire(self, sched, t: float) -> float | None:
        if self.stopped:
            return None
        _, job_id, work = self.pending  # type: ignore[misc]
        self.workload._submit(Job(work, self.service.max_cores, job_id, t))
        return self.next_time()


class Service:
    """One job workload of a service: ``rate_per_s`` requests per second in
    ``[t_start, t_end)``, each of ``work`` core-s on at most ``max_cores`` cores,
    routed by ``routing`` (one of :data:`ROUTINGS`) to the healthy replicas.

    ``name``: the workload's name in the ``jobs`` table (``<service>.<workload>``);
    ``retry``: send requests lost with their replica to another one; ``recorder``
    writes the rows of requests that found no replica.
    """

    def __init__(self, env: simpy.Environment, name: str, rate_per_s: float,
                 work: Distribution, max_cores: float, routing: str,
                 arrivals_rng: np.random.Generator, sizes_rng: np.random.Generator,
                 routing_rng: np.random.Generator, *, t_start: float = 0.0,
                 t_end: float = INF, retry: bool = False, recorder: Recorder | None = None):
        if routing not in ROUTINGS:
            raise ValueError(f"service {name!r}: unknown routing {routing!r}; valid: "
                             f"{', '.join(ROUTINGS)}")
        self.env = env
        self.name = name
        self.max_cores = float(max_cores)
        self.routing = routing
        self.retry = retry
        self.rng = routing_rng
        self._stream = PoissonJobs(rate_per_s, work, max_cores, arrivals_rng, sizes_rng,
                                   max(t_start, env.now), t_end).arrivals()
        self._next_id = 0
        self._backlog: deque[Arrival] = deque()  # drawn, not yet routed (stream order)
        self._replicas: list[JobWorkload] = []
        self._cum_weights = np.zeros(0)
        self._feeds: dict[JobWorkload, _ReplicaFeed] = {}
        self._choices: Iterator[int] = iter(())
        self._turn = 0
        self._generation = 0
        self._row = recorder.columns("jobs", JOB_COLUMNS) if recorder is not None else None
        # no replica is healthy yet: until one is, requests fail
        env.process(self._dispatch() if routing in STATEFUL else self._reject(0))

    # ------------------------------------------------------------------ the stream
    def _peek(self) -> Arrival | None:
        """The next arrival not yet routed (None when the stream has ended)."""
        if not self._backlog:
            nxt = next(self._stream, None)
            if nxt is None:
                return None
            self._backlog.append((nxt[0], self._next_id, nxt[1]))
            self._next_id += 1
        return self._backlog[0]

    def _take(self) -> Arrival | None:
        arrival = self._peek()
        if arrival is not None:
            self._backlog.popleft()
        return arrival

    # ------------------------------------------------------------------ replicas
    def set_replicas(self, healthy: Sequence[tuple[JobWorkload, float]]) -> None:
        """From now on route to ``healthy``: (replica's workload, weight > 0) pairs in
        a fixed order. Nothing happens if the set is the one routed to already."""
        replicas = [wl for wl, _ in healthy]
        if replicas == self._replicas:
            return
        for wl in self._feeds:
            wl.host.sync()  # what arrived up to now goes to the old set
        self._generation += 1
        self._replicas = replicas
        weights = np.array([w for _, w in healthy], dtype=float)
        self._cum_weights = np.cumsum(weights / weights.sum()) if len(weights) else weights
        self._choices = iter(())
        for wl in replicas:
            wl.on_lost = self.lost
        if self.routing in STATEFUL:
            return
        self._resplit()

    def _resplit(self) -> None:
        """Take back every arrival routed but not yet delivered; route afresh."""
        taken: list[Arrival] = list(self._backlog)
        for feed in self._feeds.values():
            feed.stopped = True
            if feed.pending is not None:
                taken.append(feed.pending)
            taken.extend(feed.queue)
        self._feeds = {}
        taken.sort(key=lambda a: a[1])  # ids follow the stream's order
        self._backlog = deque(taken)
        if not self._replicas:
            self.env.process(self._reject(self._generation))
            return
        now = self.env.now
        while (a := self._peek()) is not None and a[0] < now:
            self._fail_unrouted(self._take())  # type: ignore[arg-type]
        for wl in self._replicas:
            self._feeds[wl] = _ReplicaFeed(self, wl)
        for wl, feed in self._feeds.items():
            t0 = feed.next_time()
            if t0 is not None:
                wl.host.cpu.add_feed(feed, t0)
                wl.host.woke()

    def _fill(self, feed: _ReplicaFeed) -> None:
        """Route arrivals in stream order until one reaches ``feed`` (or the stream ends)."""
        feeds, replicas = self._feeds, self._replicas
        while not feed.queue:
            arrival = self._take()
            if arrival is None:
                return
            feeds[replicas[self._pick_blind()]].queue.append(arrival)

    def _pick_blind(self) -> int:
        """The replica index of the next arrival under state-independent routing."""
        n = len(self._replicas)
        if self.routing == ROUND_ROBIN:
            i = self._turn % n
            self._turn = i + 1
            return i
        i = next(self._choices, None)
        if i is None:
            draws = np.searchsorted(self._cum_weights, self.rng.random(PoissonJobs.CHUNK),
                                    side="right")
            self._choices = iter(np.minimum(draws, n - 1).tolist())
            i = next(self._choices)
        return i

    def _pick_by_state(self) -> JobWorkload | None:
        """The replica for a request now (stateful routing), or None if none is healthy."""
        replicas = self._replicas
        n = len(replicas)
        if n == 0:
            return None
        if n == 1:
            return replicas[0]
        if self.routing == POWER_OF_TWO:
            a, b = self.rng.choice(n, size=2, replace=False).tolist()
            return replicas[a] if _in_flight(replicas[a]) <= _in_flight(replicas[b]) \
                else replicas[b]
        counts = [_in_flight(wl) for wl in replicas]
        least = min(counts)
        ties = [i for i, c in enumerate(counts) if c == least]
        return replicas[ties[0] if len(ties) == 1 else ties[int(self.rng.integers(len(ties)))]]

    def _pick_now(self) -> JobWorkload | None:
        """A healthy replica for a request sent now (a retry), or None."""
        if not self._replicas:
            return None
        if self.routing in STATEFUL:
            return self._pick_by_state()
        return self._replicas[self._pick_blind()]

    # ------------------------------------------------------------------ processes
    def _dispatch(self):
        """Stateful routing: route each arrival at its time, looking at the replicas."""
        env = self.env
        while (arrival := self._take()) is not None:
            t, job_id, work = arrival
            if t > env.now:
                yield env.timeout(t - env.now)
            wl = self._pick_by_state()
            if wl is None:
                self._fail_unrouted(arrival)
            else:
                wl.submit(Job(work, self.max_cores, job_id, t))

    def _reject(self, generation: int):
        """No healthy replica: each arrival fails at its time until one comes back."""
        env = self.env
        while generation == self._generation and (a := self._peek()) is not None:
            if a[0] > env.now:
                yield env.timeout(a[0] - env.now)
                continue
            self._fail_unrouted(self._take())  # type: ignore[arg-type]

    # ------------------------------------------------------------------ failures
    def _fail_unrouted(self, arrival: Arrival) -> None:
        """A request that found no healthy replica: one ``failed`` row."""
        if self._row is not None:
            t, job_id, work = arrival
            self._row(job_id, self.name, "", t, math.nan, math.nan, work, self.max_cores,
                      "", FAILED)

    def lost(self, jobs: list[Job]) -> None:
        """Requests lost in flight with their replica: failed, or with ``retry`` sent
        again to a healthy replica (failed if there is none)."""
        for job in jobs:
            wl = self._pick_now() if self.retry else None
            if wl is None:
                job.workload.host.record_job(job, FAILED)  # type: ignore[union-attr]
            else:
                wl.submit(Job(job.work_core_s, job.max_cores, job.job_id, job.arrival))


def _in_flight(wl: JobWorkload) -> int:
    """Requests in flight on a replica now (brings its host up to now)."""
    wl.host.sync()
    return wl.in_flight
