"""Live migration of a running VM to another host of the fleet (docs/model.md §5.5).

The VM is one instance, moved: its CPU subtree (the guest OS, the app's processes and
the jobs in flight, with the work they have left), its arrival streams and its guest
kernel go from the source host's tree to the target's, and every later event of it
happens there. How it goes (:func:`live_migrate`):

1. The target's kernel reserves the VM's vCPUs and RAM (placement sees it on both
   hosts from now on; CapacityError if it does not fit).
2. Pre-copy (:func:`~fleet_sim.hosting.migration.precopy_rounds`): round 0 sends the
   VM's RAM while it runs, each next round what it dirtied meanwhile, each round a
   transfer ``source.up → target.down`` on the fleet's network, shared max-min with
   every other transfer of the moment (image pulls, other migrations); a host's
   migrations also share half its NIC each way (limit links
   ``<host>.migration-out`` / ``-in``, made on first use). Meanwhile the source's
   hypervisor burns ``cpu_loss`` × the VM's vCPUs for the copy and the dirty-page
   tracking (the workload ``<vm>.migration``, competing with every guest there).
3. Stop-and-copy: the VM is paused (cap 0: its jobs make no progress, its arrivals
   queue) while the rest is sent: the downtime.
4. The VM runs on the target: its subtree is moved, the source releases its vCPUs and
   RAM, and the event ``migration`` is recorded (on the target, detail
   ``from <source>``, ``duration_s``, ``ram_mib``, ``count`` = copy rounds).

If the source fails meanwhile the VM is lost there as any other guest; if the target
fails, the migration is abandoned and the VM keeps running on the source; either way
no round starts after that. Not moved:
VMs with pinned vCPUs and VMs whose guest runs a container runtime (their cgroup
quotas live on the host's scheduler clock).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from fleet_sim.errors import CapacityError
from fleet_sim.hosting.hypervisor import VM, Hypervisor
from fleet_sim.hosting.instance import RUNNING
from fleet_sim.hosting.migration import MIGRATION_CPU_LOSS, precopy_rounds
from fleet_sim.hosting.processes import set_limits
from fleet_sim.images.network import Link, Network
from fleet_sim.model.demand import Constant, DemandWorkload
from fleet_sim.model.views import PlacementRequest

#: the workload of a migration's CPU cost on the source: ``<vm>.migration``
MIGRATION = "migration"


@dataclass(frozen=True)
class PrecopyParams:
    """Pre-copy: the rate the VM dirties its RAM (MB/s), the MB left at which it stops
    and copies, the most copy rounds, and the CPU the source burns meanwhile (a share
    of the VM's vCPUs; CloudSim's 10 % by default)."""

    dirty_mb_s: float = 10.0
    stop_mb: float = 50.0
    max_rounds: int = 30
    cpu_loss: float = MIGRATION_CPU_LOSS

    def __post_init__(self) -> None:
        if not (self.dirty_mb_s >= 0 and self.stop_mb >= 0 and self.max_rounds >= 1
                and 0 <= self.cpu_loss <= 1):
            raise ValueError(f"pre-copy needs dirty_mb_s >= 0, stop_mb >= 0, max_rounds >= 1 "
                             f"and 0 <= cpu_loss <= 1, got {self}")


#: the default pre-copy
PRECOPY = PrecopyParams()


def migration_links(network: Network, host: str) -> tuple[Link, Link]:
    """``host``'s migration limits, out and in: half its NIC each way (made on first use,
    as limits: not in the ``links`` table)."""
    out = []
    for end, nic in (("out", "up"), ("in", "down")):
        name = f"{host}.migration-{end}"
        link = network.links.get(name)
        if link is None:
            link = network.add_link(name, network.links[f"{host}.{nic}"].capacity_mb_s / 2.0,
                                    record=False)
        out.append(link)
    return out[0], out[1]


def precopy_over(network: Network, source: str, target: str, ram_mib: float,
                 params: PrecopyParams, pause: Callable[[], None],
                 limits: tuple[Link, ...] = (), going_on: Callable[[], bool] = lambda: True,
                 ) -> Generator[simpy.Event, Any, tuple[float, int]]:
    """Carry pre-copy's rounds as transfers from ``source`` to ``target`` on ``network``
    (crossing ``limits`` too), calling ``pause()`` before the stop-and-copy, and
    stopping after a round once ``going_on()`` is False (SimPy generator); return
    (downtime s, copy rounds)."""
    env = network.env
    rounds = precopy_rounds(ram_mib, params.dirty_mb_s, params.stop_mb, params.max_rounds)
    mb, paused = next(rounds)
    n = 0
    while True:
        if paused:
            pause()
        began = env.now
        yield network.transfer(source, target, mb, limits)
        n += 1
        if paused or not going_on():
            return (env.now - began if paused else 0.0), n
        mb, paused = rounds.send(env.now - began)


class _Incoming:
    """What the target's kernel holds for a VM on its way: its request, and the crash
    of the target (which abandons the migration)."""

    kind = "vm"
    ram_limit_mib = None

    def __init__(self, vm: VM):
        self.name = vm.name
        self.request: PlacementRequest = vm.request
        self.lost = False

    def crash(self, reason: str) -> None:
        self.lost = True


def live_migrate(vm: VM, target: Hypervisor, network: Network,
                 params: PrecopyParams = PRECOPY) -> simpy.Process:
    """Move running ``vm`` to ``target``'s host by pre-copy over ``network`` (module
    docstring); the process's value is True once it runs there, False if the migration
    was abandoned (the VM stopped, or either host failed). Raises ValueError if it is
    not running, already migrating, pinned, has a guest container runtime or is on
    ``target`` already; CapacityError if it does not fit on ``target``."""
    where = f"cannot live-migrate {vm.name} from {vm.host.name} to {target.host.name}"
    if target.host is vm.host:
        raise ValueError(f"{where}: it is there already")
    if vm.state != RUNNING or vm.migrating:
        raise ValueError(f"{where}: it is {'migrating' if vm.migrating else vm.state or 'new'}, "
                         "not running")
    if vm.pinned or vm.hypervisor.params.guest != "process":
        raise ValueError(f"{where}: VMs with pinned vCPUs or a guest container runtime "
                         "are not live-migrated")
    if not target.kernel.up:
        raise CapacityError(f"{where}: the target host is down")
    incoming = _Incoming(vm)
    target.kernel.admit(incoming, used_mib=vm.request.ram_mib,  # type: ignore[arg-type]
                        killable=False)
    vm.migrating = True
    return vm.env.process(_migrate(vm, target, network, params, incoming))


def _migrate(vm: VM, target: Hypervisor, network: Network, params: PrecopyParams,
             incoming: _Incoming):
    source_hv, source, dest = vm.hypervisor, vm.host, target.host
    env = vm.env
    began = env.now
    cost = DemandWorkload(source, f"{vm.name}.{MIGRATION}",
                          Constant(params.cpu_loss * vm.vcpus), parent=source_hv.node,
                          instance=vm.name)
    cost.start()

    def going_on() -> bool:
        return vm.state == RUNNING and not incoming.lost

    def pause() -> None:
        if going_on():
            set_limits(source, vm.node, cap=0.0)  # type: ignore[arg-type]

    limits = migration_links(network, source.name)[0], migration_links(network, dest.name)[1]
    downtime_s, rounds = yield from precopy_over(network, source.name, dest.name, vm.ram_mib,
                                                 params, pause, limits, going_on)
    source.set_demand(cost, 0.0)
    source.detach(cost)
    vm.migrating = False
    target.kernel.release(incoming)  # type: ignore[arg-type]
    if vm.state != RUNNING or incoming.lost:
        if vm.state == RUNNING:
            set_limits(source, vm.node, cap=float(vm.vcpus))  # type: ignore[arg-type]
        return False
    vm.move_to(target)
    set_limits(dest, vm.node, cap=float(vm.vcpus))  # type: ignore[arg-type]
    vm.event(MIGRATION, f"from {source.name}; downtime_s={downtime_s:g}",
             duration_s=env.now - began, ram_mib=vm.ram_mib, count=rounds)
    return True
