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

``web`` is a service: one request stream (``rate_per_s``, its total, scaled with the
fleet) that the load balancer routes at random to the healthy replicas, so while a
replica is replaced or down its share moves to the others. Failed requests are the
requests (jobs of outcome ``failed``) that arrived in the window and were lost: in
flight on an instance the rollout retired or a failure killed, or arriving while no
replica was healthy.

Last, at the middle size, a host fails a few seconds into the rollout (and is
repaired ``repair_s`` later), added with ``--set failures.scheduled=[…]``: the host
of the replica the rollout replaces last, so it still serves v1 then. Per mode
the same figures beside the run without it, and how the failed host's replicas came
back — where they were rescheduled and how long until they ran again (image copy +
boot, pull + start, or reinstall).

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
from fleet_sim.scenarios.config import load_config

SCENARIO = Path(__file__).resolve().parents[1] / "rollout.toml"
APP = "web"  #: the service rolled out
HOSTS = "fleet.hosts.host.count"  #: key path of the fleet size
#: key paths that scale with the fleet: one web and one batch replica per host
PER_HOST = (HOSTS, f"apps.{APP}.replicas", "apps.batch.replicas")
RATE = f"apps.{APP}.workloads.requests.rate_per_s"  #: the service's total request rate
_FILE = load_config(SCENARIO)
#: requests/s per host at the file's size (the service's total scales with the fleet)
RATE_PER_HOST = (next(w for a in _FILE.apps if a.name == APP for w in a.workloads
                      if w.name == "requests").rate_per_s
                 / next(h for h in _FILE.fleet.hosts if h.type == "host").count)
AT_S = next(r for r in _FILE.rollouts if r.app == APP).at_s  #: when the rollout starts (s)
#: the host failure of the last table: the host of the replica the rollout replaces
#: last (still serving v1) fails ``after_s`` into the rollout, repaired ``repair_s`` later
FAILURE = {"after_s": 5.0, "repair_s": 900.0}
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
#: how the failed host's replicas came back → printed column
RECOVERY = {"killed": "killed", "rescheduled_on": "rescheduled on",
            "back_after_s": "back after s"}


def point(n_hosts: int, mode: str, source: str = "central", changed: str = "whole-image",
          strategy: str = "rolling", params: Mapping[str, Any] | None = None
          ) -> dict[str, Any]:
    """The overrides of one rollout (``params``: the strategy's; None keeps the file's)."""
    over: dict[str, Any] = {path: n_hosts for path in PER_HOST} | {RATE: n_hosts * RATE_PER_HOST}
    over |= {"hosting.mode": mode, f"{ROLLOUT}.distribution": source,
             f"{ROLLOUT}.changed": changed, f"{ROLLOUT}.strategy": strategy}
    if params is not None:
        over[f"{ROLLOUT}.strategy_params"] = dict(params)
    batches = over.get(f"{ROLLOUT}.strategy_params", {}).get("size")
    if batches is not None:
        over[f"{ROLLOUT}.strategy_params"]["size"] = min(batches, n_hosts)
    return over


def failing(over: Mapping[str, Any], host: str) -> dict[str, Any]:
    """``over`` with ``host`` failing ``FAILURE["after_s"]`` into the rollout."""
    return {**over, "failures.scheduled": [{
        "host": host, "at_s": AT_S + FAILURE["after_s"], "repair_s": FAILURE["repair_s"]}]}


def last_replaced(res: fs.Results) -> str:
    """The host of the v1 instance the rollout stopped last."""
    old = res.timeline[res.timeline["version"] == "v1"]
    return str(old.sort_values("stopped", kind="stable")["host"].iloc[-1])


def service(res: fs.Results, at_s: float, makespan_s: float) -> dict[str, float]:
    """The service's p99 response time (ms) and failed requests (by arrival) during the
    rollout window [at_s, at_s + makespan) and during the window of the same length just
    before it (NaN for a rollout that did not finish)."""
    if np.isnan(makespan_s):
        return dict.fromkeys(("p99_before_ms", "failed_before", "p99_during_ms",
                              "failed_during"), float("nan"))
    jobs = res.jobs[res.jobs["workload"] == f"{APP}.requests"]
    out = {}
    for label, (t0, t1) in {"before": (at_s - makespan_s, at_s),
                            "during": (at_s, at_s + makespan_s)}.items():
        window = jobs[(jobs["arrival"] >= t0) & (jobs["arrival"] < t1)]
        response = window.loc[window["outcome"] == "finished", "response_time_s"]
        out[f"p99_{label}_ms"] = (float(np.quantile(response, 0.99)) * 1e3 if len(response)
                                  else float("nan"))
        out[f"failed_{label}"] = int((window["outcome"] == "failed").sum())
    return out


