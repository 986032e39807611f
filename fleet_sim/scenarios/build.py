"""The composition root: a validated config and a seed → a runnable simulation.

This is the only module that wires the layers together: it creates
the SimPy environment, the named random streams, the recorder and the hosts,
turns the config's apps into :class:`~fleet_sim.hosting.specs.AppSpec` replicas and
hands them to :func:`fleet_sim.hosting.deploy.deploy` with the placement policy
chosen by name, and with the image supply (one network: the registry's uplink,
each host's NIC, optional racks; the apps' images) that every container pull and
VM image copy goes through. Each ``[[rollouts]]`` entry becomes a
:class:`~fleet_sim.hosting.rollout.FleetRollout` on that same deployment.

The run goes through explicit phases: :func:`build` (nothing runs
yet) → ``start`` → ``run`` → ``finalize`` (close open intervals, record
unfinished jobs) → ``tables``.

Random streams are named by what they drive, never by where it runs
(``workload.<replica>.<workload>.arrivals``), so the same seed gives the same
demand under every hosting mode and placement (common random numbers). A rollout
draws from ``rollout.<app>.placement`` and ``rollout.<app>.health``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import simpy
from simpy.events import ProcessGenerator

from fleet_sim.errors import CapacityError, ConfigError
from fleet_sim.hosting.specs import AppSpec, DemandSpec, HostSpec, JobsSpec, WorkloadSpec
from fleet_sim.hosting.balancer import LoadBalancer
from fleet_sim.hosting.consolidation import DynamicFleet, FleetRecord
from fleet_sim.hosting.consolidator import Consolidator
from fleet_sim.hosting.containers import ContainerRuntime
from fleet_sim.hosting.deploy import Deployment, deploy
from fleet_sim.hosting.failures import Failures
from fleet_sim.hosting.modes import hosting_mode
from fleet_sim.hosting.placement import plan as plan_placement
from fleet_sim.hosting.site import Site
from fleet_sim.hosting.rollout import FleetProvisioner, FleetRollout, Version
from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import Image, VMImage
from fleet_sim.images.network import Network
from fleet_sim.images.registry import Distributor, Registry, Unpacker
from fleet_sim.images.swarm import Swarm
from fleet_sim.images.supply import (
    FIRST_VERSION,
    NEXT_VERSION,
    ImageSupply,
    container_image,
    reference,
)
from fleet_sim.model.collection import long_run
from fleet_sim.model.host import Host
from fleet_sim.model.service import Service
from fleet_sim.model.jobs import UNFINISHED
from fleet_sim.numerics.power import LinearPower, TablePower
from fleet_sim.policies.registry import placement_policy, rollout_strategy
from fleet_sim.results import schema
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.results.consolidation import host_rows, summarize
from fleet_sim.results.fold import MemoryStore
from fleet_sim.results.spool import ParquetSpool
from fleet_sim.results.tables import RunTables, conform
from fleet_sim.rng import Streams
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.consolidation import dynamic_fleet
from fleet_sim.scenarios.fleet_consolidation import from_config
from fleet_sim.scenarios.traces import bundled_planetlab, read_planetlab

#: the run advances in this many equal steps (progress reports; results do not depend on it)
STEPS = 100
#: rows the recorder holds before a step hands them over to the tables (about 60 MB)
CHUNK_ROWS = 250_000
#: the longest stretch of simulated time (s) between two checks of what the recorder
#: holds: what a long run holds is what its fleet records in this long, not in 1 % of it
CHECK_S = 60.0


class FleetRun:
    """A built fleet run: hosts, the deployment on them, and the recorder."""

    def __init__(self, config: cfg.ScenarioConfig, env: simpy.Environment,
                 recorder: ChangePointRecorder, hosts: list[Host], inventory: pd.DataFrame,
                 deployment: Callable[[], tuple[Deployment, list[FleetRollout]]],
                 spool_dir: Path | None = None):
        self.config = config
        self.env = env
        self.recorder = recorder
        self.hosts = hosts
        self.inventory = inventory
        self._deploy = deployment
        self.deployment: Deployment | None = None
        #: the ``[traces]`` guests and their consolidation (None without ``[traces]``)
        self.dynamic: DynamicFleet | None = None
        self._dynamic: Callable[[], DynamicFleet] | None = None
        self._record: FleetRecord | None = None
        #: the ``[consolidation]`` of an ``[[apps]]`` run (None if nothing moves)
        self.consolidator: Consolidator | None = None
        self.rollouts: list[FleetRollout] = []
        run = config.run
        store = MemoryStore() if spool_dir is None else ParquetSpool(spool_dir)
        self.results = RunTables(run.record, inventory, (run.warmup_s, run.duration_s), store,
                                 {h.name: h.power for h in hosts})

    def start(self) -> None:
        """Place and launch every replica (their provisioning runs once time advances)
        and schedule the rollouts."""
        self.deployment, self.rollouts = self._deploy()
        for rollout in self.rollouts:
            rollout.start()
        if self._dynamic is not None:
            self.dynamic = self._dynamic()
            self.dynamic.start()

    def run(self, on_step: Callable[[float], None] | None = None) -> None:
        """Simulate until ``run.duration_s``, calling ``on_step(t)`` after each of
        :data:`STEPS` equal steps, each cut into parts of at most :data:`CHECK_S`.
        Each part also brings every host up to its end and hands what was recorded
        over to the tables once that is :data:`CHUNK_ROWS` rows; hosts are lazy (see
        ``model.scheduler``), so this changes no result."""
        if self.deployment is None:
            self.start()
        end = self.config.run.duration_s
        hosts = self.hosts if self.config.apps else []  # a [traces] run: nothing on them
        with long_run():
            for k in range(1, STEPS + 1):
                t_step = end * k / STEPS
                parts = max(1, math.ceil((t_step - self.env.now) / CHECK_S - 1e-9))
                start = self.env.now
                for j in range(1, parts + 1):
                    t = t_step if j == parts else start + (t_step - start) * j / parts
                    self.env.run(until=t)
                    for host in hosts:
                        host.finalize(t)
                    self._hand_over(t)
                if on_step is not None:
                    on_step(t_step)

    def _hand_over(self, before_t: float) -> None:
        """Move the rows recorded before ``before_t`` from the recorder into the tables,
        once there are :data:`CHUNK_ROWS` of them (or at the end, ``before_t`` = inf):
        chunks large enough to cost little each, small enough to bound memory."""
        if before_t < math.inf and self.recorder.rows < CHUNK_ROWS:
            return
        for name in self.config.run.record:
            rows = self.recorder.take(name, before_t)
            if name == "hosts" and self.dynamic is not None:
                # a [traces] run's hosts run no app: their rows are the moving guests'
                if before_t == math.inf:
                    self.results.add(name, host_rows(self._dynamic_record()))
                continue
            self.results.add(name, rows)

    def _dynamic_record(self) -> FleetRecord:
        """What the dynamic fleet of a [traces] run left (once it is over)."""
        assert self.dynamic is not None
        if self._record is None:
            self._record = self.dynamic.record()
        return self._record

    def finalize(self) -> None:
        """Close the run at ``duration_s``; record the jobs still running (finish NaN)."""
        end = self.config.run.duration_s
        assert self.deployment is not None
        self.deployment.finalize(end)
        for rollout in self.rollouts:
            rollout.finalize()
        if self.recorder.wants("jobs"):
            for host in self.hosts:
                for job in host.root.leaves():
                    if getattr(job, "is_job", False) and job.finish is None:
                        host.record_job(job, UNFINISHED)
        self._hand_over(math.inf)

    def tables(self) -> dict[str, pd.DataFrame | Path]:
        """The run's result tables (conforming to :mod:`fleet_sim.results.schema`): the
        recorded ones as DataFrames, or as Parquet files when the run spools to a
        folder; ``fleet``, ``summary`` and ``workload_summary`` as DataFrames; with
        rollouts, their ``timeline``, ``capacity`` and ``rollout_summary``."""
        tables = self.results.tables()
        if self.dynamic is not None:
            run = self.config.run
            figures = summarize(self._dynamic_record(), run.duration_s, run.warmup_s)
            tables["summary"] = tables["summary"].assign(**figures)
        if self.consolidator is not None:
            cons = self.consolidator
            tables["summary"] = tables["summary"].assign(
                migrations=float(cons.moves - cons.refused),
                host_shutdowns=float(cons.shutdowns))
        if not self.rollouts:
            return tables
        links = tables.get("links")
        if isinstance(links, Path):
            links = pd.read_parquet(links, columns=["t", "link", "allocated_mb_s"])
        parts = [r.tables(links) for r in self.rollouts]
        for name in ("timeline", "capacity", "rollout_summary"):
            tables[name] = conform(pd.concat([p[name] for p in parts], ignore_index=True),
                                   schema.TABLES[name])
        return tables


# ---------------------------------------------------------------- specs from config
def _power(power: cfg.PowerConfig) -> LinearPower | TablePower:
    if power.table_w is not None:
        return TablePower(power.table_w)
    return LinearPower(power.idle_w, power.peak_w)  # type: ignore[arg-type]


def _hosts(config: cfg.ScenarioConfig, env: simpy.Environment,
           recorder: ChangePointRecorder | None) -> tuple[list[Host], pd.DataFrame]:
    hosts, rows = [], []
    for group in config.fleet.hosts:
        power = _power(group.power)
        for i in range(group.count):
            host = Host(env, f"{group.type}{i:03d}", cores=group.cores, ram_mib=group.ram_mib,
                        speed=group.speed, power=power, recorder=recorder)
            hosts.append(host)
            rows.append((host.name, group.type, group.cores, group.speed, group.ram_mib,
                         group.monthly_cost_usd))
    inventory = pd.DataFrame(rows, columns=list(schema.FLEET.names))
    return hosts, inventory


def _trace(spec: cfg.ReplayWorkloadConfig, replica: int, base_dir: Path) -> np.ndarray:
    if spec.trace.startswith("planetlab:"):
        name = spec.trace.split(":", 1)[1]
        files = bundled_planetlab()
        return read_planetlab(files[replica % len(files)] if name == "*"
                              else bundled_planetlab(name))
    return read_planetlab(base_dir / spec.trace)


def workload_spec(spec: Any, replica: int, base_dir: Path, app: str = "") -> WorkloadSpec:
    """The hosting layer's description of one configured workload of replica ``replica``
    of ``app``."""
    name = spec.label
    if isinstance(spec, cfg.JobsWorkloadConfig):
        return JobsSpec(name, spec.rate_per_s, cfg.distribution(spec.work_core_s),
                        spec.max_cores, spec.start_s,
                        math.inf if spec.end_s is None else spec.end_s,
                        service=app if spec.scope == "service" else "")
    if isinstance(spec, cfg.SpikyWorkloadConfig):
        return DemandSpec(name, "spiky", {
            "baseline_cores": spec.baseline_cores, "rate_per_s": spec.rate_per_s,
            "duration_s": cfg.distribution(spec.duration_s), "height_cores": spec.height_cores})
    if isinstance(spec, cfg.ReplayWorkloadConfig):
        return DemandSpec(name, "replay", {
            "series": tuple(_trace(spec, replica, base_dir).tolist()),
            "interval_s": spec.interval_s, "cores": spec.cores, "loop": spec.loop})
    params = spec.model_dump(exclude={"kind", "name"})
    return DemandSpec(name, spec.kind, params)


def app_specs(app: cfg.AppConfig, base_dir: Path) -> list[AppSpec]:
    """One AppSpec per replica of ``app`` (named as ``app.instances``)."""
    return [AppSpec(
        name=inst, threads=app.threads, cpu_request_cores=app.cpu_request_cores,
        ram_mib=app.ram_mib, dependencies=app.dependencies,
        workloads=tuple(workload_spec(w, r, base_dir, app.name) for w in app.workloads),
        ram_growth_mib_s=app.ram_growth_mib_s, cpu_limit_cores=app.cpu_max,
        cpu_weight=app.cpu_weight, cpuset_cores=app.cpuset_cores,
        ram_limit_mib=app.memory_max_mib, vcpus=app.vcpus,
        image=reference(app.name, FIRST_VERSION),
    ) for r, inst in enumerate(app.instances)]


# ---------------------------------------------------------------- checks
def fit_errors(config: cfg.ScenarioConfig, file: str) -> list[ConfigError]:
    """Apps whose replica fits no empty host under the chosen mode (e.g. a VM bigger
    than any host), sized by the hosting code itself."""
    if not config.apps:
        return []
    mode = config.hosting.mode
    params = config.hosting.params()
    env = simpy.Environment()
    sites = [Site(Host(env, g.type, g.cores, g.ram_mib, g.speed), mode, params, Streams(0))
             for g in config.fleet.hosts]
    errors = []
    for i, app in enumerate(config.apps):
        if app.replicas == 0:
            continue  # nothing of it to place
        spec = app_specs(app.model_copy(update={"replicas": 1, "workloads": []}), Path())[0]
        candidates = [(site, site.candidate(spec).request) for site in sites]
        if any(site.kernel.view().fits(req) for site, req in candidates):
            continue
        views = [site.kernel.view() for site in sites]
        biggest = max(range(len(sites)), key=lambda k: (views[k].free_cpu_cores,
                                                        views[k].free_ram_mib))
        free_ram = max(v.free_ram_mib for v in views)
        free_cpu = max(v.free_cpu_cores for v in views)
        req = candidates[biggest][1]
        kind = sites[biggest].candidate(spec).kind
        key = "ram_mib" if req.ram_mib > free_ram else sites[biggest].runtime.cpu_key(spec)
        errors.append(ConfigError(
            file, f"apps[{i}].{key}",
            f"a {kind} needing {req.cpu_cores:g} cores and {req.ram_mib:g} MiB (overheads "
            f"included) fits on no host: {views[biggest].why_not(req)}",
            f"at most {free_cpu:g} cores and {free_ram:g} MiB per replica under mode {mode}"))
    return errors or _placement_errors(config, file, sites, params)


def _placement_errors(config: cfg.ScenarioConfig, file: str, sites: list[Site],
                      params: Any) -> list[ConfigError]:
    """Place every replica as the run will (same policy, requests and placement stream)
    and say, with the fleet's totals, why the fleet is too small if it is."""
    mode = config.hosting.mode
    apps = [spec for app in config.apps
            for spec in app_specs(app.model_copy(update={"workloads": []}), Path())]
    hosts = [HostSpec(f"{g.type}{i:03d}", g.cores, g.ram_mib, g.speed)
             for g in config.fleet.hosts for i in range(g.count)]
    try:
        plan_placement(hosts, mode, apps, placement_policy(config.placement.policy),
                       Streams(config.run.seed).get("placement"), params)
        return []
    except CapacityError as e:
        problem = str(e)
    offered = {g.type: s.kernel.view() for g, s in zip(config.fleet.hosts, sites, strict=True)}
    cpu_offered = sum(g.count * offered[g.type].free_cpu_cores for g in config.fleet.hosts)
    ram_offered = sum(g.count * offered[g.type].free_ram_mib for g in config.fleet.hosts)
    by_app: dict[int, tuple[float, float]] = {}
    for i, app in enumerate(config.apps):
        if app.replicas:
            one = app_specs(app.model_copy(update={"replicas": 1, "workloads": []}), Path())[0]
            req = sites[0].candidate(one).request
            by_app[i] = (app.replicas * req.cpu_cores, app.replicas * req.ram_mib)
    cpu = sum(c for c, _ in by_app.values())
    ram = sum(r for _, r in by_app.values())
    biggest = max(by_app, key=lambda i: by_app[i][0] / max(cpu_offered, 1e-9)
                  + by_app[i][1] / max(ram_offered, 1e-9))
    counts = ", ".join(f"fleet.hosts.{g.type}.count" for g in config.fleet.hosts)
    return [ConfigError(
        file, f"apps[{biggest}].replicas",
        f"the replicas do not all fit the fleet under mode {mode}: in total the apps request "
        f"{cpu:g} cores and {ram:g} MiB (overheads included) where the empty fleet offers "
        f"{cpu_offered:g} cores (cores × overcommit ratio) and {ram_offered:g} MiB; "
        f"placement says: {problem}",
        f"fewer replicas, more hosts ({counts}) or a higher overcommit ratio")]


