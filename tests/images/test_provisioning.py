"""Provisioning recipes per hosting mode, health checks and retries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import ContainerImage, VMImage
from fleet_sim.images.network import Network
from fleet_sim.images.provisioning import (
    BareMetalInstall,
    ContainerProvision,
    HealthCheck,
    InstallStep,
    Provisioning,
    VMProvision,
)
from fleet_sim.images.registry import Registry
from fleet_sim.model.distributions import Deterministic
from fleet_sim.model.rollout import InstanceRecord
from fleet_sim.results.recorder import ChangePointRecorder

RELEASE = [
    InstallStep("install dependencies", 400.0, download_mb=200, requires={"openssl": "3.0"}),
    InstallStep("install application", 200.0, download_mb=30),
]


def _net(env, hosts):
    net = Network(env, ChangePointRecorder(tables=()))
    net.attach("registry", 100, 100)
    for h in hosts:
        net.attach(h, 100, 100)
    return net


def _provision(env, recipe, *, health_p=0.0, retries=1):
    rec = ChangePointRecorder(tables=("events",))
    rng = np.random.default_rng(0)
    prov = Provisioning(env, recipe, HealthCheck(env, 10.0, health_p, rng), max_retries=retries,
                        recorder=rec)
    return prov, rec


def _run(env, prov, *hosts, version="v2"):
    records = [InstanceRecord(f"{h}.app", h, version, queued=0.0) for h in hosts]
    results = {}

    def one(record):
        results[record.host] = yield from prov.provision(record)

    for record in records:
        env.process(one(record))
    env.run()
    return records, results


def _bare_metal(env, net, *, pins=None, step_p=0.0, workers=None):
    return BareMetalInstall(env, net, {"v2": RELEASE}, mirror="registry", pins=pins or {},
                            step_failure_p=step_p, restart_time=Deterministic(5.0),
                            rng=np.random.default_rng(1), workers=workers)


def test_bare_metal_install_downloads_runs_steps_restarts_and_checks():
    env = simpy.Environment()
    prov, _ = _provision(env, _bare_metal(env, _net(env, ["h0"])))
    (record,), results = _run(env, prov, "h0")
    assert results == {"h0": True}
    # 2 s of packages, 400 s of dependencies, 0.3 s of app package, 200 s, then restart 5 s
    assert (record.transfer_start, record.transfer_end) == pytest.approx((0.0, 402.3))
    assert record.started == pytest.approx(607.3)
    assert record.attempts == 1


def test_a_dependency_conflict_fails_at_once_and_is_not_retried():
    env = simpy.Environment()
    net = _net(env, ["h0", "h1"])
    prov, rec = _provision(env, _bare_metal(env, net, pins={"h1": {"openssl": "1.1"}}),
                           retries=3)
    (_, conflicted), results = _run(env, prov, "h0", "h1")
    assert results == {"h0": True, "h1": False}
    assert conflicted.attempts == 1
    assert "dependency conflict: needs openssl 3.0, another app pins openssl 1.1" in (
        conflicted.failure)
    assert math.isnan(conflicted.started)
    assert rec.data["events"]["kind"] == ["attempt_failed"]
    assert rec.data["events"]["t"][0] == 0.0


def test_a_failing_step_is_retried_then_the_instance_fails():
    env = simpy.Environment()
    prov, rec = _provision(env, _bare_metal(env, _net(env, ["h0"]), step_p=1.0), retries=2)
    (record,), results = _run(env, prov, "h0")
    assert results == {"h0": False}
    assert record.attempts == 3
    assert record.failure == "install dependencies: step failed"
    assert len(rec.data["events"]["kind"]) == 3


def test_manual_install_works_on_as_many_hosts_as_there_are_workers():
    env = simpy.Environment()
    net = _net(env, ["h0", "h1"])
    prov, _ = _provision(env, _bare_metal(env, net, workers=1))
    (first, second), _ = _run(env, prov, "h0", "h1")
    # the operator moves on once the first host's steps are done (602.3 s)
    assert second.transfer_start == pytest.approx(first.transfer_end + 200.0)


def _image_recipe(env, cls, images, start_s):
    net = _net(env, ["h0"])
    caches = {"h0": LayerCache(10_000)}
    for layer in images["v1"].layers:
        caches["h0"].add(layer)
    source = Registry(env, net, caches, node="registry", max_concurrent_downloads=3)
    return cls(env, source, images, Deterministic(start_s), np.random.default_rng(2)), net


def test_a_container_pulls_its_new_top_layer_starts_and_is_checked():
    env = simpy.Environment()
    v1 = ContainerImage.build("app", "v1", (200, 30))
    recipe, net = _image_recipe(env, ContainerProvision,
                                {"v1": v1, "v2": v1.next_version("v2", "top-layer")}, 0.5)
    prov, _ = _provision(env, recipe)
    (record,), _ = _run(env, prov, "h0")
    assert (record.transfer_start, record.transfer_end, record.started) == pytest.approx(
        (0.0, 0.3, 0.8))
    assert net.links["registry.up"].bytes_mb == pytest.approx(30)


def test_a_vm_copies_its_whole_image_then_boots():
    env = simpy.Environment()
    v1 = VMImage("app", "v1", 2000)
    recipe, _ = _image_recipe(env, VMProvision, {"v1": v1, "v2": v1.next_version("v2")}, 30.0)
    prov, _ = _provision(env, recipe)
    (record,), _ = _run(env, prov, "h0")
    assert (record.transfer_end, record.started) == pytest.approx((20.0, 50.0))


def test_health_check_failures_are_retried_and_the_image_is_not_fetched_again():
    env = simpy.Environment()
    v1 = VMImage("app", "v1", 2000)
    recipe, net = _image_recipe(env, VMProvision, {"v1": v1, "v2": v1.next_version("v2")}, 30.0)
    prov, _ = _provision(env, recipe, health_p=1.0, retries=1)
    (record,), results = _run(env, prov, "h0")
    assert results == {"h0": False}
    assert record.attempts == 2
    assert record.failure == "health check failed"
    assert record.transfer_start == 0.0
    assert record.started == pytest.approx(20 + 30 + 10 + 30)  # second boot, no second copy
    assert net.links["registry.up"].bytes_mb == pytest.approx(2000)
