"""A host's content-addressed layer cache with least-recently-used eviction.

Layers are keyed by digest, so a layer shared by two image versions is stored
once and a pull fetches only what is missing. When a new layer does not fit,
the least recently used layers are evicted (the policy of containerd's and
kubelet's image garbage collection, which removes the least recently used
images first). Sizes in MB.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, KeysView

from fleet_sim.errors import CapacityError
from fleet_sim.images.image import Layer


class LayerCache:
    """Layers held by one host, at most ``capacity_mb`` MB in total."""

    def __init__(self, capacity_mb: float):
        if capacity_mb < 0:
            raise ValueError(f"capacity_mb must be >= 0, got {capacity_mb!r}")
        self.capacity_mb = float(capacity_mb)
        self.used_mb = 0.0
        self._layers: OrderedDict[str, Layer] = OrderedDict()  # least recently used first

    def __contains__(self, digest: object) -> bool:
        return digest in self._layers

    def __len__(self) -> int:
        return len(self._layers)

    def digests(self) -> KeysView[str]:
        """Digests held, least recently used first."""
        return self._layers.keys()

    def missing(self, layers: Iterable[Layer]) -> list[Layer]:
        """Layers of ``layers`` not held (each once, in order); held ones count as used now."""
        out: dict[str, Layer] = {}
        for layer in layers:
            if layer.digest in self._layers:
                self._layers.move_to_end(layer.digest)
            else:
                out.setdefault(layer.digest, layer)
        return list(out.values())

    def add(self, layer: Layer) -> list[Layer]:
        """Store ``layer`` as most recently used; return the layers evicted to make room.

        Raises CapacityError if the layer alone is larger than the cache.
        """
        if layer.digest in self._layers:
            self._layers.move_to_end(layer.digest)
            return []
        if layer.size_mb > self.capacity_mb:
            raise CapacityError(
                f"layer {layer.digest[:19]} of {layer.size_mb} MB exceeds the host's layer "
                f"cache of {self.capacity_mb} MB")
        evicted = []
        while self.used_mb + layer.size_mb > self.capacity_mb:
            _, old = self._layers.popitem(last=False)
            self.used_mb -= old.size_mb
            evicted.append(old)
        self._layers[layer.digest] = layer
        self.used_mb += layer.size_mb
        return evicted
