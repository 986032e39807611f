"""Recorded columns → tidy DataFrames conforming to :mod:`fleet_sim.results.schema`.

Built chunk by chunk as a run goes (docs/model.md §9): :class:`RunTables` turns each
chunk of recorded columns into a conformed frame. Series tables keep only the last
row of each (key, t) — the model may record several changes at one instant — and are
sorted by time (chunks come in time order). Jobs gain ``response_time_s`` and
``slowdown`` and are sorted by arrival within a chunk. The ``summary`` (one row per
run) and ``workload_summary`` (one row per workload name) are folded over the chunks
(:mod:`fleet_sim.results.fold`): exact time-weighted integrals of the change points
over the statistics window ``[warmup_s, duration_s]`` and exact percentiles.

:func:`replication_summary` condenses many runs into a mean and a 95 % Student-t
confidence half-width per metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fleet_sim.numerics import timeweighted
from fleet_sim.numerics.power import LinearPower, TablePower
from fleet_sim.results.fold import ChunkStore, MemoryStore, RunSummary, SumSeries
from fleet_sim.results.schema import FLEET, STR, TABLES, Table

PowerModel = LinearPower | TablePower

#: tables computed here rather than recorded
DERIVED = ("fleet", "summary", "workload_summary")


def conform(frame: pd.DataFrame, table: Table, categories: bool = False) -> pd.DataFrame:
    """``frame`` with exactly ``table``'s columns, in order, with its dtypes; with
    ``categories``, text columns that are categoricals stay so (a chunk's keys: their
    strings are made once, where the chunk is written or put together).

    Raises ValueError naming the missing or unknown columns.
    """
    missing = [c for c in table.names if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in table.names]
    if missing or unknown:
        raise ValueError(f"table {table.name!r}: missing columns {missing}, unknown {unknown} "
                         f"(schema: {list(table.names)})")
    dtypes = table.dtypes()
    if categories:
        dtypes = {c: d for c, d in dtypes.items()
                  if not (d == STR and isinstance(frame[c].dtype, pd.CategoricalDtype))}
    out = frame.loc[:, list(table.names)].astype(dtypes)
    return out.reset_index(drop=True)


def empty(table: Table) -> pd.DataFrame:
    """A frame with ``table``'s columns and no rows."""
    return conform(pd.DataFrame({c: [] for c in table.names}), table)


def _frame(columns: Mapping[str, Sequence]) -> pd.DataFrame:
    return pd.DataFrame({name: col if isinstance(col, list | pd.Categorical) else np.array(col)
                         for name, col in columns.items()})


