"""How long does one new version take to reach 100, 300 and 1000 servers, and how much
serving capacity is lost meanwhile, under bare metal, VMs and containers, from a central
registry or peer to peer? And how much does shipping only the top layer save?

Runs are Kubernetes-style rolling updates (maxSurge = maxUnavailable = 25%) with the
published defaults of ``fleet_sim/hosting/defaults.py``: 10 GbE host NICs and registry
uplink, 2 GB VM images, 200 MB + 30 MB container images, a scripted bare-metal install
of ~10 min, 1% failures per install step and per health check, retried once. Bare
metal installs packages from one mirror, so it runs only against the central
registry. A last table sets the strategies side by side.

    .venv/bin/python experiments/rollout/rollout.py [--sizes 100,300,1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from fleet_sim.scenarios.rollout import RolloutSpec, run_rollout

COMBOS = (("baremetal", "central"), ("vm", "central"), ("vm", "p2p"),
          ("container", "central"), ("container", "p2p"))
STRATEGIES = (("all-at-once", {}), ("rolling", {}),
              ("rolling", {"max_surge": "25%", "max_unavailable": 0}),
              ("batches", {"size": 50}), ("canary", {"fraction": 0.05}), ("blue-green", {}))
COLUMNS = {"n_hosts": "hosts", "mode": "mode", "distribution": "from", "changed": "changed",
           "strategy": "strategy",
           "makespan_min": "makespan min", "min_serving_fraction": "min serving",
           "instance_median_s": "median instance s", "registry_gb": "registry GB",
           "peak_registry_mb_s": "peak registry MB/s", "new_failed": "failed",
           "outcome": "outcome"}


def summarize(specs: list[RolloutSpec], runs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One summary row per spec, in readable units; ``runs`` memoizes summaries by spec."""
    for spec in specs:
        if repr(spec) not in runs:
            runs[repr(spec)] = run_rollout(spec)["summary"]
    rows = pd.concat([runs[repr(spec)] for spec in specs], ignore_index=True)
    rows["makespan_min"] = rows["makespan_s"] / 60
    rows["registry_gb"] = rows["registry_mb"] / 1000
    return rows[list(COLUMNS)].rename(columns=COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300,1000", help="fleet sizes, comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    started = time.perf_counter()
    runs: dict[str, pd.DataFrame] = {}
    scale = summarize([
        RolloutSpec(n_hosts=n, mode=mode, distribution=source, changed="whole-image",
                    seed=args.seed)
        for n in sizes for mode, source in COMBOS], runs)
    layers = summarize([
        RolloutSpec(n_hosts=max(sizes), mode=mode, distribution=source, changed=changed,
                    seed=args.seed)
        for mode, source in COMBOS for changed in ("top-layer", "whole-image")], runs)
    mid = sorted(sizes)[len(sizes) // 2]
    strategies = summarize([
        RolloutSpec(n_hosts=mid, mode="container", changed="whole-image", strategy=name,
                    strategy_params=params, seed=args.seed)
        for name, params in STRATEGIES], runs)
    strategies.insert(5, "params", [", ".join(f"{k}={v}" for k, v in p.items())
                                    for _, p in STRATEGIES])
    options = {"index": False, "float_format": lambda x: f"{x:,.2f}"}
    print("Whole image changed: rolling update 25%/25%")
    print(scale.to_string(**options))
    print(f"\nOnly the top layer changed vs the whole image ({max(sizes)} hosts)")
    print(layers.to_string(**options))
    print(f"\nStrategies ({mid} hosts, containers, central registry, whole image)")
    print(strategies.to_string(**options))
    print(f"\nwall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
