"""Consolidation policies (docs/model.md §12): each detector and selection on a crafted
history, worked out by hand; PABFD and the underload step on small fleets; invariants of
a round over random fleets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.numerics.power import LinearPower
from fleet_sim.policies.consolidation import (
    Consolidation,
    HostCapacity,
    HostLoad,
    HostView,
    InterQuartileRange,
    LocalRegression,
    MaximumCorrelation,
    MedianAbsoluteDeviation,
    MinimumMigrationTime,
    MinimumUtilization,
    RandomSelection,
    StaticThreshold,
    VmView,
    host_load,
    iqr,
    migration_time_s,
    trend,
)
from fleet_sim.policies.registry import consolidation_policy

CAP = HostCapacity(cores=2, core_mips=1000.0, ram_mib=4096.0, bandwidth_mb_s=125.0,
                   power=LinearPower(100.0, 200.0))
STEEP = HostCapacity(2, 1000.0, 4096.0, 125.0, LinearPower(50.0, 250.0))  # twice CAP's rise


def load(utilization: float, history=(), migration_s: float = 0.0) -> HostLoad:
    return HostLoad(utilization, np.asarray(history, dtype=float), migration_s)


def vm(name: str, demand: float, ram: float = 870.0, mips: float = 1000.0,
       history=(), **kw) -> VmView:
    return VmView(name, mips, demand, ram, history, **kw)


def host(name: str, *vms: VmView, cap: HostCapacity = CAP) -> HostView:
    return HostView(name, cap, vms, min(sum(v.demand_mips for v in vms), cap.mips))


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- the host's load -------------------------------------------------------------------------


def test_host_load_sums_vm_histories_aligned_on_the_newest_and_trims_leading_zeros():
    a = vm("a", 500, ram=1000, mips=1000, history=[0.2, 0.4])         # × 1000/2000
    b = vm("b", 250, ram=613, mips=500, history=[0.0, 0.8, 0.6])      # × 500/2000
    c = vm("c", 0, mips=2000, history=[0.0, 0.5, 0.0, 0.0, 0.0])      # × 1; a zero inside
    got = host_load(CAP, [a, b, c])
    np.testing.assert_allclose(got.history, [0.5, 0.0, 0.1 + 0.2, 0.2 + 0.15])
    assert got.utilization == 750 / 2000
    assert got.migration_s == pytest.approx(1000 * 1.048576 / 62.5)  # largest RAM, half the link


def test_migration_time_is_ram_over_half_the_bandwidth():
    assert migration_time_s(1e6 / 2**20 * 125.0, 250.0) == pytest.approx(1.0)


# --- detectors -------------------------------------------------------------------------------


def test_thr_fires_strictly_above_its_threshold():
    assert not StaticThreshold(0.8).overloaded(load(0.8))
    assert StaticThreshold(0.8).overloaded(load(0.81))


def test_iqr_uses_cloudsims_quartile_ranks():
    history = 0.05 * np.arange(1, 13)  # 0.05 … 0.60, 12 samples
    # ranks round(13/4) = 3 and round(39/4) = 10: IQR = 0.50 − 0.15 = 0.35
    assert iqr(history) == pytest.approx(0.35)
    detector = InterQuartileRange(1.5)  # threshold 1 − 1.5 × 0.35 = 0.475
    assert not detector.overloaded(load(0.47, history))
    assert detector.overloaded(load(0.48, history))


def test_adaptive_detectors_fall_back_to_thr_0_7_with_fewer_than_12_samples():
    short = 0.05 * np.arange(1, 12)  # 11 samples
    for detector in (InterQuartileRange(1.5), MedianAbsoluteDeviation(2.5)):
        assert not detector.overloaded(load(0.7, short))
        assert detector.overloaded(load(0.71, short))


def test_mad_threshold_is_one_minus_safety_times_mad():
    history = [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.6, 0.9]
    # median 0.35; deviations' median 0.15; threshold 1 − 2.5 × 0.15 = 0.625
    detector = MedianAbsoluteDeviation(2.5)
    assert not detector.overloaded(load(0.62, history))
    assert detector.overloaded(load(0.63, history))


def test_trend_is_the_least_squares_line_at_x_1_to_n():
    intercept, slope = trend(np.array([1.0, 2.0, 4.0]))
    assert (intercept, slope) == (pytest.approx(-2 / 3), pytest.approx(1.5))


def test_lr_extrapolates_the_newest_ten_samples_past_the_longest_migration():
    # line 0.07·x through x = 1…10; 5 older samples that would change any fit
    history = [1.0] * 5 + [0.07 * x for x in range(1, 11)]
    lr = LocalRegression(1.2, interval_s=300.0)
    # migration 100 s → 1 interval: 1.2 × 0.07 × 11 = 0.924 < 1
    assert not lr.overloaded(load(0.0, history, migration_s=100.0))
    # migration 400 s → 2 intervals: 1.2 × 0.07 × 12 = 1.008 >= 1
    assert lr.overloaded(load(0.0, history, migration_s=400.0))


def test_lr_falls_back_to_thr_with_fewer_than_ten_samples():
    history = [0.5] * 9
    assert not LocalRegression(1.2).overloaded(load(0.7, history))
    assert LocalRegression(1.2).overloaded(load(0.71, history))


def test_lrr_is_cloudsims_lr():
    assert consolidation_policy("lrr-mmt").detector == consolidation_policy("lr-mmt").detector
    assert consolidation_policy("lrr-mmt", 1.3).detector == LocalRegression(1.3)


def test_negative_safety_is_refused():
    with pytest.raises(ValueError, match="safety must be a number >= 0"):
        InterQuartileRange(-1)


# --- selection -------------------------------------------------------------------------------


def test_mmt_takes_the_least_ram_first_of_ties():
    vms = [vm("a", 1, ram=1740), vm("b", 1, ram=613), vm("c", 1, ram=613)]
    assert MinimumMigrationTime().select(vms, rng()).name == "b"


def test_mu_compares_each_vms_share_of_its_own_mips_first_of_ties():
    vms = [vm("a", 500, mips=2500), vm("b", 200, mips=1000), vm("c", 100, mips=100)]
    assert MinimumUtilization().select(vms, rng()).name == "a"  # 0.2, 0.2, 1.0


def test_rs_draws_uniformly_from_the_injected_generator():
    vms = [vm(n, 1) for n in "abc"]
    draws = [RandomSelection().select(vms, g).name for g in [rng(7)] for _ in range(60)]
    again = [RandomSelection().select(vms, g).name for g in [rng(7)] for _ in range(60)]
    assert draws == again
    assert draws == [vms[int(k)].name for k in
                     (lambda g: [g.integers(3) for _ in range(60)])(rng(7))]
    assert set(draws) == {"a", "b", "c"}


def _r2_two_regressors(y, x1, x2) -> float:
    """R² of y on x1, x2 (and an intercept) from the pairwise correlations."""
    r = np.corrcoef([y, x1, x2])
    r1, r2, r12 = r[0, 1], r[0, 2], r[1, 2]
    return (r1**2 + r2**2 - 2 * r1 * r2 * r12) / (1 - r12**2)


def test_mc_takes_the_vm_best_explained_by_the_others():
    h = {"a": [0.1, 0.5, 0.2, 0.4, 0.3, 0.9], "b": [0.2, 0.4, 0.3, 0.5, 0.2, 0.8],
         "c": [0.6, 0.1, 0.5, 0.2, 0.7, 0.1]}
    names = list(h)
    r2 = {n: _r2_two_regressors(*(h[n], *(h[m] for m in names if m != n))) for n in names}
    expected = max(names, key=r2.get)
    vms = [vm(n, 1, history=h[n]) for n in names]
    assert MaximumCorrelation().select(vms, rng()).name == expected
    assert len(set(np.round(list(r2.values()), 6))) == 3  # no tie in this case


def test_mc_uses_only_the_newest_common_samples():
    vms = [vm("a", 1, history=[9, 9, 9, 0.1, 0.5, 0.2, 0.4, 0.3, 0.9]),
           vm("b", 1, history=[0.2, 0.4, 0.3, 0.5, 0.2, 0.8]),
           vm("c", 1, history=[0.6, 0.1, 0.5, 0.2, 0.7, 0.1])]
    trimmed = [vm(v.name, 1, history=list(v.history)[-6:]) for v in vms]
    pick = MaximumCorrelation().select
    assert pick(vms, rng()).name == pick(trimmed, rng()).name


def test_mc_with_no_positive_r2_takes_the_first_vm():
    vms = [vm(n, 1, ram=r, history=[0.3] * 8) for n, r in (("a", 1740), ("b", 613), ("c", 870))]
    assert MaximumCorrelation().select(vms, rng()).name == "a"  # constant: R² undefined


def test_mc_falls_back_to_mmt_without_enough_samples():
    vms = [vm(n, 1, ram=r, history=[0.1, 0.5, 0.2]) for n, r in
           (("a", 1740), ("b", 613), ("c", 870))]  # 3 samples, 3 VMs: no degree of freedom
    assert MaximumCorrelation().select(vms, rng()).name == "b"


def test_every_selection_returns_none_without_candidates():
    for selection in (MinimumMigrationTime(), MinimumUtilization(), RandomSelection(),
                      MaximumCorrelation()):
        assert selection.select([], rng()) is None


# --- placement (PABFD) -----------------------------------------------------------------------


def test_pabfd_takes_the_least_power_rise_unless_that_host_would_be_overloaded():
    flat, steep = CAP, STEEP  # +25 W, +50 W for 500 MIPS
    policy = Consolidation(StaticThreshold(0.8), MinimumMigrationTime())
    new = vm("new", 500)
    hosts = [host("steep", vm("s", 100), cap=steep), host("flat", vm("f", 1100), cap=flat)]
    assert policy.place([new], hosts) == ("flat",)   # 1600 / 2000 = 0.8: not above 0.8
    hosts = [host("steep", vm("s", 100), cap=steep), host("flat", vm("f", 1200), cap=flat)]
    assert policy.place([new], hosts) == ("steep",)  # flat would reach 0.85
    assert policy.place([new], hosts, excluded=["steep"]) == (None,)


def test_pabfd_places_vms_in_turn_each_seeing_the_ones_before():
    policy = Consolidation(StaticThreshold(0.8), MinimumMigrationTime())
    hosts = [host("steep", vm("s", 100), cap=STEEP), host("flat", vm("f", 600))]
    # the first fills flat to 0.8 (1600 MIPS); the second no longer fits there: steep
    assert policy.place([vm("a", 1000), vm("b", 500)], hosts) == ("flat", "steep")


def test_pabfd_ignores_the_detector_on_an_idle_host_and_breaks_ties_by_host_order():
    policy = Consolidation(StaticThreshold(0.8), MinimumMigrationTime())
    big = vm("big", 1900, vcpus=2, mips=2000)
    assert policy.place([big], [host("h0"), host("h1")]) == ("h0",)  # 0.95, but hosts are idle


@pytest.mark.parametrize(("new", "why"), [
    (vm("new", 1001), "one vCPU above a core's MIPS"),
    (vm("new", 300, ram=4096 - 869), "RAM"),
    (vm("new", 300, bandwidth_mb_s=100.0), "bandwidth"),
    (vm("new", 1600, vcpus=2, mips=2000), "CPU left"),
])
def test_pabfd_places_only_where_the_vm_fits(new, why):
    policy = Consolidation(StaticThreshold(1.0), MinimumMigrationTime())
    occupied = host("h0", vm("x", 500, bandwidth_mb_s=50.0))
    assert policy.place([new], [occupied]) == (None,), why


# --- a round ---------------------------------------------------------------------------------


def test_round_moves_the_least_ram_vm_of_an_overloaded_host_to_the_first_cheapest_host():
    hosts = [host("h0", vm("v1", 900, ram=1740), vm("v2", 800, ram=870)),  # 0.85: overloaded
             host("h1", vm("v3", 200)), host("h2", cap=STEEP)]
    plan = consolidation_policy("thr-mmt").plan(hosts, rng())
    # v2 goes; h0 is left at 0.45. h1 rises 40 W, h2 80 W: h1 (at 0.5).
    # h2 is idle and h1 received a VM, so no host is left to empty.
    assert [(m.vm, m.source, m.target) for m in plan.migrations] == [("v2", "h0", "h1")]
    assert plan.overloaded == ("h0",) and plan.emptied == ()


def test_round_empties_the_least_utilized_host_when_all_its_vms_fit_elsewhere():
    hosts = [host("h0", vm("v1", 300)), host("h1", vm("v3", 600)),
             host("h2", vm("v4", 1000), cap=STEEP)]
    plan = consolidation_policy("thr-mmt").plan(hosts, rng())
    # h0 (0.15) → h1 (15 W more, at 0.45; h2 would rise 30 W).
    # Then h2 (0.5): h1 would reach 0.95, h0 is emptied: v4 stays.
    assert [(m.vm, m.source, m.target) for m in plan.migrations] == [("v1", "h0", "h1")]
    assert plan.emptied == ("h0",) and plan.overloaded == ()


def test_an_underloaded_host_moves_all_its_vms_or_none():
    hosts = [host("h0", vm("v1", 400), vm("v2", 500)),  # 0.45: v2 fits on h1, then v1 not
             host("h1", vm("v3", 1000))]
    plan = consolidation_policy("thr-mmt").plan(hosts, rng())
    assert plan.migrations == () and plan.emptied == ()


def test_vms_in_migration_are_neither_picked_nor_moved():
    moving = vm("moving", 900, ram=613, migrating_out=True)
    hosts = [host("h0", moving, vm("v2", 800, ram=870)), host("h1", vm("v3", 100)),
             host("h2", cap=STEEP)]
    plan = consolidation_policy("thr-mmt").plan(hosts, rng())
    assert [m.vm for m in plan.migrations] == ["v2"]
    arriving = vm("arriving", 100, migrating_in=True)
    assert consolidation_policy("thr-mmt").plan([host("h0", arriving), host("h1", vm("x", 100))],
                                                rng()).emptied == ("h1",)


def test_unknown_policy_names_list_the_valid_parts():
    with pytest.raises(ValueError, match="unknown overload detector 'foo'; valid names: "
                                         "iqr, lr, lrr, mad, thr"):
        consolidation_policy("foo-mmt")
    with pytest.raises(ValueError, match="unknown VM selection policy 'x'; valid names: "
                                         "mc, mmt, mu, rs"):
        consolidation_policy("thr-x")
    with pytest.raises(ValueError, match="<detector>-<selection>"):
        consolidation_policy("thr")


def test_the_threshold_is_the_detectors_parameter():
    assert consolidation_policy("thr-mu", 0.9).detector == StaticThreshold(0.9)
    assert consolidation_policy("iqr-rs").detector == InterQuartileRange(1.5)
    assert consolidation_policy("mad-mc", 2.0).detector == MedianAbsoluteDeviation(2.0)


# --- invariants over random fleets -----------------------------------------------------------

POLICIES = [f"{d}-{s}" for d in ("thr", "iqr", "mad", "lr") for s in ("mmt", "mc", "mu", "rs")]


@st.composite
def fleets(draw) -> list[HostView]:
    hosts = []
    for h in range(draw(st.integers(1, 6))):
        vms, ram = [], 0.0
        for k in range(draw(st.integers(0, 4))):
            size = draw(st.sampled_from([613.0, 870.0, 1740.0]))
            if ram + size > CAP.ram_mib:
                break
            ram += size
            mips = draw(st.sampled_from([500.0, 1000.0]))
            history = draw(st.lists(st.floats(0, 1), min_size=0, max_size=15))
            vms.append(vm(f"h{h}v{k}", mips * draw(st.floats(0, 1)), ram=size, mips=mips,
                          history=history, migrating_out=draw(st.booleans()) and k == 0))
        hosts.append(host(f"h{h}", *vms))
    return hosts


@settings(max_examples=60, deadline=None)
@given(fleets(), st.sampled_from(POLICIES), st.integers(0, 2**32 - 1))
def test_a_round_keeps_every_vm_on_one_host_within_capacity(hosts, name, seed):
    policy = consolidation_policy(name)
    plan = policy.plan(hosts, rng(seed))
    assert plan == policy.plan(hosts, rng(seed))
    where = {v.name: h.name for h in hosts for v in h.vms}
    moved = [m.vm for m in plan.migrations]
    assert len(moved) == len(set(moved))
    vms = {v.name: v for h in hosts for v in h.vms}
    for m in plan.migrations:
        assert where[m.vm] == m.source != m.target
        assert not vms[m.vm].in_migration
        assert m.target not in plan.overloaded
        where[m.vm] = m.target
    assert sorted(where) == sorted(vms)  # every VM on exactly one host
    targets = {m.target for m in plan.migrations}
    for h in hosts:
        on = [vms[n] for n, at in where.items() if at == h.name]
        if h.name in targets:
            assert sum(v.demand_mips for v in on) <= CAP.mips * (1 + 1e-12)
        assert sum(v.ram_mib for v in on) <= CAP.ram_mib
    for name_ in plan.emptied:
        assert all(vms[n].in_migration for n, at in where.items() if at == name_)


@settings(max_examples=60, deadline=None)
@given(fleets(), st.sampled_from(POLICIES))
def test_no_host_that_received_a_vm_is_left_overloaded_unless_it_was_idle(hosts, name):
    policy = consolidation_policy(name)
    plan = policy.plan(hosts, rng(0))
    vms = {v.name: v for h in hosts for v in h.vms}
    by_name = {h.name: h for h in hosts}
    for target in {m.target for m in plan.migrations}:
        if by_name[target].used_mips == 0:
            continue
        final = [vms[v.name] for v in by_name[target].vms
                 if v.name not in {m.vm for m in plan.migrations}]
        final += [vms[m.vm] for m in plan.migrations if m.target == target]
        assert not policy.detector.overloaded(host_load(CAP, final))
