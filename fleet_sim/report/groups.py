"""Runs grouped by what differs in their resolved configs (``Results.params``).

A group is the set of runs that share the value of every key in
``Results.params`` (they differ only by seed: replications). Its label names
the values, e.g. ``vm`` for ``hosting.mode = "vm"``, ``no batch`` for
``apps.batch.replicas = 0`` and ``key=value`` for anything else; a key whose
only values are 0 and one other replica count shows only the 0 ("no batch").
A group in which some app has 0 replicas while other groups run it is a
*no-neighbour baseline*: it comes first, and differences are taken against it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fleet_sim.report.style import mode_order
from fleet_sim.results import store
from fleet_sim.results.store import Results

#: the column :func:`with_groups` adds to a table
GROUP = "group"
_REPLICAS = re.compile(r"^apps\.([^.]+)\.replicas$")


@dataclass(frozen=True)
class Groups:
    """The groups of a set of runs: ``keys`` (the key paths that differ), the label of
    each run (``of_run``: run id → label), the labels in display order, and the label
    of the no-neighbour baseline (None if there is none)."""

    keys: list[str]
    of_run: dict[str, str]
    order: list[str]
    baseline: str | None = None
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    """label → the group's value of each key"""

    def describe(self) -> str:
        """'runs differ in: a, b' or 'all runs share one config'."""
        return (f"runs differ in: {', '.join(self.keys)}" if self.keys
                else "all runs share one config (they differ only by seed)")


def _zero_only(key: str, seen: list[Any]) -> bool:
    """A replica count whose values are 0 and one other: only the 0 is worth a word."""
    return bool(_REPLICAS.match(key)) and len(seen) == 2 and 0 in seen


def _label(values: Mapping[str, Any], seen: Mapping[str, list[Any]]) -> str:
    words = []
    for key, value in values.items():
        app = _REPLICAS.match(key)
        if key == "hosting.mode":
            words.append(str(value))
        elif app and value == 0:
            words.append(f"no {app.group(1)}")
        elif not _zero_only(key, seen[key]):
            words.append(f"{key}={value}")
    return ", ".join(words)


def _is_baseline(values: Mapping[str, Any], seen: Mapping[str, list[Any]]) -> bool:
    return any(_REPLICAS.match(k) and v == 0 and len(seen[k]) > 1 for k, v in values.items())


def groups(results: Results) -> Groups:
    """The groups of the successful runs of ``results`` (failed runs belong to none)."""
    keys = list(results.params)
    ok = [m for m in results.manifests if m.get("status") == store.OK]
    per_run = {m["run_id"]: store.run_values(m, keys) for m in ok}
    m_of = {m["run_id"]: m for m in ok}
    seen: dict[str, list[Any]] = {k: [] for k in keys}
    for values in per_run.values():
        for k, v in values.items():
            if v not in seen[k]:
                seen[k].append(v)
    of_run, by_label = {}, {}
    for run, values in per_run.items():
        # one config: name the runs by their hosting mode (its colour in the figures)
        label = _label(values, seen) or str(
            store.run_values(m_of[run], ["hosting.mode"])["hosting.mode"] or "all runs")
        of_run[run] = label
        by_label.setdefault(label, values)
    baselines = [lab for lab, v in by_label.items() if _is_baseline(v, seen)]
    modes = mode_order(str(v.get("hosting.mode")) for v in by_label.values())

    def rank(label: str) -> tuple:
        values = by_label[label]
        mode = str(values.get("hosting.mode"))
        return (label not in baselines, modes.index(mode) if mode in modes else 0,
                tuple(str(v) for v in values.values()))

    order = sorted(by_label, key=rank)
    return Groups(keys, of_run, order, baselines[0] if baselines else None, by_label)


def with_groups(frame: pd.DataFrame, grouping: Groups) -> pd.DataFrame:
    """``frame`` with a ``group`` column (an ordered categorical of the group labels)."""
    labels = frame["run_id"].map(grouping.of_run) if "run_id" in frame else "all runs"
    return frame.assign(**{GROUP: pd.Categorical(labels, categories=grouping.order,
                                                 ordered=True)})

