"""Density: how many hosts, and at what monthly cost, does a catalog of apps need per hosting mode?

A seeded catalog of a few hundred apps of mixed sizes (60% small, 30% medium, 10%
large by CPU request and RAM), each built on one language runtime in one version
(python 3.8/3.10/3.12, java 11/17, node 18/20), some pinning openssl 1.1 or 3.0.
Each app's CPU is spiky: 30% of its request, plus spikes to its full request
every 15 min on average (1 min long on average).

Each (mode, placement policy) is sized to the smallest fleet of identical hosts
(32 cores, 128 GiB) on which every app fits (binary search over :func:`plan`;
apps placed largest first), then simulated for a warm-up plus ``hours`` to
measure CPU use. Modes:

- ``baremetal``: one shared OS per host; apps needing other versions of a
  dependency cannot share a host.
- ``vm``: one VM per app with ⌈request⌉ vCPUs and RAM + guest OS + hypervisor overhead.
- ``vm-overcommit``: the same at a vCPU overcommit ratio of 3 (defaults.VCPU_OVERCOMMIT_RATIO).
- ``container``: one container per app at its fractional request (+ shim RAM).

Printed per row: hosts needed, apps per host, CPU committed (requests or vCPUs /
physical cores), CPU used (time-average, measured), RAM reserved (including OS,
guest OS and hypervisor overheads), the apps' contention share (core-s denied by
neighbours / core-s they could have used: the price of packing) and monthly cost.

    python experiments/density/density.py --apps 300 --seed 0
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import pandas as pd
import simpy

from fleet_sim.errors import CapacityError
from fleet_sim.hosting import defaults
from fleet_sim.hosting.base import AppSpec, DemandSpec, HostSpec
from fleet_sim.hosting.deploy import deploy, plan
from fleet_sim.model.distributions import Exponential
from fleet_sim.numerics.timeweighted import integral
from fleet_sim.policies.registry import placement_policy
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.rng import Streams

HOST_CORES = 32.0
HOST_RAM_MIB = 131_072.0
#: variant → (mode, mode parameters)
VARIANTS: dict[str, tuple[str, dict]] = {
    "baremetal": ("baremetal", {}),
    "vm": ("vm", {}),
    "vm-overcommit": ("vm", {"cpu_ratio": defaults.VCPU_OVERCOMMIT_RATIO}),
    "container": ("container", {}),
}
POLICIES = ("first-fit", "best-fit", "worst-fit")
#: size class → (share, CPU requests (cores), RAM (MiB), threads)
SIZES = {
    "small": (0.6, (0.25, 0.5), (256.0, 512.0, 1024.0), 2),
    "medium": (0.3, (1.0, 2.0), (2048.0, 4096.0), 4),
    "large": (0.1, (4.0, 8.0), (8192.0, 16384.0), 8),
}
LANGUAGES = {"python": ("3.8", "3.10", "3.12"), "java": ("11", "17"), "node": ("18", "20")}


def catalog(n_apps: int, seed: int) -> list[AppSpec]:
    """``n_apps`` apps drawn from the stream ``catalog`` of ``Streams(seed)``."""
    rng = Streams(seed).get("catalog")
    classes = list(SIZES)
    shares = [SIZES[c][0] for c in classes]
    apps = []
    for i in range(n_apps):
        _, cpus, rams, threads = SIZES[classes[rng.choice(len(classes), p=shares)]]
        cpu = float(rng.choice(cpus))
        lang = list(LANGUAGES)[rng.choice(3, p=[0.6, 0.25, 0.15])]
        deps = {lang: str(rng.choice(LANGUAGES[lang]))}
        if rng.random() < 0.3:
            deps["openssl"] = str(rng.choice(["1.1", "3.0"]))
        spikes = {"baseline_cores": 0.3 * cpu, "rate_per_s": 1 / 900,
                  "duration_s": Exponential(60.0), "height_cores": 0.7 * cpu}
        apps.append(AppSpec(f"app{i:03d}", threads=threads, cpu_request_cores=cpu,
                            ram_mib=float(rng.choice(rams)), dependencies=deps,
                            workloads=(DemandSpec("cpu", "spiky", spikes),)))
    # largest first: the usual order for bin packing (first-fit decreasing)
    return sorted(apps, key=lambda a: (a.cpu_request_cores, a.ram_mib), reverse=True)


def hosts(n: int) -> list[HostSpec]:
    return [HostSpec(f"h{i:04d}", HOST_CORES, HOST_RAM_MIB) for i in range(n)]


def fits_on(n: int, mode: str, params: dict, apps: list[AppSpec], policy: str,
            seed: int) -> bool:
    """Whether ``policy`` places every app on ``n`` hosts."""
    try:
        plan(hosts(n), mode, apps, placement_policy(policy),
             Streams(seed).get("placement"), params)
    except CapacityError:
        return False
    return True


def hosts_needed(mode: str, params: dict, apps: list[AppSpec], policy: str, seed: int) -> int:
    """The smallest fleet on which ``policy`` places every app (doubling, then bisection;
    assumes that a fleet that fits stays fitting when it grows)."""
    ratio = params.get("cpu_ratio", 1.0)
    lo = max(1, math.ceil(sum(a.cpu_request_cores for a in apps) / (HOST_CORES * ratio)),
             math.ceil(sum(a.ram_mib for a in apps) / HOST_RAM_MIB))
    hi = lo
    while not fits_on(hi, mode, params, apps, policy, seed):
        if hi > 4 * len(apps):
            raise CapacityError(f"{mode}/{policy}: some app fits on no host at all")
        lo, hi = hi + 1, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if fits_on(mid, mode, params, apps, policy, seed):
            hi = mid
        else:
            lo = mid + 1
    return hi


def measure(mode: str, params: dict, apps: list[AppSpec], policy: str, n_hosts: int,
            warmup_s: float, horizon_s: float, seed: int) -> dict:
    """Deploy on ``n_hosts`` and simulate; return CPU and RAM figures."""
    env = simpy.Environment()
    rec = ChangePointRecorder(["workloads"])
    dep = deploy(env, hosts(n_hosts), mode, apps, placement_policy(policy), Streams(seed),
                 rec, params)
    used0: list[float] = []

    def snapshot():
        yield env.timeout(warmup_s)
        for h in dep.hosts:
            h.sync()
        used0.append(sum(h.cpu.used_core_s for h in dep.hosts))

    env.process(snapshot())
    t_end = warmup_s + horizon_s
    env.run(until=t_end)
    dep.finalize(t_end)
    used = sum(h.cpu.used_core_s for h in dep.hosts) - used0[0]
    w = pd.DataFrame(rec.data["workloads"])
    w = w[w["workload"].str.endswith(".cpu")]  # the apps' own demand, not OS background
    usable = denied = 0.0
    for _, g in w.groupby("workload"):
        usable += integral(g["t"], g["demand_cores"] - g["throttled_cores"], t_end, warmup_s)
        denied += integral(g["t"], g["contention_cores"], t_end, warmup_s)
    views = list(dep.fleet_view())
    capacity = HOST_CORES * n_hosts
    committed = sum(v.committed_cpu_cores + v.dedicated_cores for v in views)
    return {
        "cpu_committed": committed / capacity,
        "cpu_used": used / (capacity * horizon_s),
        "ram_reserved": sum(v.reserved_ram_mib for v in views) / (HOST_RAM_MIB * n_hosts),
        "contention_share": denied / usable,
    }


def run(n_apps: int = 300, seed: int = 0, hours: float = 2.0, warmup_s: float = 3600.0,
        variants: Sequence[str] | None = None, policies: Sequence[str] = POLICIES
        ) -> pd.DataFrame:
    """One row per (variant, policy); same seed ⇒ same table."""
    apps = catalog(n_apps, seed)
    rows = []
    for name in (list(VARIANTS) if variants is None else variants):
        mode, params = VARIANTS[name]
        for policy in policies:
            n = hosts_needed(mode, params, apps, policy, seed)
            figures = measure(mode, params, apps, policy, n, warmup_s, hours * 3600.0, seed)
            rows.append({"mode": name, "policy": policy, "hosts": n,
                         "apps_per_host": n_apps / n, **figures,
                         "monthly_cost_usd": n * defaults.HOST_MONTHLY_COST_USD})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--apps", type=int, default=300)
    ap.add_argument("--hours", type=float, default=2.0, help="measured time after warm-up")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    df = run(args.apps, args.seed, args.hours)
    apps = catalog(args.apps, args.seed)
    print(f"{args.apps} apps: {sum(a.cpu_request_cores for a in apps):g} cores requested, "
          f"{sum(a.ram_mib for a in apps) / 1024:.0f} GiB; hosts of {HOST_CORES:g} cores, "
          f"{HOST_RAM_MIB / 1024:.0f} GiB at ${defaults.HOST_MONTHLY_COST_USD:g}/month")
    with pd.option_context("display.width", 200):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return df


if __name__ == "__main__":
    main()
