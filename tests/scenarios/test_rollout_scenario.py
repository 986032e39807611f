"""Rollouts as events of a fleet run, and image pulls in every fleet run: the makespan
oracle per mode, what each knob changes, dependency conflicts, rollback, determinism."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.hosting import defaults as d
from fleet_sim.policies.rollout import Rolling
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.build import build


def scenario(mode: str = "container", n: int = 20, *, rollout: dict[str, Any] | None = None,
             apps: list[dict[str, Any]] | None = None, nic_mb_s: float = 100.0,
             **sections: Any) -> dict[str, Any]:
    """``n`` hosts of 8 cores (NICs of ``nic_mb_s``), one ``web`` replica per host
    (worst-fit spreads them), no
    randomness in start, boot or install times, no failed health checks; one rollout of
    web at 200 s. ``sections`` replace top-level tables (e.g. ``images``)."""
    web = {"name": "web", "replicas": n, "cpu_request_cores": 2, "ram_mib": 1024}
    data: dict[str, Any] = {
        "run": {"duration_s": 4000, "record": ["events", "links"]},
        "fleet": {"hosts": [{"type": "h", "count": n, "cores": 8, "ram_mib": 16_384,
                             "nic_mb_s": nic_mb_s}]},
        "hosting": {"mode": mode, "container": {"start_s": 0.5}, "vm": {"boot_s": 30.0},
                    "baremetal": {"install_s": 600.0, "install_step_failure_p": 0.0}},
        "placement": {"policy": "worst-fit"},
        # one 500 MB layer (or VM image) through a 1000 MB/s registry uplink
        "images": {"base_layers_mb": [], "app_layer_mb": 500.0, "vm_image_mb": 500.0,
                   "registry_uplink_mb_s": 1000.0},
        "apps": [web, *(apps or [])],
        "rollouts": [{"app": "web", "at_s": 200.0, "health_check_s": 10.0,
                      "health_failure_p": 0.0, "changed": "whole-image", **(rollout or {})}],
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return data


def run(data: dict[str, Any], seed: int = 0) -> dict[str, pd.DataFrame]:
    sim = build(cfg.validate(data), seed=seed)
    sim.run()
    sim.finalize()
    return sim.tables()  # type: ignore[return-value]


def summary(data: dict[str, Any]) -> pd.Series:
    return run(data)["rollout_summary"].iloc[0]


@pytest.mark.parametrize(("batch", "transfer_s"), [(5, 5.0), (10, 5.0), (20, 10.0), (8, 5.0)])
def test_makespan_is_batches_times_transfer_start_and_health(batch, transfer_s):
    """ceil(N / batch) x (transfer + start + health); a batch of b hosts pulls 500 MB each
    at min(100, 1000 / b) MB/s (the 10-host and 20-host hand cases)."""
    s = summary(scenario(rollout={"strategy": "batches", "strategy_params": {"size": batch}}))
    assert s.makespan_s == pytest.approx(math.ceil(20 / batch) * (transfer_s + 0.5 + 10.0))
    assert s.outcome == "complete"
    assert s.min_serving_fraction == pytest.approx(1 - batch / 20)
    assert s.delivered_mb == pytest.approx(20 * 500.0)


BATCHES = {"strategy": "batches", "strategy_params": {"size": 5}}


@pytest.mark.parametrize(("change", "per_batch_s"), [
    ({}, 5.0 + 0.5 + 10.0),
    ({"hosting": {"container": {"start_s": 20.0}}}, 5.0 + 20.0 + 10.0),
    ({"images": {"app_layer_mb": 1500.0}}, 15.0 + 0.5 + 10.0),
    ({"fleet": {"hosts": [{"type": "h", "count": 20, "cores": 8, "ram_mib": 16_384,
                           "nic_mb_s": 25.0}]}}, 20.0 + 0.5 + 10.0),
])
def test_makespan_follows_the_start_time_the_image_size_and_the_host_nic(change, per_batch_s):
    """4 batches of 5 hosts: each host pulls its image at min(NIC, uplink / 5) MB/s."""
    s = summary(scenario(rollout=BATCHES, **change))
    assert s.makespan_s == pytest.approx(4 * per_batch_s)


def test_a_vm_copies_its_image_then_boots():
    s = summary(scenario("vm", rollout=BATCHES))
    assert s.makespan_s == pytest.approx(4 * (5.0 + 30.0 + 10.0))
    assert s.registry_mb == pytest.approx(20 * 500.0)


def test_bare_metal_reinstalls_in_place_without_a_transfer():
    tables = run(scenario("baremetal", rollout=BATCHES))
    s = tables["rollout_summary"].iloc[0]
    assert s.makespan_s == pytest.approx(4 * (600.0 + 10.0))
    assert s.delivered_mb == 0.0
    new = tables["timeline"].query("version == 'v2'")
    old = tables["timeline"].query("version == 'v1'")
    assert sorted(new["host"]) == sorted(old["host"])  # each on its replica's host


def test_the_first_start_of_a_container_includes_its_pull():
    """20 hosts pull 500 MB at once through a 1000 MB/s uplink: 10 s, then 0.5 s start."""
    events = run(scenario(n=20))["events"]
    starts = events[events["kind"] == "start"]
    first = starts[~starts["entity"].str.contains("@")]
    assert first["t"].tolist() == pytest.approx([10.5] * 20)
    assert first["duration_s"].tolist() == pytest.approx([10.5] * 20)


def test_only_the_top_layer_moves_when_only_it_changed():
    images = {"images": {"base_layers_mb": [200.0], "app_layer_mb": 30.0}}
    top = summary(scenario(rollout={**BATCHES, "changed": "top-layer"}, **images))
    whole = summary(scenario(rollout=BATCHES, **images))
    assert top.delivered_mb == pytest.approx(20 * 30.0)
    assert whole.delivered_mb == pytest.approx(20 * 230.0)
    assert top.makespan_s < whole.makespan_s


def test_p2p_takes_load_off_the_registry():
    """NICs as fast as the registry's uplink: it serves one upload at a time."""
    base = {"strategy": "all-at-once"}
    central = run(scenario("vm", n=40, rollout=base, nic_mb_s=1000.0,
                           images={"vm_image_mb": 2000.0}))
    p2p = run(scenario("vm", n=40, rollout={**base, "distribution": "p2p"}, nic_mb_s=1000.0,
                       images={"vm_image_mb": 2000.0}))
    a, b = central["rollout_summary"].iloc[0], p2p["rollout_summary"].iloc[0]
    assert a.registry_mb == pytest.approx(40 * 2000.0)
    assert b.registry_mb < a.registry_mb / 5
    assert b.peer_upload_mb + b.registry_mb == pytest.approx(a.delivered_mb)
    copied_s = [t["timeline"]["transfer_end"].max() - 200.0 for t in (central, p2p)]
    assert copied_s[0] == pytest.approx(40 * 2000.0 / 1000.0)
    assert copied_s[1] < copied_s[0] / 3


