"""Policies by name: scenario files choose them with kebab-case strings.

Each family is a table of name -> factory; :func:`lookup` turns an unknown name
into an error that lists the valid ones. Add a family (placement, autoscaling)
with its own table and a one-line builder like :func:`rollout_strategy`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fleet_sim.model.protocols import RolloutStrategy
from fleet_sim.policies.consolidation import OVERLOAD_DETECTORS, VM_SELECTIONS, Consolidation
from fleet_sim.policies.placement import BestFit, FirstFit, WorstFit
from fleet_sim.policies.rollout import AllAtOnce, Batches, BlueGreen, Canary, Rolling

T = TypeVar("T")


def lookup(family: str, table: Mapping[str, T], name: str) -> T:
    """The entry ``name`` of ``table``. Raises ValueError listing the valid names."""
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {family} {name!r}; valid names: "
                         f"{', '.join(sorted(table))}") from None


def _canary(fraction: float, then: Mapping[str, Any] | None = None) -> Canary:
    """Canary whose ``then`` is given by name and parameters, e.g. ``{"name": "rolling"}``."""
    if then is None:
        return Canary(fraction)
    params = dict(then)
    if "name" not in params:
        raise ValueError(f"canary 'then' needs a strategy 'name', got {dict(then)!r}")
    return Canary(fraction, then=rollout_strategy(params.pop("name"), **params))


ROLLOUT_STRATEGIES: Mapping[str, Callable[..., RolloutStrategy]] = {
    "all-at-once": AllAtOnce,
    "rolling": Rolling,
    "batches": Batches,
    "canary": _canary,
    "blue-green": BlueGreen,
}


def rollout_strategy(name: str, **params: Any) -> RolloutStrategy:
    """Build the rollout strategy ``name`` with ``params`` (e.g. ``max_surge="25%"``)."""
    return lookup("rollout strategy", ROLLOUT_STRATEGIES, name)(**params)


PLACEMENT_POLICIES: Mapping[str, Callable[..., Any]] = {
    "first-fit": FirstFit,
    "best-fit": BestFit,
    "worst-fit": WorstFit,
}


def placement_policy(name: str, **params: Any) -> Any:
    """Build the placement policy ``name`` (``first-fit``, ``best-fit``, ``worst-fit``)."""
    return lookup("placement policy", PLACEMENT_POLICIES, name)(**params)


def consolidation_policy(name: str, threshold: float | None = None) -> Consolidation:
    """Build ``<detector>-<selection>`` (e.g. ``thr-mmt``, ``lr-mc``): detector ``thr``,
    ``iqr``, ``mad``, ``lr`` or ``lrr``, selection ``mmt``, ``mc``, ``mu`` or ``rs``;
    ``threshold``: the detector's parameter (THR's threshold, the others' safety
    parameter), its default if None."""
    detector, sep, selection = name.partition("-")
    if not sep:
        raise ValueError(f"unknown consolidation policy {name!r}; valid names: "
                         f"<detector>-<selection>, detector one of "
                         f"{', '.join(sorted(OVERLOAD_DETECTORS))}, selection one of "
                         f"{', '.join(sorted(VM_SELECTIONS))} (e.g. thr-mmt)")
    make_detector = lookup("overload detector", OVERLOAD_DETECTORS, detector)
    make_selection = lookup("VM selection policy", VM_SELECTIONS, selection)
    return Consolidation(make_detector() if threshold is None else make_detector(threshold),
                         make_selection())
