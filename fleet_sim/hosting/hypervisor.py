"""Hypervisors and their VMs (docs/model.md §2, §4, §5).

A :class:`Hypervisor` (type 1, or type 2 = hosted: it adds a host-OS RAM and CPU
footprint and a larger virtualization overhead) runs :class:`VM` s on a host:

- **CPU**: a VM is a node below the hypervisor's with cap = vCPUs (host cores),
  weight ∝ vCPUs (each vCPU is a host thread) and ``scale = 1 + virt_overhead``
  (guest work costs that many host core-s per guest core-s). Pinned VMs get their
  vCPUs as dedicated cores (reservation = cap = vCPUs: no steal). The guest OS
  burns a little background CPU. *Steal time* is the VM's contention, recorded in
  the ``instances`` table.
- **Admission**: shared vCPUs ≤ (cores − dedicated) × ``cpu_ratio`` (the vCPU
  overcommit ratio); the VM's RAM plus the per-VM hypervisor overhead is reserved
  when it is admitted (no RAM overcommit); CapacityError when either does not fit.
- **Boot**: the copy of the VM image to the host (``fetch``), then a draw of
  ``boot_s`` (stream ``hosting.<vm>.boot``), tens of seconds by default; the app
  inside starts after it, and jobs arriving meanwhile queue.
- **Inside**: a guest :class:`~fleet_sim.hosting.kernel.Kernel` (the VM's vCPUs and
  RAM, of which the guest OS uses ``guest_os_ram_mib``) running the app as
  processes, or a guest :class:`~fleet_sim.hosting.containers.ContainerRuntime`.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from fleet_sim.hosting import defaults
from fleet_sim.hosting.backoff import Backoff, service_restart
from fleet_sim.hosting.instance import AppProcess, Fetch, Instance, draw_s
from fleet_sim.hosting.kernel import Kernel
from fleet_sim.hosting.specs import AppSpec, WorkloadSpec
from fleet_sim.hosting.containers import ContainerParams, ContainerRuntime
from fleet_sim.model.cputree import INSTANCES, CpuNode
from fleet_sim.model.demand import Constant, DemandWorkload
from fleet_sim.model.distributions import Distribution, LogNormal
from fleet_sim.model.views import PlacementRequest
from fleet_sim.rng import Streams

#: the workload name of a VM's guest OS (its background CPU): ``<vm>.guest-os``
GUEST_OS = "guest-os"

#: default VM boot-time distribution (tens of seconds)
VM_BOOT_S = LogNormal(defaults.VM_BOOT_MEAN_S, defaults.VM_BOOT_CV)
VIRT_OVERHEAD = {1: defaults.VIRT_OVERHEAD_TYPE1, 2: defaults.VIRT_OVERHEAD_TYPE2}
VCPU_SIZING = ("request", "threads")
GUESTS = ("process", "container")
#: RAM account of a type-2 hypervisor's host OS on the host kernel
TYPE2_HOST_OS = "<type2-host-os>"


@dataclass(frozen=True)
class VmParams:
    """Hypervisor: type 1 | 2, vCPU overcommit ``cpu_ratio``, ``virt_overhead`` (default
    by type), boot time (s), guest OS RAM (MiB) and background CPU (cores), per-VM
    hypervisor RAM (MiB), VM sizing (``vcpus_from``: ``"request"`` | ``"threads"``),
    pinning, what runs inside (``guest``: ``"process"`` | ``"container"``, with
    ``guest_containers``), restart delay of guest processes (s), host OS RAM (MiB)."""

    hypervisor_type: int = 1
    cpu_ratio: float = 1.0
    virt_overhead: float | None = None
    boot_s: Distribution = VM_BOOT_S
    guest_os_ram_mib: float = defaults.GUEST_OS_RAM_MIB
    guest_os_cores: float = defaults.GUEST_OS_BACKGROUND_CORES
    vm_ram_overhead_mib: float = defaults.VM_HYPERVISOR_RAM_MIB
    vcpus_from: str = "request"
    pin_vcpus: bool = False
    guest: str = "process"
    guest_containers: ContainerParams = field(default_factory=ContainerParams)
    restart_backoff_s: float = defaults.SERVICE_RESTART_BACKOFF_S
    host_os_ram_mib: float = defaults.HOST_OS_RAM_MIB


class VM(Instance):
    """A virtual machine of ``vcpus`` and ``ram_mib`` (guest RAM) serving ``app``."""

    kind = "vm"
    start_event = "boot"

    def __init__(self, name: str, app: AppSpec, hypervisor: Hypervisor, vcpus: int,
                 ram_mib: float, pinned: bool = False):
        if vcpus < 1 or not ram_mib > 0:
            raise ValueError(f"VM {name!r}: need vcpus >= 1 and ram_mib > 0")
        self.hypervisor = hypervisor
        self.vcpus = int(vcpus)
        self.ram_mib = float(ram_mib)
        self.pinned = pinned
        self.migrating = False  #: on its way to another host (live migration)
        self.guest: Kernel | None = None
        self.guest_os: DemandWorkload | None = None
        super().__init__(name, app, hypervisor.kernel, hypervisor.streams)

    def placement_request(self) -> PlacementRequest:
        return PlacementRequest(self.name, float(self.vcpus),
                                self.ram_mib + self.hypervisor.params.vm_ram_overhead_mib,
                                dedicated=self.pinned)

    def admission_terms(self) -> dict[str, Any]:
        return {"used_mib": self.request.ram_mib, "killable": False}

    def workload_specs(self) -> tuple[WorkloadSpec, ...]:
        return ()

    def build_node(self) -> CpuNode:
        hv = self.hypervisor
        vcpus = float(self.vcpus)
        node = CpuNode(self.name, weight=vcpus, cap=vcpus, floor=vcpus if self.pinned else 0.0,
                       scale=1.0 + hv.virt_overhead, table=INSTANCES, instance=self.name)
        self.host.attach(node, hv.node)
        self.guest = Kernel(self.host, self.name, node, vcpus, self.ram_mib,
                            os_ram_mib=hv.params.guest_os_ram_mib, parent=hv.kernel)
        if hv.params.guest_os_cores > 0:
            self.guest_os = DemandWorkload(self.host, f"{self.name}.{GUEST_OS}",
                                           Constant(hv.params.guest_os_cores), parent=node,
                                           instance=self.name)
            self.guest_os.start()
        return node

    def provision(self) -> Generator[simpy.Event, Any, bool]:
        if not (yield from self.pull(self.hypervisor.fetch)):
            return False
        yield self.env.timeout(draw_s(self.hypervisor.params.boot_s,
                                      self.streams.get(f"hosting.{self.name}.boot")))
        return True

    def on_running(self) -> None:
        """Its RAM was reserved (and is in use) since admission."""

    def move_to(self, target: Hypervisor) -> None:
        """Run on ``target``'s host from now on, as it is (the end of a live migration):
        its CPU subtree (guest OS, processes, jobs in flight and their feeds) and its
        guest kernel move; the source's kernel releases it and the target's admits it."""
        assert self.node is not None and self.guest is not None
        self.host.move(self.node, target.host, target.node)
        self.kernel.release(self)
        self.hypervisor, self.kernel, self.host = target, target.kernel, target.host
        target.kernel.admit(self, **self.admission_terms())
        self.guest.host, self.guest.parent = target.host, target.kernel
        for inst in self.guest.instances.values():
            inst.host = target.host

    def on_crash(self, reason: str) -> None:
        if self.guest is None:
            return
        if reason == "stopped":
            for inst in list(self.guest.instances.values()):
                inst.stop()
            self.guest.up = False
        else:
            self.guest.fail(reason)


class Hypervisor:
    """A hypervisor on the host of ``kernel`` (the host's kernel) with ``params``, running
    VMs.

    ``params.virt_overhead``: extra host core-s per guest core-s (None: by type).
    ``params.cpu_ratio`` is the host kernel's (vCPU overcommit). ``vcpus_from``: size a
    VM by the app's CPU request (⌈request⌉) or its threads, unless the app sets
    ``vcpus``. ``pin_vcpus``: dedicated cores. ``guest``: run the app as ``"process"``
    es or in a ``"container"`` runtime (with ``guest_containers``). ``restart``: how a
    guest process comes back after a kill. ``fetch``: the copy of the VM's image to the
    host before each boot (the app is in the image: guests fetch nothing).
    """

    name = "vm"
    Params = VmParams
    image = "vm"
    in_place = False

    def __init__(self, kernel: Kernel, streams: Streams, params: VmParams, *,
                 keep_jobs: bool = False, fetch: Fetch | None = None):
        if params.hypervisor_type not in VIRT_OVERHEAD:
            raise ValueError(f"hypervisor_type must be 1 or 2, got {params.hypervisor_type!r}")
        if params.vcpus_from not in VCPU_SIZING:
            raise ValueError(f"unknown vcpus_from {params.vcpus_from!r}; "
                             f"valid: {', '.join(VCPU_SIZING)}")
        if params.guest not in GUESTS:
            raise ValueError(f"unknown guest {params.guest!r}; valid: {', '.join(GUESTS)}")
        self.kernel = kernel
        self.host = kernel.host
        self.streams = streams
        self.params = params
        self.virt_overhead = (VIRT_OVERHEAD[params.hypervisor_type]
                              if params.virt_overhead is None else float(params.virt_overhead))
        self.restart: Backoff | None = service_restart(params.restart_backoff_s)
        self.keep_jobs = keep_jobs
        self.fetch = fetch
        self.node = self.host.attach(CpuNode(f"{self.host.name}.hypervisor"), kernel.node)
        self.host_os: DemandWorkload | None = None
        if params.hypervisor_type == 2:
            kernel.add_footprint(TYPE2_HOST_OS, defaults.TYPE2_HOST_OS_RAM_MIB)
            self.host_os = DemandWorkload(self.host, f"{self.host.name}.host-os",
                                          Constant(defaults.TYPE2_HOST_OS_CORES),
                                          parent=kernel.node)
            self.host_os.start()

    # ------------------------------------------------------------------ VMs
    def size(self, app: AppSpec) -> tuple[int, float]:
        """(vCPUs, guest RAM MiB) of the VM that runs ``app``: its RAM plus the guest OS's
        (plus the container shim's with a guest runtime)."""
        if app.vcpus is not None:
            vcpus = app.vcpus
        elif self.params.vcpus_from == "threads":
            vcpus = app.threads
        else:
            vcpus = max(1, math.ceil(app.cpu_request_cores - 1e-9))
        ram = app.ram_mib + self.params.guest_os_ram_mib
        if self.params.guest == "container":
            ram += self.params.guest_containers.ram_overhead_mib
        return vcpus, ram

    def vm(self, name: str, app: AppSpec, vcpus: int, ram_mib: float,
           pinned: bool | None = None) -> VM:
        """A VM, not yet admitted."""
        return VM(name, app, self, vcpus, ram_mib,
                  self.params.pin_vcpus if pinned is None else pinned)

    def create_vm(self, name: str, app: AppSpec, vcpus: int, ram_mib: float,
                  pinned: bool | None = None) -> VM:
        """Admit a VM (raises CapacityError if its vCPUs or RAM do not fit); launch it to boot."""
        return self.vm(name, app, vcpus, ram_mib, pinned).admit()  # type: ignore[return-value]

    def vm_for(self, app: AppSpec) -> VM:
        """The VM that would run ``app`` (named ``<app>-vm``), not yet admitted."""
        vcpus, ram = self.size(app)
        return self.vm(f"{app.name}-vm", app, vcpus, ram)

    def run_app(self, app: AppSpec) -> tuple[VM, Instance]:
        """Admit a VM for ``app`` and the app inside it; launch both with
        ``vm.launch()`` then ``inner.launch(after=vm.up)``."""
        vm = self.vm_for(app).admit()
        assert isinstance(vm, VM) and vm.guest is not None
        if self.params.guest == "container":
            runtime = ContainerRuntime(vm.guest, self.streams, self.params.guest_containers,
                                       keep_jobs=self.keep_jobs)
            return vm, runtime.admit(app)
        inner = AppProcess(app.name, app, vm.guest, self.streams, backoff=self.restart,
                           keep_jobs=self.keep_jobs).admit()
        return vm, inner

    # ------------------------------------------------------------------ HostingMode
    def candidate(self, app: AppSpec) -> Instance:
        """What would be admitted on the host for ``app``: its VM (not admitted)."""
        return self.vm_for(app)

    def host_app(self, app: AppSpec) -> list[tuple[Instance, Instance | None]]:
        """Admit ``app``'s VM and the app inside: ``[(vm, None), (inner, vm)]``."""
        vm, inner = self.run_app(app)
        return [(vm, None), (inner, vm)]

    def cpu_key(self, app: AppSpec) -> str:
        """What sizes its VM's vCPUs (:meth:`size`)."""
        if app.vcpus is not None:
            return "vcpus"
        return "threads" if self.params.vcpus_from == "threads" else "cpu_request_cores"
