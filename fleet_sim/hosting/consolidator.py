"""Dynamic consolidation of a fleet's own instances (docs/model.md §5.6).

Every ``interval_s`` a :class:`Consolidator` hands a consolidation policy of
:mod:`fleet_sim.policies.consolidation` (an overload detector and a guest selection,
e.g. ``consolidation_policy("thr-mmt", 0.8)``) a read-only view of a
:class:`~fleet_sim.hosting.deploy.Deployment`'s hosts and guests, and carries out the
plan it returns. Each guest moves as the one instance it is: a VM by live migration
(:meth:`Deployment.migrate`: pre-copy on the run's network, CPU burnt on the source, a
stop-and-copy pause), a container by stop, pull, start (:meth:`Deployment.move`); apps
on a shared OS (bare metal) never move. A host that holds no guest and none coming is
switched off (0 W, :meth:`Host.set_power_state`), at once; a host chosen as a target
while off is switched on first (``switch_on_s`` at ``switch_on_w``), and the move
starts once it is on.

What the policy sees, in MIPS (a core of speed s runs s × 1000 MIPS): a guest's
capacity is its vCPUs (a container: its CPU limit, else its request) on its host's
cores; its demand is what its CPU tree asks for at the round, at most that capacity;
its utilization history holds one such sample per round, as CloudSim samples its
VMs. A guest on its way counts on the host it leaves and, with its full demand, on the
one it goes to, and is neither picked nor moved until it has arrived (a container:
until it runs again). A host's RAM for the fit tests is its kernel's RAM less the host
OS's; a guest holds what its kernel reserves for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from fleet_sim.errors import CapacityError
from fleet_sim.hosting.consolidation import NOMINAL_CORE_MIPS, PowerStates
from fleet_sim.hosting.deploy import Deployment
from fleet_sim.hosting.instance import RUNNING, Instance
from fleet_sim.hosting.livemigration import PRECOPY, PrecopyParams
from fleet_sim.hosting.site import Site
from fleet_sim.images.network import Network
from fleet_sim.model.views import HostCapacity
from fleet_sim.policies.consolidation import (
    HISTORY_LENGTH,
    Consolidation,
    ConsolidationPlan,
    HostView,
    VmView,
)

#: hosting modes whose guests move
MOVING_MODES = ("vm", "container")


class Consolidator:
    """Consolidates ``deployment`` with ``policy`` every ``interval_s`` from
    :meth:`start` on (module docstring). ``network``: what migrations and pulls cross
    (each host attached with its NIC); ``power``: the hosts' switch-on time and power;
    ``precopy``: how VMs migrate; ``rng``: the random selection's draws.

    Counts: ``moves`` planned, ``refused`` (the target's kernel does not admit the
    guest: its CPU requests × ``cpu_ratio`` or its RAM; event ``move_refused``),
    ``shutdowns`` (hosts switched off); ``plans``: each round's plan."""

    def __init__(self, deployment: Deployment, network: Network, policy: Consolidation,
                 rng: np.random.Generator, interval_s: float = 300.0,
                 power: PowerStates = PowerStates(), precopy: PrecopyParams = PRECOPY):
        if deployment.mode not in MOVING_MODES:
            raise ValueError(f"cannot consolidate a {deployment.mode} fleet: only VMs and "
                             f"containers move ({', '.join(MOVING_MODES)})")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        for site in deployment.sites:
            host = site.host
            if host.power is None or not hasattr(host.power, "power_w_array"):
                raise ValueError(f"cannot consolidate: host {host.name} has no power curve "
                                 "(power-aware placement needs one)")
            if f"{host.name}.up" not in network.links:
                raise ValueError(f"cannot consolidate: host {host.name} is not on the network")
        self.deployment = deployment
        self.env = deployment.env
        self.network = network
        self.policy = policy
        self.rng = rng
        self.interval_s = float(interval_s)
        self.power = power
        self.precopy = precopy
        self.history: dict[str, deque[float]] = {}  # app -> its guest's samples
        self.moving: dict[str, str] = {}  # app -> the host it is on its way to
        self._booted: dict[str, simpy.Event] = {}  # host switching on -> when it is on
        self.moves = self.refused = self.shutdowns = 0
        self.plans: list[ConsolidationPlan] = []

    def start(self) -> simpy.Process:
        """Switch empty hosts off now and run a round every ``interval_s``."""
        return self.env.process(self._run())

    def _run(self) -> Generator[simpy.Event, Any, None]:
        for site in self.deployment.sites:
            self._switch_off_if_empty(site)
        while True:
            yield self.env.timeout(self.interval_s)
            self.round()

    # ------------------------------------------------------------------ the round
    def guest(self, app: str) -> Instance:
        """What moves for ``app``: its VM, or its container."""
        dep = self.deployment
        return dep.vms[app] if dep.mode == "vm" else dep.instances[app]

    def _capacity_cores(self, app: str) -> float:
        guest = self.guest(app)
        if self.deployment.mode == "vm":
            return float(guest.vcpus)  # type: ignore[attr-defined]
        spec = guest.app
        return float(spec.cpu_limit_cores or spec.cpu_request_cores)

    def views(self) -> list[HostView]:
        """The hosts that are up as the policy sees them now, in fleet order; each
        guest's history gains this round's sample."""
        dep = self.deployment
        app_of = {self.guest(app).name: app for app in dep.instances}
        out = []
        for site in dep.sites:
            host, kernel = site.host, site.kernel
            if not host.up:
                continue
            host.sync()
            held = [(app_of[n], self.moving.get(app_of[n]) == host.name)
                    for n in kernel.instances if n in app_of]
            held += [(app, True) for app, target in self.moving.items()
                     if target == host.name and (app, True) not in held]
            # RAM the policy may give guests: the kernel's, less what others reserve
            others_mib = kernel.memory.reserved_mib - sum(
                kernel.instances[n].request.ram_mib for n in kernel.instances if n in app_of)
            core_mips = host.speed * NOMINAL_CORE_MIPS
            capacity = HostCapacity(int(host.cores), core_mips,
                                    kernel.memory.capacity_mib - others_mib,
                                    self.network.links[f"{host.name}.up"].capacity_mb_s,
                                    host.power)  # type: ignore[arg-type]
            vms = tuple(self._view(app, core_mips, incoming) for app, incoming in held)
            used = min(capacity.mips, sum(v.demand_mips for v in vms))
            out.append(HostView(host.name, capacity, vms, used))
        return out

    def _view(self, app: str, core_mips: float, incoming: bool) -> VmView:
        guest = self.guest(app)
        cores = self._capacity_cores(app)
        demand = min(cores, guest.node.raw) if guest.node is not None else 0.0
        history = self.history.setdefault(app, deque(maxlen=HISTORY_LENGTH))
        if not incoming:
            history.append(demand / cores)
        return VmView(app, cores * core_mips, demand * core_mips, guest.request.ram_mib,
                      tuple(history), vcpus=max(1, round(cores)),
                      bandwidth_mb_s=0.0, migrating_out=app in self.moving and not incoming,
                      migrating_in=incoming)

    def round(self) -> ConsolidationPlan:
        """One round now: the policy's plan over :meth:`views`, its moves started."""
        plan = self.policy.plan(self.views(), self.rng)
        self.plans.append(plan)
        for m in plan.migrations:
            self.moving[m.vm] = m.target
            self.moves += 1
            self.env.process(self._move(m.vm, m.source, m.target))
        return plan

    # ------------------------------------------------------------------ moves and power
    def _move(self, app: str, source: str, target: str) -> Generator[simpy.Event, Any, None]:
        dep = self.deployment
        site = dep.by_host[target]
        guest = self.guest(app)
        why = site.kernel.view().why_not(guest.request)
        if not why:
            if site.host.power_state == "off":
                self._switch_on(site)
            if target in self._booted:
                yield self._booted[target]
            try:
                if dep.mode == "vm":
                    yield dep.migrate(app, target, self.network, self.precopy)
                else:
                    yield dep.move(app, target).settled
            except (CapacityError, ValueError) as error:  # it changed while the host booted
                why = str(error)
        self.moving.pop(app, None)
        if why:
            self.refused += 1
            guest.event("move_refused", f"to {target}: {why}")
        self._switch_off_if_empty(dep.by_host[source])

    def _switch_on(self, site: Site) -> None:
        host, delay = site.host, self.power.switch_on_s
        host.recorder.event(self.env.now, "host_on", host.name, host=host.name,
                            duration_s=delay)
        if delay <= 0:
            host.set_power_state("on")
            return
        host.set_power_state("booting", self.power.switch_on_w)
        booted = self._booted[host.name] = self.env.timeout(delay)

        def on(_ev: simpy.Event) -> None:
            del self._booted[host.name]
            host.set_power_state("on")
        booted.callbacks.append(on)

    def _switch_off_if_empty(self, site: Site) -> None:
        host = site.host
        if (host.power_state != "on" or not host.up or site.kernel.instances
                or host.name in self.moving.values()):
            return
        host.set_power_state("off")
        self.shutdowns += 1
        host.recorder.event(self.env.now, "host_off", host.name, host=host.name)
