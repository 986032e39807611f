"""The P2P swarm: exact hand cases, a piece-level rarest-first reference, flat scaling."""

from __future__ import annotations

import math
import statistics

import pytest
import simpy

from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import Layer
from fleet_sim.images.network import Network
from fleet_sim.images.registry import Registry
from fleet_sim.images.swarm import Swarm
from fleet_sim.model.protocols import NullRecorder


def _net(n_hosts, origin_mb_s, nic_mb_s, racks=None):
    env = simpy.Environment()
    net = Network(env, NullRecorder())
    net.attach("registry", origin_mb_s, origin_mb_s)
    hosts = [f"h{i}" for i in range(n_hosts)]
    for rack in sorted(set((racks or {}).values())):
        net.add_rack(rack, 1e6, 1e6)
    for h in hosts:
        net.attach(h, nic_mb_s, nic_mb_s, (racks or {}).get(h))
    return env, net, hosts


def _swarm(env, net, caches, piece_mb, **kwargs):
    return Swarm(env, net, caches, origins=["registry"], max_concurrent_downloads=3,
                 piece_mb=piece_mb, upload_slots=4, **kwargs)


def _pull_all(env, source, hosts, layers):
    finished = {}

    def pull(h):
        yield from source.pull(h, layers)
        finished[h] = env.now

    for h in hosts:
        env.process(pull(h))
    env.run()
    return finished


def fluid(n_hosts, origin_mb_s, nic_mb_s, size_mb, piece_mb):
    """Finish times of ``n_hosts`` pulling one layer from the swarm at once."""
    env, net, hosts = _net(n_hosts, origin_mb_s, nic_mb_s)
    source = _swarm(env, net, {h: LayerCache(1e9) for h in hosts}, piece_mb)
    return _pull_all(env, source, hosts, [Layer.of("layer", size_mb)])


def pieces(n_hosts, origin_mb_s, nic_mb_s, size_mb, piece_mb):
    """The same pull, piece by piece: the reference the fluid swarm is checked against.

    Every host talks to every other and to the origin, one piece in flight per
    connection, each piece one flow over the same max-min network. A source sends
    the rarest piece it has that the receiver lacks and is not already receiving
    (fewest hosts holding or receiving it, then lowest index); the origin
    super-seeds (sends only pieces no host has yet, BitTorrent's BEP 16).
    """
    env, net, hosts = _net(n_hosts, origin_mb_s, nic_mb_s)
    n = math.ceil(size_mb / piece_mb)
    sizes = [min(piece_mb, size_mb - k * piece_mb) for k in range(n)]
    have = {h: set() for h in hosts} | {"registry": set(range(n))}
    coming: dict[str, set[int]] = {h: set() for h in hosts}
    count = [0] * n
    busy: set[tuple[str, str]] = set()
    done: dict[str, float] = {}

    def send(src, dst):
        if (src, dst) in busy or dst in done or src == dst:
            return
        wanted = have[src] - have[dst] - coming[dst]
        if src == "registry":
            wanted = {k for k in wanted if count[k] == 0}
        if wanted:
            k = min(wanted, key=lambda p: (count[p], p))
            busy.add((src, dst))
            coming[dst].add(k)
            count[k] += 1
            net.transfer(src, dst, sizes[k]).callbacks.append(
                lambda _e: arrived(src, dst, k))

    def arrived(src, dst, k):
        busy.discard((src, dst))
        coming[dst].discard(k)
        have[dst].add(k)
        if len(have[dst]) == n:
            done[dst] = env.now
        for a, b in [(src, dst), *((dst, h) for h in hosts), *(("registry", h) for h in hosts)]:
            send(a, b)

    for dst in hosts:
        for src in ("registry", *hosts):
            send(src, dst)
    env.run()
    return done


# --- exact hand cases, equal to the piece-level reference ----------------------------
@pytest.mark.parametrize(("n_hosts", "origin", "nic", "size", "piece", "finish_s"), [
    # one host: the origin alone, 400 MB at 100 MB/s
    (1, 100, 100, 400, 100, 4.0),
    # two hosts, 4 pieces: each gets 50 MB/s fresh from the origin and swaps what it got
    # at 50 MB/s: 400 MB at 100 MB/s by t = 4, plus the last piece relayed, 1 s
    (2, 100, 100, 400, 100, 5.0),
    # the same with 8 pieces of 50 MB: the relay tail halves
    (2, 100, 100, 400, 50, 4.5),
    # NICs ten times the origin: no host outruns what the origin injects (100 MB/s),
    # the last 100 MB piece swaps at 1000 MB/s: 0.1 s
    (2, 100, 1000, 400, 100, 4.1),
])
def test_hand_cases_match_the_piece_level_swarm(n_hosts, origin, nic, size, piece, finish_s):
    hosts = [f"h{i}" for i in range(n_hosts)]
    assert fluid(n_hosts, origin, nic, size, piece) == pytest.approx(
        dict.fromkeys(hosts, finish_s))
    assert pieces(n_hosts, origin, nic, size, piece) == pytest.approx(
        dict.fromkeys(hosts, finish_s))