def _services(config: cfg.ScenarioConfig, dep: Deployment, streams: Streams,
              recorder: ChangePointRecorder) -> None:
    """A load-balanced stream for each workload with ``scope = "service"``."""
    for app in config.apps:
        if not app.replicas:
            continue
        weights = dict(zip(app.instances, app.service.weights or [1.0] * app.replicas,
                           strict=True))
        for wl in app.workloads:
            if not (isinstance(wl, cfg.JobsWorkloadConfig) and wl.scope == "service"):
                continue
            base = f"workload.{app.name}.{wl.label}"
            service = Service(
                dep.env, f"{app.name}.{wl.label}", wl.rate_per_s,
                cfg.distribution(wl.work_core_s), wl.max_cores, app.service.routing,
                streams.get(base + ".arrivals"), streams.get(base + ".sizes"),
                streams.get(base + ".routing"), t_start=wl.start_s,
                t_end=math.inf if wl.end_s is None else wl.end_s, retry=app.service.retry,
                recorder=recorder)
            LoadBalancer(dep, service, weights, wl.label)


def _failures(config: cfg.ScenarioConfig, dep: Deployment, policy: Any,
              streams: Streams) -> None:
    """Schedule the configured host failures, repairs and compromises."""
    spec = config.failures
    if not spec.any:
        return
    failures = Failures(dep, policy, streams)
    for group in config.fleet.hosts:
        random = spec.host_types.get(group.type)
        for host in group.names if random is not None else ():
            failures.random(host, cfg.distribution(random.mtbf_s),
                            cfg.distribution(random.mttr_s))
    for entry in spec.scheduled:
        failures.schedule(entry.host, entry.at_s, entry.repair_s)
    for c in spec.compromises:
        failures.compromise(c.app, c.at_s, c.sample)


