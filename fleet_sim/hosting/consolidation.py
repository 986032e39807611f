"""A fleet whose guests move: trace-driven guests, live migrations, host power states
(docs/model.md §12.5–§12.7).

:class:`DynamicFleet` holds hosts and guests as arrays (CPU in MIPS, as in CloudSim,
RAM in MiB) and runs two things in SimPy: each guest's demand, a row of a trace
(CPU % of its MIPS, one sample per ``trace_interval_s``), and a controller that every
``interval_s`` hands a read-only :class:`FleetState` to a pure decision function
(``decide``) and carries out what it returns: moves of guests to other hosts. A host
holding no guest and none coming is switched off (0 W) at once; a host chosen as a
target while off is switched on first (``PowerStates``: ``switch_on_s`` at
``switch_on_w``; zeros reproduce CloudSim).

CPU on a host (CloudSim's time-shared scheduler with over-subscription): a guest asks
for its demand, at most its vCPUs × the host's core MIPS; when the asks add up to
more than the host's MIPS, every ask is scaled down by the same factor. How a guest
moves depends on the hosting ``mode``:

- ``"vm"``: a live migration (:mod:`fleet_sim.hosting.migration`): it keeps running
  on the source with ``1 − cpu_loss`` of its ask; the target reserves ``cpu_loss`` of
  its demand and its RAM; with pre-copy it pauses for the stop-and-copy downtime at
  the end.
- ``"container"``: stop, pull what the target host's layer cache lacks of its image
  (the shared base layers, its own layer) from the registry, start: it gets no CPU
  from the stop to the start (downtime).
- ``"baremetal"``: apps installed on a shared OS never move (no decisions are asked).

Transfers: a pre-copy's rounds and a container's pull are transfers on the fleet's
network (:mod:`fleet_sim.images.network`), shared max-min with every other transfer
of the moment; a host's migrations get at most half its NIC each way (limit links
``<host>.migration-out`` / ``-in``; the other half is left to its guests, as CloudSim
leaves it). CloudSim's model is its own closed form: each migration RAM over half the
slower NIC, whatever else moves at the time.

Accounting, as in CloudSim: a host's *requested* MIPS is the full demand of the guests
on it and coming to it; its *utilization* MIPS counts a migrating guest's CPU on the
source in full (the loss is the guest's, not the host's) and on the target only what
is reserved. Every change is recorded as a change point (:class:`FleetRecord`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import simpy
from simpy.events import ProcessGenerator

from fleet_sim.hosting.defaults import (
    CONTAINER_APP_LAYER_MB,
    CONTAINER_BASE_LAYER_MB,
    MAX_CONCURRENT_DOWNLOADS,
    REGISTRY_UPLINK_MB_S,
)
from fleet_sim.hosting.migration import (
    MIGRATION_CPU_LOSS,
    cloudsim_migration,
    precopy_rounds,
)
from fleet_sim.images.cache import LayerCache
from fleet_sim.images.network import Network
from fleet_sim.images.registry import Distributor, Registry
from fleet_sim.images.supply import FIRST_VERSION, container_image
from fleet_sim.model.protocols import NullRecorder, Recorder
from fleet_sim.model.views import HostCapacity

NOMINAL_CORE_MIPS = 1000.0
"""MIPS of a core of speed 1.0: a host core of ``speed`` s runs s × 1000 MIPS."""
#: host power states
OFF, BOOTING, ON = 0, 1, 2
MOVE_MODES = ("vm", "container", "baremetal")
MIGRATION_MODELS = ("cloudsim", "precopy")
#: the registry's node on the network a fleet makes for itself
REGISTRY = "registry"


@dataclass(frozen=True)
class GuestType:
    """A guest size: ``mips`` (all its vCPUs), ``ram_mib``, ``vcpus``."""

    mips: float
    ram_mib: float
    vcpus: int = 1


CLOUDSIM_VM_TYPES = (GuestType(2500, 870), GuestType(2000, 1740), GuestType(1000, 1740),
                     GuestType(500, 613))
"""The four VM types of CloudSim's PlanetLab examples, assigned in contiguous blocks."""


