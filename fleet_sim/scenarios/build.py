"""The composition root: a validated config and a seed → a runnable simulation.

This is the only module that wires the layers together (STYLE §6): it creates
the SimPy environment, the named random streams, the recorder, the fleet, the
hosting mode with its placement, and the workloads, then starts them. The run
goes through explicit phases (STYLE §1.6): :func:`build` (nothing runs yet) →
:meth:`Simulation.start` → :meth:`Simulation.run` → :meth:`Simulation.finalize`
(close open intervals, record unfinished jobs) → :meth:`Simulation.tables`.

Random streams are named by what they drive, never by where it runs
(``workload.<instance>.<workload>.arrivals``), so the same seed gives the same
demand under every hosting mode and placement (common random numbers, STYLE §7).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import simpy

from fleet_sim.model import distributions as dist
from fleet_sim.model.demand import Constant, DemandWorkload, Diurnal, Replay, Spiky
from fleet_sim.model.fleet import Fleet
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import JOB_COLUMNS, JobWorkload, PoissonJobs
from fleet_sim.numerics.power import LinearPower, TablePower
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.results.tables import build_tables
from fleet_sim.rng import Streams
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.traces import bundled_planetlab, read_planetlab

#: the run advances in this many equal steps (progress reports; results do not depend on it)
STEPS = 100


@dataclass
class Simulation:
    """One built run: live objects plus what is needed to turn them into tables."""

    config: cfg.ScenarioConfig
    seed: int
    env: simpy.Environment
    streams: Streams
    recorder: ChangePointRecorder
    fleet: Fleet
    inventory: pd.DataFrame
    starters: list[Callable[[], None]] = field(default_factory=list)
    started: bool = False

    @property
    def duration_s(self) -> float:
        """Simulated time of the run, s."""
        return self.config.run.duration_s

    def start(self) -> None:
        """Register every workload's arrivals and demand steps (elaboration)."""
        for start in self.starters:
            start()
        self.started = True

    def run(self, on_step: Callable[[float], None] | None = None) -> None:
        """Simulate until ``duration_s``, calling ``on_step(t)`` after each of :data:`STEPS`.

        Each step runs SimPy to ``t`` and brings every host up to ``t``; hosts are
        lazy (see ``model.scheduler``), so this changes no result.
        """
        if not self.started:
            self.start()
        end = self.duration_s
        for k in range(1, STEPS + 1):
            t = end * k / STEPS
            self.env.run(until=t)
            self.fleet.finalize(t)
            if on_step is not None:
                on_step(t)

    def finalize(self) -> None:
        """Close the run at ``duration_s``: advance hosts; record unfinished jobs (finish NaN)."""
        end = self.duration_s
        self.fleet.finalize(end)
        row = self.recorder.columns("jobs", JOB_COLUMNS)
        if row is None:
            return
        for host in self.fleet.hosts:
            for job in host.root.leaves():
                if getattr(job, "is_job", False) and job.finish is None:
                    start = math.nan if job.start is None else job.start
                    row(job.job_id, job.workload.name, host.name, job.arrival, start, math.nan,
                        job.work_core_s, job.max_cores)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The run's result tables (schema-conforming DataFrames)."""
        run = self.config.run
        return build_tables(self.recorder.data, run.record, self.inventory, run.duration_s,
                            run.warmup_s)


# ---------------------------------------------------------------- fleet
def _power(power: cfg.PowerConfig) -> LinearPower | TablePower:
    if power.table_w is not None:
        return TablePower(power.table_w)
    return LinearPower(power.idle_w, power.peak_w)  # type: ignore[arg-type]


def _build_fleet(config: cfg.ScenarioConfig, env: simpy.Environment,
                 recorder: ChangePointRecorder) -> tuple[Fleet, pd.DataFrame]:
    fleet = Fleet(env)
    rows = []
    for group in config.fleet.hosts:
        power = _power(group.power)
        for i in range(group.count):
            host = fleet.add(Host(env, f"{group.type}{i:03d}", cores=group.cores,
                                  ram_mib=group.ram_mib, speed=group.speed, power=power,
                                  recorder=recorder))
            rows.append((host.name, group.type, group.cores, group.speed, group.ram_mib,
                         group.monthly_cost_usd))
    inventory = pd.DataFrame(rows, columns=["host", "type", "cores", "speed", "ram_mib",
                                            "monthly_cost_usd"])
    return fleet, inventory


