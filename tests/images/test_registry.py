"""Pulls fetch only missing layers from the registry or a rack mirror; lazy starts; unpacking."""

from __future__ import annotations

import pytest
import simpy

from fleet_sim.errors import CapacityError
from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import ContainerImage, Layer
from fleet_sim.images.network import Network
from fleet_sim.images.registry import Registry, Unpacker
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


def _pull_everywhere(env, source, hosts, layers):
    finished = {}

    def pull(h):
        yield from source.pull(h, layers)
        finished[h] = env.now

    for h in hosts:
        env.process(pull(h))
    env.run()
    return finished


@pytest.mark.parametrize("n_hosts", [1, 7, 40])
def test_central_pulls_of_n_hosts_take_n_times_size_over_the_uplink(n_hosts):
    """Two 150 MB layers, 1000 MB/s uplink shared by all, NICs never the limit: the
    registry sends N x 300 MB at 1000 MB/s, every host finishing at N x 0.3 s."""
    layers = [Layer.of("a", 150), Layer.of("b", 150)]
    hosts = [f"h{i}" for i in range(n_hosts)]
    env, net, caches = _setup(hosts, nic_mb_s=1e6, registry_mb_s=1000)
    finished = _pull_everywhere(env, _central(env, net, caches), hosts, layers)
    assert finished == pytest.approx(dict.fromkeys(hosts, n_hosts * 0.3))
    assert net.links["registry.up"].bytes_mb == pytest.approx(n_hosts * 300)


def test_a_rack_mirror_fetches_each_layer_once_and_serves_its_rack():
    """Registry 100 MB/s, NICs 100 MB/s, one 100 MB layer, two racks of two hosts with a
    mirror each: each mirror gets the layer by t = 2 (two mirrors share the uplink),
    then serves its two hosts at 50 MB/s each: all done at t = 4; the registry sent
    200 MB, not 400."""
    layer = [Layer.of("app", 100)]
    racks = {"a0": "r0", "a1": "r0", "b0": "r1", "b1": "r1"}
    env, net, caches = _setup(list(racks), racks=racks)
    for rack in ("r0", "r1"):
        net.attach(f"mirror-{rack}", 100, 100, rack)
    source = Registry(env, net, caches, node="registry", max_concurrent_downloads=3,
                      mirrors={"r0": "mirror-r0", "r1": "mirror-r1"})
    finished = _pull_everywhere(env, source, list(racks), layer)
    assert finished == pytest.approx(dict.fromkeys(racks, 4.0))
    assert net.links["registry.up"].bytes_mb == pytest.approx(200)


def test_layers_unpack_in_order_streaming_behind_their_download():
    """NIC 100 MB/s, layers of 100 and 50 MB downloading at once (50 MB/s each), unpack
    at 40 MB/s per core: the first unpacks over [0, 2.5], the second, downloaded by
    t = 1.5, over [2.5, 3.75]. A CPU hook sees the core-s of each layer."""
    layers = [Layer.of("base", 100), Layer.of("app", 50)]
    env, net, caches = _setup(["h0"])
    work = []

    def cpu(host, work_core_s, max_cores):
        work.append((host, work_core_s, max_cores))
        yield env.timeout(work_core_s / max_cores)

    source = Registry(env, net, caches, node="registry", max_concurrent_downloads=3,
                      unpacker=Unpacker(env, 40.0, cpu))
    assert _run_pull(env, source, "h0", layers) == {"mb": 150, "t": 3.75}
    assert work == [("h0", 2.5, 1.0), ("h0", 1.25, 1.0)]


def test_a_slow_download_bounds_its_unpacking():
    """A 100 MB layer at 100 MB/s unpacks at 1000 MB/s: usable when it has arrived, t = 1."""
    env, net, caches = _setup(["h0"])
    source = Registry(env, net, caches, node="registry", max_concurrent_downloads=3,
                      unpacker=Unpacker(env, 1000.0))
    assert _run_pull(env, source, "h0", [Layer.of("l", 100)]) == {"mb": 100, "t": 1.0}


def test_a_lazy_pull_starts_after_its_fraction_and_finishes_in_the_background():
    """10 % of each of two 100 MB layers (50 MB/s each on a 100 MB/s NIC): ready at
    t = 0.2; the remaining 180 MB follow, cached by t = 2."""
    layers = [Layer.of("a", 100), Layer.of("b", 100)]
    env, net, caches = _setup(["h0"])
    source = Registry(env, net, caches, node="registry", max_concurrent_downloads=3,
                      lazy_fraction=0.1, unpacker=Unpacker(env, 1.0))
    result = {}

    def pull():
        yield from source.pull("h0", layers)
        result["ready"] = env.now
        result["cached"] = len(caches["h0"])

    env.process(pull())
    env.run()
    assert result == {"ready": pytest.approx(0.2), "cached": 0}
    assert env.now == pytest.approx(2.0)
    assert len(caches["h0"]) == 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_concurrent_downloads": 0}, "max_concurrent_downloads"),
    ({"lazy_fraction": 0.0}, "lazy_fraction"),
])
def test_bad_parameters_are_refused(kwargs, message):
    env, net, caches = _setup(["h0"])
    with pytest.raises(ValueError, match=message):
        Registry(env, net, caches, node="registry", **({"max_concurrent_downloads": 3} | kwargs))


@pytest.mark.parametrize("swarm", [False, True])
def test_two_pulls_of_one_image_on_a_host_fetch_it_once(swarm):
    """Two replicas starting together on h0: 230 MB cross the registry link once (2.3 s
    at 100 MB/s); the second pull waits for the first and fetches nothing."""
    from fleet_sim.images.swarm import Swarm

    env, net, caches = _setup(["h0"])
    source = (Swarm(env, net, caches, origins=["registry"], max_concurrent_downloads=3,
                    piece_mb=4.0, upload_slots=4) if swarm else _central(env, net, caches))
    results = []

    def pull():
        mb = yield from source.pull("h0", V1.layers)
        results.append((mb, env.now))

    env.process(pull())
    env.process(pull())
    env.run()
    assert sorted(mb for mb, _ in results) == [0, 230]
    assert [t for _, t in results] == [pytest.approx(2.3)] * 2
    assert net.links["registry.up"].bytes_mb == pytest.approx(230.0)
