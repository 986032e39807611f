"""Containers: a runtime whose containers share one kernel (docs/model.md §2, §4, §5).

A :class:`ContainerRuntime` runs on a :class:`~fleet_sim.hosting.kernel.Kernel`,
the host's or a VM's guest. Each :class:`Container` is a cgroup, a node of the
CPU tree (recorded in the ``instances`` table) with the app's processes below:

- ``cpu.weight``: the node's weight (work-conserving shares).
- ``cpu.max`` (quota per period): enforced as the kernel does (``cfs="period"``,
  :class:`CfsBandwidth`): in each CFS period the container runs on as many cores
  as it has busy threads until the quota is spent, then is throttled until the
  period ends. Counters as in ``cpu.stat``: ``nr_periods``, ``nr_throttled``,
  ``throttled_s``. ``cfs="fluid"`` caps it at quota/period instead (cheap, for
  large fleets where period detail does not matter).
- ``cpuset``: exclusive cores, modelled as a reservation = cap of that many cores.
- ``memory.max``: above it the container is OOM-killed and restarted after an
  exponential back-off (Kubernetes CrashLoopBackOff by default).
- An image and a start time: the pull of the layers the host's cache lacks
  (``fetch(container)``, see :mod:`fleet_sim.images.supply`), then a draw of
  ``start_s`` from the stream ``hosting.<container>.start`` (sub-second once the
  image is local). A restart after a kill finds the image cached.
CPU overhead is zero (Felter et al. 2015); the shim's RAM is reserved per container.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

import simpy

from fleet_sim.hosting import defaults
from fleet_sim.hosting.backoff import Backoff
from fleet_sim.hosting.instance import Fetch, Instance, draw_s
from fleet_sim.hosting.kernel import Kernel
from fleet_sim.hosting.processes import unwatch_node, watch_node
from fleet_sim.hosting.specs import AppSpec
from fleet_sim.model.cputree import INSTANCES, CpuNode
from fleet_sim.model.distributions import Distribution, LogNormal
from fleet_sim.model.host import Host
from fleet_sim.model.views import PlacementRequest
from fleet_sim.rng import Streams

CFS_MODES = ("period", "fluid")

#: default start-time distribution of a container whose image is local
CONTAINER_START_S = LogNormal(defaults.CONTAINER_START_MEAN_S, defaults.CONTAINER_START_CV)


@dataclass(frozen=True)
class ContainerParams:
    """Container runtime: ``cpu_ratio`` over CPU requests, ``cfs`` (``"period"`` |
    ``"fluid"``), CFS period (s), start time (s), restart back-off (s), per-container
    RAM overhead and host OS RAM (MiB)."""

    cpu_ratio: float = 1.0
    cfs: str = "period"
    cfs_period_s: float = defaults.CFS_PERIOD_S
    start_s: Distribution = CONTAINER_START_S
    restart_backoff_base_s: float = defaults.RESTART_BACKOFF_BASE_S
    restart_backoff_max_s: float = defaults.RESTART_BACKOFF_MAX_S
    restart_backoff_reset_s: float = defaults.RESTART_BACKOFF_RESET_S
    ram_overhead_mib: float = defaults.CONTAINER_RAM_OVERHEAD_MIB
    host_os_ram_mib: float = defaults.HOST_OS_RAM_MIB

    @property
    def backoff(self) -> Backoff:
        """The restart after an OOM kill (Kubernetes CrashLoopBackOff by default)."""
        return Backoff(self.restart_backoff_base_s, self.restart_backoff_max_s,
                       self.restart_backoff_reset_s)

_END, _EXHAUST = 0, 1


class _Tick:
    """A wake-up of a :class:`CfsBandwidth` on the host scheduler's own clock."""

    __slots__ = ("ctrl", "kind", "token")

    def __init__(self, ctrl: CfsBandwidth, kind: int, token: int):
        self.ctrl, self.kind, self.token = ctrl, kind, token

    def fire(self, sched, t: float) -> None:
        self.ctrl._tick(self.kind, self.token, t)


