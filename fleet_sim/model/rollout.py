"""RolloutRun: executes a rollout strategy across a fleet (docs/model.md §5).

Roles: each replica of an app runs one instance at the old version (the
replica's *slot*). A
:class:`~fleet_sim.model.protocols.RolloutStrategy` looks at a
:class:`~fleet_sim.model.views.RolloutView` and answers with actions (create a
new instance for a replica, retire an old one, abort); the run carries them out,
provisioning each new instance through a :class:`Provisioner` (on a fleet:
:class:`fleet_sim.hosting.rollout.FleetProvisioner`, which places it, and has its
hosting mode transfer or install, boot or start it; then health check, retries)
and stopping retired ones through it.

Process: :meth:`RolloutRun.run` asks the strategy for actions after every
change until it has none and nothing is in flight. Retiring an old instance
is immediate. When failed new instances reach ``rollback_failures`` or the
strategy aborts, the run rolls back: in-flight new instances are discarded
and stopped (their image pull runs on in the background, as kubelet's pulls do,
but its result is ignored) and the same strategy restores the old
version, old and new swapping roles, as ``kubectl rollout undo`` does.

Recording: :attr:`RolloutRun.instances` holds one record per instance, the times
(s) it was queued, started and ended its transfer, started, became healthy or
failed, and was stopped (NaN where not reached), and the host it ran on; the old
instances running when the rollout begins are recorded as healthy from then.
Events ``instance_failed``, ``rollback`` and ``rollout_end``. The ``timeline``
table, makespan and serving capacity are derived from the records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Protocol

import simpy
from simpy.events import ProcessGenerator

from fleet_sim.model.protocols import Recorder, RolloutStrategy
from fleet_sim.model.views import (
    Abort,
    Create,
    InstanceState,
    Retire,
    RolloutAction,
    RolloutView,
    SlotView,
)

NAN = math.nan


@dataclass(eq=False)
class InstanceRecord:
    """One instance's timeline: times in s, NaN where not reached.

    Provisioners set ``host`` (where it was placed; empty until then), fill
    ``transfer_start``, ``transfer_end`` and ``started`` (the instance runs and its
    health check begins) through :meth:`mark`, count ``attempts`` and give a
    ``failure`` reason; the run sets the rest.
    """

    instance: str
    host: str
    version: str
    queued: float = NAN
    transfer_start: float = NAN
    transfer_end: float = NAN
    started: float = NAN
    healthy: float = NAN
    failed: float = NAN
    stopped: float = NAN
    attempts: int = 0
    failure: str = ""

    def mark(self, phase: str, t: float) -> None:
        """Record that ``phase`` was reached at ``t`` (ignored once stopped)."""
        if math.isnan(self.stopped):
            setattr(self, phase, t)

    @property
    def state(self) -> InstanceState:
        """The state a strategy sees."""
        if not math.isnan(self.stopped):
            return InstanceState.ABSENT
        if not math.isnan(self.failed):
            return InstanceState.FAILED
        if not math.isnan(self.healthy):
            return InstanceState.HEALTHY
        return InstanceState.PROVISIONING


TIMELINE_COLUMNS = tuple(f.name for f in fields(InstanceRecord))


class Provisioner(Protocol):
    """Brings instances of a version up, and stops them."""

    def provision(self, instance: InstanceRecord) -> ProcessGenerator:
        """Place and provision ``instance`` (its slot's replica at ``instance.version``);
        returns True iff it is healthy."""
        ...

    def stop(self, instance: InstanceRecord) -> None:
        """Stop ``instance`` now (retired, or discarded by a rollback)."""
        ...


@dataclass(eq=False)
class _Slot:
    replica: str
    old: InstanceRecord | None
    new: InstanceRecord | None = None

    def view(self) -> SlotView:
        return SlotView(self.replica, _state(self.old), _state(self.new))


def _state(instance: InstanceRecord | None) -> InstanceState:
    return InstanceState.ABSENT if instance is None else instance.state


class RolloutRun:
    """Rolls ``app``'s ``replicas`` (replica → host of its old instance) from
    ``old_version`` to ``new_version``; a strategy's slots are named by the replica.

    ``in_place``: a replica's host holds one version at a time (bare metal).
    ``rollback_failures``: roll back once this many new instances have failed (None:
    never on failures).
    """

    def __init__(self, env: simpy.Environment, replicas: Mapping[str, str],
                 strategy: RolloutStrategy, provisioner: Provisioner, recorder: Recorder, *,
                 old_version: str, new_version: str, app: str = "app",
                 in_place: bool = False, rollback_failures: int | None = None):
        if not replicas:
            raise ValueError("a rollout needs at least one replica")
        if rollback_failures is not None and rollback_failures < 1:
            raise ValueError(f"rollback_failures must be >= 1, got {rollback_failures!r}")
        self.env = env
        self.strategy = strategy
        self.provisioner = provisioner
        self.recorder = recorder
        self.app = app
        self.old_version, self.new_version = old_version, new_version
        self.in_place = in_place
        self.rollback_failures = rollback_failures
        self._slots = {r: _Slot(r, InstanceRecord(r, h, old_version, healthy=env.now))
                       for r, h in replicas.items()}
        self.instances: list[InstanceRecord] = [s.old for s in self._slots.values()
                                                if s.old is not None]
        self._views = {h: s.view() for h, s in self._slots.items()}
        self._target = new_version
        self.rolling_back = False
        self.failures = 0  # new-version instances that failed before any rollback
        self.outcome = "not started"
        self._in_flight = 0
        self._changed: simpy.Event | None = None

    def _instance(self, replica: str, version: str, **times: float) -> InstanceRecord:
        record = InstanceRecord(f"{replica}@{version}", "", version, **times)
        self.instances.append(record)
        return record

    def view(self) -> RolloutView:
        """The current snapshot the strategy sees."""
        return RolloutView(tuple(self._views.values()), self.in_place, self.rolling_back)

    def start(self) -> simpy.Process:
        """Start the rollout process (explicit elaboration step)."""
        return self.env.process(self.run())

    def run(self) -> ProcessGenerator:
        """Apply the strategy's actions after every change until the rollout settles.

        In sim time: waits on instance completions; returns when the strategy has
        nothing more to do and no instance is provisioning.
        """
        self.outcome = "running"
        while True:
            if (not self.rolling_back and self.rollback_failures is not None
                    and self.failures >= self.rollback_failures):
                self._roll_back(f"{self.failures} new instances failed")
            actions = self.strategy.next_actions(self.view())
            if actions:
                for action in actions:
                    self._apply(action)
                    if isinstance(action, Abort):
                        break  # what followed was decided for the abandoned target
                continue
            if not self._in_flight:
                break
            self._changed = self.env.event()
            yield self._changed
        view = self.view()
        self.outcome = ("rolled-back" if self.rolling_back else
                        "complete" if view.done else "stalled")
        self.recorder.event(self.env.now, "rollout_end", self.app, self.outcome)

    def _apply(self, action: RolloutAction) -> None:
        if isinstance(action, Abort):
            if self.rolling_back:
                raise ValueError(f"strategy aborted during a rollback: {action.reason}")
            self._roll_back(action.reason)
            return
        slot = self._slots.get(action.host)
        if slot is None:
            raise ValueError(f"{action!r}: no such replica in this rollout")
        if isinstance(action, Retire):
            if slot.old is None:
                raise ValueError(f"{action!r}: no old instance there")
            slot.old.stopped = self.env.now
            self.provisioner.stop(slot.old)
            slot.old = None
        elif isinstance(action, Create):
            if slot.new is not None:
                raise ValueError(f"{action!r}: replica already has a new instance")
            if self.in_place and slot.old is not None:
                raise ValueError(f"{action!r}: in-place host still runs its old instance")
            slot.new = self._instance(slot.replica, self._target, queued=self.env.now)
            self._in_flight += 1
            self.env.process(self._provision(slot, slot.new))
        else:
            raise TypeError(f"unknown rollout action {action!r}")
        self._views[slot.replica] = slot.view()

    def _provision(self, slot: _Slot, instance: InstanceRecord) -> ProcessGenerator:
        """Provision one instance; on its outcome, update the slot and wake the run."""
        healthy = yield from self.provisioner.provision(instance)
        if not math.isnan(instance.stopped):
            return  # retired or discarded meanwhile
        self._in_flight -= 1
        if healthy:
            instance.healthy = self.env.now
        else:
            instance.failed = self.env.now
            self.recorder.event(self.env.now, "instance_failed", instance.instance,
                                instance.failure)
            if not self.rolling_back:
                self.failures += 1
        self._views[slot.replica] = slot.view()
        if self._changed is not None and not self._changed.triggered:
            self._changed.succeed()

    def _roll_back(self, reason: str) -> None:
        """Discard in-flight new instances and make the old version the target."""
        now = self.env.now
        self.recorder.event(now, "rollback", self.app, reason)
        self.rolling_back = True
        self._target = self.old_version
        for slot in self._slots.values():
            new = slot.new
            if new is not None and new.state is InstanceState.PROVISIONING:
                new.stopped = now
                self.provisioner.stop(new)
                self._in_flight -= 1
            slot.old, slot.new = new if _state(new) is InstanceState.HEALTHY else None, slot.old
            self._views[slot.replica] = slot.view()