# ---------------------------------------------------------------- workloads
def distribution(spec: cfg.DistributionConfig) -> dist.Distribution:
    """The model distribution a config describes."""
    if isinstance(spec, cfg.ExponentialConfig):
        return dist.Exponential(spec.mean)
    if isinstance(spec, cfg.LogNormalConfig):
        return dist.LogNormal(spec.mean, spec.cv)
    if isinstance(spec, cfg.UniformConfig):
        return dist.Uniform(spec.low, spec.high)
    return dist.Deterministic(spec.value)


def _trace(spec: cfg.ReplayWorkloadConfig, replica: int, base_dir: Path) -> np.ndarray:
    if spec.trace.startswith("planetlab:"):
        name = spec.trace.split(":", 1)[1]
        files = bundled_planetlab()
        path = files[replica % len(files)] if name == "*" else bundled_planetlab(name)
        return read_planetlab(path)
    return read_planetlab(base_dir / spec.trace)


def workload_factory(spec: cfg.WorkloadConfig, app: str, instance: str, replica: int,
                     streams: Streams, base_dir: Path):
    """A function ``(host, parent, weight_of) -> start()`` that hangs the workload
    ``spec`` of ``instance`` under ``parent`` on ``host`` and returns its starter."""
    name = f"{app}.{spec.label}"
    stream = f"workload.{instance}.{spec.label}"

    def make(host: Host, parent, weight_of=None) -> Callable[[], None]:
        if isinstance(spec, cfg.JobsWorkloadConfig):
            wl = JobWorkload(host, name, parent=parent, keep_jobs=False, instance=instance)
            feed = PoissonJobs(spec.rate_per_s, distribution(spec.work_core_s), spec.max_cores,
                               streams.get(f"{stream}.arrivals"), streams.get(f"{stream}.sizes"),
                               t_start=spec.start_s,
                               t_end=math.inf if spec.end_s is None else spec.end_s)
            return lambda: wl.add_feed(feed)
        if isinstance(spec, cfg.ConstantWorkloadConfig):
            profile = Constant(spec.cores)
        elif isinstance(spec, cfg.SpikyWorkloadConfig):
            profile = Spiky(spec.baseline_cores, spec.rate_per_s, distribution(spec.duration_s),
                            spec.height_cores, streams.get(f"{stream}.spikes"))
        elif isinstance(spec, cfg.DiurnalWorkloadConfig):
            profile = Diurnal(spec.mean_cores, spec.amplitude_cores, spec.period_s, spec.peak_s,
                              spec.step_s)
        else:
            profile = Replay(_trace(spec, replica, base_dir), spec.interval_s, spec.cores,
                             spec.loop)
        demand = DemandWorkload(host, name, profile, parent=parent, instance=instance)
        demand.weight_of = weight_of
        return demand.start

    return make


# ---------------------------------------------------------------- placement (interim)
def _place_directly(config: cfg.ScenarioConfig, fleet: Fleet, streams: Streams,
                    base_dir: Path) -> list[Callable[[], None]]:
    """Interim hosting until ``fleet_sim.hosting.deploy`` lands: every replica's
    workloads hang straight under a host's root, as processes of one shared OS
    (CFS weight = runnable threads, capped by the app's threads), replicas placed
    first-fit by RAM."""
    free_mib = {h.name: h.ram_mib for h in fleet.hosts}
    starters: list[Callable[[], None]] = []
    for app in config.apps:
        def cfs_weight(cores: float, threads: int = app.threads) -> float:
            return float(min(threads, max(1, math.ceil(cores))))

        for r in range(app.replicas):
            host = next((h for h in fleet.hosts if free_mib[h.name] >= app.ram_mib), None)
            if host is None:
                from fleet_sim.errors import CapacityError

                raise CapacityError(f"no host has {app.ram_mib:g} MiB free for {app.name}-{r}")
            free_mib[host.name] -= app.ram_mib
            host.set_ram_used(host.ram_mib - free_mib[host.name])
            instance = f"{app.name}-{r}"
            for spec in app.workloads:
                make = workload_factory(spec, app.name, instance, r, streams, base_dir)
                starters.append(make(host, None, cfs_weight))
    return starters


# ---------------------------------------------------------------- the root
def build(config: cfg.ScenarioConfig, seed: int | None = None,
          base_dir: Path | None = None) -> Simulation:
    """Build (but do not start) the run ``config`` describes, with ``seed``
    (default ``config.run.seed``); ``base_dir`` resolves trace files."""
    seed = config.run.seed if seed is None else seed
    env = simpy.Environment()
    streams = Streams(seed)
    recorder = ChangePointRecorder(config.run.record)
    fleet, inventory = _build_fleet(config, env, recorder)
    starters = _place_directly(config, fleet, streams, base_dir or Path.cwd())
    return Simulation(config, seed, env, streams, recorder, fleet, inventory, starters)