class CfsBandwidth:
    """``cpu.max`` of one cgroup node enforced per CFS period (Linux CFS bandwidth control).

    ``quota_core_s`` per ``period_s``; ``open_cap`` (cores) is its cap while not
    throttled (its threads, or its cpuset). Periods start at :meth:`start` and
    follow a fixed grid; an idle container's period timer stops and restarts on
    the grid when it becomes busy again, as the kernel's does.

    It lives on the host scheduler's clock, not SimPy's: the scheduler is lazy, so
    a rate change inside it (a job arriving on a neighbour) can happen while SimPy
    is elsewhere. At each change of the node's allocation the scheduler calls
    back (:func:`~fleet_sim.hosting.processes.watch_node`); the controller predicts
    when the quota runs out at the new rate and registers a scheduler feed then.

    Periods in which nothing can happen cost nothing: while the node's allocation
    stays put and spends less than the quota per period (``rate × period_s <
    quota_core_s``, with a relative margin of :data:`ROLL_MARGIN`), or the node is
    idle, the periods roll over without events and are counted when the next change
    (or :meth:`stat`) looks. Events are quota exhaustions and the ends of periods
    that throttled or may throttle; no polling.
    """

    #: rates within this relative distance of quota/period keep one event per period,
    #: so that whether a period throttles is decided there as it would be at its end
    ROLL_MARGIN = 1e-6

    def __init__(self, host: Host, node: CpuNode, quota_core_s: float, period_s: float,
                 open_cap: float):
        if not quota_core_s > 0 or not period_s > 0:
            raise ValueError("cpu.max needs quota_core_s > 0 and period_s > 0")
        self.host = host
        self.node = node
        self.quota_core_s = quota_core_s
        self.period_s = period_s
        self.open_cap = open_cap
        self.nr_periods = 0
        self.nr_throttled = 0
        self.throttled_s = 0.0
        self.throttled = False
        self.running = False
        self._t0 = 0.0
        self._k = 0          # the current period
        self._end = 0.0      # its end, s
        self._end_k = -1     # the period whose end is registered as a feed
        self._used0 = 0.0    # the node's usage at its start, core-s
        self._t_throttle = 0.0
        self._token = 0
        self._active = False
        self._dormant = False
        self._busy = False
        self._rolling = False    # periods roll over without events (see class doc)
        self._rolling_busy = False
        self._meter = (0.0, 0.0, 0.0)  # (used, since, rate) of the node while rolling

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Begin enforcing at the host's current time (the first period starts now)."""
        self.host.sync()
        sched = self.host.cpu
        sched.meter(self.node)
        self._t0 = sched.now
        self.running = True
        watch_node(self.host, self.node, self._changed)
        self._begin(0)
        self.host.woke()

    def stop(self) -> None:
        """Stop enforcing (the container is gone)."""
        if self.running:
            self.host.sync()
            self._roll(self.host.cpu.now)
            self._close_throttle(self.host.cpu.now)
            self.running = False
            self._token += 1
            unwatch_node(self.host, self.node)
            self.host.cpu.unmeter(self.node)

    def stat(self, t: float | None = None) -> dict[str, float]:
        """``cpu.stat``-like counters at ``t`` (default: the scheduler's time)."""
        t = self.host.cpu.now if t is None else t
        extra = t - self._t_throttle if (self.throttled and self.running) else 0.0
        periods = self.nr_periods
        if self.running and self._rolling and t >= self._end:
            if self._rolling_busy:
                periods += self._period_at(t) - self._k
            elif self._active:
                periods += 1
        return {"nr_periods": periods, "nr_throttled": self.nr_throttled,
                "throttled_s": self.throttled_s + max(0.0, extra)}

    # ------------------------------------------------------------------ inside the scheduler
    def _period_at(self, t: float) -> int:
        """Index of the period of the grid that contains ``t`` (a period ends at its end)."""
        k = math.floor((t - self._t0) / self.period_s)
        if self._t0 + (k + 1) * self.period_s <= t:
            k += 1  # rounding at a boundary
        elif k > 0 and self._t0 + k * self.period_s > t:
            k -= 1
        return k

    def _begin(self, k: int) -> None:
        self._k = k
        self._end = self._t0 + (k + 1) * self.period_s
        self._used0 = self.host.cpu.usage_core_s(self.node)
        self._active = self.node.dsum > 0
        self._dormant = False
        self._predict()

    def _predict(self) -> None:
        """At the node's current rate: register the quota's exhaustion in this period,
        and this period's end if it may matter; else let the periods roll."""
        self._token += 1
        self._rolling = False
        if self.throttled or self._dormant or not self.running:
            return
        sched = self.host.cpu
        rate = self.node.alloc
        if rate > 0:
            left = self.quota_core_s - (sched.usage_core_s(self.node) - self._used0)
            t_out = sched.now + max(0.0, left) / rate
            if t_out < self._end:
                sched.add_feed(_Tick(self, _EXHAUST, self._token), t_out)
                self._end_feed()
                return
            if not rate * self.period_s * (1.0 + self.ROLL_MARGIN) < self.quota_core_s:
                self._end_feed()
                return
        node = self.node
        self._rolling = True
        self._rolling_busy = node.dsum > 0
        self._meter = (node.used_core_s, node.t_used, node.a_used)

    def _end_feed(self) -> None:
        if self._end_k != self._k:
            self._end_k = self._k
            self.host.cpu.add_feed(_Tick(self, _END, self._k), self._end)

    def _roll(self, t: float) -> None:
        """Bring rolling periods up to ``t``: count those that ended, as their ends would."""
        if not self._rolling or t < self._end:
            return
        self._rolling = False
        if not self._rolling_busy:  # idle: the period ended and its timer stopped
            if self._active:
                self.nr_periods += 1
            self._dormant = True
            return
        k = self._period_at(t)
        self.nr_periods += k - self._k  # busy throughout: every one counts
        used, since, rate = self._meter
        self._k = k
        self._end = self._t0 + (k + 1) * self.period_s
        self._used0 = used + rate * ((self._t0 + k * self.period_s) - since)
        self._active = True

    def _close_throttle(self, t: float) -> None:
        if self.throttled:
            self.throttled_s += t - self._t_throttle
            self.throttled = False

    def _tick(self, kind: int, token: int, t: float) -> None:
        if not self.running:
            return
        sched = self.host.cpu
        self._busy = True
        try:
            if kind == _EXHAUST:
                if token != self._token or self.throttled:
                    return  # stale: the rate changed since this was predicted
                self.throttled = True
                self._t_throttle = t
                self.nr_throttled += 1
                sched.set_limits(self.node, cap=0.0)
                return
            if token != self._k or self._dormant:
                return
            self._rolling = False
            if self.throttled:
                self._close_throttle(t)
                sched.set_limits(self.node, cap=self.open_cap)
            if self._active:
                self.nr_periods += 1
            if self.node.dsum > 0:
                self._begin(self._k + 1)
            else:
                self._dormant = True  # idle: the period timer stops
                self._token += 1
        finally:
            self._busy = False

    def _changed(self) -> None:
        """The scheduler re-shared this node: wake from idle, or re-predict."""
        if self._busy or not self.running:
            return
        now = self.host.cpu.now
        if self._rolling and now >= self._end:
            self._roll(now)
        if self._dormant:
            if self.node.dsum > 0:
                self._begin(self._period_at(now))
            return
        if self.node.dsum > 0:
            self._active = True
        if not self.throttled:
            self._predict()


