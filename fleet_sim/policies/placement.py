"""Placement policies: which host gets the next app, VM or container (docs/model.md §7).

Each policy is a small pure class over read-only :mod:`fleet_sim.model.views`:
``place(request, fleet, rng) -> host name or None``. A host is a
candidate only if :meth:`HostView.fits` (CPU committed within cores × overcommit
ratio, RAM, dependency versions on a shared OS, host up); ``None`` means no host
fits. Ties are broken with the injected ``numpy.random.Generator``, so a fixed
stream gives a fixed placement.

- :class:`FirstFit`: the first candidate in fleet order (packs the front of the fleet).
- :class:`BestFit`: the candidate left with the least free resources (packs tightly).
- :class:`WorstFit`: the candidate left with the most free resources (spreads load).

"Free resources" after placement is the sum of the free shares of shared CPU and RAM,
each divided by the host's capacity, so hosts of different sizes compare fairly.

They score every host at once over the fleet's columns (:attr:`FleetView.table`),
with the same arithmetic as one host at a time (:func:`leftover`), so a placement
costs a few array operations rather than a Python loop over the fleet.
"""

from __future__ import annotations

import numpy as np

from fleet_sim.model.views import FleetView, HostTable, HostView, PlacementRequest


def leftover(view: HostView, request: PlacementRequest) -> float:
    """Free share of CPU plus free share of RAM of ``view`` after placing ``request``
    (the arithmetic of ``view.with_placed(request)``, without building that view: it
    runs for every candidate host of every placement)."""
    dedicated = view.dedicated_cores + (request.cpu_cores if request.dedicated else 0.0)
    committed = view.committed_cpu_cores + (0.0 if request.dedicated else request.cpu_cores)
    free_cpu = (view.cores - dedicated) * view.cpu_ratio - committed
    free_ram = view.ram_mib - (view.reserved_ram_mib + request.ram_mib)
    cpu = free_cpu / view.cpu_capacity_cores if view.cpu_capacity_cores > 0 else 0.0
    return cpu + free_ram / view.ram_mib


def leftovers(table: HostTable, request: PlacementRequest) -> np.ndarray:
    """:func:`leftover` of every host of ``table`` (the same floats)."""
    capacity = table.cpu_capacity_cores
    if request.dedicated:
        free_cpu = ((table.cores - (table.dedicated_cores + request.cpu_cores)) * table.cpu_ratio
                    - table.committed_cpu_cores)
    else:  # (cores - dedicated) × ratio is the capacity column
        free_cpu = capacity - (table.committed_cpu_cores + request.cpu_cores)
    free_ram = table.ram_mib - (table.reserved_ram_mib + request.ram_mib)
    if capacity.size and capacity.min() > 0:
        cpu = free_cpu / capacity
    else:  # no shared CPU left to share: its share counts 0
        cpu = np.zeros_like(free_cpu)
        np.divide(free_cpu, capacity, out=cpu, where=capacity > 0)
    return cpu + free_ram / table.ram_mib


class FirstFit:
    """Decides: the first host in fleet order that fits."""

    name = "first-fit"

    def place(self, request: PlacementRequest, fleet: FleetView,
              rng: np.random.Generator | None = None) -> str | None:
        fitting = np.flatnonzero(fleet.fits(request))
        return fleet.hosts[fitting[0]].name if fitting.size else None


class _ScoredFit:
    """Chooses the fitting host with the best score (``sign`` × leftover, lowest wins)."""

    name = ""
    sign = 1.0

    def place(self, request: PlacementRequest, fleet: FleetView,
              rng: np.random.Generator) -> str | None:
        fitting = np.flatnonzero(fleet.fits(request))
        if not fitting.size:
            return None
        scores = self.sign * leftovers(fleet.table, request)[fitting]
        best = fitting[scores == scores.min()]  # ties in fleet order
        chosen = best[0] if len(best) == 1 else best[int(rng.integers(len(best)))]
        return fleet.hosts[chosen].name


class BestFit(_ScoredFit):
    """Decides: the host left with the least free CPU + RAM share (tight packing)."""

    name = "best-fit"
    sign = 1.0


class WorstFit(_ScoredFit):
    """Decides: the host left with the most free CPU + RAM share (spread)."""

    name = "worst-fit"
    sign = -1.0
