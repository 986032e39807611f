"""Jobs and job workloads (docs/model.md §3).

A ``JobWorkload`` is a node of a host's CPU tree; its jobs are leaves below it, so
they share the workload's allocation by max-min (each job wants ``max_cores``).
Nothing is lost: the figures of merit are response time and slowdown.

Arrivals come either from outside (``submit`` at the current SimPy time) or from
*feeds* the host's scheduler fires by itself: ``PoissonJobs`` (open arrivals; also
used for spike bursts) and ``TraceJobs`` (a replayed job trace).
"""

from __future__ import annotations

import heapq
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import numpy as np

from fleet_sim.model.cputree import WORKLOADS, CpuNode
from fleet_sim.model.distributions import Distribution, Scaled
from fleet_sim.numerics.fairshare import INF

JOB_COLUMNS = ("job_id", "workload", "host", "arrival", "start", "finish", "work_core_s",
               "max_cores", "replica", "outcome")
#: how a job ended: ran to completion, lost with the replica it ran on, or still open
#: at the end of the run
FINISHED, FAILED, UNFINISHED = "finished", "failed", "unfinished"


class Job:
    """A piece of work: ``work_core_s`` core-seconds, running on at most ``max_cores``.

    While it runs it is one of the jobs of a :class:`JobPool` in a host's CPU tree,
    which gives it its share: ``alloc`` (cores) and ``rate`` (core-s of work per s)."""

    __slots__ = ("arrival", "finish", "job_id", "max_cores", "pool", "rem", "start", "vf",
                 "work_core_s", "workload")
    is_job = True

    def __init__(self, work_core_s: float, max_cores: float = 1.0, job_id: int = -1,
                 arrival: float | None = None):
        if work_core_s < 0 or not max_cores > 0:
            raise ValueError(f"need work_core_s >= 0 and max_cores > 0, got "
                             f"{work_core_s!r}, {max_cores!r}")
        self.work_core_s = float(work_core_s)
        self.max_cores = float(max_cores)
        self.job_id = job_id
        self.arrival = arrival
        self.start: float | None = None
        self.finish: float | None = None
        self.rem = self.work_core_s  # work left when it left its pool (core-s)
        self.vf = 0.0  # its pool's virtual time at which it is done
        self.pool: JobPool | None = None
        self.workload: JobWorkload | None = None

    @property
    def rate(self) -> float:
        """Work done per second now (core-s/s; 0 outside a pool)."""
        return self.pool.jrate if self.pool is not None else 0.0

    @property
    def alloc(self) -> float:
        """Cores it gets now (0 outside a pool)."""
        pool = self.pool
        return pool.alloc / pool.n if pool is not None and pool.n else 0.0

    def __repr__(self) -> str:
        return f"Job({self.job_id}, work={self.work_core_s:g}, max_cores={self.max_cores:g})"

    @property
    def response_time_s(self) -> float:
        """finish − arrival (NaN while unfinished)."""
        if self.finish is None or self.arrival is None:
            return math.nan
        return self.finish - self.arrival


class JobPool(CpuNode):
    """The running jobs of one ``max_cores`` below one node: a leaf of the CPU tree.

    Such jobs are identical leaves (weight 1, no cap of their own, each wanting
    ``max_cores``), so max-min gives each the same share, and ``n`` of them get
    exactly what one leaf of weight ``n`` wanting ``n × max_cores`` gets. The pool is
    that leaf; its jobs progress on one *virtual clock* ``vt`` (core-s of work done
    per job since the pool was last empty, advancing at ``jrate`` = its rate ÷ ``n``), and a
    job is done when ``vt`` reaches its ``vf`` (``vt`` at its start + its work). A
    change of the pool's share therefore costs O(1), and an arrival or completion
    O(log n), however many jobs share it (a processor-sharing queue of thousands).
    The scheduler keeps ``rate``, ``jrate``, ``t0`` (when ``vt`` was last settled)
    and ``version`` (of its pending completion; -1: none).
    """

    __slots__ = ("heap", "jrate", "max_cores", "n", "rate", "t0", "version", "vt", "waiting")
    is_pool = True
    is_leaf = True

    def __init__(self, max_cores: float):
        super().__init__(f"jobs<={max_cores:g}")
        self.max_cores = max_cores
        self.heap: list[tuple[float, int, Job]] = []  # (vf, arrival order, job)
        self.n = 0
        self.vt = self.t0 = self.rate = self.jrate = 0.0
        self.version = -1
        self.waiting: list[Job] = []  # jobs that have not had CPU yet

    @property  # type: ignore[override]
    def weight(self) -> float:
        """One per job: the pool shares as its jobs would, one by one."""
        return float(self.n) if self.n else 1.0

    @weight.setter
    def weight(self, _value: float) -> None:
        """Derived from ``n``."""

    def jobs(self) -> list[Job]:
        """Its jobs, in no particular order."""
        return [entry[2] for entry in self.heap]

    def remaining(self, job: Job, now: float) -> float:
        """Work ``job`` has left at ``now`` (core-s)."""
        return max(0.0, job.vf - self.vt - self.jrate * (now - self.t0))

    def settle(self, now: float) -> None:
        """Advance the virtual clock to ``now`` at the current per-job rate."""
        if self.jrate:
            self.vt += self.jrate * (now - self.t0)
        self.t0 = now

    def push(self, job: Job, seq: int) -> None:
        """Add ``job`` (the clock settled now) with ``job.rem`` core-s to do."""
        job.vf = self.vt + job.rem
        job.pool = self
        heapq.heappush(self.heap, (job.vf, seq, job))
        self.n += 1

    def pop(self) -> Job:
        """Take the job that finishes first (the clock settled now)."""
        job = heapq.heappop(self.heap)[2]
        self.n -= 1
        if not self.n:
            self.vt = 0.0  # empty: the clock starts again (it stays small, so exact)
        job.pool = None
        job.rem = 0.0
        return job

    def take_all(self) -> list[Job]:
        """Take every job out (the clock settled now), each keeping the work it has left
        in ``rem``."""
        out = []
        for vf, _, job in self.heap:
            job.rem = max(0.0, vf - self.vt)
            job.pool = None
            out.append(job)
        self.heap.clear()
        self.waiting.clear()
        self.n = 0
        self.vt = 0.0
        return out


