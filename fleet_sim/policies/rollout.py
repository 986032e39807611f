"""Rollout strategies: given the fleet's state, what to do next (docs/model.md §5).

Each strategy is a small pure class: ``next_actions(view)`` reads a
:class:`~fleet_sim.model.views.RolloutView` and returns
:class:`~fleet_sim.model.views.Create`, :class:`~fleet_sim.model.views.Retire`
or :class:`~fleet_sim.model.views.Abort` actions; an empty answer means "wait
for the next change". ``model.rollout.RolloutRun`` carries them out. The same
strategy drives a rollback, with old and new swapped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fleet_sim.model.protocols import RolloutStrategy
from fleet_sim.model.views import (
    Abort,
    Create,
    InstanceState,
    Retire,
    RolloutAction,
    RolloutView,
    SlotView,
)

ABSENT, PROVISIONING, HEALTHY, FAILED = (
    InstanceState.ABSENT, InstanceState.PROVISIONING, InstanceState.HEALTHY,
    InstanceState.FAILED)


def _replace(slot: SlotView) -> list[RolloutAction]:
    """Take ``slot``'s old instance out of service and create its new one."""
    retire: list[RolloutAction] = [Retire(slot.host)] if slot.old is HEALTHY else []
    return [*retire, Create(slot.host)]


def _batch(slots: Sequence[SlotView], size: int) -> list[RolloutAction]:
    """Retire old instances whose replacement serves; replace the next ``size`` slots
    still to do once no new instance is in flight."""
    actions: list[RolloutAction] = [
        Retire(s.host) for s in slots if s.old is HEALTHY and s.new is HEALTHY]
    if not any(s.new is PROVISIONING for s in slots):
        todo = [s for s in slots if s.new is ABSENT][:size]
        actions += [a for s in todo for a in _replace(s)]
    return actions


class AllAtOnce:
    """Replace every instance at once (Kubernetes ``Recreate``): fastest, no capacity kept."""

    def next_actions(self, view: RolloutView) -> list[RolloutAction]:
        """Replace every slot that has no new instance yet."""
        return _batch(view.slots, view.replicas)


class Batches:
    """Replace ``size`` hosts at a time; the next batch starts when one has settled."""

    def __init__(self, size: int):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"batch size must be an integer >= 1, got {size!r}")
        self.size = size

    def next_actions(self, view: RolloutView) -> list[RolloutAction]:
        """The next batch of hosts, or nothing while a batch is in flight."""
        return _batch(view.slots, self.size)


def _parse(value: int | str, name: str) -> tuple[float, bool]:
    """(amount, is_percentage) of a count such as 3 or a percentage such as "25%"."""
    amount = math.nan
    if isinstance(value, int) and not isinstance(value, bool):
        amount = float(value)
    elif isinstance(value, str) and value.strip().endswith("%"):
        try:
            amount = float(value.strip()[:-1])
        except ValueError:
            amount = math.nan
    if not amount >= 0:
        raise ValueError(f"{name} must be a count >= 0 or a percentage such as '25%', "
                         f"got {value!r}")
    return amount, isinstance(value, str)


def _resolve(value: int | str, replicas: int, round_up: bool) -> int:
    """A count, or a percentage of ``replicas`` rounded up or down."""
    amount, is_percentage = _parse(value, "value")
    if not is_percentage:
        return int(amount)
    exact = amount * replicas / 100
    return math.ceil(exact) if round_up else math.floor(exact)


