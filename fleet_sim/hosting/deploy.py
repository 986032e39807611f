"""Deploy apps onto a fleet under one hosting mode: place, build, start (docs/model.md §2–§7).

The one entry point the composition root calls:

    deployment = deploy(env, hosts, "vm", apps, placement=BestFit(), streams=streams,
                        recorder=recorder, params={"cpu_ratio": 2.0})

Per mode, each host gets a :class:`Site`: its kernel plus the mode's runtime
(:class:`~fleet_sim.hosting.baremetal.SharedOS`,
:class:`~fleet_sim.hosting.hypervisor.Hypervisor` with one VM per app, or
:class:`~fleet_sim.hosting.containers.ContainerRuntime` with one container per app).
Apps are placed in the order given: the placement policy sees a
:class:`~fleet_sim.model.views.FleetView` and the app's
:class:`~fleet_sim.model.views.PlacementRequest` (what admission will commit on
the host), and draws its tie-breaks from the stream ``placement``. When no host
fits, :class:`~fleet_sim.errors.CapacityError` says which app, what it needed and
what the fleet had left. :func:`plan` does the placement alone, without building
anything that runs (for sizing studies).

Nothing runs during :func:`deploy`: it admits and launches SimPy processes that
provision (install / boot / start) once ``env.run`` starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import simpy

from fleet_sim.errors import CapacityError
from fleet_sim.hosting import defaults
from fleet_sim.hosting.backoff import Backoff
from fleet_sim.hosting.instance import Fetch, Instance
from fleet_sim.hosting.kernel import host_kernel
from fleet_sim.hosting.specs import AppSpec, HostSpec
from fleet_sim.hosting.baremetal import SCRIPTED_INSTALL, SharedOS
from fleet_sim.hosting.containers import CONTAINER_START_S, Container, ContainerRuntime
from fleet_sim.hosting.hypervisor import VM_BOOT_S, VM, Hypervisor
from fleet_sim.hosting.isolation import Exposure, exposures, sample_exposed
from fleet_sim.model.distributions import Distribution
from fleet_sim.model.host import Host
from fleet_sim.model.protocols import Recorder
from fleet_sim.model.views import FleetView, HostView, PlacementRequest
from fleet_sim.rng import Streams
from fleet_sim.numerics.power import LinearPower
from fleet_sim.model.protocols import PlacementPolicy

MODES = ("baremetal", "vm", "container")


@dataclass(frozen=True)
class BareMetalParams:
    """Shared OS: ``cpu_ratio`` (CPU requests may add up to cores × ratio),
    ``conflict_policy`` (``"refuse"`` | ``"fail-install"``), install time and failures,
    systemd restart delay (s), host OS RAM (MiB)."""

    cpu_ratio: float = 1.0
    conflict_policy: str = "refuse"
    install_s: Distribution = SCRIPTED_INSTALL
    install_step_failure_p: float = defaults.INSTALL_STEP_FAILURE_P
    install_max_attempts: int = 1 + defaults.PROVISION_MAX_RETRIES
    restart_backoff_s: float = defaults.SERVICE_RESTART_BACKOFF_S
    host_os_ram_mib: float = defaults.HOST_OS_RAM_MIB


@dataclass(frozen=True)
class ContainerParams:
    """Container runtime: ``cpu_ratio`` over CPU requests, ``cfs`` (``"period"`` |
    ``"fluid"``), CFS period (s), start time (s), restart back-off (s), per-container
    RAM overhead and host OS RAM (MiB)."""

    cpu_ratio: float = 1.0
    cfs: str = "period"
    cfs_period_s: float = defaults.CFS_PERIOD_S
    start_s: Distribution = CONTAINER_START_S
    restart_backoff_base_s: float = defaults.RESTART_BACKOFF_BASE_S
    restart_backoff_max_s: float = defaults.RESTART_BACKOFF_MAX_S
    restart_backoff_reset_s: float = defaults.RESTART_BACKOFF_RESET_S
    ram_overhead_mib: float = defaults.CONTAINER_RAM_OVERHEAD_MIB
    host_os_ram_mib: float = defaults.HOST_OS_RAM_MIB

    def runtime_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`ContainerRuntime`."""
        return {"cfs": self.cfs, "cfs_period_s": self.cfs_period_s, "start_s": self.start_s,
                "backoff": Backoff(self.restart_backoff_base_s, self.restart_backoff_max_s,
                                   self.restart_backoff_reset_s),
                "ram_overhead_mib": self.ram_overhead_mib}


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


