"""A rollout's image-distribution knobs (``[images]``) reach the distributor they
configure: exact pull times of v2 on a fleet where every host pulls at once."""

from __future__ import annotations

import re
from typing import Any

import pytest

from fleet_sim.errors import ConfigError
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.build import build

N = 10  #: hosts, one web replica each


def scenario(rollout: dict[str, Any] | None = None, **images: Any) -> dict[str, Any]:
    """N hosts with 1000 MB/s NICs, one web replica per host (worst-fit spreads them),
    one 500 MB layer through a 1000 MB/s registry, no unpacking time, fixed start
    times; at 200 s (the first deployment long done) all of web's replicas pull a
    rebuilt v2 at once. ``images`` override ``[images]`` keys."""
    return {
        "run": {"duration_s": 400, "record": ["events", "links"]},
        "fleet": {"hosts": [{"type": "h", "count": N, "cores": 8, "nic_mb_s": 1000.0}]},
        "hosting": {"mode": "container", "container": {"start_s": 0.5}},
        "placement": {"policy": "worst-fit"},
        "images": {"base_layers_mb": [], "app_layer_mb": 500.0,
                   "registry_uplink_mb_s": 1000.0, "unpack_mb_s_per_core": None, **images},
        "apps": [{"name": "web", "replicas": N, "cpu_request_cores": 1, "ram_mib": 1024}],
        "rollouts": [{"app": "web", "at_s": 200.0, "strategy": "all-at-once",
                      "changed": "whole-image", "health_failure_p": 0.0, **(rollout or {})}],
    }


def pull_s(rollout: dict[str, Any] | None = None, **images: Any) -> float:
    """The longest time from the start of a host's pull of v2 until it can start, s."""
    sim = build(cfg.validate(scenario(rollout, **images)), seed=0)
    sim.run()
    sim.finalize()
    timeline = sim.tables()["timeline"].query("version == 'v2'")
    assert len(timeline) == N
    return float((timeline["transfer_end"] - timeline["transfer_start"]).max())


def test_an_egress_limit_caps_the_registry():
    assert pull_s() == pytest.approx(N * 500 / 1000)
    assert pull_s(registry_egress_mb_s=250.0) == pytest.approx(N * 500 / 250)


def test_unpacking_adds_its_time_after_a_fast_download():
    """500 MB arrive in 5 s (10 hosts share 1000 MB/s) and unpack at 50 MB/s, streaming
    behind the download: 10 s."""
    assert pull_s(unpack_mb_s_per_core=50.0) == pytest.approx(10.0)


def test_a_second_origin_doubles_the_swarm_seed_rate():
    """Hosts at 1000 MB/s pull from origins of 100 MB/s: the content bound holds them at
    the origins' total (100, then 200 MB/s), plus the last piece relayed (4 ms)."""
    p2p = {"distribution": "p2p"}
    assert pull_s(p2p, registry_uplink_mb_s=100.0) == pytest.approx(500 / 100 + 4 / 1000)
    assert pull_s(p2p, registry_uplink_mb_s=100.0, p2p_origins=2) == pytest.approx(
        500 / 200 + 4 / 1000)


def test_lazy_containers_start_after_their_share_arrived():
    assert pull_s(lazy=True, lazy_fraction=0.1) == pytest.approx(0.1 * N * 500 / 1000)


@pytest.mark.parametrize(("key", "data"), [
    ("rollouts[0].distribution", scenario({"distribution": "mirrors"})),
    ("images.distribution", scenario(distribution="mirrors"))])
def test_mirrors_need_racks(key, data):
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}: .*allowed: images\.rack_hosts set"):
        cfg.validate(data)


def test_a_p2p_rollout_after_a_p2p_first_deployment_runs():
    """Two swarms on the run's one network (the first deployment's and the rollout's)."""
    import fleet_sim as fs

    res = fs.run("image_distribution", progress=False,
                 set={"images.distribution": "p2p", "rollouts.web.distribution": "p2p",
                      "fleet.hosts.host.count": 10, "apps.web.replicas": 10})
    assert res.rollout_summary["outcome"].iloc[0] == "complete"
