"""A service's load balancer over the replicas a deployment runs (docs/model.md §3.4).

:class:`LoadBalancer` keeps a :class:`~fleet_sim.model.service.Service` routing to
the replicas of an app that are running: it watches each replica's innermost
instance (process or container), including the ones a deployment admits later
(a replica restarted on another host, or a rollout's ``<replica>@<version>``, which
serves that replica: while a rollout surges, both the old and the new instance are
endpoints, each with the replica's weight), and tells the service the running set
at every change of state. Booting, restarting, failed and stopped instances get no
new requests.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleet_sim.hosting.instance import RUNNING, Instance
from fleet_sim.hosting.deploy import Deployment
from fleet_sim.model.jobs import JobWorkload
from fleet_sim.model.service import Service


class LoadBalancer:
    """Routes ``service`` to the running replicas among ``weights`` (replica name →
    weight > 0, in the app's order) of ``deployment``; ``workload``: the workload's
    name within the app (each replica runs it as ``<replica>.<workload>``)."""

    def __init__(self, deployment: Deployment, service: Service, weights: Mapping[str, float],
                 workload: str):
        self.deployment = deployment
        self.service = service
        self.weights = dict(weights)
        self.workload = workload
        self.members: dict[str, list[str]] = {name: [name] for name in self.weights}
        for name in self.weights:
            inst = deployment.instances.get(name)
            if inst is not None:
                inst.watchers.append(self._changed)
        deployment.on_hosted.append(self._hosted)
        self.refresh()

    def _hosted(self, app: str, inst: Instance) -> None:
        replica = app.rsplit("@", 1)[0]  # a rollout's <replica>@<version> serves <replica>
        if replica in self.weights:
            if app not in self.members[replica]:
                self.members[replica].append(app)
            inst.watchers.append(self._changed)
            self.refresh()

    def _changed(self, _inst: Instance) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Tell the service which replicas run now."""
        healthy = []
        for replica, weight in self.weights.items():
            for name in self.members[replica]:
                inst = self.deployment.instances.get(name)
                if inst is not None and inst.state == RUNNING:
                    healthy.append((self._workload_of(inst), weight))
        self.service.set_replicas(healthy)

    def _workload_of(self, inst: Instance) -> JobWorkload:
        name = f"{inst.app.name}.{self.workload}"
        for wl in inst.workloads:
            if wl.name == name and isinstance(wl, JobWorkload):
                return wl
        raise ValueError(f"replica {inst.app.name!r} runs no job workload {self.workload!r}")