ModeParams = BareMetalParams | VmParams | ContainerParams
PARAMS: Mapping[str, type] = {"baremetal": BareMetalParams, "vm": VmParams,
                              "container": ContainerParams}


def mode_params(mode: str, params: ModeParams | Mapping[str, Any] | None = None) -> ModeParams:
    """The parameters of ``mode`` from a dataclass, a mapping (e.g. a TOML table) or None.

    Raises ValueError for an unknown mode or parameter, listing the valid ones.
    """
    if mode not in PARAMS:
        raise ValueError(f"unknown hosting mode {mode!r}; valid: {', '.join(MODES)}")
    cls = PARAMS[mode]
    if params is None:
        return cls()
    if isinstance(params, cls):
        return params  # type: ignore[return-value]
    if not isinstance(params, Mapping):
        raise TypeError(f"{mode} parameters must be a {cls.__name__} or a mapping, "
                        f"got {type(params).__name__}")
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {mode} parameters {unknown}; valid: {', '.join(allowed)}")
    kwargs = dict(params)
    if mode == "vm" and isinstance(kwargs.get("guest_containers"), Mapping):
        kwargs["guest_containers"] = mode_params("container", kwargs["guest_containers"])
    return cls(**kwargs)


class Site:
    """One host under a hosting mode: its kernel and the mode's runtime on it."""

    def __init__(self, host: Host, mode: str, params: ModeParams, streams: Streams, *,
                 keep_jobs: bool = False,
                 fetch: Fetch | None = None):
        self.host = host
        self.mode = mode
        self.kernel = host_kernel(host, cpu_ratio=params.cpu_ratio,
                                  os_ram_mib=params.host_os_ram_mib)
        self.runtime: SharedOS | Hypervisor | ContainerRuntime
        if isinstance(params, BareMetalParams):
            self.runtime = SharedOS(
                self.kernel, streams, conflict_policy=params.conflict_policy,
                install_s=params.install_s, install_step_failure_p=params.install_step_failure_p,
                install_max_attempts=params.install_max_attempts,
                restart=_service_restart(params.restart_backoff_s),
                keep_jobs=keep_jobs)
        elif isinstance(params, VmParams):
            self.runtime = Hypervisor(
                self.kernel, streams, hypervisor_type=params.hypervisor_type,
                virt_overhead=params.virt_overhead, boot_s=params.boot_s,
                guest_os_ram_mib=params.guest_os_ram_mib, guest_os_cores=params.guest_os_cores,
                vm_ram_overhead_mib=params.vm_ram_overhead_mib, vcpus_from=params.vcpus_from,
                pin_vcpus=params.pin_vcpus, guest=params.guest,
                guest_runtime=params.guest_containers.runtime_kwargs(),
                restart=_service_restart(params.restart_backoff_s),
                keep_jobs=keep_jobs, fetch=fetch)
        else:
            self.runtime = ContainerRuntime(self.kernel, streams, fetch=fetch,
                                            keep_jobs=keep_jobs, **params.runtime_kwargs())

    def candidate(self, app: AppSpec) -> Instance:
        """What would be admitted on the host for ``app`` (not admitted)."""
        rt = self.runtime
        if isinstance(rt, SharedOS):
            return rt.process(app)
        if isinstance(rt, Hypervisor):
            return rt.vm_for(app)
        return rt.container(app)

    def host_app(self, app: AppSpec) -> list[tuple[Instance, Instance | None]]:
        """Admit ``app``; return (instance, the instance it waits for) in launch order."""
        rt = self.runtime
        if isinstance(rt, Hypervisor):
            vm, inner = rt.run_app(app)
            return [(vm, None), (inner, vm)]
        return [(rt.admit(app), None)]


