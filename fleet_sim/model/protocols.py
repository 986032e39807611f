"""The seams through which the model calls what lives in higher layers.

The model defines these Protocols; ``results`` and ``policies`` implement them and
``scenarios.build`` injects the implementations (dependency inversion).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from fleet_sim.model.views import FleetView, PlacementRequest, RolloutAction, RolloutView

Appender = Callable[..., None]
SeriesWriter = Callable[[tuple[float, ...]], None]


class Recorder(Protocol):
    """Where the model writes change points and events (docs/model.md §9)."""

    def wants(self, table: str) -> bool:
        """Whether the run records ``table``."""
        ...

    def columns(self, table: str, names: Sequence[str]) -> Appender | None:
        """An ``append(*values)`` for rows of ``table`` with these column names,
        or None when the run does not record that table (so hot paths skip it)."""
        ...

    def series(self, table: str, names: Sequence[str],
               key: Mapping[str, object]) -> SeriesWriter | None:
        """A ``write(values)`` for the change points of one key of ``table``: the
        columns in ``key`` are fixed, ``values`` holds the others' numbers in
        ``names`` order; None when the run does not record that table."""
        ...

    def event(self, t: float, kind: str, entity: str, detail: str = "",
              **fields: str | float) -> None:
        """Record a discrete event (``oom_kill``, ``boot``, ``host_failure``...) with
        typed ``fields`` (``host``, ``kernel``, ``cpu_cores``, ``ram_mib``,
        ``duration_s``, ``count``) and free-text ``detail``."""
        ...


class NullRecorder:
    """A recorder that keeps nothing (for quick experiments and benchmarks)."""

    def wants(self, table: str) -> bool:
        return False

    def columns(self, table: str, names: Sequence[str]) -> Appender | None:
        return None

    def series(self, table: str, names: Sequence[str],
               key: Mapping[str, object]) -> SeriesWriter | None:
        return None

    def event(self, t: float, kind: str, entity: str, detail: str = "",
              **fields: str | float) -> None:
        return None


class RolloutStrategy(Protocol):
    """Decides what a rollout does next (implemented in ``policies.rollout``)."""

    def next_actions(self, view: RolloutView) -> Sequence[RolloutAction]:
        """The actions to take now, given the fleet's state; empty means wait."""
        ...


class PlacementPolicy(Protocol):
    """Chooses a host for a request (implemented in ``policies.placement``)."""

    def place(self, request: PlacementRequest, fleet: FleetView,
              rng: np.random.Generator) -> str | None:
        """The name of a host that fits ``request``, or None if none does."""
        ...
