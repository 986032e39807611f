"""Read-only snapshots the policies decide on, and the actions they answer with.

Frozen dataclasses and enums only (no SimPy), so importing this module is light
and policies never touch live model objects (STYLE §3, §6).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cached_property

# --- rollout ---------------------------------------------------------------------


class InstanceState(Enum):
    """Where one app instance is in its life, as a rollout strategy sees it."""

    ABSENT = "absent"  #: none on this host: never created, retired, or discarded
    PROVISIONING = "provisioning"  #: created: transferring, installing, starting or checking
    HEALTHY = "healthy"  #: passed its health check and serves
    FAILED = "failed"  #: gave up after its retries


ALIVE = frozenset({InstanceState.PROVISIONING, InstanceState.HEALTHY})


@dataclass(frozen=True, slots=True)
class SlotView:
    """One host's place for the app during a rollout.

    ``old``: the serving instance of the version being replaced (HEALTHY, or
    ABSENT once retired); ``new``: its replacement, of the target version.
    During a rollback the roles swap.
    """

    host: str
    old: InstanceState
    new: InstanceState

    @property
    def done(self) -> bool:
        """Nothing left to do here: the new instance serves alone, or it failed."""
        return self.new is InstanceState.FAILED or (
            self.new is InstanceState.HEALTHY and self.old is InstanceState.ABSENT)


@dataclass(frozen=True)
class RolloutView:
    """The fleet as a rollout strategy sees it: one slot per host, in rollout order.

    ``in_place``: a host holds one version at a time (bare metal: one shared OS),
    so a new instance may be created only where the old one is gone — no surge.
    ``rolling_back``: the rollout was aborted and is restoring the old version.
    """

    slots: tuple[SlotView, ...]
    in_place: bool = False
    rolling_back: bool = False

    @property
    def replicas(self) -> int:
        """Desired number of serving instances (one per host)."""
        return len(self.slots)

    @cached_property
    def healthy(self) -> int:
        """Serving instances, old and new."""
        return sum((s.old is InstanceState.HEALTHY) + (s.new is InstanceState.HEALTHY)
                   for s in self.slots)

    @cached_property
    def alive(self) -> int:
        """Instances that exist (provisioning or serving), old and new."""
        return sum((s.old in ALIVE) + (s.new in ALIVE) for s in self.slots)

    @cached_property
    def provisioning(self) -> int:
        """New instances still on their way up."""
        return sum(s.new is InstanceState.PROVISIONING for s in self.slots)

    @property
    def unavailable(self) -> int:
        """Replicas short of serving: ``replicas - healthy`` (negative while surging)."""
        return self.replicas - self.healthy

    @property
    def surge(self) -> int:
        """Instances beyond the replicas: ``alive - replicas`` (negative when short)."""
        return self.alive - self.replicas

    @property
    def done(self) -> bool:
        """Every slot is done."""
        return all(s.done for s in self.slots)


@dataclass(frozen=True, slots=True)
class Create:
    """Start provisioning a new instance on ``host``."""

    host: str


@dataclass(frozen=True, slots=True)
class Retire:
    """Stop the old instance on ``host`` (at once)."""

    host: str


@dataclass(frozen=True, slots=True)
class Abort:
    """Give up on the new version and roll back, for ``reason``."""

    reason: str


RolloutAction = Create | Retire | Abort
