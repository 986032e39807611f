"""Moving a fleet's instances: a VM live-migrated (hand-computed times, the network
shared), a container stopped and started elsewhere."""

from __future__ import annotations

import pytest
import simpy
from conftest import NOW, events, job_app, last_row, make_host

from fleet_sim.errors import CapacityError
from fleet_sim.hosting.deploy import deploy
from fleet_sim.hosting.hypervisor import Hypervisor, VmParams
from fleet_sim.hosting.kernel import host_kernel
from fleet_sim.hosting.livemigration import PrecopyParams, live_migrate
from fleet_sim.hosting.specs import AppSpec, HostSpec, JobsSpec
from fleet_sim.images.network import Network
from fleet_sim.model.distributions import Exponential
from fleet_sim.model.jobs import Job
from fleet_sim.policies.placement import FirstFit
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.rng import Streams

#: guest RAM of exactly 1000 MB (MiB × 2**20 / 1e6)
GB_MIB = 1e9 / 2**20
PRECOPY = PrecopyParams(dirty_mb_s=10.0, stop_mb=50.0)


def fleet(env, recorder, streams, names=("A", "B"), nic_mb_s=100.0, cores=4.0):
    """Hosts with a type-1 hypervisor each (no overhead, no guest OS CPU or RAM) and a
    network joining their NICs."""
    network = Network(env, recorder)
    hvs = {}
    for name in names:
        host = make_host(env, cores=cores, recorder=recorder, name=name)
        hvs[name] = Hypervisor(host_kernel(host), streams,
                               VmParams(boot_s=NOW, virt_overhead=0.0, guest_os_cores=0.0,
                                        guest_os_ram_mib=0.0))
        network.attach(name, nic_mb_s, nic_mb_s)
    return hvs, network


def vm_with_job(env, hv, name="web", work_core_s=100.0, vcpus=2):
    """A VM of 1000 MB serving ``name``, with one job of ``work_core_s`` on 1 core from t = 0."""
    vm, inner = hv.run_app(job_app(name, threads=2, vcpus=vcpus, ram_mib=GB_MIB))
    vm.launch()
    inner.launch(after=vm.up)
    job = Job(work_core_s, 1.0)

    def submit():
        yield inner.up
        inner.workloads[0].submit(job)
    env.process(submit())
    return vm, inner, job


def migrate_at(env, t, vm, target, network, params=PRECOPY):
    out = {}

    def go():
        yield env.timeout(t)
        out["process"] = live_migrate(vm, target, network, params)
        out["value"] = yield out["process"]
        out["t"] = env.now
    env.process(go())
    return out


def test_a_migrating_vm_keeps_its_job_running_and_finishes_it_on_the_target(env, streams,
                                                                            recorder):
    # 1000 MB over half of a 100 MB/s NIC: round 0 takes 20 s; it dirtied 200 MB meanwhile
    # (4 s); then 40 MB <= 50 MB are left: the stop-and-copy takes 0.8 s, the downtime.
    # Started at t = 10, the VM runs on B from 34.8 s; its job (100 core-s on 1 core) was
    # paused for 0.8 s, so it ends at 100.8 s, on B.
    hvs, network = fleet(env, recorder, streams)
    vm, inner, job = vm_with_job(env, hvs["A"])
    out = migrate_at(env, 10.0, vm, hvs["B"], network)
    env.run(until=200.0)
    a, b = hvs["A"].host, hvs["B"].host
    a.finalize(200.0)
    b.finalize(200.0)
    assert out["value"] is True
    assert job.finish == pytest.approx(100.8, abs=1e-9)
    assert vm.host is hvs["B"].host and inner.host is hvs["B"].host
    assert job.workload.host is hvs["B"].host
    assert vm.name in hvs["B"].kernel.instances and vm.name not in hvs["A"].kernel.instances
    [(t, _, entity)] = events(recorder, "migration")
    assert (t, entity) == (pytest.approx(34.8, abs=1e-9), "web-vm")
    ev = recorder.data["events"]
    i = ev["kind"].index("migration")
    assert (ev["host"][i], ev["count"][i]) == ("B", 3)
    assert ev["duration_s"][i] == pytest.approx(24.8, abs=1e-9)
    assert ev["detail"][i].startswith("from A; downtime_s=0.8")
    # CPU: the job's core on A until the pause at 34 s, plus the copy's 0.2 cores (10 % of
    # 2 vCPUs) for 24.8 s; on B the job's core from 34.8 s to 100.8 s
    assert a.cpu.used_core_s == pytest.approx(34.0 + 0.2 * 24.8, abs=1e-9)
    assert b.cpu.used_core_s == pytest.approx(66.0, abs=1e-9)
    jobs = recorder.data["jobs"]
    assert jobs["host"] == ["B"]


