"""The composition root: a validated config and a seed → a runnable simulation.

This is the only module that wires the layers together: it creates
the SimPy environment, the named random streams, the recorder and the hosts,
turns the config's apps into :class:`~fleet_sim.hosting.base.AppSpec` replicas and
hands them to :func:`fleet_sim.hosting.deploy.deploy` with the placement policy
chosen by name. A scenario with a ``[rollout]`` table is handed to
:func:`fleet_sim.scenarios.rollout.run_rollout` instead.

The run goes through explicit phases: :func:`build` (nothing runs
yet) → ``start`` → ``run`` → ``finalize`` (close open intervals, record
unfinished jobs) → ``tables``.

Random streams are named by what they drive, never by where it runs
(``workload.<replica>.<workload>.arrivals``), so the same seed gives the same
demand under every hosting mode and placement (common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import simpy
from pydantic import BaseModel

from fleet_sim.errors import CapacityError, ConfigError
from fleet_sim.hosting.base import AppSpec, DemandSpec, JobsSpec, WorkloadSpec
from fleet_sim.hosting.base import HostSpec
from fleet_sim.hosting.balancer import LoadBalancer
from fleet_sim.hosting.deploy import Deployment, Site, deploy, mode_params
from fleet_sim.hosting.failures import Failures
from fleet_sim.hosting.deploy import plan as plan_placement
from fleet_sim.model.collection import long_run
from fleet_sim.model.host import Host
from fleet_sim.model.service import Service
from fleet_sim.model.jobs import UNFINISHED
from fleet_sim.numerics.power import LinearPower, TablePower
from fleet_sim.policies.registry import placement_policy
from fleet_sim.results import schema
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.results.fold import MemoryStore
from fleet_sim.results.spool import ParquetSpool
from fleet_sim.results.tables import RunTables, conform
from fleet_sim.rng import Streams
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.rollout import PARAMS as ROLLOUT_COLUMNS
from fleet_sim.scenarios.rollout import RolloutSpec, run_rollout
from fleet_sim.scenarios.traces import bundled_planetlab, read_planetlab

#: the run advances in this many equal steps (progress reports; results do not depend on it)
STEPS = 100
#: rows the recorder holds before a step hands them over to the tables (about 60 MB)
CHUNK_ROWS = 250_000


class FleetRun:
    """A built fleet run: hosts, the deployment on them, and the recorder."""

    def __init__(self, config: cfg.ScenarioConfig, env: simpy.Environment,
                 recorder: ChangePointRecorder, hosts: list[Host], inventory: pd.DataFrame,
                 deployment: Callable[[], Deployment], spool_dir: Path | None = None):
        self.config = config
        self.env = env
        self.recorder = recorder
        self.hosts = hosts
        self.inventory = inventory
        self._deploy = deployment
        self.deployment: Deployment | None = None
        run = config.run
        store = MemoryStore() if spool_dir is None else ParquetSpool(spool_dir)
        self.results = RunTables(run.record, inventory, (run.warmup_s, run.duration_s), store,
                                 {h.name: h.power for h in hosts})

    def start(self) -> None:
        """Place and launch every replica (their provisioning runs once time advances)."""
        self.deployment = self._deploy()

    def run(self, on_step: Callable[[float], None] | None = None) -> None:
        """Simulate until ``run.duration_s``, calling ``on_step(t)`` after each of
        :data:`STEPS` equal steps. Each step also brings every host up to ``t``;
        hosts are lazy (see ``model.scheduler``), so this changes no result."""
        if self.deployment is None:
            self.start()
        end = self.config.run.duration_s
        with long_run():
            for k in range(1, STEPS + 1):
                t = end * k / STEPS
                self.env.run(until=t)
                for host in self.hosts:
                    host.finalize(t)
                self._hand_over(t)
                if on_step is not None:
                    on_step(t)

    def _hand_over(self, before_t: float) -> None:
        """Move the rows recorded before ``before_t`` from the recorder into the tables,
        once there are :data:`CHUNK_ROWS` of them (or at the end, ``before_t`` = inf):
        chunks large enough to cost little each, small enough to bound memory."""
        if before_t < math.inf and self.recorder.rows < CHUNK_ROWS:
            return
        for name in self.config.run.record:
            self.results.add(name, self.recorder.take(name, before_t))

    def finalize(self) -> None:
        """Close the run at ``duration_s``; record the jobs still running (finish NaN)."""
        end = self.config.run.duration_s
        assert self.deployment is not None
        self.deployment.finalize(end)
        if self.recorder.wants("jobs"):
            for host in self.hosts:
                for job in host.root.leaves():
                    if getattr(job, "is_job", False) and job.finish is None:
                        host.record_job(job, UNFINISHED)
        self._hand_over(math.inf)

    def tables(self) -> dict[str, pd.DataFrame | Path]:
        """The run's result tables (conforming to :mod:`fleet_sim.results.schema`): the
        recorded ones as DataFrames, or as Parquet files when the run spools to a
        folder; ``fleet``, ``summary`` and ``workload_summary`` as DataFrames."""
        return self.results.tables()


class RolloutRun:
    """A built rollout run (``[rollout]`` scenarios): all of it happens in :meth:`run`."""

    def __init__(self, spec: RolloutSpec):
        self.spec = spec
        self._tables: dict[str, pd.DataFrame] = {}

    def start(self) -> None:
        """Nothing to elaborate: the rollout builds itself when it runs."""

    def run(self, on_step: Callable[[float], None] | None = None) -> None:
        """Run the rollout to its end."""
        self._tables = run_rollout(self.spec)
        if on_step is not None:
            on_step(math.inf)

    def finalize(self) -> None:
        """Nothing left open: the rollout ran to its end."""

    def tables(self) -> dict[str, pd.DataFrame]:
        """``timeline``, ``links``, ``capacity``, ``events`` and ``rollout_summary``."""
        out = {}
        for name, frame in self._tables.items():
            name = "rollout_summary" if name == "summary" else name
            frame = frame.drop(columns=[c for c in ROLLOUT_COLUMNS if c in frame.columns])
            out[name] = conform(frame, schema.TABLES[name])
        return out


Simulation = FleetRun | RolloutRun


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
        ram_limit_mib=app.memory_max_mib, vcpus=app.vcpus, image=app.image,
    ) for r, inst in enumerate(app.instances)]


def hosting_params(model: BaseModel) -> dict[str, Any]:
    """A mode's config as the keyword arguments of its hosting dataclass."""
    out = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, cfg.DISTRIBUTION_CONFIGS):
            value = cfg.distribution(value)
        elif isinstance(value, BaseModel):
            value = hosting_params(value)
        out[name] = value
    return out


