"""Flow-level network: exact transfer times under shared bandwidth, routes, link records."""

from __future__ import annotations

import math

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.images.network import Network
from fleet_sim.model.protocols import NullRecorder
from fleet_sim.numerics.fairshare import maxmin_flows
from fleet_sim.results.recorder import ChangePointRecorder


def _star(env: simpy.Environment, n_hosts: int, uplink_mb_s: float, nic_mb_s: float,
          recorder=None) -> Network:
    net = Network(env, recorder or NullRecorder())
    net.attach("registry", uplink_mb_s, uplink_mb_s)
    for i in range(n_hosts):
        net.attach(f"h{i}", nic_mb_s, nic_mb_s)
    return net


def _pull_all(n_hosts: int, size_mb: float) -> list[float]:
    """Finish times (s) of n hosts each pulling size_mb from a 1000 MB/s registry, 100 MB/s NICs."""
    env = simpy.Environment()
    net = _star(env, n_hosts, 1000, 100)
    finished = []

    def pull(host):
        yield net.transfer("registry", host, size_mb)
        finished.append(env.now)

    for i in range(n_hosts):
        env.process(pull(f"h{i}"))
    env.run()
    return finished


def test_10_hosts_pulling_500_mb_all_finish_at_5_s():
    assert _pull_all(10, 500) == [5.0] * 10


def test_20_hosts_pulling_500_mb_all_finish_at_10_s():
    assert _pull_all(20, 500) == [10.0] * 20


def test_a_late_flow_shares_the_link_then_speeds_up():
    """100 MB/s: A (100 MB) alone for 0.5 s, then A and B at 50 each; A ends at 1.5 s
    with B's 50 MB left, which B sends alone at 100 MB/s by 2.0 s."""
    env = simpy.Environment()
    net = _star(env, 1, 1000, 100)
    net.attach("h1", 100, 100)
    done = {}

    def send(name, dst, start_s):
        yield env.timeout(start_s)
        yield net.transfer(dst, "h0", 100)
        done[name] = env.now

    env.process(send("A", "registry", 0.0))
    env.process(send("B", "h1", 0.5))
    env.run()
    assert done == pytest.approx({"A": 1.5, "B": 2.0})


def test_empty_and_local_transfers_complete_at_once():
    env = simpy.Environment()
    net = _star(env, 1, 10, 10)
    assert net.transfer("registry", "h0", 0).triggered
    assert net.transfer("h0", "h0", 50).triggered


def test_links_record_rates_and_bytes_carried():
    env = simpy.Environment()
    rec = ChangePointRecorder(tables=("links",))
    net = _star(env, 20, 1000, 100, rec)
    for i in range(20):
        net.transfer("registry", f"h{i}", 500)
    env.run()
    rows = list(zip(*rec.data["links"].values(), strict=True))
    registry = [r for r in rows if r[1] == "registry.up"]
    assert registry == [(0.0, "registry.up", 1000.0, 0.0), (10.0, "registry.up", 0.0, 10_000.0)]
    assert net.links["h7.down"].bytes_mb == 500.0


def test_routes_cross_rack_links_only_between_racks():
    env = simpy.Environment()
    net = Network(env, NullRecorder())
    net.attach("registry", 10, 10)
    for rack in ("r0", "r1"):
        net.add_rack(rack, 20, 20)
    net.attach("a", 1, 1, "r0")
    net.attach("b", 1, 1, "r0")
    net.attach("c", 1, 1, "r1")

    def names(src, dst):
        return [link.name for link in net.route(src, dst)]

    assert names("a", "b") == ["a.up", "b.down"]
    assert names("a", "c") == ["a.up", "r0.up", "r1.down", "c.down"]
    assert names("registry", "c") == ["registry.up", "r1.down", "c.down"]
    with pytest.raises(ValueError, match="unknown rack"):
        net.attach("d", 1, 1, "r9")