class JobWorkload(CpuNode):
    """A stream of jobs sharing one allocation on a host (a node in its CPU tree).

    Parameters: ``host`` (a :class:`fleet_sim.model.host.Host`), ``name``,
    ``parent`` node (default the host's root), ``weight``, ``cap`` (cores).
    Finished jobs are kept in ``finished`` only if ``keep_jobs`` (tests); the
    ``jobs`` table is the record for large runs. ``attach=False`` leaves it off the
    host's tree (hang it there later with ``host.attach``). ``label``: its name in
    the ``jobs`` table (default ``name``; a service's workload is one name over all
    its replicas). ``on_lost(jobs)``: who takes the jobs lost when its replica stops
    (default: each is recorded ``failed``).
    """

    __slots__ = ("_next_id", "feeds", "finished", "host", "keep_jobs", "label", "on_lost")

    def __init__(self, host, name: str, parent: CpuNode | None = None, weight: float = 1.0,
                 cap: float = INF, keep_jobs: bool = True, instance: str = "",
                 attach: bool = True):
        super().__init__(name, weight=weight, cap=cap, table=WORKLOADS, instance=instance)
        self.host = host
        self.keep_jobs = keep_jobs
        self.finished: list[Job] = []
        self.feeds: list[JobFeed] = []
        self._next_id = 0
        self.label = name
        self.on_lost: Callable[[list[Job]], None] | None = None
        if attach:
            host.attach(self, parent)

    def new_id(self) -> int:
        """The next job id of this workload (0, 1, 2, …)."""
        self._next_id += 1
        return self._next_id - 1

    def submit(self, job: Job) -> Job:
        """Start ``job`` now (at the host's current time)."""
        self.host.sync()
        self._submit(job)
        self.host.woke()
        return job

    def _submit(self, job: Job) -> None:
        job.workload = self
        if job.job_id < 0:
            job.job_id = self._next_id
            self._next_id += 1
        self.host.cpu.submit(job, self)

    @property
    def in_flight(self) -> int:
        """Jobs running or queued here now."""
        return sum(c.n for c in self.children if c.is_pool)  # type: ignore[attr-defined]

    def jobs(self) -> list[Job]:
        """Its jobs in flight now, in no particular order."""
        return [job for pool in self.children if pool.is_pool  # type: ignore[attr-defined]
                for job in pool.jobs()]  # type: ignore[attr-defined]

    def take_jobs(self) -> list[Job]:
        """Take its jobs in flight off it (it is off its host), each keeping the work it
        has left; its pools stay, empty."""
        return [job for pool in self.children if pool.is_pool  # type: ignore[attr-defined]
                for job in pool.take_all()]  # type: ignore[attr-defined]

    def follow(self, previous: JobWorkload) -> None:
        """Number its jobs on from ``previous``'s (the same replica's workload in the
        instance it replaces), so job ids stay unique within the workload's name."""
        self._next_id = previous._next_id

    def lose(self, jobs: list[Job]) -> None:
        """``jobs`` (taken off this workload) are lost now: hand them to ``on_lost``,
        else record each as ``failed``."""
        if self.on_lost is not None:
            self.on_lost(jobs)
        else:
            for job in jobs:
                self.host.record_job(job, FAILED)

    def add_feed(self, feed: JobFeed) -> None:
        """Let ``feed`` deliver jobs to this workload from its first arrival on."""
        self.feeds.append(feed)
        t0 = feed.first(self)
        if t0 is not None:
            self.host.cpu.add_feed(feed, t0)
            self.host.woke()


