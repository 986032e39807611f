"""Rollout: what happens to a service while v2 rolls out on the fleet that runs it?

How long does the rollout take under bare metal, VMs and containers, from a central
registry or peer to peer, and how much serving capacity is lost meanwhile? And what
does the service see: its p99 response time and its failed requests during the
rollout window, against the same length of time just before it?

The experiment is ``experiments/rollout.toml``: a request-serving app (``web``, one
replica per host) beside batch neighbours, rolled out at ``at_s`` by a
Kubernetes-style rolling update (maxSurge = maxUnavailable = 25 %) with the
published defaults of ``fleet_sim/hosting/defaults.py``. This script runs it over a
matrix of ``--set`` overrides of that file: fleet sizes × (mode, image source) with
the whole image changed; then, at the largest size, only the top layer vs the whole
image; then, at the middle size, the rollout strategies side by side. Bare metal
installs packages from one mirror, so it runs only against the central registry.

Failed requests are, until services with load balancing exist, the jobs in flight
on an instance when it is stopped or killed (each replica has its own request
stream: a retired replica's requests end with it, and the new instance's begin
when it runs). A host failure in the middle of a rollout is not part of the study
yet: the model has no scenario-level host failures.

    .venv/bin/python experiments/rollout/rollout.py [--sizes 50,100,200] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import fleet_sim as fs

SCENARIO = Path(__file__).resolve().parents[1] / "rollout.toml"
APP = "web"  #: the service rolled out
HOSTS = "fleet.hosts.host.count"  #: key path of the fleet size
#: key paths that scale with the fleet: one web and one batch replica per host
PER_HOST = (HOSTS, f"apps.{APP}.replicas", "apps.batch.replicas")
COMBOS = (("baremetal", "central"), ("vm", "central"), ("vm", "p2p"),
          ("container", "central"), ("container", "p2p"))
STRATEGIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("all-at-once", {}), ("rolling", {}),
    ("rolling", {"max_surge": "25%", "max_unavailable": 0}),
    ("batches", {"size": 50}), ("canary", {"fraction": 0.05}), ("blue-green", {}))
ROLLOUT = f"rollouts.{APP}"
#: overrides → printed column
PARAMS = {HOSTS: "hosts", "hosting.mode": "mode", f"{ROLLOUT}.distribution": "from",
          f"{ROLLOUT}.changed": "changed", f"{ROLLOUT}.strategy": "strategy"}
#: figure → printed column
FIGURES = {"makespan_min": "makespan min", "min_serving_fraction": "min serving",
           "p99_before_ms": "p99 before ms", "p99_during_ms": "p99 during ms",
           "failed_before": "failed before", "failed_during": "failed during",
           "registry_gb": "registry GB", "new_failed": "failed instances",
           "outcome": "outcome"}


def point(n_hosts: int, mode: str, source: str = "central", changed: str = "whole-image",
          strategy: str = "rolling", params: Mapping[str, Any] | None = None
          ) -> dict[str, Any]:
    """The overrides of one rollout (``params``: the strategy's; None keeps the file's)."""
    over: dict[str, Any] = {path: n_hosts for path in PER_HOST}
    over |= {"hosting.mode": mode, f"{ROLLOUT}.distribution": source,
             f"{ROLLOUT}.changed": changed, f"{ROLLOUT}.strategy": strategy}
    if params is not None:
        over[f"{ROLLOUT}.strategy_params"] = dict(params)
    batches = over.get(f"{ROLLOUT}.strategy_params", {}).get("size")
    if batches is not None:
        over[f"{ROLLOUT}.strategy_params"]["size"] = min(batches, n_hosts)
    return over


def service(res: fs.Results, at_s: float, makespan_s: float) -> dict[str, float]:
    """The service's p99 response time (ms) and failed requests during the rollout window
    [at_s, at_s + makespan) and during the window of the same length just before it."""
    jobs, events = res.jobs, res.events
    jobs = jobs[jobs["workload"].str.startswith(f"{APP}-") | (jobs["workload"] == APP)]
    lost = events[events["kind"].isin(("stop", "killed", "oom_kill"))
                  & events["entity"].str.startswith(APP)]
    out = {}
    for label, (t0, t1) in {"before": (at_s - makespan_s, at_s),
                            "during": (at_s, at_s + makespan_s)}.items():
        window = jobs[(jobs["arrival"] >= t0) & (jobs["arrival"] < t1)]
        response = window["response_time_s"].dropna()
        out[f"p99_{label}_ms"] = (float(np.quantile(response, 0.99)) * 1e3 if len(response)
                                  else float("nan"))
        counted = lost[(lost["t"] >= t0) & (lost["t"] < t1)]
        out[f"failed_{label}"] = float(counted["count"].fillna(0).sum())
    return out


def summarize(points: Sequence[dict[str, Any]], seed: int | None = None,
              runs: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per point: its parameters and headline figures in readable units.
    ``runs`` memoizes each point's figures (points repeat across tables)."""
    runs = {} if runs is None else runs
    rows = []
    for over in points:
        key = json.dumps([over, seed], sort_keys=True)
        if key not in runs:
            res = fs.run(SCENARIO, seed=seed, set=over, progress=False)
            summary = res.rollout_summary.iloc[0]
            runs[key] = {
                "makespan_min": summary["makespan_s"] / 60,
                **{c: summary[c] for c in ("min_serving_fraction", "new_failed", "outcome")},
                "registry_gb": summary["registry_mb"] / 1000,
                **service(res, summary["at_s"], summary["makespan_s"])}
        rows.append({**{label: over[path] for path, label in PARAMS.items()}, **runs[key]})
    return pd.DataFrame(rows)[[*PARAMS.values(), *FIGURES]].rename(columns=FIGURES)


def run(sizes: Sequence[int] = (50, 100, 200), seed: int | None = None
        ) -> dict[str, pd.DataFrame]:
    """The three tables (``scale``, ``layers``, ``strategies``); same seed ⇒ same tables.
    ``seed`` defaults to the scenario file's."""
    runs: dict[str, dict[str, Any]] = {}
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
    parser.add_argument("--sizes", default="50,100,200", help="fleet sizes, comma-separated")
    parser.add_argument("--seed", type=int, default=None, help="default: the scenario file's")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    started = time.perf_counter()
    tables = run(sizes, args.seed)
    options = {"index": False, "float_format": lambda x: f"{x:,.2f}"}
    print("Whole image changed: rolling update 25%/25%; the service before vs during it")
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
