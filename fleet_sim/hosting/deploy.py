"""Deploy apps onto a fleet under one hosting mode: place, build, start (docs/model.md §2–§7).

The one entry point the composition root calls:

    deployment = deploy(env, hosts, "vm", apps, placement=BestFit(), streams=streams,
                        recorder=recorder, params=VmParams(cpu_ratio=2.0))

Each host gets a :class:`~fleet_sim.hosting.site.Site`: its kernel plus the mode's
runtime (a :class:`~fleet_sim.hosting.modes.HostingMode`). Apps are placed in the
order given (:mod:`fleet_sim.hosting.placement`), drawing tie-breaks from the stream
``placement``. The :class:`Deployment` keeps where each app went and its instances;
host failures, compromises (:mod:`fleet_sim.hosting.isolation`) and the end-of-run
``cpu.stat`` counters (:mod:`fleet_sim.hosting.containers`) act on it.

Nothing runs during :func:`deploy`: it admits and launches SimPy processes that
provision (install / boot / start) once ``env.run`` starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import simpy

from fleet_sim.errors import CapacityError
from fleet_sim.hosting import defaults
from fleet_sim.hosting.containers import cpu_stats, record_cpu_stats
from fleet_sim.hosting.hypervisor import VM
from fleet_sim.hosting.instance import Fetch, Instance
from fleet_sim.hosting.isolation import Exposure, compromise, exposures
from fleet_sim.hosting.livemigration import PRECOPY, PrecopyParams, live_migrate
from fleet_sim.hosting.modes import ModeParams, mode_params
from fleet_sim.hosting.placement import place_all
from fleet_sim.hosting.site import Site, as_host
from fleet_sim.hosting.specs import AppSpec, HostSpec
from fleet_sim.images.network import Network
from fleet_sim.model.host import Host
from fleet_sim.model.protocols import PlacementPolicy, Recorder
from fleet_sim.model.views import FleetView, HostView, PlacementRequest
from fleet_sim.rng import Streams


class Deployment:
    """What :func:`deploy` built: the sites (host, kernel, runtime), where each app went
    (``placement``: app → host), each app's innermost instance (``instances``: its
    process or container) and, in VM mode, its VM (``vms``). ``on_hosted``: called
    ``fn(app, instance)`` for each innermost instance admitted from then on (e.g. a
    replica restarted on another host)."""

    def __init__(self, env: simpy.Environment, mode: str, params: ModeParams,
                 sites: list[Site]):
        self.env = env
        self.mode = mode
        self.params = params
        self.sites = sites
        self.by_host = {s.host.name: s for s in sites}
        self.placement: dict[str, str] = {}
        self.instances: dict[str, Instance] = {}
        self.vms: dict[str, VM] = {}
        self.on_hosted: list[Callable[[str, Instance], None]] = []
        self._launch: list[tuple[Instance, Instance | None]] = []
        # the fleet view, updated where a kernel's view changed rather than rebuilt
        self._stale: set[int] = set()
        self._fleet: FleetView | None = None
        for i, s in enumerate(sites):
            s.kernel.on_view_change.append(lambda i=i: self._stale.add(i))

    @property
    def hosts(self) -> list[Host]:
        """The fleet's hosts, in order."""
        return [s.host for s in self.sites]

    def fleet_view(self) -> FleetView:
        """The fleet as placement sees it now (one object until a host's view changes;
        only the hosts that changed are looked at again)."""
        if self._fleet is None:
            self._fleet = FleetView(tuple(s.kernel.view() for s in self.sites))
            self._stale.clear()
        elif self._stale:
            sites = self.sites
            self._fleet = self._fleet.updated({i: sites[i].kernel.view()
                                               for i in sorted(self._stale)})
            self._stale.clear()
        return self._fleet

    def _host_app(self, site: Site, app: AppSpec) -> None:
        hosted = site.host_app(app)
        self._launch.extend(hosted)
        *outer, (inner, _) = hosted
        if outer:  # the VM it runs in
            self.vms[app.name] = outer[0][0]  # type: ignore[assignment]
        self.instances[app.name] = inner
        for fn in self.on_hosted:
            fn(app.name, inner)

    def place_on(self, app: AppSpec, host: str) -> None:
        """Admit ``app`` on ``host`` now and launch it: it provisions as at the start."""
        self._host_app(self.by_host[host], app)
        self.placement[app.name] = host
        self.launch()

    def place(self, app: AppSpec, policy: PlacementPolicy,
              rng: np.random.Generator) -> Site | None:
        """The site ``policy`` picks for ``app`` among the hosts it fits now (None: no room)."""
        chosen = policy.place(self.sites[0].candidate(app).request, self.fleet_view(), rng)
        return None if chosen is None else self.by_host[chosen]

    def admit(self, site: Site, app: AppSpec) -> list[Instance]:
        """Admit ``app`` on ``site`` now and launch it (raises CapacityError or
        ConflictError); return its instances, outermost first (a VM, the app inside)."""
        self._host_app(site, app)
        self.placement[app.name] = site.host.name
        admitted = [inst for inst, _ in self._launch]
        self.launch()
        return admitted

    def remove(self, app: str) -> None:
        """Stop ``app`` now (its VM with it) and forget it."""
        inner = self.instances.pop(app)
        vm = self.vms.pop(app, None)
        (inner if vm is None else vm).stop()
        self.placement.pop(app, None)

    def launch(self) -> None:
        """Start every admitted instance's lifecycle (guests after their VM is up)."""
        for inst, after in self._launch:
            inst.launch(after.up if after is not None else None)
        self._launch.clear()

    def workloads(self, app: str) -> list:
        """The workload nodes of ``app``."""
        return list(self.instances[app].workloads)

    def apps_on(self, host: str) -> list[str]:
        """Apps placed on ``host``."""
        return [a for a, h in self.placement.items() if h == host]

    def migrate(self, app: str, host: str, network: Network,
                params: PrecopyParams = PRECOPY) -> simpy.Process:
        """Live-migrate ``app``'s VM to ``host`` now, by pre-copy over ``network``
        (:func:`~fleet_sim.hosting.livemigration.live_migrate`; vm mode); ``placement``
        follows when it runs there. The process's value: whether it did."""
        vm = self.vms.get(app)
        if vm is None:
            raise ValueError(f"cannot live-migrate {app!r}: it runs in no VM here "
                             f"({self.mode} mode)")
        site = self.by_host.get(host)
        if site is None:
            raise ValueError(f"cannot live-migrate {app!r} to {host!r}: no such host")
        moving = live_migrate(vm, site.runtime, network, params)  # type: ignore[arg-type]

        def land():
            if (yield moving):
                self.placement[app] = host
            return moving.value
        return self.env.process(land())

    def move(self, app: str, host: str) -> Instance:
        """Move ``app``'s container to ``host`` now: stop it (event ``stop``; its jobs in
        flight are lost), admit it there and start it as at the start (a pull of what the
        host's layer cache lacks, then its start), and return the new instance (event
        ``move``, on ``host``, detail ``from <host>``). Its job ids go on from the old
        one's. Container mode only: a VM moves by live migration (:meth:`migrate`), an
        app on a shared OS never moves. Raises ValueError, or CapacityError (nothing
        stopped) if it does not fit on ``host``."""
        if self.mode != "container":
            raise ValueError(f"cannot move {app!r}: only containers are moved this way "
                             f"({self.mode} mode; a VM live-migrates: migrate)")
        site, source = self.by_host.get(host), self.placement.get(app)
        if site is None or source is None or source == host:
            raise ValueError(f"cannot move {app!r} from {source!r} to {host!r}: "
                             + ("no such host" if site is None else
                                "it is placed nowhere" if source is None else "it is there"))
        old = self.instances[app]
        why = site.kernel.view().why_not(site.candidate(old.app).request)
        if why:
            raise CapacityError(f"cannot move {app!r} to {host}: {why}")
        old.stop()
        new = self.place_again(old, host)
        new.event("move", f"from {source}")
        return new

    def place_again(self, old: Instance, host: str) -> Instance:
        """Admit ``old``'s app on ``host`` now and launch it (it provisions as at the
        start); its job ids go on from ``old``'s. Returns the new instance."""
        self.place_on(old.app, host)
        new = self.instances[old.app.name]
        new.follow(old)
        return new

    # ------------------------------------------------------------------ failures
    def fail_host(self, host: str, reason: str = "host_failure") -> list[str]:
        """``host`` fails now: everything on it dies (events ``host_failure`` and one
        ``killed`` per instance). Returns the apps it took down."""
        site = self.by_host[host]
        site.host.sync()
        apps = self.apps_on(host)
        site.host.recorder.event(self.env.now, "host_failure", host, ", ".join(apps),
                                 host=host, count=len(apps))
        site.kernel.fail(reason)
        site.host.up = False
        return apps

    def schedule_host_failure(self, host: str, at_s: float) -> simpy.Process:
        """Make ``host`` fail at time ``at_s``."""
        def _fail():
            yield self.env.timeout(max(0.0, at_s - self.env.now))
            self.fail_host(host)
        return self.env.process(_fail())

    def exposures(self, app: str, kernel_escape_p: float = defaults.KERNEL_ESCAPE_P,
                  hypervisor_escape_p: float = defaults.HYPERVISOR_ESCAPE_P) -> list[Exposure]:
        """Who a compromise of ``app`` exposes, with probabilities (docs/model.md §6)."""
        return exposures(self.instances[app], self.instances.values(), kernel_escape_p,
                         hypervisor_escape_p)

    def compromise(self, app: str, rng: np.random.Generator | None = None,
                   kernel_escape_p: float = defaults.KERNEL_ESCAPE_P,
                   hypervisor_escape_p: float = defaults.HYPERVISOR_ESCAPE_P) -> list[Exposure]:
        """``app`` is compromised now (event ``compromised``). Without ``rng``: every
        possible exposure (``exposed`` events with their probability); with it: the
        exposures of one draw of the escapes."""
        return compromise(self.instances[app], app, self.instances.values(), rng,
                          kernel_escape_p, hypervisor_escape_p)

    # ------------------------------------------------------------------ end of run
    def cpu_stats(self, t: float | None = None) -> dict[str, dict[str, float]]:
        """``cpu.stat`` counters of every container with a period-enforced quota."""
        return cpu_stats(self.instances, t)

    def finalize(self, t_end: float) -> None:
        """Advance every host to ``t_end`` and record each quota'd container's
        counters (event ``cpu_stat``)."""
        for s in self.sites:
            s.host.finalize(t_end)
        record_cpu_stats(self.instances, t_end)


