"""The dynamic fleet (docs/model.md §12.5–§12.7): the hand case of two hosts and three VMs
under THR-MMT, host power states, pre-copy, container moves, and conservation (every
guest on exactly one host, or moving, at every event of a run)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from fleet_sim.hosting.consolidation import (
    BOOTING,
    OFF,
    ON,
    DynamicFleet,
    DynamicHost,
    GuestType,
    MoveParams,
    PowerStates,
    block_types,
)
from fleet_sim.hosting.migration import (
    MB_PER_MIB,
    cloudsim_migration,
    precopy_migration,
)
from fleet_sim.model.views import HostCapacity
from fleet_sim.numerics.power import LinearPower
from fleet_sim.policies.consolidation import Consolidation, MinimumMigrationTime, StaticThreshold
from fleet_sim.results.consolidation import summarize
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.scenarios.consolidation import PolicyHooks

POWER = LinearPower(100.0, 200.0)  # P(u) = 100 + 100 u W
BW = 100.0  # MB/s: a migration gets 50


def watts(u: float) -> float:
    return 100.0 + 100.0 * u


def two_hosts() -> list[DynamicHost]:
    return [DynamicHost(name, HostCapacity(2, 1000.0, 4096.0, BW, POWER)) for name in ("A", "B")]


TYPES = [GuestType(1000, 512), GuestType(1000, 1024), GuestType(500, 256)]
#: CPU % per 300 s: A gets overloaded at 300 s (1700 of 2000 MIPS > 0.8), underloaded at 600 s
TRACE = np.array([[50, 90, 10], [50, 80, 10], [20, 20, 10]], dtype=np.uint8)


def hand_fleet(**kw) -> tuple[simpy.Environment, DynamicFleet]:
    env = simpy.Environment()
    hosts = two_hosts()
    names = ("v0", "v1", "v2")
    policy = Consolidation(StaticThreshold(0.8), MinimumMigrationTime())
    hooks = PolicyHooks(hosts, names, policy, np.random.default_rng(0))
    fleet = DynamicFleet(env, hosts, names, TYPES, TRACE, hooks.place, hooks.decide, **kw)
    return env, fleet


def test_hand_case_two_hosts_three_vms():
    env, fleet = hand_fleet()
    fleet.start()
    # initial placement at full MIPS (every host idle at t = 0, as in CloudSim): v0 and
    # v1 fill A (1000 + 1000 of 2000 MIPS), v2 goes to B
    assert fleet.v_host.tolist() == [0, 0, 1]
    env.run(until=900)
    rec = fleet.record()
    m0 = 512 * MB_PER_MIB / (BW / 2)   # v0 (least RAM, MMT) leaves overloaded A at 300 s
    m1 = 1024 * MB_PER_MIB / (BW / 2)  # v1 empties underloaded A at 600 s
    assert rec.move_starts_s.tolist() == [300.0, 600.0]
    assert fleet.v_host.tolist() == [1, 1, 1]
    a, b = rec.host_series
    assert a["t"].tolist() == pytest.approx([0, 300, 300 + m0, 600, 600 + m1])
    assert a["state"].tolist() == [ON, ON, ON, ON, OFF]
    # A: 0.5; during v0's move its 0.9 × 900 counts as 900 on the host: 1700 → 0.85; …
    assert a["utilization"].tolist() == pytest.approx([0.5, 0.85, 0.4, 0.05, 0.0])
    # B: v2 100; + 10 % of v0's 900 reserved while it comes (900 requested); v2 + v0;
    # at 600 s the trace step (150), then the round's move: + 10 % of v1's 100
    assert b["t"].tolist() == pytest.approx([0, 300, 300 + m0, 600, 600, 600 + m1])
    assert b["utilization"].tolist() == pytest.approx([0.05, 0.095, 0.5, 0.075, 0.08, 0.125])
    assert b["requested"].tolist() == pytest.approx([0.05, 0.5, 0.5, 0.075, 0.125, 0.125])
    energy_j = (watts(0.5) * 300 + watts(0.85) * m0 + watts(0.4) * (300 - m0)
                + watts(0.05) * m1                                        # A, then off
                + watts(0.05) * 300 + watts(0.095) * m0 + watts(0.5) * (300 - m0)
                + watts(0.08) * m1 + watts(0.125) * (300 - m1))           # B
    figures = summarize(rec, 900.0)
    assert figures["energy_kwh"] == pytest.approx(energy_j / 3.6e6, rel=1e-12)
    assert figures["migrations"] == 2
    assert figures["host_shutdowns"] == 1
    # B delivers less than asked while a VM comes to it; A never
    assert figures["slatah"] == pytest.approx((m0 + m1) / ((600 + m1) + 900), rel=1e-12)
    lost = 0.1 * 900 * m0 + 0.1 * 100 * m1
    asked = (500 + 900 + 100) * 300 + (500 + 800 + 100) * 300 + (100 + 100 + 50) * 300
    assert figures["pdm"] == pytest.approx(lost / asked, rel=1e-12)
    assert figures["slav"] == pytest.approx(figures["slatah"] * figures["pdm"])


def _move_once(vm: int, target: int, at_s: float):
    """A decision that moves ``vm`` to ``target`` at the round of ``at_s``, then nothing."""
    def decide(state):
        return [(vm, target)] if state.t == at_s else []
    return decide


def test_switch_on_time_and_power_and_energy_of_a_host_off_part_of_the_run():
    env = simpy.Environment()
    hosts = two_hosts()
    trace = np.full((2, 4), 50, dtype=np.uint8)  # two 1000-MIPS VMs at 500 MIPS each
    power = PowerStates(switch_on_s=60.0, switch_on_w=150.0)
    fleet = DynamicFleet(env, hosts, ("v0", "v1"), [GuestType(1000, 512)] * 2, trace,
                         lambda s: [0, 0], _move_once(1, 1, 300.0), power=power)
    fleet.start()
    assert fleet.h_state.tolist() == [ON, OFF]
    env.run(until=1200)
    rec = fleet.record()
    m = cloudsim_migration(512, BW).duration_s
    b = rec.host_series[1]
    assert b["t"].tolist() == pytest.approx([0, 300, 360, 360 + m])
    assert b["state"].tolist() == [OFF, BOOTING, ON, ON]
    # B: off 300 s, booting 60 s at 150 W, then 10 % of v1 reserved, then v1
    energy_b = 150.0 * 60 + watts(0.025) * m + watts(0.25) * (1200 - 360 - m)
    # A: both (1000 of 2000), v1 at 90 % but counted in full until it has left
    energy_a = watts(0.5) * (360 + m) + watts(0.25) * (1200 - 360 - m)
    figures = summarize(rec, 1200.0)
    assert figures["energy_kwh"] == pytest.approx((energy_a + energy_b) / 3.6e6, rel=1e-12)
    # B was off from the start (counted as CloudSim counts it), then never again
    assert figures["host_shutdowns"] == 1
    # v1 loses 10 % of 500 MIPS while it waits for B and while it migrates
    assert figures["pdm"] == pytest.approx(0.1 * 500 * (60 + m) / (2 * 500 * 1200), rel=1e-12)


def test_npa_hosts_draw_peak_power_all_run():
    env = simpy.Environment()
    fleet = DynamicFleet(env, two_hosts(), ("v0",), [GuestType(1000, 512)],
                         np.full((1, 2), 10, dtype=np.uint8), lambda s: [0], None,
                         power=PowerStates(peak_always=True))
    fleet.start()
    env.run(until=600)
    figures = summarize(fleet.record(), 600.0)
    assert figures["energy_kwh"] == pytest.approx(2 * 200.0 * 600 / 3.6e6)
    assert figures["host_shutdowns"] == 0 and figures["migrations"] == 0


def test_precopy_rounds_by_hand():
    t = precopy_migration(1000, 100.0, 20.0, stop_mb=5.0)
    mb = 1000 * MB_PER_MIB
    sends = [mb * 0.2**k for k in range(5)]  # each round sends 20 % of the one before
    assert sends[3] > 5.0 >= sends[4]
    assert t.rounds == 5
    assert t.duration_s == pytest.approx(sum(sends) / 100.0)
    assert t.downtime_s == pytest.approx(sends[4] / 100.0)
    assert t.sent_mb == pytest.approx(sum(sends))
    # a dirty rate at the bandwidth never converges: the round limit stops it
    stuck = precopy_migration(1000, 100.0, 150.0, stop_mb=5.0, max_rounds=3)
    assert stuck.rounds == 4 and stuck.downtime_s == pytest.approx(mb / 100.0)


def test_a_saturated_hosts_scale_moves_every_guest_on_it_and_a_leaving_one_follows_its_new_host():
    """Three guests asking 1000 MIPS each on A (2000): each gets 2/3 of its ask. At 300 s
    g0 starts to leave (it keeps 90 % of its ask, B reserves the other 10 %): A's asks
    add up to 2900, and g1 and g2, whose own state did not change, get 2000/2900 of
    theirs. When g0 arrives on B, A is no longer saturated: one row each, g0's at B's
    scale (B has room), not a row at A's scale first."""
    env = simpy.Environment()
    trace = np.full((3, 3), 100, dtype=np.uint8)
    fleet = DynamicFleet(env, two_hosts(), ("g0", "g1", "g2"), [GuestType(1000, 512)] * 3,
                         trace, lambda s: [0, 0, 0], _move_once(0, 1, 300.0))
    fleet.start()
    env.run(until=900)
    m = 512 * MB_PER_MIB / (BW / 2)
    g0, g1, g2 = fleet.record().vm_series
    for g in (g0, g1, g2):
        assert g["t"].tolist() == pytest.approx([0, 300, 300 + m])
        assert g["requested_mips"].tolist() == [1000.0] * 3
    assert g0["allocated_mips"].tolist() == pytest.approx([2000 / 3, 900 * 2000 / 2900, 1000],
                                                          rel=1e-12)
    assert g0["migrating"].tolist() == [0, 1, 0]
    for g in (g1, g2):
        assert g["allocated_mips"].tolist() == pytest.approx(
            [2000 / 3, 1000 * 2000 / 2900, 1000], rel=1e-12)
        assert g["migrating"].tolist() == [0, 0, 0]


