"""Host: a physical server with cores, per-core speed, RAM and a power model.

A host owns its CPU tree (root node named after the host) and the
:class:`~fleet_sim.model.scheduler.HostCpuScheduler` that shares its cores. It
turns the scheduler's callbacks into rows of the ``hosts``, ``workloads``,
``instances`` and ``jobs`` tables through the injected Recorder.

Time: the scheduler runs lazily (see scheduler module). Anything that touches the
host from a SimPy process calls :meth:`sync` first, which brings the host up to
``env.now``; :meth:`finalize` brings it to the end of the run. With
``eager=True`` the host also wakes SimPy at each of its own events, for models
that must react to a job completion the moment it happens. One-off work
(:meth:`run`, e.g. unpacking an image layer) wakes SimPy only for itself: at its
projected finish while it runs at full speed (it can only slow down then), at each
of the host's own events while it gets less (it may speed up at any of them).
"""

from __future__ import annotations

import math

import simpy

from fleet_sim.model.cputree import INSTANCES, WORKLOADS, CpuNode, CpuShare
from fleet_sim.model.jobs import FINISHED, JOB_COLUMNS, Job
from fleet_sim.model.protocols import NullRecorder, Recorder
from fleet_sim.model.scheduler import HostCpuScheduler

#: the recorded columns of the hosts table (``results.tables`` derives utilization and power)
HOST_COLUMNS = ("t", "host", "cpu_used_cores", "cpu_capacity_cores", "ram_used_mib",
                "power_state_w")
#: host power states (:meth:`Host.set_power_state`)
POWER_STATES = ("on", "off", "booting")
NODE_COLUMNS = ("t", "workload", "host", "instance", *CpuShare._fields)
INSTANCE_COLUMNS = ("t", "instance", "host", *CpuShare._fields)