def _service_restart(delay_s: float) -> Backoff:
    """systemd's restart of a killed service: a fixed delay and the start rate limit."""
    return Backoff(delay_s, delay_s, limit_burst=defaults.SERVICE_START_LIMIT_BURST,
                   limit_interval_s=defaults.SERVICE_START_LIMIT_INTERVAL_S)


def _as_host(env: simpy.Environment, h: Host | HostSpec, recorder: Recorder | None) -> Host:
    if isinstance(h, Host):
        return h
    return Host(env, h.name, h.cores, h.ram_mib, h.speed, recorder=recorder,
                power=LinearPower(defaults.HOST_IDLE_W, defaults.HOST_PEAK_W))


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


def _place_all(mode: str, apps: Sequence[AppSpec], requests: Sequence[PlacementRequest],
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
    sites = [Site(_as_host(env, s, None), mode, p, Streams(0)) for s in specs]
    if not sites:
        raise CapacityError(f"fleet too small: no hosts to place {len(apps)} apps on")
    requests = [sites[0].candidate(app).request for app in apps]
    fleet = FleetView(tuple(s.kernel.view() for s in sites))
    views = list(fleet.hosts)

    def commit(i: int, _app: AppSpec, req: PlacementRequest) -> HostView:
        views[i] = views[i].with_placed(req)
        return views[i]

    return _place_all(mode, apps, requests, fleet, placement, rng, commit)


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

    @property
    def hosts(self) -> list[Host]:
        """The fleet's hosts, in order."""
        return [s.host for s in self.sites]

    def fleet_view(self) -> FleetView:
        """The fleet as placement sees it now."""
        return FleetView(tuple(s.kernel.view() for s in self.sites))

    def _host_app(self, site: Site, app: AppSpec) -> None:
        for inst, after in site.host_app(app):
            self._launch.append((inst, after))
            if isinstance(inst, VM):
                self.vms[app.name] = inst
            else:
                self.instances[app.name] = inst
                for fn in self.on_hosted:
                    fn(app.name, inst)

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
        found = self.exposures(app, kernel_escape_p, hypervisor_escape_p)
        if rng is not None:
            found = sample_exposed(found, rng, kernel_escape_p, hypervisor_escape_p)
        inst = self.instances[app]
        rec = inst.host.recorder
        now = self.env.now
        rec.event(now, "compromised", inst.name, f"app={app}", host=inst.host.name)
        for e in found:
            rec.event(now, "exposed", e.instance,
                      f"app={e.app} by={app} p={e.probability:g} via={'+'.join(e.via)}")
        return found

    # ------------------------------------------------------------------ end of run
    def cpu_stats(self, t: float | None = None) -> dict[str, dict[str, float]]:
        """``cpu.stat`` counters of every container with a period-enforced quota."""
        return {a: i.cpu_stat(t) for a, i in self.instances.items()
                if isinstance(i, Container) and i.bandwidth is not None}

    def finalize(self, t_end: float) -> None:
        """Advance every host to ``t_end`` and record each quota'd container's
        counters (event ``cpu_stat``)."""
        for s in self.sites:
            s.host.finalize(t_end)
        for app, stat in self.cpu_stats(t_end).items():
            inst = self.instances[app]
            inst.host.recorder.event(
                t_end, "cpu_stat", inst.name, f"nr_periods={stat['nr_periods']:g}",
                host=inst.host.name, duration_s=stat["throttled_s"], count=stat["nr_throttled"])


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
    sites = [Site(_as_host(env, h, recorder), mode, p, streams, keep_jobs=keep_jobs, fetch=fetch)
             for h in hosts]
    if not sites:
        raise CapacityError(f"fleet too small: no hosts to place {len(apps)} apps on")
    dep = Deployment(env, mode, p, sites)
    requests = [sites[0].candidate(app).request for app in apps]

    def commit(i: int, app: AppSpec, _req: PlacementRequest) -> HostView:
        dep._host_app(sites[i], app)
        return sites[i].kernel.view()

    dep.placement = _place_all(mode, apps, requests, dep.fleet_view(), placement,
                               streams.get("placement"), commit)
    dep.launch()
    return dep