class JobFeed(ABC):
    """Base of feeds that deliver jobs from an iterator of (t, work_core_s, max_cores)."""

    def __init__(self) -> None:
        self.workload: JobWorkload | None = None
        self._it: Iterator[tuple[float, float, float, int]] | None = None
        self._pending: tuple[float, float, float, int] | None = None

    @abstractmethod
    def arrivals(self) -> Iterator[tuple[float, float, float, int]]:
        """(t, work_core_s, max_cores, job_id or -1) in non-decreasing t."""

    @property
    def exhausted(self) -> bool:
        """True once every job of the feed has been delivered."""
        return self._it is not None and self._pending is None

    def first(self, workload: JobWorkload) -> float | None:
        self.workload = workload
        self._it = self.arrivals()
        self._pending = next(self._it, None)
        return None if self._pending is None else self._pending[0]

    def fire(self, sched, t: float) -> float | None:
        _, work, cores, job_id = self._pending  # type: ignore[misc]
        self.workload._submit(Job(work, cores, job_id, t))  # type: ignore[union-attr]
        self._pending = next(self._it, None)  # type: ignore[arg-type]
        return None if self._pending is None else self._pending[0]


class PoissonJobs(JobFeed):
    """Open Poisson arrivals of jobs with a size distribution.

    ``rate_per_s`` arrivals per second between ``t_start`` and ``t_end``;
    ``work`` draws each job's core-seconds; ``max_cores`` per job. Draws come
    in chunks from two streams (arrivals and sizes), so the arrival times do not
    depend on the size distribution (common random numbers).
    """

    CHUNK = 32  # draws per numpy call: amortises the call, keeps 20k feeds small

    def __init__(self, rate_per_s: float, work: Distribution, max_cores: float,
                 arrivals_rng: np.random.Generator, sizes_rng: np.random.Generator,
                 t_start: float = 0.0, t_end: float = INF):
        super().__init__()
        if not rate_per_s > 0 or not max_cores > 0:
            raise ValueError("rate_per_s and max_cores must be > 0")
        self.rate_per_s = rate_per_s
        self.work = work
        self.max_cores = max_cores
        self.arrivals_rng = arrivals_rng
        self.sizes_rng = sizes_rng
        self.t_start = t_start
        self.t_end = t_end

    @classmethod
    def bursts(cls, rate_per_s: float, duration_s: Distribution, height_cores: float,
               arrivals_rng: np.random.Generator, sizes_rng: np.random.Generator,
               t_start: float = 0.0, t_end: float = INF) -> PoissonJobs:
        """CPU spikes as burst jobs: each wants ``height_cores`` for a drawn duration (s),
        i.e. work = height × duration core-s."""
        return cls(rate_per_s, Scaled(duration_s, height_cores), height_cores, arrivals_rng,
                   sizes_rng, t_start, t_end)

    def arrivals(self) -> Iterator[tuple[float, float, float, int]]:
        t = self.t_start
        mean_gap = 1.0 / self.rate_per_s
        cores = self.max_cores
        while True:
            gaps = self.arrivals_rng.exponential(mean_gap, self.CHUNK).tolist()
            works = self.work.sample(self.sizes_rng, self.CHUNK).tolist()
            for gap, work in zip(gaps, works, strict=True):
                t += gap
                if t >= self.t_end:
                    return
                yield t, work, cores, -1


class TraceJobs(JobFeed):
    """Jobs replayed from columns (already sorted by time), with their own ids.

    ``times`` (s), ``works`` (core-s), ``max_cores`` (cores) and ``job_ids`` are
    sequences of one length; the feed delivers their rows ``start:stop`` (default
    all), so many feeds can share one set of numpy columns without copying them.
    """

    def __init__(self, times, works, max_cores, job_ids, start: int = 0,
                 stop: int | None = None):
        super().__init__()
        self.columns = tuple(np.ascontiguousarray(c, dtype) for c, dtype in
                             ((times, np.float64), (works, np.float64),
                              (max_cores, np.float64), (job_ids, np.int64)))
        if len({c.shape for c in self.columns}) != 1 or self.columns[0].ndim != 1:
            raise ValueError("times, works, max_cores and job_ids need one length")
        self.start = start
        self.stop = len(self.columns[0]) if stop is None else stop

    def arrivals(self) -> Iterator[tuple[float, float, float, int]]:
        # a memoryview slice copies nothing and yields Python numbers
        return zip(*(memoryview(c)[self.start:self.stop] for c in self.columns), strict=True)
