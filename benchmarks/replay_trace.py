"""Write the burst job trace that ``fleet-sim replay`` is benchmarked on.

The jobs of ``scale.py`` as a trace (``time,host,workload,core_seconds,max_cores``):
per host ``--workloads-per-host`` workloads, each with one steady job of 0.5 core
for the whole horizon and burst jobs of max_cores 4 arriving as a Poisson process
(mean gap 600 s) with exponential durations (mean 60 s). 100 hosts × 24 h make
about 290,000 jobs. ``--own-workloads`` names every job its own workload (the
jobs and the arrival times stay the same).

    python benchmarks/replay_trace.py --hosts 100 --hours 24 --out burst.csv
    fleet-sim replay burst.csv --cores 32 --out finished.csv

Measure wall time and peak memory with ``/usr/bin/time -f "%e s %M KiB" fleet-sim
replay …`` (median of 3), on this trace and on the same one with ``--own-workloads``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

BURST_CORES = 4.0
BURST_GAP_S = 600.0
BURST_MEAN_S = 60.0
STEADY_CORES = 0.5


def trace(hosts: int, per_host: int, horizon_s: float, seed: int,
          own_workloads: bool = False) -> pa.Table:
    """The trace as a table, rows sorted by time."""
    rng = np.random.default_rng(seed)
    times, host_ix, wl_ix, work, cores = [], [], [], [], []
    for h in range(hosts):
        for w in range(per_host):
            n = rng.poisson(horizon_s / BURST_GAP_S * 1.2) + 8
            t = np.cumsum(rng.exponential(BURST_GAP_S, n))
            t = t[t < horizon_s]
            k = t.size + 1
            times.append(np.concatenate(([0.0], t)))
            work.append(np.concatenate(([STEADY_CORES * horizon_s],
                                        BURST_CORES * rng.exponential(BURST_MEAN_S, t.size))))
            cores.append(np.concatenate(([STEADY_CORES], np.full(t.size, BURST_CORES))))
            host_ix.append(np.full(k, h))
            wl_ix.append(np.full(k, h * per_host + w))
    t = np.concatenate(times)
    order = np.argsort(t, kind="stable")
    hosts_col = np.array([f"host{h:04d}" for h in range(hosts)])[np.concatenate(host_ix)]
    wl = np.concatenate(wl_ix)
    if own_workloads:
        wl_col = np.char.add("job", np.arange(t.size).astype(str))
    else:
        wl_col = np.char.add("w", wl.astype(str))
    return pa.table({
        "time": t[order], "host": hosts_col[order], "workload": wl_col[order],
        "core_seconds": np.concatenate(work)[order], "max_cores": np.concatenate(cores)[order],
    })


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--workloads-per-host", type=int, default=20)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--own-workloads", action="store_true",
                    help="every job is its own workload")
    ap.add_argument("--out", required=True, help="CSV to write")
    args = ap.parse_args(argv)
    table = trace(args.hosts, args.workloads_per_host, args.hours * 3600.0, args.seed,
                  args.own_workloads)
    pacsv.write_csv(table, args.out)
    print(f"wrote {table.num_rows} jobs on {args.hosts} hosts -> {args.out}")


if __name__ == "__main__":
    main()
