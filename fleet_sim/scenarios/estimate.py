"""How big a run will be before it runs: simulated events, wall time and peak memory.

The count of events follows from the scenario: every job arrives and finishes
(``rate_per_s`` × active time × replicas, or once for a service's stream; two
scheduler events each), every spike
starts and ends, a period-enforced ``cpu.max`` adds about two events per CFS period
while its container is above its quota, and stepped or replayed demand changes once
per step. Each event changes one workload and its host, so a recorded ``hosts`` or
``workloads`` table gains about one row per event and ``jobs`` one row per job.

Memory is bounded: a run holds at most one chunk of rows before handing it over to
its tables. Wall time and memory come from costs measured on the machine that runs
fleet_sim:
a short calibration run (a fraction of a second) times this machine's cost per
event, and the costs of the realistic benchmark (``benchmarks/fleet.py``) are scaled
by it. The result is an order of magnitude to plan by (typically within 2×), not
a promise.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path

from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.build import CHUNK_ROWS, build

#: scheduler events per job (arrival, finish, and the re-shares they cause), as
#: measured by benchmarks/fleet.py (1.71 M events for 662 k jobs)
EVENTS_PER_JOB = 2.6
#: rows a recorded series table (hosts, workloads) gains per event (same benchmark)
ROWS_PER_EVENT = 1.15
#: the realistic benchmark's cost per event and per recorded row relative to the
#: calibration run's cost per event (CFS quotas, recording, table building)
EVENT_COST_FACTOR = 1.4
ROW_COST_FACTOR = 0.2
#: peak memory: the interpreter and libraries; each row held until its chunk is
#: handed over (recorder buffers plus the frames built from them, at most
#: ``build.CHUNK_ROWS`` rows); and what the fold keeps per row for its exact
#: percentiles (benchmarks/fleet.py: 353 MiB at 20 hosts × 1 h, 479 MiB at 200 × 1 h,
#: 731 MiB at 20 × 24 h)
BASE_MIB = 150.0
BYTES_PER_HELD_ROW = 730.0
BYTES_PER_ROW = 3.6


@dataclass(frozen=True)
class Estimate:
    """What a run will cost: ``jobs`` and ``events`` simulated, ``rows`` recorded,
    ``wall_s`` on this machine and ``peak_mib`` of memory (estimates)."""

    jobs: float
    events: float
    rows: float
    wall_s: float
    peak_mib: float

    def __str__(self) -> str:
        return (f"estimate: ~{_count(self.events)} simulated events "
                f"({_count(self.jobs)} jobs), ~{_count(self.rows)} table rows; "
                f"~{_duration(self.wall_s)} wall on this machine and "
                f"~{_mib(self.peak_mib)} of memory (within about 2×)")


def _mean(spec: object) -> float:
    return float(cfg.distribution(spec).mean)


def count_events(config: cfg.ScenarioConfig) -> tuple[float, float]:
    """(jobs, scheduler events) a fleet run of ``config`` will simulate."""
    duration = config.run.duration_s
    container = config.hosting.container
    periodic = config.hosting.mode == "container" and container.cfs == "period"
    jobs = events = 0.0
    for app in config.apps:
        for wl in app.workloads:
            n = app.replicas
            if isinstance(wl, cfg.JobsWorkloadConfig):
                active = max(0.0, min(wl.end_s or duration, duration) - wl.start_s)
                streams = n if wl.scope == "replica" else min(n, 1)  # a service has one
                jobs += streams * wl.rate_per_s * active
            elif isinstance(wl, cfg.SpikyWorkloadConfig):
                spikes = n * wl.rate_per_s * duration
                events += 2 * spikes
                if periodic and app.cpu_max is not None:
                    busy_s = spikes * _mean(wl.duration_s)
                    events += 2 * busy_s / container.cfs_period_s
            elif isinstance(wl, cfg.DiurnalWorkloadConfig):
                events += n * duration / wl.step_s
            elif isinstance(wl, cfg.ReplayWorkloadConfig):
                events += n * duration / wl.interval_s
            else:
                events += n
    return jobs, events + EVENTS_PER_JOB * jobs


@functools.cache
def seconds_per_event() -> float:
    """This machine's cost of one scheduler event, from a short calibration run of
    Poisson jobs on one host (cached for the process)."""
    data = {"run": {"duration_s": 150.0, "seed": 0, "record": []},
            "fleet": {"hosts": [{"type": "h", "count": 1, "cores": 8, "ram_mib": 65536}]},
            "hosting": {"mode": "container"},
            "apps": [{"name": "calibration", "threads": 8, "ram_mib": 1024,
                      "workloads": [{"kind": "jobs", "rate_per_s": 100.0,
                                     "work_core_s": {"dist": "exponential", "mean": 0.05}}]}]}
    sim = build(cfg.validate(data, "<calibration>", Path.cwd()))
    started = time.perf_counter()
    sim.start()
    sim.run()
    wall = time.perf_counter() - started
    return wall / max(1, sum(h.cpu.events for h in sim.hosts))


def estimate(config: cfg.ScenarioConfig) -> Estimate:
    """The :class:`Estimate` of a fleet run of ``config`` on this machine."""
    jobs, events = count_events(config)
    record = set(config.run.record)
    rows = (ROWS_PER_EVENT * events * len(record & {"hosts", "workloads"})
            + (jobs if "jobs" in record else 0.0))
    cost = seconds_per_event()
    wall = events * cost * EVENT_COST_FACTOR + rows * cost * ROW_COST_FACTOR
    held = min(rows, CHUNK_ROWS)
    peak = BASE_MIB + (held * BYTES_PER_HELD_ROW + rows * BYTES_PER_ROW) / 2**20
    return Estimate(jobs, events, rows, wall, peak)


def _count(n: float) -> str:
    for limit, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if n >= limit:
            return f"{n / limit:.3g}{suffix}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0.1):.2g} s"
    if seconds < 5400:
        return f"{seconds / 60:.2g} min"
    return f"{seconds / 3600:.2g} h"


def _mib(mib: float) -> str:
    return f"{mib / 1024:.2g} GiB" if mib >= 1024 else f"{math.ceil(mib):.0f} MiB"