def test_precopy_downtime_pauses_the_vm_at_the_end():
    env = simpy.Environment()
    trace = np.full((1, 3), 50, dtype=np.uint8)
    moves = MoveParams(migration="precopy", dirty_mb_s=5.0, stop_mb=1.0)
    fleet = DynamicFleet(env, two_hosts(), ("v0",), [GuestType(1000, 512)], trace,
                         lambda s: [0], _move_once(0, 1, 300.0), moves=moves)
    fleet.start()
    env.run(until=900)
    timing = precopy_migration(512, BW / 2, 5.0, 1.0)
    v = fleet.record().vm_series[0]
    pause = 300 + timing.duration_s - timing.downtime_s
    assert v["t"].tolist() == pytest.approx([0, 300, pause, 300 + timing.duration_s])
    assert v["allocated_mips"].tolist() == pytest.approx([500, 450, 0, 500])
    assert fleet.downtime_s == pytest.approx(timing.downtime_s)


def test_container_move_is_stop_pull_start_and_pulls_once_per_host():
    env = simpy.Environment()
    trace = np.full((1, 4), 50, dtype=np.uint8)
    moves = MoveParams(mode="container", stop_s=2.0, start_s=1.0, base_layers_mb=(200.0,),
                       app_layer_mb=50.0)

    def decide(state):
        return {300.0: [(0, 1)], 600.0: [(0, 0)], 900.0: [(0, 1)]}.get(state.t, [])
    fleet = DynamicFleet(env, two_hosts(), ("c0",), [GuestType(1000, 512)], trace,
                         lambda s: [0], decide, moves=moves)
    fleet.start()
    env.run(until=1200)
    # B lacks both layers, A has them; back to B: cached now
    assert fleet.downtime_s == pytest.approx((3 + 250 / BW) + 3 + 3)
    v = fleet.record().vm_series[0]
    assert v["allocated_mips"].tolist() == [500, 0, 500, 0, 500, 0, 500]
    assert v["t"].tolist() == pytest.approx([0, 300, 305.5, 600, 603, 900, 903])