class Rolling:
    """Kubernetes rolling update: at most ``max_surge`` instances above the replicas and
    at most ``max_unavailable`` below them serving.

    Each is a count or a percentage of the replicas (``"25%"``, the Kubernetes
    default for both); a surge percentage rounds up, an unavailable one down,
    and if both come to 0, one instance may be unavailable (Kubernetes'
    ``ResolveFenceposts``). Like the deployment controller, each step retires old
    instances while more than ``replicas - max_unavailable`` serve (first where
    the new instance already serves, then on hosts still to do) and creates new
    ones while fewer than ``replicas + max_surge`` exist (on emptied hosts
    first). In place (bare metal) nothing can surge: the surge budget is 0.

    Raises ValueError if both are given as 0 or a value is malformed, and, in
    place, if ``max_unavailable`` is given as 0.
    """

    def __init__(self, max_surge: int | str = "25%", max_unavailable: int | str = "25%"):
        surge, _ = _parse(max_surge, "max_surge")
        unavailable, is_percentage = _parse(max_unavailable, "max_unavailable")
        if is_percentage and unavailable > 100:
            raise ValueError(f"max_unavailable must be at most 100%, got {max_unavailable!r}")
        if surge == 0 and unavailable == 0:
            raise ValueError("max_surge and max_unavailable cannot both be 0")
        self.max_surge = max_surge
        self.max_unavailable = max_unavailable

    def budgets(self, replicas: int, in_place: bool = False) -> tuple[int, int]:
        """(surge, unavailable) instance counts for ``replicas`` replicas."""
        surge = 0 if in_place else _resolve(self.max_surge, replicas, round_up=True)
        unavailable = min(replicas, _resolve(self.max_unavailable, replicas, round_up=False))
        if surge == 0 and unavailable == 0:
            if in_place and _parse(self.max_unavailable, "max_unavailable")[0] == 0:
                raise ValueError(f"an in-place rollout cannot surge, and max_unavailable="
                                 f"{self.max_unavailable!r} allows no instance to be down")
            unavailable = 1
        return surge, unavailable

    def next_actions(self, view: RolloutView) -> list[RolloutAction]:
        """Retire what the unavailability budget allows, then create what the surge allows."""
        surge, unavailable = self.budgets(view.replicas, view.in_place)
        actions: list[RolloutAction] = []
        healthy, alive = view.healthy, view.alive
        floor = view.replicas - unavailable
        serving_old = [s for s in view.slots if s.old is HEALTHY]
        for group in (HEALTHY, ABSENT):
            for s in serving_old:
                if healthy <= floor:
                    break
                if s.new is group:
                    actions.append(Retire(s.host))
                    healthy -= 1
                    alive -= 1
        retired = {a.host for a in actions}
        room = view.replicas + surge - alive
        vacant = [s for s in view.slots
                  if s.new is ABSENT and (s.old is ABSENT or s.host in retired)]
        if not view.in_place:
            vacant += [s for s in view.slots
                       if s.new is ABSENT and s.old is HEALTHY and s.host not in retired]
        actions += [Create(s.host) for s in vacant[:max(0, room)]]
        return actions


class Canary:
    """Replace a ``fraction`` of the hosts first; if they all come up healthy, hand
    the rest to ``then`` (default: :class:`Rolling` with its defaults), else abort.

    The canary is ``ceil(fraction × replicas)`` hosts (at least one), the first in
    rollout order, replaced together.
    """

    def __init__(self, fraction: float, then: RolloutStrategy | None = None):
        if not 0 < fraction <= 1:
            raise ValueError(f"canary fraction must be in (0, 1], got {fraction!r}")
        self.fraction = fraction
        self.then = Rolling() if then is None else then

    def next_actions(self, view: RolloutView) -> Sequence[RolloutAction]:
        """Canary hosts first; then abort on a failed canary, or delegate."""
        size = max(1, math.ceil(self.fraction * view.replicas))
        canary = view.slots[:size]
        if not all(s.done for s in canary):
            return _batch(canary, size)
        failed = sum(s.new is FAILED for s in canary)
        if failed and not view.rolling_back:
            return [Abort(f"canary: {failed} of {size} instances failed")]
        return self.then.next_actions(view)


class BlueGreen:
    """Bring up a full parallel fleet on the new version, then switch all traffic to it
    at once; if any new instance fails, abort before switching.

    Needs room for two instances per host, so it cannot run in place (bare metal).
    """

    def next_actions(self, view: RolloutView) -> list[RolloutAction]:
        """Create every new instance; once all serve, retire every old one."""
        if view.in_place:
            raise ValueError("blue-green needs a parallel fleet; an in-place (bare-metal) "
                             "rollout has no room for one")
        creates: list[RolloutAction] = [Create(s.host) for s in view.slots if s.new is ABSENT]
        if creates or view.provisioning:
            return creates
        failed = sum(s.new is FAILED for s in view.slots)
        if failed and not view.rolling_back:
            return [Abort(f"green fleet: {failed} of {view.replicas} instances failed")]
        return [Retire(s.host) for s in view.slots if s.old is HEALTHY and s.new is HEALTHY]