# ---------------------------------------------------------------- the root
def build(config: cfg.ScenarioConfig, seed: int | None = None,
          base_dir: Path | None = None, spool_dir: Path | None = None) -> FleetRun:
    """Build (but do not start) the run ``config`` describes, with ``seed``
    (default ``config.run.seed``); ``base_dir`` resolves trace files. With
    ``spool_dir`` the recorded tables are written there as the run goes (memory
    stays bounded, whatever the number of jobs); without, they are held in memory."""
    seed = config.run.seed if seed is None else seed
    env = simpy.Environment()
    streams = Streams(seed)
    recorder = ChangePointRecorder(config.run.record)
    hosts, inventory = _hosts(config, env, recorder)
    apps = [spec for app in config.apps for spec in app_specs(app, base_dir or Path.cwd())]
    mode = config.hosting.mode
    params = config.hosting.params()
    policy = placement_policy(config.placement.policy)

    deployed: list[_Images] = []  # the run's images, once deployed

    def deployment() -> tuple[Deployment, list[FleetRollout]]:
        images = None if hosting_mode(mode).image is None else _Images(config, env, recorder)
        deployed.extend([] if images is None else [images])
        dep = deploy(env, hosts, mode, apps, policy, streams, recorder, params,
                     fetch=None if images is None else images.supply.fetch)
        if images is not None:
            images.runtimes.update((s.host.name, s.runtime) for s in dep.sites
                                   if isinstance(s.runtime, ContainerRuntime))
        _services(config, dep, streams, recorder)
        _failures(config, dep, policy, streams)
        run.consolidator = from_config(config, dep, None if images is None
                                       else images.network, streams)
        return dep, [_rollout(config, r, dep, images, streams, recorder)
                     for r in config.rollouts]

    run = FleetRun(config, env, recorder, hosts, inventory, deployment, spool_dir)
    if config.traces is not None:
        def dynamic() -> DynamicFleet:
            # its moves share the run's network (and, for containers, its registry and
            # the hosts' layer caches; no unpacking: a guest's CPU is its trace's)
            images = deployed[0] if deployed else None
            return dynamic_fleet(config, env, streams,
                                 None if images is None else images.network,
                                 None if images is None else images.source(
                                     config.images.distribution, unpack=False), recorder)
        run._dynamic = dynamic
    return run