def recovery(res: fs.Results) -> dict[str, Any]:
    """How the service's replicas on a failed host came back: which were killed, the
    hosts they were rescheduled on, and the longest time (s) from the failure until
    each ran again (NaN if one never did; empty without a failure)."""
    events = res.events
    failure = events[events["kind"] == "host_failure"]
    if failure.empty:
        return {"killed": "", "rescheduled_on": "", "back_after_s": float("nan")}
    t = float(failure["t"].iloc[0])
    killed = [name for name in failure["detail"].iloc[0].split(", ")
              if name.startswith(f"{APP}-")]
    later = events[events["t"] >= t]
    moved, back = [], []
    for name in killed:
        mine = later[later["entity"] == name]
        moved += mine.loc[mine["kind"] == "rescheduled", "host"].tolist()
        starts = mine.loc[mine["kind"] == "start", "t"]
        back.append(float(starts.iloc[0]) - t if len(starts) else float("nan"))
    return {"killed": ", ".join(killed), "rescheduled_on": ", ".join(moved),
            "back_after_s": max(back, default=float("nan"))}


def measure(over: dict[str, Any], seed: int | None, runs: dict[str, dict[str, Any]]
            ) -> dict[str, Any]:
    """The figures of one point, run once per (point, seed) and kept in ``runs``."""
    key = json.dumps([over, seed], sort_keys=True)
    if key not in runs:
        res = fs.run(SCENARIO, seed=seed, set=over, progress=False)
        summary = res.rollout_summary.iloc[0]
        runs[key] = {
            "makespan_min": summary["makespan_s"] / 60,
            **{c: summary[c] for c in ("min_serving_fraction", "new_failed", "outcome")},
            "registry_gb": summary["registry_mb"] / 1000,
            **service(res, summary["at_s"], summary["makespan_s"]), **recovery(res),
            "last_replaced": last_replaced(res)}
    return runs[key]


def summarize(points: Sequence[dict[str, Any]], seed: int | None = None,
              runs: dict[str, dict[str, Any]] | None = None,
              figures: Mapping[str, str] = FIGURES) -> pd.DataFrame:
    """One row per point: its parameters and ``figures`` in readable units.
    ``runs`` memoizes each point's figures (points repeat across tables)."""
    runs = {} if runs is None else runs
    rows = [{**{label: over[path] for path, label in PARAMS.items()}, **measure(over, seed, runs)}
            for over in points]
    return pd.DataFrame(rows)[[*PARAMS.values(), *figures]].rename(columns=figures)


def run(sizes: Sequence[int] = (50, 100, 200), seed: int | None = None
        ) -> dict[str, pd.DataFrame]:
    """The four tables (``scale``, ``layers``, ``strategies``, ``failure``); same seed ⇒
    same tables. ``seed`` defaults to the scenario file's."""
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
    pairs = [(over, failing(over, measure(over, seed, runs)["last_replaced"]))
             for over in (point(mid, mode) for mode in dict.fromkeys(m for m, _ in COMBOS))]
    points = [over for pair in pairs for over in pair]
    failure = summarize(points, seed, runs, FIGURES | RECOVERY)
    failure.insert(5, "host failure", [
        " ".join(f"{f['host']} at {f['at_s']:g} s" for f in over.get("failures.scheduled", []))
        or "none" for over in points])
    return {"scale": scale, "layers": layers, "strategies": strategies, "failure": failure}


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
    mid = sorted(sizes)[len(sizes) // 2]
    print(f"\nStrategies ({mid} hosts, containers, central "
          "registry, whole image)")
    print(tables["strategies"].to_string(**options))
    print(f"\nThe host of the replica replaced last fails {FAILURE['after_s']:g} s into "
          "the rollout, repaired "
          f"{FAILURE['repair_s']:g} s later ({mid} hosts, central registry, whole image)")
    print(tables["failure"].to_string(**options))
    print(f"\nwall time {time.perf_counter() - started:.1f} s")
    return tables


if __name__ == "__main__":
    main()
