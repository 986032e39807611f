"""Placement glue: apps placed on a fleet, in order, by a placement policy
(docs/model.md §7).

The policy sees a :class:`~fleet_sim.model.views.FleetView` and the app's
:class:`~fleet_sim.model.views.PlacementRequest` (what admission will commit on the
host). When no host fits, :class:`~fleet_sim.errors.CapacityError` says which app,
what it needed and what the fleet had left. :func:`plan` does the placement alone,
without building anything that runs (for sizing studies).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import simpy

from fleet_sim.errors import CapacityError
from fleet_sim.hosting.modes import ModeParams, mode_params
from fleet_sim.hosting.site import Site, as_host
from fleet_sim.hosting.specs import AppSpec, HostSpec
from fleet_sim.model.host import Host
from fleet_sim.model.protocols import PlacementPolicy
from fleet_sim.model.views import FleetView, HostView, PlacementRequest
from fleet_sim.rng import Streams


def _describe(mode: str, app: AppSpec, req: PlacementRequest) -> str:
    what = "" if req.name == app.name else f" as {req.name!r}"
    cpu = f"{req.cpu_cores:g} {'dedicated ' if req.dedicated else ''}cores"
    deps = f", needs {dict(req.dependencies)}" if req.dependencies else ""
    return f"app {app.name!r}{what} ({cpu}, {req.ram_mib:g} MiB{deps}) under mode {mode!r}"


def _too_small(mode: str, policy: PlacementPolicy, app: AppSpec, req: PlacementRequest,
               fleet: FleetView, initial: FleetView, placed: int, total: int) -> str:
    """Why ``req`` found no host: what it needs and what the fleet has left."""
    name = getattr(policy, "name", type(policy).__name__)
    msg = (f"fleet too small: {_describe(mode, app, req)} fits on none of the {len(fleet)} "
           f"hosts with {name} (placed {placed} of {total} apps).")
    up = [v for v in fleet.hosts if v.up]
    if not up:
        return msg + " Every host is down."
    if not any(v.fits(req) for v in initial.hosts if v.up):
        biggest = max(up, key=lambda v: (v.cpu_capacity_cores, v.ram_mib))
        return msg + (f" It does not fit even an empty host: the largest has "
                      f"{biggest.cores:g} cores × ratio {biggest.cpu_ratio:g} and "
                      f"{biggest.ram_mib:g} MiB. Use bigger hosts or a smaller app.")
    conflicts = sum(1 for v in up if v.conflicts(req))
    msg += (f" Most free CPU on a host: {max(v.free_cpu_cores for v in up):g} cores "
            f"(cores × overcommit ratio); most free RAM: "
            f"{max(v.free_ram_mib for v in up):g} MiB")
    if conflicts:
        msg += f"; {conflicts} hosts have conflicting dependency versions"
    return msg + ". Add hosts, or raise the overcommit ratio."


def place_all(mode: str, apps: Sequence[AppSpec], requests: Sequence[PlacementRequest],
               fleet: FleetView, policy: PlacementPolicy, rng: np.random.Generator,
               commit: Callable[[int, AppSpec, PlacementRequest], HostView]) -> dict[str, str]:
    """Place every app in order; ``commit`` places it on host ``i`` and returns its new view."""
    names = [a.name for a in apps]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"app names must be unique, repeated: {dup}")
    index = {v.name: i for i, v in enumerate(fleet.hosts)}
    initial = fleet
    out: dict[str, str] = {}
    for app, req in zip(apps, requests, strict=True):
        chosen = policy.place(req, fleet, rng)
        if chosen is None:
            raise CapacityError(_too_small(mode, policy, app, req, fleet, initial, len(out),
                                           len(apps)))
        i = index[chosen]
        if not fleet.hosts[i].fits(req):
            raise RuntimeError(f"placement chose host {chosen!r} where {req.name!r} does not "
                               f"fit: {fleet.hosts[i].why_not(req)}")
        fleet = fleet.replaced(i, commit(i, app, req))
        out[app.name] = chosen
    return out


def plan(hosts: Sequence[Host | HostSpec], mode: str, apps: Sequence[AppSpec],
         placement: PlacementPolicy, rng: np.random.Generator,
         params: ModeParams | Mapping[str, Any] | None = None) -> dict[str, str]:
    """Where each app would go (``app → host``), without building anything that runs.

    Uses the same requests, host views and policy as :func:`deploy`. Raises
    CapacityError when the fleet is too small.
    """
    p = mode_params(mode, params)
    env = simpy.Environment()
    specs = [HostSpec(h.name, h.cores, h.ram_mib, h.speed) if isinstance(h, Host) else h
             for h in hosts]
    sites = [Site(as_host(env, s, None), mode, p, Streams(0)) for s in specs]
    if not sites:
        raise CapacityError(f"fleet too small: no hosts to place {len(apps)} apps on")
    requests = [sites[0].candidate(app).request for app in apps]
    fleet = FleetView(tuple(s.kernel.view() for s in sites))
    views = list(fleet.hosts)

    def commit(i: int, _app: AppSpec, req: PlacementRequest) -> HostView:
        views[i] = views[i].with_placed(req)
        return views[i]

    return place_all(mode, apps, requests, fleet, placement, rng, commit)
