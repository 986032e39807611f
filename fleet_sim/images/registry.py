"""Where hosts get image layers from, and what a pull costs the host (docs/model.md §5.2).

Roles: a :class:`Distributor` is what a host pulls from; each host has a
:class:`~fleet_sim.images.cache.LayerCache`. A pull fetches only the layers the
host's cache lacks, at most ``max_concurrent_downloads`` at a time (containerd's
and dockerd's default is 3). :class:`Registry` is the central case: one network
node (a container registry, or the image store VM images are copied from) that
holds every layer and sends each one as one flow over the shared network,
optionally through per-rack pull-through mirrors. The peer-to-peer swarm is
:class:`fleet_sim.images.swarm.Swarm`. Any caller — a rollout, a fleet — uses the
same process ``pull(host, layers)``.

Host side, shared by every distributor: an :class:`Unpacker` decompresses and
unpacks each layer (in image order, streaming behind its download, at
``mb_s_per_core`` MB/s of layer per core, on the host's CPU when a CPU hook is
given). With ``lazy_fraction`` (lazy pulling, as Slacker, stargz/eStargz and
SOCI) the container may start once that share of every missing layer has arrived;
the rest keeps downloading in the background over the same links, and nothing is
unpacked ahead (a lazy snapshotter mounts the layers and reads files on demand).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

import simpy
from simpy.events import ProcessGenerator

from fleet_sim.errors import CapacityError
from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import Layer
from fleet_sim.images.network import Network

#: ``cpu(host, work_core_s, max_cores)``: a process that runs ``work_core_s`` core-s of
#: work on at most ``max_cores`` of ``host``'s CPU, sharing it with everything else there,
#: and returns when it is done (a fleet runs it in the host's container runtime).
CpuHook = Callable[[str, float, float], ProcessGenerator]


class Unpacker:
    """Decompresses and unpacks layers at ``mb_s_per_core`` MB/s of (compressed) layer
    per core; at most :attr:`CORES` per layer (gzip inflation is single-threaded).

    ``cpu``: where the work runs; None: a core of its own, at full speed.
    """

    #: cores one layer's unpacking can use
    CORES = 1.0

    def __init__(self, env: simpy.Environment, mb_s_per_core: float, cpu: CpuHook | None = None):
        if not mb_s_per_core > 0:
            raise ValueError(f"mb_s_per_core must be > 0, got {mb_s_per_core!r}")
        self.env = env
        self.mb_s_per_core = mb_s_per_core
        self.cpu = cpu

    def unpack(self, host: str, layer: Layer) -> ProcessGenerator:
        """In sim time: ``layer.size_mb / mb_s_per_core`` core-s of work on ``host``."""
        work_core_s = layer.size_mb / self.mb_s_per_core
        if self.cpu is None:
            yield self.env.timeout(work_core_s / self.CORES)
        else:
            yield from self.cpu(host, work_core_s, self.CORES)


class Distributor(ABC):
    """What every image source shares: a pull's download slots, lazy start, unpacking.

    ``unpacker``: None: layers are usable once they arrive (a VM image is copied,
    not unpacked). ``lazy_fraction``: None: the whole image before the start.
    Subclasses say where bytes come from (:meth:`_download`).
    """

    def __init__(self, env: simpy.Environment, network: Network,
                 caches: Mapping[str, LayerCache], *, max_concurrent_downloads: int,
                 unpacker: Unpacker | None = None, lazy_fraction: float | None = None):
        if max_concurrent_downloads < 1:
            raise ValueError("max_concurrent_downloads must be >= 1")
        if lazy_fraction is not None and not 0 < lazy_fraction <= 1:
            raise ValueError(f"lazy_fraction must be in (0, 1], got {lazy_fraction!r}")
        self.env = env
        self.network = network
        self.caches = caches
        self.max_concurrent_downloads = max_concurrent_downloads
        self.unpacker = unpacker
        self.lazy_fraction = lazy_fraction
        self._pulling: dict[tuple[str, str], simpy.Event] = {}  # (host, digest) -> its pull

    def pull(self, host: str, layers: Sequence[Layer]) -> ProcessGenerator:
        """Fetch the layers ``host`` lacks into its cache; returns the MB fetched.

        In sim time: waits until the image can start — every missing layer
        arrived and unpacked, or, when lazy, the first ``lazy_fraction`` of each
        arrived (the rest follows in the background). No wait when all are
        cached. A layer another pull is bringing to the host now is not fetched twice:
        this pull waits for that one, then takes what is still missing (two replicas
        starting together on a host pull their image once, as containerd does).
        Raises CapacityError if the image cannot fit the cache.
        """
        cache = self.caches[host]
        image_mb = sum({layer.digest: layer.size_mb for layer in layers}.values())
        if image_mb > cache.capacity_mb:
            raise CapacityError(f"an image of {image_mb} MB does not fit the layer cache of "
                                f"{host} ({cache.capacity_mb} MB)")
        while busy := {id(e): e for layer in layers
                       if (e := self._pulling.get((host, layer.digest))) is not None}:
            yield self.env.all_of(list(busy.values()))
        missing = cache.missing(layers)
        done = self.env.event()
        for layer in missing:
            self._pulling[(host, layer.digest)] = done
        downloads = simpy.Resource(self.env, capacity=self.max_concurrent_downloads)
        started = [self.env.event() for _ in missing]
        startable = [self.env.event() for _ in missing]
        fetched = [self.env.process(self._fetch(layer, host, downloads, s, r))
                   for layer, s, r in zip(missing, started, startable, strict=True)]

        def finished(_: object = None) -> None:
            for layer in missing:
                if self._pulling.get((host, layer.digest)) is done:
                    del self._pulling[(host, layer.digest)]
            done.succeed()

        if self.lazy_fraction is not None:
            self.env.all_of(fetched).callbacks.append(finished)  # the rest comes later
            yield self.env.all_of(startable)
        else:
            if self.unpacker is None:
                yield self.env.all_of(fetched)
            else:
                for layer, began, arrived in zip(missing, started, fetched, strict=True):
                    yield began  # unpacking streams behind the download, layer after layer
                    yield from self.unpacker.unpack(host, layer)
                    yield arrived
            finished()
        return sum(layer.size_mb for layer in missing)

    def _fetch(self, layer: Layer, host: str, downloads: simpy.Resource, started: simpy.Event,
               startable: simpy.Event) -> ProcessGenerator:
        """Download one layer in one of the pull's download slots, then cache it.

        ``started`` succeeds when its download begins, ``startable`` when the part
        a lazy start needs (all of it, when not lazy) has arrived.
        """
        with downloads.request() as slot:
            yield slot
            started.succeed()
            first_mb = layer.size_mb * (self.lazy_fraction or 1.0)
            yield from self._download(layer, host, first_mb)
            startable.succeed()
            if first_mb < layer.size_mb:
                yield from self._download(layer, host, layer.size_mb - first_mb)
        self.caches[host].add(layer)

    @abstractmethod
    def _download(self, layer: Layer, host: str, size_mb: float) -> ProcessGenerator:
        """In sim time: ``size_mb`` MB of ``layer`` arrive at ``host``."""


class Registry(Distributor):
    """A central registry at network node ``node`` that serves every pull.

    ``mirrors``: rack → the node of that rack's pull-through mirror. A host in a
    rack with a mirror pulls from the mirror; the mirror fetches each layer from
    the registry once, on its first request, and serves it once it holds all of
    it (store and forward; its disk is not the limit).
    """

    def __init__(self, env: simpy.Environment, network: Network,
                 caches: Mapping[str, LayerCache], *, node: str, max_concurrent_downloads: int,
                 mirrors: Mapping[str | None, str] | None = None,
                 unpacker: Unpacker | None = None, lazy_fraction: float | None = None):
        super().__init__(env, network, caches, max_concurrent_downloads=max_concurrent_downloads,
                         unpacker=unpacker, lazy_fraction=lazy_fraction)
        self.node = node
        self.mirrors = dict(mirrors or {})
        self._mirrored: dict[tuple[str, str], simpy.Process] = {}  # (mirror, digest) -> fetch

    def _download(self, layer: Layer, host: str, size_mb: float) -> ProcessGenerator:
        mirror = self.mirrors.get(self.network.rack_of(host))
        if mirror is None:
            yield self.network.transfer(self.node, host, size_mb)
            return
        key = (mirror, layer.digest)
        if key not in self._mirrored:
            self._mirrored[key] = self.env.process(self._mirror(mirror, layer))
        yield self._mirrored[key]
        yield self.network.transfer(mirror, host, size_mb)

    def _mirror(self, mirror: str, layer: Layer) -> ProcessGenerator:
        """In sim time: the whole layer travels from the registry to ``mirror``."""
        yield self.network.transfer(self.node, mirror, layer.size_mb)