# ---------------------------------------------------------------- images and rollouts
#: the registry's node on the network
REGISTRY = "registry"


class _Images:
    """The run's network, each host's layer cache and the image supply (``[images]``)."""

    def __init__(self, config: cfg.ScenarioConfig, env: simpy.Environment,
                 recorder: ChangePointRecorder):
        images = config.images
        self.config = config
        self.env = env
        self.network = Network(env, recorder)
        egress = min(images.registry_uplink_mb_s, images.registry_egress_mb_s or math.inf)
        for origin in self.origins:
            self.network.attach(origin, egress, images.registry_uplink_mb_s)
        self.caches: dict[str, LayerCache] = {}
        self.mirrors: dict[str | None, str] = {}
        #: host → its container runtime, where layers unpack (set once deployed)
        self.runtimes: dict[str, ContainerRuntime] = {}
        i = 0
        for group in config.fleet.hosts:
            for k in range(group.count):
                rack = None
                if images.rack_hosts is not None:
                    rack = f"rack{i // images.rack_hosts:03d}"
                    if i % images.rack_hosts == 0:
                        self.network.add_rack(rack, images.rack_uplink_mb_s,
                                              images.rack_uplink_mb_s)
                        # a pull-through mirror per rack, on the rack's switch
                        self.mirrors[rack] = f"mirror-{rack}"
                        self.network.attach(self.mirrors[rack], group.nic_mb_s,
                                            group.nic_mb_s, rack)
                host = f"{group.type}{k:03d}"
                self.network.attach(host, group.nic_mb_s, group.nic_mb_s, rack)
                self.caches[host] = LayerCache(images.cache_mb)
                i += 1
        #: what the mode's instances fetch: a "vm" image or "container" layers
        self.kind = hosting_mode(config.hosting.mode).image
        self.supply = ImageSupply(env, self.source(images.distribution))
        for app in config.apps:
            self.supply.add(self.image(app, FIRST_VERSION))

    @property
    def origins(self) -> list[str]:
        """The registry, and the extra registries that seed a P2P swarm."""
        extra = self.config.images.p2p_origins - 1
        return [REGISTRY, *(f"{REGISTRY}-{k}" for k in range(1, extra + 1))]

    def source(self, distribution: str, unpack: bool = True) -> Distributor:
        """The registry (direct, or through rack mirrors), or a P2P swarm seeded by the
        origins, over the hosts' caches as they are (docs/model.md §5.2); ``unpack``
        False: layers are usable once they arrive."""
        images = self.config.images
        unpack_mb_s = images.unpack_mb_s_per_core if self.kind == "container" and unpack \
            else None
        client: dict[str, Any] = {
            "max_concurrent_downloads": images.max_concurrent_downloads,
            "unpacker": None if unpack_mb_s is None else Unpacker(self.env, unpack_mb_s,
                                                                  self._unpack),
            "lazy_fraction": images.lazy_fraction if images.lazy else None}
        if distribution == "p2p":
            return Swarm(self.env, self.network, self.caches, origins=self.origins,
                         piece_mb=images.piece_mb, upload_slots=images.upload_slots,
                         upload_cap_mb_s=images.p2p_upload_cap_mb_s,
                         download_cap_mb_s=images.p2p_download_cap_mb_s, **client)
        mirrors = self.mirrors if distribution == "mirrors" else None
        return Registry(self.env, self.network, self.caches, node=REGISTRY, mirrors=mirrors,
                        **client)

    def _unpack(self, host: str, work_core_s: float, max_cores: float) -> ProcessGenerator:
        """Unpacking's CPU hook: the work runs in ``host``'s container runtime, sharing
        the host's cores with its containers (docs/model.md §5.2)."""
        yield self.runtimes[host].work(work_core_s, max_cores)

    def image(self, app: cfg.AppConfig, version: str) -> Image:
        """``app``'s image under the run's mode (a VM image, or a container image)."""
        images = self.config.images
        if self.kind == "vm":
            return VMImage(app.name, version, app.vm_image_mb or images.vm_image_mb)
        return container_image(app.name, version, images.base_layers_mb,
                               app.app_layer_mb or images.app_layer_mb)