def test_peers_in_the_same_rack_take_traffic_off_the_core():
    """A rolling update: later waves find v2 on peers of their own rack."""
    images = {"images": {"rack_hosts": 10, "base_layers_mb": [200.0], "app_layer_mb": 30.0,
                         "registry_uplink_mb_s": 1250.0}}
    central = summary(scenario(n=40, nic_mb_s=1250.0, **images))
    p2p = summary(scenario(n=40, rollout={"distribution": "p2p"}, nic_mb_s=1250.0, **images))
    assert central.into_racks_mb == pytest.approx(central.delivered_mb)
    assert p2p.into_racks_mb < 0.6 * central.into_racks_mb


def test_capacity_tracks_old_and_new_serving_instances():
    tables = run(scenario(n=8, rollout={"strategy": "all-at-once"}))
    capacity = tables["capacity"]
    assert capacity.iloc[0][["t", "old_healthy", "new_healthy"]].tolist() == [200.0, 0, 0]
    assert capacity.iloc[-1][["old_healthy", "new_healthy"]].tolist() == [0, 8]
    assert tables["rollout_summary"].iloc[0].min_serving_fraction == 0.0


def test_surge_instances_use_real_cpu_and_ram_where_placement_finds_room():
    """Hosts with room for one web only: a rolling update with surge but no unavailability
    cannot place its surge instance until one old instance is retired; with room for
    two, every surge instance is placed at once and the fleet never loses capacity."""
    full = scenario(n=4, rollout={"strategy": "rolling",
                                  "strategy_params": {"max_surge": 1, "max_unavailable": 0}},
                    apps=[{"name": "batch", "replicas": 4, "cpu_request_cores": 6,
                           "ram_mib": 1024}])
    tables = run(full)
    s = tables["rollout_summary"].iloc[0]
    assert s.outcome == "unfinished"  # the surge instance waits for room, as a pending pod
    assert math.isnan(s.makespan_s)
    assert s.new_healthy == 0
    roomy = run(scenario(n=4, rollout={"strategy": "rolling",
                                       "strategy_params": {"max_surge": 1,
                                                           "max_unavailable": 0}}))
    r = roomy["rollout_summary"].iloc[0]
    assert r.outcome == "complete" and r.min_serving_fraction == 1.0
    admits = roomy["events"].query("kind == 'admit' and entity.str.contains('@')")
    assert (admits["cpu_cores"] == 2.0).all() and len(admits) == 4


