"""Recorded columns → tidy DataFrames conforming to :mod:`fleet_sim.results.schema`.

Built once, at the end of a run (docs/model.md §9). Series tables keep only the last row
of each (key, t) — the model may record several changes at one instant — and are
sorted by time. Jobs gain ``response_time_s`` and ``slowdown``. The ``summary``
(one row per run) and ``workload_summary`` (one row per workload name) tables are
exact time-weighted integrals of the change points over the statistics window
``[warmup_s, duration_s]`` (:mod:`fleet_sim.numerics.timeweighted`).

:func:`replication_summary` condenses many runs into a mean and a 95 % Student-t
confidence half-width per metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from fleet_sim.numerics import timeweighted
from fleet_sim.results.schema import FLEET, SUMMARY, TABLES, WORKLOAD_SUMMARY, Table
from fleet_sim.units import J_PER_KWH, MONTH_S

#: tables computed here rather than recorded
DERIVED = ("fleet", "summary", "workload_summary")


def conform(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """``frame`` with exactly ``table``'s columns, in order, with its dtypes.

    Raises ValueError naming the missing or unknown columns.
    """
    missing = [c for c in table.names if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in table.names]
    if missing or unknown:
        raise ValueError(f"table {table.name!r}: missing columns {missing}, unknown {unknown} "
                         f"(schema: {list(table.names)})")
    out = frame.loc[:, list(table.names)].astype(table.dtypes())
    return out.reset_index(drop=True)


def empty(table: Table) -> pd.DataFrame:
    """A frame with ``table``'s columns and no rows."""
    return conform(pd.DataFrame({c: [] for c in table.names}), table)


def _frame(columns: Mapping[str, Sequence]) -> pd.DataFrame:
    return pd.DataFrame({name: np.array(col) if not isinstance(col, list) else col
                         for name, col in columns.items()})