def block_types(n: int, types: Sequence[GuestType] = CLOUDSIM_VM_TYPES) -> list[GuestType]:
    """The type of each of ``n`` guests: blocks of ⌈n / len(types)⌉ in order (CloudSim)."""
    size = max(1, math.ceil(n / len(types)))
    return [types[min(i // size, len(types) - 1)] for i in range(n)]


@dataclass(frozen=True)
class DynamicHost:
    """A host of the dynamic fleet: its ``name`` and what it offers."""

    name: str
    capacity: HostCapacity


@dataclass(frozen=True)
class PowerStates:
    """Host power states: a switched-off host draws 0 W; switching one on takes
    ``switch_on_s`` at ``switch_on_w``. ``peak_always``: hosts that are on draw their
    peak power whatever their load (CloudSim's NPA baseline)."""

    switch_on_s: float = 0.0
    switch_on_w: float = 0.0
    peak_always: bool = False


@dataclass(frozen=True)
class MoveParams:
    """How a guest moves (see the module docstring): ``mode``; for VMs the
    ``migration`` model (``"cloudsim"`` | ``"precopy"``), ``cpu_loss`` (fraction),
    pre-copy's ``dirty_mb_s``, ``stop_mb``, ``max_rounds``; for containers ``stop_s``,
    ``start_s`` and the image: ``base_layers_mb`` (shared by all, base first) under
    ``app_layer_mb`` (each its own), MB; ``registry_mb_s``: the uplink of the registry
    of a fleet that makes its own network."""

    mode: str = "vm"
    migration: str = "cloudsim"
    cpu_loss: float = MIGRATION_CPU_LOSS
    dirty_mb_s: float = 10.0
    stop_mb: float = 50.0
    max_rounds: int = 30
    stop_s: float = 2.0
    start_s: float = 1.0
    base_layers_mb: tuple[float, ...] = (CONTAINER_BASE_LAYER_MB,)
    app_layer_mb: float = CONTAINER_APP_LAYER_MB
    registry_mb_s: float = REGISTRY_UPLINK_MB_S

    def __post_init__(self) -> None:
        if self.mode not in MOVE_MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid: {', '.join(MOVE_MODES)}")
        if self.migration not in MIGRATION_MODELS:
            raise ValueError(f"unknown migration {self.migration!r}; "
                             f"valid: {', '.join(MIGRATION_MODELS)}")
        if not 0 <= self.cpu_loss < 1:
            raise ValueError(f"cpu_loss must be in [0, 1), got {self.cpu_loss!r}")


@dataclass(frozen=True)
class FleetState:
    """What a decision sees at time ``t`` (read-only arrays; index = host or guest).

    Hosts: ``host_mips``, ``host_core_mips``, ``host_ram_mib``, ``host_bandwidth_mb_s``,
    ``host_used_mips`` (utilization MIPS now), ``host_state`` (OFF, BOOTING, ON).
    Guests: ``vm_mips``, ``vm_vcpus``, ``vm_ram_mib``, ``vm_demand_mips`` (asked now),
    ``vm_host`` (where it runs), ``vm_target`` (where it is moving, −1: not moving),
    ``history``: utilization (fraction of its MIPS) per trace sample so far, oldest
    first, shape (guests, samples).
    """

    t: float
    host_mips: np.ndarray
    host_core_mips: np.ndarray
    host_ram_mib: np.ndarray
    host_bandwidth_mb_s: np.ndarray
    host_used_mips: np.ndarray
    host_state: np.ndarray
    vm_mips: np.ndarray
    vm_vcpus: np.ndarray
    vm_ram_mib: np.ndarray
    vm_demand_mips: np.ndarray
    vm_host: np.ndarray
    vm_target: np.ndarray
    history: np.ndarray


#: a round's decision: (guest, target host) moves, in the order to start them
Decide = Callable[[FleetState], Sequence[tuple[int, int]]]
#: the initial placement: a host index per guest (−1: none fits)
Place = Callable[[FleetState], Sequence[int]]


@dataclass
class _Series:
    """Change points of several entities, appended in time order: as arrays (many at a
    time) or as rows (one entity)."""

    columns: tuple[str, ...]
    chunks: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    rows: list[float] = field(default_factory=list)  #: the rows one after the other
    seq: int = 0

    def add(self, t: float, idx: np.ndarray, *values: np.ndarray) -> None:
        if idx.size:
            self.chunks.append((np.full(idx.size, float(self.seq)), np.full(idx.size, t), idx,
                                *values))
            self.seq += 1

    def row(self, t: float, idx: int, values: tuple[float, ...]) -> None:
        self.rows.extend((float(self.seq), t, float(idx), *values))
        self.seq += 1

    def split(self, n: int) -> list[dict[str, np.ndarray]]:
        """Per entity (0 … n − 1): its change points, columns ``t`` and ``columns``."""
        seq, t, index, *values = _stack(self.chunks, self.rows, 3 + len(self.columns))
        index = index.astype(np.int64)
        order = np.lexsort((seq, index))
        return _per_entity(index[order], {name: c[order] for name, c in
                                          zip(("t", *self.columns), (t, *values), strict=True)},
                           n)


def _stack(chunks: list[tuple[np.ndarray, ...]], rows: list[float],
           width: int) -> list[np.ndarray]:
    """The ``width`` columns of ``chunks`` (tuples of arrays) followed by ``rows`` (flat,
    ``width`` values a row), each as one array."""
    parts = list(chunks)
    if rows:
        parts.append(tuple(np.array(rows).reshape(-1, width).T))
    if not parts:
        return [np.zeros(0) for _ in range(width)]
    return [np.concatenate(c) for c in zip(*parts, strict=True)]


def _per_entity(index: np.ndarray, columns: dict[str, np.ndarray],
                n: int) -> list[dict[str, np.ndarray]]:
    """``columns`` (rows sorted by entity ``index``, int) split per entity 0 … n − 1."""
    bounds = np.searchsorted(index, np.arange(n + 1))
    return [{k: v[bounds[i]:bounds[i + 1]] for k, v in columns.items()} for i in range(n)]


class _GuestSeries:
    """Guests' CPU change points, kept while running as what changes them: a guest's own
    row (its demand, its ask after a move's loss, migrating, its host) and its host's
    scale factor of the asks, each at a *step* (one re-share). A host whose scale moves
    costs one entry, not a row per guest on it; :meth:`split` multiplies them out."""

    OWN_WIDTH = 7
    """Fields of an own row: step, t, guest, requested_mips, ask_mips, migrating, host."""

    def __init__(self) -> None:
        self.own: list[tuple[np.ndarray, ...]] = []
        self.own_rows: list[float] = []
        self.scales: list[tuple[np.ndarray, ...]] = []
        self.scale_rows: list[float] = []
        self.step = 0

    def add(self, t: float, guests: np.ndarray, demand: np.ndarray, ask: np.ndarray,
            migrating: np.ndarray, host: np.ndarray) -> None:
        """Every guest's own row at this step (arrays)."""
        step = np.full(guests.size, float(self.step))
        self.own.append((step, np.full(guests.size, t), guests.astype(float), demand, ask,
                         migrating, host.astype(float)))

    def row(self, t: float, guest: int, demand: float, ask: float, migrating: float,
            host: int) -> None:
        """One guest's own row at this step."""
        self.own_rows.extend((float(self.step), t, float(guest), demand, ask, migrating,
                              float(host)))

    def scale(self, t: float, hosts: np.ndarray | int, factor: np.ndarray | float) -> None:
        """The scale factor of ``hosts`` from this step on."""
        if isinstance(hosts, int):
            self.scale_rows.extend((float(self.step), t, float(hosts), float(factor)))
        elif hosts.size:
            self.scales.append((np.full(hosts.size, float(self.step)), np.full(hosts.size, t),
                                hosts.astype(float), np.asarray(factor, float)))

    def _host_scales(self, span: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The scale changes by host and step as ``(key, t, factor)``, ``key`` = host ×
        ``span`` + step (exact: integers below 2**53), after a sentinel below every
        host (so that no search falls off the front)."""
        s_step, s_t, s_host, s_factor = _stack(self.scales, self.scale_rows, 4)
        key = s_host * span + s_step
        order = np.argsort(key, kind="stable")
        return tuple(np.concatenate([[first], c[order]]) for first, c in
                     ((-1.0, key), (0.0, s_t), (1.0, s_factor)))

    def split(self, n: int) -> list[dict[str, np.ndarray]]:
        """Per guest (0 … n − 1): its change points ``t``, ``requested_mips``,
        ``allocated_mips`` (its ask × its host's scale) and ``migrating``, a row where
        one of them changed (the last of a step)."""
        span = float(self.step + 1)
        key, s_t, s_factor = self._host_scales(span)
        own = _stack(self.own, self.own_rows, self.OWN_WIDTH)
        order = np.lexsort((own[0], own[2]))  # by guest, then step
        step, t, guest, demand, ask, migrating, host = (c[order] for c in own)
        last = np.ones(step.size, bool)  # a guest's last own row holds to the end
        np.not_equal(guest[1:], guest[:-1], out=last[:-1])
        until = np.where(last, span, np.append(step[1:], span))
        at = np.searchsorted(key, host * span + step, "right") - 1  # scale as of the row
        factor = np.where(key[at] // span == host, s_factor[at], 1.0)
        count = np.searchsorted(key, host * span + until, "left") - (at + 1)
        # each own row, then a row for each change of its host's scale while it holds
        total = step.size + int(count.sum())
        mine = np.zeros(total, bool)
        mine[np.arange(step.size) + np.concatenate([[0], np.cumsum(count)[:-1]])] = True
        of = np.repeat(np.arange(step.size), count)  # the own row of each scale change
        at_scale = np.arange(of.size) - np.repeat(np.cumsum(count) - count, count) \
            + np.repeat(at + 1, count)
        out = {name: np.empty(total) for name in ("t", "requested_mips", "allocated_mips",
                                                  "migrating")}
        who = np.empty(total)
        for into, own_v, scaled_v in ((out["t"], t, s_t[at_scale]),
                                      (out["requested_mips"], demand, demand[of]),
                                      (out["migrating"], migrating, migrating[of]),
                                      (out["allocated_mips"], ask * factor,
                                       ask[of] * s_factor[at_scale]),
                                      (who, guest, guest[of])):
            into[mine], into[~mine] = own_v, scaled_v
        return _changes(who, out, n)


def _changes(who: np.ndarray, rows: dict[str, np.ndarray],
             n: int) -> list[dict[str, np.ndarray]]:
    """``rows`` (``t`` and values, sorted by guest ``who``) split per guest 0 … n − 1,
    keeping a guest's first row and each row where a value changed."""
    keep = np.ones(who.size, bool)
    if who.size > 1:
        keep[1:] = who[1:] != who[:-1]
        for name, v in rows.items():
            if name != "t":
                keep[1:] |= v[1:] != v[:-1]
    return _per_entity(who[keep].astype(np.int64), {k: v[keep] for k, v in rows.items()}, n)


class _Urgent(simpy.events.Event):
    """An event now, before the other events now, that calls ``callback``: where SimPy
    starts a process (its ``Initialize``), without a process."""

    def __init__(self, env: simpy.Environment, callback: Callable[[simpy.Event], None]):
        self.env = env
        self.callbacks = [callback]
        self._value = None
        self._ok = True
        env.schedule(self, simpy.core.URGENT)


@dataclass(frozen=True)
class FleetRecord:
    """What a run of a :class:`DynamicFleet` leaves: per host its change points
    (``t``, ``requested``, ``utilization`` as fractions of its MIPS, ``state``,
    ``ram_used``: MiB of the guests on it and coming to it), per
    guest (``t``, ``requested_mips``, ``allocated_mips``, ``migrating``), the start
    times of the moves (``move_starts_s``), their downtime (s) in all, the hosts and
    guests."""

    hosts: list[DynamicHost]
    vm_names: tuple[str, ...]
    host_series: list[dict[str, np.ndarray]]
    vm_series: list[dict[str, np.ndarray]]
    move_starts_s: np.ndarray
    downtime_s: float
    power: PowerStates


class DynamicFleet:
    """``hosts`` and guests of ``types`` whose CPU % per sample is ``trace`` (guests ×
    samples, one sample per ``trace_interval_s``), named ``names``. ``place`` puts the
    guests at t = 0; ``decide`` (None: never) is called every ``interval_s`` from
    ``interval_s`` on. ``hold_ram``: a running guest holds its RAM on its host (False:
    only at placement, as in CloudSim's examples, whose guests then request none).
    ``network``: the run's network, where every host is a node named as the host
    (default: one of its own, each host at its NIC and a registry); ``registry``: where
    a moving container's image comes from, over the hosts' layer caches (default: a
    :class:`~fleet_sim.images.registry.Registry` at node ``"registry"`` of
    ``network``, unbounded caches); ``recorder`` gets an event per move that ends
    (``migration`` for a VM, ``move`` for a container: the guest, its new host, from
    where, how long it took, its RAM) and per host switched on or off (``host_on``,
    ``host_off``). Start with :meth:`start`; read :meth:`record` after the run.
    """

    def __init__(self, env: simpy.Environment, hosts: Sequence[DynamicHost],
                 names: Sequence[str], types: Sequence[GuestType], trace: np.ndarray,
                 place: Place, decide: Decide | None, *, interval_s: float = 300.0,
                 trace_interval_s: float = 300.0, power: PowerStates = PowerStates(),
                 moves: MoveParams = MoveParams(), duration_s: float | None = None,
                 hold_ram: bool = True, network: Network | None = None,
                 registry: Distributor | None = None, recorder: Recorder | None = None):
        if len(names) != len(types) or len(names) != trace.shape[0]:
            raise ValueError("names, types and trace rows must be as many as the guests")
        if not interval_s > 0 or not trace_interval_s > 0:
            raise ValueError("interval_s and trace_interval_s must be > 0")
        self.env = env
        self.hosts = list(hosts)
        self.names = tuple(names)
        self.trace = np.asarray(trace)
        self._history = self.trace / 100.0  #: utilization per sample (fraction of its MIPS)
        self._history.setflags(write=False)
        self.place_fn, self.decide = place, decide
        self.interval_s, self.trace_interval_s = float(interval_s), float(trace_interval_s)
        self.power, self.moves = power, moves
        self.hold_ram = hold_ram
        self.duration_s = (trace.shape[1] * trace_interval_s if duration_s is None
                           else float(duration_s))
        h = self.hosts
        self.h_mips = np.array([x.capacity.mips for x in h], float)
        self.h_core = np.array([x.capacity.core_mips for x in h], float)
        self.h_ram = np.array([x.capacity.ram_mib for x in h], float)
        self.h_bw = np.array([x.capacity.bandwidth_mb_s for x in h], float)
        self.h_state = np.full(len(h), OFF, np.int8)
        self.v_mips = np.array([g.mips for g in types], float)
        self.v_vcpus = np.array([g.vcpus for g in types], float)
        self.v_ram = np.array([g.ram_mib for g in types], float)
        self.v_host = np.full(len(types), -1, np.int64)
        self.v_target = np.full(len(types), -1, np.int64)
        self.v_paused = np.zeros(len(types), bool)  #: no CPU now (a downtime)
        self.v_demand = np.zeros(len(types))
        self.h_used = np.zeros(len(h))
        self.on_at = np.zeros(len(h))  #: when a host switching on will be on (s)
        self.sample = 0
        #: per host, the guests on it and those moving to it (dicts as ordered sets)
        self.on: list[dict[int, None]] = [{} for _ in h]
        self.coming: list[dict[int, None]] = [{} for _ in h]
        self._demand_l: list[float] = []
        self.recorder = recorder if recorder is not None else NullRecorder()
        self._move_t0 = [0.0] * len(types)  #: when each guest's last move started
        self.network = network if network is not None else self._own_network()
        #: each host's migration limits, out and in: half its NIC
        self._migration_links = [
            (self.network.add_link(f"{x.name}.migration-out", bw / 2.0, record=False),
             self.network.add_link(f"{x.name}.migration-in", bw / 2.0, record=False))
            for x, bw in zip(h, self.h_bw.tolist(), strict=True)]
        self.registry = registry if registry is not None else Registry(
            env, self.network, {x.name: LayerCache(math.inf) for x in h}, node=REGISTRY,
            max_concurrent_downloads=MAX_CONCURRENT_DOWNLOADS)
        layers = moves.base_layers_mb, moves.app_layer_mb
        #: containers: each guest's image layers
        self.layers = [container_image(name, FIRST_VERSION, *layers).layers
                       for name in self.names] if moves.mode == "container" else []
        self._hosts = _Series(("requested", "utilization", "state", "ram_used"))
        self._vms = _GuestSeries()
        self._last_h: list[tuple[float, ...]] = [(math.nan,) * 4] * len(h)  #: last rows
        self._target_l = [-1] * len(types)  #: scalar mirrors of v_target, v_paused
        self._paused_l = [False] * len(types)
        self._vcpus_l = self.v_vcpus.tolist()
        self._ram_l = self.v_ram.tolist()
        self._ram_h = [0.0] * len(h)  #: RAM of the guests on each host and coming to it
        self._scale_l = [1.0] * len(h)  #: each host's last scale factor of the asks
        self.move_starts: list[float] = []
        self.downtime_s = 0.0
        self.rejected = 0  #: moves refused (target no longer has room)
        #: moves started this instant, whose clocks start at an urgent event (as a
        #: SimPy process would start: after the controller's own next timeout)
        self._pending: list[tuple[int, float]] = []

    def _own_network(self) -> Network:
        """A network of the fleet's hosts, each at its NIC both ways, and a registry."""
        net = Network(self.env, NullRecorder())
        net.attach(REGISTRY, self.moves.registry_mb_s, self.moves.registry_mb_s)
        for x in self.hosts:
            net.attach(x.name, x.capacity.bandwidth_mb_s, x.capacity.bandwidth_mb_s)
        return net

    # ------------------------------------------------------------------ views
    def state(self) -> FleetState:
        """The fleet now, read-only."""
        def ro(a: np.ndarray) -> np.ndarray:
            v = a.view()
            v.setflags(write=False)
            return v
        hist = self._history[:, :self.sample + 1]
        return FleetState(self.env.now, ro(self.h_mips), ro(self.h_core), ro(self.h_ram),
                          ro(self.h_bw), ro(self.h_used), ro(self.h_state), ro(self.v_mips),
                          ro(self.v_vcpus), ro(self.v_ram), ro(self.v_demand),
                          ro(self.v_host), ro(self.v_target), hist)

    def ram_used(self) -> np.ndarray:
        """RAM reserved on each host (MiB): guests on it and coming to it."""
        return np.array(self._ram_h)

    # ------------------------------------------------------------------ run
    def start(self) -> simpy.Process:
        """Place the guests (t = 0) and run the trace and the controller."""
        self._set_demand(0)
        where = np.asarray(self.place_fn(self.state()), np.int64)
        if (where < 0).any():
            k = int(np.argmax(where < 0))
            raise ValueError(f"guest {self.names[k]!r} fits on no host at t = 0")
        self.v_host[:] = where
        for vm, h in enumerate(where.tolist()):
            self.on[h][vm] = None
            self._ram_h[h] += self._ram_l[vm]
        on = np.zeros(len(self.hosts), bool)
        on[where] = True
        if self.power.peak_always:
            on[:] = True
        self.h_state[on] = ON
        for h in np.flatnonzero(~on).tolist():
            self._event("host_off", self.hosts[h].name)
        for vm, h in enumerate(where.tolist() if self.layers else ()):
            cache = self.registry.caches[self.hosts[h].name]  # its image is there
            for layer in self.layers[vm]:
                cache.add(layer)
        self._reallocate()
        return self.env.process(self._run())

    def _times(self) -> list[tuple[float, int]]:
        """(time, kind) of every trace step (0) and round (1), steps first at a tie."""
        out = [(k * self.trace_interval_s, 0) for k in range(1, self.trace.shape[1])]
        if self.decide is not None and self.moves.mode != "baremetal":
            k = 1
            while k * self.interval_s < self.duration_s:
                out.append((k * self.interval_s, 1))
                k += 1
        return sorted(t for t in out if t[0] < self.duration_s)

    def _run(self):
        for t, kind in self._times():
            if t > self.env.now:
                yield self.env.timeout(t - self.env.now)
            if kind == 0:
                self._set_demand(round(t / self.trace_interval_s))
                self._reallocate()
            else:
                self._round()

    def _set_demand(self, k: int) -> None:
        self.sample = k
        self.v_demand = self.trace[:, k] / 100.0 * self.v_mips
        self._demand_l = self.v_demand.tolist()

    def _round(self) -> None:
        assert self.decide is not None
        moves = self.decide(self.state())
        started = False
        for vm, target in moves:
            started |= self._start_move(int(vm), int(target))
        if started:
            self._reallocate()

    # ------------------------------------------------------------------ moves
    def _start_move(self, vm: int, target: int) -> bool:
        source = int(self.v_host[vm])
        if self.v_target[vm] >= 0 or target == source:
            return False
        if self.hold_ram and self._ram_h[target] + self._ram_l[vm] > self.h_ram[target] + 1e-9:
            self.rejected += 1
            return False
        self.v_target[vm] = self._target_l[vm] = target
        self.coming[target][vm] = None
        self._ram_h[target] += self._ram_l[vm]
        self.move_starts.append(self.env.now)
        self._move_t0[vm] = self.env.now
        if self.h_state[target] == OFF:
            self._switch_on(target)
        wait = max(0.0, self.on_at[target] - self.env.now) if self.h_state[target] == BOOTING \
            else 0.0
        if self.moves.mode == "container" and wait == 0.0:  # it stops now
            self.v_paused[vm] = self._paused_l[vm] = True
        self._pending.append((vm, wait))
        if len(self._pending) == 1:
            _Urgent(self.env, self._launch)
        return True

    def _switch_on(self, host: int) -> float:
        """Switch ``host`` on now; return how long until it is on (s)."""
        delay = self.power.switch_on_s
        self._event("host_on", self.hosts[host].name, duration_s=delay)
        if delay <= 0:
            self.h_state[host] = ON
            return 0.0
        self.h_state[host] = BOOTING
        self.on_at[host] = self.env.now + delay

        def on(_ev: simpy.Event) -> None:
            if self.h_state[host] == BOOTING:
                for v in self.coming[host]:
                    self._contribute(v, -1.0)
                self.h_state[host] = ON
                for v in self.coming[host]:
                    self._contribute(v, 1.0)
                self._reallocate([host])
        self.env.timeout(delay).callbacks.append(on)
        return delay

    def _launch(self, _ev: simpy.Event) -> None:
        """Start the moves started this instant, in order, once their target is on
        (``wait_s``): CloudSim's migration as a clock, the others on the network."""
        pending, self._pending = self._pending, []
        m = self.moves
        for vm, wait_s in pending:
            if m.mode == "vm" and m.migration == "cloudsim":
                source, target = int(self.v_host[vm]), int(self.v_target[vm])
                timing = cloudsim_migration(self.v_ram[vm],
                                            min(self.h_bw[source], self.h_bw[target]))
                self.env.timeout(wait_s + timing.duration_s).callbacks.append(
                    lambda _ev, vm=vm: self._arrive(vm))
            else:
                self.env.process(self._move(vm, wait_s))

    def _move(self, vm: int, wait_s: float) -> ProcessGenerator:
        """In sim time, after ``wait_s``: a container's stop, pull and start, or a
        VM's pre-copy rounds and stop-and-copy, then :meth:`_arrive`."""
        env, m = self.env, self.moves
        if wait_s > 0:
            yield env.timeout(wait_s)
        source, target = int(self.v_host[vm]), int(self.v_target[vm])
        if m.mode == "container":
            if not self._paused_l[vm]:  # it waited for its target to switch on
                self._pause(vm)
            began = env.now
            yield env.timeout(m.stop_s)
            yield from self.registry.pull(self.hosts[target].name, self.layers[vm])
            yield env.timeout(m.start_s)
            self.downtime_s += env.now - began
        else:
            ends = self.hosts[source].name, self.hosts[target].name
            limits = self._migration_links[source][0], self._migration_links[target][1]
            rounds = precopy_rounds(self.v_ram[vm], m.dirty_mb_s, m.stop_mb, m.max_rounds)
            mb, paused = next(rounds)
            while True:
                if paused:
                    self._pause(vm)
                began = env.now
                yield self.network.transfer(*ends, mb, limits)
                if paused:
                    self.downtime_s += env.now - began
                    break
                mb, paused = rounds.send(env.now - began)
        self._arrive(vm)

    def _pause(self, vm: int) -> None:
        """Guest ``vm`` gets no CPU from now until it arrives (a downtime)."""
        source, target = int(self.v_host[vm]), int(self.v_target[vm])
        self._contribute(vm, -1.0)
        self.v_paused[vm] = self._paused_l[vm] = True
        self._contribute(vm, 1.0)
        self._reallocate([source, target], vm)

    def _arrive(self, vm: int) -> None:
        """Guest ``vm`` runs on its target; its source switches off if left empty."""
        source, target = int(self.v_host[vm]), int(self.v_target[vm])
        self._contribute(vm, -1.0)
        self.v_host[vm] = target
        self.v_target[vm] = self._target_l[vm] = -1
        self.v_paused[vm] = self._paused_l[vm] = False
        del self.on[source][vm], self.coming[target][vm]
        self.on[target][vm] = None
        self._ram_h[source] -= self._ram_l[vm]  # on the target it was coming, now on
        self._contribute(vm, 1.0)
        now, hosts = self.env.now, self.hosts
        self._event("migration" if self.moves.mode == "vm" else "move", self.names[vm],
                    hosts[target].name, f"from {hosts[source].name}",
                    duration_s=now - self._move_t0[vm], ram_mib=self._ram_l[vm])
        if not (self.on[source] or self.coming[source]) and not self.power.peak_always:
            self.h_state[source] = OFF
            self._event("host_off", hosts[source].name)
        self._reallocate([source, target], vm)

    def _event(self, kind: str, entity: str, host: str | None = None, detail: str = "",
               **fields: float) -> None:
        self.recorder.event(self.env.now, kind, entity, detail, host=host or entity, **fields)

    # ------------------------------------------------------------------ CPU
    def _reallocate(self, hosts: Sequence[int] | None = None, vm: int | None = None) -> None:
        """Share the CPU of ``hosts`` (default: every host) now and record what changed
        (``vm``: the guest whose state changed, if one did).

        Only the guests on those hosts or moving to them take part: a host's share
        depends on nothing else."""
        n = len(self.hosts)
        if hosts is not None:
            for h in dict.fromkeys(hosts):
                self._share(h, vm)
            self._vms.step += 1
            return
        touched = np.ones(n, bool)
        vms = np.arange(self.v_host.size)
        host, target = self.v_host[vms], self.v_target[vms]
        moving = target >= 0
        paused = self.v_paused[vms]
        loss = self.moves.cpu_loss if self.moves.mode == "vm" else 0.0
        demand = self.v_demand[vms]
        ask = np.minimum(demand, self.h_core[host] * self.v_vcpus[vms])
        ask = np.where(moving, ask * (1.0 - loss), ask)
        ask[paused] = 0.0
        tgt = np.flatnonzero(moving)
        tgt_host = target[tgt]
        reserve = np.where(self.h_state[tgt_host] != ON, 0.0, loss * np.minimum(
            demand[tgt], self.h_core[tgt_host] * self.v_vcpus[vms][tgt]))
        total = np.bincount(host, ask, n) + np.bincount(tgt_host, reserve, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(total > self.h_mips, self.h_mips / total, 1.0)
        t = self.env.now
        rescaled = np.flatnonzero(scale != np.array(self._scale_l))
        self._vms.scale(t, rescaled, scale[rescaled])
        self._scale_l = scale.tolist()
        alloc = ask * scale[host]
        counted = np.where(moving & ~paused, alloc / (1.0 - loss), alloc)
        used = np.bincount(host, counted, n) + np.bincount(tgt_host, reserve * scale[tgt_host], n)
        requested = np.bincount(host, demand, n) + np.bincount(tgt_host, demand[tgt], n)
        unreduced = np.where(paused, 0.0, np.minimum(demand, self.h_core[host] * self.v_vcpus))
        self._sums = [total.tolist(), (np.bincount(host, unreduced, n)
                                       + np.bincount(tgt_host, reserve, n)).tolist(),
                      requested.tolist()]
        hs = np.flatnonzero(touched)
        self.h_used[hs] = np.minimum(used[hs], self.h_mips[hs])
        own = touched[host]  # guests whose CPU comes from a touched host
        self._record(self._hosts, t, hs, (requested[hs] / self.h_mips[hs],
                                          self.h_used[hs] / self.h_mips[hs],
                                          self.h_state[hs].astype(float),
                                          self.ram_used()[hs]), self._last_h)
        self._vms.add(t, vms[own], demand[own], ask[own], moving[own].astype(float), host[own])
        self._vms.step += 1

    def _contribute(self, v: int, sign: float) -> None:
        """Add (``sign`` = 1) or take away (−1) what guest ``v`` puts in its hosts' sums
        (asks, utilization before scaling, requested), as it is now."""
        loss = self.moves.cpu_loss if self.moves.mode == "vm" else 0.0
        total, counted, requested = self._sums
        d, h, target = self._demand_l[v], int(self.v_host[v]), self._target_l[v]
        requested[h] += sign * d
        if not self._paused_l[v]:
            a = min(d, float(self.h_core[h]) * self._vcpus_l[v])
            counted[h] += sign * a
            total[h] += sign * (a * (1.0 - loss) if target >= 0 else a)
        if target >= 0:
            requested[target] += sign * d
            if self.h_state[target] == ON:
                r = loss * min(d, float(self.h_core[target]) * self._vcpus_l[v])
                total[target] += sign * r
                counted[target] += sign * r

    def _share(self, h: int, vm: int | None) -> None:
        """:meth:`_reallocate` of one host from its running sums (a move touches two
        hosts): its row, its scale factor if it changed (every guest on it moves with
        it) and the own row of ``vm`` (the guest whose state changed) if it is on it."""
        loss = self.moves.cpu_loss if self.moves.mode == "vm" else 0.0
        demand, cap = self._demand_l, float(self.h_core[h])
        vcpus, target, paused = self._vcpus_l, self._target_l, self._paused_l
        sums = self._sums
        if not (self.on[h] or self.coming[h]):  # exact zeros, whatever the rounding
            sums[0][h] = sums[1][h] = sums[2][h] = self._ram_h[h] = 0.0
        total, counted, requested = sums[0][h], sums[1][h], sums[2][h]
        mips = float(self.h_mips[h])
        scale = mips / total if total > mips else 1.0
        used = min(counted * scale, mips)
        self.h_used[h] = used
        t = self.env.now
        if scale != self._scale_l[h]:
            self._scale_l[h] = scale
            self._vms.scale(t, h, scale)
        if vm is not None and vm in self.on[h]:
            moving = target[vm] >= 0
            a = 0.0 if paused[vm] else min(demand[vm], cap * vcpus[vm]) * (
                1.0 - loss if moving else 1.0)
            self._vms.row(t, vm, demand[vm], a, 1.0 if moving else 0.0, h)
        row = (requested / mips, used / mips, float(self.h_state[h]), self._ram_h[h])
        if row != self._last_h[h]:
            self._last_h[h] = row
            self._hosts.row(t, h, row)

    @staticmethod
    def _record(series: _Series, t: float, idx: np.ndarray, now: tuple[np.ndarray, ...],
                last: list[tuple[float, ...]]) -> None:
        """Record the entities ``idx`` whose values ``now`` differ from their ``last``
        recorded row (NaN before the first), and make those the last."""
        rows = np.column_stack(now)
        mask = (rows != np.array(last, float)[idx]).any(axis=1)
        changed = idx[mask]
        for k, row in zip(changed.tolist(), rows[mask].tolist(), strict=True):
            last[k] = tuple(row)
        series.add(t, changed, *(a[mask] for a in now))

    def record(self) -> FleetRecord:
        """The run's change points (call after the run)."""
        return FleetRecord(self.hosts, self.names, self._hosts.split(len(self.hosts)),
                           self._vms.split(len(self.names)), np.array(self.move_starts),
                           self.downtime_s, self.power)
