"""Hypervisors and VMs: vCPU caps, overhead, steal, pinning, admission, boot."""

from __future__ import annotations

import pytest
from conftest import NOW, events, job_app, last_row, make_host, steady

from fleet_sim.errors import CapacityError
from fleet_sim.hosting import defaults
from fleet_sim.hosting.instance import AppProcess
from fleet_sim.hosting.kernel import host_kernel
from fleet_sim.hosting.specs import AppSpec
from fleet_sim.hosting.containers import ContainerParams
from fleet_sim.hosting.hypervisor import Hypervisor, VmParams
from fleet_sim.model.distributions import Deterministic
from fleet_sim.model.jobs import Job


def hypervisor(host, streams, cpu_ratio=1.0, os_ram_mib=0.0, **kw):
    kw.setdefault("boot_s", NOW)
    return Hypervisor(host_kernel(host, cpu_ratio=cpu_ratio, os_ram_mib=os_ram_mib), streams,
                      VmParams(**kw))


def run_apps(env, hv, *apps, until=1.0):
    pairs = [hv.run_app(a) for a in apps]
    for vm, inner in pairs:
        vm.launch()
        inner.launch(after=vm.up)
    env.run(until=until)
    hv.host.sync()
    return pairs


def test_in_two_4_vcpu_vms_the_victim_gets_its_full_core(env, streams):
    # default overhead (5%) and guest OS background: the neighbour's VM is capped at
    # 4 host cores, i.e. 4/1.05 guest cores of which the guest OS takes 0.02
    host = make_host(env, cores=8)
    hv = hypervisor(host, streams)
    (_, victim), (_, noisy) = run_apps(env, hv, steady("victim", 1.0, threads=1, vcpus=4),
                                       steady("noisy", 16.0, threads=16, vcpus=4))
    assert victim.workloads[0].alloc == 1.0
    overhead = 1 + defaults.VIRT_OVERHEAD_TYPE1
    assert noisy.workloads[0].alloc == pytest.approx(
        4 / overhead - defaults.GUEST_OS_BACKGROUND_CORES, rel=1e-12)


def test_overcommitted_vms_record_their_steal_time(env, streams, recorder):
    # 4 cores, ratio 2: two busy 4-vCPU VMs get 2 cores each and 2 cores of steal
    host = make_host(env, cores=4, recorder=recorder)
    hv = hypervisor(host, streams, cpu_ratio=2.0, virt_overhead=0.0, guest_os_cores=0.0)
    run_apps(env, hv, steady("a", 4.0, threads=4, vcpus=4), steady("b", 4.0, threads=4, vcpus=4))
    for vm in ("a-vm", "b-vm"):
        row = last_row(recorder, "instances", "instance", vm)
        assert (row["allocated_cores"], row["contention_cores"]) == (2.0, 2.0)
    # the workloads inside see the same shortfall (the steal)
    row = last_row(recorder, "workloads", "workload", "a.cpu")
    assert (row["allocated_cores"], row["contention_cores"]) == (2.0, 2.0)


def test_a_pinned_vm_suffers_no_steal(env, streams, recorder):
    # 4 cores: a pinned 2-vCPU VM keeps its 2 cores against a busy 4-vCPU neighbour
    # (by vCPU weights alone it would get 4 × 2/6 = 1.33)
    host = make_host(env, cores=4, recorder=recorder)
    hv = hypervisor(host, streams, cpu_ratio=2.0, virt_overhead=0.0, guest_os_cores=0.0)
    pinned = hv.create_vm("db-vm", steady("db", 2.0, threads=2), 2, 1024, pinned=True)
    shared = hv.create_vm("web-vm", steady("web", 4.0, threads=4), 4, 1024)
    for vm in (pinned, shared):
        inner = AppProcess(vm.app.name, vm.app, vm.guest, streams).admit()
        vm.launch()
        inner.launch(after=vm.up)
    env.run(until=1)
    host.sync()
    assert pinned.node.alloc == 2.0
    assert shared.node.alloc == 2.0
    assert last_row(recorder, "instances", "instance", "db-vm")["contention_cores"] == 0.0


