"""Composition root of a rollout run: a plain spec in, tidy tables out (docs/model.md §5).

:class:`RolloutSpec` describes one rollout of an app from version ``v1`` to
``v2`` on ``n_hosts`` servers that each run one ``v1`` instance (and so cache
its image or have its release installed). :func:`run_rollout` builds the network
(registry uplink, host NICs, optional racks), the image source (central
registry, rack mirrors or P2P swarm), the hosting mode's provisioning recipe, the strategy (by
registry name) and the :class:`~fleet_sim.model.rollout.RolloutRun`; runs it;
and derives the tables:

- ``timeline``: one row per instance (times in s, NaN where not reached);
- ``links``: link × change (allocated MB/s, MB carried so far);
- ``capacity``: change points of healthy instances per version
  (``old_healthy``, ``new_healthy``);
- ``events``: failures, rollback, end of the rollout;
- ``summary``: one row: makespan, minimum serving fraction, new instances healthy
  and failed, median time from queued to healthy, MB sent by the registry and by
  peers, MB delivered to hosts and into racks from the core, peak registry load
  (MB/s), outcome.

Every table carries the spec's main parameters as columns so runs concatenate.
Random streams: ``rollout.start`` (boot/start times), ``rollout.health``,
``rollout.install`` (step failures), ``rollout.conflicts`` (which hosts pin a
conflicting library).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import simpy

from fleet_sim.hosting import defaults as d
from fleet_sim.images.cache import LayerCache
from fleet_sim.images.image import CHANGES, Change, ContainerImage, Image, VMImage
from fleet_sim.images.network import Network
from fleet_sim.images.provisioning import (
    BareMetalInstall,
    ContainerProvision,
    HealthCheck,
    InstallStep,
    Provisioning,
    Recipe,
    VMProvision,
)
from fleet_sim.images.registry import Distributor, Registry, Unpacker
from fleet_sim.images.swarm import Swarm
from fleet_sim.model.distributions import Deterministic, Distribution, LogNormal
from fleet_sim.model.rollout import RolloutRun
from fleet_sim.policies.registry import rollout_strategy
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.results.schema import LINKS
from fleet_sim.results.tables import conform
from fleet_sim.rng import Streams

MODES = ("baremetal", "vm", "container")
DISTRIBUTIONS = ("central", "mirrors", "p2p")
INSTALLS = ("scripted", "manual")
OLD, NEW = "v1", "v2"
APP = "app"
REGISTRY = "registry"
#: spec fields copied onto every table
PARAMS = ("n_hosts", "mode", "distribution", "strategy", "changed", "seed")


@dataclass(frozen=True)
class RolloutSpec:
    """One rollout, in plain values with units in the names (defaults: hosting/defaults.py).

    ``mode``: baremetal | vm | container. ``distribution``: central | mirrors (a
    pull-through mirror per rack) | p2p (bare metal installs packages from a
    central mirror, so only central).
    ``strategy`` and ``strategy_params``: a rollout strategy by registry name
    (``policies.registry``). ``changed``: top-layer | whole-image — what v2
    changes (for bare metal: the app only, or its dependencies too).
    ``base_layers_mb`` and ``app_layer_mb``: container layers, base first (bare
    metal downloads as much in packages). ``rack_hosts``: hosts per rack (None:
    every host on the core network). ``install``: scripted | manual (bare metal);
    ``install_workers``: hosts installed at once (None: every host when
    scripted, ``MANUAL_OPERATORS`` by hand). ``conflict_fraction``: share of
    bare-metal hosts where another app pins the shared library v2 upgrades.
    ``random_durations``: draw boot and start times (else use their means).
    ``rollback_failure_fraction``: roll back once this share of hosts failed.
    Image distribution (docs/model.md §5.2): ``registry_egress_mb_s`` (None: the
    uplink), ``max_concurrent_downloads``, ``p2p_origins`` (registries seeding the
    swarm), ``piece_mb``, ``upload_slots``, ``p2p_upload_cap_mb_s`` and
    ``p2p_download_cap_mb_s`` (None: the NIC), ``unpack_mb_s_per_core`` (container
    layers; None: no unpacking time), ``lazy`` and ``lazy_fraction``.
    """

    n_hosts: int = 100
    mode: str = "container"
    distribution: str = "central"
    strategy: str = "rolling"
    strategy_params: Mapping[str, Any] = field(default_factory=dict)
    changed: Change = "top-layer"
    base_layers_mb: tuple[float, ...] = (d.CONTAINER_BASE_LAYER_MB,)
    app_layer_mb: float = d.CONTAINER_APP_LAYER_MB
    vm_image_mb: float = d.VM_IMAGE_MB
    registry_uplink_mb_s: float = d.REGISTRY_UPLINK_MB_S
    host_nic_mb_s: float = d.HOST_NIC_MB_S
    rack_hosts: int | None = None
    rack_uplink_mb_s: float = d.RACK_UPLINK_MB_S
    cache_mb: float = d.LAYER_CACHE_MB
    install: str = "scripted"
    install_workers: int | None = None
    conflict_fraction: float = 0.0
    install_step_failure_p: float = d.INSTALL_STEP_FAILURE_P
    health_check_s: float = d.HEALTH_CHECK_S
    health_failure_p: float = d.HEALTH_CHECK_FAILURE_P
    max_retries: int = d.PROVISION_MAX_RETRIES
    random_durations: bool = True
    rollback_failure_fraction: float | None = None
    registry_egress_mb_s: float | None = None
    max_concurrent_downloads: int = d.MAX_CONCURRENT_DOWNLOADS
    p2p_origins: int = 1
    piece_mb: float = d.P2P_PIECE_MB
    upload_slots: int = d.P2P_UPLOAD_SLOTS
    p2p_upload_cap_mb_s: float | None = None
    p2p_download_cap_mb_s: float | None = None
    unpack_mb_s_per_core: float | None = d.LAYER_UNPACK_MB_S_PER_CORE
    lazy: bool = False
    lazy_fraction: float = d.LAZY_START_FRACTION
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, allowed in (("mode", self.mode, MODES),
                                     ("distribution", self.distribution, DISTRIBUTIONS),
                                     ("changed", self.changed, CHANGES),
                                     ("install", self.install, INSTALLS)):
            if value not in allowed:
                raise ValueError(f"{name}={value!r}; allowed: {', '.join(allowed)}")
        if self.n_hosts < 1:
            raise ValueError(f"n_hosts must be >= 1, got {self.n_hosts!r}")
        if self.mode == "baremetal" and self.distribution != "central":
            raise ValueError("bare metal installs packages from a central mirror: "
                             "distribution must be 'central'")
        if self.distribution == "mirrors" and self.rack_hosts is None:
            raise ValueError("distribution='mirrors' puts a mirror in each rack: set rack_hosts")
        if not 0 <= self.conflict_fraction <= 1:
            raise ValueError(f"conflict_fraction must be in [0, 1], got {self.conflict_fraction!r}")
        fraction = self.rollback_failure_fraction
        if fraction is not None and not 0 < fraction <= 1:
            raise ValueError(f"rollback_failure_fraction must be in (0, 1], got {fraction!r}")

    @property
    def params(self) -> dict[str, Any]:
        """The columns every table of this run carries."""
        return {name: getattr(self, name) for name in PARAMS}


def run_rollout(spec: RolloutSpec) -> dict[str, pd.DataFrame]:
    """Build, run and tabulate one rollout (see the module docstring for the tables)."""
    env = simpy.Environment()
    streams = Streams(spec.seed)
    recorder = ChangePointRecorder(tables=("timeline", "links", "events"))
    width = max(3, len(str(spec.n_hosts - 1)))
    hosts = [f"host{i:0{width}d}" for i in range(spec.n_hosts)]
    network = _network(env, recorder, spec, hosts)
    recipe = _recipe(env, network, spec, hosts, streams)
    health = HealthCheck(env, spec.health_check_s, spec.health_failure_p,
                         streams.get("rollout.health"))
    provisioning = Provisioning(env, recipe, health, max_retries=spec.max_retries,
                                recorder=recorder)
    fraction = spec.rollback_failure_fraction
    run = RolloutRun(
        env, hosts, rollout_strategy(spec.strategy, **spec.strategy_params), provisioning,
        recorder, old_version=OLD, new_version=NEW, app=APP,
        in_place=spec.mode == "baremetal",
        rollback_failures=None if fraction is None else math.ceil(fraction * spec.n_hosts))
    run.start()
    env.run()
    run.finish()
    return _tables(recorder, spec)


def _network(env: simpy.Environment, recorder: ChangePointRecorder, spec: RolloutSpec,
             hosts: list[str]) -> Network:
    network = Network(env, recorder)
    egress = min(spec.registry_uplink_mb_s, spec.registry_egress_mb_s or math.inf)
    for origin in _origins(spec):
        network.attach(origin, egress, spec.registry_uplink_mb_s)
    for i, host in enumerate(hosts):
        rack = None
        if spec.rack_hosts is not None:
            rack = f"rack{i // spec.rack_hosts:03d}"
            if i % spec.rack_hosts == 0:
                network.add_rack(rack, spec.rack_uplink_mb_s, spec.rack_uplink_mb_s)
                if spec.distribution == "mirrors":
                    network.attach(_mirror(rack), spec.host_nic_mb_s, spec.host_nic_mb_s, rack)
        network.attach(host, spec.host_nic_mb_s, spec.host_nic_mb_s, rack)
    return network


def _origins(spec: RolloutSpec) -> list[str]:
    """The registry, and the extra registries seeding a P2P swarm."""
    extra = spec.p2p_origins - 1 if spec.distribution == "p2p" else 0
    return [REGISTRY, *(f"{REGISTRY}-{k}" for k in range(1, extra + 1))]


def _mirror(rack: str) -> str:
    return f"mirror-{rack}"


def _duration(mean_s: float, cv: float, random: bool) -> Distribution:
    return LogNormal(mean_s, cv) if random and cv > 0 else Deterministic(mean_s)


def _recipe(env: simpy.Environment, network: Network, spec: RolloutSpec, hosts: list[str],
            streams: Streams) -> Recipe:
    """The hosting mode's provisioning recipe, with v1 already on every host."""
    if spec.mode == "baremetal":
        return _bare_metal(env, network, spec, hosts, streams)
    images: dict[str, Image]
    if spec.mode == "vm":
        vm = VMImage(APP, OLD, spec.vm_image_mb)
        images = {OLD: vm, NEW: vm.next_version(NEW, spec.changed)}
    else:
        image = ContainerImage.build(APP, OLD, (*spec.base_layers_mb, spec.app_layer_mb))
        images = {OLD: image, NEW: image.next_version(NEW, spec.changed)}
    caches = {h: LayerCache(spec.cache_mb) for h in hosts}
    for cache in caches.values():
        for layer in images[OLD].layers:
            cache.add(layer)
    source = _source(env, network, spec, caches)
    rng = streams.get("rollout.start")
    if spec.mode == "vm":
        return VMProvision(env, source, images,
                           _duration(d.VM_BOOT_MEAN_S, d.VM_BOOT_CV, spec.random_durations), rng)
    return ContainerProvision(
        env, source, images,
        _duration(d.CONTAINER_START_MEAN_S, d.CONTAINER_START_CV, spec.random_durations), rng)


