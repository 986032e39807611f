"""One thing of an app that runs on a kernel (a process, a container, a VM) and the
lifecycle every hosting mode shares (docs/model.md §4, §5).

:class:`Instance`: admit → provision (install / boot / start) → run → kill →
restart after a back-off, or crash (host failure) / stop. Modes override a few hooks
(its own CPU node, its placement request, how it is provisioned).
:class:`AppProcess`: an app installed as processes directly on a kernel.

Streams used: ``hosting.<instance>.install|boot|start`` (provisioning times),
named by the instance, never shared with workloads.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from fleet_sim.hosting.backoff import Backoff
from fleet_sim.hosting.kernel import Kernel
from fleet_sim.hosting.processes import ProcessWorkload, build_workload, set_limits
from fleet_sim.hosting.specs import AppSpec, WorkloadSpec
from fleet_sim.model.cputree import CpuNode
from fleet_sim.model.distributions import Distribution
from fleet_sim.model.jobs import JobWorkload
from fleet_sim.model.views import PlacementRequest
from fleet_sim.rng import Streams


def draw_s(dist: Distribution, rng: np.random.Generator) -> float:
    """One duration (s) from ``dist``, never negative."""
    return max(0.0, float(dist.sample(rng, 1)[0]))


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
        #: the instance it replaces (a move), until its workloads number on from that one's
        self.follows: Instance | None = None
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

    def follow(self, previous: Instance) -> None:
        """Number its jobs on from ``previous``'s (the instance of its app it replaces,
        on a move), so job ids stay unique: now, or once its late workloads are built."""
        self.follows = previous if self.workload_specs() else None  # a VM: its guest's
        self._follow()

    def _follow(self) -> None:
        previous = self.follows
        if previous is None or not self.workloads:
            return
        self.follows = None
        if not previous.workloads:  # it never ran (late workloads): nothing to go on from
            return
        for new_wl, old_wl in zip(self.workloads, previous.workloads, strict=True):
            if isinstance(new_wl, JobWorkload):
                new_wl.follow(old_wl)  # type: ignore[arg-type]

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
            self._follow()
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
        return sum(wl.in_flight for wl in self.workloads if isinstance(wl, JobWorkload))

    def _hold(self, drop_jobs: bool) -> int:
        """Cap its workloads at 0; drop the jobs in flight if asked; return how many."""
        lost = 0
        for wl in self.workloads:
            if drop_jobs and isinstance(wl, JobWorkload) and wl.in_flight:
                parent = wl.parent
                self.host.detach(wl)
                jobs = wl.take_jobs()
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