def test_an_origin_faster_than_the_hosts_leaves_the_fluid_one_piece_slow():
    """Origin 1000 MB/s, NICs 100: pieces reach every host by t = 4; the fluid shares
    each NIC between origin and peer and adds the relay tail: 5 s, one piece-time more."""
    assert set(pieces(2, 1000, 100, 400, 100).values()) == {4.0}
    assert set(fluid(2, 1000, 100, 400, 100).values()) == {5.0}


@pytest.mark.parametrize("n_hosts", [3, 6])
def test_the_piece_level_swarm_converges_to_the_fluid_as_pieces_shrink(n_hosts):
    """The gap is a relay tail of whole pieces: at most n piece-times, and it halves
    with the piece size (the fluid is the limit of small pieces)."""
    gaps = []
    for piece_mb in (50.0, 25.0, 12.5):
        ref = max(pieces(n_hosts, 100, 100, 100 * n_hosts, piece_mb).values())
        model = max(fluid(n_hosts, 100, 100, 100 * n_hosts, piece_mb).values())
        assert abs(ref - model) <= n_hosts * piece_mb / 100 + 1e-9
        gaps.append(ref - model)
    assert gaps[0] > 0
    assert gaps[1] == pytest.approx(gaps[0] / 2)
    assert gaps[2] == pytest.approx(gaps[0] / 4)


# --- scale ----------------------------------------------------------------------------
def _p50_all_at_once(n_hosts):
    """Median time for n hosts to pull two 1500 MB layers over P2P: 300 MB/s NICs,
    a 1250 MB/s registry, 4 MB pieces."""
    env, net, hosts = _net(n_hosts, 1250, 300)
    source = _swarm(env, net, {h: LayerCache(1e9) for h in hosts}, 4.0)
    layers = [Layer.of("base", 1500), Layer.of("app", 1500)]
    return statistics.median(_pull_all(env, source, hosts, layers).values())


def test_pipelining_keeps_the_time_flat_from_100_to_5000_hosts():
    """About what one host needs at its own link speed (3000 MB / 300 MB/s = 10 s)."""
    small, large = _p50_all_at_once(100), _p50_all_at_once(5000)
    assert large <= 1.5 * small
    assert 10.0 < small < 10.1


# --- sources, caps, seeds -------------------------------------------------------------
def test_peer_traffic_and_registry_egress_add_up_to_what_hosts_received():
    env, net, hosts = _net(20, 500, 100)
    source = _swarm(env, net, {h: LayerCache(1e9) for h in hosts}, 4.0)
    _pull_all(env, source, hosts, [Layer.of("layer", 200)])
    received = sum(net.links[f"{h}.down"].bytes_mb for h in hosts)
    uploaded = sum(net.links[f"{h}.up"].bytes_mb for h in hosts)
    assert received == pytest.approx(20 * 200)
    assert uploaded + net.links["registry.up"].bytes_mb == pytest.approx(received)
    # the origin sends at its full 500 MB/s for the 2 s the pull takes: 1000 of 4000 MB
    assert net.links["registry.up"].bytes_mb == pytest.approx(1000)


def test_a_download_cap_below_the_nic_sets_the_pace():
    """One host, origin and NIC at 1000 MB/s, a 100 MB/s agent cap: 400 MB in 4 s."""
    env, net, hosts = _net(1, 1000, 1000)
    source = _swarm(env, net, {"h0": LayerCache(1e9)}, 4.0, download_cap_mb_s=100.0)
    assert _pull_all(env, source, hosts, [Layer.of("layer", 400)]) == {"h0": 4.0}


def test_an_upload_cap_limits_what_peers_swap():
    """Two hosts at 1000 MB/s NICs, origin 100: unbounded they would get 100 MB/s each
    (50 fresh + 50 swapped); a 10 MB/s upload cap leaves 50 + 10, so 240 MB take 4 s
    plus the 4 MB tail at 1000 MB/s."""
    env, net, hosts = _net(2, 100, 1000)
    source = _swarm(env, net, {h: LayerCache(1e9) for h in hosts}, 4.0, upload_cap_mb_s=10.0)
    finished = _pull_all(env, source, hosts, [Layer.of("layer", 240)])
    assert finished == pytest.approx({"h0": 4.004, "h1": 4.004})


def test_two_origins_seed_twice_as_fast():
    env, net, hosts = _net(1, 100, 1000)
    net.attach("origin2", 100, 100)
    source = Swarm(env, net, {"h0": LayerCache(1e9)}, origins=["registry", "origin2"],
                   max_concurrent_downloads=3, piece_mb=4.0, upload_slots=4)
    assert _pull_all(env, source, hosts, [Layer.of("layer", 400)]) == {"h0": 2.0}


