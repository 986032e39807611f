"""An app's workloads as *processes* below a parent CPU node, and the controls of a
node on its host's scheduler (docs/model.md §2).

:func:`build_workload` makes an app's workload a process: processes get Linux CFS
per-thread weights (:func:`cfs_weight`) and draw from the named streams
``workload.<app>.<wl>.arrivals|sizes|spikes``, so every mode sees the same arrivals
and spikes (common random numbers). A workload exists from its instance's admission
on but is *held* (cap 0) until the instance runs: jobs that arrive while a VM boots
or a container restarts queue, and start later (``start > arrival``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from fleet_sim.hosting.specs import AppSpec, JobsSpec, WorkloadSpec
from fleet_sim.model.cputree import CpuNode
from fleet_sim.model.demand import DemandWorkload
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import JobWorkload, PoissonJobs
from fleet_sim.rng import Streams


def cfs_weight(threads: float, demand_cores: float) -> float:
    """Linux CFS weight of a process on a shared kernel: its runnable threads
    (⌈demand⌉), at most its ``threads``, at least 1 (docs/model.md §2)."""
    return max(1.0, min(float(threads), float(math.ceil(demand_cores - 1e-9))))


class _ThreadWeighted:
    """Mixin: the node's weight is :func:`cfs_weight` of its threads and raw demand.

    The scheduler reads ``weight`` whenever it re-shares the parent; the raw
    demand it reads is already updated then, so the weight is always current.
    """

    __slots__ = ()

    @property
    def weight(self) -> float:
        return cfs_weight(self.threads, self.raw)  # type: ignore[attr-defined]

    @weight.setter
    def weight(self, _value: float) -> None:
        """Derived from the demand: a weight set from outside is ignored."""


class _StoppableJobs(PoissonJobs):
    """Poisson arrivals that end for good once ``stopped`` (the instance is gone)."""

    stopped = False

    def fire(self, sched, t: float) -> float | None:
        if self.stopped:
            return None
        return super().fire(sched, t)


class ProcessJobs(_ThreadWeighted, JobWorkload):
    """A job workload run by one process of ``threads`` threads (CFS weighted)."""

    __slots__ = ("feed", "threads")

    def __init__(self, host: Host, name: str, threads: int, parent: CpuNode, cap: float,
                 keep_jobs: bool, instance: str):
        self.threads = threads
        self.feed: _StoppableJobs | None = None
        super().__init__(host, name, parent=parent, cap=cap, keep_jobs=keep_jobs,
                         instance=instance)

    def stop_feeds(self) -> None:
        if self.feed is not None:
            self.feed.stopped = True


class ProcessDemand(_ThreadWeighted, DemandWorkload):
    """A demand workload run by one process of ``threads`` threads (CFS weighted)."""

    __slots__ = ("stopped", "threads")

    def __init__(self, host: Host, name: str, profile, threads: int, parent: CpuNode,
                 cap: float, instance: str):
        self.threads = threads
        self.stopped = False
        super().__init__(host, name, profile, parent=parent, cap=cap, instance=instance)

    def fire(self, sched, t: float) -> float | None:
        if self.stopped:
            return None
        return super().fire(sched, t)

    def stop_feeds(self) -> None:
        self.stopped = True


ProcessWorkload = ProcessJobs | ProcessDemand


def build_workload(host: Host, app: AppSpec, spec: WorkloadSpec, parent: CpuNode,
                   streams: Streams, *, instance: str = "", held: bool = True,
                   keep_jobs: bool = False) -> ProcessWorkload:
    """Create ``app``'s workload ``spec`` as a process below ``parent`` and start its feed.

    Draws from ``workload.<app>.<wl>.arrivals`` and ``.sizes`` (jobs) or
    ``.spikes`` (spiky demand). ``held``: capped at 0 cores until released with
    ``set_limits(host, wl, cap=app.threads)``; otherwise capped at ``app.threads``.
    """
    base = f"workload.{app.name}.{spec.name}"
    name = f"{app.name}.{spec.name}"
    cap = 0.0 if held else float(app.threads)
    if isinstance(spec, JobsSpec):
        wl = ProcessJobs(host, name, app.threads, parent, cap, keep_jobs, instance)
        if spec.service:  # its load balancer feeds it
            wl.label = f"{spec.service}.{spec.name}"
            return wl
        feed = _StoppableJobs(spec.rate_per_s, spec.work, spec.max_cores,
                              streams.get(base + ".arrivals"), streams.get(base + ".sizes"),
                              t_start=max(spec.t_start_s, host.env.now), t_end=spec.t_end_s)
        wl.feed = feed
        wl.add_feed(feed)
        return wl
    dwl = ProcessDemand(host, name, spec.profile(streams.get(base + ".spikes")), app.threads,
                        parent, cap, instance)
    dwl.start()
    return dwl


def set_limits(host: Host, node: CpuNode, cap: float | None = None,
               weight: float | None = None) -> None:
    """Change ``node``'s cap/weight now (brings the host's lazy scheduler to now first)."""
    host.sync()
    host.cpu.set_limits(node, cap=cap, weight=weight)
    host.woke()




def watch_node(host: Host, node: CpuNode, fn: Callable[[], None]) -> None:
    """Call ``fn()`` inside the scheduler whenever ``node``'s demand or allocation changes.

    ``fn`` must not change the tree, only register scheduler feeds (see
    :meth:`fleet_sim.model.scheduler.HostCpuScheduler.watch`).
    """
    host.cpu.watch(node, fn)


def unwatch_node(host: Host, node: CpuNode) -> None:
    """Stop calling the watcher of ``node``."""
    host.cpu.unwatch(node)
