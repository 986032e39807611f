"""The batch forms of the consolidation policies decide exactly as their one-at-a-time
definitions: detectors over many hosts, MC's R² from the correlation matrix, VM views and
their columns built at once (docs/model.md §12)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.model.views import HostCapacity
from fleet_sim.numerics.power import LinearPower
from fleet_sim.policies.consolidation import (
    HISTORY_LENGTH,
    Consolidation,
    HostView,
    InterQuartileRange,
    LocalRegression,
    MaximumCorrelation,
    MedianAbsoluteDeviation,
    MinimumMigrationTime,
    MinimumUtilization,
    OverloadDetector,
    StaticThreshold,
    VmColumns,
    VmView,
    _Round,
    determination,
    host_load,
    host_loads,
    iqr,
    mad,
    overloaded_hosts,
    vm_views,
)

DETECTORS = [StaticThreshold(0.8), InterQuartileRange(1.5), MedianAbsoluteDeviation(2.5),
             LocalRegression(1.2), InterQuartileRange(0.5, fallback=StaticThreshold(0.9))]


def random_loads(seed: int, n: int = 200):
    """Hosts of two sizes whose histories (whole percentages of four VM sizes) start
    after 0 to ``HISTORY_LENGTH`` leading zeros."""
    rng = np.random.default_rng(seed)
    history = rng.integers(0, 100, (n, HISTORY_LENGTH)) * rng.choice(
        [5.0, 10.0, 20.0, 25.0], (n, 1))
    for k, zeros in enumerate(rng.integers(0, HISTORY_LENGTH + 1, n)):
        history[k, :zeros] = 0.0
    return host_loads(rng.uniform(0, 6000, n), history, rng.choice([613.0, 870.0, 1740.0], n),
                      rng.choice([3720.0, 5320.0], n), np.full(n, 125.0))


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: type(d).__name__)
@pytest.mark.parametrize("seed", range(5))
def test_batch_verdicts_are_those_host_by_host(detector: OverloadDetector, seed: int):
    loads = random_loads(seed)
    one_by_one = [detector.overloaded(loads.load(k)) for k in range(len(loads))]
    assert overloaded_hosts(detector, loads).tolist() == one_by_one
    assert 0 < sum(one_by_one) < len(loads)  # both verdicts occur


def test_batch_verdict_on_the_boundary_is_the_one_host_verdict():
    # utilization exactly at the threshold: not overloaded (> is strict), batch or not
    loads = host_loads(np.array([0.8 * 5320.0, 4300.0]), np.zeros((2, HISTORY_LENGTH)),
                       np.array([870.0, 870.0]), np.array([5320.0, 5320.0]),
                       np.array([125.0, 125.0]))
    assert overloaded_hosts(StaticThreshold(0.8), loads).tolist() == [False, True]


def test_a_detector_without_a_batch_form_is_asked_host_by_host():
    @dataclasses.dataclass(frozen=True)
    class Busy:  # overloaded when it has at least 20 samples
        def overloaded(self, load) -> bool:
            return load.history.size >= 20

    loads = random_loads(0)
    assert overloaded_hosts(Busy(), loads).tolist() == (loads.samples >= 20).tolist()


def least_squares_choice(data: np.ndarray) -> int:
    """MC's choice as defined: the first row with the largest R² > 0, else row 0."""
    best, best_r2 = 0, 0.0
    for i in range(len(data)):
        r2 = determination(data[i], np.delete(data, i, axis=0).T)
        if r2 > best_r2:
            best, best_r2 = i, r2
    return best


