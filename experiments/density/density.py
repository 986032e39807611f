"""Density: how many hosts, and at what monthly cost, does a catalog of apps need per hosting mode?

The experiment is ``experiments/density.toml``: its catalog of apps (sizes, CPU
spikes, the library versions small apps pin), its hosts (32 cores, 128 GiB) and
its statistics window. This script scales the catalog (``--scale``: every app's
replicas × k, so the default 4 gives 336 apps) and, for each variant and
placement policy — each a ``--set`` override of the file — finds the smallest
fleet of those hosts on which every app replica is placed (a fleet that is too
small fails placement at the start of the run: doubling, then bisection over
``fleet.hosts.std.count``; apps are placed in file order, largest first), then
simulates that fleet over the file's window to measure CPU use. Variants:

- ``baremetal``: one shared OS per host; apps needing other versions of a
  dependency cannot share a host.
- ``vm``: one VM per app with ⌈request⌉ vCPUs and RAM + guest OS + hypervisor overhead.
- ``vm-overcommit``: the same at a vCPU overcommit ratio of 3.
- ``container``: one container per app at its fractional request (+ shim RAM).

Printed per row: hosts needed, apps per host, CPU committed (requests or vCPUs
placed / physical cores, from the ``admit`` events), CPU used (time-average over
the window, ``summary``), RAM reserved (instances' reservations from the
``admit`` events plus each host's OS), the apps' contention share (core-s denied
by neighbours / core-s they could have used: the price of packing;
``workload_summary``) and monthly cost (``fleet``).

    python experiments/density/density.py --scale 4 --seed 0
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import fleet_sim as fs
from fleet_sim.errors import CapacityError, ConfigError

SCENARIO = Path(__file__).resolve().parents[1] / "density.toml"
HOSTS = "fleet.hosts.std.count"  #: key path of the fleet size
#: variant → overrides of the scenario file
VARIANTS: dict[str, dict[str, Any]] = {
    "baremetal": {"hosting.mode": "baremetal"},
    "vm": {"hosting.mode": "vm"},
    "vm-overcommit": {"hosting.mode": "vm", "hosting.vm.cpu_ratio": 3.0},
    "container": {"hosting.mode": "container"},
}
POLICIES = ("first-fit", "best-fit", "worst-fit")
#: a placement-only run: it ends right after every app is admitted
PLACEMENT_ONLY = {"run.duration_s": 1.0, "run.warmup_s": 0.0, "run.record": []}


def scenario_file() -> dict[str, Any]:
    """The scenario file as written (no defaults filled in)."""
    with open(SCENARIO, "rb") as f:
        return tomllib.load(f)


def scaled(scale: int) -> dict[str, Any]:
    """Overrides multiplying the replicas of every app of the scenario file by ``scale``."""
    return {f"apps.{a['name']}.replicas": a.get("replicas", 1) * scale
            for a in scenario_file()["apps"]}


def catalog(scale: int = 1, seed: int | None = None) -> dict[str, Any]:
    """The resolved config of the scaled catalog (hosts, apps, defaults filled in; its
    ``run`` table is that of a placement-only run)."""
    return fs.run(SCENARIO, seed=seed, set={**scaled(scale), **PLACEMENT_ONLY},
                  progress=False, reraise=False).config


def fits(n_hosts: int, overrides: dict[str, Any], seed: int | None = None) -> bool:
    """Whether every app is placed on ``n_hosts`` hosts (validation places them all)."""
    try:
        fs.validate(SCENARIO, seed=seed, set={**overrides, **PLACEMENT_ONLY, HOSTS: n_hosts})
    except ConfigError:
        return False
    return True


def hosts_needed(overrides: dict[str, Any], guess: int, seed: int | None = None) -> int:
    """The smallest fleet on which every app is placed, searched from ``guess`` hosts
    (doubling, then bisection; assumes a fleet that fits stays fitting when it grows)."""
    lo, hi = 0, max(1, guess)  # lo never fits (0 hosts), hi fits once found
    while not fits(hi, overrides, seed):
        if hi > 64 * max(1, guess):
            raise CapacityError(f"{overrides}: no fleet up to {hi} hosts fits every app")
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid, overrides, seed):
            hi = mid
        else:
            lo = mid
    return hi


def measure(res: fs.Results) -> dict[str, float]:
    """CPU and RAM figures of one simulated fleet, from its result tables."""
    config, fleet = res.config, res.fleet
    admits = res.events[res.events["kind"] == "admit"]
    on_hosts = admits[admits["kernel"] == admits["host"]]  # not a VM's guest processes
    os_ram_mib = config["hosting"][config["hosting"]["mode"]]["host_os_ram_mib"]
    labels = {w.get("name") or w["kind"] for app in config["apps"] for w in app["workloads"]}
    ws = res.workload_summary
    apps = ws[ws["workload"].str.rsplit(".", n=1).str[1].isin(labels)]  # not guest OSes
    usable = (apps["demand_core_s"] - apps["throttled_core_s"]).sum()
    return {
        "cpu_committed": on_hosts["cpu_cores"].sum() / fleet["cores"].sum(),
        "cpu_used": float(res.summary["cpu_utilization_mean"].iloc[0]),
        "ram_reserved": (on_hosts["ram_mib"].sum() + os_ram_mib * len(fleet))
        / fleet["ram_mib"].sum(),
        "contention_share": apps["contention_core_s"].sum() / usable if usable > 0 else 0.0,
        "monthly_cost_usd": float(fleet["monthly_cost_usd"].sum()),
    }


def run(scale: int = 4, seed: int | None = None, hours: float | None = None,
        variants: Sequence[str] | None = None, policies: Sequence[str] = POLICIES
        ) -> pd.DataFrame:
    """One row per (variant, policy); same seed ⇒ same table. ``seed`` defaults to the
    scenario file's; ``hours``: measured time after the file's warm-up (default: the
    file's window)."""
    base = scaled(scale)
    config = catalog(scale, seed)
    window = {}
    if hours is not None:
        window = {"run.duration_s": scenario_file()["run"]["warmup_s"] + hours * 3600.0}
    n_apps = sum(app["replicas"] for app in config["apps"])
    guess = sum(group["count"] for group in config["fleet"]["hosts"]) * scale
    rows = []
    for name in (list(VARIANTS) if variants is None else variants):
        for policy in policies:
            over = {**base, **VARIANTS[name], "placement.policy": policy}
            n = hosts_needed(over, guess, seed)
            res = fs.run(SCENARIO, seed=seed, set={**over, **window, HOSTS: n},
                         progress=False)
            figures = measure(res)
            cost = figures.pop("monthly_cost_usd")
            rows.append({"mode": name, "policy": policy, "hosts": n,
                         "apps_per_host": n_apps / n, **figures, "monthly_cost_usd": cost})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=4, help="replicas of every app × this")
    ap.add_argument("--hours", type=float, default=None,
                    help="measured time after the warm-up (default: the scenario file's)")
    ap.add_argument("--seed", type=int, default=None, help="default: the scenario file's")
    args = ap.parse_args(argv)
    df = run(args.scale, args.seed, args.hours)
    config = catalog(args.scale, args.seed)
    apps, host = config["apps"], config["fleet"]["hosts"][0]
    print(f"{sum(a['replicas'] for a in apps)} apps: "
          f"{sum(a['replicas'] * a['cpu_request_cores'] for a in apps):g} cores requested, "
          f"{sum(a['replicas'] * a['ram_mib'] for a in apps) / 1024:.0f} GiB; hosts of "
          f"{host['cores']:g} cores, {host['ram_mib'] / 1024:.0f} GiB at "
          f"${host['monthly_cost_usd']:g}/month")
    with pd.option_context("display.width", 200):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return df


if __name__ == "__main__":
    main()