def test_a_seed_in_the_same_rack_is_preferred():
    layer = Layer.of("app", 100)
    env, net, hosts = _net(3, 100, 100, racks={"h0": "r1", "h1": "r0", "h2": "r0"})
    caches = {h: LayerCache(1e9) for h in hosts}
    caches["h0"].add(layer)
    caches["h1"].add(layer)
    source = Swarm(env, net, caches, origins=["registry"], max_concurrent_downloads=3,
                   piece_mb=4.0, upload_slots=1)
    _pull_all(env, source, ["h2"], [layer])
    assert net.links["h1.up"].bytes_mb == pytest.approx(50)  # with the origin, 50/50
    assert net.links["h0.up"].bytes_mb == 0.0


def test_a_host_that_finished_seeds_a_later_one():
    """h0 pulls alone from a 100 MB/s origin (1 s for 100 MB); h1 starts at t = 1 and
    gets 100 MB/s from each of origin and h0 on its 200 MB/s NIC: done at t = 1.5."""
    layer = Layer.of("app", 100)
    env, net, hosts = _net(2, 100, 200)
    source = _swarm(env, net, {h: LayerCache(1e9) for h in hosts}, 4.0)
    finished = {}

    def pull(h, at):
        yield env.timeout(at)
        yield from source.pull(h, [layer])
        finished[h] = env.now

    env.process(pull("h0", 0.0))
    env.process(pull("h1", 1.0))
    env.run()
    assert finished == pytest.approx({"h0": 1.0, "h1": 1.5})


def test_a_seed_that_evicted_the_layer_no_longer_serves_it():
    layer = Layer.of("app", 100)
    env, net, _ = _net(2, 100, 100)
    caches = {"h0": LayerCache(100), "h1": LayerCache(1e9)}
    caches["h0"].add(layer)
    source = _swarm(env, net, caches, 4.0)
    caches["h0"].add(Layer.of("other", 100))  # evicts the app layer
    _pull_all(env, source, ["h1"], [layer])
    assert net.links["h0.up"].bytes_mb == 0.0
    assert net.links["registry.up"].bytes_mb == pytest.approx(100)


def test_the_swarm_is_much_faster_than_the_central_registry_at_scale():
    layers = [Layer.of("layer", 1000)]
    times = {}
    for name in ("central", "p2p"):
        env, net, hosts = _net(200, 1250, 1250)
        caches = {h: LayerCache(1e9) for h in hosts}
        source = (Registry(env, net, caches, node="registry", max_concurrent_downloads=3)
                  if name == "central" else _swarm(env, net, caches, 4.0))
        times[name] = max(_pull_all(env, source, hosts, layers).values())
    assert times["central"] == pytest.approx(200 * 1000 / 1250)
    assert times["p2p"] < 1.0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"origins": []}, "at least one origin"),
    ({"piece_mb": 0.0}, "piece_mb"),
    ({"upload_slots": 0}, "upload_slots"),
    ({"upload_cap_mb_s": 0.0}, "upload_cap_mb_s"),
])
def test_bad_parameters_are_refused(kwargs, message):
    env, net, _ = _net(1, 100, 100)
    params = {"origins": ["registry"], "max_concurrent_downloads": 3, "piece_mb": 4.0,
              "upload_slots": 4} | kwargs
    with pytest.raises(ValueError, match=message):
        Swarm(env, net, {"h0": LayerCache(1e9)}, **params)


def test_a_lazy_swarm_pull_starts_early_and_seeds_once_complete():
    """One host, origin 100 MB/s, lazy at 25 % of a 400 MB layer: it may start at
    t = 1 and has the rest by t = 4. A host pulling from t = 4 gets 100 MB/s from the
    origin and 900 from that seed (NICs 1000): its first 100 MB by t = 4.1, and the
    seed uploads 90 % of the layer."""
    layer = Layer.of("app", 400)
    env, net, _ = _net(2, 100, 1000)
    source = _swarm(env, net, {"h0": LayerCache(1e9), "h1": LayerCache(1e9)}, 4.0,
                    lazy_fraction=0.25)
    ready = {}

    def pull(h, at):
        yield env.timeout(at)
        yield from source.pull(h, [layer])
        ready[h] = env.now

    caches = source.caches
    env.process(pull("h0", 0.0))
    env.process(pull("h1", 4.0))
    env.run(until=4.399)
    assert ready == pytest.approx({"h0": 1.0, "h1": 4.1})
    assert layer.digest in caches["h0"] and layer.digest not in caches["h1"]
    env.run(until=4.401)  # the rest of h1's layer: 300 MB at 1000 MB/s from t = 4.1
    assert layer.digest in caches["h1"]
    assert net.links["h0.up"].bytes_mb == pytest.approx(360)
