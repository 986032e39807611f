"""What the three hosting modes share, written once (docs/model.md §2, §4, §5).

Descriptions (plain frozen dataclasses: config ≠ simulation):

- :class:`HostSpec`: a server to build; :class:`AppSpec`: an app (threads, CPU
  request, RAM, dependency versions, limits, workloads); :class:`JobsSpec` and
  :class:`DemandSpec`: its workloads.

Roles in the model:

- :class:`Kernel`: one running OS, a host's or a VM's guest. It owns the CPU node
  its processes hang under, the admission book (CPU committed against cores ×
  overcommit ratio, dedicated cores, installed dependency versions), a RAM
  :class:`~fleet_sim.model.memory.MemoryLedger` and the OOM killer that acts on it.
- :class:`Instance`: one thing of an app that runs on a kernel (a process, a
  container, a VM), with the lifecycle every mode shares: admit → provision
  (install / boot / start) → run → kill → restart after a back-off, or crash
  (host failure) / stop. Modes override a few hooks (its own CPU node, its
  placement request, how it is provisioned).
- :func:`build_workload`: an app's workload as a *process* below a parent node.
  Processes get Linux CFS per-thread weights (:func:`cfs_weight`) and draw from the
  named streams ``workload.<app>.<wl>.arrivals|sizes|spikes``, so every mode sees
  the same arrivals and spikes (common random numbers).

An instance's workloads exist from admission on but are *held* (cap 0) until it
runs: jobs that arrive while a VM boots or a container restarts queue, and start
later (``start > arrival``). An OOM kill loses the jobs in flight.

Streams used: ``hosting.<instance>.install|boot|start`` (provisioning times),
named by the instance, never shared with workloads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from fleet_sim.errors import CapacityError, ConflictError
from fleet_sim.hosting import defaults
from fleet_sim.model.cputree import CpuNode
from fleet_sim.model.demand import Constant, DemandWorkload, Diurnal, Replay, Spiky
from fleet_sim.model.distributions import Distribution
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import JobWorkload, PoissonJobs
from fleet_sim.model.memory import MemoryLedger
from fleet_sim.model.views import HostView, PlacementRequest
from fleet_sim.numerics.fairshare import INF
from fleet_sim.rng import Streams

# ---------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class HostSpec:
    """A server to build: ``cores``, ``ram_mib``, per-core ``speed``."""

    name: str
    cores: float
    ram_mib: float = 65_536.0
    speed: float = 1.0


@dataclass(frozen=True)
class JobsSpec:
    """A workload of Poisson job arrivals: ``rate_per_s``, each job ``work`` core-s
    (a distribution) on at most ``max_cores``, arriving in ``[t_start_s, t_end_s)``.
    ``service``: the service whose one stream feeds it (its load balancer routes
    the arrivals, see :mod:`fleet_sim.model.service`); "" for the replica's own."""

    name: str
    rate_per_s: float
    work: Distribution
    max_cores: float = 1.0
    t_start_s: float = 0.0
    t_end_s: float = INF
    service: str = ""

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0 or not self.max_cores > 0:
            raise ValueError(f"workload {self.name!r}: rate_per_s and max_cores must be > 0")


#: demand profile kinds a DemandSpec may name
PROFILES: Mapping[str, Callable[..., Any]] = {
    "constant": Constant, "spiky": Spiky, "diurnal": Diurnal, "replay": Replay}