# ---------------------------------------------------------------- checks
def fit_errors(config: cfg.ScenarioConfig, file: str) -> list[ConfigError]:
    """Apps whose replica fits no empty host under the chosen mode (e.g. a VM bigger
    than any host), sized by the hosting code itself."""
    if config.rollout is not None or not config.apps:
        return []
    mode = config.hosting.mode
    params = mode_params(mode, hosting_params(config.hosting.params()))
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
        key = "ram_mib" if req.ram_mib > free_ram else _cpu_key(app, config)
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


def _cpu_key(app: cfg.AppConfig, config: cfg.ScenarioConfig) -> str:
    if config.hosting.mode == "vm":
        if app.vcpus is not None:
            return "vcpus"
        return "threads" if config.hosting.vm.vcpus_from == "threads" else "cpu_request_cores"
    if config.hosting.mode == "container" and app.cpuset_cores is not None:
        return "cpuset_cores"
    return "cpu_request_cores"


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
          base_dir: Path | None = None, spool_dir: Path | None = None) -> Simulation:
    """Build (but do not start) the run ``config`` describes, with ``seed``
    (default ``config.run.seed``); ``base_dir`` resolves trace files. With
    ``spool_dir`` the recorded tables are written there as the run goes (memory
    stays bounded, whatever the number of jobs); without, they are held in memory."""
    seed = config.run.seed if seed is None else seed
    if config.rollout is not None:
        rollout = config.rollout.model_dump()
        return RolloutRun(RolloutSpec(
            n_hosts=sum(g.count for g in config.fleet.hosts), mode=config.hosting.mode,
            seed=seed, **rollout | {"base_layers_mb": tuple(rollout["base_layers_mb"])}))
    env = simpy.Environment()
    streams = Streams(seed)
    recorder = ChangePointRecorder(config.run.record)
    hosts, inventory = _hosts(config, env, recorder)
    apps = [spec for app in config.apps for spec in app_specs(app, base_dir or Path.cwd())]
    mode = config.hosting.mode
    params = hosting_params(config.hosting.params())

    def deployment() -> Deployment:
        policy = placement_policy(config.placement.policy)
        dep = deploy(env, hosts, mode, apps, policy, streams, recorder, params)
        _services(config, dep, streams, recorder)
        _failures(config, dep, policy, streams)
        return dep

    return FleetRun(config, env, recorder, hosts, inventory, deployment, spool_dir)
