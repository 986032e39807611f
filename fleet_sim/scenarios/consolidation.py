"""The consolidation study wired together: ``[traces]`` guests on the fleet, moved by the
``[consolidation]`` policy (docs/model.md §12).

:func:`dynamic_fleet` builds the :class:`~fleet_sim.hosting.consolidation.DynamicFleet`
of a config: hosts from ``[[fleet.hosts]]`` (MIPS = cores × speed × 1000; groups
interleaved host by host, as CloudSim alternates its two host types), one guest per
trace of ``traces.day`` (CloudSim's four VM types in contiguous blocks), the hosting
mode's way of moving them, and the policy turned into the fleet's ``place`` and
``decide`` hooks: each round the fleet's read-only state becomes the policy's views
(:mod:`fleet_sim.policies.consolidation`) and its plan becomes moves.

- ``npa``: first-fit at full MIPS, no moves, every host on at peak power all day.
- ``dvfs``: first-fit at full MIPS, no moves, power follows load, idle hosts off.
- ``<detector>-<selection>``: PABFD at full MIPS, then a round every ``interval_s``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import simpy

from fleet_sim.hosting.consolidation import (
    NOMINAL_CORE_MIPS,
    DynamicFleet,
    DynamicHost,
    FleetState,
    MoveParams,
    PowerStates,
    block_types,
)
from fleet_sim.images.network import Network
from fleet_sim.images.registry import Distributor
from fleet_sim.model.protocols import Recorder
from fleet_sim.numerics.power import LinearPower, TablePower
from fleet_sim.policies.consolidation import (
    HISTORY_LENGTH,
    Consolidation,
    HostCapacity,
    HostView,
    VmColumns,
    VmView,
    first_fit,
    vm_views,
)
from fleet_sim.policies.registry import consolidation_policy
from fleet_sim.rng import Streams
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.traces import PLANETLAB_INTERVAL_S, planetlab_day


def _power(power: cfg.PowerConfig) -> LinearPower | TablePower:
    if power.table_w is not None:
        return TablePower(power.table_w)
    return LinearPower(power.idle_w, power.peak_w)  # type: ignore[arg-type]


def fleet_hosts(config: cfg.ScenarioConfig) -> list[DynamicHost]:
    """The hosts, groups interleaved (g4000, g5000, g4001, …), named as in the fleet."""
    groups = []
    for g in config.fleet.hosts:
        power = _power(g.power)
        capacity = HostCapacity(int(g.cores), g.speed * NOMINAL_CORE_MIPS, g.ram_mib,
                                g.nic_mb_s, power)
        groups.append([DynamicHost(name, capacity) for name in g.names])
    out = []
    for k in range(max(len(g) for g in groups)):
        out.extend(g[k] for g in groups if k < len(g))
    return out


class PolicyHooks:
    """A consolidation policy as the fleet's ``place`` and ``decide``: ``policy`` (None
    for the first-fit baselines, which never move anything), ``rng`` for RS."""

    def __init__(self, hosts: Sequence[DynamicHost], names: Sequence[str],
                 policy: Consolidation | None, rng: np.random.Generator,
                 hold_ram: bool = True):
        self.caps = [h.capacity for h in hosts]
        self.host_names = [h.name for h in hosts]
        self.names = list(names)
        self.policy = policy
        self.rng = rng
        self.held = None if hold_ram else 0.0

    def _vms(self, s: FleetState, full: bool) -> list[VmView]:
        history = s.history[:, -HISTORY_LENGTH:]
        mips, ram, vcpus = s.vm_mips.tolist(), s.vm_ram_mib.tolist(), s.vm_vcpus.tolist()
        demand = mips if full else s.vm_demand_mips.tolist()
        held = None if full else self.held
        rows = [()] * len(mips) if full else list(history)
        return vm_views(self.names, mips, demand, ram, rows, [int(c) for c in vcpus], held)

    def views(self, s: FleetState) -> list[HostView]:
        """The policy's view of every host now (its VMs in index order, those coming
        to it marked, after its own)."""
        return self._views(s)[0]

    def _views(self, s: FleetState) -> tuple[list[HostView], VmColumns]:
        """:meth:`views` and their VMs as arrays (host by host)."""
        vms = self._vms(s, full=False)
        moving = np.flatnonzero(s.vm_target >= 0)
        for k in moving.tolist():
            vms.append(_marked(vms[k], out=False))
            vms[k] = _marked(vms[k], out=True)
        # entries (a VM on its host, then a VM coming to its target), host by host
        owner = np.concatenate([s.vm_host, s.vm_target[moving]])
        coming = np.arange(owner.size) >= s.vm_host.size
        order = np.lexsort((coming, owner))
        vm = np.concatenate([np.arange(s.vm_host.size), moving])[order]
        ordered = [vms[k] for k in order.tolist()]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(self.caps)))])
        used, b = s.host_used_mips.tolist(), bounds.tolist()
        views = [HostView(name, cap, tuple(ordered[b[h]:b[h + 1]]), used[h])
                 for h, (name, cap) in enumerate(zip(self.host_names, self.caps, strict=True))]
        window = s.history[:, -HISTORY_LENGTH:]
        history = np.zeros((vm.size, HISTORY_LENGTH))
        history[:, HISTORY_LENGTH - window.shape[1]:] = window[vm]
        ram = s.vm_ram_mib[vm]
        columns = VmColumns(s.vm_demand_mips[vm], ram,
                            ram if self.held is None else np.full(vm.size, self.held),
                            np.zeros(vm.size), history * s.vm_mips[vm, None])
        return views, columns

    def place(self, s: FleetState) -> list[int]:
        """Every guest at its full MIPS, in index order (CloudSim's initial placement)."""
        vms = self._vms(s, full=True)
        hosts = [HostView(n, c, (), 0.0) for n, c in zip(self.host_names, self.caps,
                                                         strict=True)]
        chosen = (first_fit(vms, hosts) if self.policy is None
                  else self.policy.place(vms, hosts))
        index = {n: i for i, n in enumerate(self.host_names)}
        return [-1 if c is None else index[c] for c in chosen]

    def decide(self, s: FleetState) -> list[tuple[int, int]]:
        """The policy's round: its migrations as (guest, target host)."""
        assert self.policy is not None
        views, columns = self._views(s)
        plan = self.policy.plan(views, self.rng, columns)
        vm_index = {n: i for i, n in enumerate(self.names)}
        host_index = {n: i for i, n in enumerate(self.host_names)}
        return [(vm_index[m.vm], host_index[m.target]) for m in plan.migrations]


def _marked(vm: VmView, out: bool) -> VmView:
    return VmView(vm.name, vm.mips, vm.demand_mips, vm.ram_mib, vm.history, vm.vcpus,
                  vm.bandwidth_mb_s, migrating_out=out, migrating_in=not out,
                  reserved_ram_mib=vm.reserved_ram_mib)


def consolidation_of(c: cfg.ConsolidationConfig) -> Consolidation | None:
    """``c``'s policy (None for the baselines npa and dvfs, which move nothing), its
    look-ahead detectors (LR, LRR) predicting one round of ``c.interval_s`` ahead."""
    if c.policy in ("npa", "dvfs"):
        return None
    policy = consolidation_policy(c.policy, c.threshold)
    if hasattr(policy.detector, "interval_s"):  # LR, LRR look ahead
        policy = Consolidation(dataclasses.replace(policy.detector,  # type: ignore[type-var]
                                                   interval_s=c.interval_s), policy.selection)
    return policy


def dynamic_fleet(config: cfg.ScenarioConfig, env: simpy.Environment, streams: Streams,
                  network: Network | None = None, registry: Distributor | None = None,
                  recorder: Recorder | None = None) -> DynamicFleet:
    """The config's dynamic fleet (``[traces]`` set; ``[consolidation]`` defaults if
    absent), moving its guests over ``network`` and pulling container images from
    ``registry`` (default: the fleet's own, see
    :class:`~fleet_sim.hosting.consolidation.DynamicFleet`), its events to ``recorder``."""
    assert config.traces is not None
    c = config.consolidation or cfg.ConsolidationConfig()
    day = planetlab_day(config.traces.day)
    names, percent = day.vms[:config.traces.vms], day.cpu_percent[:config.traces.vms]
    hosts = fleet_hosts(config)
    policy = consolidation_of(c)
    hooks = PolicyHooks(hosts, names, policy, streams.get("consolidation.selection"),
                        hold_ram=c.ram == "reserved")
    mode = config.hosting.mode
    moves = MoveParams(mode=mode, migration=c.migration or "cloudsim", cpu_loss=c.cpu_loss,
                       dirty_mb_s=c.dirty_mb_s, stop_mb=c.stop_mb, max_rounds=c.max_rounds,
                       stop_s=c.stop_s, start_s=c.start_s,
                       base_layers_mb=tuple(config.images.base_layers_mb),
                       app_layer_mb=config.images.app_layer_mb,
                       registry_mb_s=config.images.registry_uplink_mb_s)
    power = PowerStates(c.switch_on_s, c.switch_on_w, peak_always=c.policy == "npa")
    return DynamicFleet(env, hosts, names, block_types(len(names)), percent,
                        hooks.place, None if policy is None else hooks.decide,
                        interval_s=c.interval_s, trace_interval_s=PLANETLAB_INTERVAL_S,
                        power=power, moves=moves, duration_s=config.run.duration_s,
                        hold_ram=c.ram == "reserved", network=network, registry=registry,
                        recorder=recorder)
