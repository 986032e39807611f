"""Placement policies: hand cases and invariants over random fleets
(docs/model.md §7)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.model.views import FleetView, HostView, PlacementRequest
from fleet_sim.policies.placement import BestFit, FirstFit, WorstFit, leftover, leftovers
from fleet_sim.policies.registry import PLACEMENT_POLICIES, placement_policy

POLICIES = [FirstFit(), BestFit(), WorstFit()]


def fleet(*free_cores: float, cores: float = 8.0) -> FleetView:
    return FleetView(tuple(HostView(f"h{i}", cores, 1000.0, committed_cpu_cores=cores - f)
                           for i, f in enumerate(free_cores)))


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_first_fit_takes_the_first_host_with_room():
    assert FirstFit().place(PlacementRequest("a", 2, 10), fleet(1, 2, 4), rng()) == "h1"


def test_best_fit_takes_the_host_left_fullest():
    assert BestFit().place(PlacementRequest("a", 1, 10), fleet(4, 1, 2), rng()) == "h1"


def test_worst_fit_spreads_to_the_emptiest_host():
    assert WorstFit().place(PlacementRequest("a", 1, 10), fleet(1, 4, 2), rng()) == "h1"


def test_none_when_nothing_fits():
    for policy in POLICIES:
        assert policy.place(PlacementRequest("a", 5, 10), fleet(1, 4, 2), rng()) is None


def test_overcommit_ratio_multiplies_the_shared_cores():
    host = HostView("h", 4, 1000, cpu_ratio=2.0, committed_cpu_cores=4)
    assert host.fits(PlacementRequest("vm", 4, 10))
    assert not host.fits(PlacementRequest("vm", 5, 10))


def test_dedicated_cores_leave_the_overcommitted_rest_for_shared_vcpus():
    # 8 cores, ratio 2, 8 shared vCPUs committed: pinning 4 leaves (8-4)*2 = 8: fits
    host = HostView("h", 8, 1000, cpu_ratio=2.0, committed_cpu_cores=8)
    assert host.fits(PlacementRequest("p", 4, 10, dedicated=True))
    assert not host.fits(PlacementRequest("p", 5, 10, dedicated=True))


def test_a_conflicting_dependency_version_excludes_a_host():
    hosts = FleetView((
        HostView("h0", 8, 1000, dependencies=(("postgres", "13"),)),
        HostView("h1", 8, 1000, dependencies=(("postgres", "12"), ("redis", "6"))),
    ))
    req = PlacementRequest("a", 1, 10, dependencies=(("postgres", "12"),))
    for policy in POLICIES:
        assert policy.place(req, hosts, rng()) == "h1"
    assert "postgres 12 (installed: 13)" in hosts.hosts[0].why_not(req)


def test_ties_are_broken_by_the_injected_rng():
    hosts = fleet(8, 8, 8, 8)
    req = PlacementRequest("a", 1, 10)
    picks = {BestFit().place(req, hosts, rng(seed)) for seed in range(40)}
    assert picks == {"h0", "h1", "h2", "h3"}
    assert BestFit().place(req, hosts, rng(7)) == BestFit().place(req, hosts, rng(7))


def test_the_registry_names_the_three_policies():
    assert set(PLACEMENT_POLICIES) == {"first-fit", "best-fit", "worst-fit"}
    assert isinstance(placement_policy("worst-fit"), WorstFit)
    with pytest.raises(ValueError, match="valid names: best-fit, first-fit, worst-fit"):
        placement_policy("random-fit")


# ---------------------------------------------------------------------------- properties

VERSIONS = st.sampled_from(["1", "2"])
DEPS = st.dictionaries(st.sampled_from(["postgres", "redis", "python"]), VERSIONS, max_size=2)
host_params = st.tuples(
    st.sampled_from([2.0, 4.0, 8.0, 32.0]),              # cores
    st.sampled_from([1024.0, 4096.0, 65536.0]),          # RAM, MiB
    st.sampled_from([1.0, 1.5, 2.0, 4.0]),               # overcommit ratio
    st.floats(0.0, 1.0),                                 # share of shared CPU committed
    st.sampled_from([0.0, 1.0, 2.0]),                    # dedicated cores
    st.floats(0.0, 1.0),                                 # share of RAM reserved
    DEPS,
    st.sampled_from([True, True, True, False]),          # up
)


def host_view(i: int, p: tuple) -> HostView:
    cores, ram, ratio, used, ded, res, deps, up = p
    ded = min(ded, cores)
    return HostView(f"h{i}", cores, ram, ratio, committed_cpu_cores=used * (cores - ded) * ratio,
                    dedicated_cores=ded, reserved_ram_mib=res * ram,
                    dependencies=tuple(sorted(deps.items())), up=up)


fleets = st.lists(host_params, max_size=12).map(
    lambda ps: FleetView(tuple(host_view(i, p) for i, p in enumerate(ps))))
requests = st.builds(
    lambda cpu, ram, deps, ded: PlacementRequest("r", cpu, ram, tuple(sorted(deps.items())), ded),
    st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0, 8.0]), st.sampled_from([128.0, 1024.0, 8192.0]),
    DEPS, st.booleans())


def satisfies(h: HostView, r: PlacementRequest) -> bool:
    """Every constraint, written out independently of HostView.fits."""
    eps = 1e-9
    if not h.up or h.reserved_ram_mib + r.ram_mib > h.ram_mib + eps:
        return False
    if r.dedicated:
        shared = h.cores - h.dedicated_cores - r.cpu_cores
        cpu_ok = shared >= -eps and h.committed_cpu_cores <= shared * h.cpu_ratio + eps
    else:
        cpu_ok = (h.committed_cpu_cores + r.cpu_cores
                  <= (h.cores - h.dedicated_cores) * h.cpu_ratio + eps)
    installed = dict(h.dependencies)
    return cpu_ok and all(installed.get(d, v) == v for d, v in r.dependencies)


@settings(max_examples=300, deadline=None)
@given(fleets, requests, st.integers(0, 2**32 - 1))
def test_placement_never_violates_a_constraint_and_is_none_iff_nothing_fits(hosts, req, seed):
    by_name = {h.name: h for h in hosts}
    anything = any(satisfies(h, req) for h in hosts)
    for policy in POLICIES:
        chosen = policy.place(req, hosts, rng(seed))
        assert (chosen is not None) == anything
        if chosen is not None:
            assert satisfies(by_name[chosen], req)
        # deterministic for a fixed stream
        assert policy.place(req, hosts, rng(seed)) == chosen


@given(st.floats(0, 32), st.floats(0, 8), st.floats(0, 4096), st.floats(0.5, 4),
       st.floats(0.1, 8), st.floats(1, 2048), st.booleans())
def test_leftover_is_the_placed_views_free_shares(committed, dedicated, reserved, ratio,
                                                  cpu, ram, pinned):
    view = HostView(name="h", cores=32, ram_mib=8192, cpu_ratio=ratio,
                    committed_cpu_cores=committed, dedicated_cores=dedicated,
                    reserved_ram_mib=reserved)
    request = PlacementRequest(name="a", cpu_cores=cpu, ram_mib=ram, dedicated=pinned)
    after = view.with_placed(request)
    expected = after.free_cpu_cores / view.cpu_capacity_cores + after.free_ram_mib / 8192
    assert leftover(view, request) == expected


def reference_place(policy, req: PlacementRequest, fleet: FleetView, generator):
    """The policies one host at a time (HostView.fits, leftover), as they were written
    before they scored the fleet's columns at once."""
    if isinstance(policy, FirstFit):
        return next((v.name for v in fleet.hosts if v.fits(req)), None)
    best: list[str] = []
    best_score = 0.0
    for view in fleet.hosts:
        if not view.fits(req):
            continue
        score = policy.sign * leftover(view, req)
        if not best or score < best_score:
            best, best_score = [view.name], score
        elif score == best_score:
            best.append(view.name)
    if not best:
        return None
    return best[0] if len(best) == 1 else best[int(generator.integers(len(best)))]


