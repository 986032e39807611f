"""Realistic fleet benchmark: what a user runs, through the normal scenario path.

``scale.py`` is the best case (plain CPU trees, jobs table only); this one is the
demo fleet grown to ``--hosts`` 32-core hosts: per host two replicas of a web app
behind its load balancer (random routing) serving Poisson requests of tens of ms
(``cpu_max`` 2 cores; a request that finds no replica up fails at once), one spiky
batch app of 16 threads (``cpu_max`` 8 cores, enforced per 100 ms CFS period in
container mode) and one steady cache, placed by worst-fit, recording
``run.record``'s default tables; the statistics window starts at 120 s, after the
first image pulls. As in the demo, VMs overcommit vCPUs 2:1 and a bare-metal install
takes 60 s; a VM boots once its image is copied from the registry, so at 200 hosts
VMs come up after about 21 minutes (800 images of 2 GB over one 10 GbE uplink).
The scenario is a dict validated by ``fleet_sim.scenarios.config`` and built by
``fleet_sim.scenarios.build``, as ``fleet-sim run`` does.

Prints wall seconds per phase (build / run / tables / store), simulated events
(host scheduler events), events per wall second of the run phase, jobs finished
and peak RSS (MiB; also up to the end of the run phase).

    python benchmarks/fleet.py --hosts 200 --hours 1 --mode container --seed 0
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from fleet_sim.results import store
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.build import build

MODES = ("container", "vm", "baremetal")
HOST_CORES = 32
REQUEST_RATE_PER_S = 4.6   # per web replica: 6.6 M requests an hour on 200 hosts
REQUEST_MEAN_CORE_S = 0.05
WARMUP_S = 120.0  # at most a tenth of the run


def scenario(hosts: int, hours: float, mode: str, seed: int,
             record: list[str] | None = None) -> dict[str, Any]:
    """The benchmark fleet as raw scenario data (``record`` None: the default tables)."""
    # the statistics window starts once the first image pulls and starts are over
    # (requests queue meanwhile), so summaries and the report show the steady fleet
    run: dict[str, Any] = {"duration_s": hours * 3600.0, "seed": seed,
                           "warmup_s": min(WARMUP_S, hours * 360.0)}
    if record is not None:
        run["record"] = record
    return {
        "run": run,
        "fleet": {"hosts": [{"type": "std", "count": hosts, "cores": HOST_CORES,
                             "ram_mib": 262_144, "power": {"idle_w": 100, "peak_w": 400}}]},
        "hosting": {"mode": mode, "vm": {"cpu_ratio": 2.0}, "baremetal": {"install_s": 60}},
        "placement": {"policy": "worst-fit"},
        "apps": [
            {"name": "web", "replicas": 2 * hosts, "threads": 8, "cpu_request_cores": 2.0,
             "ram_mib": 4096, "vcpus": 2, "cpu_max": 2.0,
             "service": {"routing": "random"},
             "workloads": [{"kind": "jobs", "name": "requests", "scope": "service",
                            "rate_per_s": REQUEST_RATE_PER_S * 2 * hosts,
                            "work_core_s": {"dist": "exponential",
                                            "mean": REQUEST_MEAN_CORE_S},
                            "max_cores": 1.0}]},
            {"name": "batch", "replicas": hosts, "threads": 16, "cpu_request_cores": 4.0,
             "ram_mib": 16384, "vcpus": 8, "cpu_max": 8.0,
             "workloads": [{"kind": "spiky", "name": "crunch", "baseline_cores": 1.0,
                            "rate_per_s": 0.0033, "height_cores": 12.0,
                            "duration_s": {"dist": "exponential", "mean": 60}}]},
            {"name": "cache", "replicas": hosts, "threads": 2, "cpu_request_cores": 1.5,
             "ram_mib": 8192, "vcpus": 2,
             "workloads": [{"kind": "constant", "cores": 1.5}]},
        ],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--mode", choices=MODES, default="container")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--record", default=None,
                    help="comma-separated tables to record (default: run.record's default)")
    args = ap.parse_args(argv)
    record = None if args.record is None else [x for x in args.record.split(",") if x]
    data = scenario(args.hosts, args.hours, args.mode, args.seed, record)

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        config = cfg.validate(data, "<benchmark>", Path.cwd())
        # as `fleet-sim run --out` does: tables spool to Parquet as the run goes
        sim = build(config, spool_dir=store.temporary_folder(out, "benchmark"))
        sim.start()
        t1 = time.perf_counter()
        sim.run()
        sim.finalize()
        t2 = time.perf_counter()
        peak_run = _peak_mib()
        tables = sim.tables()
        t3 = time.perf_counter()
        store.write_run(out, "benchmark", tables, {"status": store.OK})
        t4 = time.perf_counter()
    events = sum(h.cpu.events for h in sim.hosts)
    jobs = sum(h.cpu.jobs_done for h in sim.hosts)
    print(f"hosts={args.hosts} hours={args.hours:g} mode={args.mode} seed={args.seed} "
          f"record={','.join(config.run.record)}")
    print(f"wall_s={t4 - t0:.2f} (build {t1 - t0:.2f}, run {t2 - t1:.2f}, "
          f"tables {t3 - t2:.2f}, store {t4 - t3:.2f})")
    print(f"events={events}")
    print(f"events_per_s={events / max(t2 - t1, 1e-9):,.0f}")
    print(f"jobs_finished={jobs}")
    print(f"peak_rss_mib={_peak_mib():.0f} (run {peak_run:.0f})")


def _peak_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
