"""Rollouts on the fleet: a new version replaces an app's real instances (docs/model.md §5).

Roles: :class:`FleetRollout` is one ``[[rollouts]]`` entry of a fleet run. At
``at_s`` it hands the app's replicas, as they run then, to a
:class:`~fleet_sim.model.rollout.RolloutRun` (the strategy's executor) whose
:class:`FleetProvisioner` brings each new instance up on the fleet itself:

- the instance is the replica's app at the new version (its image, the version's
  dependencies), named ``<replica>@<version>``; its workloads begin when it runs
  (interim: each replica has its own request streams, so the old instance's stop
  and the new one's start end one stream and begin another);
- it is placed by the scenario's placement policy on a host with room for it (CPU,
  RAM, dependency conflicts), beside the old instances (a surge uses real CPU and
  RAM), or, in place (bare metal), on its replica's host once the old process is
  gone; with no room it waits until an instance of the rollout stops;
- its hosting mode provisions it with its ``hosting.*`` parameters and random
  streams: a process is installed on the shared OS, a VM's image is copied and it
  boots, a container pulls the layers its host lacks and starts;
- once it runs, a health check of ``health_check_s`` fails with ``health_failure_p``
  (stream ``rollout.<app>.health``); a failed attempt is stopped and retried
  ``max_retries`` times, on the same host while it fits. A dependency conflict
  refused at admission is final.

Retiring an old instance stops it at once (its jobs in flight are lost: ``stop``
events count them). Tables (:meth:`FleetRollout.tables`): ``timeline``,
``capacity`` and one ``rollout_summary`` row.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import simpy
from simpy.events import ProcessGenerator

from fleet_sim.errors import ConflictError
from fleet_sim.hosting.deploy import Deployment
from fleet_sim.hosting.instance import DOWN, FAILED, RUNNING, Instance
from fleet_sim.hosting.site import Site
from fleet_sim.hosting.specs import AppSpec
from fleet_sim.images.network import Network
from fleet_sim.model.protocols import PlacementPolicy, Recorder, RolloutStrategy
from fleet_sim.model.rollout import TIMELINE_COLUMNS, InstanceRecord, RolloutRun


@dataclass(frozen=True)
class Version:
    """What an app's instance at one version needs: its ``image`` reference and the
    package versions it installs on a shared OS."""

    image: str
    dependencies: tuple[tuple[str, str], ...] = ()


class FleetProvisioner:
    """Places, provisions and stops a rollout's instances on ``deployment``.

    ``replicas``: each replica's app at the old version (by replica name);
    ``hosts``: where each replica's old instance runs; ``versions``: what each
    version needs; ``in_place``: a new instance goes on its replica's host.
    """

    def __init__(self, deployment: Deployment, replicas: Mapping[str, AppSpec],
                 hosts: Mapping[str, str], versions: Mapping[str, Version], *,
                 policy: PlacementPolicy, placement_rng: np.random.Generator,
                 health_check_s: float, health_failure_p: float,
                 health_rng: np.random.Generator, max_retries: int, in_place: bool,
                 recorder: Recorder):
        self.deployment = deployment
        self.env: simpy.Environment = deployment.env
        self.replicas = replicas
        self.hosts = dict(hosts)  # where each replica last ran (a failure may move it)
        self.versions = versions
        self.policy = policy
        self.placement_rng = placement_rng
        self.health_check_s = health_check_s
        self.health_failure_p = health_failure_p
        self.health_rng = health_rng
        self.max_retries = max_retries
        self.in_place = in_place
        self.recorder = recorder
        self._freed: simpy.Event | None = None

    def spec(self, record: InstanceRecord) -> AppSpec:
        """The app of ``record``'s instance: its replica's, at its version."""
        replica = record.instance.rsplit("@", 1)[0]
        version = self.versions[record.version]
        return dataclasses.replace(self.replicas[replica], name=record.instance,
                                   image=version.image, dependencies=version.dependencies,
                                   late_workloads=True)

    def provision(self, record: InstanceRecord) -> ProcessGenerator:
        """Place, admit and launch ``record``'s instance, then health-check it; retry a
        failed attempt. Returns True iff it is healthy (False also once discarded)."""
        spec = self.spec(record)
        site: Site | None = None
        failed: list[Instance] = []  # the last failed attempt's instances
        for _ in range(1 + self.max_retries):
            record.attempts += 1
            site = yield from self._site(spec, record, site)
            if site is None:
                return False  # discarded, or a permanent conflict
            record.host = site.host.name
            try:
                instances = self.deployment.admit(site, spec)
            except ConflictError as e:
                return self._fail(record, str(e))
            for instance, before in zip(instances, failed, strict=False):  # ids go on
                instance.follow(before)
            ok = yield from self._settled(instances)
            if not math.isnan(record.stopped):
                return False
            transfer = instances[0].transfer_s
            if transfer is not None:
                if math.isnan(record.transfer_start):
                    record.mark("transfer_start", transfer[0])
                record.mark("transfer_end", transfer[1])
            failure = "could not be provisioned"
            if ok:
                record.mark("started", self.env.now)
                yield self.env.timeout(self.health_check_s)
                if not math.isnan(record.stopped):
                    return False
                if self.health_rng.random() >= self.health_failure_p:
                    return True
                failure = "health check failed"
            record.failure = failure
            self.recorder.event(self.env.now, "attempt_failed", record.instance, failure,
                                host=site.host.name)
            failed = instances
            self._remove(record.instance)
        return False

    def _fail(self, record: InstanceRecord, reason: str) -> bool:
        record.failure = reason
        self.recorder.event(self.env.now, "attempt_failed", record.instance, reason)
        return False

    def _site(self, spec: AppSpec, record: InstanceRecord,
              previous: Site | None) -> ProcessGenerator:
        """The site for the next attempt: ``previous`` while the instance fits there, else
        where the policy places it (in place: its replica's host); waits for room."""
        home = self.hosts[record.instance.rsplit("@", 1)[0]]
        while math.isnan(record.stopped):
            site = self.deployment.by_host[home] if self.in_place else previous
            if site is not None:
                view, request = site.kernel.view(), site.candidate(spec).request
                if view.fits(request):
                    return site
                conflicts = view.conflicts(request)
                if self.in_place and conflicts:
                    record.host = home
                    self._fail(record, f"dependency conflict on {home}: {', '.join(conflicts)}")
                    return None
            if not self.in_place:
                site = self.deployment.place(spec, self.policy, self.placement_rng)
                if site is not None:
                    return site
            yield self._room()
        return None

    def _room(self) -> simpy.Event:
        """An event that succeeds when an instance of the rollout stops."""
        if self._freed is None:
            self._freed = self.env.event()
        return self._freed

    def _settled(self, instances: Sequence[Instance]) -> ProcessGenerator:
        """Wait for each instance, outermost first, to run; False if one never will."""
        for inst in instances:
            runs = yield inst.settled
            if not runs:
                return False
        return True

    def stop(self, record: InstanceRecord) -> None:
        """Stop ``record``'s instance now (it frees room for others waiting)."""
        self._remove(record.instance)

    def _remove(self, name: str) -> None:
        host = self.deployment.placement.get(name)
        if host is not None:  # in place: its replacement goes where it ran last
            self.hosts[name.rsplit("@", 1)[0]] = host
        if name in self.deployment.instances:
            self.deployment.remove(name)
        if self._freed is not None:
            freed, self._freed = self._freed, None
            freed.succeed()


def _link_mb(network: Network | None) -> dict[str, float]:
    """MB each link has carried up to now."""
    if network is None:
        return {}
    now = network.env.now
    out = {}
    for name, link in network.links.items():
        link.settle(now)
        out[name] = link.bytes_mb
    return out


class FleetRollout:
    """Rolls ``app`` (its ``replicas``: name → app at the old version) from ``old`` to
    ``new`` at ``at_s`` with ``strategy``; ``provisioner(hosts)`` builds the
    :class:`FleetProvisioner` for the replicas' hosts then. ``rollback_failures``:
    roll back once this many new instances failed. ``network``: where the image
    transfers are measured (node ``registry`` is the registry)."""

    def __init__(self, deployment: Deployment, app: str, replicas: Sequence[str], at_s: float,
                 strategy: RolloutStrategy,
                 provisioner: Callable[[Mapping[str, str]], FleetProvisioner], *,
                 old: str, new: str, in_place: bool, rollback_failures: int | None,
                 recorder: Recorder, network: Network | None, registry: str):
        self.deployment = deployment
        self.env = deployment.env
        self.app = app
        self.replicas = list(replicas)
        self.at_s = at_s
        self.strategy = strategy
        self.provisioner = provisioner
        self.old, self.new = old, new
        self.in_place = in_place
        self.rollback_failures = rollback_failures
        self.recorder = recorder
        self.network = network
        self.registry = registry
        self.run: RolloutRun | None = None
        self.ended_s = math.nan
        self._mb: tuple[dict[str, float], dict[str, float]] = ({}, {})
        self.outages: list[tuple[str, float, float]] = []  # (instance, down, up or NaN)
        self._down: dict[str, float] = {}  # instance → since when it is down

    def start(self) -> simpy.Process:
        """Schedule the rollout (it begins at ``at_s``)."""
        return self.env.process(self._rollout())

    def _rollout(self) -> ProcessGenerator:
        yield self.env.timeout(max(0.0, self.at_s - self.env.now))
        hosts = {r: self.deployment.placement[r] for r in self.replicas
                 if r in self.deployment.placement}
        self.run = RolloutRun(self.env, hosts, self.strategy, self.provisioner(hosts),
                              self.recorder, old_version=self.old, new_version=self.new,
                              app=self.app, in_place=self.in_place,
                              rollback_failures=self.rollback_failures)
        self._mb = (_link_mb(self.network), {})
        for name in hosts:
            self._watch(name, self.deployment.instances.get(name))
        self.deployment.on_hosted.append(self._hosted)
        yield from self.run.run()
        self._close()

    # ------------------------------------------------------------------ outages
    def _hosted(self, app: str, inst: Instance) -> None:
        if app.rsplit("@", 1)[0] in self.replicas and math.isnan(self.ended_s):
            self._watch(app, inst)

    def _watch(self, name: str, inst: Instance | None) -> None:
        if inst is not None:
            inst.watchers.append(lambda i: self._state(name, i))

    def _state(self, name: str, inst: Instance) -> None:
        """An instance of the rollout that fails (a host failure, a crash) does not
        serve until it runs again (restarted, or rescheduled under the same name)."""
        if inst.state == RUNNING and name in self._down:
            self.outages.append((name, self._down.pop(name), self.env.now))
        elif inst.state in (FAILED, DOWN) and name not in self._down:
            self._down[name] = self.env.now

    def _close(self) -> None:
        self.ended_s = self.env.now
        self._mb = (self._mb[0], _link_mb(self.network))
        self.outages += [(name, t, math.nan) for name, t in self._down.items()]
        self._down = {}

    def finalize(self) -> None:
        """Close a rollout still running at the end of the run."""
        if self.run is not None and math.isnan(self.ended_s):
            self.run.outcome = "unfinished"
            self._close()

    # ------------------------------------------------------------------ tables
    def timeline(self) -> pd.DataFrame:
        """One row per instance of the rollout (columns of the ``timeline`` table)."""
        records = [] if self.run is None else self.run.instances
        return pd.DataFrame([[getattr(r, c) for c in TIMELINE_COLUMNS] for r in records],
                            columns=list(TIMELINE_COLUMNS))

    def tables(self, links: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
        """``timeline``, ``capacity`` and ``rollout_summary`` (one row) of the rollout;
        ``links``: the run's ``links`` table if recorded (for the peak registry rate)."""
        timeline = self.timeline()
        capacity = serving_capacity(timeline, self.old, self.outages)
        before, after = self._mb
        hosts = set(self.deployment.by_host)

        def mb(node_of: Callable[[str], bool], suffix: str) -> float:
            """MB carried during the rollout by the ``suffix`` links of nodes ``node_of``."""
            return float(sum(after[k] - before.get(k, 0.0) for k in after
                             if k.endswith(suffix) and node_of(k[:-len(suffix)])))

        new = timeline[(timeline["version"] == self.new) & timeline["queued"].notna()]
        registry = f"{self.registry}.up"
        peak = math.nan
        if links is not None and self.run is not None:
            rows = links[(links["link"] == registry) & (links["t"] >= self.at_s)
                         & (links["t"] <= self.ended_s)]
            peak = float(rows["allocated_mb_s"].max()) if len(rows) else 0.0
        ends = timeline[["healthy", "failed", "stopped"]].to_numpy(float)
        replicas = 0 if self.run is None else len(self.run.view().slots)
        summary = pd.DataFrame([{
            "app": self.app, "at_s": self.at_s,
            "makespan_s": (float(np.nanmax(ends) - self.at_s)
                           if replicas and self.run.outcome != "unfinished" else math.nan),
            "min_serving_fraction": (float((capacity["old_healthy"] + capacity["new_healthy"])
                                           .min() / replicas) if replicas else math.nan),
            "new_healthy": int(new["healthy"].notna().sum()),
            "new_failed": int(new["failed"].notna().sum()),
            "instance_median_s": float((new["healthy"] - new["queued"]).median()),
            "registry_mb": mb(lambda n: n == self.registry, ".up"),
            "peer_upload_mb": mb(hosts.__contains__, ".up"),
            "delivered_mb": mb(hosts.__contains__, ".down"),
            "into_racks_mb": mb(lambda n: n not in hosts and n != self.registry, ".down"),
            "peak_registry_mb_s": peak,
            "outcome": "not started" if self.run is None else self.run.outcome,
        }])
        return {"timeline": timeline, "capacity": capacity.assign(app=self.app),
                "rollout_summary": summary}


def serving_capacity(timeline: pd.DataFrame, old: str,
                     outages: Sequence[tuple[str, float, float]] = ()) -> pd.DataFrame:
    """Change points (t, old_healthy, new_healthy) of serving instances per version: an
    instance serves from ``healthy`` until ``stopped``, except during its ``outages``
    ((instance, down, up or NaN) — e.g. lost with its host until rescheduled)."""
    serving = timeline[timeline["healthy"].notna()]
    stopped = serving[serving["stopped"].notna()]
    parts = [pd.DataFrame({"t": serving["healthy"], "version": serving["version"], "step": 1}),
             pd.DataFrame({"t": stopped["stopped"], "version": stopped["version"], "step": -1})]
    by_name = serving.drop_duplicates("instance", keep="last").set_index("instance")
    for name, down, up in outages:
        if name not in by_name.index:
            continue
        row = by_name.loc[name]
        end = row["stopped"] if not math.isnan(row["stopped"]) else math.inf
        t0, t1 = max(down, row["healthy"]), min(math.inf if math.isnan(up) else up, end)
        if t0 < t1:
            parts.append(pd.DataFrame({"t": [t0, t1] if t1 < math.inf else [t0],
                                       "version": row["version"],
                                       "step": [-1, 1] if t1 < math.inf else [-1]}))
    steps = pd.concat(parts).sort_values("t", kind="stable")
    is_old = steps["version"] == old
    out = pd.DataFrame({
        "t": steps["t"],
        "old_healthy": (steps["step"] * is_old).cumsum(),
        "new_healthy": (steps["step"] * ~is_old).cumsum(),
    })
    return out.drop_duplicates("t", keep="last").reset_index(drop=True)