def test_bare_metal_hosts_with_a_neighbour_pinning_the_old_library_fail_with_a_conflict():
    """A legacy app pins openssl 1.1 on some hosts; v2 of web needs 3.0."""
    legacy = [{"name": "legacy", "replicas": 5, "cpu_request_cores": 1, "ram_mib": 512,
               "dependencies": {"openssl": "1.1"}}]
    tables = run(scenario("baremetal", n=10, apps=legacy,
                          rollout={**BATCHES, "dependencies": {"openssl": "3.0"}}))
    failed = tables["timeline"].query("version == 'v2' and failed.notna()")
    events = tables["events"]
    pinned = set(events.query("kind == 'admit' and entity.str.startswith('legacy')")["host"])
    assert set(failed["host"]) == pinned and len(pinned) == 5
    assert failed["failure"].str.contains("dependency conflict").all()
    assert (failed["attempts"] == 1).all()
    assert tables["rollout_summary"].iloc[0].new_failed == len(failed)
    clean = run(scenario("baremetal", n=10, apps=legacy, rollout=BATCHES))
    assert clean["rollout_summary"].iloc[0].new_failed == 0


def test_failures_past_the_threshold_roll_the_fleet_back():
    """Half the bare-metal hosts cannot take v2's library; v1 reinstalls cleanly."""
    legacy = [{"name": "legacy", "replicas": 10, "cpu_request_cores": 1, "ram_mib": 512,
               "dependencies": {"openssl": "1.1"}}]
    tables = run(scenario("baremetal", n=20, apps=legacy,
                          rollout={**BATCHES, "dependencies": {"openssl": "3.0"},
                                   "rollback_failure_fraction": 0.1}))
    assert tables["rollout_summary"].iloc[0].outcome == "rolled-back"
    assert tables["capacity"].iloc[-1][["old_healthy", "new_healthy"]].tolist() == [20, 0]
    assert "rollback" in set(tables["events"]["kind"])


def test_same_seed_same_tables_other_seed_other_timeline():
    data = scenario("vm", n=30, rollout={"distribution": "p2p"},
                    hosting={"vm": {"boot_s": {"dist": "lognormal", "mean": 30, "cv": 0.3}}})
    first, again = run(data, seed=3), run(data, seed=3)
    for name in ("timeline", "capacity", "rollout_summary", "events"):
        pd.testing.assert_frame_equal(first[name], again[name])
    other = run(data, seed=4)
    assert not first["timeline"]["healthy"].equals(other["timeline"]["healthy"])