def _source(env: simpy.Environment, network: Network, spec: RolloutSpec,
            caches: dict[str, LayerCache]) -> Distributor:
    """The registry (direct or through rack mirrors) or the P2P swarm hosts pull from."""
    unpack = spec.unpack_mb_s_per_core if spec.mode == "container" else None
    client: dict[str, Any] = {
        "max_concurrent_downloads": spec.max_concurrent_downloads,
        "unpacker": None if unpack is None else Unpacker(env, unpack),
        "lazy_fraction": spec.lazy_fraction if spec.lazy else None}
    if spec.distribution == "p2p":
        return Swarm(env, network, caches, origins=_origins(spec), piece_mb=spec.piece_mb,
                     upload_slots=spec.upload_slots, upload_cap_mb_s=spec.p2p_upload_cap_mb_s,
                     download_cap_mb_s=spec.p2p_download_cap_mb_s, **client)
    mirrors = None
    if spec.distribution == "mirrors":
        mirrors = {rack: _mirror(rack) for rack in map(network.rack_of, caches) if rack}
    return Registry(env, network, caches, node=REGISTRY, mirrors=mirrors, **client)


def _bare_metal(env: simpy.Environment, network: Network, spec: RolloutSpec, hosts: list[str],
                streams: Streams) -> BareMetalInstall:
    """Releases v1 and v2 as install steps; some hosts pin the old shared library."""
    total_s = d.SCRIPTED_INSTALL_S if spec.install == "scripted" else d.MANUAL_INSTALL_S
    deps_s = d.INSTALL_DEPENDENCIES_SHARE * total_s

    def release(library_version: str) -> list[InstallStep]:
        app = InstallStep("install application", total_s - deps_s, spec.app_layer_mb)
        if spec.changed == "top-layer":
            return [app]
        deps = InstallStep("install dependencies", deps_s, sum(spec.base_layers_mb),
                           {d.SHARED_LIBRARY: library_version})
        return [deps, app]

    conflicted = streams.get("rollout.conflicts").random(len(hosts)) < spec.conflict_fraction
    pins = {h: {d.SHARED_LIBRARY: d.SHARED_LIBRARY_OLD}
            for h, pinned in zip(hosts, conflicted, strict=True) if pinned}
    workers = spec.install_workers
    if workers is None and spec.install == "manual":
        workers = d.MANUAL_OPERATORS
    return BareMetalInstall(
        env, network, {OLD: release(d.SHARED_LIBRARY_OLD), NEW: release(d.SHARED_LIBRARY_NEW)},
        mirror=REGISTRY, pins=pins, step_failure_p=spec.install_step_failure_p,
        restart_time=Deterministic(d.SERVICE_RESTART_S),
        rng=streams.get("rollout.install"), workers=workers)


