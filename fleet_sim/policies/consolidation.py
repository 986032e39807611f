"""Dynamic VM consolidation: overload detection, VM selection, placement (docs/model.md §12).

Pure decisions over read-only views, after Beloglazov & Buyya (2012) with the
semantics of CloudSim 3.0.3's ``power`` package. Every ``interval_s`` the model
hands :meth:`Consolidation.plan` a :class:`HostView` per host (its capacity, the
VMs on it, its CPU use at the start of the round) and gets back the migrations
to start. One round:

1. **Overload**: every host whose detector fires is overloaded. From each, in
   host order, the selection policy picks VMs one at a time until the detector,
   run on the VMs left, no longer fires.
2. **Placement** (power-aware best-fit decreasing, PABFD): the picked VMs, by
   CPU demand decreasing (stable), each go to the host whose power rises least,
   among the hosts it fits that are not overloaded and would not become
   overloaded with it (an idle host is not tested, as in CloudSim).
   A VM no host takes stays where it is.
3. **Underload**: the least-utilized host (0 < utilization < 1) not yet
   excluded is emptied if all its VMs find a place (PABFD, never on an
   overloaded, idle or already tried host); its VMs stay otherwise. Hosts
   that received VMs are not emptied in turn. Repeat until no host is left.

Utilization is CPU demand ÷ capacity (MIPS, the CloudSim unit; any unit works if
used throughout). Histories hold one sample per interval, oldest first.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from fleet_sim.model.views import HostCapacity, PowerCurve

HISTORY_LENGTH = 30
"""Samples of VM utilization history a decision looks at (CloudSim's PowerVm.HISTORY_LENGTH)."""
ADAPTIVE_MIN_HISTORY = 12
"""IQR and MAD need this many host history samples, else they fall back (CloudSim: 12)."""
REGRESSION_WINDOW = 10
"""LR and LRR fit the newest this many host history samples, else they fall back."""
FALLBACK_THRESHOLD = 0.7
"""Static threshold of the fallback detector of IQR, MAD, LR and LRR (CloudSim's examples)."""
_MB_PER_MIB = 2**20 / 1e6


@dataclass(frozen=True, eq=False)
class VmView:
    """One VM as consolidation sees it.

    ``mips``: its CPU capacity (all ``vcpus``); ``demand_mips``: what it asks for
    now; ``ram_mib``: its RAM (what a migration copies); ``reserved_ram_mib``: what it
    holds on a host for the fit tests (None: ``ram_mib``; CloudSim's examples hold 0
    once a VM runs); ``bandwidth_mb_s``: what it reserves on its host;
    ``history``: its past CPU utilization, fractions of ``mips``, one per
    interval, oldest first; ``migrating_out`` / ``migrating_in``: a migration of
    it is under way from / to this host (such a VM is neither picked nor moved).
    """

    name: str
    mips: float
    demand_mips: float
    ram_mib: float
    history: Sequence[float] = ()
    vcpus: int = 1
    bandwidth_mb_s: float = 0.0
    migrating_out: bool = False
    migrating_in: bool = False
    reserved_ram_mib: float | None = None

    @property
    def held_ram_mib(self) -> float:
        """RAM it holds on a host for the fit tests (MiB)."""
        return self.ram_mib if self.reserved_ram_mib is None else self.reserved_ram_mib

    @property
    def in_migration(self) -> bool:
        """A migration of this VM is under way."""
        return self.migrating_out or self.migrating_in


def vm_views(names: Sequence[str], mips: Sequence[float], demand_mips: Sequence[float],
             ram_mib: Sequence[float], histories: Iterable[Sequence[float]],
             vcpus: Sequence[int], reserved_ram_mib: float | None = None) -> list[VmView]:
    """``VmView(name, mips, demand_mips, ram_mib, history, vcpus, reserved_ram_mib=…)``
    of many VMs (a column each), built at once: each view's fields are set in one step
    rather than one by one through the frozen dataclass (a round views every VM)."""
    new, put = object.__new__, object.__setattr__
    out = []
    for name, m, d, r, h, c in zip(names, mips, demand_mips, ram_mib, histories, vcpus,
                                   strict=True):
        v = new(VmView)
        put(v, "__dict__", {"name": name, "mips": m, "demand_mips": d, "ram_mib": r,
                            "history": h, "vcpus": c, "bandwidth_mb_s": 0.0,
                            "migrating_out": False, "migrating_in": False,
                            "reserved_ram_mib": reserved_ram_mib})
        out.append(v)
    return out


@dataclass(frozen=True)
class HostView:
    """One host at the start of a round: ``capacity``, the ``vms`` on it (VMs
    migrating in included, in the order they arrived) and ``used_mips``, its CPU
    use now (≤ capacity; a VM migrating in counts with its full demand)."""

    name: str
    capacity: HostCapacity
    vms: tuple[VmView, ...]
    used_mips: float


@dataclass(frozen=True)
class HostLoad:
    """What an overload detector sees of a host with a given set of VMs.

    ``utilization``: their CPU demand ÷ host capacity; ``history``: the host's
    utilization history as the sum of the VMs' histories (each × VM MIPS ÷ host
    MIPS, aligned on the newest sample, the newest ``HISTORY_LENGTH``), oldest
    first, without its leading zeros (CloudSim's trimZeroTail);
    ``migration_s``: the longest migration among the VMs (RAM ÷ half the host's
    bandwidth, s).
    """

    utilization: float
    history: np.ndarray
    migration_s: float


def migration_time_s(ram_mib: float, bandwidth_mb_s: float) -> float:
    """Live-migration time (s) of ``ram_mib`` over half of ``bandwidth_mb_s`` (CloudSim's model)."""
    return ram_mib * _MB_PER_MIB / (bandwidth_mb_s / 2.0)


def _history_mips(vm: VmView) -> np.ndarray:
    """The VM's newest ``HISTORY_LENGTH`` samples in MIPS, right-aligned in a zero array."""
    out = np.zeros(HISTORY_LENGTH)
    h = np.asarray(vm.history, dtype=float)[-HISTORY_LENGTH:]
    if h.size:
        out[HISTORY_LENGTH - h.size:] = h * vm.mips
    return out


def host_load(capacity: HostCapacity, vms: Iterable[VmView]) -> HostLoad:
    """The :class:`HostLoad` of a host of ``capacity`` holding ``vms``."""
    vms = list(vms)
    return _load(capacity, sum(v.demand_mips for v in vms),
                 sum((_history_mips(v) for v in vms), np.zeros(HISTORY_LENGTH)),
                 max((v.ram_mib for v in vms), default=0.0))


def _load(capacity: HostCapacity, demand_mips: float, history_mips: np.ndarray,
          max_ram_mib: float) -> HostLoad:
    history = history_mips / capacity.mips
    nonzero = history != 0
    history = history[nonzero.argmax():] if nonzero.any() else history[:0]
    return HostLoad(demand_mips / capacity.mips, history,
                    migration_time_s(max_ram_mib, capacity.bandwidth_mb_s))


@dataclass(frozen=True)
class HostLoads:
    """The :class:`HostLoad` of several hosts at once (index = row).

    ``history`` is (hosts, ``HISTORY_LENGTH``), right-aligned: row ``k``'s history is
    its newest ``samples[k]`` columns (what :func:`host_load` keeps after trimming).
    """

    utilization: np.ndarray
    history: np.ndarray
    samples: np.ndarray
    migration_s: np.ndarray

    def __len__(self) -> int:
        return self.utilization.size

    def load(self, k: int) -> HostLoad:
        """Row ``k`` as a :class:`HostLoad`."""
        n = int(self.samples[k])
        return HostLoad(float(self.utilization[k]), self.history[k, HISTORY_LENGTH - n:],
                        float(self.migration_s[k]))

    def rows(self, mask: np.ndarray) -> HostLoads:
        """The rows where ``mask`` holds."""
        return HostLoads(self.utilization[mask], self.history[mask], self.samples[mask],
                         self.migration_s[mask])


def host_loads(demand_mips: np.ndarray, history_mips: np.ndarray, max_ram_mib: np.ndarray,
               mips: np.ndarray, bandwidth_mb_s: np.ndarray) -> HostLoads:
    """:class:`HostLoads` of hosts of ``mips`` and ``bandwidth_mb_s`` whose VMs add up to
    ``demand_mips`` and ``history_mips`` (rows) with the largest RAM ``max_ram_mib``
    (the same arithmetic as :func:`host_load`, row by row)."""
    history = history_mips / mips[:, None]
    nonzero = history != 0
    samples = np.where(nonzero.any(axis=1), HISTORY_LENGTH - nonzero.argmax(axis=1), 0)
    return HostLoads(demand_mips / mips, history, samples,
                     max_ram_mib * _MB_PER_MIB / (bandwidth_mb_s / 2.0))


BOUNDARY_RTOL = 1e-9
"""Batch verdicts this close to a detector's boundary are taken again one host at a time,
so that a batch's rounding never decides."""


def overloaded_hosts(detector: OverloadDetector, loads: HostLoads) -> np.ndarray:
    """The detector's verdict on every row of ``loads`` (booleans): its own
    ``overloaded_all`` if it has one, else :meth:`~OverloadDetector.overloaded` per row."""
    batch = getattr(detector, "overloaded_all", None)
    if batch is not None:
        return batch(loads)
    return np.array([detector.overloaded(loads.load(k)) for k in range(len(loads))], bool)


def _settle(detector: OverloadDetector, loads: HostLoads, verdict: np.ndarray,
            value: np.ndarray, boundary: np.ndarray | float) -> np.ndarray:
    """``verdict``, with the rows whose ``value`` is within :data:`BOUNDARY_RTOL` of
    ``boundary`` decided again by ``detector.overloaded`` on that row alone."""
    near = (np.abs(value - boundary) <= BOUNDARY_RTOL * np.maximum(
        1.0, np.abs(boundary))).nonzero()[0]
    for k in near.tolist():
        verdict[k] = detector.overloaded(loads.load(k))
    return verdict


# --- overload detectors: overloaded(load) -> bool ------------------------------------------


class OverloadDetector(Protocol):
    """Decides whether a host with a given load is overloaded."""

    def overloaded(self, load: HostLoad) -> bool: ...


@dataclass(frozen=True)
class StaticThreshold:
    """THR: overloaded when utilization > ``threshold`` (a fraction)."""

    threshold: float = 0.8

    def overloaded(self, load: HostLoad) -> bool:
        return load.utilization > self.threshold

    def overloaded_all(self, loads: HostLoads) -> np.ndarray:
        return loads.utilization > self.threshold


def iqr(data: np.ndarray) -> float:
    """Interquartile range as CloudSim takes it: with ``s`` sorted and 1-based ranks
    rounded half up, s[round(3(n + 1) / 4)] − s[round((n + 1) / 4)]."""
    s = sorted(np.asarray(data, float).tolist())  # a history is short: lists beat arrays
    n = len(s)
    return s[math.floor(0.75 * (n + 1) + 0.5) - 1] - s[math.floor(0.25 * (n + 1) + 0.5) - 1]


def _sorted_median(s: list[float]) -> float:
    """``np.median`` of the sorted values ``s``: the middle one, or the mean of the middle two."""
    half = len(s) // 2
    return s[half] if len(s) % 2 else (s[half - 1] + s[half]) / 2.0


def mad(data: np.ndarray) -> float:
    """Median absolute deviation from the median (``np.median`` arithmetic)."""
    data = np.asarray(data, float)
    values = data.tolist()
    if not values:
        return math.nan
    centre = _sorted_median(sorted(values))
    return _sorted_median(sorted(np.abs(data - centre).tolist()))


def _row_medians(data: np.ndarray) -> np.ndarray:
    """``np.median`` of each row (the same arithmetic: the middle value, or the mean of
    the middle two)."""
    s = np.sort(data, axis=1)
    half = s.shape[1] // 2
    return s[:, half] if s.shape[1] % 2 else (s[:, half - 1] + s[:, half]) / 2.0


@dataclass(frozen=True)
class _AdaptiveThreshold(ABC):
    """Overloaded when utilization > 1 − ``safety`` × :meth:`spread` of the history,
    given at least ``ADAPTIVE_MIN_HISTORY`` samples; with fewer, ``fallback`` decides."""

    safety: float
    fallback: OverloadDetector = StaticThreshold(FALLBACK_THRESHOLD)

    def __post_init__(self) -> None:
        if not self.safety >= 0:
            raise ValueError(f"safety must be a number >= 0, got {self.safety!r}")

    @abstractmethod
    def spread(self, history: np.ndarray) -> float:
        """The history's spread (a fraction of the host's MIPS): IQR or MAD."""

    def spread_all(self, history: np.ndarray) -> np.ndarray:
        """:meth:`spread` of each row of ``history`` (rows of one length)."""
        return np.array([self.spread(row) for row in history], float)

    def overloaded(self, load: HostLoad) -> bool:
        if load.history.size < ADAPTIVE_MIN_HISTORY:
            return self.fallback.overloaded(load)
        return load.utilization > 1.0 - self.safety * self.spread(load.history)

    def overloaded_all(self, loads: HostLoads) -> np.ndarray:
        """:meth:`overloaded` of every row, the spreads taken per history length."""
        short = loads.samples < ADAPTIVE_MIN_HISTORY
        verdict = np.zeros(len(loads), bool)
        if short.any():
            verdict[short] = overloaded_hosts(self.fallback, loads.rows(short))
        long = ~short
        limit = np.full(len(loads), np.nan)
        lengths = loads.samples[long]
        if lengths.size and (lengths == lengths[0]).all():  # the usual case: one length
            groups = [(int(lengths[0]), long.nonzero()[0])]
        else:
            groups = [(n, (loads.samples == n).nonzero()[0]) for n in np.unique(lengths).tolist()]
        for n, rows in groups:
            limit[rows] = 1.0 - self.safety * self.spread_all(
                loads.history[rows, HISTORY_LENGTH - n:])
        verdict[long] = loads.utilization[long] > limit[long]
        return _settle(self, loads, verdict, np.where(long, loads.utilization, np.inf), limit)


@dataclass(frozen=True)
class InterQuartileRange(_AdaptiveThreshold):
    """IQR: overloaded when utilization > 1 − ``safety`` × IQR of the host's history."""

    safety: float = 1.5

    def spread(self, history: np.ndarray) -> float:
        return iqr(history)

    def spread_all(self, history: np.ndarray) -> np.ndarray:
        s = np.sort(history, axis=1)
        n = s.shape[1]
        upper, lower = math.floor(0.75 * (n + 1) + 0.5) - 1, math.floor(0.25 * (n + 1) + 0.5) - 1
        return s[:, upper] - s[:, lower]


@dataclass(frozen=True)
class MedianAbsoluteDeviation(_AdaptiveThreshold):
    """MAD: overloaded when utilization > 1 − ``safety`` × MAD of the host's history."""

    safety: float = 2.5

    def spread(self, history: np.ndarray) -> float:
        return mad(history)

    def spread_all(self, history: np.ndarray) -> np.ndarray:
        centre = _row_medians(history)
        return _row_medians(np.abs(history - centre[:, None]))


def trend(history: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of the least-squares line through ``history`` at x = 1, 2, …, n.

    CloudSim's "Loess" fit (MathUtil.getLoessParameterEstimates) passes tricube
    weights that are all positive, and its weighted fit applies weights only when
    at least 40 % of them are <= 0, so the fit is this ordinary one. Its robust
    variant (bisquare weights, LRR) likewise gets no weight <= 0 unless six of
    ten residuals are exactly zero, so LRR fits the same line as LR.
    """
    n = history.size
    x = np.arange(1.0, n + 1.0)
    xm, ym = x.mean(), float(history.mean())
    slope = float(np.dot(x - xm, history - ym) / np.dot(x - xm, x - xm))
    return ym - slope * xm, slope


@dataclass(frozen=True)
class LocalRegression:
    """LR: overloaded when ``safety`` × the utilization predicted by a line through
    the newest ``REGRESSION_WINDOW`` history samples, extrapolated to the end of the
    host's longest migration (in whole intervals of ``interval_s``), is >= 1.
    With fewer samples, ``fallback`` decides. LRR is the same detector (see :func:`trend`).
    """

    safety: float = 1.2
    interval_s: float = 300.0
    fallback: OverloadDetector = StaticThreshold(FALLBACK_THRESHOLD)

    def overloaded(self, load: HostLoad) -> bool:
        if load.history.size < REGRESSION_WINDOW:
            return self.fallback.overloaded(load)
        intercept, slope = trend(load.history[-REGRESSION_WINDOW:])
        ahead = REGRESSION_WINDOW + math.ceil(load.migration_s / self.interval_s)
        return self.safety * (intercept + slope * ahead) >= 1.0

    def overloaded_all(self, loads: HostLoads) -> np.ndarray:
        """:meth:`overloaded` of every row: the lines fitted at once, the rows near the
        boundary fitted again one at a time."""
        short = loads.samples < REGRESSION_WINDOW
        verdict = np.zeros(len(loads), bool)
        if short.any():
            verdict[short] = overloaded_hosts(self.fallback, loads.rows(short))
        y = loads.history[:, -REGRESSION_WINDOW:]
        x = np.arange(1.0, REGRESSION_WINDOW + 1.0)
        dx = x - x.mean()
        ym = y.mean(axis=1)
        slope = ((y - ym[:, None]) * dx).sum(axis=1) / float(np.dot(dx, dx))
        ahead = REGRESSION_WINDOW + np.ceil(loads.migration_s / self.interval_s)
        predicted = np.where(short, np.inf, self.safety * (ym - slope * x.mean() + slope * ahead))
        verdict[~short] = predicted[~short] >= 1.0
        return _settle(self, loads, verdict, predicted, 1.0)


# --- VM selection: select(vms, rng) -> the VM to move, or None -----------------------------


class VmSelection(Protocol):
    """Decides which VM to move off an overloaded host (``vms``: those that may move,
    in host order); None when there is none."""

    def select(self, vms: Sequence[VmView], rng: np.random.Generator) -> VmView | None: ...


@runtime_checkable
class KeyedSelection(VmSelection, Protocol):
    """A selection that always takes the VM with the least ``key`` (the first in host
    order at a tie), so its picks one after the other are the VMs in key order."""

    @staticmethod
    def key(vm: VmView) -> float: ...


def _first_min(vms: Sequence[VmView], key: Callable[[VmView], float]) -> VmView | None:
    """The first VM with the least ``key`` (ties: the first in host order)."""
    return min(vms, key=key, default=None)


@dataclass(frozen=True)
class MinimumMigrationTime:
    """MMT: the VM with the least RAM (the shortest migration over the host's link)."""

    @staticmethod
    def key(vm: VmView) -> float:
        """What MMT takes the least of: the VM's RAM (MiB)."""
        return vm.ram_mib

    def select(self, vms: Sequence[VmView], rng: np.random.Generator) -> VmView | None:
        return _first_min(vms, self.key)


@dataclass(frozen=True)
class MinimumUtilization:
    """MU: the VM using the least of its own CPU (demand ÷ its MIPS)."""

    @staticmethod
    def key(vm: VmView) -> float:
        """What MU takes the least of: the VM's demand ÷ its MIPS."""
        return vm.demand_mips / vm.mips

    def select(self, vms: Sequence[VmView], rng: np.random.Generator) -> VmView | None:
        return _first_min(vms, self.key)


@dataclass(frozen=True)
class RandomSelection:
    """RS: a VM drawn uniformly with the injected generator."""

    def select(self, vms: Sequence[VmView], rng: np.random.Generator) -> VmView | None:
        return vms[int(rng.integers(len(vms)))] if vms else None


def determination(y: np.ndarray, x: np.ndarray) -> float:
    """R² of the least-squares fit of ``y`` on the columns of ``x`` plus an intercept;
    nan when ``y`` is constant."""
    design = np.column_stack([np.ones(y.size), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - design @ coef) ** 2)) / total if total > 0 else math.nan


@dataclass(frozen=True)
class MaximumCorrelation:
    """MC: the VM whose history is best explained by the others' (largest R² of a
    multiple linear regression on them, over their common newest samples, at most
    ``HISTORY_LENGTH``). Only an R² > 0 wins; if none does, the first VM. With too few
    samples for the regression (samples <= VMs), ``fallback`` decides; a lone VM is taken.
    """

    fallback: VmSelection = MinimumMigrationTime()

    def select(self, vms: Sequence[VmView], rng: np.random.Generator) -> VmView | None:
        if len(vms) <= 1:
            return vms[0] if vms else None
        m = min(HISTORY_LENGTH, *(len(v.history) for v in vms))
        if m <= len(vms):
            return self.fallback.select(vms, rng)
        data = np.array([np.asarray(v.history, dtype=float)[-m:] for v in vms])
        return vms[_most_determined(data)]


def _exact_determination(data: np.ndarray, i: int) -> float:
    """:func:`determination` of row ``i`` of ``data`` on the other rows."""
    return determination(data[i], np.delete(data, i, axis=0).T)


_R2_TOL = 1e-7
"""R² closer than this to the best (or to 0) are computed again by least squares."""
_MAX_CONDITION = 1e6
"""Correlation matrices worse conditioned than this take least squares for every row."""


def _most_determined(data: np.ndarray) -> int:
    """The row of ``data`` with the largest R² on the other rows (the first at a tie)
    if that R² is > 0, else row 0: the choice of fitting each row by least squares
    (:func:`determination`), made from the inverse correlation matrix,
    R²ᵢ = 1 − 1 / (C⁻¹)ᵢᵢ, and settled by least squares where that could differ."""
    k = data.shape[0]
    r2 = np.full(k, np.nan)
    varies = np.ptp(data, axis=1) > 0
    exact = np.zeros(k, bool)
    for i in np.flatnonzero(~varies).tolist():  # constant rows: least squares says
        r2[i], exact[i] = _exact_determination(data, i), True
    rows = np.flatnonzero(varies)
    if rows.size:
        z = data[rows] - data[rows].mean(axis=1, keepdims=True)
        gram = z @ z.T
        scale = 1.0 / np.sqrt(np.diag(gram))
        corr = gram * scale[:, None] * scale[None, :]
        if np.linalg.cond(corr) <= _MAX_CONDITION:
            r2[rows] = 1.0 - 1.0 / np.diag(np.linalg.inv(corr))
        else:
            for i in rows.tolist():
                r2[i], exact[i] = _exact_determination(data, i), True
    valid = ~np.isnan(r2)
    top = float(r2[valid].max()) if valid.any() else -math.inf
    floor = max(top, _R2_TOL) - 2 * _R2_TOL
    # the rows that could be the best (or > 0): by least squares unless there is one
    candidates = np.flatnonzero(valid & (r2 >= floor))
    if candidates.size > 1 or top <= _R2_TOL:
        for i in candidates[~exact[candidates]].tolist():
            r2[i] = _exact_determination(data, i)
    best, best_r2 = 0, 0.0
    for i in candidates.tolist():
        if r2[i] > best_r2:
            best, best_r2 = i, r2[i]
    return best


# --- the round -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """Move VM ``vm`` from host ``source`` to host ``target``."""

    vm: str
    source: str
    target: str


@dataclass(frozen=True)
class ConsolidationPlan:
    """A round's decisions: ``migrations`` to start, in order (overload first);
    the hosts found ``overloaded``; the underloaded hosts ``emptied`` (all their
    VMs move, so they can be switched off once idle)."""

    migrations: tuple[Migration, ...]
    overloaded: tuple[str, ...]
    emptied: tuple[str, ...]


@dataclass(frozen=True)
class VmColumns:
    """Figures of VMs as arrays, a row per VM (in the order of the hosts' VMs, host by
    host): ``demand_mips``, ``ram_mib``, ``held_ram_mib``, ``bandwidth_mb_s`` of their
    :class:`VmView` and ``history_mips``, (VMs, ``HISTORY_LENGTH``): each VM's newest
    samples × its MIPS, right-aligned after zeros. A caller that holds them as arrays
    hands them to :meth:`Consolidation.plan` beside the views (they must agree)."""

    demand_mips: np.ndarray
    ram_mib: np.ndarray
    held_ram_mib: np.ndarray
    bandwidth_mb_s: np.ndarray
    history_mips: np.ndarray

    @classmethod
    def of(cls, vms: Sequence[VmView]) -> VmColumns:
        """The columns of ``vms``."""
        return cls(np.array([v.demand_mips for v in vms], float),
                   np.array([v.ram_mib for v in vms], float),
                   np.array([v.held_ram_mib for v in vms], float),
                   np.array([v.bandwidth_mb_s for v in vms], float), _history_matrix(vms))


class _Round:
    """The tentative state of one round: which VMs each host holds, with running sums.

    Like CloudSim, the power estimates, the idle test and the underload ranking use
    the hosts' CPU use at the start of the round (``HostView.used_mips``); fit and
    overload tests use the VMs tentatively on each host. Sums are kept as arrays over
    hosts (built at once from all VMs), so a round costs numpy operations, not loops.
    """

    def __init__(self, hosts: Sequence[HostView], detector: OverloadDetector,
                 columns: VmColumns | None = None):
        self.hosts = list(hosts)
        self.detector = detector
        n = len(self.hosts)
        self.index = {h.name: i for i, h in enumerate(self.hosts)}
        if len(self.index) != n:
            raise ValueError("host names must be unique")
        self.vms = [list(h.vms) for h in self.hosts]
        caps = [h.capacity for h in self.hosts]
        self.caps = caps
        self.mips = np.array([c.mips for c in caps], float)
        self.core_mips = np.array([c.core_mips for c in caps], float)
        self.ram = np.array([c.ram_mib for c in caps], float)
        self.bandwidth = np.array([c.bandwidth_mb_s for c in caps], float)
        self.used = np.array([h.used_mips for h in self.hosts], float)
        groups: dict[int, tuple[PowerCurve, list[int]]] = {}
        for i, c in enumerate(caps):
            groups.setdefault(id(c.power), (c.power, []))[1].append(i)
        #: per power curve: the hosts it serves and how to evaluate it on an array
        self._power = [(_hosts_of(members), _evaluator(curve))
                       for curve, members in groups.values()]
        self.power_now = self.power_at(self.used / self.mips)
        #: per power curve: its hosts, its evaluation, their CPU use, MIPS and power now
        self._rise_terms = [(idx, evaluate, self.used[idx], self.mips[idx], self.power_now[idx])
                            for idx, evaluate in self._power]
        everyone = [v for vms in self.vms for v in vms]
        owner = np.repeat(np.arange(n), [len(vms) for vms in self.vms])
        self._row = {id(v): k for k, v in enumerate(everyone)}  # ids of VMs self.hosts holds
        self._others: list[VmView] = []
        if columns is None:
            columns = VmColumns.of(everyone)
        elif columns.demand_mips.size != len(everyone):
            raise ValueError("columns must have a row per VM of the hosts, in their order")
        self._rows = columns.history_mips
        demand, ram = columns.demand_mips, columns.ram_mib
        held, bw = columns.held_ram_mib, columns.bandwidth_mb_s
        self.demand = np.bincount(owner, demand, n)
        self.ram_used = np.bincount(owner, held, n)
        self.bandwidth_used = np.bincount(owner, bw, n)
        self.history = np.zeros((n, HISTORY_LENGTH))
        np.add.at(self.history, owner, self._rows)
        self.max_ram = np.zeros(n)
        np.maximum.at(self.max_ram, owner, ram)
        #: per host, how many of its VMs have its largest RAM
        self._at_max = np.bincount(owner, ram == self.max_ram[owner], n).astype(int).tolist()
        self.free_mips = self.mips - self.demand  #: kept equal to mips − demand
        self.free_ram = self.ram - self.ram_used  #: kept equal to ram − ram_used
        self.idle = self.used == 0
        self.core_min = float(self.core_mips.min()) if n else 0.0

    def history_mips(self, vm: VmView) -> np.ndarray:
        """:func:`_history_mips` of ``vm``, computed once per round."""
        k = self._row.get(id(vm))
        if k is None:
            k = self._row[id(vm)] = len(self._rows)
            self._rows = np.vstack([self._rows, _history_mips(vm)])
            self._others.append(vm)  # alive for the round, so that no other VM takes its id
        return self._rows[k]

    def overloaded(self, i: int, extra: VmView | None = None) -> bool:
        """The detector's verdict on host ``i`` with its VMs (and ``extra``)."""
        cap = self.caps[i]
        if extra is None:
            return self.detector.overloaded(
                _load(cap, self.demand[i], self.history[i], self.max_ram[i]))
        return self.detector.overloaded(_load(
            cap, self.demand[i] + extra.demand_mips, self.history[i] + self.history_mips(extra),
            max(self.max_ram[i], extra.ram_mib)))

    def loads(self, hosts: np.ndarray, extra: VmView | None = None) -> HostLoads:
        """:meth:`overloaded`'s loads of ``hosts`` (indices) at once, each with ``extra``."""
        demand, history, max_ram = self.demand[hosts], self.history[hosts], self.max_ram[hosts]
        if extra is not None:
            demand = demand + extra.demand_mips
            history = history + self.history_mips(extra)
            max_ram = np.maximum(max_ram, extra.ram_mib)
        return host_loads(demand, history, max_ram, self.mips[hosts], self.bandwidth[hosts])

    def _free(self, i: int) -> None:
        self.free_mips[i] = self.mips[i] - self.demand[i]
        self.free_ram[i] = self.ram[i] - self.ram_used[i]

    def add(self, i: int, vm: VmView) -> None:
        self.vms[i].append(vm)
        self.demand[i] += vm.demand_mips
        self.ram_used[i] += vm.held_ram_mib
        self.bandwidth_used[i] += vm.bandwidth_mb_s
        self.history[i] += self.history_mips(vm)
        if vm.ram_mib > self.max_ram[i]:
            self.max_ram[i], self._at_max[i] = vm.ram_mib, 1
        elif vm.ram_mib == self.max_ram[i]:
            self._at_max[i] += 1
        self._free(i)

    def remove(self, i: int, vm: VmView) -> None:
        vms = self.vms[i]
        vms.remove(vm)
        if not vms:  # exact zeros for an empty host
            self.demand[i] = self.ram_used[i] = self.bandwidth_used[i] = self.max_ram[i] = 0.0
            self.history[i] = 0.0
            self._at_max[i] = 0
        else:
            self.demand[i] -= vm.demand_mips
            self.ram_used[i] -= vm.held_ram_mib
            self.bandwidth_used[i] -= vm.bandwidth_mb_s
            self.history[i] -= self.history_mips(vm)
            if vm.ram_mib == self.max_ram[i]:
                self._at_max[i] -= 1
                if not self._at_max[i]:  # it was the last of the largest
                    largest = max(v.ram_mib for v in vms)
                    self.max_ram[i] = largest
                    self._at_max[i] = sum(v.ram_mib == largest for v in vms)
        self._free(i)

    def best_host(self, vm: VmView, excluded: np.ndarray) -> int | None:
        """PABFD for one VM: the host whose power rises least (ties: the first in
        host order) among those not ``excluded`` where it fits and that are idle
        or would not be overloaded with it."""
        fits = self.free_ram >= vm.held_ram_mib
        fits &= ~excluded
        fits &= (np.maximum(self.free_mips, 0.0) if vm.demand_mips <= 0
                 else self.free_mips) >= vm.demand_mips
        if vm.demand_mips / vm.vcpus > self.core_min:
            fits &= self.core_mips >= vm.demand_mips / vm.vcpus
        if vm.bandwidth_mb_s > 0:
            fits &= self.bandwidth - self.bandwidth_used >= vm.bandwidth_mb_s
        static = isinstance(self.detector, StaticThreshold)
        if static:  # its test on every host at once
            fits &= ((self.demand + vm.demand_mips) / self.mips <= self.detector.threshold) \
                | self.idle
        if not fits.any():
            return None
        rise = self.rise(vm.demand_mips)
        rise[~fits] = np.inf
        cheapest = int(rise.argmin())  # the first of the least rises: most VMs take it
        if static or self.idle[cheapest] or not self.overloaded(cheapest, vm):
            return cheapest
        candidates = fits.nonzero()[0]
        order = candidates[np.argsort(rise[candidates], kind="stable")][1:]
        for chunk in (order[:_FIRST_TRIED], order[_FIRST_TRIED:]):
            ok = self.idle[chunk]
            tested = chunk[~ok]
            if tested.size:
                ok[~ok] = ~overloaded_hosts(self.detector, self.loads(tested, vm))
            if ok.any():
                return int(chunk[ok.argmax()])
        return None

    def rise(self, demand_mips: float) -> np.ndarray:
        """Each host's power rise (W) with ``demand_mips`` more than its CPU use at the
        start of the round."""
        out = np.empty(self.used.size)
        for idx, evaluate, used, mips, now in self._rise_terms:
            out[idx] = evaluate((used + demand_mips) / mips) - now
        return out

    def power_at(self, util: np.ndarray) -> np.ndarray:
        """Each host's power (W) at ``util`` (one utilization per host)."""
        out = np.empty(util.size)
        for idx, evaluate in self._power:
            out[idx] = evaluate(util[idx])
        return out


_FIRST_TRIED = 8
"""When the cheapest host refuses a VM, PABFD tests the detector on this many of the next
cheapest hosts at once, then on the rest."""


def _hosts_of(members: list[int]) -> slice | np.ndarray:
    """Host indices ``members`` (ascending, distinct, not empty) as a slice when evenly
    spaced (hosts of alternating types), else as an array."""
    steps = set(np.diff(members).tolist())
    if len(steps) > 1:
        return np.array(members, np.int64)
    return slice(members[0], members[-1] + 1, steps.pop() if steps else 1)


def _evaluator(curve: PowerCurve) -> Callable[[np.ndarray], np.ndarray]:
    """``curve.power_w_array``, or for an 11-point table its interpolation directly."""
    points = getattr(curve, "points_w", None)
    if points is None or len(points) != 11:
        return curve.power_w_array
    grid, table = np.linspace(0.0, 1.0, 11), np.asarray(points, float)
    return lambda util: np.interp(util, grid, table)


def _history_matrix(vms: Sequence[VmView]) -> np.ndarray:
    """:func:`_history_mips` of every VM, one row each."""
    lengths = {len(v.history) for v in vms}
    if len(lengths) == 1 and lengths.pop() >= HISTORY_LENGTH:  # the usual case: one stack
        rows = np.array([np.asarray(v.history, dtype=float)[-HISTORY_LENGTH:] for v in vms])
        return rows * np.array([v.mips for v in vms], float)[:, None]
    out = np.zeros((len(vms), HISTORY_LENGTH))
    for k, vm in enumerate(vms):
        h = vm.history
        m = min(len(h), HISTORY_LENGTH)
        if m:
            out[k, HISTORY_LENGTH - m:] = np.asarray(h, dtype=float)[-m:]
    if len(vms):
        out *= np.array([v.mips for v in vms], float)[:, None]
    return out


@dataclass(frozen=True)
class Consolidation:
    """One consolidation policy: an overload ``detector`` and a VM ``selection``."""

    detector: OverloadDetector
    selection: VmSelection

    def place(self, vms: Sequence[VmView], hosts: Sequence[HostView],
              excluded: Iterable[str] = ()) -> tuple[str | None, ...]:
        """PABFD for new VMs (initial placement), one after the other in the order
        given, each seeing those placed before it: a host name per VM, None if none fits."""
        state = _Round(hosts, self.detector)
        mask = np.zeros(len(state.hosts), bool)
        mask[[state.index[name] for name in excluded]] = True
        out = []
        for vm in vms:
            best = state.best_host(vm, mask)
            if best is not None:
                state.add(best, vm)
            out.append(None if best is None else state.hosts[best].name)
        return tuple(out)

    def plan(self, hosts: Sequence[HostView], rng: np.random.Generator,
             columns: VmColumns | None = None) -> ConsolidationPlan:
        """The round's migrations (see the module docstring). ``rng`` serves RS only;
        ``columns``: the hosts' VMs as arrays, if the caller has them (else taken from
        the views)."""
        state = _Round(hosts, self.detector, columns)
        n = len(state.hosts)
        held = np.array([i for i in range(n) if state.vms[i]], np.int64)
        overloaded = held[overloaded_hosts(self.detector, state.loads(held))].tolist()
        picked: list[tuple[int, VmView]] = []
        for i in overloaded:
            movable = [v for v in state.vms[i] if not (v.migrating_out or v.migrating_in)]
            for vm in self._picks(movable, rng):
                state.remove(i, vm)
                picked.append((i, vm))
                if not state.overloaded(i):
                    break
        over = np.zeros(n, bool)
        over[overloaded] = True
        migrations = []
        for source, vm in sorted(picked, key=lambda p: -p[1].demand_mips):
            target = state.best_host(vm, over)
            state.add(source if target is None else target, vm)
            if target is not None:
                migrations.append((vm, source, target))
        idle = state.used == 0
        no_place = over | idle
        no_empty = no_place.copy()
        no_empty[[t for _, _, t in migrations]] = True
        emptied = []
        for i in self._underload_order(state):
            if no_empty[i]:
                continue
            vms = state.vms[i]
            if all(v.in_migration for v in vms) or any(v.migrating_in for v in vms):
                no_empty[i] = True
                continue
            no_empty[i] = no_place[i] = True
            moves = self._empty(state, i, no_place)
            if moves:
                no_empty[[t for _, _, t in moves]] = True
                migrations.extend(moves)
                emptied.append(i)
        return ConsolidationPlan(
            tuple(Migration(vm.name, state.hosts[s].name, state.hosts[t].name)
                  for vm, s, t in migrations),
            tuple(state.hosts[i].name for i in overloaded),
            tuple(state.hosts[i].name for i in emptied))

    def _picks(self, movable: list[VmView], rng: np.random.Generator) -> Iterator[VmView]:
        """The selection's picks from ``movable``, one after the other, each among those
        not picked before. A selection by a fixed ``key`` of each VM (MMT, MU) picks
        them in key order (stable: the first in host order at a tie), one sort."""
        if isinstance(self.selection, KeyedSelection):
            yield from sorted(movable, key=self.selection.key)
            return
        while (vm := self.selection.select(list(movable), rng)) is not None:
            movable.remove(vm)
            yield vm

    @staticmethod
    def _underload_order(state: _Round) -> np.ndarray:
        """Hosts with 0 < utilization < 1 at the start of the round, least utilized
        first (ties: host order). Utilization does not change during a round, so
        taking them in this order, skipping those excluded meanwhile, is taking the
        least-utilized host left each time."""
        util = state.used / state.mips
        candidates = np.flatnonzero((util > 0) & (util < 1))
        return candidates[np.argsort(util[candidates], kind="stable")]

    @staticmethod
    def _empty(state: _Round, i: int, excluded: np.ndarray) -> list[tuple[VmView, int, int]]:
        """Place every movable VM of host ``i`` (PABFD), or none of them."""
        moves = []
        for vm in sorted((v for v in state.vms[i] if not v.in_migration),
                         key=lambda v: -v.demand_mips):
            target = state.best_host(vm, excluded)
            if target is None:
                for moved, _, t in moves:
                    state.remove(t, moved)
                return []
            state.add(target, vm)
            moves.append((vm, i, target))
        for vm, _, _ in moves:
            state.remove(i, vm)
        return moves


OVERLOAD_DETECTORS: Mapping[str, Callable[..., OverloadDetector]] = {
    "thr": StaticThreshold,
    "iqr": InterQuartileRange,
    "mad": MedianAbsoluteDeviation,
    "lr": LocalRegression,
    "lrr": LocalRegression,
}
"""Overload detectors by name; each takes its parameter (threshold or safety) first."""

VM_SELECTIONS: Mapping[str, Callable[[], VmSelection]] = {
    "mmt": MinimumMigrationTime,
    "mc": MaximumCorrelation,
    "mu": MinimumUtilization,
    "rs": RandomSelection,
}
"""VM selection policies by name."""


def first_fit(vms: Sequence[VmView], hosts: Sequence[HostView]) -> tuple[str | None, ...]:
    """Initial placement without power awareness (CloudSim's PowerVmAllocationPolicySimple,
    the NPA and DVFS baselines): each VM, in the order given, on the first host where
    its vCPU, CPU demand, RAM and bandwidth fit beside the VMs placed before it."""
    mips = np.array([h.capacity.mips for h in hosts], float)
    core = np.array([h.capacity.core_mips for h in hosts], float)
    ram = np.array([h.capacity.ram_mib for h in hosts], float)
    bw = np.array([h.capacity.bandwidth_mb_s for h in hosts], float)
    used = np.array([h.used_mips for h in hosts], float)
    ram_used = np.array([sum(v.held_ram_mib for v in h.vms) for h in hosts], float)
    bw_used = np.array([sum(v.bandwidth_mb_s for v in h.vms) for h in hosts], float)
    out: list[str | None] = []
    for vm in vms:
        fits = np.flatnonzero((vm.demand_mips / vm.vcpus <= core)
                              & (mips - used >= vm.demand_mips)
                              & (ram - ram_used >= vm.held_ram_mib)
                              & (bw - bw_used >= vm.bandwidth_mb_s))
        if fits.size == 0:
            out.append(None)
            continue
        i = int(fits[0])
        used[i] += vm.demand_mips
        ram_used[i] += vm.held_ram_mib
        bw_used[i] += vm.bandwidth_mb_s
        out.append(hosts[i].name)
    return tuple(out)