def test_a_retired_instance_stops_its_requests_and_the_new_one_starts_them():
    """Interim (per-replica streams): jobs in flight on a stopped instance are counted on
    its stop event; the new instance's requests begin when it runs, none before."""
    web_jobs = [{"kind": "jobs", "rate_per_s": 4.0, "work_core_s": 0.2}]
    data = scenario(n=4, rollout={"strategy": "all-at-once"})
    data["apps"][0]["workloads"] = web_jobs
    data["run"] = {"duration_s": 400.0, "record": ["events", "jobs"]}
    tables = run(data)
    stops = tables["events"].query("kind == 'stop'")
    assert len(stops) == 4 and stops["count"].sum() > 0
    new_jobs = tables["jobs"][tables["jobs"]["workload"].str.contains("@v2")]
    healthy = tables["timeline"].query("version == 'v2'").set_index("host")["started"]
    first = new_jobs.groupby("host")["arrival"].min()
    assert (first >= healthy.reindex(first.index)).all()


def test_defaults_of_the_image_keys_are_the_published_ones():
    images = cfg.ImagesConfig()
    assert (images.base_layers_mb, images.app_layer_mb, images.vm_image_mb) == (
        [d.CONTAINER_BASE_LAYER_MB], d.CONTAINER_APP_LAYER_MB, d.VM_IMAGE_MB)
    assert cfg.HostGroupConfig(type="h", count=1, cores=1).nic_mb_s == d.HOST_NIC_MB_S


@settings(max_examples=12, deadline=None)
@given(n=st.integers(2, 8), mode=st.sampled_from(["container", "vm"]),
       strategy=st.sampled_from([("all-at-once", {}), ("rolling", {}),
                                 ("rolling", {"max_surge": 1, "max_unavailable": 0}),
                                 ("batches", {"size": 3}), ("canary", {"fraction": 0.3}),
                                 ("blue-green", {})]),
       seed=st.integers(0, 3))
def test_every_replica_ends_on_v2_and_serving_stays_within_the_budgets(n, mode, strategy, seed):
    """Without failures every rollout completes: one healthy v2 instance per replica, no
    v1 left, and at no time more instances serve than replicas plus the surge budget."""
    name, params = strategy
    tables = run(scenario(mode, n=n, rollout={"strategy": name, "strategy_params": params},
                          hosting={"vm": {"boot_s": {"dist": "lognormal", "mean": 30,
                                                     "cv": 0.3}}}), seed=seed)
    s = tables["rollout_summary"].iloc[0]
    assert s.outcome == "complete" and s.new_healthy == n and s.new_failed == 0
    capacity = tables["capacity"]
    assert capacity.iloc[-1][["old_healthy", "new_healthy"]].tolist() == [0, n]
    serving = capacity["old_healthy"] + capacity["new_healthy"]
    # blue-green doubles the fleet; rolling (and the rolling update after a canary) surges
    surge = 0
    if name in ("rolling", "canary"):
        surge = Rolling(**(params if name == "rolling" else {})).budgets(n)[0]
    elif name == "blue-green":
        surge = n
    assert serving.max() <= n + surge
    assert s.min_serving_fraction == pytest.approx(serving.min() / n)


def test_a_retried_attempt_numbers_its_jobs_on_from_the_failed_one():
    """A replica whose health check fails is provisioned again; its requests' ids go on
    from the failed attempt's, so (workload, job_id) stays a key of the jobs table."""
    requests = [{"kind": "jobs", "name": "requests", "rate_per_s": 2.0,
                 "work_core_s": {"dist": "exponential", "mean": 0.05}, "max_cores": 1.0}]
    data = scenario(n=6, rollout={"health_failure_p": 0.5})
    data["apps"][0]["workloads"] = requests
    data["run"].update({"duration_s": 600, "record": ["jobs", "events"]})
    tables = run(data, seed=1)
    events = tables["events"]
    assert (events["kind"] == "attempt_failed").sum() > 0
    jobs = tables["jobs"]
    retried = set(events.loc[events["kind"] == "attempt_failed", "entity"])
    assert jobs["replica"].isin(retried).any()
    assert not jobs.duplicated(["workload", "job_id"]).any()
