"""Consolidating a fleet's own instances: the policies' plan carried out by moving the
deployment's VMs (live migration) or containers (stop, start), hosts switched off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import NOW, events

from fleet_sim.hosting.consolidation import PowerStates
from fleet_sim.hosting.consolidator import INSTANT_ON
from fleet_sim.hosting.containers import ContainerParams
from fleet_sim.hosting.deploy import deploy
from fleet_sim.hosting.hypervisor import VmParams
from fleet_sim.hosting.livemigration import PrecopyParams
from fleet_sim.hosting.specs import AppSpec, DemandSpec
from fleet_sim.images.network import Network
from fleet_sim.model.host import Host
from fleet_sim.numerics.power import LinearPower
from fleet_sim.policies.placement import FirstFit
from fleet_sim.policies.registry import consolidation_policy
from fleet_sim.results.tables import build_tables
from fleet_sim.scenarios.fleet_consolidation import consolidate

MB_PER_MIB = 2**20 / 1e6
#: one pre-copy round: nothing is dirtied while the RAM is copied, so no downtime
ONE_ROUND = PrecopyParams(dirty_mb_s=0.0, stop_mb=0.0)
#: vCPUs overcommitted 2:1, so the kernel admits what the policy's demand test accepts
VM = VmParams(cpu_ratio=2.0, boot_s=NOW, virt_overhead=0.0, guest_os_cores=0.0,
              guest_os_ram_mib=0.0, vm_ram_overhead_mib=0.0, host_os_ram_mib=0.0)
IDLE_W, PEAK_W = 100.0, 200.0


def app(name, series, ram_mib, interval_s=450.0):
    """A one-vCPU guest whose demand replays ``series`` (cores), a value per ``interval_s``."""
    return AppSpec(name, threads=1, cpu_request_cores=1.0, ram_mib=ram_mib, vcpus=1,
                   workloads=(DemandSpec("cpu", "replay", {"series": tuple(series),
                                                           "interval_s": interval_s,
                                                           "cores": 1.0}),))


class Where:
    """Placement by hand: app -> host (others first-fit)."""

    def __init__(self, where):
        self.where = where

    def place(self, request, fleet, rng):
        return self.where.get(request.name.removesuffix("-vm")) or FirstFit().place(
            request, fleet, rng)


def fleet(env, recorder, streams, apps, mode="vm", hosts=2, cores=2.0, params=VM,
          policy="thr-mmt", threshold=0.8, power=INSTANT_ON, precopy=ONE_ROUND,
          where=None):
    """``hosts`` hosts of ``cores`` (100 W idle, 200 W busy) on a network of 100 MB/s
    NICs, ``apps`` placed first-fit (or as ``where`` says), and a consolidator every
    300 s."""
    network = Network(env, recorder)
    machines = []
    for i in range(hosts):
        machines.append(Host(env, f"h{i}", cores=cores, ram_mib=4096.0, recorder=recorder,
                             power=LinearPower(IDLE_W, PEAK_W)))
        network.attach(f"h{i}", 100.0, 100.0)
    dep = deploy(env, machines, mode, apps, Where(where or {}), streams, recorder, params)
    cons, _rounds = consolidate(dep, network, consolidation_policy(policy, threshold),
                                streams.get("consolidation"), 300.0, power, precopy)
    return dep, cons


def tables(recorder, dep, until):
    dep.finalize(until)
    hosts = [s.host for s in dep.sites]
    inventory = pd.DataFrame({"host": [h.name for h in hosts], "type": "std",
                              "cores": [h.cores for h in hosts], "speed": 1.0,
                              "ram_mib": [h.ram_mib for h in hosts], "monthly_cost_usd": 0.0})
    return build_tables(recorder.data, ["hosts", "events"], inventory, until,
                        power={h.name: h.power for h in hosts})


def test_hand_case_two_hosts_three_vms(env, streams, recorder):
    # h0 holds a (0.9 cores, 500 MiB) and b (0.8, then 0.3 from 450 s; 1000 MiB), h1 c (0.1).
    # 300 s: h0 at 0.85 > 0.8 is overloaded; MMT picks a (the least RAM); power-aware
    #   best fit puts it on h1 (the only other host). 500 MiB over half of h0's 100 MB/s
    #   NIC: 524.288 MB / 50 MB/s = 10.48576 s, so it lands at 310.48576 s.
    # 600 s: h0 at 0.15 is the least utilized: b fits on h1 (0.65 <= 0.8) and goes,
    #   1048.576 MB / 50 = 20.97152 s; h0 is empty at 620.97152 s and is switched off.
    # 900 s on: h1 (0.65) could only empty onto the idle h0, which is excluded.
    apps = [app("a", [0.9], 500.0), app("b", [0.8, 0.3], 1000.0), app("c", [0.1], 300.0)]
    dep, cons = fleet(env, recorder, streams, apps, where={"c": "h1"})
    assert dep.placement == {"a": "h0", "b": "h0", "c": "h1"}
    env.run(until=1200.0)
    moved = [(t, e) for t, k, e in events(recorder) if k == "migration"]
    assert moved == [(pytest.approx(310.48576, abs=1e-9), "a-vm"),
                     (pytest.approx(620.97152, abs=1e-9), "b-vm")]
    assert [(t, e) for t, k, e in events(recorder) if k == "host_off"] == [
        (pytest.approx(620.97152, abs=1e-9), "h0")]
    assert dep.placement == {"a": "h1", "b": "h1", "c": "h1"}
    assert dep.sites[0].host.power_state == "off" and cons.shutdowns == 1
    # placement (failure recovery, rollouts) does not see a host that is off
    assert not dep.sites[0].kernel.view().up
    assert dep.place(app("d", [0.1], 300.0), FirstFit(), streams.get("t")).host.name == "h1"
    assert [len(p.migrations) for p in cons.decide.plans] == [1, 1, 0]  # rounds at 300, 600, 900 s
    assert cons.decide.plans[0].overloaded == ("h0",) and cons.decide.plans[1].emptied == ("h0",)
    out = tables(recorder, dep, 1200.0)
    # h0: 1.7 cores until 300 s, + the migration's 0.1 core (10 % of a's vCPU) until
    # 310.48576 s, 0.8 until 450 s, 0.3 until 600 s, + 0.1 for b's migration, then off
    t1, t2 = 310.48576, 620.97152
    h0_j = (185 * 300 + 190 * (t1 - 300) + 140 * (450 - t1) + 115 * 150 + 120 * (t2 - 600))
    # h1: c alone until a lands, then a + c (0.5), then a + b + c (0.65)
    h1_j = 105 * t1 + 150 * (t2 - t1) + 165 * (1200 - t2)
    energy = out["summary"]["energy_kwh"].iloc[0]
    assert energy == pytest.approx((h0_j + h1_j) / 3.6e6, rel=1e-12)
    # h1 on all along, h0 until it is switched off: hosts on over the 1200 s window
    assert out["summary"]["hosts_on_mean"].iloc[0] == pytest.approx((1200 + t2) / 1200,
                                                                    rel=1e-12)
    hosts = out["hosts"]
    off = hosts[(hosts["host"] == "h0") & (hosts["t"] >= t2)]
    assert (off["power_w"] == 0.0).all() and (off["cpu_used_cores"] == 0.0).all()


def test_a_host_switched_on_for_a_move_takes_its_time_and_power(env, streams, recorder):
    # three hosts; h2 starts empty and is switched off at t = 0. At 300 s h0 (a: 0.9,
    # b: 0.9) is overloaded; a would overload h1 (c: 0.8; 0.85 > 0.8), so it goes to h2:
    # switched on (60 s at 150 W), then migrated from 360 s, landing at 370.48576 s.
    apps = [app("a", [0.9], 500.0), app("b", [0.9], 1000.0), app("c", [0.8], 300.0)]
    power = PowerStates(switch_on_s=60.0, switch_on_w=150.0)
    dep, _ = fleet(env, recorder, streams, apps, hosts=3, power=power,
                      where={"c": "h1"})
    assert dep.placement == {"a": "h0", "b": "h0", "c": "h1"}
    env.run(until=600.0)
    kinds = [(k, e) for _t, k, e in events(recorder) if k in ("host_on", "host_off",
                                                              "migration")]
    assert kinds == [("host_off", "h2"), ("host_on", "h2"), ("migration", "a-vm")]
    t_mig = next(t for t, k, _e in events(recorder) if k == "migration")
    assert t_mig == pytest.approx(370.48576, abs=1e-9)
    out = tables(recorder, dep, 600.0)
    h2 = out["hosts"][out["hosts"]["host"] == "h2"]
    # 0 W until 300 s, 150 W while switching on, idle 100 W until a lands, then 145 W
    w = h2.groupby("t")["power_w"].last()
    assert list(w.index) == [0.0, 300.0, 360.0, pytest.approx(370.48576, abs=1e-9)]
    assert list(w) == [0.0, 150.0, IDLE_W, IDLE_W + 0.45 * (PEAK_W - IDLE_W)]
    # h0 and h1 on throughout; h2 off until 300 s, then switching on (drawing power: on)
    assert out["summary"]["hosts_on_mean"].iloc[0] == pytest.approx(2 + 300 / 600, rel=1e-12)


def _events(recorder):
    ev = recorder.data["events"]
    return list(zip(ev["t"], ev["kind"], ev["entity"], ev["detail"], strict=True))


def _held(dep):
    """app -> the hosts whose kernel holds its VM (or its stand-in on the way)."""
    out = {a: [] for a in dep.instances}
    for s in dep.sites:
        for name in s.kernel.instances:
            a = name.removesuffix("-vm")
            if a in out:
                out[a].append(s.host.name)
    return out


@pytest.mark.parametrize("policy", ["thr-mmt", "lr-mc", "mad-rs"])
def test_every_vm_is_on_one_host_or_migrating_at_all_times(env, streams, recorder, policy):
    rng = np.random.default_rng(7)
    apps = [app(f"g{i}", rng.uniform(0.0, 1.0, 40).round(2), float(rng.choice([300, 900])),
                interval_s=300.0) for i in range(10)]
    dep, cons = fleet(env, recorder, streams, apps, hosts=6, policy=policy,
                      threshold=None, precopy=PrecopyParams())
    bad = []

    def watch():
        while True:
            yield env.timeout(1.0)
            for a, hosts in _held(dep).items():
                vm = dep.vms[a]
                ok = (hosts == [vm.host.name] and not vm.migrating) or (
                    vm.migrating and len(hosts) == 2 and vm.host.name in hosts)
                if not ok or (not vm.migrating and dep.placement[a] != vm.host.name):
                    bad.append((env.now, a, hosts, vm.migrating))
    env.process(watch())
    env.run(until=12_000.0)
    assert bad == []
    # every planned move landed, or was refused by the target's kernel (its vCPU
    # commitment: 2 cores × 2), or is still under way
    refusals = [d for t, k, e, d in _events(recorder) if k == "move_refused"]
    assert cons.moves > 0 and len(refusals) == cons.refused
    assert all("overcommit ratio 2" in d for d in refusals)
    landed = [e for _t, k, e, _d in _events(recorder) if k == "migration"]
    assert len(landed) == cons.moves - cons.refused - sum(v.migrating for v in dep.vms.values())
    # a host is off exactly when it holds nothing
    for s in dep.sites:
        assert (s.host.power_state == "off") == (not s.kernel.instances)


def test_containers_move_by_stop_and_start(env, streams, recorder):
    apps = [app("a", [0.9], 500.0), app("b", [0.8, 0.3], 1000.0), app("c", [0.1], 300.0)]
    params = ContainerParams(cpu_ratio=2.0, start_s=NOW, host_os_ram_mib=0.0)
    dep, _ = fleet(env, recorder, streams, apps, mode="container", params=params,
                      where={"c": "h1"})
    env.run(until=1200.0)
    moves = [(t, e) for t, k, e in events(recorder) if k == "move"]
    assert moves == [(300.0, "a"), (600.0, "b")]
    assert dep.placement == {"a": "h1", "b": "h1", "c": "h1"}
    assert [(t, e) for t, k, e in events(recorder) if k == "host_off"] == [(600.0, "h0")]
    assert all(i.host.name == "h1" for i in dep.instances.values())


def test_bare_metal_does_not_consolidate(env, streams, recorder):
    with pytest.raises(ValueError, match="only VMs and containers move"):
        fleet(env, recorder, streams, [app("a", [0.5], 100.0)], mode="baremetal",
              params=None)