def test_the_vms_rows_end_on_the_source_and_go_on_on_the_target(env, streams, recorder):
    hvs, network = fleet(env, recorder, streams)
    vm_with_job(env, hvs["A"])
    migrate_at(env, 10.0, hvs["A"].kernel.instances["web-vm"], hvs["B"], network)
    env.run(until=50.0)
    for hv in hvs.values():
        hv.host.finalize(50.0)
    wl = recorder.data["workloads"]
    rows = [(t, h, a) for t, w, h, a in zip(wl["t"], wl["workload"], wl["host"],
                                             wl["allocated_cores"], strict=True) if w == "web.req"]
    on_a = [r for r in rows if r[1] == "A"]
    on_b = [r for r in rows if r[1] == "B"]
    assert on_a[-1][0] == pytest.approx(34.8) and on_a[-1][2] == 0.0
    assert on_b[0][0] == pytest.approx(34.8) and on_b[-1][2] == 1.0
    cost = [(t, a) for t, w, a in zip(wl["t"], wl["workload"], wl["allocated_cores"],
                                      strict=True) if w == "web-vm.migration" and a > 0]
    assert cost[0] == (10.0, pytest.approx(0.2))
    assert last_row(recorder, "workloads", "workload", "web-vm.migration")["t"] == \
        pytest.approx(34.8)


def test_two_migrations_leaving_one_host_share_half_its_nic(env, streams, recorder):
    # each gets 25 MB/s: rounds of 1000, 400, 160, 64 MB, then 25.6 MB paused:
    # 40 + 16 + 6.4 + 2.56 + 1.024 = 65.984 s each, where one alone takes 24.8 s
    hvs, network = fleet(env, recorder, streams, names=("A", "B", "C"))
    one, _, _ = vm_with_job(env, hvs["A"], "one")
    two, _, _ = vm_with_job(env, hvs["A"], "two")
    migrate_at(env, 0.0, one, hvs["B"], network)
    migrate_at(env, 0.0, two, hvs["C"], network)
    env.run(until=100.0)
    ev = recorder.data["events"]
    durations = [d for k, d in zip(ev["kind"], ev["duration_s"], strict=True) if k == "migration"]
    assert durations == [pytest.approx(65.984, abs=1e-9)] * 2


def test_a_target_failing_midway_leaves_the_vm_running_on_its_source(env, streams, recorder):
    hvs, network = fleet(env, recorder, streams)
    vm, _, job = vm_with_job(env, hvs["A"])
    out = migrate_at(env, 10.0, vm, hvs["B"], network)

    def fail_b():
        yield env.timeout(20.0)
        hvs["B"].kernel.fail("host_failure")
    env.process(fail_b())
    env.run(until=200.0)
    hvs["A"].host.finalize(200.0)
    assert out["value"] is False
    assert out["t"] == pytest.approx(30.0)  # no round after round 0 (10 s to 30 s)
    assert vm.host is hvs["A"].host and vm.state == "running"
    assert job.finish == pytest.approx(100.0, abs=1e-9)  # never paused
    assert "web-vm" not in hvs["B"].kernel.instances
    assert not events(recorder, "migration")


def test_migrations_that_cannot_happen_say_why_and_reserve_nothing(env, streams, recorder):
    hvs, network = fleet(env, recorder, streams, names=("A", "B", "tiny"))
    small = make_host(env, cores=1.0, recorder=recorder, name="small")
    tiny = Hypervisor(host_kernel(small), streams, VmParams(boot_s=NOW))
    network.attach("small", 100.0, 100.0)
    vm, _, _ = vm_with_job(env, hvs["A"])
    with pytest.raises(ValueError, match="not running"):
        live_migrate(vm, hvs["B"], network)  # still booting: the run has not started
    env.run(until=1.0)
    with pytest.raises(ValueError, match="there already"):
        live_migrate(vm, hvs["A"], network)
    with pytest.raises(CapacityError, match="cannot admit vm 'web-vm' on small"):
        live_migrate(vm, tiny, network)
    assert not small.cpu.root.children[0].children  # nothing reserved or attached there
    assert tiny.kernel.instances == {}
    live_migrate(vm, hvs["B"], network)
    with pytest.raises(ValueError, match="migrating"):
        live_migrate(vm, hvs["tiny"], network)
    pinned, _ = hvs["A"].run_app(AppSpec("pinned", vcpus=1))
    pinned.pinned = True
    pinned.state = "running"
    with pytest.raises(ValueError, match="pinned"):
        live_migrate(pinned, hvs["B"], network)


