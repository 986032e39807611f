"""Scale benchmark of the core engine (issue: Core engine, item 7).

Each host has 32 cores; each workload runs one steady job of 0.5 core for the
whole horizon plus burst jobs of max_cores 4 arriving as a Poisson process
(mean gap 600 s) with exponential duration (mean 60 s; work = 4 × duration).
Prints wall seconds (build, run), events processed, events per wall second of
the run phase, jobs finished and peak RSS (MiB).

    python benchmarks/scale.py --hosts 1000 --workloads-per-host 20 --hours 24 --seed 0
"""

from __future__ import annotations

import argparse
import resource
import time

import simpy

from fleet_sim.model.collection import long_run
from fleet_sim.model.distributions import Exponential
from fleet_sim.model.fleet import Fleet
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import Job, JobWorkload, PoissonJobs
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.rng import Streams

BURST_CORES = 4.0
BURST_GAP_S = 600.0
BURST_MEAN_S = 60.0
STEADY_CORES = 0.5


def build(hosts: int, per_host: int, horizon_s: float, seed: int, tables: tuple[str, ...]):
    env = simpy.Environment()
    rec = ChangePointRecorder(tables)
    streams = Streams(seed)
    fleet = Fleet(env)
    burst_duration = Exponential(BURST_MEAN_S)
    for h in range(hosts):
        host = fleet.add(Host(env, f"host{h:04d}", cores=32, recorder=rec))
        for w in range(per_host):
            name = f"host{h:04d}.w{w:02d}"
            wl = JobWorkload(host, name, keep_jobs=False)
            wl.submit(Job(STEADY_CORES * horizon_s, STEADY_CORES))
            wl.add_feed(PoissonJobs.bursts(1 / BURST_GAP_S, burst_duration, BURST_CORES,
                                           streams.get(f"workload.{name}.arrivals"),
                                           streams.get(f"workload.{name}.sizes"),
                                           t_end=horizon_s))
    return env, fleet, rec


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--workloads-per-host", type=int, default=20)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--record", default="jobs",
                    help="comma-separated tables to record (default: jobs)")
    args = ap.parse_args(argv)
    horizon = args.hours * 3600.0
    t0 = time.perf_counter()
    env, fleet, _recorder = build(args.hosts, args.workloads_per_host, horizon, args.seed,
                                  tuple(x for x in args.record.split(",") if x))
    t_build = time.perf_counter() - t0
    with long_run():  # as a scenario's run phase does
        env.run(until=horizon)
        fleet.finalize(horizon)
    wall = time.perf_counter() - t0
    t_run = wall - t_build
    events = sum(h.cpu.events for h in fleet.hosts)
    jobs = fleet.jobs_finished()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"hosts={args.hosts} workloads/host={args.workloads_per_host} hours={args.hours:g} "
          f"seed={args.seed}")
    print(f"wall_s={wall:.2f} (build {t_build:.2f}, run {t_run:.2f})")
    print(f"events={events}")
    print(f"events_per_s={events / t_run:,.0f} (run phase)")
    print(f"jobs_finished={jobs}")
    print(f"peak_rss_mib={peak:.0f}")


if __name__ == "__main__":
    main()