class Container(Instance):
    """One app in a container of ``runtime`` (a cgroup on the runtime's kernel)."""

    kind = "container"
    contained = True

    def __init__(self, name: str, app: AppSpec, runtime: ContainerRuntime, streams: Streams):
        self.runtime = runtime
        self.bandwidth: CfsBandwidth | None = None
        super().__init__(name, app, runtime.kernel, streams, backoff=runtime.backoff,
                         keep_jobs=runtime.keep_jobs)

    @property
    def open_cap_cores(self) -> float:
        """Its cap while not throttled: its threads, or its cpuset if smaller."""
        cap = float(self.app.threads)
        return min(cap, float(self.app.cpuset_cores)) if self.app.cpuset_cores else cap

    @property
    def quota_core_s(self) -> float | None:
        """``cpu.max`` quota per period (core-s), or None without a limit."""
        if self.app.cpu_limit_cores is None:
            return None
        return self.app.cpu_limit_cores * self.runtime.params.cfs_period_s

    def placement_request(self) -> PlacementRequest:
        ram = self.app.ram_mib + self.runtime.params.ram_overhead_mib
        if self.app.cpuset_cores:
            return PlacementRequest(self.name, float(self.app.cpuset_cores), ram, dedicated=True)
        return PlacementRequest(self.name, self.app.cpu_request_cores, ram)

    @property
    def ram_limit_mib(self) -> float | None:
        return self.app.ram_limit_mib

    def build_node(self) -> CpuNode:
        cap = self.open_cap_cores
        if self.quota_core_s is not None and self.runtime.params.cfs == "fluid":
            cap = min(cap, self.app.cpu_limit_cores)  # type: ignore[type-var]
        cpuset = float(self.app.cpuset_cores or 0)
        node = CpuNode(self.name, weight=self.app.cpu_weight, cap=cap, floor=cpuset,
                       table=INSTANCES, instance=self.name)
        self.host.attach(node, self.runtime.node)
        return node

    def _start_s(self) -> float:
        return draw_s(self.runtime.params.start_s, self.streams.get(f"hosting.{self.name}.start"))

    def provision(self) -> Generator[simpy.Event, Any, bool]:
        if not (yield from self.pull(self.runtime.fetch)):
            return False
        yield self.env.timeout(self._start_s())
        return True

    def reprovision(self) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self._start_s())

    def on_running(self) -> None:
        super().on_running()
        quota = self.quota_core_s
        if quota is not None and self.runtime.params.cfs == "period" and self.bandwidth is None:
            self.bandwidth = CfsBandwidth(self.host, self.node, quota,  # type: ignore[arg-type]
                                          self.runtime.params.cfs_period_s, self.open_cap_cores)
            self.bandwidth.start()

    def on_crash(self, reason: str) -> None:
        if self.bandwidth is not None:
            self.bandwidth.stop()

    def cpu_stat(self, t: float | None = None) -> dict[str, float]:
        """``cpu.stat`` counters (zeros without a period-enforced quota)."""
        if self.bandwidth is None:
            return {"nr_periods": 0, "nr_throttled": 0, "throttled_s": 0.0}
        return self.bandwidth.stat(t)