class Host:
    """One server. ``cores`` (physical), ``speed`` (work per core-second relative to
    nominal), ``ram_mib``, ``power`` (anything with ``power_w(util)``, e.g.
    :class:`fleet_sim.numerics.power.LinearPower`; without one, ``power_w`` is
    recorded as NaN rather than a made-up number — scenarios pass the published
    default from :mod:`fleet_sim.hosting.defaults`)."""

    def __init__(self, env: simpy.Environment, name: str, cores: float, ram_mib: float = 65_536,
                 speed: float = 1.0, power=None, recorder: Recorder | None = None,
                 eager: bool = False):
        if not cores > 0 or not ram_mib > 0 or not speed > 0:
            raise ValueError(f"host {name}: cores, ram_mib and speed must be > 0")
        self.env = env
        self.name = name
        self.cores = float(cores)
        self.speed = float(speed)
        self.ram_mib = float(ram_mib)
        self.power = power
        self.recorder = recorder or NullRecorder()
        self.eager = eager
        self.up = True
        self.power_state = "on"  #: one of POWER_STATES
        self.root = CpuNode(name)
        self.cpu = HostCpuScheduler(cores, self.root, speed)
        self._wake_at = math.inf
        self._wake_ev: simpy.Event | None = None  # the armed wake (others are superseded)
        self._errands: dict[Job, simpy.Event] = {}  # one-off work -> its done event
        rec = self.recorder
        self._host_row = self._host_series(math.nan)
        self._job_row = rec.columns("jobs", JOB_COLUMNS)
        if self._host_row is not None:
            self.cpu.on_host = self._host_row
            self._host_row((0.0, 0.0, 0.0))
        recorded = frozenset(t for t in (WORKLOADS, INSTANCES) if rec.wants(t))
        if recorded:
            self.cpu.on_node = self._node_writer()
            self.cpu.recorded_tables = recorded
        self.cpu.on_job_done = self._on_job_done

    # ------------------------------------------------------------------ time
    def sync(self) -> None:
        """Bring the host's CPU state up to ``env.now``."""
        self.cpu.advance(self.env.now)

    def woke(self) -> None:
        """Call after a change from outside: in eager mode, make sure SimPy wakes this
        host at its next own event; with one-off work running, when that work may end."""
        if not self.eager and not self._errands:
            return
        nxt = self.cpu.next_time() if self.eager else self._errand_due()
        if nxt is not None and nxt < self._wake_at:
            self._wake_at = nxt
            ev = self._wake_ev = self.env.timeout(max(0.0, nxt - self.env.now))
            ev.callbacks.append(self._wake)

    def _errand_due(self) -> float | None:
        """The earliest time one-off work may end: its projected finish if it runs at
        full speed, else the host's next own event (None: nothing can end by itself)."""
        due = math.inf
        full = self.speed
        cpu = self.cpu
        for job in self._errands:
            if job.rate < job.max_cores * full:
                return cpu.next_time()
            due = min(due, cpu.now + cpu.remaining(job) / job.rate)
        return due if due > self.env.now else self.cpu.next_time()

    def _wake(self, event: simpy.Event) -> None:
        if event is not self._wake_ev:
            return  # superseded by an earlier wake, which armed the next one
        self._wake_at = math.inf
        self._wake_ev = None
        self.sync()
        self.woke()

    def run(self, parent: CpuNode, work_core_s: float, max_cores: float = 1.0) -> simpy.Event:
        """Run one-off work now: ``work_core_s`` core-s on at most ``max_cores``, a job
        under ``parent`` sharing the host's cores with everything else. The event
        succeeds at the exact time the work is done. The job belongs to no workload:
        it counts in the host's CPU use, not in the ``jobs`` table."""
        self.sync()
        job = Job(work_core_s, max_cores, arrival=self.env.now)
        done = self._errands[job] = self.env.event()
        self.cpu.submit(job, parent)
        self.woke()
        return done

    def finalize(self, t_end: float) -> None:
        """Advance to ``t_end`` (end of the run)."""
        self.cpu.advance(t_end)

    # ------------------------------------------------------------------ tree
    def attach(self, node: CpuNode, parent: CpuNode | None = None) -> CpuNode:
        """Hang ``node`` under ``parent`` (default: the host's root) now."""
        self.sync()
        self.cpu.attach(node, parent if parent is not None else self.root)
        self.woke()
        return node

    def detach(self, node: CpuNode) -> list:
        """Remove ``node`` and its subtree now; return its unfinished jobs."""
        self.sync()
        jobs = self.cpu.detach(node)
        self.woke()
        return jobs

    def move(self, node: CpuNode, target: Host, parent: CpuNode) -> None:
        """Move ``node``'s subtree to ``target``'s tree, below ``parent``, now (a VM
        migrating): its jobs keep the work they have left, the feeds that change its
        nodes fire on ``target`` from now on, and nodes with a ``host`` belong to
        ``target``. Its recorded rows end here with a row of zeros and go on in
        ``target``'s series. Raises ValueError for a subtree whose usage is metered or
        watched (a cgroup quota: not moved)."""
        nodes = []
        stack = [node]
        while stack:
            n = stack.pop()
            nodes.append(n)
            if not n.is_job:
                stack.extend(n.children)
        hooked = [n.name for n in nodes if self.cpu.hooked(n)]
        if hooked:
            raise ValueError(f"cannot move {node.name} from {self.name}: its quota'd "
                             f"cgroups ({', '.join(hooked)}) are not moved between hosts")
        self.sync()
        target.sync()
        inner = [n for n in nodes if not n.is_job]
        self.cpu.detach(node)  # its series here end with a row of zeros
        feeds = self.cpu.take_feeds(set(nodes))
        for n in inner:
            if hasattr(n, "host"):
                n.host = target  # type: ignore[attr-defined]
        target.cpu.attach(node, parent)
        for t, feed in feeds:
            target.cpu.add_feed(feed, t)
        self.woke()
        target.woke()

    def set_demand(self, node: CpuNode, cores: float, weight: float | None = None) -> None:
        """A leaf's demand changes now (cores)."""
        self.sync()
        self.cpu.set_demand(node, cores, weight)
        self.woke()

    def set_ram_used(self, ram_used_mib: float) -> None:
        """Record the host's RAM in use now (MiB)."""
        self.sync()
        self.cpu.ram_used_mib = ram_used_mib
        if self._host_row is not None:
            self._host_row((self.env.now, self.root.alloc, ram_used_mib))

    # ------------------------------------------------------------------ power
    def set_power_state(self, state: str, watts: float = 0.0) -> None:
        """Switch the host ``"off"`` or ``"booting"`` (no CPU for anything on it,
        ``watts`` W drawn) or back ``"on"`` (power from its curve at its utilization),
        now. Its ``hosts`` rows carry the state as ``power_state_w``: NaN while on, else
        the power drawn (W)."""
        if state not in POWER_STATES:
            raise ValueError(f"host {self.name}: unknown power state {state!r}; "
                             f"valid: {', '.join(POWER_STATES)}")
        if not watts >= 0:
            raise ValueError(f"host {self.name}: power must be >= 0 W, got {watts!r}")
        self.sync()
        self.power_state = state
        self.cpu.set_limits(self.root, cap=math.inf if state == "on" else 0.0)
        if self._host_row is not None:  # a new series: same key, the new state
            self._host_row = self.cpu.on_host = self._host_series(
                math.nan if state == "on" else float(watts))
            self._host_row((self.env.now, self.root.alloc, self.cpu.ram_used_mib))
        self.woke()

    def _host_series(self, power_state_w: float):
        return self.recorder.series("hosts", HOST_COLUMNS,
                                    {"host": self.name, "cpu_capacity_cores": self.cores,
                                     "power_state_w": power_state_w})

    # ------------------------------------------------------------------ recording
    @property
    def ram_used_mib(self) -> float:
        """RAM in use now (MiB); see :meth:`set_ram_used`."""
        return self.cpu.ram_used_mib

    @property
    def utilization(self) -> float:
        """Cores in use / cores, now."""
        return self.root.alloc / self.cores

    def _node_writer(self):
        """The scheduler's ``on_node``: a series of the node's table for one node."""
        host, rec = self.name, self.recorder

        def series(node: CpuNode):
            if node.table == WORKLOADS:
                key = {"workload": node.name, "host": host, "instance": node.instance}
                return rec.series(WORKLOADS, NODE_COLUMNS, key)
            return rec.series(INSTANCES, INSTANCE_COLUMNS, {"instance": node.name, "host": host})

        return series

    def record_job(self, job, outcome: str) -> None:
        """One row of the ``jobs`` table: ``job`` ended here with ``outcome`` (finished,
        failed or unfinished; the last two have finish NaN)."""
        if self._job_row is not None:
            wl = job.workload
            finish = job.finish if outcome == FINISHED else math.nan
            start = math.nan if job.start is None else job.start
            self._job_row(job.job_id, wl.label, self.name, job.arrival, start, finish,
                          job.work_core_s, job.max_cores, wl.instance, outcome)

    def _on_job_done(self, job) -> None:
        if job.workload is None:  # one-off work (:meth:`run`)
            self._errands.pop(job).succeed()
            return
        self.record_job(job, FINISHED)
        if job.workload.keep_jobs:
            job.workload.finished.append(job)
