"""Blast radius of a compromise, and host failure (docs/model.md §6)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NOW, events, steady

from fleet_sim.hosting.specs import HostSpec
from fleet_sim.hosting.deploy import deploy
from fleet_sim.hosting.isolation import (
    HYPERVISOR_ESCAPE,
    KERNEL_ESCAPE,
    SHARED_OS,
    sample_exposed,
)
from fleet_sim.policies.placement import FirstFit

PK, PH = 0.1, 0.01
#: four apps fill host h0 (4 × 2 cores of 8), two more go to h1
APPS = [steady(f"a{i}", 1.0, threads=2, cpu_request_cores=2.0) for i in range(6)]
HOSTS = [HostSpec("h0", 8, 65_536), HostSpec("h1", 8, 65_536)]
PARAMS = {
    "baremetal": {"install_s": NOW, "install_step_failure_p": 0.0},
    "container": {"start_s": NOW},
    "vm": {"boot_s": NOW},
}


def deployed(env, streams, recorder, mode, **extra):
    return deploy(env, HOSTS, mode, APPS, FirstFit(), streams, recorder,
                  {**PARAMS[mode], **extra})


@pytest.mark.parametrize(("mode", "extra", "p", "via"), [
    ("baremetal", {}, 1.0, (SHARED_OS,)),
    ("container", {}, PK, (KERNEL_ESCAPE,)),
    ("vm", {}, PH, (HYPERVISOR_ESCAPE,)),
    ("vm", {"guest": "container", "guest_containers": {"start_s": NOW}}, PK * PH,
     (KERNEL_ESCAPE, HYPERVISOR_ESCAPE)),
])
def test_a_compromise_exposes_the_neighbours_on_its_host_only(
        env, streams, recorder, mode, extra, p, via):
    dep = deployed(env, streams, recorder, mode, **extra)
    assert dep.placement == {"a0": "h0", "a1": "h0", "a2": "h0", "a3": "h0",
                             "a4": "h1", "a5": "h1"}
    found = dep.compromise("a0", kernel_escape_p=PK, hypervisor_escape_p=PH)
    assert sorted(e.app for e in found) == ["a1", "a2", "a3"]
    assert all(e.probability == pytest.approx(p) and e.via == via for e in found)
    assert [k for _, k, _ in events(recorder)].count("exposed") == 3
    assert events(recorder, "compromised") == [(0.0, "compromised", dep.instances["a0"].name)]


def test_escapes_are_drawn_once_per_compromise_so_neighbours_fall_together(
        env, streams, recorder):
    dep = deployed(env, streams, recorder, "container")
    found = dep.exposures("a0", kernel_escape_p=0.5)
    sizes = {len(sample_exposed(found, np.random.default_rng(s), kernel_escape_p=0.5))
             for s in range(50)}
    assert sizes == {0, 3}


def test_a_host_failure_kills_everything_on_it_and_is_recorded(env, streams, recorder):
    dep = deployed(env, streams, recorder, "vm")
    dep.schedule_host_failure("h0", at_s=5.0)
    env.run(until=10)
    lost = [dep.vms[a] for a in ("a0", "a1", "a2", "a3")]
    assert all(vm.state == "failed" and vm.node.parent is None for vm in lost)
    assert all(dep.instances[a].state == "failed" for a in ("a0", "a1", "a2", "a3"))
    assert all(dep.instances[a].state == "running" for a in ("a4", "a5"))
    assert events(recorder, "host_failure") == [(5.0, "host_failure", "h0")]
    # one "killed" per VM and per app process inside it
    assert len(events(recorder, "killed")) == 8
    h0 = dep.by_host["h0"]
    assert h0.host.cpu.root.children[0].children == []  # hypervisor node empty
    assert not dep.fleet_view().hosts[0].up
    assert h0.kernel.memory.reserved_mib == dep.params.host_os_ram_mib
