"""Figures of a consolidation run: energy, migrations, SLATAH, PDM, SLAV, host shutdowns
(docs/model.md §12.4).

Pure functions over change-point series (docs/model.md §9.1): a value holds from its
time until the next change, the last one until ``t_end``; figures are exact integrals
over the window ``[t_start, t_end]`` (``t_start`` defaults to the first change point).
Definitions after Beloglazov & Buyya (2012), computed as CloudSim 3.0.3 does (ratios
of sums over hosts and VMs, not means of per-host or per-VM ratios).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fleet_sim.hosting.consolidation import BOOTING, OFF, ON, FleetRecord
from fleet_sim.numerics.timeweighted import ArrayLike, integral
from fleet_sim.model.views import PowerCurve
from fleet_sim.units import J_PER_KWH

SHORTFALL_RTOL = 1e-9
"""A VM or host is short of CPU when it gets less than (1 − this) × what it asks:
rounding in the allocator is not a violation."""


@dataclass(frozen=True)
class HostSeries:
    """One host's change points: times ``t`` (s); ``demand``: CPU asked of it and
    ``utilization``: CPU it delivered, both fractions of its capacity (demand may
    exceed 1, utilization not); ``active``: switched on (booleans)."""

    t: ArrayLike
    demand: ArrayLike
    utilization: ArrayLike
    active: ArrayLike


@dataclass(frozen=True)
class VmSeries:
    """One VM's change points: times ``t`` (s), CPU ``requested_mips`` and
    ``allocated_mips`` (any one CPU unit), ``migrating``: a migration of it under way."""

    t: ArrayLike
    requested_mips: ArrayLike
    allocated_mips: ArrayLike
    migrating: ArrayLike


def _short(asked: ArrayLike, got: ArrayLike) -> np.ndarray:
    return np.asarray(got, dtype=float) < np.asarray(asked, dtype=float) * (1 - SHORTFALL_RTOL)


def energy_kwh(host: HostSeries, power: PowerCurve, t_end: float,
               t_start: float | None = None) -> float:
    """Energy (kWh) the host drew: its power curve at its utilization while active,
    0 W while switched off."""
    active = np.asarray(host.active, dtype=bool)
    watts = np.where(active, power.power_w_array(np.asarray(host.utilization, dtype=float)), 0.0)
    return integral(host.t, watts, t_end, t_start) / J_PER_KWH


def migration_count(start_times_s: ArrayLike, t_end: float, t_start: float = 0.0) -> int:
    """Migrations started in ``[t_start, t_end)``."""
    t = np.asarray(start_times_s, dtype=float)
    return int(np.count_nonzero((t >= t_start) & (t < t_end)))


def slatah(hosts: Iterable[HostSeries], t_end: float, t_start: float | None = None) -> float:
    """SLA violation time per active host: the time hosts spent active and unable to
    deliver the CPU asked of them (running at 100 %), over the time they spent active,
    summed over hosts (a fraction; nan if no host was ever active)."""
    short_s = active_s = 0.0
    for h in hosts:
        active = np.asarray(h.active, dtype=bool)
        active_s += integral(h.t, active, t_end, t_start)
        short_s += integral(h.t, active & _short(h.demand, h.utilization), t_end, t_start)
    return short_s / active_s if active_s > 0 else math.nan


def pdm(vms: Iterable[VmSeries], t_end: float, t_start: float | None = None) -> float:
    """Performance degradation due to migrations: the CPU the VMs asked for and did not
    get while migrating, over all the CPU they asked for (a fraction; nan if none asked)."""
    lost = asked = 0.0
    for v in vms:
        requested = np.asarray(v.requested_mips, dtype=float)
        allocated = np.asarray(v.allocated_mips, dtype=float)
        during = np.asarray(v.migrating, dtype=bool) & _short(requested, allocated)
        lost += integral(v.t, np.where(during, requested - allocated, 0.0), t_end, t_start)
        asked += integral(v.t, requested, t_end, t_start)
    return lost / asked if asked > 0 else math.nan


def slav(slatah_fraction: float, pdm_fraction: float) -> float:
    """SLA violation: SLATAH × PDM (a fraction)."""
    return slatah_fraction * pdm_fraction


def host_shutdowns(active: ArrayLike, initially_on: bool = True) -> int:
    """Times a host went from active to switched off, in its change points ``active``.

    ``initially_on``: the state before the first change point. CloudSim starts every
    host on, so a host idle from the start counts one shutdown; pass False to count
    only hosts that ran first.
    """
    states = np.concatenate([[bool(initially_on)], np.asarray(active, dtype=bool)])
    return int(np.count_nonzero(states[:-1] & ~states[1:]))


FIGURES = ("energy_kwh", "migrations", "slatah", "pdm", "slav", "host_shutdowns")
"""The summary columns of a consolidation run."""


def _watts(record: FleetRecord, power: PowerCurve, s: dict[str, np.ndarray]) -> np.ndarray:
    """A host's power at each of its change points ``s`` (W): its curve at its
    utilization while on (at its peak with ``peak_always``), the record's
    ``switch_on_w`` while switching on, 0 W off."""
    util = np.asarray(s["utilization"], dtype=float)
    drawn = np.ones_like(util) if record.power.peak_always else util
    watts = np.where(s["state"] == ON, power.power_w_array(drawn), 0.0)
    return np.where(s["state"] == BOOTING, record.power.switch_on_w, watts)


def summarize(record: FleetRecord, t_end: float, t_start: float = 0.0) -> dict[str, float]:
    """The :data:`FIGURES` of a :class:`~fleet_sim.hosting.consolidation.FleetRecord`
    over ``[t_start, t_end]``. A host switching on counts as active, drawing the
    record's ``switch_on_w``; with ``peak_always`` (NPA) an active host draws its peak."""
    hosts, energy, shutdowns = [], 0.0, 0
    for spec, s in zip(record.hosts, record.host_series, strict=True):
        state = s["state"]
        on = state == ON
        series = HostSeries(s["t"], s["requested"], s["utilization"], on)
        hosts.append(series)
        energy += integral(s["t"], _watts(record, spec.capacity.power, s), t_end,
                           t_start) / J_PER_KWH
        shutdowns += host_shutdowns(state != OFF)
    vms = [VmSeries(v["t"], v["requested_mips"], v["allocated_mips"], v["migrating"] > 0)
           for v in record.vm_series]
    sla_time, degradation = slatah(hosts, t_end, t_start), pdm(vms, t_end, t_start)
    return {"energy_kwh": energy,
            "migrations": float(migration_count(record.move_starts_s, t_end, t_start)),
            "slatah": sla_time, "pdm": degradation, "slav": slav(sla_time, degradation),
            "host_shutdowns": float(shutdowns)}