@dataclass(frozen=True)
class DemandSpec:
    """A demand workload: a profile ``kind`` (constant, spiky, diurnal, replay) and the
    profile's parameters, e.g. ``{"baseline_cores": 0.5, "rate_per_s": 0.01,
    "duration_s": Exponential(30), "height_cores": 16}`` (a spiky profile draws from
    the ``spikes`` stream)."""

    name: str
    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    def __init__(self, name: str, kind: str, params: Mapping[str, Any] | None = None):
        if kind not in PROFILES:
            raise ValueError(f"workload {name!r}: unknown demand profile {kind!r}; "
                             f"valid: {', '.join(PROFILES)}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "params", tuple(sorted(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in (params or {}).items())))

    def profile(self, rng: np.random.Generator):
        """The profile object; a spiky one draws from ``rng``."""
        kwargs = dict(self.params)
        if self.kind == "spiky":
            kwargs["rng"] = rng
        return PROFILES[self.kind](**kwargs)


WorkloadSpec = JobsSpec | DemandSpec


@dataclass(frozen=True)
class AppSpec:
    """An application, whatever hosts it.

    ``threads``: its processes' threads (the most cores it can use at once, and
    its CFS weight bound). ``cpu_request_cores``: what placement commits for it.
    ``ram_mib``: RAM it uses (and placement reserves); ``ram_growth_mib_s``: a
    leak, MiB/s from each start. ``dependencies``: versions it needs on a shared
    OS, e.g. ``{"postgres": "12"}``. Limits, used where the mode has them:
    ``cpu_limit_cores`` (container ``cpu.max`` = limit × period), ``cpu_weight``
    (container ``cpu.weight``), ``cpuset_cores`` (exclusive cores),
    ``ram_limit_mib`` (container ``memory.max``), ``vcpus`` (VM size; default from
    the request). ``image``: the image reference ``<app>:<version>`` (container image,
    VM image or bare-metal release). ``late_workloads``: its workloads begin when it
    first runs, not at admission (a replacement replica of a rollout: its requests
    went to the other replicas until then).
    """

    name: str
    threads: int = 1
    cpu_request_cores: float = 1.0
    ram_mib: float = 512.0
    dependencies: tuple[tuple[str, str], ...] | Mapping[str, str] = ()
    workloads: tuple[WorkloadSpec, ...] = ()
    ram_growth_mib_s: float = 0.0
    cpu_limit_cores: float | None = None
    cpu_weight: float = defaults.CPU_WEIGHT_DEFAULT
    cpuset_cores: int | None = None
    ram_limit_mib: float | None = None
    vcpus: int | None = None
    image: str = ""
    late_workloads: bool = False

    def __post_init__(self) -> None:
        deps = self.dependencies
        pairs = deps.items() if isinstance(deps, Mapping) else deps
        object.__setattr__(self, "dependencies",
                           tuple(sorted((str(k), str(v)) for k, v in pairs)))
        object.__setattr__(self, "workloads", tuple(self.workloads))
        if not self.image:
            object.__setattr__(self, "image", f"{self.name}:latest")
        if not self.name or "." in self.name:
            raise ValueError(f"app name must be non-empty and without dots, got {self.name!r}")
        if self.threads < 1 or self.cpu_request_cores < 0 or self.ram_mib < 0:
            raise ValueError(f"app {self.name!r}: need threads >= 1, cpu_request_cores >= 0 "
                             f"and ram_mib >= 0")
        names = [w.name for w in self.workloads]
        if len(set(names)) != len(names):
            raise ValueError(f"app {self.name!r}: workload names must be unique, got {names}")

    @property
    def deps(self) -> dict[str, str]:
        """Dependency versions as a dict."""
        return dict(self.dependencies)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- processes


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


def draw_s(dist: Distribution, rng: np.random.Generator) -> float:
    """One duration (s) from ``dist``, never negative."""
    return max(0.0, float(dist.sample(rng, 1)[0]))


def watch_node(host: Host, node: CpuNode, fn: Callable[[], None]) -> None:
    """Call ``fn()`` inside the scheduler whenever ``node``'s demand or allocation changes.

    ``fn`` must not change the tree, only register scheduler feeds (see
    :meth:`fleet_sim.model.scheduler.HostCpuScheduler.watch`).
    """
    host.cpu.watch(node, fn)


def unwatch_node(host: Host, node: CpuNode) -> None:
    """Stop calling the watcher of ``node``."""
    host.cpu.unwatch(node)


# ---------------------------------------------------------------------------- kernel

#: owner name of a kernel's own footprint in its RAM ledger
OS_ACCOUNT = "<os>"


class Kernel:
    """A running OS on ``host``: where processes and containers run, RAM is accounted
    and admission is decided.

    ``node``: the CPU node its processes hang under (the host's root for the host
    OS, the VM's node for a guest). ``cores``: CPU it admits against, with
    ``cpu_ratio`` overcommit; ``ram_mib``: its RAM, of which ``os_ram_mib`` is its
    own footprint. ``parent``: the kernel below (a guest's host), None for a host.
    A process or container passing its RAM limit, or all of them passing the
    kernel's RAM, is OOM-killed at that exact time (recorded ``oom_kill``).
    """

    def __init__(self, host: Host, name: str, node: CpuNode, cores: float, ram_mib: float, *,
                 cpu_ratio: float = 1.0, os_ram_mib: float = 0.0,
                 parent: Kernel | None = None):
        if not cpu_ratio > 0:
            raise ValueError(f"{name}: cpu_ratio must be > 0, got {cpu_ratio!r}")
        self.host = host
        self.env: simpy.Environment = host.env
        self.name = name
        self.node = node
        self.cores = float(cores)
        self.cpu_ratio = float(cpu_ratio)
        self.parent = parent
        self.up = True
        self.memory = MemoryLedger(name, ram_mib)
        self.instances: dict[str, Instance] = {}
        self._requests: dict[str, PlacementRequest] = {}
        self._deps: dict[str, tuple[tuple[str, str], ...]] = {}
        self._mem_version = 0
        self.oom_kills = 0
        if os_ram_mib > 0:
            self.memory.open(OS_ACCOUNT, os_ram_mib, used_mib=os_ram_mib, killable=False,
                             t=self.env.now)
        self._memory_changed()

    # ------------------------------------------------------------------ admission
    def installed(self) -> dict[str, str]:
        """Dependency versions installed on this kernel (name → version)."""
        out: dict[str, str] = {}
        for deps in self._deps.values():
            out.update(deps)
        return out

    def view(self) -> HostView:
        """What placement sees of this kernel (named after the host for a host OS)."""
        shared = [r.cpu_cores for r in self._requests.values() if not r.dedicated]
        dedicated = [r.cpu_cores for r in self._requests.values() if r.dedicated]
        return HostView(
            name=self.host.name if self.parent is None else self.name, cores=self.cores,
            ram_mib=self.memory.capacity_mib, cpu_ratio=self.cpu_ratio,
            committed_cpu_cores=math.fsum(shared), dedicated_cores=math.fsum(dedicated),
            reserved_ram_mib=self.memory.reserved_mib, instance_count=len(self.instances),
            dependencies=tuple(sorted(self.installed().items())), up=self.up)

    def conflicts(self, deps: Sequence[tuple[str, str]]) -> tuple[str, ...]:
        """Dependencies in ``deps`` installed here in another version."""
        return self.view().conflicts(PlacementRequest("", 0.0, 0.0, tuple(deps)))

    def admit(self, inst: Instance, used_mib: float = 0.0, killable: bool = True) -> None:
        """Commit ``inst``'s placement request and open its RAM account (MiB in use now).

        Raises ConflictError if it needs a dependency version other than one
        installed here, CapacityError if its CPU (× ratio) or RAM does not fit.
        """
        req = inst.request
        if inst.name in self.instances:
            raise ValueError(f"{self.name}: an instance named {inst.name!r} already runs here")
        bad = self.conflicts(req.dependencies)
        if bad:
            raise ConflictError(f"cannot admit {inst.kind} {inst.name!r} on {self.name}: "
                                f"its shared OS has other versions of {', '.join(bad)}")
        why = self.view().why_not(req)
        if why:
            raise CapacityError(f"cannot admit {inst.kind} {inst.name!r} on {self.name}: {why}")
        self.memory.open(inst.name, req.ram_mib, used_mib=used_mib, killable=killable,
                         limit_mib=inst.ram_limit_mib, t=self.env.now)
        self._requests[inst.name] = req
        self.instances[inst.name] = inst
        if req.dependencies:
            self._deps[inst.name] = req.dependencies
        self._memory_changed()

    def install(self, inst: Instance, deps: Sequence[tuple[str, str]]) -> tuple[str, ...]:
        """Install ``deps`` for ``inst`` now; return the conflicts (nothing installed then)."""
        bad = self.conflicts(deps)
        if not bad and deps:
            self._deps[inst.name] = tuple(self._deps.get(inst.name, ())) + tuple(deps)
        return bad

    def release(self, inst: Instance) -> None:
        """Undo ``inst``'s admission: its CPU commitment, RAM account and dependencies."""
        if self.instances.pop(inst.name, None) is None:
            return
        self._requests.pop(inst.name)
        self._deps.pop(inst.name, None)
        self.memory.close(inst.name)
        self._memory_changed()

    def fail(self, reason: str) -> list[Instance]:
        """The kernel dies (host failure): every instance on it crashes; return them."""
        self.up = False
        gone = list(self.instances.values())
        for inst in gone:
            inst.crash(reason)
        return gone

    def add_footprint(self, owner: str, ram_mib: float) -> None:
        """Reserve RAM the kernel's own services use (e.g. a type-2 host OS), MiB."""
        self.memory.open(owner, ram_mib, used_mib=ram_mib, killable=False, t=self.env.now)
        self._memory_changed()

    # ------------------------------------------------------------------ memory
    def set_usage(self, inst: Instance, used_mib: float, growth_mib_s: float = 0.0) -> None:
        """``inst`` uses ``used_mib`` from now, growing by ``growth_mib_s``."""
        self.memory.set_usage(inst.name, used_mib, growth_mib_s, self.env.now)
        self._memory_changed()

    def _memory_changed(self) -> None:
        """Record the host's RAM and schedule the OOM killer at the next pressure."""
        now = self.env.now
        if self.parent is None:
            self.host.sync()
            self.host.set_ram_used(self.memory.used_at(now))
        self._mem_version += 1
        nxt = self.memory.next_pressure(now)
        if nxt is None or not self.up:
            return
        t, owner = nxt
        version = self._mem_version
        ev = self.env.timeout(max(0.0, t - now))
        ev.callbacks.append(lambda _ev: self._pressure(version, owner))

    def _pressure(self, version: int, owner: str | None) -> None:
        if version != self._mem_version or not self.up:
            return  # something changed since this check was scheduled
        now = self.env.now
        if owner is None:
            victim = self.memory.oom_victim(now)
            why = (f"{self.name} out of memory ({self.memory.used_at(now):.0f} of "
                   f"{self.memory.capacity_mib:.0f} MiB): killed the largest process")
        else:
            victim = owner
            why = f"memory.max {self.memory.accounts[owner].limit_mib:g} MiB reached"
        inst = self.instances.get(victim) if victim is not None else None
        if inst is None:
            self.host.recorder.event(now, "oom_unresolved", self.name,
                                     "RAM exhausted with nothing killable")
            return
        used = self.memory.accounts[victim].used_at(now)  # type: ignore[index]
        self.oom_kills += 1
        inst.kill("oom_kill", f"{why}; used_mib={used:.1f}")


def host_kernel(host: Host, *, cpu_ratio: float = 1.0, os_ram_mib: float = 0.0) -> Kernel:
    """The OS of ``host`` itself: all its cores and RAM, processes under its root."""
    return Kernel(host, host.name, host.root, host.cores, host.ram_mib, cpu_ratio=cpu_ratio,
                  os_ram_mib=os_ram_mib)


# ---------------------------------------------------------------------------- instances


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``base_s`` doubling per consecutive restart up to ``max_s``;
    the count resets after running ``reset_s`` without a kill (Kubernetes
    CrashLoopBackOff; systemd RestartSec when ``base_s == max_s``). With
    ``limit_burst``: more than that many kills within ``limit_interval_s`` and it
    gives up (systemd's start rate limit)."""

    base_s: float
    max_s: float
    reset_s: float = INF
    limit_burst: int = 0
    limit_interval_s: float = 0.0

    def delay_s(self, consecutive: int) -> float:
        """Delay before restart number ``consecutive + 1`` in a row (s)."""
        return min(self.max_s, self.base_s * 2.0 ** min(consecutive, 60))

    def gives_up(self, kill_times: Sequence[float], now: float) -> bool:
        """Whether the kills at ``kill_times`` (s, the latest at ``now``) hit the limit."""
        if not self.limit_burst:
            return False
        recent = sum(1 for t in kill_times if t > now - self.limit_interval_s)
        return recent > self.limit_burst


#: an image-transfer hook: the event of ``instance``'s image reaching its host (value
#: False if it cannot), or None when nothing needs transferring
Fetch = Callable[["Instance"], simpy.Event | None]

#: lifecycle states
ADMITTED, PROVISIONING, RUNNING, DOWN, STOPPED, FAILED = (
    "admitted", "provisioning", "running", "down", "stopped", "failed")


class Instance:
    """Something of ``app`` that runs on ``kernel``: a process, a container or a VM.

    Lifecycle (SimPy process :meth:`launch`): wait for ``after`` (e.g. the VM's
    boot), provision (hook :meth:`provision`: install / boot / start; may fail),
    run (workloads released, RAM in use); on an OOM kill the in-flight jobs are
    lost, workloads are held and, with a ``backoff``, it restarts after the delay
    (hook :meth:`reprovision`). :meth:`crash` (host failure) and :meth:`stop` end
    it. Every step is an event: ``admit`` (with what it commits on its kernel:
    ``cpu_cores=… ram_mib=…``, and ``dedicated`` for whole cores), ``start`` (``boot`` for a VM),
    ``install_failed``, ``failed``, ``oom_kill``, ``restart``, ``killed``, ``stop``.
    Jobs in flight when it stops running go to their workload's ``lose``; each
    change of ``state`` calls the ``watchers`` (``fn(instance)``; e.g. a load balancer).
    """

    kind = "process"
    contained = False  #: behind an isolation boundary of its own inside its kernel
    start_event = "start"

    def __init__(self, name: str, app: AppSpec, kernel: Kernel, streams: Streams, *,
                 backoff: Backoff | None = None, keep_jobs: bool = False):
        self.name = name
        self.app = app
        self.kernel = kernel
        self.host = kernel.host
        self.env: simpy.Environment = self.host.env
        self.streams = streams
        self.backoff = backoff
        self.keep_jobs = keep_jobs
        self.state = ""
        self.node: CpuNode | None = None
        self.workloads: list[ProcessWorkload] = []
        self.up = self.env.event()  #: succeeds when it first runs
        #: succeeds with True when it first runs, False if it never will (failed, stopped)
        self.settled = self.env.event()
        #: the image transfer of its provisioning (s; None: none or not yet)
        self.transfer_s: tuple[float, float] | None = None
        self.kills = self.restarts = 0
        self.started_s: float | None = None
        self._in_a_row = 0
        self._kill_times: list[float] = []
        self.watchers: list[Callable[[Instance], None]] = []
        self.request = self.placement_request()

    # ------------------------------------------------------------------ hooks
    def placement_request(self) -> PlacementRequest:
        """What admission commits on the kernel."""
        return PlacementRequest(self.name, self.app.cpu_request_cores, self.app.ram_mib)

    @property
    def ram_limit_mib(self) -> float | None:
        """Its RAM limit (``memory.max``), if the mode enforces one."""
        return None

    def build_node(self) -> CpuNode | None:
        """Create and attach its own CPU node (VM, container); None for a process."""
        return None

    def provision(self) -> Generator[simpy.Event, Any, bool]:
        """Get ready to run (SimPy generator); return False if that failed."""
        yield from ()
        return True

    def reprovision(self) -> Generator[simpy.Event, Any, None]:
        """Get ready to run again after a kill (default: at once)."""
        yield from ()

    def pull(self, fetch: Fetch | None) -> Generator[simpy.Event, Any, bool]:
        """Wait for ``fetch(self)``, the transfer of its image to the host (none when
        ``fetch`` is None or returns None); return False if that failed."""
        transfer = None if fetch is None else fetch(self)
        if transfer is None:
            return True
        ok = yield transfer
        return ok is not False

    def on_running(self) -> None:
        """Called each time it (re)starts running: RAM in use from now."""
        self.kernel.set_usage(self, self.app.ram_mib, self.app.ram_growth_mib_s)

    def on_crash(self, reason: str) -> None:
        """Called when it crashes or stops, before its nodes are detached."""

    def workload_specs(self) -> tuple[WorkloadSpec, ...]:
        """The workloads it runs itself (a VM runs none: its guests do)."""
        return self.app.workloads

    # ------------------------------------------------------------------ lifecycle
    @property
    def workload_parent(self) -> CpuNode:
        """The node its workloads hang under."""
        return self.node if self.node is not None else self.kernel.node

    def _set_state(self, state: str) -> None:
        self.state = state
        for fn in list(self.watchers):
            fn(self)

    def event(self, kind: str, detail: str = "", **fields: str | float) -> None:
        """Record an event about this instance now, on its host (typed ``fields`` as
        in the ``events`` table)."""
        self.host.recorder.event(self.env.now, kind, self.name, detail, host=self.host.name,
                                 **fields)

    def admit(self) -> Instance:
        """Admit it on its kernel (raises CapacityError/ConflictError), build its node
        and its held workloads."""
        self.kernel.admit(self, **self.admission_terms())
        self.node = self.build_node()
        self.workloads = [] if self.app.late_workloads else self._build_workloads(held=True)
        self._set_state(ADMITTED)
        req = self.request
        self.event("admit", "dedicated cores" if req.dedicated else "",
                   kernel=self.kernel.name, cpu_cores=req.cpu_cores, ram_mib=req.ram_mib)
        return self

    def _build_workloads(self, held: bool) -> list[ProcessWorkload]:
        return [build_workload(self.host, self.app, spec, self.workload_parent, self.streams,
                               instance=self.instance_label, held=held,
                               keep_jobs=self.keep_jobs)
                for spec in self.workload_specs()]

    def admission_terms(self) -> dict[str, Any]:
        """RAM in use at admission and whether the OOM killer may pick it."""
        return {}

    @property
    def instance_label(self) -> str:
        """The ``instance`` column of its workloads."""
        return self.name

    def launch(self, after: simpy.Event | None = None) -> simpy.Process:
        """Start its lifecycle: wait for ``after``, provision, run."""
        return self.env.process(self._lifecycle(after))

    def _lifecycle(self, after: simpy.Event | None):
        if after is not None:
            yield after
        if self.state != ADMITTED:
            return
        self._set_state(PROVISIONING)
        t0 = self.env.now
        ok = yield from self.provision()
        if self.state != PROVISIONING:
            return  # crashed while provisioning
        if not ok:
            self._set_state(FAILED)
            self.event("failed", "could not be provisioned")
            self._settle(False)
            return
        self.event(self.start_event, duration_s=self.env.now - t0)
        self._run()

    def _run(self) -> None:
        self.started_s = self.env.now
        if self.app.late_workloads and not self.up.triggered:
            self.workloads = self._build_workloads(held=False)
        for wl in self.workloads:
            set_limits(self.host, wl, cap=float(self.app.threads))
        self.on_running()
        self._set_state(RUNNING)
        if not self.up.triggered:
            self.up.succeed()
        self._settle(True)

    def _settle(self, runs: bool) -> None:
        if not self.settled.triggered:
            self.settled.succeed(runs)

    def in_flight(self) -> int:
        """Jobs running or queued on it now."""
        return sum(len(wl.children) for wl in self.workloads if isinstance(wl, JobWorkload))

    def _hold(self, drop_jobs: bool) -> int:
        """Cap its workloads at 0; drop the jobs in flight if asked; return how many."""
        lost = 0
        for wl in self.workloads:
            if drop_jobs and isinstance(wl, JobWorkload) and wl.children:
                parent = wl.parent
                jobs = self.host.detach(wl)
                for job in jobs:
                    wl.remove(job)
                lost += len(jobs)
                wl.cap = 0.0
                self.host.attach(wl, parent)
                wl.lose(jobs)
            else:
                set_limits(self.host, wl, cap=0.0)
        return lost

    def kill(self, kind: str, detail: str = "") -> None:
        """The kernel kills it now (e.g. ``oom_kill``): jobs in flight are lost; it
        restarts after its back-off, or fails without one."""
        if self.state != RUNNING:
            return
        self._set_state(DOWN)
        lost = self._hold(drop_jobs=True)
        self.kernel.set_usage(self, 0.0)
        self.kills += 1
        now = self.env.now
        self._kill_times.append(now)
        self.event(kind, detail, count=lost)
        if self.backoff is None or self.backoff.gives_up(self._kill_times, now):
            self._set_state(FAILED)
            self.event("failed", f"not restarted after {self.kills} kills", count=self.kills)
            return
        self.env.process(self._restart())

    def _restart(self):
        if self.started_s is not None and self.env.now - self.started_s >= self.backoff.reset_s:
            self._in_a_row = 0
        delay = self.backoff.delay_s(self._in_a_row)  # type: ignore[union-attr]
        self._in_a_row += 1
        yield self.env.timeout(delay)
        if self.state != DOWN:
            return
        self._set_state(PROVISIONING)
        yield from self.reprovision()
        if self.state != PROVISIONING:
            return
        self.restarts += 1
        self.event("restart", count=self.restarts, duration_s=delay)
        self._run()

    def _detach(self) -> None:
        """Take its nodes off the host; the jobs in flight are lost (``lose``)."""
        for wl in self.workloads:
            wl.stop_feeds()
        jobs = []
        if self.node is not None:
            if self.node.parent is not None:
                jobs = self.host.detach(self.node)
        else:
            for wl in self.workloads:
                if wl.parent is not None:
                    jobs += self.host.detach(wl)
        for job in jobs:
            job.workload.lose([job])

    def crash(self, reason: str) -> None:
        """It dies now and stays dead (its host failed): nodes detached, RAM released."""
        if self.kernel.instances.get(self.name) is not self:
            return  # already gone
        self.on_crash(reason)
        self._set_state(FAILED)
        self._settle(False)
        self._detach()
        self.kernel.release(self)
        self.event("killed", reason)

    def stop(self) -> None:
        """Stop it now, on purpose: nodes detached, RAM and CPU commitment released; the
        jobs in flight are lost (event ``stop``, ``count`` = those jobs)."""
        if self.kernel.instances.get(self.name) is not self:
            return  # already gone
        self.host.sync()
        lost = self.in_flight()
        self.on_crash("stopped")
        self._set_state(STOPPED)
        self._settle(False)
        self._detach()
        self.kernel.release(self)
        self.event("stop", count=lost)


class AppProcess(Instance):
    """An app installed as processes directly on a kernel (shared OS, or a VM's guest).

    ``installer``: a provisioning step (bare metal: an install with failures and
    dependency conflicts, see :mod:`fleet_sim.hosting.baremetal`); None: ready at once.
    ``dependencies``: checked at admission when True (placement refuses conflicts).
    """

    kind = "process"

    def __init__(self, name: str, app: AppSpec, kernel: Kernel, streams: Streams, *,
                 installer=None, check_dependencies: bool = False,
                 backoff: Backoff | None = None, keep_jobs: bool = False):
        self.installer = installer
        self.check_dependencies = check_dependencies
        super().__init__(name, app, kernel, streams, backoff=backoff, keep_jobs=keep_jobs)

    def placement_request(self) -> PlacementRequest:
        deps = self.app.dependencies if self.check_dependencies else ()
        return PlacementRequest(self.name, self.app.cpu_request_cores, self.app.ram_mib,
                                deps)  # type: ignore[arg-type]

    def provision(self):
        if self.installer is None:
            return True
        ok = yield from self.installer.install(self)
        return ok
