"""Rollout: how long does a new version take to reach 100 to 1000 servers, per hosting mode?

And how much serving capacity is lost meanwhile, under bare metal, VMs and
containers, from a central registry or peer to peer? How much does shipping only
the top layer save?

The experiment is ``experiments/rollout.toml`` (a Kubernetes-style rolling update,
maxSurge = maxUnavailable = 25 %, with the published defaults of
``fleet_sim/hosting/defaults.py``: 10 GbE host NICs and registry uplink, 2 GB VM
images, 200 MB + 30 MB container images, a scripted bare-metal install of ~10 min,
1 % failures per install step and per health check, retried once). This script runs
it over a matrix of ``--set`` overrides of that file: fleet sizes × (mode, image
source) with the whole image changed; then, at the largest size, only the top layer
vs the whole image; then, at the middle size, the rollout strategies side by side.
Bare metal installs packages from one mirror, so it runs only against the central
registry.

    .venv/bin/python experiments/rollout/rollout.py [--sizes 100,300,1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import fleet_sim as fs

SCENARIO = Path(__file__).resolve().parents[1] / "rollout.toml"
HOSTS = "fleet.hosts.host.count"  #: key path of the fleet size
COMBOS = (("baremetal", "central"), ("vm", "central"), ("vm", "p2p"),
          ("container", "central"), ("container", "p2p"))
STRATEGIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("all-at-once", {}), ("rolling", {}),
    ("rolling", {"max_surge": "25%", "max_unavailable": 0}),
    ("batches", {"size": 50}), ("canary", {"fraction": 0.05}), ("blue-green", {}))
#: overrides → printed column
PARAMS = {HOSTS: "hosts", "hosting.mode": "mode", "rollout.distribution": "from",
          "rollout.changed": "changed", "rollout.strategy": "strategy"}
#: rollout_summary column → printed column
FIGURES = {"makespan_min": "makespan min", "min_serving_fraction": "min serving",
           "instance_median_s": "median instance s", "registry_gb": "registry GB",
           "peak_registry_mb_s": "peak registry MB/s", "new_failed": "failed",
           "outcome": "outcome"}


def point(n_hosts: int, mode: str, source: str = "central", changed: str = "whole-image",
          strategy: str = "rolling", params: Mapping[str, Any] | None = None
          ) -> dict[str, Any]:
    """The overrides of one rollout (``params``: the strategy's; None keeps the file's)."""
    over = {HOSTS: n_hosts, "hosting.mode": mode, "rollout.distribution": source,
            "rollout.changed": changed, "rollout.strategy": strategy}
    if params is not None:
        over["rollout.strategy_params"] = dict(params)
    return over


def summarize(points: Sequence[dict[str, Any]], seed: int | None = None,
              runs: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per point: its parameters and headline figures in readable units.
    ``runs`` memoizes each point's ``rollout_summary`` (points repeat across tables)."""
    runs = {} if runs is None else runs
    rows = []
    for over in points:
        key = json.dumps([over, seed], sort_keys=True)
        if key not in runs:
            runs[key] = fs.run(SCENARIO, seed=seed, set=over, progress=False).rollout_summary
        summary = runs[key].iloc[0]
        rows.append({**{label: over[path] for path, label in PARAMS.items()},
                     "makespan_min": summary["makespan_s"] / 60,
                     **{c: summary[c] for c in FIGURES if c in summary},
                     "registry_gb": summary["registry_mb"] / 1000})
    return pd.DataFrame(rows)[[*PARAMS.values(), *FIGURES]].rename(columns=FIGURES)


def run(sizes: Sequence[int] = (100, 300, 1000), seed: int | None = None
        ) -> dict[str, pd.DataFrame]:
    """The three tables (``scale``, ``layers``, ``strategies``); same seed ⇒ same tables.
    ``seed`` defaults to the scenario file's."""
    runs: dict[str, pd.DataFrame] = {}
    scale = summarize([point(n, mode, source) for n in sizes for mode, source in COMBOS],
                      seed, runs)
    layers = summarize([point(max(sizes), mode, source, changed)
                        for mode, source in COMBOS for changed in ("top-layer", "whole-image")],
                       seed, runs)
    mid = sorted(sizes)[len(sizes) // 2]
    strategies = summarize([point(mid, "container", strategy=name, params=params)
                            for name, params in STRATEGIES], seed, runs)
    strategies.insert(5, "params", [", ".join(f"{k}={v}" for k, v in p.items())
                                    for _, p in STRATEGIES])
    return {"scale": scale, "layers": layers, "strategies": strategies}


def main(argv: list[str] | None = None) -> dict[str, pd.DataFrame]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300,1000", help="fleet sizes, comma-separated")
    parser.add_argument("--seed", type=int, default=None, help="default: the scenario file's")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    started = time.perf_counter()
    tables = run(sizes, args.seed)
    options = {"index": False, "float_format": lambda x: f"{x:,.2f}"}
    print("Whole image changed: rolling update 25%/25%")
    print(tables["scale"].to_string(**options))
    print(f"\nOnly the top layer changed vs the whole image ({max(sizes)} hosts)")
    print(tables["layers"].to_string(**options))
    print(f"\nStrategies ({sorted(sizes)[len(sizes) // 2]} hosts, containers, central "
          "registry, whole image)")
    print(tables["strategies"].to_string(**options))
    print(f"\nwall time {time.perf_counter() - started:.1f} s")
    return tables


if __name__ == "__main__":
    main()
