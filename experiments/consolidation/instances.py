"""Consolidating a fleet's own VMs and containers: how much energy, at what latency?

The PlanetLab study (``consolidation.py``) moves guests that are only CPU traces.
Here the guests are the fleet's own instances, serving requests: each app runs one
guest (a VM of 2 vCPUs and 1 GiB, or a container with the same limits) whose
background CPU replays a PlanetLab trace of 2011-03-03 (its CPU % × 2 cores, a
sample per 300 s) and which serves Poisson requests (``--rate`` per s, exponential
work of 50 ms on one core) that queue for its CPU. Hosts: 8 cores, 32 GiB, 100 W idle
to 400 W busy, 10 GbE, worst-fit placement at the start (spread out, as a scheduler
that keeps headroom places them); CPU requests overcommitted 8:1, as consolidation
needs. Every 300 s a policy of
``fleet_sim.policies.consolidation`` (``--policies``, ``none``: never) plans moves
and the :class:`~fleet_sim.hosting.consolidator.Consolidator` carries them out on the
instances themselves: a VM live-migrates by pre-copy over the network (10 MB/s
dirtied, 10 % of its vCPUs burnt on the source, a stop-and-copy pause), a container
stops (its requests in flight fail), pulls what the target's layer cache lacks of its
image from the registry (200 MB of shared base layers, 30 MB of its own, over the
registry's and the hosts' 10 GbE) and starts (the default lognormal time, about 1 s);
VMs copy their 2 GB image from the registry before their first boot. Empty hosts
switch off (0 W). Bare-metal apps never move.

Printed per mode and policy: energy (kWh), moves, mean hosts on, requests served,
lost (failed in a stop), mean and p99 response time (s), over ``--hours`` after the
first round; and a figure of energy against p99.

    .venv/bin/python experiments/consolidation/instances.py [--hosts 30] [--apps 60]
        [--hours 6] [--rate 0.5] [--policies none,thr-mmt,lr-mmt]
        [--modes vm,container,baremetal] [--figure consolidation_instances.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import simpy

from fleet_sim.hosting import defaults
from fleet_sim.hosting.baremetal import BareMetalParams
from fleet_sim.hosting.containers import ContainerParams
from fleet_sim.hosting.deploy import deploy
from fleet_sim.hosting.hypervisor import VmParams
from fleet_sim.hosting.livemigration import PRECOPY
from fleet_sim.hosting.specs import AppSpec, DemandSpec, JobsSpec
from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import VMImage
from fleet_sim.images.network import Network
from fleet_sim.images.registry import Registry
from fleet_sim.images.supply import FIRST_VERSION, ImageSupply, container_image
from fleet_sim.model.distributions import Deterministic, Exponential
from fleet_sim.model.host import Host
from fleet_sim.numerics.power import LinearPower
from fleet_sim.policies.placement import WorstFit
from fleet_sim.policies.registry import consolidation_policy
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.results.tables import build_tables
from fleet_sim.rng import Streams
from fleet_sim.scenarios.fleet_consolidation import consolidate
from fleet_sim.scenarios.traces import planetlab_day

DAY = "20110303"
HOST_CORES, HOST_RAM_MIB, NIC_MB_S = 8, 32_768.0, 1250.0
IDLE_W, PEAK_W = 100.0, 400.0
GUEST_VCPUS, GUEST_RAM_MIB = 2, 1024.0
REQUEST_CORE_S = 0.05
INTERVAL_S = 300.0
MODES = ("vm", "container", "baremetal")
FIGURE = Path("consolidation_instances.png")
#: bare-metal apps are installed at once (they never move; VMs boot and containers
#: start as by default, at the start and after each move)
AT_ONCE = Deterministic(0.0)


def apps(n: int, rate_per_s: float, supply: ImageSupply | None = None,
         mode: str = "vm") -> list[AppSpec]:
    """``n`` apps, the i-th replaying the i-th PlanetLab trace of :data:`DAY` and
    serving Poisson requests; with ``supply``, each gets its ``mode``'s image there (a
    VM image, or container layers: the shared base and its own)."""
    traces = planetlab_day(DAY).utilization()[:n]
    return [AppSpec(f"app{i:03d}", image=_image(f"app{i:03d}", supply, mode),
                    threads=GUEST_VCPUS, cpu_request_cores=GUEST_VCPUS,
                    ram_mib=GUEST_RAM_MIB, vcpus=GUEST_VCPUS, cpu_limit_cores=GUEST_VCPUS,
                    workloads=(DemandSpec("background", "replay",
                                          {"series": tuple(trace), "interval_s": 300.0,
                                           "cores": float(GUEST_VCPUS)}),
                               JobsSpec("requests", rate_per_s,
                                        Exponential(REQUEST_CORE_S))))
            for i, trace in enumerate(traces)]


def _image(app: str, supply: ImageSupply | None, mode: str) -> str:
    if supply is None:
        return ""
    if mode == "vm":
        return supply.add(VMImage(app, FIRST_VERSION, defaults.VM_IMAGE_MB))
    return supply.add(container_image(app, FIRST_VERSION, (defaults.CONTAINER_BASE_LAYER_MB,),
                                      defaults.CONTAINER_APP_LAYER_MB))


def run(mode: str, policy: str, hosts: int, n_apps: int, hours: float, rate_per_s: float,
        seed: int = 0) -> dict[str, float | str]:
    """One run: the figures of ``policy`` (``none``: no consolidation) under ``mode``."""
    env = simpy.Environment()
    recorder = ChangePointRecorder(["hosts", "jobs", "events"])
    streams = Streams(seed)
    network = Network(env, recorder)
    machines = []
    for k in range(hosts):
        machines.append(Host(env, f"h{k:03d}", HOST_CORES, HOST_RAM_MIB, recorder=recorder,
                             power=LinearPower(IDLE_W, PEAK_W)))
        network.attach(machines[-1].name, NIC_MB_S, NIC_MB_S)
    supply = None
    if mode != "baremetal":  # VMs copy their image before booting, containers pull layers
        network.attach("registry", defaults.REGISTRY_UPLINK_MB_S,
                       defaults.REGISTRY_UPLINK_MB_S)
        caches = {h.name: LayerCache(defaults.LAYER_CACHE_MB) for h in machines}
        supply = ImageSupply(env, Registry(
            env, network, caches, node="registry",
            max_concurrent_downloads=defaults.MAX_CONCURRENT_DOWNLOADS))
    params = {"vm": VmParams(cpu_ratio=8.0),
              "container": ContainerParams(cpu_ratio=8.0),
              "baremetal": BareMetalParams(cpu_ratio=8.0, install_s=AT_ONCE,
                                           install_step_failure_p=0.0)}[mode]
    dep = deploy(env, machines, mode, apps(n_apps, rate_per_s, supply, mode), WorstFit(),
                 streams, recorder, params, fetch=None if supply is None else supply.fetch)
    cons = None
    if policy != "none" and mode != "baremetal":
        cons, _rounds = consolidate(dep, network, consolidation_policy(policy),
                                    streams.get("consolidation"), INTERVAL_S,
                                    precopy=PRECOPY)
    end = INTERVAL_S + hours * 3600.0
    env.run(until=end)
    dep.finalize(end)
    inventory = pd.DataFrame({"host": [h.name for h in machines], "type": "std",
                              "cores": float(HOST_CORES), "speed": 1.0,
                              "ram_mib": HOST_RAM_MIB, "monthly_cost_usd": 0.0})
    out = build_tables(recorder.data, ["hosts", "jobs", "events"], inventory, end,
                       INTERVAL_S, {h.name: h.power for h in machines})
    summary = out["summary"].iloc[0]
    jobs = out["jobs"]
    window = jobs[jobs["arrival"] >= INTERVAL_S]
    return {"mode": mode, "policy": policy, "energy_kwh": float(summary["energy_kwh"]),
            "moves": 0 if cons is None else cons.moves - cons.refused,
            "refused": 0 if cons is None else cons.refused,
            "hosts_on": float(summary["hosts_on_mean"]),
            "served": int((window["outcome"] == "finished").sum()),
            "lost": int((window["outcome"] == "failed").sum()),
            "response_mean_s": float(window["response_time_s"].mean()),
            "response_p99_s": float(window["response_time_s"].quantile(0.99))}


def figure(table: pd.DataFrame, path: Path) -> Path:
    """Energy against request p99, one point per mode and policy."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    markers = {"none": "o", "thr-mmt": "s", "lr-mmt": "^"}
    for k, mode in enumerate(table["mode"].unique()):
        rows = table[table["mode"] == mode]
        for _, row in rows.iterrows():
            ax.scatter(row["response_p99_s"] * 1000, row["energy_kwh"], color=f"C{k}",
                       marker=markers.get(row["policy"], "D"), s=60)
        ax.plot(rows["response_p99_s"] * 1000, rows["energy_kwh"], color=f"C{k}", alpha=0.4,
                label=mode)
    for policy, marker in markers.items():
        if policy in set(table["policy"]):
            ax.scatter([], [], color="grey", marker=marker, label=policy)
    ax.set_xlabel("request response time, p99 (ms)")
    ax.set_ylabel("energy (kWh)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Consolidating the fleet's own instances: energy vs latency")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--apps", type=int, default=60)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--rate", type=float, default=0.5, help="requests per s per app")
    parser.add_argument("--policies", default="none,thr-mmt,lr-mmt")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path, default=FIGURE)
    args = parser.parse_args(argv)
    rows = []
    for mode in args.modes.split(","):
        for policy in args.policies.split(","):
            if mode == "baremetal" and policy != "none":
                continue  # bare-metal apps never move
            rows.append(run(mode, policy, args.hosts, args.apps, args.hours, args.rate,
                            args.seed))
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1),
                  flush=True)
    table = pd.DataFrame(rows)
    print(f"\n{table.to_string(index=False)}")
    print(f"figure: {figure(table, args.figure)}")
    return table


if __name__ == "__main__":
    main()