def _last_per_key_and_t(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    """Keep the last row of each (key, t), sorted by t (stable: recorded order within t)."""
    if key:
        frame = frame.drop_duplicates(subset=[*key, "t"], keep="last")
    return frame.sort_values("t", kind="stable", ignore_index=True)


def _jobs(frame: pd.DataFrame, speed_by_host: Mapping[str, float]) -> pd.DataFrame:
    frame = frame.sort_values("arrival", kind="stable", ignore_index=True)
    frame["response_time_s"] = frame["finish"] - frame["arrival"]
    speed = frame["host"].map(dict(speed_by_host)).astype(float)
    ideal_s = frame["work_core_s"] / (frame["max_cores"] * speed)
    frame["slowdown"] = (frame["response_time_s"] / ideal_s).where(ideal_s > 0)
    return frame


def build_tables(data: Mapping[str, Mapping[str, Sequence]], recorded: Iterable[str],
                 fleet: pd.DataFrame, duration_s: float,
                 warmup_s: float = 0.0) -> dict[str, pd.DataFrame]:
    """All tables of one run.

    ``data``: the recorder's columns by table (``ChangePointRecorder.data``);
    ``recorded``: the tables the run recorded (those without rows come out empty);
    ``fleet``: the host inventory (schema table ``fleet``); ``duration_s`` and
    ``warmup_s``: the statistics window (s).
    """
    fleet = conform(fleet, FLEET)
    out: dict[str, pd.DataFrame] = {}
    for name in recorded:
        table = TABLES.get(name)
        if table is None or name in DERIVED:
            raise ValueError(f"no schema for recorded table {name!r}; add it to results/schema.py")
        cols = data.get(name)
        if not cols or not len(next(iter(cols.values()))):
            out[name] = empty(table)
            continue
        frame = _frame(cols)
        if name == "hosts":
            frame["cpu_utilization"] = frame["cpu_used_cores"] / frame["cpu_capacity_cores"]
        if name == "jobs":
            frame = _jobs(frame, dict(zip(fleet["host"], fleet["speed"], strict=True)))
        elif "t" in frame.columns:
            frame = _last_per_key_and_t(frame, table.key)
        out[name] = conform(frame, table)
    out["fleet"] = fleet
    window = (float(warmup_s), float(duration_s))
    out["summary"] = summary(out, window)
    out["workload_summary"] = workload_summary(out, window)
    return out


# ---------------------------------------------------------------- time-weighted figures
def sum_series(frame: pd.DataFrame, key: Sequence[str], column: str) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """The change points of Σ over keys of ``column`` (each key's series is 0 before
    its first row). ``frame`` must hold one row per (key, t), sorted by t, and the
    column non-negative values (rounding below 0 in the running sum is clipped)."""
    prev = frame.groupby(list(key), sort=False)[column].shift(fill_value=0.0)
    total = np.maximum((frame[column] - prev).cumsum().to_numpy(float), 0.0)
    t = frame["t"].to_numpy(float)
    last = np.append(t[1:] != t[:-1], True)  # several keys change at one t: last wins
    return t[last], total[last]


def _integral(t: np.ndarray, v: np.ndarray, window: tuple[float, float]) -> float:
    if t.size == 0:
        return 0.0
    start, end = window
    if t[0] >= end:
        return 0.0
    return timeweighted.integral(t, v, end, max(start, float(t[0])))


def _host_figures(hosts: pd.DataFrame | None, window: tuple[float, float]) -> dict[str, float]:
    names = ("cpu_utilization_mean", "cpu_utilization_p99", "host_utilization_max", "energy_kwh")
    if hosts is None or hosts.empty:
        return dict.fromkeys(names, math.nan)
    start, end = window
    t, used = sum_series(hosts, ("host",), "cpu_used_cores")
    _, capacity = sum_series(hosts, ("host",), "cpu_capacity_cores")
    util = np.divide(used, capacity, out=np.zeros_like(used), where=capacity > 0)
    begin = max(start, float(t[0]))
    per_host = [timeweighted.mean(g["t"].to_numpy(), g["cpu_utilization"].to_numpy(), end,
                                  max(start, float(g["t"].iloc[0])))
                for _, g in hosts.groupby("host", sort=False) if g["t"].iloc[0] < end]
    energy_kwh = math.nan  # a host without a power model records NaN power
    if hosts["power_w"].notna().all():
        t_p, power = sum_series(hosts, ("host",), "power_w")
        energy_kwh = _integral(t_p, power, window) / J_PER_KWH
    return {
        "cpu_utilization_mean": timeweighted.mean(t, util, end, begin),
        "cpu_utilization_p99": float(timeweighted.percentile(t, util, 0.99, end, begin)),
        "host_utilization_max": max(per_host),
        "energy_kwh": energy_kwh,
    }


_CPU_FIGURES = {"demand_core_s": "demand_cores", "allocated_core_s": "allocated_cores",
                "throttled_core_s": "throttled_cores", "contention_core_s": "contention_cores"}
_KEY = ("workload", "host", "instance")


def _cpu_figures(workloads: pd.DataFrame | None,
                 window: tuple[float, float]) -> dict[str, float]:
    if workloads is None:
        return dict.fromkeys((*_CPU_FIGURES, "unmet_core_s", "satisfied_fraction"), math.nan)
    out = {}
    for figure, column in _CPU_FIGURES.items():
        t, v = sum_series(workloads, _KEY, column) if len(workloads) else ((), ())
        out[figure] = _integral(np.asarray(t, float), np.asarray(v, float), window)
    out["unmet_core_s"] = max(0.0, out["demand_core_s"] - out["allocated_core_s"])
    out["satisfied_fraction"] = (out["allocated_core_s"] / out["demand_core_s"]
                                 if out["demand_core_s"] > 0 else math.nan)
    return out


def _job_figures(jobs: pd.DataFrame | None, window: tuple[float, float]) -> dict[str, float]:
    names = ("jobs_arrived", "jobs_finished", "response_time_mean_s", "response_time_p50_s",
             "response_time_p99_s", "slowdown_mean")
    if jobs is None:
        return dict.fromkeys(names, math.nan)
    start, end = window
    jobs = jobs[(jobs["arrival"] >= start) & (jobs["arrival"] <= end)]
    done = jobs[jobs["finish"].notna()]
    resp = done["response_time_s"].to_numpy(float)
    has = resp.size > 0
    return {
        "jobs_arrived": float(len(jobs)),
        "jobs_finished": float(len(done)),
        "response_time_mean_s": float(resp.mean()) if has else math.nan,
        "response_time_p50_s": float(np.quantile(resp, 0.5)) if has else math.nan,
        "response_time_p99_s": float(np.quantile(resp, 0.99)) if has else math.nan,
        "slowdown_mean": float(done["slowdown"].mean()) if has else math.nan,
    }


def summary(tables: Mapping[str, pd.DataFrame], window: tuple[float, float]) -> pd.DataFrame:
    """The one-row ``summary`` table of a run over ``window`` = (warmup_s, duration_s)."""
    start, end = window
    fleet = tables["fleet"]
    row: dict[str, float] = {
        "duration_s": end,
        "window_s": end - start,
        "hosts": float(len(fleet)),
        "cpu_capacity_cores": float(fleet["cores"].sum()),
        "cost_usd": float(fleet["monthly_cost_usd"].sum()) * (end - start) / MONTH_S,
    }
    row |= _host_figures(tables.get("hosts"), window)
    row |= _cpu_figures(tables.get("workloads"), window)
    row |= _job_figures(tables.get("jobs"), window)
    events = tables.get("events")
    row["lifecycle_events"] = math.nan if events is None else float(len(events))
    return conform(pd.DataFrame([row]), SUMMARY)


def _by_workload(frame: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    if frame is None:
        return {}
    return {str(name): group for name, group in frame.groupby("workload", sort=False)}


def workload_summary(tables: Mapping[str, pd.DataFrame],
                     window: tuple[float, float]) -> pd.DataFrame:
    """One row per workload name (all its hosts and instances together) over ``window``."""
    workloads, jobs = tables.get("workloads"), tables.get("jobs")
    series = _by_workload(workloads)
    job_groups = _by_workload(jobs)
    rows = []
    for name in sorted(series.keys() | job_groups.keys()):
        row: dict[str, object] = {"workload": name}
        wl = None if workloads is None else series.get(name, workloads.iloc[:0])
        row |= _cpu_figures(wl, window)
        figures = _job_figures(None if jobs is None else job_groups.get(name, jobs.iloc[:0]),
                               window)
        row |= {k: figures[k] for k in ("jobs_finished", "response_time_p50_s",
                                        "response_time_p99_s", "slowdown_mean")}
        rows.append(row)
    if not rows:
        return empty(WORKLOAD_SUMMARY)
    return conform(pd.DataFrame(rows), WORKLOAD_SUMMARY)


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