# fleets with many equal hosts, so that ties (and the rng's draw among them) are common
tied_fleets = st.lists(st.sampled_from([0, 1, 2]), max_size=40).flatmap(
    lambda kinds: st.lists(host_params, min_size=3, max_size=3).map(
        lambda ps: FleetView(tuple(host_view(i, ps[k]) for i, k in enumerate(kinds)))))


@settings(max_examples=300, deadline=None)
@given(st.one_of(fleets, tied_fleets), requests, st.integers(0, 2**32 - 1))
def test_scoring_the_columns_at_once_places_as_one_host_at_a_time(hosts, req, seed):
    """Same host, same draws from the stream, the same floats as HostView's arithmetic."""
    assert hosts.fits(req).tolist() == [h.fits(req) for h in hosts]
    assert leftovers(hosts.table, req).tolist() == [leftover(h, req) for h in hosts]
    for policy in POLICIES:
        ours, theirs = rng(seed), rng(seed)
        assert policy.place(req, hosts, ours) == reference_place(policy, req, hosts, theirs)
        assert ours.integers(2**32) == theirs.integers(2**32)


@settings(max_examples=100, deadline=None)
@given(fleets, st.lists(st.tuples(st.integers(0, 11), host_params), max_size=6))
def test_an_updated_fleet_has_the_columns_of_a_fleet_built_afresh(hosts, changes):
    _ = hosts.table  # built, then carried over by updated()
    changes = {i: host_view(i, p) for i, p in changes if i < len(hosts)}
    after = hosts.updated(changes)
    fresh = FleetView(after.hosts)
    assert after == fresh
    theirs = fresh.table.columns()
    for name, ours in after.table.columns().items():
        assert ours.tolist() == theirs[name].tolist(), name
        assert not ours.flags.writeable