def last_per_key_and_t(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    """Keep the last row of each (key, t), sorted by t (stable: recorded order within t).

    Only rows sharing their t with a neighbour once sorted can repeat a (key, t), so
    only those are compared (a chunk's times are mostly distinct)."""
    t = frame["t"].to_numpy(float)
    if t.size > 1 and not bool(np.all(t[1:] >= t[:-1])):
        order = np.argsort(t, kind="stable")
        frame, t = frame.take(order), t[order]
    frame = frame.reset_index(drop=True)
    same = t[1:] == t[:-1]
    if not key or not same.any():
        return frame
    shared = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
    repeated = frame.iloc[shared].duplicated(subset=[*key, "t"], keep="last").to_numpy()
    if not repeated.any():
        return frame
    return frame.drop(index=shared[repeated]).reset_index(drop=True)


def _power_w(hosts: pd.DataFrame, power: Mapping[str, PowerModel | None]) -> np.ndarray:
    """Each row's power (W) from its host's model at its utilization (NaN without one)."""
    models = list({id(m): m for m in power.values() if m is not None}.values())
    util = hosts["cpu_utilization"].to_numpy(float)
    out = np.full(len(hosts), math.nan)
    if not models:
        return out
    model_of = {h: models.index(m) for h, m in power.items() if m is not None}
    host = hosts["host"]
    if isinstance(host.dtype, pd.CategoricalDtype):  # one look-up per host, not per row
        # code -1 (no host) takes the NaN appended last
        of_code = np.array([*(model_of.get(h, math.nan) for h in host.cat.categories),
                            math.nan], float)
        which = of_code[host.cat.codes.to_numpy()]
    else:
        which = host.map(model_of).to_numpy(float)  # NaN for a host without a model
    for i, model in enumerate(models):
        rows = which == i
        out[rows] = model.power_w_array(util[rows])
    return out


def _jobs(frame: pd.DataFrame, speed_by_host: Mapping[str, float]) -> pd.DataFrame:
    frame = frame.sort_values("arrival", kind="stable", ignore_index=True)
    frame["response_time_s"] = frame["finish"] - frame["arrival"]
    speed = frame["host"].map(dict(speed_by_host)).astype(float)
    ideal_s = frame["work_core_s"] / (frame["max_cores"] * speed)
    frame["slowdown"] = (frame["response_time_s"] / ideal_s).where(ideal_s > 0)
    return frame


class RunTables:
    """A run's tables built chunk by chunk as it goes: each chunk of recorded columns
    becomes a conformed frame kept in ``store`` and folded into the summaries.

    ``recorded``: the tables the run records; ``fleet``: the host inventory (schema
    table ``fleet``); ``window``: the statistics window (warmup_s, duration_s);
    ``power``: each host's power model (anything with ``power_w_array(util)``, or
    None), which gives ``power_w`` to hosts chunks recorded without it (NaN for a
    host without one). Chunks of a series table must come in time order (see
    :mod:`fleet_sim.results.fold`).
    """

    def __init__(self, recorded: Iterable[str], fleet: pd.DataFrame, window: tuple[float, float],
                 store: ChunkStore, power: Mapping[str, PowerModel | None] | None = None):
        self.recorded = list(recorded)
        for name in self.recorded:
            if TABLES.get(name) is None or name in DERIVED:
                raise ValueError(f"no schema for recorded table {name!r}; "
                                 "add it to results/schema.py")
        self.fleet = conform(fleet, FLEET)
        self.speed = dict(zip(self.fleet["host"], self.fleet["speed"], strict=True))
        self.store = store
        self.fold = RunSummary(self.recorded, window, store)
        self.until: dict[str, float] = {}  # the last time of each series table so far
        self.power = dict(power or {})

    def add(self, name: str, columns: Mapping[str, Sequence]) -> None:
        """Add a chunk of table ``name``'s recorded ``columns`` (nothing if it has no rows)."""
        if name not in self.recorded or not columns or not len(next(iter(columns.values()))):
            return
        table = TABLES[name]
        frame = _frame(columns)
        if name == "hosts":
            frame["cpu_utilization"] = frame["cpu_used_cores"] / frame["cpu_capacity_cores"]
            if "power_w" not in frame.columns:
                frame["power_w"] = _power_w(frame, self.power)
            if "power_state_w" in frame.columns:  # a host off or booting draws that
                state = frame.pop("power_state_w").to_numpy(float)
                held = ~np.isnan(state)
                if held.any():
                    frame.loc[held, "power_w"] = state[held]
        if name == "jobs":
            frame = _jobs(frame, self.speed)
        elif "t" in frame.columns:
            frame = last_per_key_and_t(frame, table.key)
            t0, t1 = float(frame["t"].iloc[0]), float(frame["t"].iloc[-1])
            if t0 < self.until.get(name, -math.inf):
                raise RuntimeError(f"table {name!r}: a chunk starts at t={t0!r}, before the "
                                   f"previous one ended ({self.until[name]!r})")
            self.until[name] = t1
        frame = conform(frame, table, categories=True)
        self.store.append(name, frame)
        self.fold.add(name, frame)

    def tables(self) -> dict[str, pd.DataFrame | Path]:
        """Every table, once the last chunk is in: the recorded ones as the store keeps
        them (DataFrames, or Parquet files of a spool; empty ones with their columns),
        then ``fleet``, ``summary`` and ``workload_summary``."""
        summary, per_workload = self.fold.tables(self.fleet)
        kept = self.store.tables()
        recorded = {n: kept.get(n, empty(TABLES[n])) for n in self.recorded}
        return recorded | {"fleet": self.fleet, "summary": summary,
                           "workload_summary": per_workload}


def build_tables(data: Mapping[str, Mapping[str, Sequence]], recorded: Iterable[str],
                 fleet: pd.DataFrame, duration_s: float, warmup_s: float = 0.0,
                 power: Mapping[str, PowerModel | None] | None = None
                 ) -> dict[str, pd.DataFrame]:
    """All tables of one run from its recorded columns held in memory, as one chunk.

    ``data``: the recorder's columns by table (``ChangePointRecorder.data``);
    ``recorded``: the tables the run recorded (those without rows come out empty);
    ``fleet``: the host inventory (schema table ``fleet``); ``duration_s`` and
    ``warmup_s``: the statistics window (s); ``power``: each host's power model
    (see :class:`RunTables`).
    """
    store = MemoryStore()
    run = RunTables(recorded, fleet, (float(warmup_s), float(duration_s)), store, power)
    for name in run.recorded:
        run.add(name, data.get(name) or {})
    return run.tables()


# ---------------------------------------------------------------- time-weighted figures
def sum_series(frame: pd.DataFrame, key: Sequence[str], column: str) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """The change points of Σ over keys of ``column`` (each key's series is 0 before
    its first row). ``frame`` must hold one row per (key, t), sorted by t, and the
    column non-negative values (rounding below 0 in the running sum is clipped)."""
    t, totals = SumSeries(key, [column]).add(frame)
    return t, totals[:, 0]


# ---------------------------------------------------------------- across replications
def replication_summary(frame: pd.DataFrame, by: Sequence[str],
                        metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and 95 % confidence half-width of each metric across replications.

    ``frame``: one row per run (e.g. concatenated ``summary`` tables) with the
    columns ``by`` (swept parameters, workload …) and the metrics (default: every
    float column not in ``by``). Returns one row per group and metric with
    columns ``*by, metric, n, mean, ci95`` (``ci95`` is the half-width: the
    interval is mean ± ci95; NaN with fewer than 2 runs). NaN samples are skipped.
    """
    by = list(by)
    if metrics is None:
        metrics = [c for c in frame.columns
                   if c not in by and pd.api.types.is_float_dtype(frame[c])]
    rows = []
    groups = frame.groupby(by, sort=False, dropna=False) if by else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for metric in metrics:
            x = group[metric].to_numpy(float)
            x = x[np.isfinite(x)]
            mean, half = timeweighted.mean_ci(x) if x.size else (math.nan, math.nan)
            rows.append((*key, metric, int(x.size), mean, half))
    return pd.DataFrame(rows, columns=[*by, "metric", "n", "mean", "ci95"])