def _rollout(config: cfg.ScenarioConfig, rollout: cfg.RolloutConfig, dep: Deployment,
             images: _Images | None, streams: Streams,
             recorder: ChangePointRecorder) -> FleetRollout:
    """The :class:`FleetRollout` of one ``[[rollouts]]`` entry."""
    app = next(a for a in config.apps if a.name == rollout.app)
    replicas = {spec.name: spec for spec in app_specs(app, Path())}
    deps = app.dependencies if rollout.dependencies is None else rollout.dependencies
    versions = {FIRST_VERSION: Version(reference(app.name, FIRST_VERSION),
                                       tuple(sorted(app.dependencies.items()))),
                NEXT_VERSION: Version(reference(app.name, NEXT_VERSION),
                                      tuple(sorted(deps.items())))}
    in_place = hosting_mode(config.hosting.mode).in_place
    fraction = rollout.rollback_failure_fraction

    def provisioner(hosts: Mapping[str, str]) -> FleetProvisioner:
        """Built when the rollout begins: v2 reaches the registry (and the swarm) then."""
        if images is not None:
            first = images.supply.images[reference(app.name, FIRST_VERSION)]
            images.supply.add(first.next_version(NEXT_VERSION, rollout.changed),
                              images.source(rollout.distribution))
        return FleetProvisioner(
            dep, {r: s for r, s in replicas.items() if r in hosts}, hosts, versions,
            policy=placement_policy(config.placement.policy),
            placement_rng=streams.get(f"rollout.{app.name}.placement"),
            health_check_s=rollout.health_check_s, health_failure_p=rollout.health_failure_p,
            health_rng=streams.get(f"rollout.{app.name}.health"),
            max_retries=rollout.max_retries, in_place=in_place, recorder=recorder)

    return FleetRollout(
        dep, app.name, list(replicas), rollout.at_s,
        rollout_strategy(rollout.strategy, **rollout.strategy_params), provisioner,
        old=FIRST_VERSION, new=NEXT_VERSION, in_place=in_place,
        rollback_failures=None if fraction is None else math.ceil(fraction * app.replicas),
        recorder=recorder, network=None if images is None else images.network,
        registry=REGISTRY)
