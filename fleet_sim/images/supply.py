"""Image supply: the hook that brings an instance's image to its host (docs/model.md §5).

Roles: :class:`ImageSupply` knows every app's images by reference (``<app>:<version>``:
a container image of layers, or a VM image file) and where hosts get them from (a
:class:`~fleet_sim.images.registry.Registry` or
:class:`~fleet_sim.images.swarm.Swarm` over the run's one
:class:`~fleet_sim.images.network.Network`, shared max-min with every other
transfer of the moment). Its :meth:`ImageSupply.fetch` is the ``fetch`` hook the
hosting modes call before they start a container or boot a VM: it pulls what the
host's layer cache lacks (nothing when it holds the image) and the instance starts
after it. :func:`container_image` builds an app's image on the fleet's one base.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import simpy
from simpy.events import ProcessGenerator

from fleet_sim.images.image import ContainerImage, Image, Layer
from fleet_sim.images.registry import Distributor

#: the version an app's replicas are deployed at, and the one a rollout brings
FIRST_VERSION, NEXT_VERSION = "v1", "v2"


def reference(app: str, version: str) -> str:
    """The image reference of ``app`` at ``version``."""
    return f"{app}:{version}"


def container_image(app: str, version: str, base_layers_mb: Sequence[float],
                    app_layer_mb: float) -> ContainerImage:
    """``app``'s image: the fleet's shared base layers (same digests for every app,
    so a host holds them once) under the app's own top layer (MB)."""
    base = tuple(Layer.of(f"base/{i}", size) for i, size in enumerate(base_layers_mb))
    return ContainerImage(app, version, (*base, Layer.of(f"{app}:{version}/top", app_layer_mb)))


class ImageSupply:
    """Images by reference, pulled to hosts through ``source`` (the registry, or P2P)."""

    def __init__(self, env: simpy.Environment, source: Distributor):
        self.env = env
        self.source = source
        self.images: dict[str, Image] = {}
        self._sources: dict[str, Distributor] = {}

    def add(self, image: Image, source: Distributor | None = None) -> str:
        """Make ``image`` pullable (through ``source``, default the supply's); return its
        reference."""
        ref = reference(image.name, image.version)
        self.images[ref] = image
        if source is not None:
            self._sources[ref] = source
        return ref

    def fetch(self, instance: Any) -> simpy.Event:
        """The pull of ``instance.app.image`` to ``instance.host`` (a SimPy process whose
        value is True once the image is in the host's cache); sets
        ``instance.transfer_s`` = (start, end) s. Raises KeyError for an unknown image."""
        ref = instance.app.image
        image = self.images.get(ref)
        if image is None:
            raise KeyError(f"{instance.name}: no image {ref!r}; known: "
                           f"{', '.join(sorted(self.images))}")
        return self.env.process(self._pull(instance, image, self._sources.get(ref, self.source)))

    def _pull(self, instance: Any, image: Image, source: Distributor) -> ProcessGenerator:
        start = self.env.now
        yield from source.pull(instance.host.name, image.layers)
        instance.transfer_s = (start, self.env.now)
        return True
