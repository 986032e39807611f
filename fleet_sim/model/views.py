"""Read-only snapshots the policies decide on, and the actions they answer with.

Frozen dataclasses, enums and read-only numpy columns only (no SimPy), so policies
never touch live model objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Protocol

import numpy as np

# --- rollout ---------------------------------------------------------------------


class InstanceState(Enum):
    """Where one app instance is in its life, as a rollout strategy sees it."""

    ABSENT = "absent"  #: none on this host: never created, retired, or discarded
    PROVISIONING = "provisioning"  #: created: transferring, installing, starting or checking
    HEALTHY = "healthy"  #: passed its health check and serves
    FAILED = "failed"  #: gave up after its retries


_HEALTHY, _PROVISIONING = InstanceState.HEALTHY, InstanceState.PROVISIONING


@dataclass(frozen=True, slots=True)
class SlotView:
    """One replica's place (slot) for the app during a rollout; ``host`` names the
    slot (the replica; actions name it too).

    ``old``: the serving instance of the version being replaced (HEALTHY, or
    ABSENT once retired); ``new``: its replacement, of the target version.
    During a rollback the roles swap.
    """

    host: str
    old: InstanceState
    new: InstanceState

    @property
    def done(self) -> bool:
        """Nothing left to do here: the new instance serves alone, or it failed."""
        return self.new is InstanceState.FAILED or (
            self.new is InstanceState.HEALTHY and self.old is InstanceState.ABSENT)


@dataclass(frozen=True)
class RolloutView:
    """The fleet as a rollout strategy sees it: one slot per host, in rollout order.

    ``in_place``: a host holds one version at a time (bare metal: one shared OS),
    so a new instance may be created only where the old one is gone — no surge.
    ``rolling_back``: the rollout was aborted and is restoring the old version.
    """

    slots: tuple[SlotView, ...]
    in_place: bool = False
    rolling_back: bool = False

    @property
    def replicas(self) -> int:
        """Desired number of serving instances (one per host)."""
        return len(self.slots)

    @cached_property
    def _counts(self) -> tuple[int, int, int]:
        """(healthy, alive, provisioning) in one pass over the slots."""
        healthy = alive = provisioning = 0
        for s in self.slots:
            old, new = s.old, s.new
            if old is _HEALTHY:
                healthy += 1
                alive += 1
            elif old is _PROVISIONING:
                alive += 1
            if new is _HEALTHY:
                healthy += 1
                alive += 1
            elif new is _PROVISIONING:
                alive += 1
                provisioning += 1
        return healthy, alive, provisioning

    @property
    def healthy(self) -> int:
        """Serving instances, old and new."""
        return self._counts[0]

    @property
    def alive(self) -> int:
        """Instances that exist (provisioning or serving), old and new."""
        return self._counts[1]

    @property
    def provisioning(self) -> int:
        """New instances still on their way up."""
        return self._counts[2]

    @property
    def unavailable(self) -> int:
        """Replicas short of serving: ``replicas - healthy`` (negative while surging)."""
        return self.replicas - self.healthy

    @property
    def surge(self) -> int:
        """Instances beyond the replicas: ``alive - replicas`` (negative when short)."""
        return self.alive - self.replicas

    @property
    def done(self) -> bool:
        """Every slot is done."""
        return all(s.done for s in self.slots)


@dataclass(frozen=True, slots=True)
class Create:
    """Start provisioning a new instance on ``host``."""

    host: str


@dataclass(frozen=True, slots=True)
class Retire:
    """Stop the old instance on ``host`` (at once)."""

    host: str


@dataclass(frozen=True, slots=True)
class Abort:
    """Give up on the new version and roll back, for ``reason``."""

    reason: str


RolloutAction = Create | Retire | Abort


# --- placement -------------------------------------------------------------------

#: slack (cores, MiB) when comparing sums of float requests with a capacity
FIT_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """What one instance needs from a host, as a placement policy sees it.

    ``cpu_cores``: committed against the host's shared cores × ``cpu_ratio``, or
    taken whole from its cores when ``dedicated`` (a pinned VM, an exclusive cpuset).
    ``ram_mib``: reserved. ``dependencies``: (name, version) pairs that must not
    conflict with the versions installed on a shared OS (empty when the instance
    brings its own OS or image).
    """

    name: str
    cpu_cores: float
    ram_mib: float
    dependencies: tuple[tuple[str, str], ...] = ()
    dedicated: bool = False


class PowerCurve(Protocol):
    """Power (W) as a function of CPU utilization in [0, 1] (``numerics.power`` models)."""

    def power_w(self, util: float) -> float: ...
    def power_w_array(self, util: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class HostCapacity:
    """What a host offers: ``cores`` × ``core_mips`` of CPU, ``ram_mib``, network
    ``bandwidth_mb_s`` (MB/s, for migrations and VM reservations), its ``power`` curve."""

    cores: int
    core_mips: float
    ram_mib: float
    bandwidth_mb_s: float
    power: PowerCurve

    @property
    def mips(self) -> float:
        """Total CPU capacity (MIPS)."""
        return self.cores * self.core_mips


@dataclass(frozen=True, slots=True)
class HostView:
    """One host as placement sees it (cores, MiB).

    ``cores``: physical cores; ``cpu_ratio``: overcommit ratio of the shared cores
    (cores not dedicated); ``committed_cpu_cores``: shared requests placed;
    ``dedicated_cores``: cores taken whole; ``ram_mib``: RAM capacity;
    ``reserved_ram_mib``: RAM reserved (OS footprints included);
    ``dependencies``: (name, version) installed on its shared OS.
    """

    name: str
    cores: float
    ram_mib: float
    cpu_ratio: float = 1.0
    committed_cpu_cores: float = 0.0
    dedicated_cores: float = 0.0
    reserved_ram_mib: float = 0.0
    instance_count: int = 0
    dependencies: tuple[tuple[str, str], ...] = ()
    up: bool = True

    @property
    def cpu_capacity_cores(self) -> float:
        """Shared cores × overcommit ratio: what shared requests may add up to."""
        return (self.cores - self.dedicated_cores) * self.cpu_ratio

    @property
    def free_cpu_cores(self) -> float:
        """Shared CPU left to commit (cores × ratio − committed)."""
        return self.cpu_capacity_cores - self.committed_cpu_cores

    @property
    def free_ram_mib(self) -> float:
        """RAM not reserved (MiB)."""
        return self.ram_mib - self.reserved_ram_mib

    def conflicts(self, request: PlacementRequest) -> tuple[str, ...]:
        """Dependencies the request needs in a version other than the installed one."""
        installed = dict(self.dependencies)
        return tuple(f"{dep} {version} (installed: {installed[dep]})"
                     for dep, version in request.dependencies
                     if installed.get(dep, version) != version)

    def why_not(self, request: PlacementRequest) -> str:
        """Why ``request`` does not fit here ('' when it fits)."""
        if not self.up:
            return f"host {self.name} is down"
        if request.dedicated:
            left = self.cores - self.dedicated_cores - request.cpu_cores
            if left < -FIT_EPS or self.committed_cpu_cores > left * self.cpu_ratio + FIT_EPS:
                return (f"needs {request.cpu_cores:g} dedicated cores, host {self.name} has "
                        f"{self.cores - self.dedicated_cores:g} not dedicated with "
                        f"{self.committed_cpu_cores:g} cores committed on them")
        elif request.cpu_cores > self.free_cpu_cores + FIT_EPS:
            return (f"needs {request.cpu_cores:g} cores, host {self.name} has "
                    f"{max(0.0, self.free_cpu_cores):g} of {self.cpu_capacity_cores:g} free "
                    f"(cores × overcommit ratio {self.cpu_ratio:g})")
        if request.ram_mib > self.free_ram_mib + FIT_EPS:
            return (f"needs {request.ram_mib:g} MiB, host {self.name} has "
                    f"{max(0.0, self.free_ram_mib):g} of {self.ram_mib:g} MiB free")
        bad = self.conflicts(request)
        if bad:
            return f"dependency conflict on host {self.name}'s shared OS: {', '.join(bad)}"
        return ""

    def fits(self, request: PlacementRequest) -> bool:
        """Whether ``request`` fits: CPU (with the ratio), RAM and dependencies."""
        if not self.up or request.ram_mib > self.ram_mib - self.reserved_ram_mib + FIT_EPS:
            return False
        if request.dedicated:
            left = self.cores - self.dedicated_cores - request.cpu_cores
            if left < -FIT_EPS or self.committed_cpu_cores > left * self.cpu_ratio + FIT_EPS:
                return False
        elif request.cpu_cores > self.free_cpu_cores + FIT_EPS:
            return False
        return not (request.dependencies and self.dependencies and self.conflicts(request))

    def with_placed(self, request: PlacementRequest) -> HostView:
        """This host after ``request`` is placed on it."""
        deps = dict(self.dependencies)
        deps.update(request.dependencies)
        return HostView(
            name=self.name, cores=self.cores, ram_mib=self.ram_mib, cpu_ratio=self.cpu_ratio,
            committed_cpu_cores=self.committed_cpu_cores + (
                0.0 if request.dedicated else request.cpu_cores),
            dedicated_cores=self.dedicated_cores + (
                request.cpu_cores if request.dedicated else 0.0),
            reserved_ram_mib=self.reserved_ram_mib + request.ram_mib,
            instance_count=self.instance_count + 1,
            dependencies=tuple(sorted(deps.items())), up=self.up)


class HostTable:
    """The numbers of a fleet's :class:`HostView` s as read-only columns (one entry per
    host, in fleet order), for policies that look at every host at once. Its
    arithmetic is :class:`HostView`'s, element by element, so it gives the same
    floats. The float columns are rows of one array, the flags of another, so an
    update copies two arrays."""

    NUMBERS = ("cores", "ram_mib", "cpu_ratio", "committed_cpu_cores", "dedicated_cores",
               "reserved_ram_mib", "cpu_capacity_cores")
    FLAGS = ("up", "has_dependencies")  #: up; something installed on its shared OS
    __slots__ = ("_flags", "_numbers", *NUMBERS, *FLAGS)

    def __init__(self, numbers: np.ndarray, flags: np.ndarray):
        numbers.flags.writeable = flags.flags.writeable = False
        self._numbers, self._flags = numbers, flags
        for name, column in zip(self.NUMBERS, numbers, strict=True):
            setattr(self, name, column)
        for name, column in zip(self.FLAGS, flags, strict=True):
            setattr(self, name, column)

    @staticmethod
    def _row(v: HostView) -> tuple[tuple[float, ...], tuple[bool, bool]]:
        return ((v.cores, v.ram_mib, v.cpu_ratio, v.committed_cpu_cores, v.dedicated_cores,
                 v.reserved_ram_mib, v.cpu_capacity_cores), (v.up, bool(v.dependencies)))

    @classmethod
    def of(cls, hosts: Sequence[HostView]) -> HostTable:
        """The columns of ``hosts``."""
        rows = [cls._row(v) for v in hosts]
        numbers = np.array([r[0] for r in rows], dtype=np.float64).reshape(len(rows), 7)
        flags = np.array([r[1] for r in rows], dtype=bool).reshape(len(rows), 2)
        return cls(numbers.T.copy(), flags.T.copy())

    def updated(self, changes: Mapping[int, HostView]) -> HostTable:
        """This table with the entries of ``changes`` (index → view) replaced."""
        numbers, flags = self._numbers.copy(), self._flags.copy()
        for i, v in changes.items():
            numbers[:, i], flags[:, i] = self._row(v)
        return HostTable(numbers, flags)

    def columns(self) -> dict[str, np.ndarray]:
        """Every column by name."""
        return {name: getattr(self, name) for name in (*self.NUMBERS, *self.FLAGS)}

    def fits_resources(self, request: PlacementRequest) -> np.ndarray:
        """:meth:`HostView.fits` of every host but the dependency check: up, RAM and CPU
        (with the ratio, or dedicated cores)."""
        ok = self.up & ~(request.ram_mib > self.ram_mib - self.reserved_ram_mib + FIT_EPS)
        if request.dedicated:
            left = self.cores - self.dedicated_cores - request.cpu_cores
            ok &= ~((left < -FIT_EPS)
                    | (self.committed_cpu_cores > left * self.cpu_ratio + FIT_EPS))
        else:
            free_cpu = self.cpu_capacity_cores - self.committed_cpu_cores
            ok &= ~(request.cpu_cores > free_cpu + FIT_EPS)
        return ok


@dataclass(frozen=True, slots=True)
class FleetView:
    """The hosts a placement policy chooses from, in fleet order."""

    hosts: tuple[HostView, ...]
    _table: HostTable | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.hosts)

    def __iter__(self):
        return iter(self.hosts)

    @property
    def table(self) -> HostTable:
        """The hosts' numbers as columns (built once per view, carried over by
        :meth:`updated`)."""
        table = self._table
        if table is None:
            table = HostTable.of(self.hosts)
            object.__setattr__(self, "_table", table)
        return table

    def fits(self, request: PlacementRequest) -> np.ndarray:
        """:meth:`HostView.fits` of every host, as a bool column."""
        ok = self.table.fits_resources(request)
        if request.dependencies:
            hosts = self.hosts
            for i in np.flatnonzero(ok & self.table.has_dependencies):
                if hosts[i].conflicts(request):
                    ok[i] = False
        return ok

    def replaced(self, index: int, view: HostView) -> FleetView:
        """This fleet with host ``index`` replaced by ``view``."""
        return self.updated({index: view})

    def updated(self, changes: Mapping[int, HostView]) -> FleetView:
        """This fleet with the hosts of ``changes`` (index → view) replaced."""
        hosts = list(self.hosts)
        for i, v in changes.items():
            hosts[i] = v
        table = self._table
        return FleetView(tuple(hosts), None if table is None else table.updated(changes))