# ------------------------------------------------------- against a brute-force fluid model
def _reference(capacities: dict[str, float], flows: list[tuple[float, list[str], float]]
               ) -> list[float]:
    """Finish time of each (start_s, route, size_mb) flow: after every start or finish,
    re-share all active flows from scratch."""
    names = list(capacities)
    caps = [capacities[n] for n in names]
    index = {n: k for k, n in enumerate(names)}
    remaining = [size for _, _, size in flows]
    finish = [math.nan] * len(flows)
    t = 0.0
    pending = sorted(range(len(flows)), key=lambda f: flows[f][0])
    active: list[int] = []
    while pending or active:
        while pending and flows[pending[0]][0] <= t:
            active.append(pending.pop(0))
        rates = maxmin_flows(caps, [[index[x] for x in flows[f][1]] for f in active])
        next_start = flows[pending[0]][0] if pending else math.inf
        ends = [t + remaining[f] / r if r > 0 else math.inf
                for f, r in zip(active, rates, strict=True)]
        t_next = min([next_start, *ends])
        for f, r in zip(active, rates, strict=True):
            remaining[f] -= r * (t_next - t)
        t = t_next
        for f, end in zip(list(active), ends, strict=True):
            if end <= t * (1 + 1e-12):
                finish[f] = t
                active.remove(f)
    return finish


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from([0, 0.5, 1, 3]),
                          st.sampled_from([10, 50, 125, 400])), min_size=1, max_size=12),
       st.lists(st.sampled_from([10, 40, 100]), min_size=5, max_size=5))
def test_transfer_times_match_a_from_scratch_fluid_model(specs, nics):
    env = simpy.Environment()
    net = Network(env, NullRecorder())
    net.attach("registry", 150, 150)
    for i, nic in enumerate(nics):
        net.attach(f"h{i}", nic, nic)
    nodes = ["registry", "h1", "h2", "h3", "h4"]
    flows = [(start, nodes[src], f"h{dst}", size) for src, dst, start, size in specs
             if nodes[src] != f"h{dst}"]
    got = [math.nan] * len(flows)

    def send(k, start, src, dst, size):
        yield env.timeout(start)
        yield net.transfer(src, dst, size)
        got[k] = env.now

    for k, flow in enumerate(flows):
        env.process(send(k, *flow))
    env.run()
    capacities = {link.name: link.capacity_mb_s for link in net.links.values()}
    expected = _reference(capacities, [
        (start, [x.name for x in net.route(src, dst)], size) for start, src, dst, size in flows])
    assert got == pytest.approx(expected, rel=1e-9)


def test_a_transfer_over_two_paths_gets_their_sum_and_loses_a_removed_one():
    """300 MB to h0 (NIC 200) from two 100 MB/s sources: 200 MB/s until s1's path is
    removed at t = 1, then 100 MB/s for the last 100 MB: done at t = 2. A cap link
    kept out of the records (record=False) leaves no row."""
    env = simpy.Environment()
    recorder = ChangePointRecorder(tables=("links",))
    net = Network(env, recorder)
    for node, mb_s in (("s1", 100), ("s2", 100), ("h0", 200)):
        net.attach(node, mb_s, mb_s)
    cap = net.add_link("cap", 1000, record=False)
    transfer = net.open(300)
    first = transfer.add((*net.route("s1", "h0"), cap))
    transfer.add(net.route("s2", "h0"))

    def drop():
        yield env.timeout(1.0)
        transfer.remove(first)

    env.process(drop())
    env.run(until=transfer.done)
    assert env.now == pytest.approx(2.0)
    assert net.links["s1.up"].bytes_mb == pytest.approx(100)
    assert net.links["s2.up"].bytes_mb == pytest.approx(200)
    assert "cap" not in set(recorder.data["links"]["link"])


def test_a_lowered_capacity_slows_the_flows_from_then_on():
    env = simpy.Environment()
    net = _star(env, 1, 100, 100)
    done = net.transfer("registry", "h0", 200)

    def throttle():
        yield env.timeout(1.0)
        net.set_capacity(net.links["registry.up"], 50)

    env.process(throttle())
    env.run(until=done)
    assert env.now == pytest.approx(3.0)  # 100 MB in 1 s, then 100 MB at 50 MB/s
