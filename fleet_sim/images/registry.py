"""Where hosts get image layers from: a central registry, or peers (docs/model.md §5).

Roles: :class:`Registry` is one network node (a container registry, or the image
store VM images are copied from) that holds every layer; each host has a
:class:`~fleet_sim.images.cache.LayerCache`. A pull fetches only the layers the
host's cache lacks, at most ``max_concurrent_downloads`` at a time (dockerd's
``--max-concurrent-downloads``), each as one flow over the shared network.

:class:`PeerToPeer` adds peer-to-peer distribution (Uber's Kraken, Alibaba's
Dragonfly): a host that holds a layer serves it to others, and the registry only
seeds. Each source serves at most a fixed number of uploads at once (upload
slots, as BitTorrent's unchoke slots); a layer request takes a free slot at a
holder — a peer in the same rack, else any peer, else the registry — or waits,
first come first served, for one to free up or for a new holder to appear.
Peers forward whole layers (store and forward); real systems pipeline pieces,
so this model is a conservative bound on their speed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import simpy
from simpy.events import ProcessGenerator

from fleet_sim.errors import CapacityError
from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import Layer
from fleet_sim.images.network import Network


class Registry:
    """A central registry at network node ``node`` that serves every pull itself."""

    def __init__(self, env: simpy.Environment, network: Network,
                 caches: Mapping[str, LayerCache], *, node: str,
                 max_concurrent_downloads: int):
        if max_concurrent_downloads < 1:
            raise ValueError("max_concurrent_downloads must be >= 1")
        self.env = env
        self.network = network
        self.caches = caches
        self.node = node
        self.max_concurrent_downloads = max_concurrent_downloads

    def pull(self, host: str, layers: Sequence[Layer]) -> ProcessGenerator:
        """Fetch the layers ``host`` lacks into its cache; returns the MB fetched.

        In sim time: waits until every missing layer has arrived (no wait when
        all are cached). Raises CapacityError if the image cannot fit the cache.
        """
        cache = self.caches[host]
        image_mb = sum({layer.digest: layer.size_mb for layer in layers}.values())
        if image_mb > cache.capacity_mb:
            raise CapacityError(f"an image of {image_mb} MB does not fit the layer cache of "
                                f"{host} ({cache.capacity_mb} MB)")
        missing = cache.missing(layers)
        downloads = simpy.Resource(self.env, capacity=self.max_concurrent_downloads)
        yield self.env.all_of([self.env.process(self._fetch(layer, host, downloads))
                               for layer in missing])
        return sum(layer.size_mb for layer in missing)

    def _fetch(self, layer: Layer, host: str, downloads: simpy.Resource) -> ProcessGenerator:
        """Download one layer in one of the pull's download slots, then cache it."""
        with downloads.request() as slot:
            yield slot
            source = yield self._acquire(layer, host)
            yield self.network.transfer(source, host, layer.size_mb)
        self._release(source)
        self.caches[host].add(layer)
        self._stored(layer, host)

    def _acquire(self, layer: Layer, host: str) -> simpy.Event:
        """An event whose value is the node that will send ``layer`` to ``host``."""
        return self.env.event().succeed(self.node)

    def _release(self, source: str) -> None:
        """``source`` finished one upload."""

    def _stored(self, layer: Layer, host: str) -> None:
        """``host`` now holds ``layer``."""


@dataclass(slots=True)
class _Request:
    seq: int
    digest: str
    host: str
    granted: simpy.Event


class PeerToPeer(Registry):
    """Peer-to-peer distribution seeded by the registry at ``node``.

    ``upload_slots``: uploads each peer serves at once; ``registry_upload_slots``:
    the same for the registry. Hosts whose caches already hold layers (the
    version they run) serve them from the start.
    """

    def __init__(self, env: simpy.Environment, network: Network,
                 caches: Mapping[str, LayerCache], *, node: str,
                 max_concurrent_downloads: int, upload_slots: int, registry_upload_slots: int):
        super().__init__(env, network, caches, node=node,
                         max_concurrent_downloads=max_concurrent_downloads)
        if upload_slots < 1 or registry_upload_slots < 1:
            raise ValueError("upload_slots and registry_upload_slots must be >= 1")
        self.upload_slots = upload_slots
        self._free: dict[str, int] = {node: registry_upload_slots}
        self._open: dict[str, dict[str, None]] = {}  # digest -> holders with a free slot
        self._waiting: dict[str, deque[_Request]] = {}  # digest -> requests, oldest first
        self._all_waiting: deque[_Request] = deque()  # every request, oldest first
        self._seq = 0
        for host, cache in caches.items():
            self._free[host] = upload_slots
            for digest in cache.digests():
                self._open.setdefault(digest, {})[host] = None

    def _acquire(self, layer: Layer, host: str) -> simpy.Event:
        granted = self.env.event()
        source = self._pick(layer.digest, host)
        if source is not None:
            self._take(source)
            return granted.succeed(source)
        self._seq += 1
        request = _Request(self._seq, layer.digest, host, granted)
        self._waiting.setdefault(layer.digest, deque()).append(request)
        self._all_waiting.append(request)
        return granted

    def _pick(self, digest: str, host: str) -> str | None:
        """A holder of ``digest`` with a free slot: same-rack peer, any peer, registry."""
        rack = self.network.rack_of(host)
        holders = self._open.get(digest, {})
        stale, chosen = [], None
        for peer in holders:
            if digest not in self.caches[peer]:
                stale.append(peer)  # evicted since it was listed
            elif chosen is None or self.network.rack_of(peer) == rack:
                chosen = peer
                if self.network.rack_of(peer) == rack:
                    break
        for peer in stale:
            del holders[peer]
        if chosen is None and self._free[self.node] > 0:
            return self.node
        return chosen

    def _take(self, source: str) -> None:
        self._free[source] -= 1
        if self._free[source] == 0 and source != self.node:
            for digest in self.caches[source].digests():
                self._open.get(digest, {}).pop(source, None)

    def _release(self, source: str) -> None:
        self._free[source] += 1
        if self._free[source] == 1 and source != self.node:
            for digest in self.caches[source].digests():
                self._open.setdefault(digest, {})[source] = None
        self._serve_waiting(source)

    def _stored(self, layer: Layer, host: str) -> None:
        if self._free[host] > 0:
            self._open.setdefault(layer.digest, {})[host] = None
        self._serve_waiting(host)

    def _serve_waiting(self, source: str) -> None:
        """Grant ``source``'s free slots to the oldest requests it can serve."""
        while self._free[source] > 0:
            request = self._oldest_for(source)
            if request is None:
                return
            self._take(source)
            request.granted.succeed(source)

    def _oldest_for(self, source: str) -> _Request | None:
        """Remove and return the oldest waiting request ``source`` holds the layer for."""
        if source == self.node:
            queues = [self._all_waiting]
        else:
            queues = [self._waiting[d] for d in self.caches[source].digests()
                      if d in self._waiting]
        best: deque[_Request] | None = None
        for queue in queues:
            while queue and queue[0].granted.triggered:
                queue.popleft()  # granted through another queue
            if queue and (best is None or queue[0].seq < best[0].seq):
                best = queue
        return best.popleft() if best is not None else None
