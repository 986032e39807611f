"""Weighted max-min water-filling, flat and on a tree: hand cases and the invariants
of docs/model.md §2.1."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.numerics.fairshare import (
    FairNode,
    allocate_tree,
    effective_demand,
    redistribute,
    waterfill,
)

REL = 1e-9
PROPS = settings(max_examples=200, deadline=None)


# ---------------------------------------------------------------- flat: hand cases


def test_capacity_4_limits_4_1_1_gives_2_1_1():
    assert waterfill(4, [4, 1, 1]) == pytest.approx([2, 1, 1])


def test_weights_2_to_1_on_one_core_give_two_thirds_and_one_third():
    assert waterfill(1, [1, 1], weights=[2, 1]) == pytest.approx([2 / 3, 1 / 3])


def test_everything_fits_returns_the_limits():
    assert waterfill(10, [1, 2.5, 3], weights=[5, 1, 1]) == [1, 2.5, 3]


def test_zero_capacity_gives_nothing():
    assert waterfill(0, [1, 2]) == [0, 0]


def test_no_children_gives_empty_list():
    assert waterfill(3, []) == []


def test_shared_os_victim_gets_8_17_of_a_core_next_to_16_threads():
    # CFS weight = runnable threads
    victim, spike = waterfill(8, [1, 16], weights=[1, 16])
    assert victim == pytest.approx(8 / 17)
    assert spike == pytest.approx(16 * 8 / 17)


def test_reservation_is_honoured_then_the_rest_is_shared():
    assert waterfill(4, [4, 4], lo=[3, 0]) == pytest.approx([3, 1])


def test_reservation_below_fair_share_changes_nothing():
    assert waterfill(4, [4, 4], lo=[1, 0]) == pytest.approx([2, 2])


def test_reservation_with_weights():
    # max(L, 5) + L + 2L = 10  ->  L = 5/3
    got = waterfill(10, [10, 10, 10], weights=[1, 1, 2], lo=[5, 0, 0])
    assert got == pytest.approx([5, 5 / 3, 10 / 3])


def test_reservation_is_clipped_to_the_limit():
    assert waterfill(4, [1, 8], lo=[3, 0]) == pytest.approx([1, 3])


def test_reservations_above_capacity_are_scaled_down_in_proportion():
    assert waterfill(3, [4, 4, 4], lo=[2, 4, 0]) == pytest.approx([1, 2, 0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hi": [1, 1], "weights": [1, 0]}, "weights must be > 0"),
        ({"hi": [1, -1]}, "limits must be >= 0"),
        ({"hi": [1, 1], "weights": [1]}, "same length"),
    ],
)
def test_bad_input_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        waterfill(1, **kwargs)


# ---------------------------------------------------------------- flat: properties

amounts = st.one_of(st.integers(0, 8).map(float), st.floats(0, 100))
weights = st.one_of(st.integers(1, 16).map(float), st.floats(0.1, 10))


@st.composite
def flat_problems(draw):
    n = draw(st.integers(1, 8))
    hi = draw(st.lists(amounts, min_size=n, max_size=n))
    w = draw(st.lists(weights, min_size=n, max_size=n))
    lo = draw(st.none() | st.lists(amounts, min_size=n, max_size=n))
    capacity = draw(amounts)
    return capacity, hi, w, lo


def check_shares(capacity, hi, w, lo, got):
    """Assert every flat invariant of weighted max-min fairness with floors."""
    n = len(hi)
    lo_eff = [0.0] * n if lo is None else [min(a, b) for a, b in zip(lo, hi, strict=True)]
    tol = REL * max(1.0, capacity, sum(hi))
    assert len(got) == n
    for a, h in zip(got, hi, strict=True):
        assert -tol <= a <= h + tol  # never above the limit (demand clipped by cap)
    # work conservation: nothing idle while a child wants more
    assert math.fsum(got) == pytest.approx(min(capacity, sum(hi)), rel=REL, abs=tol)
    if sum(lo_eff) > capacity:  # over-reserved: floors scaled down in proportion
        for a, f in zip(got, lo_eff, strict=True):
            assert a == pytest.approx(f * capacity / sum(lo_eff), rel=REL, abs=tol)
        return
    for a, f in zip(got, lo_eff, strict=True):
        assert a >= f - tol  # floors honoured
    levels = [a / wi for a, wi in zip(got, w, strict=True)]
    level_tol = tol / min(w)
    wants_more = [i for i in range(n) if got[i] < hi[i] - tol]
    can_give = [j for j in range(n) if got[j] > lo_eff[j] + tol]
    # max-min: a child that wants more never has a lower share per weight than one above its floor
    for i in wants_more:
        for j in can_give:
            assert levels[i] >= levels[j] - level_tol
    # hence the unsatisfied children strictly between their bounds share one level
    between = [levels[i] for i in wants_more if i in can_give]
    if between:
        assert max(between) - min(between) <= 2 * level_tol


@PROPS
@given(flat_problems())
def test_waterfill_invariants(problem):
    capacity, hi, w, lo = problem
    check_shares(capacity, hi, w, lo, waterfill(capacity, hi, w, lo))


@PROPS
@given(flat_problems())
def test_waterfill_is_permutation_equivariant(problem):
    capacity, hi, w, lo = problem
    lo = lo or [0.0] * len(hi)
    got = waterfill(capacity, hi, w, lo)
    rev = waterfill(capacity, hi[::-1], w[::-1], lo[::-1])[::-1]
    tol = REL * max(1.0, capacity, sum(hi))
    assert rev == pytest.approx(got, rel=REL, abs=tol)


# ---------------------------------------------------------------- tree: hand cases


def test_two_4_vcpu_vms_isolate_the_victim_from_a_16_thread_spike():
    host = FairNode()
    victim = host.add(FairNode(weight=4, cap=4)).add(FairNode(demand=1))
    spike = host.add(FairNode(weight=4, cap=4)).add(FairNode(demand=16))
    assert allocate_tree(host, 8) == pytest.approx(5)
    assert victim.alloc == pytest.approx(1)
    assert spike.alloc == pytest.approx(4)


def test_flat_tree_matches_waterfill():
    host = FairNode()
    victim = host.add(FairNode(weight=1, demand=1))
    spike = host.add(FairNode(weight=16, demand=16))
    allocate_tree(host, 8)
    assert (victim.alloc, spike.alloc) == pytest.approx((8 / 17, 128 / 17))


def test_scale_charges_overhead_to_the_parent():
    host = FairNode()
    vm = host.add(FairNode(scale=1.25))
    guest = vm.add(FairNode(demand=2))
    allocate_tree(host, 1)
    assert vm.eff == pytest.approx(2.5)
    assert vm.alloc == pytest.approx(1)
    assert guest.alloc == pytest.approx(0.8)


def test_cap_on_an_inner_node_limits_its_subtree():
    host = FairNode()
    group = host.add(FairNode(cap=1.5))
    a = group.add(FairNode(demand=2))
    b = group.add(FairNode(demand=2, weight=2))
    other = host.add(FairNode(demand=10))
    allocate_tree(host, 4)
    assert (a.alloc, b.alloc, other.alloc) == pytest.approx((0.5, 1.0, 2.5))


def test_reservation_in_a_tree_is_honoured():
    host = FairNode()
    reserved = host.add(FairNode(floor=3)).add(FairNode(demand=8))
    other = host.add(FairNode(demand=8))
    allocate_tree(host, 4)
    assert (reserved.alloc, other.alloc) == pytest.approx((3, 1))


def test_removed_child_no_longer_gets_a_share():
    host = FairNode()
    a = host.add(FairNode(demand=4))
    b = host.add(FairNode(demand=4))
    host.remove(b)
    allocate_tree(host, 4)
    assert a.alloc == pytest.approx(4)
    assert b.parent is None


@pytest.mark.parametrize(
    "kwargs",
    [{"weight": 0}, {"cap": -1}, {"floor": -1}, {"demand": -1}, {"scale": 0}],
)
def test_bad_node_is_rejected(kwargs):
    with pytest.raises(ValueError, match="must be"):
        FairNode(**kwargs)


# ---------------------------------------------------------------- tree: properties

caps = st.one_of(st.just(math.inf), amounts)
floors = st.one_of(st.just(0.0), amounts)
scales = st.one_of(st.just(1.0), st.floats(0.5, 2.0))
leaf_specs = st.tuples(weights, caps, floors, amounts)


def inner_specs(children, scale=scales):
    return st.tuples(weights, caps, floors, scale, st.lists(children, min_size=1, max_size=4))


def trees(scale=scales):
    """Tree specs: leaf (weight, cap, floor, demand), inner (weight, cap, floor, scale, kids)."""
    return inner_specs(
        st.recursive(leaf_specs, lambda kids: inner_specs(kids, scale), max_leaves=8), scale
    )


def build(spec) -> FairNode:
    if len(spec) == 4:
        w, cap, floor, demand = spec
        return FairNode(weight=w, cap=cap, floor=floor, demand=demand)
    w, cap, floor, scale, kids = spec
    node = FairNode(weight=w, cap=cap, floor=floor, scale=scale)
    for k in kids:
        node.add(build(k))
    return node


def nodes(root: FairNode):
    yield root
    for c in root.children:
        yield from nodes(c)


def leaves(root: FairNode):
    return [n for n in nodes(root) if not n.children]


def check_tree(root: FairNode, capacity: float, got: float) -> None:
    """Assert docs/model.md §2 at every node, using flat invariants between siblings."""
    tol = REL * max(1.0, capacity, root.eff)
    assert got == root.alloc
    assert root.alloc == pytest.approx(min(capacity, root.eff), rel=REL, abs=tol)  # root conserves
    for node in nodes(root):
        assert -tol <= node.alloc <= min(node.eff, node.cap) + tol
        if not node.children:
            assert node.alloc <= node.demand + tol
            continue
        inner = node.alloc / node.scale
        assert math.fsum(c.alloc for c in node.children) <= inner + tol  # children ≤ parent
        # siblings share `inner` exactly as the flat problem says (work conservation, weights,
        # floors); limits are the children's effective demands (demand clipped by caps)
        check_shares(
            inner,
            [c.eff for c in node.children],
            [c.weight for c in node.children],
            [c.floor for c in node.children],
            [c.alloc for c in node.children],
        )


@PROPS
@given(trees(), amounts)
def test_tree_invariants(spec, capacity):
    root = build(spec)
    check_tree(root, capacity, allocate_tree(root, capacity))


@settings(max_examples=100, deadline=None)
@given(trees(scale=st.just(1.0)), amounts)
def test_unscaled_tree_leaves_respect_path_caps_and_use_all_they_can(spec, capacity):
    root = build(spec)
    allocate_tree(root, capacity)
    tol = REL * max(1.0, capacity, root.eff)
    for leaf in leaves(root):
        assert leaf.alloc <= min(leaf.demand, *leaf.path_caps()) + tol
    total = math.fsum(leaf.alloc for leaf in leaves(root))
    assert total == pytest.approx(min(capacity, root.eff), rel=REL, abs=tol)


@settings(max_examples=50, deadline=None)
@given(trees(), amounts)
def test_reallocation_is_idempotent(spec, capacity):
    root = build(spec)
    allocate_tree(root, capacity)
    first = [n.alloc for n in nodes(root)]
    allocate_tree(root, capacity)
    assert [n.alloc for n in nodes(root)] == first


@PROPS
@given(trees(), amounts, st.data())
def test_redistribute_after_demand_changes_equals_a_full_reallocation(spec, capacity, data):
    root = build(spec)
    allocate_tree(root, capacity)
    before = {leaf: leaf.alloc for leaf in leaves(root)}
    dirty: set[FairNode] = set()
    for leaf in before:
        if data.draw(st.booleans()):
            leaf.demand = data.draw(amounts)
            node = leaf
            while node is not None:  # the changed leaf and its ancestors
                dirty.add(node)
                node = node.parent
    effective_demand(root)
    changed: list[FairNode] = []
    redistribute(root, min(capacity, root.eff), dirty, changed)
    incremental = [n.alloc for n in nodes(root)]
    allocate_tree(root, capacity)
    assert incremental == [n.alloc for n in nodes(root)]  # bit for bit
    assert set(changed) == {leaf for leaf, old in before.items() if leaf.alloc != old}


@pytest.mark.parametrize(
    ("hi", "weights", "lo"),
    [([1.0, math.nan], None, None), ([1.0, 1.0], [1.0, math.nan], None),
     ([1.0, 1.0], None, [0.0, -1.0]), ([1.0, -1.0], None, None)],
)
def test_waterfill_rejects_nan_and_negative_inputs(hi, weights, lo):
    with pytest.raises(ValueError, match=">"):
        waterfill(1.0, hi, weights, lo)


def test_extreme_weight_ratios_never_hand_out_more_than_capacity():
    shares = waterfill(1.0, [0.0, 0.0, 0.125, 1.0], [1.0, 6384.0, 9999.336134485684, 0.001])
    assert sum(shares) <= 1.0 + 1e-15
