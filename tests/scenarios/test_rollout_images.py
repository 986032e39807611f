"""A rollout's image-distribution knobs reach the distributor they configure."""

from __future__ import annotations

import pytest

from fleet_sim.scenarios.rollout import RolloutSpec, run_rollout

# 10 hosts, one 500 MB layer, 1000 MB/s registry, 1000 MB/s NICs, no unpacking time
BASE = {"n_hosts": 10, "mode": "container", "changed": "whole-image", "base_layers_mb": (),
        "app_layer_mb": 500.0, "registry_uplink_mb_s": 1000.0, "host_nic_mb_s": 1000.0,
        "strategy": "all-at-once", "health_failure_p": 0.0, "random_durations": False,
        "unpack_mb_s_per_core": None}


def _pull_s(**kwargs) -> float:
    timeline = run_rollout(RolloutSpec(**BASE | kwargs))["timeline"].query("version == 'v2'")
    return float((timeline["transfer_end"] - timeline["transfer_start"]).max())


def test_an_egress_limit_caps_the_registry():
    assert _pull_s() == pytest.approx(10 * 500 / 1000)
    assert _pull_s(registry_egress_mb_s=250.0) == pytest.approx(10 * 500 / 250)


def test_unpacking_adds_its_time_after_a_fast_download():
    """500 MB arrive in 5 s (10 hosts share 1000 MB/s) and unpack at 50 MB/s: 10 s."""
    assert _pull_s(unpack_mb_s_per_core=50.0) == pytest.approx(10.0)


def test_a_second_origin_doubles_the_swarm_seed_rate():
    """Hosts at 1000 MB/s pull from origins of 100 MB/s: the content bound holds them at
    the origins' total (100, then 200 MB/s), plus the last piece relayed (4 ms)."""
    slow = {"registry_uplink_mb_s": 100.0, "distribution": "p2p"}
    assert _pull_s(**slow) == pytest.approx(500 / 100 + 4 / 1000)
    assert _pull_s(**slow, p2p_origins=2) == pytest.approx(500 / 200 + 4 / 1000)


def test_lazy_containers_start_after_their_share_arrived():
    assert _pull_s(lazy=True, lazy_fraction=0.1) == pytest.approx(0.1 * 10 * 500 / 1000)


def test_mirrors_need_racks():
    with pytest.raises(ValueError, match="set rack_hosts"):
        RolloutSpec(distribution="mirrors")
