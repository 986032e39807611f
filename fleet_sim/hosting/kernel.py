"""A running OS, a host's or a VM's guest (docs/model.md §2, §4).

A :class:`Kernel` owns the CPU node its processes hang under, the admission book (CPU
committed against cores × overcommit ratio, dedicated cores, installed dependency
versions), a RAM :class:`~fleet_sim.model.memory.MemoryLedger` and the OOM killer
that acts on it: an OOM kill loses the jobs in flight. What placement sees of it, its
:meth:`Kernel.view`, is kept until admission, release, installs, footprints or its
up state change it; ``on_view_change`` callbacks hear of each such change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import simpy

from fleet_sim.errors import CapacityError, ConflictError
from fleet_sim.model.cputree import CpuNode
from fleet_sim.model.host import Host
from fleet_sim.model.memory import MemoryLedger
from fleet_sim.model.views import HostView, PlacementRequest

if TYPE_CHECKING:
    from fleet_sim.hosting.instance import Instance


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
        self._up = True
        self._view: HostView | None = None
        #: called (no arguments) each time :meth:`view` changes
        self.on_view_change: list[Callable[[], None]] = []
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
    @property
    def up(self) -> bool:
        """Whether the kernel runs (False once its host failed, until repaired)."""
        return self._up

    @up.setter
    def up(self, up: bool) -> None:
        if up != self._up:
            self._up = up
            self._view_changed()

    def _view_changed(self) -> None:
        self._view = None
        for fn in self.on_view_change:
            fn()

    def installed(self) -> dict[str, str]:
        """Dependency versions installed on this kernel (name → version)."""
        out: dict[str, str] = {}
        for deps in self._deps.values():
            out.update(deps)
        return out

    def view(self) -> HostView:
        """What placement sees of this kernel (named after the host for a host OS); one
        view object until it changes."""
        if self._view is None:
            self._view = self._build_view()
        return self._view

    def _build_view(self) -> HostView:
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
        self._view_changed()
        self._memory_changed()

    def install(self, inst: Instance, deps: Sequence[tuple[str, str]]) -> tuple[str, ...]:
        """Install ``deps`` for ``inst`` now; return the conflicts (nothing installed then)."""
        bad = self.conflicts(deps)
        if not bad and deps:
            self._deps[inst.name] = tuple(self._deps.get(inst.name, ())) + tuple(deps)
            self._view_changed()
        return bad

    def release(self, inst: Instance) -> None:
        """Undo ``inst``'s admission: its CPU commitment, RAM account and dependencies."""
        if self.instances.pop(inst.name, None) is None:
            return
        self._requests.pop(inst.name)
        self._deps.pop(inst.name, None)
        self.memory.close(inst.name)
        self._view_changed()
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
        self._view_changed()
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