def poisson_fleet(migrate: bool):
    """200 s of Poisson requests (5/s of 0.1 core-s) to a VM that, if asked, moves from
    h00 to h01 at t = 50 s; returns the jobs table and the deployment."""
    env = simpy.Environment()
    recorder = ChangePointRecorder()
    app = AppSpec("api", threads=2, cpu_request_cores=2.0, ram_mib=GB_MIB,
                  workloads=(JobsSpec("req", 5.0, Exponential(0.1), 1.0),))
    hosts = [HostSpec(f"h{i:02d}", 4, 8192) for i in range(2)]
    dep = deploy(env, hosts, "vm", [app], FirstFit(), Streams(7), recorder,
                 {"boot_s": NOW, "guest_os_ram_mib": 0.0})
    network = Network(env, recorder)
    for h in dep.hosts:
        network.attach(h.name, 100.0, 100.0)
    out = {}
    if migrate:
        def go():
            yield env.timeout(50.0)
            out["landed"] = yield dep.migrate("api", "h01", network, PRECOPY)
        env.process(go())
    env.run(until=200.0)
    dep.finalize(200.0)
    return recorder.data["jobs"], dep, out


def test_a_migrating_replica_gets_the_same_requests_and_loses_none():
    still, _, _ = poisson_fleet(migrate=False)
    moved, dep, out = poisson_fleet(migrate=True)
    assert out["landed"] is True and dep.placement["api"] == "h01"
    def by_arrival(jobs):
        return {t: (w, f, h, o) for t, w, f, h, o in zip(
            jobs["arrival"], jobs["work_core_s"], jobs["finish"], jobs["host"], jobs["outcome"],
            strict=True)}
    before, after = by_arrival(still), by_arrival(moved)
    assert len(after) == len(moved["arrival"]) > 900
    # the stream moved with the VM: the same requests, none lost
    assert sorted(after) == sorted(before)
    assert all(after[t][0] == before[t][0] for t in before)
    assert {o for *_, o in after.values()} == {"finished"}
    assert {h for t, (*_, h, _) in after.items() if t > 80.0} == {"h01"}
    assert {h for t, (*_, h, _) in after.items() if t < 20.0} == {"h00"}
    # those in flight or queued during the downtime finish later; the others, long
    # before or after it, exactly as without the migration
    late = {t: after[t][1] - before[t][1] for t in before}
    assert max(late.values()) >= 0.5 and min(late.values()) > -1e-9
    assert all(d == 0.0 for t, d in late.items() if t < 50.0 or t > 120.0)


def test_only_vms_are_live_migrated(env):
    hosts = [HostSpec(f"h{i}", 4, 8192) for i in range(2)]
    dep = deploy(env, hosts, "container", [AppSpec("c")], FirstFit(), Streams(0))
    with pytest.raises(ValueError, match=r"runs in no VM here \(container mode\)"):
        dep.migrate("c", "h1", Network(env, dep.hosts[0].recorder))


def test_a_moved_container_stops_loses_its_jobs_in_flight_and_starts_on_the_target():
    env, recorder = simpy.Environment(), ChangePointRecorder()
    app = AppSpec("api", threads=2, cpu_request_cores=2.0, ram_mib=512.0,
                  workloads=(JobsSpec("req", 5.0, Exponential(1.0), 1.0),))
    hosts = [HostSpec(f"h{i:02d}", 4, 8192) for i in range(3)]
    dep = deploy(env, hosts, "container", [app], FirstFit(), Streams(3), recorder,
                 {"start_s": NOW})
    moved = {}

    def go():
        yield env.timeout(50.0)
        dep.by_host["h02"].kernel.add_footprint("hog", 7000.0)
        with pytest.raises(CapacityError, match="cannot move 'api' to h02"):
            dep.move("api", "h02")
        assert dep.instances["api"].host.name == "h00"  # nothing stopped
        moved["new"] = dep.move("api", "h01")
    env.process(go())
    env.run(until=100.0)
    dep.finalize(100.0)
    assert dep.placement["api"] == "h01" and moved["new"].host.name == "h01"
    ev = recorder.data["events"]
    rows = [(t, k, e, h, c) for t, k, e, h, c in zip(ev["t"], ev["kind"], ev["entity"],
                                                     ev["host"], ev["count"], strict=True)
            if k in ("stop", "move")]
    (t_stop, _, _, h_stop, lost), (t_move, _, _, h_move, _) = rows
    assert (t_stop, h_stop, t_move, h_move) == (50.0, "h00", 50.0, "h01")
    jobs = recorder.data["jobs"]
    outcomes = list(zip(jobs["arrival"], jobs["host"], jobs["outcome"], strict=True))
    assert lost > 0 and sum(o == "failed" for *_, o in outcomes) == lost
    assert all(h == "h01" for t, h, _ in outcomes if t > 50.0)
    assert all(h == "h00" for t, h, _ in outcomes if t < 50.0)
    assert len(set(jobs["job_id"])) == len(jobs["job_id"])  # ids go on from the old ones
    with pytest.raises(ValueError, match="it is there"):
        dep.move("api", "h01")


def test_only_containers_are_moved_by_stop_and_start(env):
    hosts = [HostSpec(f"h{i}", 4, 8192) for i in range(2)]
    dep = deploy(env, hosts, "vm", [AppSpec("v")], FirstFit(), Streams(0))
    with pytest.raises(ValueError, match="a VM live-migrates"):
        dep.move("v", "h1")
