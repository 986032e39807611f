"""Host failures, repairs and compromises during a run (docs/model.md §6.1).

A failed host takes down everything on it (event ``host_failure``, then one
``killed`` per instance; the jobs in flight are lost). What happens next is the
same for every mode: each replica it ran is placed again, by the scenario's
placement policy, on a host that is up and has room (CPU, RAM and, on a shared OS,
no dependency conflict), and provisions there the way its mode provisions at the
start: a VM boots from scratch, a container is started again, a shared-OS app is
reinstalled. A replica that fits nowhere stays down (event ``unplaced``) until a
repair gives it a host. A repaired host (``host_repaired``) comes back empty. The
new instance numbers its jobs on from the old one's; a replica's own request
streams (``scope = "replica"``) start again when it is admitted (Poisson arrivals
are memoryless) and have no arrivals while it has no instance.

Failures come from schedules (:meth:`Failures.schedule`: a host at a time, with an
optional repair time) or at random (:meth:`Failures.random`: times to failure and
to repair drawn from distributions, stream ``failures.<host>``). A failure of a
host that is already down, or a repair of one that is up, does nothing.
"""

from __future__ import annotations

import numpy as np
import simpy

from fleet_sim.hosting.instance import Instance, draw_s
from fleet_sim.hosting.deploy import Deployment
from fleet_sim.model.distributions import Distribution
from fleet_sim.model.protocols import PlacementPolicy
from fleet_sim.rng import Streams


class Failures:
    """Failures and repairs of the hosts of ``deployment``; replicas they take down are
    placed again by ``placement``, which draws its tie-breaks from the stream
    ``failures.placement`` of ``streams``."""

    def __init__(self, deployment: Deployment, placement: PlacementPolicy, streams: Streams):
        self.deployment = deployment
        self.env: simpy.Environment = deployment.env
        self.placement = placement
        self.streams = streams
        self.rng = streams.get("failures.placement")
        self.waiting: list[Instance] = []  #: replicas down until some host has room

    def _event(self, kind: str, entity: str, detail: str = "", host: str = "") -> None:
        """Record an event now (on ``host``'s recorder, or the first host's)."""
        dep = self.deployment
        site = dep.by_host[host] if host else dep.sites[0]
        site.host.recorder.event(self.env.now, kind, entity, detail, host=host)

    def fail(self, host: str) -> list[str]:
        """``host`` fails now; its replicas are placed again where they fit. Returns
        the replicas it took down."""
        dep = self.deployment
        if not dep.by_host[host].host.up:
            return []
        apps = dep.fail_host(host)
        for name in apps:
            del dep.placement[name]
            self.waiting.append(dep.instances[name])
        self._place_waiting(f"after host_failure of {host}")
        return apps

    def repair(self, host: str) -> None:
        """``host`` is repaired now and comes back empty; replicas waiting for room
        are placed again."""
        site = self.deployment.by_host[host]
        if site.host.up:
            return
        site.kernel.up = site.host.up = True
        self._event("host_repaired", host, host=host)
        self._place_waiting(f"after repair of {host}")

    def _place_waiting(self, why: str) -> None:
        dep = self.deployment
        still = []
        for old in self.waiting:
            app = old.app
            request = dep.sites[0].candidate(app).request
            chosen = self.placement.place(request, dep.fleet_view(), self.rng)
            if chosen is None:
                still.append(old)
                self._event("unplaced", app.name, f"no host up has room {why}")
                continue
            self._event("rescheduled", app.name, why, host=chosen)
            dep.place_again(old, chosen)
        self.waiting = still

    # ------------------------------------------------------------------ sources
    def schedule(self, host: str, at_s: float, repair_s: float | None = None) -> None:
        """``host`` fails at ``at_s`` (s) and, with ``repair_s``, is repaired that many
        seconds later."""
        def run():
            yield self.env.timeout(max(0.0, at_s - self.env.now))
            self.fail(host)
            if repair_s is not None:
                yield self.env.timeout(repair_s)
                self.repair(host)
        self.env.process(run())

    def random(self, host: str, to_failure_s: Distribution, to_repair_s: Distribution) -> None:
        """``host`` fails after a draw of ``to_failure_s`` (s, from the start or its last
        repair) and is repaired after a draw of ``to_repair_s``, again and again
        (stream ``failures.<host>``)."""
        rng = self.streams.get(f"failures.{host}")

        def run():
            while True:
                yield self.env.timeout(draw_s(to_failure_s, rng))
                self.fail(host)
                yield self.env.timeout(draw_s(to_repair_s, rng))
                self.repair(host)
        self.env.process(run())

    def compromise(self, app: str, at_s: float, sample: bool = False) -> None:
        """Replica ``app`` is compromised at ``at_s`` (s): events ``compromised`` and
        ``exposed`` (every possible exposure with its probability, or with ``sample``
        one draw of the escapes from the stream ``failures.compromise.<app>``)."""
        rng: np.random.Generator | None = (
            self.streams.get(f"failures.compromise.{app}") if sample else None)

        def run():
            yield self.env.timeout(max(0.0, at_s - self.env.now))
            if app in self.deployment.instances and app in self.deployment.placement:
                self.deployment.compromise(app, rng)
        self.env.process(run())
