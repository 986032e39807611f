"""Noisy neighbour: how much does a spiky neighbour slow a latency-sensitive app, per hosting mode?

One 8-core host. The *victim* serves requests on one thread: Poisson arrivals at
10/s of exponential work with mean 50 ms (ρ = 0.5; alone it is an M/M/1-PS queue
with mean response 0.1 s). Three *neighbours* idle at 0.5 cores and spike to 8 busy
threads (spikes every 2 min on average, lasting 30 s on average; overlapping
spikes add up). Every mode sees the same arrivals and spikes (common random
numbers, DESIGN §4). Variants:

- ``alone``: the victim by itself (the reference).
- ``baremetal``: one shared OS; CFS shares per runnable thread.
- ``vm``: VMs sized by CPU request (1 + 3 × 2 = 7 vCPUs on 8 cores: no overcommit).
- ``vm-overcommit``: VMs sized for their peak (1 + 3 × 8 = 25 vCPUs, ratio 4).
- ``container``: equal ``cpu.weight``, no limits.
- ``container-quota``: the neighbours' ``cpu.max`` = their request (2 cores),
  enforced per 100 ms CFS period.

Printed per variant: the victim's p50 / p99 / mean response time of requests
arriving after the warm-up, its *contention share* (core-s denied by neighbours
/ core-s it could have used, DESIGN §3.1), the neighbours' CPU (core-s), and
their CFS throttled time.

    python experiments/noisy_neighbor/noisy_neighbor.py --hours 1 --seed 0
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd
import simpy

from fleet_sim.hosting.base import AppSpec, DemandSpec, HostSpec, JobsSpec
from fleet_sim.hosting.deploy import deploy
from fleet_sim.model.distributions import Exponential
from fleet_sim.numerics.timeweighted import integral
from fleet_sim.policies.placement import FirstFit
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.rng import Streams

HOST = HostSpec("host", cores=8, ram_mib=65_536)
VICTIM_WORKLOAD = "victim.requests"

#: variant → (mode, mode parameters, include the neighbours)
VARIANTS: dict[str, tuple[str, dict, bool]] = {
    "alone": ("baremetal", {}, False),
    "baremetal": ("baremetal", {}, True),
    "vm": ("vm", {}, True),
    "vm-overcommit": ("vm", {"cpu_ratio": 4.0, "vcpus_from": "threads"}, True),
    "container": ("container", {}, True),
    "container-quota": ("container", {"cfs": "period"}, True),
}


def apps(warmup_s: float, neighbours: bool, quota: bool, n_neighbours: int = 3
         ) -> list[AppSpec]:
    """The victim and (optionally) its neighbours; requests start after the warm-up,
    once every mode has installed, booted or started its apps."""
    victim = AppSpec("victim", threads=1, cpu_request_cores=1.0, ram_mib=512,
                     workloads=(JobsSpec("requests", 10.0, Exponential(0.05), 1.0,
                                         t_start_s=warmup_s),))
    out = [victim]
    if neighbours:
        spikes = {"baseline_cores": 0.5, "rate_per_s": 1 / 120, "duration_s": Exponential(30.0),
                  "height_cores": 8.0}
        out += [AppSpec(f"batch{i}", threads=8, cpu_request_cores=2.0, ram_mib=2048,
                        cpu_limit_cores=2.0 if quota else None,
                        workloads=(DemandSpec("cpu", "spiky", spikes),))
                for i in range(n_neighbours)]
    return out


def run_variant(name: str, horizon_s: float, warmup_s: float, seed: int) -> dict:
    """Run one variant; return its row of figures."""
    mode, params, neighbours = VARIANTS[name]
    env = simpy.Environment()
    rec = ChangePointRecorder(["workloads", "jobs", "events"])
    t_end = warmup_s + horizon_s
    dep = deploy(env, [HOST], mode, apps(warmup_s, neighbours, name == "container-quota"),
                 FirstFit(), Streams(seed), rec, params)
    env.run(until=t_end)
    dep.finalize(t_end)
    jobs = pd.DataFrame(rec.data["jobs"])
    jobs = jobs[(jobs["workload"] == VICTIM_WORKLOAD) & (jobs["arrival"] >= warmup_s)]
    rt = (jobs["finish"] - jobs["arrival"]).to_numpy()
    w = pd.DataFrame(rec.data["workloads"])
    vic = w[w["workload"] == VICTIM_WORKLOAD]
    usable = integral(vic["t"], vic["demand_cores"] - vic["throttled_cores"], t_end, warmup_s)
    denied = integral(vic["t"], vic["contention_cores"], t_end, warmup_s)
    neighbour_core_s = sum(
        integral(g["t"], g["allocated_cores"], t_end, warmup_s)
        for wl, g in w.groupby("workload") if wl.startswith("batch"))
    stats = dep.cpu_stats(t_end)
    return {
        "variant": name,
        "victim_p50_s": float(np.percentile(rt, 50)),
        "victim_p99_s": float(np.percentile(rt, 99)),
        "victim_mean_s": float(rt.mean()),
        "victim_jobs": len(rt),
        "contention_share": denied / usable if usable > 0 else 0.0,
        "neighbour_core_s": neighbour_core_s,
        "neighbour_throttled_s": sum(s["throttled_s"] for s in stats.values()),
    }


def run(horizon_s: float = 3600.0, warmup_s: float = 900.0, seed: int = 0,
        variants: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per variant (see the module docstring); same seed ⇒ same table."""
    names = list(VARIANTS) if variants is None else list(variants)
    return pd.DataFrame([run_variant(n, horizon_s, warmup_s, seed) for n in names])


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=1.0, help="measured time after warm-up")
    ap.add_argument("--warmup-s", type=float, default=900.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    df = run(args.hours * 3600.0, args.warmup_s, args.seed)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    return df


if __name__ == "__main__":
    main()
