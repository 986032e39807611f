"""Rollout strategies: Kubernetes budgets, batches, canary, blue-green; budgets never broken."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.model.views import Abort, Create, InstanceState, Retire, RolloutView, SlotView
from fleet_sim.policies.registry import rollout_strategy
from fleet_sim.policies.rollout import AllAtOnce, Batches, BlueGreen, Canary, Rolling

S = {"A": InstanceState.ABSENT, "P": InstanceState.PROVISIONING,
     "H": InstanceState.HEALTHY, "F": InstanceState.FAILED}


def view(*slots: str, in_place: bool = False, rolling_back: bool = False) -> RolloutView:
    """Slots as two letters, old then new: "HA" = old serving, no new instance yet."""
    return RolloutView(tuple(SlotView(f"h{i}", S[s[0]], S[s[1]]) for i, s in enumerate(slots)),
                       in_place, rolling_back)


def fresh(n: int, in_place: bool = False) -> RolloutView:
    return view(*["HA"] * n, in_place=in_place)


# ------------------------------------------------------------------------ Kubernetes budgets
@pytest.mark.parametrize(("surge", "unavailable", "replicas", "expected"), [
    ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable down
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 1, (1, 0)),
    (0, "10%", 5, (0, 1)),  # both resolve to 0: one may be unavailable
    (2, 0, 10, (2, 0)),
    (1, 50, 10, (1, 10)),  # never more unavailable than replicas
    (" 100% ", "100%", 3, (3, 3)),
])
def test_budgets_round_as_kubernetes_does(surge, unavailable, replicas, expected):
    assert Rolling(surge, unavailable).budgets(replicas) == expected


@pytest.mark.parametrize(("surge", "unavailable", "message"), [
    (0, 0, "cannot both be 0"),
    ("0%", 0, "cannot both be 0"),
    ("abc", 1, "max_surge must be a count"),
    (-1, 1, "max_surge must be a count"),
    (1, 2.5, "max_unavailable must be a count"),
    (True, 1, "max_surge must be a count"),
    (1, "150%", "at most 100%"),
])
def test_bad_budgets_are_rejected(surge, unavailable, message):
    with pytest.raises(ValueError, match=message):
        Rolling(surge, unavailable)


def test_first_step_of_10_replicas_uses_both_budgets_like_the_deployment_controller():
    actions = Rolling().next_actions(fresh(10))
    assert actions == [Retire("h0"), Retire("h1"),
                       Create("h0"), Create("h1"), Create("h2"), Create("h3"), Create("h4")]


def test_old_instances_go_first_where_the_new_one_serves():
    actions = Rolling(1, 1).next_actions(view("HA", "HH", "HA", "AH"))
    assert actions[0] == Retire("h1")


def test_in_place_rolling_creates_only_where_the_old_instance_is_gone():
    actions = Rolling().next_actions(fresh(8, in_place=True))
    assert actions == [Retire("h0"), Retire("h1"), Create("h0"), Create("h1")]


def test_in_place_rolling_has_no_surge_and_at_least_one_unavailable():
    assert Rolling().budgets(3, in_place=True) == (0, 1)
    assert Rolling().next_actions(fresh(3, in_place=True)) == [Retire("h0"), Create("h0")]
    with pytest.raises(ValueError, match="in-place rollout cannot surge"):
        Rolling(max_surge=1, max_unavailable=0).next_actions(fresh(4, in_place=True))


# ------------------------------------------------------------------------ other strategies
def test_all_at_once_replaces_everything():
    assert AllAtOnce().next_actions(fresh(2)) == [
        Retire("h0"), Create("h0"), Retire("h1"), Create("h1")]


def test_batches_wait_for_the_batch_in_flight():
    policy = Batches(2)
    assert policy.next_actions(fresh(5)) == [Retire("h0"), Create("h0"), Retire("h1"),
                                             Create("h1")]
    assert policy.next_actions(view("AH", "AP", "HA", "HA", "HA")) == []
    assert policy.next_actions(view("AH", "AF", "HA", "HA", "HA")) == [
        Retire("h2"), Create("h2"), Retire("h3"), Create("h3")]


def test_batches_need_a_positive_integer():
    with pytest.raises(ValueError, match="integer >= 1"):
        Batches(0)


def test_canary_goes_first_then_hands_over():
    policy = Canary(0.1, then=AllAtOnce())
    assert policy.next_actions(fresh(20))[:2] == [Retire("h0"), Create("h0")]
    assert len(policy.next_actions(fresh(20))) == 4  # ceil(0.1 * 20) = 2 hosts
    assert policy.next_actions(view("AP", "AH", *["HA"] * 18)) == []
    rest = policy.next_actions(view("AH", "AH", *["HA"] * 18))
    assert Create("h19") in rest and Create("h0") not in rest


def test_a_failed_canary_aborts_but_not_during_a_rollback():
    policy = Canary(0.5, then=AllAtOnce())
    assert policy.next_actions(view("AH", "AF", "HA", "HA")) == [
        Abort("canary: 1 of 2 instances failed")]
    assert policy.next_actions(view("AH", "AF", "HA", "HA", rolling_back=True)) == [
        Retire("h2"), Create("h2"), Retire("h3"), Create("h3")]


def test_blue_green_builds_the_green_fleet_then_switches_at_once():
    policy = BlueGreen()
    assert policy.next_actions(fresh(2)) == [Create("h0"), Create("h1")]
    assert policy.next_actions(view("HH", "HP")) == []
    assert policy.next_actions(view("HH", "HH")) == [Retire("h0"), Retire("h1")]
    assert policy.next_actions(view("HH", "HF")) == [Abort("green fleet: 1 of 2 instances failed")]


def test_blue_green_cannot_run_in_place():
    with pytest.raises(ValueError, match="parallel fleet"):
        BlueGreen().next_actions(fresh(2, in_place=True))


def test_strategies_by_name():
    assert rollout_strategy("rolling", max_surge=1).budgets(10) == (1, 2)
    canary = rollout_strategy("canary", fraction=0.2, then={"name": "batches", "size": 3})
    assert isinstance(canary, Canary)
    assert canary.then.size == 3
    with pytest.raises(ValueError, match="valid names: all-at-once, batches, blue-green, canary"):
        rollout_strategy("big-bang")


# ------------------------------------------------- property: budgets are never exceeded
budget = st.one_of(st.integers(0, 12), st.sampled_from(["0%", "10%", "25%", "50%", "100%"]))


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 25), surge=budget, unavailable=budget, in_place=st.booleans(),
       data=st.data())
def test_rolling_never_exceeds_max_surge_or_max_unavailable(n, surge, unavailable, in_place,
                                                            data):
    """Apply each action as soon as it is given; instances come up or fail in random order."""
    try:
        policy = Rolling(surge, unavailable)
    except ValueError:
        return  # both 0
    try:
        max_surge, max_unavailable = policy.budgets(n, in_place)
    except ValueError:
        return  # in place with max_unavailable 0: rejected, tested above
    old = {f"h{i}": "H" for i in range(n)}
    new = {f"h{i}": "A" for i in range(n)}
    failures = 0
    for _ in range(4 * n + 4):
        actions = policy.next_actions(
            view(*[old[h] + new[h] for h in old], in_place=in_place))
        for action in actions:
            if isinstance(action, Retire):
                assert old[action.host] == "H"
                old[action.host] = "A"
            else:
                assert isinstance(action, Create)
                assert new[action.host] == "A"
                assert not (in_place and old[action.host] == "H")
                new[action.host] = "P"
            healthy = sum(v == "H" for v in (*old.values(), *new.values()))
            alive = sum(v in "HP" for v in (*old.values(), *new.values()))
            assert alive <= n + max_surge
            assert healthy >= n - max_unavailable
        in_flight = [h for h, v in new.items() if v == "P"]
        if not in_flight:
            break
        host = data.draw(st.sampled_from(in_flight))
        new[host] = data.draw(st.sampled_from("HHHF"))
        failures += new[host] == "F"
    finished = all(new[h] == "F" or (new[h] == "H" and old[h] == "A") for h in old)
    assert finished or (in_place and failures >= max_unavailable)


def test_view_counts():
    v = view("HA", "HP", "AH", "AF", "HH", "AA")
    assert (v.replicas, v.healthy, v.alive, v.provisioning) == (6, 5, 6, 1)
    assert (v.unavailable, v.surge) == (1, 0)
    assert [s.done for s in v.slots] == [False, False, True, True, False, False]
    assert not v.done
    assert view("AH", "HF").done
