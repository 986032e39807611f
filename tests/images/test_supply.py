"""ImageSupply: images by reference, pulled to a host through the shared network."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import simpy

from fleet_sim.images.cache import LayerCache
from fleet_sim.images.network import Network
from fleet_sim.images.registry import Registry
from fleet_sim.images.supply import ImageSupply, container_image
from fleet_sim.results.recorder import ChangePointRecorder


def test_apps_share_the_base_layers_and_a_top_layer_change_keeps_them():
    web, api = (container_image(a, "v1", (200.0, 50.0), 30.0) for a in ("web", "api"))
    assert web.layers[:2] == api.layers[:2] and web.layers[2] != api.layers[2]
    v2 = web.next_version("v2", "top-layer")
    assert v2.layers[:2] == web.layers[:2] and v2.layers[2] != web.layers[2]


def test_a_pull_fetches_what_the_cache_lacks_and_times_it():
    """Host h holds the base (web's); api's 30 MB top layer at 10 MB/s takes 3 s."""
    env = simpy.Environment()
    network = Network(env, ChangePointRecorder(tables=()))
    network.attach("registry", 1000.0, 1000.0)
    network.attach("h", 10.0, 10.0)
    caches = {"h": LayerCache(1000.0)}
    supply = ImageSupply(env, Registry(env, network, caches, node="registry",
                                       max_concurrent_downloads=3))
    for app in ("web", "api"):
        supply.add(container_image(app, "v1", (200.0,), 30.0))
    caches["h"].add(container_image("web", "v1", (200.0,), 30.0).layers[0])
    inst = SimpleNamespace(name="api", app=SimpleNamespace(image="api:v1"),
                           host=SimpleNamespace(name="h"), transfer_s=None)
    done = supply.fetch(inst)
    env.run()
    assert done.value is True and inst.transfer_s == pytest.approx((0.0, 3.0))
    with pytest.raises(KeyError, match="no image 'db:v1'; known: api:v1, web:v1"):
        supply.fetch(SimpleNamespace(name="db", app=SimpleNamespace(image="db:v1")))