def test_vcpus_beyond_the_overcommit_ratio_are_refused(env, streams):
    hv = hypervisor(make_host(env, cores=4), streams, cpu_ratio=1.5)
    hv.create_vm("a-vm", AppSpec("a"), 4, 512)
    hv.create_vm("b-vm", AppSpec("b"), 2, 512)
    with pytest.raises(CapacityError, match=r"'c-vm'.*needs 1 cores.*ratio 1.5"):
        hv.create_vm("c-vm", AppSpec("c"), 1, 512)


def test_vm_ram_is_reserved_at_admission_and_refused_when_it_does_not_fit(env, streams):
    # 8192 MiB, 1024 for the host OS: a 6000 MiB VM takes 6000 + 131 (hypervisor);
    # a second of 1000 MiB would need 1131 of the 1037 left
    host = make_host(env, ram_mib=8192)
    hv = hypervisor(host, streams, os_ram_mib=1024)
    hv.create_vm("a-vm", AppSpec("a"), 1, 6000)
    assert hv.kernel.memory.reserved_mib == 1024 + 6000 + defaults.VM_HYPERVISOR_RAM_MIB
    with pytest.raises(CapacityError, match=r"needs 1131 MiB, host h has 1037 of 8192"):
        hv.create_vm("b-vm", AppSpec("b"), 1, 1000)


def test_jobs_queue_until_the_vm_has_booted(env, streams, recorder):
    host = make_host(env, recorder=recorder)
    hv = hypervisor(host, streams, boot_s=Deterministic(30.0), virt_overhead=0.0,
                    guest_os_cores=0.0)
    vm, app = hv.run_app(job_app("web", threads=1))
    vm.launch()
    app.launch(after=vm.up)
    wl = app.workloads[0]
    wl.keep_jobs = True

    def arrive():
        yield env.timeout(10)
        wl.submit(Job(2.0, 1))

    env.process(arrive())
    env.run(until=100)
    host.sync()
    job = wl.finished[0]
    assert (job.arrival, job.start, job.finish) == (10.0, 30.0, 32.0)
    assert events(recorder, "boot") == [(30.0, "boot", "web-vm")]


def test_guest_work_costs_the_virtualization_overhead(env, streams):
    # a type-2 hypervisor: a busy 2-vCPU VM gets 2 host cores = 2/1.15 guest cores;
    # the host OS takes its RAM and a quarter core
    host = make_host(env, cores=8, ram_mib=16_384)
    hv = hypervisor(host, streams, hypervisor_type=2, guest_os_cores=0.0)
    ((vm, app),) = run_apps(env, hv, steady("batch", 8.0, threads=8, vcpus=2))
    assert vm.node.alloc == 2.0
    assert app.workloads[0].alloc == pytest.approx(2 / (1 + defaults.VIRT_OVERHEAD_TYPE2))
    assert hv.host_os.alloc == defaults.TYPE2_HOST_OS_CORES
    vm_ram = 100 + defaults.GUEST_OS_RAM_MIB  # the app's RAM and its guest OS
    assert hv.kernel.memory.reserved_mib == (
        defaults.TYPE2_HOST_OS_RAM_MIB + vm_ram + defaults.VM_HYPERVISOR_RAM_MIB)


def test_a_vm_can_run_a_guest_container_runtime(env, streams):
    host = make_host(env, cores=8)
    hv = hypervisor(host, streams, virt_overhead=0.0, guest_os_cores=0.0, guest="container",
                    guest_containers=ContainerParams(start_s=NOW))
    ((vm, ctr),) = run_apps(env, hv, steady("api", 3.0, threads=4, vcpus=2,
                                            cpu_limit_cores=1.0), until=10)
    assert ctr.kind == "container" and ctr.kernel is vm.guest
    assert ctr.node.parent.parent is vm.node  # VM → guest runtime → container
    # its quota (1 core) binds inside the 2-vCPU VM: on average 1 core over whole periods
    assert ctr.bandwidth.stat()["nr_throttled"] == 100
    assert host.cpu.usage_core_s(ctr.node) == pytest.approx(10.0, rel=1e-9)