@pytest.mark.parametrize("seed", range(4))
def test_mc_chooses_as_least_squares_does_with_constant_duplicate_and_zero_rows(seed: int):
    rng = np.random.default_rng(seed)
    policy, choices = MaximumCorrelation(), set()
    for trial in range(150):
        k = int(rng.integers(2, 9))
        m = int(rng.integers(k + 1, HISTORY_LENGTH + 1))
        data = rng.integers(0, 100, (k, m)) / 100.0
        kind = trial % 5
        if kind == 1:
            data[int(rng.integers(k))] = data[0, 0]  # a constant row
        elif kind == 2 and k > 2:
            data[1] = data[2]  # two VMs with the same history
        elif kind == 3:
            data[:, : m // 2] = 0.0
        elif kind == 4:
            data = np.round(data * 3) / 3  # a few levels only: ties
        vms = [VmView(f"v{i}", 1000.0, 500.0, 870.0, tuple(data[i])) for i in range(k)]
        chosen = policy.select(vms, np.random.default_rng(0))
        assert chosen is vms[least_squares_choice(data)]
        choices.add(int(chosen.name[1:]))
    assert len(choices) > 2


def test_vm_views_are_the_views_one_by_one():
    history = [(0.0, 0.1), (0.2,)]
    fast = vm_views(["a", "b"], [1000.0, 2500.0], [10.0, 20.0], [870.0, 613.0],
                    history, [1, 2], 0.0)
    slow = [VmView("a", 1000.0, 10.0, 870.0, history[0], 1, reserved_ram_mib=0.0),
            VmView("b", 2500.0, 20.0, 613.0, history[1], 2, reserved_ram_mib=0.0)]
    for f, s in zip(fast, slow, strict=True):
        assert dataclasses.asdict(f) == dataclasses.asdict(s)
        assert f.held_ram_mib == 0.0 and not f.in_migration
        with pytest.raises(dataclasses.FrozenInstanceError):
            f.demand_mips = 1.0  # type: ignore[misc]


def test_vm_columns_of_short_histories_are_right_aligned_in_mips():
    cols = VmColumns.of([VmView("a", 1000.0, 10.0, 870.0, (0.1, 0.2)),
                         VmView("b", 2000.0, 30.0, 613.0, (0.5,), reserved_ram_mib=0.0)])
    assert cols.history_mips.shape == (2, HISTORY_LENGTH)
    assert cols.history_mips[0, -2:].tolist() == [100.0, 200.0]
    assert cols.history_mips[1, -1] == 1000.0 and not cols.history_mips[:, :-2].any()
    assert cols.held_ram_mib.tolist() == [870.0, 0.0]


def random_vms(rng: np.random.Generator, n: int) -> list[VmView]:
    """VMs of few RAM sizes and demands, so that keys tie."""
    return [VmView(f"v{k}", float(rng.choice([500.0, 1000.0])), float(rng.choice([0, 100, 250])),
                   float(rng.choice([613.0, 870.0, 1740.0])), (0.1,) * HISTORY_LENGTH)
            for k in range(n)]


@pytest.mark.parametrize("selection", [MinimumMigrationTime(), MinimumUtilization()],
                         ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("seed", range(5))
def test_keyed_picks_in_one_sort_are_the_picks_one_at_a_time(selection, seed: int):
    vms = random_vms(np.random.default_rng(seed), 40)
    rng = np.random.default_rng(0)
    one_at_a_time, left = [], list(vms)
    while (vm := selection.select(list(left), rng)) is not None:
        left.remove(vm)
        one_at_a_time.append(vm.name)
    policy = Consolidation(StaticThreshold(0.8), selection)
    assert [v.name for v in policy._picks(list(vms), rng)] == one_at_a_time


@pytest.mark.parametrize("seed", range(5))
def test_a_rounds_running_sums_stay_those_of_its_vms(seed: int):
    """Random adds and removes: each host's largest RAM and demand are its VMs' (the
    largest kept by a count of VMs at it); each host's power rise is the curve's rise."""
    rng = np.random.default_rng(seed)
    caps = [HostCapacity(2, 1000.0, 4096.0, 125.0, LinearPower(100.0, 200.0)),
            HostCapacity(2, 1500.0, 4096.0, 125.0, LinearPower(80.0, 250.0))]
    vms = random_vms(rng, 30)
    hosts = [HostView(f"h{i}", caps[i % 2], tuple(vms[i::6]), 300.0 * i) for i in range(6)]
    state = _Round(hosts, StaticThreshold(0.8))
    where = {id(v): i for i in range(6) for v in vms[i::6]}
    for _ in range(200):
        vm = vms[int(rng.integers(len(vms)))]
        state.remove(where[id(vm)], vm)
        where[id(vm)] = int(rng.integers(6))
        state.add(where[id(vm)], vm)
        for i in range(6):
            on = [v for v in vms if where[id(v)] == i]
            assert state.max_ram[i] == max((v.ram_mib for v in on), default=0.0)
            assert state.demand[i] == pytest.approx(sum(v.demand_mips for v in on), abs=1e-9)
    d = 250.0
    expected = [caps[i % 2].power.power_w((300.0 * i + d) / caps[i % 2].mips)
                - caps[i % 2].power.power_w(300.0 * i / caps[i % 2].mips) for i in range(6)]
    assert state.rise(d).tolist() == pytest.approx(expected, rel=1e-12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 100), min_size=4, max_size=HISTORY_LENGTH),
       st.sampled_from([500.0, 870.0, 2500.0]))
