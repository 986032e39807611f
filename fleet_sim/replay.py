"""Replay a job trace on hosts of C cores (docs/model.md §3.3).

    python -m fleet_sim.replay TRACE.csv --cores C --out FINISHED.csv

The trace has columns ``time,host,workload,core_seconds,max_cores``. Each host
named in the file gets ``C`` cores; the workloads on a host share it equally and
the jobs of one workload share its allocation by max-min (each wanting at most
``max_cores``). The output has one row per job: ``job_id,workload,arrival,start,
finish`` where ``job_id`` is the job's row index in the trace (0-based).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd
import simpy

from fleet_sim.errors import FleetSimError
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import JobWorkload, TraceJobs
from fleet_sim.scenarios.traces import read_job_trace

OUTPUT_COLUMNS = ["job_id", "workload", "arrival", "start", "finish"]


def replay(trace: str | Path | pd.DataFrame, cores: float, speed: float = 1.0) -> pd.DataFrame:
    """Run every job of ``trace`` (a path or a frame as from ``read_job_trace``) to completion.

    Returns the frame ``job_id, workload, arrival, start, finish`` (s), by job_id.
    Raises TraceError for a malformed file, ValueError for ``cores <= 0``.
    """
    if not cores > 0:
        raise ValueError(f"--cores must be > 0, got {cores!r}")
    jobs = read_job_trace(trace) if not isinstance(trace, pd.DataFrame) else trace
    env = simpy.Environment()
    hosts: list[Host] = []
    workloads: list[JobWorkload] = []
    for host_name, on_host in jobs.groupby("host", sort=True):
        host = Host(env, str(host_name), cores=cores, speed=speed)
        hosts.append(host)
        for wl_name, rows in on_host.groupby("workload", sort=True):
            wl = JobWorkload(host, str(wl_name))
            wl.add_feed(TraceJobs(rows["time"].tolist(), rows["core_seconds"].tolist(),
                                  rows["max_cores"].tolist(), rows["job_id"].tolist()))
            workloads.append(wl)
    for host in hosts:
        host.finalize(math.inf)
    out = pd.DataFrame(
        [(j.job_id, wl.name, j.arrival, j.start, j.finish) for wl in workloads
         for j in wl.finished],
        columns=OUTPUT_COLUMNS,
    )
    return out.sort_values("job_id", ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(
        prog="fleet-sim replay", description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  fleet-sim replay trace.csv --cores 8 --out finished.csv",
    )
    ap.add_argument("trace", help="CSV with time,host,workload,core_seconds,max_cores")
    ap.add_argument("--cores", type=float, required=True, help="cores of every host")
    ap.add_argument("--speed", type=float, default=1.0, help="per-core speed factor (1.0)")
    ap.add_argument("--out", required=True,
                    help="CSV to write: job_id,workload,arrival,start,finish")
    args = ap.parse_args(argv)
    try:
        out = replay(args.trace, args.cores, args.speed)
    except (FleetSimError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.to_csv(args.out, index=False, float_format="%.17g")
    print(f"replayed {len(out)} jobs on {args.cores:g}-core hosts -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