def _arrivals(fleet: DynamicFleet) -> list[float]:
    """When each guest's move ended: its last row with ``migrating`` 1 is followed by 0."""
    out = []
    for v in fleet.record().vm_series:
        ends = np.flatnonzero((v["migrating"][:-1] == 1) & (v["migrating"][1:] == 0)) + 1
        out.extend(v["t"][ends].tolist())
    return out


@pytest.mark.parametrize("migration", ["precopy", "cloudsim"])
def test_precopy_migrations_share_the_source_nic_and_cloudsim_ones_do_not(migration):
    """Two 512 MiB VMs leave host A together (dirty rate 0: one round, an empty
    stop-and-copy). Pre-copy: both flows cross A's migration half of its NIC (50 MB/s),
    25 MB/s each; CloudSim's model gives each half the NIC whatever else moves."""
    env = simpy.Environment()
    trace = np.full((2, 3), 10, dtype=np.uint8)
    moves = MoveParams(migration=migration, dirty_mb_s=0.0, stop_mb=1.0)

    def decide(state):
        return [(0, 1), (1, 1)] if state.t == 300.0 else []
    recorder = ChangePointRecorder(["events"])
    fleet = DynamicFleet(env, two_hosts(), ("v0", "v1"), [GuestType(1000, 512)] * 2, trace,
                         lambda s: [0, 0], decide, moves=moves, recorder=recorder)
    fleet.start()
    env.run(until=900)
    alone = 512 * MB_PER_MIB / (BW / 2)
    took = 2 * alone if migration == "precopy" else alone
    assert _arrivals(fleet) == pytest.approx([300 + took, 300 + took])
    assert fleet.downtime_s == 0.0
    assert (fleet.v_host == 1).all()
    # the events table: B off from the start, on for the moves; both moves; A off after
    events = recorder.take("events")
    assert list(zip(events["kind"], events["entity"], events["host"], events["detail"],
                    strict=True)) == [
        ("host_off", "B", "B", ""), ("host_on", "B", "B", ""), ("migration", "v0", "B", "from A"),
        ("migration", "v1", "B", "from A"), ("host_off", "A", "A", "")]
    assert list(events["t"]) == pytest.approx([0, 300, 300 + took, 300 + took, 300 + took])
    assert list(events["duration_s"])[2:4] == pytest.approx([took, took])
    assert list(events["ram_mib"])[2:4] == [512.0, 512.0]


