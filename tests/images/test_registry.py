"""Pulls fetch only missing layers, from the registry or from peers."""

from __future__ import annotations

import pytest
import simpy

from fleet_sim.errors import CapacityError
from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import ContainerImage, Layer
from fleet_sim.images.network import Network
from fleet_sim.images.registry import PeerToPeer, Registry
from fleet_sim.model.protocols import NullRecorder

V1 = ContainerImage.build("web", "v1", (200, 30))
V2 = V1.next_version("v2", "top-layer")


def _setup(hosts, nic_mb_s=100.0, registry_mb_s=100.0, racks=None):
    env = simpy.Environment()
    net = Network(env, NullRecorder())
    net.attach("registry", registry_mb_s, registry_mb_s)
    for rack in sorted(set((racks or {}).values())):
        net.add_rack(rack, 1e6, 1e6)
    for h in hosts:
        net.attach(h, nic_mb_s, nic_mb_s, (racks or {}).get(h))
    return env, net, {h: LayerCache(10_000) for h in hosts}


def _central(env, net, caches, downloads=3):
    return Registry(env, net, caches, node="registry", max_concurrent_downloads=downloads)


def _run_pull(env, source, host, layers):
    result = {}

    def pull():
        result["mb"] = yield from source.pull(host, layers)
        result["t"] = env.now

    env.process(pull())
    env.run()
    return result


def test_a_fully_cached_image_moves_no_bytes_and_takes_no_time():
    env, net, caches = _setup(["h0"])
    for layer in V1.layers:
        caches["h0"].add(layer)
    assert _run_pull(env, _central(env, net, caches), "h0", V1.layers) == {"mb": 0, "t": 0.0}
    assert net.links["registry.up"].bytes_mb == 0.0


def test_a_new_top_layer_is_the_only_transfer():
    env, net, caches = _setup(["h0"])
    for layer in V1.layers:
        caches["h0"].add(layer)
    assert _run_pull(env, _central(env, net, caches), "h0", V2.layers) == {"mb": 30, "t": 0.3}
    assert net.links["registry.up"].bytes_mb == pytest.approx(30.0)
    assert all(layer.digest in caches["h0"] for layer in V2.layers)


def test_layers_download_at_most_max_concurrent_downloads_at_once():
    layers = [Layer.of(f"l{i}", 100) for i in range(4)]
    cached_at_1_5_s = {}
    for downloads in (1, 4):
        env, net, caches = _setup(["h0"])
        env.process(_central(env, net, caches, downloads).pull("h0", layers))
        env.run(until=1.5)
        cached_at_1_5_s[downloads] = len(caches["h0"])
        env.run()
        assert env.now == pytest.approx(4.0)  # the NIC is the bottleneck either way
    assert cached_at_1_5_s == {1: 1, 4: 0}


def test_an_image_larger_than_the_cache_is_refused():
    env, net, _ = _setup(["h0"])
    source = _central(env, net, {"h0": LayerCache(100)})
    with pytest.raises(CapacityError, match="does not fit"):
        _run_pull(env, source, "h0", V1.layers)


def _p2p(env, net, caches, slots=1, registry_slots=1):
    return PeerToPeer(env, net, caches, node="registry", max_concurrent_downloads=3,
                      upload_slots=slots, registry_upload_slots=registry_slots)


def _pull_everywhere(env, source, hosts, layers):
    finished = {}

    def pull(h):
        yield from source.pull(h, layers)
        finished[h] = env.now

    for h in hosts:
        env.process(pull(h))
    env.run()
    return finished


def test_peers_serve_a_layer_once_they_hold_it():
    """Registry and peers have one upload slot; h1 gets the layer from the registry by
    t = 1, then serves h3 while the registry serves h2: all done by 2 s (3 s central)."""
    layer = [Layer.of("app", 100)]
    env, net, caches = _setup(["h1", "h2", "h3"])
    finished = _pull_everywhere(env, _p2p(env, net, caches), ["h1", "h2", "h3"], layer)
    assert finished == pytest.approx({"h1": 1.0, "h2": 2.0, "h3": 2.0})
    assert net.links["h1.up"].bytes_mb == pytest.approx(100)
    assert net.links["registry.up"].bytes_mb == pytest.approx(200)

    env, net, caches = _setup(["h1", "h2", "h3"])
    central = _pull_everywhere(env, _central(env, net, caches), ["h1", "h2", "h3"], layer)
    assert max(central.values()) == pytest.approx(3.0)


def test_a_peer_in_the_same_rack_is_preferred():
    layer = Layer.of("app", 100)
    hosts = ["c", "a", "b"]
    env, net, caches = _setup(hosts, racks={"a": "r0", "b": "r0", "c": "r1"})
    caches["c"].add(layer)
    caches["a"].add(layer)
    _pull_everywhere(env, _p2p(env, net, caches), ["b"], [layer])
    assert net.links["a.up"].bytes_mb == pytest.approx(100)
    assert net.links["c.up"].bytes_mb == 0.0


def test_a_peer_that_evicted_the_layer_no_longer_serves_it():
    layer = Layer.of("app", 100)
    env, net, caches = _setup(["h0", "h1"])
    caches["h0"] = LayerCache(100)
    caches["h0"].add(layer)
    source = _p2p(env, net, caches)
    caches["h0"].add(Layer.of("other", 100))  # evicts the app layer
    _pull_everywhere(env, source, ["h1"], [layer])
    assert net.links["h0.up"].bytes_mb == 0.0
    assert net.links["registry.up"].bytes_mb == pytest.approx(100)
