"""A rollout run from a spec: the makespan oracle, determinism, and what each knob changes."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fleet_sim.hosting import defaults as d
from fleet_sim.scenarios.rollout import RolloutSpec, run_rollout

# one 500 MB layer, 1000 MB/s registry uplink, 100 MB/s NICs, no randomness, no failures
ORACLE = {"mode": "container", "changed": "whole-image", "base_layers_mb": (),
          "app_layer_mb": 500.0, "registry_uplink_mb_s": 1000.0, "host_nic_mb_s": 100.0,
          "health_check_s": 10.0, "health_failure_p": 0.0, "random_durations": False}


@pytest.mark.parametrize(("batch", "transfer_s"), [(5, 5.0), (10, 5.0), (20, 10.0), (8, 5.0)])
def test_makespan_is_batches_times_transfer_start_and_health(batch, transfer_s):
    """ceil(N / batch) x (transfer + start + health); a batch of b hosts pulls 500 MB each
    at min(100, 1000 / b) MB/s (the 10-host and 20-host hand cases)."""
    spec = RolloutSpec(n_hosts=20, strategy="batches", strategy_params={"size": batch}, **ORACLE)
    summary = run_rollout(spec)["summary"].iloc[0]
    per_batch_s = transfer_s + d.CONTAINER_START_MEAN_S + 10.0
    assert summary.makespan_s == pytest.approx(math.ceil(20 / batch) * per_batch_s)
    assert summary.outcome == "complete"
    assert summary.min_serving_fraction == pytest.approx(1 - batch / 20)


def test_same_seed_same_tables_other_seed_other_timeline():
    spec = RolloutSpec(n_hosts=30, mode="vm", distribution="p2p", seed=3)
    first, again = run_rollout(spec), run_rollout(spec)
    assert first.keys() == again.keys()
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name])
    other = run_rollout(RolloutSpec(n_hosts=30, mode="vm", distribution="p2p", seed=4))
    assert not first["timeline"]["healthy"].equals(other["timeline"]["healthy"])


def test_bare_metal_hosts_pinning_the_old_library_fail_with_a_conflict():
    spec = RolloutSpec(n_hosts=40, mode="baremetal", changed="whole-image",
                       conflict_fraction=0.3, install_step_failure_p=0.0, health_failure_p=0.0)
    tables = run_rollout(spec)
    failed = tables["timeline"].query("version == 'v2' and failed.notna()")
    assert 0 < len(failed) < 40
    assert failed["failure"].str.contains("dependency conflict: needs openssl 3.0").all()
    assert (failed["attempts"] == 1).all()
    assert tables["summary"].iloc[0].new_failed == len(failed)
    app_only = run_rollout(RolloutSpec(n_hosts=40, mode="baremetal", changed="top-layer",
                                       conflict_fraction=0.3, install_step_failure_p=0.0,
                                       health_failure_p=0.0))
    assert app_only["summary"].iloc[0].new_failed == 0


def test_only_the_top_layer_is_moved_when_only_it_changed():
    base = {"n_hosts": 20, "health_failure_p": 0.0}
    top = run_rollout(RolloutSpec(changed="top-layer", **base))["summary"].iloc[0]
    whole = run_rollout(RolloutSpec(changed="whole-image", **base))["summary"].iloc[0]
    assert top.delivered_mb == pytest.approx(20 * d.CONTAINER_APP_LAYER_MB)
    assert whole.delivered_mb == pytest.approx(20 * (d.CONTAINER_APP_LAYER_MB
                                                     + d.CONTAINER_BASE_LAYER_MB))
    assert top.makespan_s < whole.makespan_s


def test_p2p_takes_load_off_the_registry():
    base = {"n_hosts": 50, "mode": "vm", "strategy": "all-at-once", "health_failure_p": 0.0}
    central = run_rollout(RolloutSpec(distribution="central", **base))
    p2p = run_rollout(RolloutSpec(distribution="p2p", **base))
    a, b = central["summary"].iloc[0], p2p["summary"].iloc[0]
    assert a.registry_mb == pytest.approx(50 * d.VM_IMAGE_MB)
    assert b.registry_mb < a.registry_mb / 5
    assert b.peer_upload_mb + b.registry_mb == pytest.approx(a.delivered_mb)
    copied_s = [t["timeline"]["transfer_end"].max() for t in (central, p2p)]
    assert copied_s[0] == pytest.approx(50 * d.VM_IMAGE_MB / d.REGISTRY_UPLINK_MB_S)
    assert copied_s[1] < copied_s[0] / 3


def test_capacity_tracks_old_and_new_serving_instances():
    tables = run_rollout(RolloutSpec(n_hosts=8, strategy="all-at-once", health_failure_p=0.0))
    capacity = tables["capacity"]
    assert capacity.iloc[0][["old_healthy", "new_healthy"]].tolist() == [0, 0]
    assert capacity.iloc[-1][["old_healthy", "new_healthy"]].tolist() == [0, 8]
    assert tables["summary"].iloc[0].min_serving_fraction == 0.0


def test_failures_past_the_threshold_roll_the_fleet_back():
    """Half the bare-metal hosts cannot take v2's library; v1 reinstalls cleanly."""
    tables = run_rollout(RolloutSpec(n_hosts=20, mode="baremetal", changed="whole-image",
                                     conflict_fraction=0.5, install_step_failure_p=0.0,
                                     health_failure_p=0.0, rollback_failure_fraction=0.1))
    assert tables["summary"].iloc[0].outcome == "rolled-back"
    assert tables["capacity"].iloc[-1][["old_healthy", "new_healthy"]].tolist() == [20, 0]
    assert "rollback" in set(tables["events"]["kind"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "lxc"}, "mode='lxc'; allowed: baremetal, vm, container"),
    ({"mode": "baremetal", "distribution": "p2p"}, "central mirror"),
    ({"changed": "base"}, "allowed: top-layer, whole-image"),
    ({"n_hosts": 0}, "n_hosts"),
    ({"rollback_failure_fraction": 0.0}, "rollback_failure_fraction"),
])
def test_bad_specs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RolloutSpec(**kwargs)


def test_peers_in_the_same_rack_take_traffic_off_the_core():
    base = {"n_hosts": 40, "rack_hosts": 10, "changed": "whole-image", "health_failure_p": 0.0}
    central = run_rollout(RolloutSpec(distribution="central", **base))["summary"].iloc[0]
    p2p = run_rollout(RolloutSpec(distribution="p2p", **base))["summary"].iloc[0]
    assert central.into_racks_mb == pytest.approx(central.delivered_mb)
    assert p2p.into_racks_mb < 0.6 * central.into_racks_mb
