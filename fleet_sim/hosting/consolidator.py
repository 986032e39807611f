"""Dynamic consolidation of a fleet's own instances (docs/model.md §5.6).

Every ``interval_s`` a :class:`Consolidator` samples each guest of a
:class:`~fleet_sim.hosting.deploy.Deployment` (a VM, or a container), hands what it
saw (:meth:`Consolidator.snapshot`, read-only) to an injected decision (``decide``;
``fleet_sim.scenarios.fleet_consolidation`` runs the consolidation policies of
:mod:`fleet_sim.policies.consolidation` there) and carries out the moves it returns.
Each guest moves as the one instance it is: a VM by live migration
(:meth:`Deployment.migrate`: pre-copy on the run's network, CPU burnt on the source, a
stop-and-copy pause), a container by stop, pull, start (:meth:`Deployment.move`); apps
on a shared OS (bare metal) never move. A move the target's kernel would not admit
(its CPU requests × ``cpu_ratio``, its RAM) is refused (event ``move_refused``) and the
guest stays. A host that holds no guest and none coming is switched off (0 W,
:meth:`Host.set_power_state`) at once; a host chosen as a target while off is switched
on first (``switch_on_s`` at ``switch_on_w``) and the move starts once it is on.

A guest's sample is the CPU its tree asks for at the round (cores, at most its
capacity: its vCPUs, or a container's CPU limit, else its request), as CloudSim samples
its VMs once an interval; its history holds the newest ``history_length``. A guest on
its way counts on the host it leaves and, incoming, on the one it goes to until it has
arrived (a container: until it runs again).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import simpy

from fleet_sim.errors import CapacityError
from fleet_sim.hosting.consolidation import PowerStates
from fleet_sim.hosting.deploy import Deployment
from fleet_sim.hosting.instance import RUNNING, Instance
from fleet_sim.hosting.livemigration import PRECOPY, PrecopyParams
from fleet_sim.hosting.site import Site
from fleet_sim.images.network import Network
from fleet_sim.model.host import Host

#: hosting modes whose guests move
MOVING_MODES = ("vm", "container")
#: CloudSim's hosts: switched on at once, at no cost
INSTANT_ON = PowerStates()


@dataclass(frozen=True)
class GuestSample:
    """One guest at a round: its ``app``, ``cores`` (capacity), ``demand_cores`` now,
    ``ram_mib`` (what its kernel reserves, what a move copies), ``history`` (demand ÷
    capacity, one per round, oldest first); ``outgoing`` / ``incoming``: on its way
    from / to this host."""

    app: str
    cores: float
    demand_cores: float
    ram_mib: float
    history: tuple[float, ...]
    outgoing: bool = False
    incoming: bool = False


@dataclass(frozen=True)
class HostSample:
    """One host that is up, at a round: the ``host`` (cores, speed, power curve, power
    state), ``ram_mib`` its guests may hold (its kernel's, less what others reserve),
    ``nic_mb_s`` and its ``guests`` (arrived first, then incoming)."""

    host: Host
    ram_mib: float
    nic_mb_s: float
    guests: tuple[GuestSample, ...]


#: what a round decides from the hosts: (app, target host) moves, in order
Decide = Callable[[Sequence[HostSample]], Iterable[tuple[str, str]]]


class Consolidator:
    """Consolidates ``deployment`` with ``decide`` every ``interval_s`` from
    :meth:`start` on (module docstring). ``network``: what migrations and pulls cross
    (each host attached with its NIC); ``power``: the hosts' switch-on time and power;
    ``precopy``: how VMs migrate.

    Counts: ``moves`` decided, ``refused`` (event ``move_refused``), ``shutdowns``
    (hosts switched off); ``decided``: each round's moves."""

    def __init__(self, deployment: Deployment, network: Network, decide: Decide,
                 interval_s: float = 300.0, power: PowerStates = INSTANT_ON,
                 precopy: PrecopyParams = PRECOPY, history_length: int = 30):
        if deployment.mode not in MOVING_MODES:
            raise ValueError(f"cannot consolidate a {deployment.mode} fleet: only VMs and "
                             f"containers move ({', '.join(MOVING_MODES)})")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        for site in deployment.sites:
            if f"{site.host.name}.up" not in network.links:
                raise ValueError(f"cannot consolidate: host {site.host.name} is not on "
                                 "the network")
        self.deployment = deployment
        self.env = deployment.env
        self.network = network
        self.decide = decide
        self.interval_s = float(interval_s)
        self.power = power
        self.precopy = precopy
        self.history_length = int(history_length)
        self.history: dict[str, deque[float]] = {}  # app -> its guest's samples
        self.moving: dict[str, str] = {}  # app -> the host it is on its way to
        self._booted: dict[str, simpy.Event] = {}  # host switching on -> when it is on
        self.moves = self.refused = self.shutdowns = 0
        self.decided: list[list[tuple[str, str]]] = []

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

    def _capacity_cores(self, guest: Instance) -> float:
        if self.deployment.mode == "vm":
            return float(guest.vcpus)  # type: ignore[attr-defined]
        return float(guest.app.cpu_limit_cores or guest.app.cpu_request_cores)

    def snapshot(self) -> list[HostSample]:
        """The hosts that are up and their guests now, in fleet order; each guest that
        has arrived gains this round's sample in its history."""
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
            others_mib = kernel.memory.reserved_mib - sum(
                kernel.instances[n].request.ram_mib for n in kernel.instances if n in app_of)
            out.append(HostSample(host, kernel.memory.capacity_mib - others_mib,
                                  self.network.links[f"{host.name}.up"].capacity_mb_s,
                                  tuple(self._sample(app, incoming) for app, incoming in held)))
        return out

    def _sample(self, app: str, incoming: bool) -> GuestSample:
        guest = self.guest(app)
        cores = self._capacity_cores(guest)
        demand = min(cores, guest.node.raw) if guest.node is not None else 0.0
        history = self.history.setdefault(app, deque(maxlen=self.history_length))
        if not incoming:
            history.append(demand / cores)
        return GuestSample(app, cores, demand, guest.request.ram_mib, tuple(history),
                           outgoing=app in self.moving and not incoming, incoming=incoming)

    def round(self) -> list[tuple[str, str]]:
        """One round now: ``decide`` over :meth:`snapshot`, its moves started."""
        moves = [(app, target) for app, target in self.decide(self.snapshot())
                 if app not in self.moving and self.guest(app).host.name != target]
        self.decided.append(moves)
        for app, target in moves:
            source = self.guest(app).host.name
            self.moving[app] = target
            self.moves += 1
            self.env.process(self._move(app, source, target))
        return moves

    # ------------------------------------------------------------------ moves and power
    def _move(self, app: str, source: str, target: str) -> Generator[simpy.Event, Any, None]:
        dep = self.deployment
        site = dep.by_host[target]
        guest = self.guest(app)
        # a host that is off or booting is empty: whether the guest fits is for its
        # kernel to say once it is on
        on = site.host.power_state == "on"
        why = site.kernel.view().why_not(guest.request) if on else ""
        if not why:
            if site.host.power_state == "off":
                self._switch_on(site)
            if target in self._booted:
                yield self._booted[target]
            if dep.mode == "vm" and guest.state != RUNNING:  # a VM booting or restarting
                why = f"it is {guest.state or 'new'}, not running"
        if not why:
            try:
                if dep.mode == "vm":
                    yield dep.migrate(app, target, self.network, self.precopy)
                else:
                    yield dep.move(app, target).settled
            except CapacityError as error:  # it changed while the host booted
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
            self._power(site, "on")
            return
        self._power(site, "booting", self.power.switch_on_w)
        booted = self._booted[host.name] = self.env.timeout(delay)

        def on(_ev: simpy.Event) -> None:
            del self._booted[host.name]
            self._power(site, "on")
        booted.callbacks.append(on)

    @staticmethod
    def _power(site: Site, state: str, watts: float = 0.0) -> None:
        """Set the host's power state; its kernel takes instances only while it is on
        (placement, failure recovery and rollouts see it down meanwhile)."""
        site.host.set_power_state(state, watts)
        site.kernel.up = state == "on"

    def _switch_off_if_empty(self, site: Site) -> None:
        host = site.host
        if (host.power_state != "on" or not host.up or site.kernel.instances
                or host.name in self.moving.values()):
            return
        self._power(site, "off")
        self.shutdowns += 1
        host.recorder.event(self.env.now, "host_off", host.name, host=host.name)
