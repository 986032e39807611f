"""Multi-link max-min fair rates: hand cases, the single-link reduction, fairness properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.numerics.fairshare import maxmin_flows, waterfill

PROPS = settings(max_examples=200, deadline=None)
EPS = 1e-9


def _star(n_hosts: int, uplink: float, nic: float) -> tuple[list[float], list[list[int]]]:
    """Link 0: a registry uplink; link i: host i's NIC; flow i: registry -> host i."""
    return [uplink] + [nic] * n_hosts, [[0, i] for i in range(1, n_hosts + 1)]


def test_10_hosts_on_1000_uplink_each_get_their_full_100_nic():
    assert maxmin_flows(*_star(10, 1000, 100)) == [100.0] * 10


def test_20_hosts_on_1000_uplink_each_get_50():
    assert maxmin_flows(*_star(20, 1000, 100)) == [50.0] * 20


def test_a_slow_nic_frees_uplink_capacity_for_the_others():
    capacities = [300, 50, 1000, 1000]
    assert maxmin_flows(capacities, [[0, 1], [0, 2], [0, 3]]) == pytest.approx([50, 125, 125])


def test_flow_limits_and_weights():
    rates = maxmin_flows([90], [[0], [0], [0]], weights=[1, 2, 3], limits=[100, 100, 30])
    assert rates == pytest.approx([20, 40, 30])


def test_routeless_flow_gets_its_limit():
    assert maxmin_flows([10], [[0], []], limits=[100, 7]) == [10, 7]


def test_only_links_on_routes_are_read():
    assert maxmin_flows([-1, 10, 10], [[1], [2]]) == [10, 10]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"routes": [[]]}, "no link"),
    ({"routes": [[0]], "weights": [0]}, "weights"),
    ({"routes": [[0]], "limits": [-1]}, "limits"),
    ({"routes": [[0]], "capacities": [-1]}, "capacities"),
    ({"routes": [[0]], "weights": [1, 1]}, "one entry per route"),
])
def test_bad_input_is_rejected(kwargs, message):
    args = {"capacities": [1.0], **kwargs}
    with pytest.raises(ValueError, match=message):
        maxmin_flows(**args)


@PROPS
@given(capacity=st.floats(0, 1e4), flows=st.lists(
    st.tuples(st.floats(0.1, 10), st.floats(0, 1e4)), min_size=1, max_size=12))
def test_on_one_link_it_is_waterfill(capacity, flows):
    weights, limits = [w for w, _ in flows], [h for _, h in flows]
    got = maxmin_flows([capacity], [[0]] * len(flows), weights, limits)
    assert got == pytest.approx(waterfill(capacity, limits, weights), rel=EPS, abs=EPS)


@st.composite
def networks(draw):
    n_links = draw(st.integers(1, 6))
    capacities = draw(st.lists(st.floats(0, 1000), min_size=n_links, max_size=n_links))
    routes = draw(st.lists(st.lists(st.integers(0, n_links - 1), min_size=1, max_size=3,
                                    unique=True), min_size=1, max_size=10))
    weights = draw(st.lists(st.floats(0.1, 10), min_size=len(routes), max_size=len(routes)))
    return capacities, routes, weights


@PROPS
@given(networks())
def test_rates_are_feasible_and_every_flow_has_a_bottleneck(network):
    """Weighted max-min fairness: no link over capacity, and every flow crosses a full
    link on which no flow has a larger rate per weight (its bottleneck)."""
    capacities, routes, weights = network
    rates = maxmin_flows(capacities, routes, weights)
    load = [0.0] * len(capacities)
    for route, rate in zip(routes, rates, strict=True):
        for k in route:
            load[k] += rate
    for k, cap in enumerate(capacities):
        assert load[k] <= cap * (1 + EPS) + EPS
    for f, route in enumerate(routes):
        level = rates[f] / weights[f]
        assert any(
            load[k] >= capacities[k] * (1 - 1e-7) - EPS
            and all(rates[g] / weights[g] <= level * (1 + 1e-7) + EPS
                    for g, other in enumerate(routes) if k in other)
            for k in route)
