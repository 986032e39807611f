"""deploy(): placement onto a fleet under each mode, capacity errors, common random numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy
from conftest import NOW

from fleet_sim.errors import CapacityError
from fleet_sim.hosting import defaults
from fleet_sim.hosting.specs import AppSpec, DemandSpec, HostSpec, JobsSpec
from fleet_sim.hosting.deploy import deploy
from fleet_sim.hosting.modes import MODES, mode_params
from fleet_sim.hosting.placement import plan
from fleet_sim.model.distributions import Exponential
from fleet_sim.policies.placement import BestFit, FirstFit, WorstFit
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.rng import Streams


def mixed_apps(n: int) -> list[AppSpec]:
    sizes = [(0.5, 512), (1.0, 2048), (2.0, 4096), (4.0, 8192)]
    return [AppSpec(f"app{i}", threads=4, cpu_request_cores=sizes[i % 4][0],
                    ram_mib=sizes[i % 4][1], dependencies={"python": "3.10" if i % 3 else "3.8"})
            for i in range(n)]


def hosts(n: int, cores=16, ram_mib=32_768) -> list[HostSpec]:
    return [HostSpec(f"h{i:02d}", cores, ram_mib) for i in range(n)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("policy", [FirstFit(), BestFit(), WorstFit()], ids=lambda p: p.name)
def test_plan_and_deploy_place_alike_and_respect_every_host(mode, policy):
    apps = mixed_apps(40)
    env = simpy.Environment()
    dep = deploy(env, hosts(12), mode, apps, policy, Streams(3))
    assert dep.placement == plan(hosts(12), mode, apps, policy, Streams(3).get("placement"))
    for view in dep.fleet_view():
        assert view.committed_cpu_cores <= view.cores + 1e-9
        assert view.reserved_ram_mib <= view.ram_mib
    if mode == "baremetal":  # one python version per shared OS
        for site in dep.sites:
            versions = {a.deps["python"] for a in apps if dep.placement[a.name] == site.host.name}
            assert len(versions) <= 1


def test_a_fleet_too_small_raises_a_capacity_error_that_says_why():
    with pytest.raises(CapacityError) as err:
        plan(hosts(2), "vm", mixed_apps(40), BestFit(), np.random.default_rng(0))
    msg = str(err.value)
    assert msg.startswith("fleet too small: app ")
    assert "under mode 'vm'" in msg and "on none of the 2 hosts with best-fit" in msg
    assert "Add hosts" in msg


def test_an_app_larger_than_any_host_is_named_as_such():
    big = AppSpec("huge", cpu_request_cores=64)
    with pytest.raises(CapacityError, match=r"'huge'.*does not fit even an empty host"):
        plan(hosts(3), "container", [big], FirstFit(), np.random.default_rng(0))


def test_identical_vms_fill_each_host_to_the_binding_resource():
    # density oracle: 16 cores × ratio 3 / 2 vCPUs = 24 per host by CPU; RAM per VM
    # = 1024 + guest OS + hypervisor overhead; per host ⌊min(CPU bound, RAM bound)⌋
    app_ram = 1024.0
    vm_ram = app_ram + defaults.GUEST_OS_RAM_MIB + defaults.VM_HYPERVISOR_RAM_MIB
    usable = 32_768 - defaults.HOST_OS_RAM_MIB
    per_host = math.floor(min(16 * 3 / 2, usable / vm_ram))
    apps = [AppSpec(f"a{i}", cpu_request_cores=2, ram_mib=app_ram) for i in range(3 * per_host)]
    placed = plan(hosts(3), "vm", apps, FirstFit(), np.random.default_rng(0), {"cpu_ratio": 3})
    assert [list(placed.values()).count(h) for h in ("h00", "h01", "h02")] == [per_host] * 3
    with pytest.raises(CapacityError):
        plan(hosts(3), "vm", [*apps, AppSpec("one-more", cpu_request_cores=2, ram_mib=app_ram)],
             FirstFit(), np.random.default_rng(0), {"cpu_ratio": 3})


def test_unknown_modes_and_parameters_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown hosting mode 'lxc'; valid: baremetal, vm"):
        mode_params("lxc")
    with pytest.raises(ValueError, match=r"unknown vm parameters \['ratio'\]; valid: .*cpu_ratio"):
        mode_params("vm", {"ratio": 2})
    assert mode_params("vm", {"guest_containers": {"cfs": "fluid"}}).guest_containers.cfs == "fluid"


def spiky_apps() -> list[AppSpec]:
    spikes = {"baseline_cores": 0.5, "rate_per_s": 0.05, "duration_s": Exponential(5.0),
              "height_cores": 4.0}
    return [AppSpec(f"s{i}", threads=4, cpu_request_cores=1.0, ram_mib=256,
                    workloads=(DemandSpec("cpu", "spiky", spikes),
                               JobsSpec("req", 2.0, Exponential(0.1))))
            for i in range(3)]


def run_mode(mode: str, seed: int):
    env = simpy.Environment()
    rec = ChangePointRecorder()
    params = {"baremetal": {"install_s": NOW}, "vm": {"boot_s": NOW},
              "container": {"start_s": NOW}}[mode]
    dep = deploy(env, hosts(2), mode, spiky_apps(), FirstFit(), Streams(seed), rec, params)
    env.run(until=300)
    dep.finalize(300)
    return rec


def demand_steps(rec, workload: str) -> list[tuple[float, float]]:
    w = rec.data["workloads"]
    steps = [(t, d) for t, name, d in zip(w["t"], w["workload"], w["demand_cores"], strict=True)
             if name == workload]
    out: list[tuple[float, float]] = []
    for t, d in steps:  # keep the change points of the demand itself
        if not out or d != out[-1][1]:
            out.append((t, d))
    return out


def test_every_mode_sees_the_same_spikes_and_arrivals():
    # common random numbers: workload streams do not depend on the hosting mode
    ref = run_mode("baremetal", 5)
    spikes = demand_steps(ref, "s1.cpu")
    def arrivals(rec):  # of the jobs finished in every mode (the last may still run)
        return sorted(t for t in rec.data["jobs"]["arrival"] if t < 250)

    assert len(spikes) > 10
    for mode in ("vm", "container"):
        rec = run_mode(mode, 5)
        assert demand_steps(rec, "s1.cpu") == spikes
        assert arrivals(rec) == arrivals(ref)


def test_same_seed_same_tables_other_seed_other_tables():
    a, b, c = run_mode("container", 1), run_mode("container", 1), run_mode("container", 2)
    assert list(a.data["jobs"]["finish"]) == list(b.data["jobs"]["finish"])
    assert list(a.data["events"]["t"]) == list(b.data["events"]["t"])
    assert list(a.data["jobs"]["finish"]) != list(c.data["jobs"]["finish"])


def _fresh(dep) -> list:
    """Every host's view built anew, bypassing the kernels' kept views."""
    return [s.kernel._build_view() for s in dep.sites]


@pytest.mark.parametrize("mode", MODES)
def test_the_fleet_view_follows_admissions_releases_failures_and_repairs(mode):
    """The kept views (per kernel, and the deployment's fleet view) equal views built
    afresh after every kind of change; an unchanged fleet is the same object."""
    env = simpy.Environment()
    apps = mixed_apps(20)
    dep = deploy(env, hosts(6), mode, apps, BestFit(), Streams(3))
    first = dep.fleet_view()
    assert list(first.hosts) == _fresh(dep) and dep.fleet_view() is first
    env.run(until=50)
    dep.remove("app3")
    after_remove = dep.fleet_view()
    assert after_remove is not first and list(after_remove.hosts) == _fresh(dep)
    _ = after_remove.table
    dep.fail_host(dep.sites[0].host.name)
    failed = dep.fleet_view()
    assert list(failed.hosts) == _fresh(dep) and not failed.hosts[0].up
    assert failed.table.up.tolist() == [v.up for v in failed.hosts]
    dep.sites[0].kernel.up = dep.sites[0].host.up = True  # a repair, as failures.py does
    assert dep.fleet_view().hosts[0].up
    site = dep.place(apps[3], BestFit(), np.random.default_rng(0))
    dep.admit(site, apps[3])
    assert list(dep.fleet_view().hosts) == _fresh(dep)
    assert dep.fleet_view().table.reserved_ram_mib.tolist() == [
        v.reserved_ram_mib for v in _fresh(dep)]