# --- tables ---------------------------------------------------------------------------
def _frame(recorder: ChangePointRecorder, table: str) -> pd.DataFrame:
    columns = recorder.data[table]
    return pd.DataFrame({name: list(values) for name, values in columns.items()})


def serving_capacity(timeline: pd.DataFrame) -> pd.DataFrame:
    """Change points (t, old_healthy, new_healthy) of serving instances per version."""
    serving = timeline[timeline["healthy"].notna()]
    stopped = serving[serving["stopped"].notna()]
    steps = pd.concat([
        pd.DataFrame({"t": serving["healthy"], "version": serving["version"], "step": 1}),
        pd.DataFrame({"t": stopped["stopped"], "version": stopped["version"], "step": -1}),
    ]).sort_values("t", kind="stable")
    out = pd.DataFrame({
        "t": steps["t"],
        "old_healthy": (steps["step"] * (steps["version"] == OLD)).cumsum(),
        "new_healthy": (steps["step"] * (steps["version"] == NEW)).cumsum(),
    })
    return out.drop_duplicates("t", keep="last").reset_index(drop=True)


def summarize(timeline: pd.DataFrame, links: pd.DataFrame, capacity: pd.DataFrame,
              events: pd.DataFrame, n_hosts: int) -> pd.DataFrame:
    """One row of headline figures of a rollout."""
    ends = timeline[["healthy", "failed", "stopped"]].to_numpy()
    final_mb = links.groupby("link", sort=False)["bytes_mb"].last()
    registry = links[links["link"] == f"{REGISTRY}.up"]
    new = timeline[(timeline["version"] == NEW) & timeline["queued"].notna()]
    outcome = events.loc[events["kind"] == "rollout_end", "detail"]

    def mb(suffix: str, prefix: str) -> float:
        names = final_mb.index.str
        return float(final_mb[names.startswith(prefix) & names.endswith(suffix)].sum())

    return pd.DataFrame([{
        "makespan_s": float(pd.Series(ends.ravel()).max()),
        "min_serving_fraction": float(
            (capacity["old_healthy"] + capacity["new_healthy"]).min() / n_hosts),
        "new_healthy": int(new["healthy"].notna().sum()),
        "new_failed": int(new["failed"].notna().sum()),
        "instance_median_s": float((new["healthy"] - new["queued"]).median()),
        "registry_mb": mb(".up", REGISTRY),
        "peer_upload_mb": mb(".up", "host"),
        "delivered_mb": mb(".down", "host"),
        "into_racks_mb": mb(".down", "rack"),
        "peak_registry_mb_s": float(registry["allocated_mb_s"].max()) if len(registry) else 0.0,
        "outcome": outcome.iloc[-1] if len(outcome) else "",
    }])


def _tables(recorder: ChangePointRecorder, spec: RolloutSpec) -> dict[str, pd.DataFrame]:
    timeline = _frame(recorder, "timeline")
    links = conform(_frame(recorder, "links").drop_duplicates(["link", "t"], keep="last"), LINKS)
    events = _frame(recorder, "events")
    capacity = serving_capacity(timeline)
    tables = {"timeline": timeline, "links": links, "capacity": capacity, "events": events,
              "summary": summarize(timeline, links, capacity, events, spec.n_hosts)}
    return {name: frame.assign(**spec.params) for name, frame in tables.items()}
