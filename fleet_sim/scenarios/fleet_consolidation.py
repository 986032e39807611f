"""The consolidation policies over a fleet's own instances (docs/model.md §5.6).

:func:`consolidate` starts a :class:`~fleet_sim.hosting.consolidator.Consolidator` on a
deployment whose ``decide`` is a policy of :mod:`fleet_sim.policies.consolidation`
(e.g. ``consolidation_policy("thr-mmt", 0.8)``): each round the hosts and guests it
sampled become the policy's read-only views, in MIPS (a core of speed s runs
s × 1000 MIPS), and the plan's migrations are the moves.
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
