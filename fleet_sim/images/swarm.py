"""Peer-to-peer image distribution as a swarm of pieces, in its fluid limit (docs/model.md §5.2).

Production P2P distributors (Uber's Kraken, Alibaba's Dragonfly, BitTorrent)
split each layer into pieces (``piece_mb``, 4 MB by default), pick the rarest
piece first, and let a host upload the pieces it has while it still downloads
(pipelining). With many small pieces spread evenly by rarest-first, every
downloader holds pieces the others lack, so a swarm behaves as a fluid (Qiu &
Srikant, SIGCOMM 2004; Kumar & Ross, "Peer-assisted file distribution: the
minimum distribution time", 2006). This module simulates that fluid, not each
piece: a host's download of a layer is one :class:`~fleet_sim.images.network.Transfer`
over these paths, each a flow that shares its links by max-min with every other
flow of the network:

- **fresh content** from every origin (the registry, extra origins; each holds
  every layer), and from up to ``upload_slots`` seeds (hosts that hold the whole
  layer, same rack first; each seed serves at most ``upload_slots`` downloaders);
- **exchange** with the other downloaders of the layer, while there are any: one
  flow over the host's own up and down links, so it uploads as much as it gets
  from peers (tit-for-tat); peers' traffic stays in the rack (rack-local piece
  choice) and does not load rack uplinks;
- optional per-host caps (``upload_cap_mb_s``, ``download_cap_mb_s``, as Kraken's
  and Dragonfly's agents have) as links of their own, separate from the NIC;
- a content bound: no downloader gets a layer faster than fresh content enters
  the swarm (the origins' and seeds' upload capacity), Kumar & Ross's ``F / u_s``
  term; it binds only when hosts' links are faster than all sources together.

Pieces show in one place: a host fed by other downloaders gets its last piece one
piece-time (``piece_mb`` at its download speed) after that piece reached a peer.
``tests/images/test_swarm.py`` checks this against a piece-level rarest-first
swarm: with one origin and one or two hosts the finish times are equal; with more
hosts the piece-level swarm is slower by a relay tail of a few pieces, which halves
with the piece size (the fluid is its small-piece limit). At 4 MB and 10 GbE a
piece-time is 3 ms.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import simpy
from simpy.events import ProcessGenerator

from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import Layer
from fleet_sim.images.network import Flow, Link, Network, Transfer
from fleet_sim.images.registry import Distributor, Unpacker


#: numbers each swarm, so that the names of their unrecorded limit links never clash
#: (a run may build one per rollout beside the first deployment's)
_SWARMS = itertools.count()


@dataclass(slots=True, eq=False)
class _Downloader:
    """One host downloading one layer: its transfer, its content bound, its paths."""

    transfer: Transfer
    bound: Link
    seeds: dict[str, Flow] = field(default_factory=dict)  # seed -> its path
    exchange: Flow | None = None


@dataclass(slots=True, eq=False)
class _LayerSwarm:
    """Everyone pulling or seeding one layer."""

    downloaders: dict[str, _Downloader] = field(default_factory=dict)
    free: dict[str, int] = field(default_factory=dict)  # seed -> free upload slots
    fresh_mb_s: float = 0.0  # upload capacity of the origins and seeds


class Swarm(Distributor):
    """A peer-to-peer swarm seeded by ``origins`` (network nodes holding every layer).

    ``piece_mb``: piece size (MB); ``upload_slots``: downloaders a seed serves at
    once, and seeds a downloader takes; ``upload_cap_mb_s`` / ``download_cap_mb_s``:
    each host's P2P rate limits (None: the NIC). Hosts whose caches hold a layer
    seed it from the start. Other parameters as :class:`Distributor`.
    """

    def __init__(self, env: simpy.Environment, network: Network,
                 caches: Mapping[str, LayerCache], *, origins: Sequence[str],
                 max_concurrent_downloads: int, piece_mb: float, upload_slots: int,
                 upload_cap_mb_s: float | None = None, download_cap_mb_s: float | None = None,
                 unpacker: Unpacker | None = None, lazy_fraction: float | None = None):
        super().__init__(env, network, caches, max_concurrent_downloads=max_concurrent_downloads,
                         unpacker=unpacker, lazy_fraction=lazy_fraction)
        if not origins:
            raise ValueError("a swarm needs at least one origin")
        if not piece_mb > 0 or upload_slots < 1:
            raise ValueError("piece_mb must be > 0 and upload_slots >= 1")
        for name, cap in (("upload_cap_mb_s", upload_cap_mb_s),
                          ("download_cap_mb_s", download_cap_mb_s)):
            if cap is not None and not cap > 0:
                raise ValueError(f"{name} must be > 0 or None, got {cap!r}")
        self.origins = tuple(origins)
        self.piece_mb = piece_mb
        self.upload_slots = upload_slots
        self._caps = {"up": upload_cap_mb_s, "down": download_cap_mb_s}
        self._cap_links: dict[tuple[str, str], tuple[Link, ...]] = {}
        self._swarms: dict[str, _LayerSwarm] = {}
        self._bounds = itertools.count()
        self._id = next(_SWARMS)  # link names of two swarms on one network never clash

    # --- paths ----------------------------------------------------------------------
    def _cap(self, host: str, direction: str) -> tuple[Link, ...]:
        """The host's P2P cap link in ``direction`` (none without a cap)."""
        key = (host, direction)
        if key not in self._cap_links:
            cap = self._caps[direction]
            self._cap_links[key] = () if cap is None else (
                self.network.add_link(f"p2p-cap:{host}.{direction}", cap, record=False),)
        return self._cap_links[key]

    def _rate_mb_s(self, host: str, direction: str) -> float:
        """How fast ``host`` can send (up) or receive (down) P2P traffic."""
        return min(link.capacity_mb_s for link in (self.network.links[f"{host}.{direction}"],
                                                   *self._cap(host, direction)))

    def _into(self, host: str, me: _Downloader) -> tuple[Link, ...]:
        """What every path into ``host`` crosses besides the route: its cap, the bound."""
        return (*self._cap(host, "down"), me.bound)

    def _add_seed(self, swarm: _LayerSwarm, seed: str, host: str, me: _Downloader) -> None:
        route = (*self._cap(seed, "up"), *self.network.route(seed, host))
        me.seeds[seed] = me.transfer.add((*route, *self._into(host, me)))
        swarm.free[seed] -= 1

    def _set_exchange(self, host: str, me: _Downloader, on: bool) -> None:
        """Start (``on``) or stop ``host``'s exchange with the other downloaders."""
        if on and me.exchange is None and not me.transfer.done.triggered:
            own = (*self._cap(host, "up"), self.network.links[f"{host}.up"],
                   self.network.links[f"{host}.down"])
            me.exchange = me.transfer.add((*own, *self._into(host, me)))
        elif not on and me.exchange is not None:
            me.transfer.remove(me.exchange)
            me.exchange = None

    # --- the swarm of one layer -----------------------------------------------------
    def _swarm(self, layer: Layer) -> _LayerSwarm:
        """The swarm of ``layer``, made on its first pull (cached hosts seed it)."""
        swarm = self._swarms.get(layer.digest)
        if swarm is None:
            swarm = self._swarms[layer.digest] = _LayerSwarm()
            swarm.fresh_mb_s = sum(self.network.links[f"{o}.up"].capacity_mb_s
                                   for o in self.origins)
            for host, cache in self.caches.items():
                if layer.digest in cache:
                    self._seed(swarm, host)
        return swarm

    def _seed(self, swarm: _LayerSwarm, host: str) -> None:
        swarm.free[host] = self.upload_slots
        swarm.fresh_mb_s += self._rate_mb_s(host, "up")

    def _bound_mb_s(self, swarm: _LayerSwarm, host: str) -> float:
        """The content bound of ``host``: fresh supply, or its own speed if lower."""
        return min(swarm.fresh_mb_s, self._rate_mb_s(host, "down"))

    def _free_seeds(self, swarm: _LayerSwarm, digest: str, host: str) -> list[str]:
        """Up to ``upload_slots`` seeds with a free slot, same rack first."""
        rack = self.network.rack_of(host)
        near, far, stale = [], [], []
        for seed, free in swarm.free.items():
            if digest not in self.caches[seed]:
                stale.append(seed)  # evicted since it seeded
            elif free > 0 and seed != host:
                (near if self.network.rack_of(seed) == rack else far).append(seed)
                if len(near) >= self.upload_slots:
                    break
        for seed in stale:
            del swarm.free[seed]
            swarm.fresh_mb_s -= self._rate_mb_s(seed, "up")
        return (near + far)[:self.upload_slots]

    def _download(self, layer: Layer, host: str, size_mb: float) -> ProcessGenerator:
        """Join the layer's swarm for ``size_mb`` MB: origins, free seeds, exchange."""
        swarm = self._swarm(layer)
        me = _Downloader(self.network.open(size_mb), self.network.add_link(
            f"swarm{self._id}-bound:{host}:{next(self._bounds)}", self._bound_mb_s(swarm, host),
            record=False))
        for origin in self.origins:
            me.transfer.add((*self.network.route(origin, host), *self._into(host, me)))
        for seed in self._free_seeds(swarm, layer.digest, host):
            self._add_seed(swarm, seed, host, me)
        if len(swarm.downloaders) > 1:
            self._set_exchange(host, me, True)
        elif swarm.downloaders:
            partner, other = next(iter(swarm.downloaders.items()))
            if not other.transfer.done.triggered:  # not leaving at this instant
                self._set_exchange(host, me, True)
                self._set_exchange(partner, other, True)
        swarm.downloaders[host] = me
        yield me.transfer.done
        relayed = me.exchange is not None
        self._leave(swarm, host, me)
        if relayed:  # the last piece came through a peer that had just received it
            yield self.env.timeout(min(self.piece_mb, size_mb) / self._rate_mb_s(host, "down"))

    def _leave(self, swarm: _LayerSwarm, host: str, me: _Downloader) -> None:
        """``host``'s transfer is done: free its seeds' slots and its exchange partner."""
        del swarm.downloaders[host]
        for seed in me.seeds:
            if seed in swarm.free:
                swarm.free[seed] += 1
                self._serve_waiting(swarm, seed)
        if len(swarm.downloaders) == 1:
            partner, other = next(iter(swarm.downloaders.items()))
            if not other.transfer.done.triggered:  # it finished with us: it was relayed too
                self._set_exchange(partner, other, False)

    def _fetch(self, layer: Layer, host: str, downloads: simpy.Resource, started: simpy.Event,
               startable: simpy.Event) -> ProcessGenerator:
        """Fetch the layer as every distributor does, then seed it."""
        yield from super()._fetch(layer, host, downloads, started, startable)
        self._stored(layer, host)

    def _stored(self, layer: Layer, host: str) -> None:
        """``host`` now holds all of ``layer``: it seeds it from now on."""
        swarm = self._swarms.get(layer.digest)
        if swarm is None or host in swarm.free:
            return
        self._seed(swarm, host)
        for other, downloader in swarm.downloaders.items():
            self.network.set_capacity(downloader.bound, self._bound_mb_s(swarm, other))
        self._serve_waiting(swarm, host)

    def _serve_waiting(self, swarm: _LayerSwarm, seed: str) -> None:
        """Give ``seed``'s free slots to downloaders short of seeds, oldest first."""
        for host, downloader in swarm.downloaders.items():
            if swarm.free[seed] == 0:
                return
            if len(downloader.seeds) < self.upload_slots and seed not in downloader.seeds:
                self._add_seed(swarm, seed, host, downloader)