def deploy(env: simpy.Environment, hosts: Sequence[Host | HostSpec], mode: str,
           apps: Sequence[AppSpec], placement: PlacementPolicy, streams: Streams,
           recorder: Recorder | None = None,
           params: ModeParams | Mapping[str, Any] | None = None, *, keep_jobs: bool = False,
           fetch: Fetch | None = None) -> Deployment:
    """Place ``apps`` on ``hosts`` under ``mode``, build their CPU trees and RAM
    accounts, and launch them (they provision once ``env.run`` starts).

    ``hosts``: Host objects, or HostSpecs built here with ``recorder``. ``mode``:
    ``"baremetal"`` | ``"vm"`` | ``"container"``; ``params``: that mode's parameters
    (see :func:`mode_params`). ``placement``: a policy (``place(request, fleet, rng)``)
    drawing ties from the stream ``placement``. ``keep_jobs``: keep finished jobs on
    the workloads (tests); ``fetch``: the image transfer of each container or VM before
    it starts (:class:`fleet_sim.images.supply.ImageSupply`; None: images are local).

    Raises CapacityError when the fleet is too small (the message names the app,
    its needs and what the fleet has left), ValueError for unknown modes/parameters.
    """
    p = mode_params(mode, params)
    sites = [Site(as_host(env, h, recorder), mode, p, streams, keep_jobs=keep_jobs, fetch=fetch)
             for h in hosts]
    if not sites:
        raise CapacityError(f"fleet too small: no hosts to place {len(apps)} apps on")
    dep = Deployment(env, mode, p, sites)
    requests = [sites[0].candidate(app).request for app in apps]

    def commit(i: int, app: AppSpec, _req: PlacementRequest) -> HostView:
        dep._host_app(sites[i], app)
        return sites[i].kernel.view()

    dep.placement = place_all(mode, apps, requests, dep.fleet_view(), placement,
                               streams.get("placement"), commit)
    dep.launch()
    return dep
