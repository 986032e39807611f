"""Noisy neighbour: how much does a spiky neighbour slow a latency-sensitive app, per hosting mode?

The experiment is ``experiments/noisy_neighbor.toml`` (one 8-core host, the
victim's requests, three spiky batch neighbours, the warm-up); this script runs
it once per variant, each variant a ``--set`` override of that file, and
tabulates the result tables. Every variant sees the same arrivals and spikes
(common random numbers, docs/model.md §8). Variants:

- ``alone``: the victim by itself (``apps.batch.replicas=0``), the reference.
- ``baremetal``: one shared OS; CFS shares per runnable thread.
- ``vm``: VMs sized by CPU request (1 + 3 × 2 = 7 vCPUs on 8 cores: no overcommit).
- ``vm-overcommit``: VMs sized for their peak (1 + 3 × 8 = 25 vCPUs, ratio 4).
- ``container``: equal ``cpu.weight``, no limits.
- ``container-quota``: the neighbours' ``cpu.max`` = their request (2 cores),
  enforced per 100 ms CFS period.

Printed per variant: the victim's p50 / p99 / mean response time of requests
arriving after the warm-up, its *contention share* (core-s denied by neighbours
/ core-s it could have used, docs/model.md §2), the neighbours' CPU (core-s), and
their CFS throttled time (s, from the ``cpu_stat`` events).

    python experiments/noisy_neighbor/noisy_neighbor.py --hours 1 --seed 0
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import fleet_sim as fs

SCENARIO = Path(__file__).resolve().parents[1] / "noisy_neighbor.toml"
VICTIM = "victim.requests"  #: the victim app's request workload
NEIGHBOURS = "batch"  #: the neighbours' app

#: variant → overrides of the scenario file
VARIANTS: dict[str, dict[str, Any]] = {
    "alone": {"hosting.mode": "baremetal", f"apps.{NEIGHBOURS}.replicas": 0},
    "baremetal": {"hosting.mode": "baremetal"},
    "vm": {"hosting.mode": "vm"},
    "vm-overcommit": {"hosting.mode": "vm", "hosting.vm.cpu_ratio": 4.0,
                      "hosting.vm.vcpus_from": "threads"},
    "container": {"hosting.mode": "container"},
    "container-quota": {"hosting.mode": "container", "hosting.container.cfs": "period",
                        f"apps.{NEIGHBOURS}.cpu_max": 2.0},
}


def window(hours: float, warmup_s: float | None = None) -> dict[str, Any]:
    """Overrides for ``hours`` measured after the warm-up (default: the file's); the
    victim's requests start when the warm-up ends."""
    if warmup_s is None:
        with open(SCENARIO, "rb") as f:
            warmup_s = float(tomllib.load(f)["run"]["warmup_s"])
    return {"run.warmup_s": warmup_s, "run.duration_s": warmup_s + hours * 3600.0,
            "apps.victim.workloads.requests.start_s": warmup_s}


def figures(res: fs.Results) -> dict[str, float]:
    """One variant's row, from its result tables."""
    warmup_s = res.config["run"]["warmup_s"]
    jobs = res.jobs
    done = jobs[(jobs["workload"] == VICTIM) & (jobs["arrival"] >= warmup_s)
                & jobs["finish"].notna()]
    rt = done["response_time_s"]
    ws = res.workload_summary.set_index("workload")
    victim = ws.loc[VICTIM]
    usable = victim["demand_core_s"] - victim["throttled_core_s"]
    throttled_s = res.events.loc[res.events["kind"] == "cpu_stat", "duration_s"]
    return {
        "victim_p50_s": float(rt.quantile(0.5)),
        "victim_p99_s": float(rt.quantile(0.99)),
        "victim_mean_s": float(rt.mean()),
        "victim_jobs": len(rt),
        "contention_share": victim["contention_core_s"] / usable if usable > 0 else 0.0,
        "neighbour_core_s": float(
            ws.loc[ws.index.str.startswith(NEIGHBOURS), "allocated_core_s"].sum()),
        "neighbour_throttled_s": float(throttled_s.sum()),
    }


def run(hours: float = 1.0, warmup_s: float | None = None, seed: int | None = None,
        variants: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per variant (see the module docstring); same seed ⇒ same table.
    ``seed`` defaults to the scenario file's."""
    rows = []
    for name in (list(VARIANTS) if variants is None else variants):
        res = fs.run(SCENARIO, seed=seed, set={**VARIANTS[name], **window(hours, warmup_s)},
                     progress=False)
        rows.append({"variant": name, **figures(res)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=1.0, help="measured time after warm-up")
    ap.add_argument("--warmup-s", type=float, default=None,
                    help="warm-up before the statistics (default: the scenario file's)")
    ap.add_argument("--seed", type=int, default=None, help="default: the scenario file's")
    args = ap.parse_args(argv)
    df = run(args.hours, args.warmup_s, args.seed)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    return df


if __name__ == "__main__":
    main()
