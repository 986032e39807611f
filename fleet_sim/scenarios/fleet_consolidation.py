"""The consolidation policies over a fleet's own instances (docs/model.md §5.6).

:func:`consolidate` starts a :class:`~fleet_sim.hosting.consolidator.Consolidator` on a
deployment whose ``decide`` is a policy of :mod:`fleet_sim.policies.consolidation`
(e.g. ``consolidation_policy("thr-mmt", 0.8)``): each round the hosts and guests it
sampled become the policy's read-only views, in MIPS (a core of speed s runs
s × 1000 MIPS), and the plan's migrations are the moves. :func:`from_config` does so
for an ``[[apps]]`` run with ``[consolidation]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fleet_sim.hosting.consolidation import NOMINAL_CORE_MIPS, PowerStates
from fleet_sim.hosting.consolidator import INSTANT_ON, Consolidator, HostSample
from fleet_sim.hosting.deploy import Deployment
from fleet_sim.hosting.livemigration import PRECOPY, PrecopyParams
from fleet_sim.images.network import Network
from fleet_sim.model.views import HostCapacity
from fleet_sim.policies.consolidation import (
    HISTORY_LENGTH,
    Consolidation,
    ConsolidationPlan,
    HostView,
    VmView,
)
from fleet_sim.rng import Streams
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.consolidation import consolidation_of


class PolicyRounds:
    """A consolidator's ``decide``: ``policy``'s plan over the sampled hosts (``rng``:
    the random selection's draws); ``plans``: each round's plan."""

    def __init__(self, policy: Consolidation, rng: np.random.Generator):
        self.policy = policy
        self.rng = rng
        self.plans: list[ConsolidationPlan] = []

    def __call__(self, hosts: Sequence[HostSample]) -> list[tuple[str, str]]:
        plan = self.policy.plan([_host_view(h) for h in hosts], self.rng)
        self.plans.append(plan)
        return [(m.vm, m.target) for m in plan.migrations]


def _host_view(sample: HostSample) -> HostView:
    host = sample.host
    mips = host.speed * NOMINAL_CORE_MIPS
    vms = tuple(VmView(g.app, g.cores * mips, g.demand_cores * mips, g.ram_mib, g.history,
                       vcpus=max(1, round(g.cores)), migrating_out=g.outgoing,
                       migrating_in=g.incoming) for g in sample.guests)
    capacity = HostCapacity(int(host.cores), mips, sample.ram_mib, sample.nic_mb_s,
                            host.power)
    return HostView(host.name, capacity, vms,
                    min(capacity.mips, sum(v.demand_mips for v in vms)))


def consolidate(deployment: Deployment, network: Network, policy: Consolidation,
                rng: np.random.Generator, interval_s: float = 300.0,
                power: PowerStates = INSTANT_ON,
                precopy: PrecopyParams = PRECOPY) -> tuple[Consolidator, PolicyRounds]:
    """Consolidate ``deployment`` with ``policy`` every ``interval_s`` from now on
    (hosts need a power curve: the placement is power-aware); returns the started
    consolidator and its rounds."""
    for site in deployment.sites:
        if not hasattr(site.host.power, "power_w_array"):
            raise ValueError(f"cannot consolidate: host {site.host.name} has no power "
                             "curve (the policies' placement is power-aware)")
    rounds = PolicyRounds(policy, rng)
    cons = Consolidator(deployment, network, rounds, interval_s, power, precopy,
                        HISTORY_LENGTH)
    cons.start()
    return cons, rounds


def from_config(config: cfg.ScenarioConfig, deployment: Deployment,
                network: Network | None, streams: Streams) -> Consolidator | None:
    """Start ``[consolidation]`` on an ``[[apps]]`` run's ``deployment`` (its moves on
    ``network``, random selection from the ``consolidation.selection`` stream); None
    when nothing moves: no ``[consolidation]``, the ``dvfs`` baseline, or bare metal
    (its apps cannot move)."""
    c = None if config.traces is not None else config.consolidation  # [traces]: §12
    policy = None if c is None else consolidation_of(c)
    if c is None or policy is None or network is None or config.hosting.mode == "baremetal":
        return None
    precopy = PrecopyParams(c.dirty_mb_s, c.stop_mb, c.max_rounds, c.cpu_loss)
    cons, _rounds = consolidate(deployment, network, policy,
                                streams.get("consolidation.selection"), c.interval_s,
                                PowerStates(c.switch_on_s, c.switch_on_w), precopy)
    return cons
