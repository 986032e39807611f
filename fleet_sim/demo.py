"""The default demo: a small fleet with spiky workloads for one hour.

    python -m fleet_sim.demo --out results/demo

Builds 12 hosts of 16 cores, each running four request-serving job workloads
(Poisson arrivals) and one batch workload whose demand spikes, runs it, prints a
summary table and writes the result tables (Parquet) and a utilization figure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import simpy

from fleet_sim.model.demand import DemandWorkload, Spiky
from fleet_sim.model.distributions import Exponential
from fleet_sim.model.fleet import Fleet
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import JobWorkload, PoissonJobs
from fleet_sim.numerics import timeweighted
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.rng import Streams

HOSTS, CORES, WEB_PER_HOST, HORIZON_S = 12, 16, 4, 3600.0


def simulate(seed: int = 1) -> dict[str, pd.DataFrame]:
    """Run the demo fleet; return its tables as DataFrames."""
    env = simpy.Environment()
    rec = ChangePointRecorder(["hosts", "workloads", "jobs"])
    streams = Streams(seed)
    fleet = Fleet(env)
    for h in range(HOSTS):
        host = fleet.add(Host(env, f"host{h:02d}", cores=CORES, recorder=rec,
                              power=LinearPower(defaults.HOST_IDLE_W, defaults.HOST_PEAK_W)))
        for w in range(WEB_PER_HOST):
            name = f"{host.name}.web{w}"
            JobWorkload(host, name, keep_jobs=False).add_feed(PoissonJobs(
                2.0, Exponential(1.0), 1.0, streams.get(f"workload.{name}.arrivals"),
                streams.get(f"workload.{name}.sizes")))
        batch = DemandWorkload(host, f"{host.name}.batch", Spiky(
            2.0, 1 / 300, Exponential(60.0), 10.0, streams.get(f"workload.{host.name}.spikes")))
        batch.start()
    env.run(until=HORIZON_S)
    fleet.finalize(HORIZON_S)
    return {name: pd.DataFrame({c: list(v) for c, v in cols.items()})
            for name, cols in rec.data.items()}


def summarize(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per host: mean CPU utilization, energy, web p50/p99 response time."""
    jobs = tables["jobs"].assign(response_time_s=lambda d: d.finish - d.arrival)
    rows = []
    for host, h in tables["hosts"].groupby("host", sort=True):
        h = h.drop_duplicates("t", keep="last")
        rt = jobs.loc[jobs.host == host, "response_time_s"]
        rows.append({
            "host": host,
            "cpu_util_mean": timeweighted.mean(h.t, h.cpu_used_cores, HORIZON_S) / CORES,
            "energy_kwh": timeweighted.integral(h.t, h.power_w, HORIZON_S) / 3.6e6,
            "jobs": len(rt),
            "p50_response_s": rt.quantile(0.5),
            "p99_response_s": rt.quantile(0.99),
        })
    return pd.DataFrame(rows)


def binned_mean(t: np.ndarray, v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Exact time-weighted mean of a change-point series over each bin of ``edges``."""
    cum = np.concatenate([[0.0], np.cumsum(v[:-1] * np.diff(t))])
    k = np.searchsorted(t, edges, side="right") - 1
    at_edges = cum[k] + v[k] * (edges - t[k])
    return np.diff(at_edges) / np.diff(edges)


def plot_utilization(hosts: pd.DataFrame, path: Path, bin_s: float = 30.0) -> None:
    """Host × time CPU utilization heatmap (exact time-weighted means per bin)."""
    edges = np.arange(0, HORIZON_S + bin_s, bin_s)
    names = sorted(hosts.host.unique())
    z = np.empty((len(names), edges.size - 1))
    for i, name in enumerate(names):
        h = hosts[hosts.host == name].drop_duplicates("t", keep="last")
        z[i] = binned_mean(h.t.to_numpy(), h.cpu_used_cores.to_numpy(), edges) / CORES
    fig, ax = plt.subplots(figsize=(10, 4.5))
    im = ax.imshow(z * 100, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=100,
                   interpolation="nearest", extent=(0, HORIZON_S / 60, -0.5, len(names) - 0.5))
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("time (min)")
    ax.set_title(f"CPU utilization per host, {bin_s:g} s means (demo: spiky batch + web requests)")
    fig.colorbar(im, ax=ax, label="CPU utilization (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/demo", help="output folder")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = simulate(args.seed)
    for name, frame in tables.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    summary = summarize(tables)
    summary.to_parquet(out / "summary.parquet", index=False)
    plot_utilization(tables["hosts"], out / "cpu_heatmap.png")
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print(summary.to_string(index=False))
    print(f"\ntables: {out}/*.parquet   figure: {out}/cpu_heatmap.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