def test_iqr_and_mad_of_one_history_are_numpys(percent: list[int], mips: float):
    h = np.array(percent) * mips / 100.0 / 3720.0  # whole percentages of a VM on a host
    assert mad(h) == float(np.median(np.abs(h - np.median(h))))
    s, n = np.sort(h), h.size
    assert iqr(h) == float(s[math.floor(0.75 * (n + 1) + 0.5) - 1]
                           - s[math.floor(0.25 * (n + 1) + 0.5) - 1])


def pabfd_by_definition(state: _Round, hosts: list[HostView], vm: VmView,
                        excluded: np.ndarray, detector: OverloadDetector) -> int | None:
    """The first host, by power rise then host order, where ``vm`` fits and that is idle
    or not overloaded with it (the detector on :func:`host_load` of its VMs and ``vm``)."""
    for i in np.argsort(state.rise(vm.demand_mips), kind="stable").tolist():
        cap, on = hosts[i].capacity, hosts[i].vms
        fits = (not excluded[i]
                and cap.ram_mib - sum(v.held_ram_mib for v in on) >= vm.held_ram_mib
                and cap.mips - sum(v.demand_mips for v in on) >= vm.demand_mips
                and cap.core_mips >= vm.demand_mips / vm.vcpus)
        if fits and (hosts[i].used_mips == 0
                     or not detector.overloaded(host_load(cap, [*on, vm]))):
            return i
    return None


@pytest.mark.parametrize("detector", [*DETECTORS[1:3], LocalRegression(2.0), DETECTORS[4]],
                         ids=lambda d: type(d).__name__)
def test_pabfd_takes_the_first_cheapest_host_the_detector_accepts(detector):
    rng = np.random.default_rng(0)
    caps = [HostCapacity(2, 1860.0, 4096.0, 125.0, LinearPower(86.0, 117.0)),
            HostCapacity(2, 2660.0, 4096.0, 125.0, LinearPower(93.7, 135.0))]

    def a_vm(name: str) -> VmView:
        mips = float(rng.choice([500.0, 1000.0, 2000.0, 2500.0]))
        history = tuple(rng.integers(0, 100, int(rng.integers(5, HISTORY_LENGTH + 1))) / 100.0)
        return VmView(name, mips, history[-1] * mips, float(rng.choice([613.0, 870.0])),
                      history)

    cheapest_refused = 0
    for fleet in range(4):
        hosts = []
        for i in range(24):
            on = tuple(a_vm(f"h{i}v{k}") for k in range(int(rng.integers(0, 5))))
            hosts.append(HostView(f"h{i}", caps[i % 2], on, sum(v.demand_mips for v in on)))
        state = _Round(hosts, detector)
        for trial in range(50):  # each VM a new object: a round must not confuse their ids
            vm, excluded = a_vm(f"new{trial}"), rng.random(len(hosts)) < 0.2
            expected = pabfd_by_definition(state, hosts, vm, excluded, detector)
            assert state.best_host(vm, excluded) == expected, (fleet, trial)
            fitting = pabfd_by_definition(state, hosts, vm, excluded, _Never())
            cheapest_refused += expected != fitting
    assert cheapest_refused > 0  # the detector turned the cheapest host down


@dataclasses.dataclass(frozen=True)
class _Never:
    """A detector that never fires."""

    def overloaded(self, load) -> bool:
        return False