class ContainerRuntime:
    """A container runtime on ``kernel`` (a host OS or a VM's guest) with ``params``: its
    containers share that kernel (docs/model.md §6).

    ``params.cfs``: ``"period"`` (exact CFS bandwidth control) or ``"fluid"`` (quota as
    an average cap). ``backoff``: restart after an OOM kill (from ``params``; None:
    never). ``fetch``: the image pull (layers the host lacks) before each start.
    """

    name = "container"
    Params = ContainerParams
    image = "container"
    in_place = False

    def __init__(self, kernel: Kernel, streams: Streams, params: ContainerParams, *,
                 keep_jobs: bool = False, fetch: Fetch | None = None):
        if params.cfs not in CFS_MODES:
            raise ValueError(f"unknown cfs mode {params.cfs!r}; valid: {', '.join(CFS_MODES)}")
        if not params.cfs_period_s > 0:
            raise ValueError(f"cfs_period_s must be > 0, got {params.cfs_period_s!r}")
        self.kernel = kernel
        self.streams = streams
        self.params = params
        self.backoff: Backoff | None = params.backoff
        self.fetch = fetch
        self.keep_jobs = keep_jobs
        self.node = kernel.host.attach(CpuNode(f"{kernel.name}.runtime"), kernel.node)
        self.daemon: CpuNode | None = None  # the runtime's own cgroup, once it works

    def work(self, work_core_s: float, max_cores: float = 1.0) -> simpy.Event:
        """Run the runtime's own work now (unpacking an image layer: containerd does it
        in its own cgroup, not the container's): ``work_core_s`` core-s on at most
        ``max_cores``, in the daemon's node below the runtime, beside its containers at
        the default ``cpu.weight``. The event succeeds when it is done."""
        host = self.kernel.host
        if self.daemon is None:
            self.daemon = host.attach(CpuNode(f"{self.kernel.name}.runtime.daemon",
                                              weight=defaults.CPU_WEIGHT_DEFAULT), self.node)
        return host.run(self.daemon, work_core_s, max_cores)

    def container(self, app: AppSpec, name: str | None = None) -> Container:
        """A container for ``app`` (named after it by default), not yet admitted."""
        return Container(name or app.name, app, self, self.streams)

    def admit(self, app: AppSpec, name: str | None = None) -> Container:
        """Admit a container for ``app`` (raises CapacityError); launch it to start it."""
        return self.container(app, name).admit()  # type: ignore[return-value]

    # ------------------------------------------------------------------ HostingMode
    def candidate(self, app: AppSpec) -> Instance:
        """What would be admitted for ``app``: its container (not admitted)."""
        return self.container(app)

    def host_app(self, app: AppSpec) -> list[tuple[Instance, Instance | None]]:
        """Admit ``app``'s container: ``[(container, None)]``."""
        return [(self.admit(app), None)]

    def cpu_key(self, app: AppSpec) -> str:
        """Its cpuset if it has one, else its CPU request."""
        return "cpu_request_cores" if app.cpuset_cores is None else "cpuset_cores"


def cpu_stats(instances: Mapping[str, Instance],
              t: float | None = None) -> dict[str, dict[str, float]]:
    """``cpu.stat`` counters at ``t`` of the containers among ``instances`` (app →
    instance) whose quota is enforced per period."""
    return {a: i.cpu_stat(t) for a, i in instances.items()
            if isinstance(i, Container) and i.bandwidth is not None}


def record_cpu_stats(instances: Mapping[str, Instance], t_end: float) -> None:
    """Record those counters at the end of the run (event ``cpu_stat``: ``duration_s`` =
    throttled time, ``count`` = throttled periods)."""
    for app, stat in cpu_stats(instances, t_end).items():
        inst = instances[app]
        inst.host.recorder.event(
            t_end, "cpu_stat", inst.name, f"nr_periods={stat['nr_periods']:g}",
            host=inst.host.name, duration_s=stat["throttled_s"], count=stat["nr_throttled"])