def test_container_pulls_share_the_registry_uplink():
    """Two containers leave A for B and C at once; the registry's 100 MB/s uplink carries
    both images (200 MB base + 50 MB own layer, downloaded side by side): four flows at
    25 MB/s until the own layers arrive (2 s), then the bases at 50 MB/s (3 s more):
    each pull takes 5 s where alone it would take 2.5 s."""
    env = simpy.Environment()
    hosts = [DynamicHost(n, HostCapacity(2, 1000.0, 4096.0, BW, POWER)) for n in "ABC"]
    trace = np.full((2, 3), 10, dtype=np.uint8)
    moves = MoveParams(mode="container", stop_s=2.0, start_s=1.0, base_layers_mb=(200.0,),
                       app_layer_mb=50.0, registry_mb_s=100.0)

    def decide(state):
        return [(0, 1), (1, 2)] if state.t == 300.0 else []
    fleet = DynamicFleet(env, hosts, ("c0", "c1"), [GuestType(1000, 512)] * 2, trace,
                         lambda s: [0, 0], decide, moves=moves)
    fleet.start()
    env.run(until=900)
    assert fleet.downtime_s == pytest.approx(2 * (2.0 + 5.0 + 1.0))
    assert _arrivals(fleet) == pytest.approx([308.0, 308.0])
    assert fleet.v_host.tolist() == [1, 2]


def test_block_types_are_contiguous_as_in_cloudsim():
    types = block_types(10)
    sizes = [t.mips for t in types]
    assert sizes == [2500, 2500, 2500, 2000, 2000, 2000, 1000, 1000, 1000, 500]


def test_conservation_every_guest_on_one_host_or_moving_at_every_event():
    """A day-long run of THR-MMT on a small fleet, checked after every SimPy event."""
    rng = np.random.default_rng(7)
    n_vms, n_hosts = 40, 30
    trace = rng.integers(0, 101, size=(n_vms, 48)).astype(np.uint8)
    env = simpy.Environment()
    hosts = [DynamicHost(f"h{i}", HostCapacity(2, 2660.0 if i % 2 == 0 else 1860.0, 4096.0,
                                               125.0, POWER)) for i in range(n_hosts)]
    names = tuple(f"v{i}" for i in range(n_vms))
    types = block_types(n_vms)
    policy = Consolidation(StaticThreshold(0.8), MinimumMigrationTime())
    hooks = PolicyHooks(hosts, names, policy, np.random.default_rng(0), hold_ram=False)
    fleet = DynamicFleet(env, hosts, names, types, trace, hooks.place, hooks.decide,
                         hold_ram=False, power=PowerStates(switch_on_s=30.0))
    fleet.start()
    events = 0
    while env.peek() < math.inf:
        env.step()
        events += 1
        for vm in range(n_vms):
            holders = [h for h in range(n_hosts) if vm in fleet.on[h]]
            coming = [h for h in range(n_hosts) if vm in fleet.coming[h]]
            assert holders == [fleet.v_host[vm]]
            assert coming == ([] if fleet.v_target[vm] < 0 else [fleet.v_target[vm]])
            assert fleet.h_state[fleet.v_host[vm]] == ON
        for h in range(n_hosts):
            if fleet.h_state[h] == OFF:
                assert not fleet.on[h] and not fleet.coming[h]
        assert (fleet.h_used <= fleet.h_mips + 1e-9).all()
    assert len(fleet.move_starts) > 20 and events > 100