def host_rows(record: FleetRecord) -> dict[str, np.ndarray | pd.Categorical]:
    """The ``hosts`` table's recorded columns of a consolidation run: each host's change
    points, the cores it delivered (its utilization × its cores), its power (W, as
    :func:`summarize` counts it) and the RAM of the guests on it and coming to it (MiB)."""
    names = [h.name for h in record.hosts]
    columns: dict[str, list[np.ndarray]] = {c: [] for c in (
        "t", "cpu_used_cores", "cpu_capacity_cores", "power_w", "ram_used_mib")}
    counts = []
    for spec, s in zip(record.hosts, record.host_series, strict=True):
        cap = spec.capacity
        util = np.asarray(s["utilization"], dtype=float)
        columns["t"].append(s["t"])
        columns["cpu_used_cores"].append(util * cap.cores)
        columns["cpu_capacity_cores"].append(np.full(util.size, float(cap.cores)))
        columns["power_w"].append(_watts(record, cap.power, s))
        columns["ram_used_mib"].append(s["ram_used"])
        counts.append(util.size)
    out: dict[str, np.ndarray | pd.Categorical] = {
        c: np.concatenate(parts) if parts else np.zeros(0) for c, parts in columns.items()}
    out["host"] = pd.Categorical.from_codes(np.repeat(np.arange(len(names)), counts),
                                            categories=names)
    return out
