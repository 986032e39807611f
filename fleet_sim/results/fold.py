"""A run's ``summary`` and ``workload_summary``, folded over its tables chunk by chunk.

A run hands its tables over in chunks as it goes (one per progress step), so no table
need be in memory whole. Chunks of a series table come in time order (every row of a
chunk is at or after every row before it; one row per key and time); jobs come in any
order. The fold keeps, per key, the last row and the integrals so far; the fleet-wide
utilization is the sum over hosts, rebuilt as change points across chunks. Percentiles
are exact (not sketched): they take further passes over what a :class:`ChunkStore`
kept (:mod:`fleet_sim.numerics.quantiles`). The figures are the exact time-weighted
integrals of the change points over the statistics window (docs/model.md §9).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from fleet_sim.numerics.quantiles import quantiles, weighted_quantiles
from fleet_sim.results.schema import SUMMARY, WORKLOAD_SUMMARY
from fleet_sim.units import J_PER_KWH, MONTH_S

Window = tuple[float, float]
_CPU = {"demand_core_s": "demand_cores", "allocated_core_s": "allocated_cores",
        "throttled_core_s": "throttled_cores", "contention_core_s": "contention_cores"}
_JOB_COLUMNS = ["workload", "arrival", "finish", "response_time_s"]
_PIECES = "_utilization_pieces"


class ChunkStore(Protocol):
    """A run's table chunks, kept for another pass: in memory, or spooled to Parquet.
    Names starting with ``_`` are scratch data of the fold, not result tables."""

    def append(self, name: str, frame: pd.DataFrame) -> None:
        """Keep ``frame`` as the next chunk of table ``name``."""

    def chunks(self, name: str, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        """Every chunk of ``name`` kept so far, in order (only ``columns``)."""

    def tables(self) -> Mapping[str, pd.DataFrame | Path]:
        """The result tables kept (no scratch data), whole, by name."""


class MemoryStore:
    """A :class:`ChunkStore` holding its chunks as DataFrames."""

    def __init__(self) -> None:
        self.frames: dict[str, list[pd.DataFrame]] = {}

    def append(self, name: str, frame: pd.DataFrame) -> None:
        self.frames.setdefault(name, []).append(frame)

    def chunks(self, name: str, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        for frame in self.frames.get(name, []):
            yield frame[list(columns)]

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables, their categorical text columns (chunk keys) as strings."""
        out = {}
        for name, frames in self.frames.items():
            if not name.startswith("_"):
                frame = pd.concat(frames, ignore_index=True)
                out[name] = frame.astype({c: "str" for c in frame.columns
                                          if isinstance(frame[c].dtype, pd.CategoricalDtype)})
        return out


def _clip(t: np.ndarray | float, window: Window) -> np.ndarray:
    return np.clip(t, window[0], window[1])


class Integrals:
    """∫ over the window of each key's piecewise-constant ``columns`` (0 before its first
    row, its last value until the end), fed chunk by chunk in time order."""

    def __init__(self, key: Sequence[str], columns: Sequence[str], window: Window):
        self.key, self.columns, self.window = list(key), list(columns), window
        self.open: dict[tuple, tuple[float, np.ndarray]] = {}
        self.total: dict[tuple, np.ndarray] = {}
        self.first: dict[tuple, float] = {}

    def add(self, chunk: pd.DataFrame) -> None:
        """Fold in ``chunk`` (sorted by ``t``, rows at or after every earlier chunk's)."""
        if chunk.empty:
            return
        all_codes = _key_codes(chunk, self.key)
        # as a groupby would, a row with a missing key is no key's
        rows = np.flatnonzero(chunk[self.key].notna().all(axis=1).to_numpy())
        by_key = rows[np.argsort(all_codes[rows], kind="stable")]  # each key's rows in t order
        codes = all_codes[by_key]
        t = chunk["t"].to_numpy(float)[by_key]
        values = chunk[self.columns].to_numpy(float)[by_key]
        if not t.size:
            return
        new = np.r_[True, codes[1:] != codes[:-1]]  # a key's first row
        last = np.r_[new[1:], True]
        dur = np.where(last, 0.0, _clip(np.r_[t[1:], 0.0], self.window) - _clip(t, self.window))
        sums = np.add.reduceat(values * dur[:, None], np.flatnonzero(new), axis=0)
        firsts = np.flatnonzero(new)
        for row_key, t0, area in zip(_keys(chunk.iloc[by_key[firsts]], self.key),
                                     t[firsts].tolist(), sums, strict=True):
            self.first.setdefault(row_key, t0)
            opened = self.open.pop(row_key, None)
            if opened is not None:
                self._add(row_key, opened[1] * (_clip(t0, self.window)
                                                - _clip(opened[0], self.window)))
            self._add(row_key, area)
        lasts = np.flatnonzero(last)
        for row_key, t1, row in zip(_keys(chunk.iloc[by_key[lasts]], self.key),
                                    t[lasts].tolist(), values[lasts], strict=True):
            self.open[row_key] = (t1, row)

    def _add(self, key: tuple, area: np.ndarray) -> None:
        if key in self.total:
            self.total[key] = self.total[key] + area
        else:
            self.total[key] = np.asarray(area, float).copy()

    def result(self) -> pd.DataFrame:
        """One row per key: its integral of each column (value-units × s) and ``first_t``."""
        for key, (t1, row) in self.open.items():
            self._add(key, row * (self.window[1] - _clip(t1, self.window)))
        self.open = {}
        keys = list(self.first)
        frame = pd.DataFrame(keys, columns=self.key)
        areas = np.array([self.total.get(k, np.zeros(len(self.columns))) for k in keys])
        for i, c in enumerate(self.columns):
            frame[c] = areas[:, i] if len(keys) else []
        frame["first_t"] = [self.first[k] for k in keys]
        return frame


def _key_codes(frame: pd.DataFrame, key: Sequence[str]) -> np.ndarray:
    """An integer per row, equal for rows of equal key (categorical keys: from their
    codes, without grouping), in the smallest integer type that holds them."""
    columns = [frame[k] for k in key]
    if not all(isinstance(c.dtype, pd.CategoricalDtype) for c in columns):
        return small_codes(frame.groupby(list(key), sort=False, dropna=False).ngroup().to_numpy())
    codes = np.zeros(len(frame), dtype=np.int64)
    for c in columns:
        codes *= len(c.cat.categories) + 1
        codes += c.cat.codes.to_numpy() + 1  # NaN (code -1) is a key of its own
    return small_codes(codes)


def small_codes(codes: np.ndarray) -> np.ndarray:
    """``codes`` (integers >= 0) renumbered densely if need be, as int16 when there are
    few keys: a stable sort of 16-bit integers is a radix sort, 3x faster on long
    tables."""
    if codes.size and int(codes.max()) >= 2 ** 15:
        codes = pd.factorize(codes)[0]
    return codes.astype(np.int16 if not codes.size or int(codes.max()) < 2 ** 15
                        else np.int32)


def _keys(frame: pd.DataFrame, key: Sequence[str]) -> list[tuple]:
    return list(zip(*(frame[k].tolist() for k in key), strict=True))


class SumSeries:
    """Σ over keys of ``columns`` as change points, rebuilt chunk by chunk in time order.

    Each key's series is 0 before its first row and holds its last value; the running
    sum carries over from chunk to chunk (rounding below 0 is clipped in what comes
    out, not in what carries over)."""

    def __init__(self, key: Sequence[str], columns: Sequence[str]):
        self.key, self.columns = list(key), list(columns)
        self.last: dict[tuple, np.ndarray] = {}
        self.running = np.zeros(len(self.columns))

    def add(self, chunk: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The change points of the chunk (sorted by ``t``, one row per key and time):
        times, and one column of sums per column (several keys at one t: last wins).

        Each row adds its change from its key's previous value; one column at a time,
        so what it holds is a few arrays of the chunk's length."""
        n = len(chunk)
        codes = _key_codes(chunk, self.key)
        order = np.argsort(codes, kind="stable")  # each key's rows together, in time order
        prev_row = np.empty(n, dtype=np.int64)  # the key's previous row, or -1
        prev_row[order[1:]] = order[:-1]
        if n:
            prev_row[order[0]] = -1
        starts = np.flatnonzero(np.diff(codes[order]) != 0) + 1
        first_rows = order[np.r_[0, starts]] if n else order
        prev_row[first_rows] = -1
        last_rows = order[np.r_[starts - 1, n - 1]] if n else order
        zero = np.zeros(len(self.columns))
        before = np.array([self.last.get(k, zero) for k in _keys(chunk.iloc[first_rows],
                                                               self.key)]).reshape(-1, len(zero))
        t = chunk["t"].to_numpy(float)
        last = np.append(t[1:] != t[:-1], True) if t.size else np.zeros(0, dtype=bool)
        out = np.empty((int(last.sum()), len(self.columns)))
        ends = np.empty((len(last_rows), len(self.columns)))  # each key's last values
        for j, column in enumerate(self.columns):
            v = chunk[column].to_numpy(float)
            ends[:, j] = v[last_rows]
            diff = v - v[prev_row]  # rows without a previous one are set just below
            diff[first_rows] = v[first_rows] - before[:, j]
            if n:
                diff[0] += self.running[j]
            np.cumsum(diff, out=diff)
            if n:
                self.running[j] = diff[-1]
            out[:, j] = np.maximum(diff[last], 0.0)
        self.last.update(zip(_keys(chunk.iloc[last_rows], self.key), ends, strict=True))
        return t[last], out


class FleetUtilization:
    """The fleet's CPU utilization Σ used / Σ capacity over hosts, as change points
    rebuilt across chunks; its time-weighted mean, and pieces kept for percentiles."""

    def __init__(self, window: Window, store: ChunkStore):
        self.window, self.store = window, store
        self.sums = SumSeries(["host"], ["cpu_used_cores", "cpu_capacity_cores"])
        self.point: tuple[float, float] | None = None  # last fleet change (t, util)
        self.begin = math.nan
        self.area = self.length = 0.0
        self.lo, self.hi = math.inf, -math.inf

    def add(self, chunk: pd.DataFrame) -> None:
        """Fold in a ``hosts`` chunk (sorted by ``t``, one row per host and time)."""
        if chunk.empty:
            return
        if math.isnan(self.begin):
            self.begin = max(self.window[0], float(chunk["t"].iloc[0]))
        t, totals = self.sums.add(chunk)
        used, cap = totals[:, 0], totals[:, 1]
        util = np.divide(used, cap, out=np.zeros_like(used), where=cap > 0)
        if self.point is not None:
            t = np.concatenate([[self.point[0]], t])
            util = np.concatenate([[self.point[1]], util])
        self._pieces(t[:-1], t[1:], util[:-1])
        self.point = (float(t[-1]), float(util[-1]))

    def _pieces(self, t0: np.ndarray, t1: np.ndarray, util: np.ndarray) -> None:
        lo, hi = self.begin, self.window[1]
        dur = np.clip(t1, lo, hi) - np.clip(t0, lo, hi)
        keep = dur > 0
        dur, util = dur[keep], util[keep]
        if dur.size:
            self.area += float(np.sum(dur * util))
            self.length += float(np.sum(dur))
            self.lo, self.hi = min(self.lo, float(util.min())), max(self.hi, float(util.max()))
            self.store.append(_PIECES, pd.DataFrame({"util": util, "dur": dur}))

    def result(self) -> tuple[float, float]:
        """(time-weighted mean, time-weighted 99th percentile) over the window."""
        if self.point is not None:
            self._pieces(np.array([self.point[0]]), np.array([self.window[1]]),
                         np.array([self.point[1]]))
            self.point = None
        if self.length <= 0:
            return math.nan, math.nan

        def chunks():
            for c in self.store.chunks(_PIECES, ["util", "dur"]):
                yield (np.zeros(len(c), dtype=np.int64), c["util"].to_numpy(float),
                       c["dur"].to_numpy(float))

        mean = min(max(self.area / self.length, self.lo), self.hi)
        return mean, weighted_quantiles(chunks, [0.99])[0][0]


class JobFigures:
    """Counts, means and exact percentiles of the jobs that arrived in the window, per
    workload and for the whole run, folded over ``jobs`` chunks in any order."""

    def __init__(self, window: Window, store: ChunkStore):
        self.window, self.store = window, store
        self.sums: dict[str, np.ndarray] = {}  # workload → arrived, finished, Σ rt, Σ sd, n sd
        self.names: set[str] = set()  # every workload with jobs, in the window or not

    def _in_window(self, chunk: pd.DataFrame) -> pd.DataFrame:
        start, end = self.window
        return chunk[(chunk["arrival"] >= start) & (chunk["arrival"] <= end)]

    def add(self, chunk: pd.DataFrame) -> None:
        """Fold in a ``jobs`` chunk (with ``response_time_s`` and ``slowdown``)."""
        self.names.update(chunk["workload"].unique().tolist())
        chunk = self._in_window(chunk)
        if chunk.empty:
            return
        done = chunk["finish"].notna()
        frame = pd.DataFrame({
            "workload": chunk["workload"], "arrived": 1.0, "finished": done.astype(float),
            "rt": chunk["response_time_s"].where(done, 0.0),
            "sd": chunk["slowdown"].where(done & chunk["slowdown"].notna(), 0.0),
            "n_sd": (done & chunk["slowdown"].notna()).astype(float)})
        for name, row in frame.groupby("workload", sort=False).sum().iterrows():
            got = row.to_numpy(float)
            self.sums[name] = self.sums[name] + got if name in self.sums else got

    def result(self) -> dict[str | None, dict[str, float]]:
        """workload (None: all) → jobs_arrived, jobs_finished, response_time_mean_s,
        response_time_p50_s, response_time_p99_s, slowdown_mean."""

        names = sorted(self.names)

        def chunks(overall: bool):
            def gen():
                for c in self.store.chunks("jobs", _JOB_COLUMNS):
                    c = self._in_window(c)
                    c = c[c["finish"].notna()]
                    group = (np.zeros(len(c), dtype=np.int64) if overall else
                             pd.Categorical(c["workload"], categories=names).codes.astype(
                                 np.int64))
                    yield group, c["response_time_s"].to_numpy(float)
            return gen

        qs = [0.5, 0.99]
        per = {names[code]: q for code, q in quantiles(chunks(False), qs).items()}
        total = quantiles(chunks(True), qs).get(0, [math.nan, math.nan])
        out: dict[str | None, dict[str, float]] = {}
        all_sums = sum(self.sums.values(), np.zeros(5))
        zero = np.zeros(5)
        for name, sums in [*((n, self.sums.get(n, zero)) for n in sorted(self.names)),
                           (None, all_sums)]:
            arrived, finished, rt, sd, n_sd = sums
            q = total if name is None else per.get(name, [math.nan, math.nan])
            out[name] = {
                "jobs_arrived": arrived, "jobs_finished": finished,
                "response_time_mean_s": rt / finished if finished else math.nan,
                "response_time_p50_s": q[0] if finished else math.nan,
                "response_time_p99_s": q[1] if finished else math.nan,
                "slowdown_mean": sd / n_sd if n_sd else math.nan}
        return out


_HOST_FIGURES = ("cpu_utilization_mean", "cpu_utilization_p99", "host_utilization_max",
                 "energy_kwh", "hosts_on_mean")
_JOB_FIGURES = ("jobs_arrived", "jobs_finished", "response_time_mean_s", "response_time_p50_s",
                "response_time_p99_s", "slowdown_mean")


class RunSummary:
    """Folds a run's recorded tables into its ``summary`` and ``workload_summary``.

    ``recorded``: the tables the run records (a figure of a table not recorded is
    NaN); ``window``: (warmup_s, duration_s); ``store``: where chunks are kept for
    the percentiles' further passes."""

    def __init__(self, recorded: Sequence[str], window: Window, store: ChunkStore):
        self.recorded, self.window = set(recorded), window
        self.power_nan = False
        self.hosts = Integrals(["host"], ["cpu_utilization", "power_w", "on"], window)
        self.fleet = FleetUtilization(window, store)
        self.workloads = Integrals(["workload", "host", "instance"], list(_CPU.values()), window)
        self.jobs = JobFigures(window, store)
        self.events = 0

    def add(self, name: str, chunk: pd.DataFrame) -> None:
        """Fold in a chunk of table ``name`` (conforming to the schema)."""
        if name == "hosts":
            self.power_nan = self.power_nan or bool(chunk["power_w"].isna().any())
            # a host counts as on while it draws power (without a power curve: NaN, on)
            self.hosts.add(chunk.assign(on=(chunk["power_w"] != 0.0).astype(float),
                                        power_w=chunk["power_w"].fillna(0.0)))
            self.fleet.add(chunk)
        elif name == "workloads":
            self.workloads.add(chunk)
        elif name == "jobs":
            self.jobs.add(chunk)
        elif name == "events":
            self.events += len(chunk)

    def tables(self, fleet: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(``summary``, ``workload_summary``) of the run on ``fleet`` (the inventory)."""
        from fleet_sim.results.tables import conform, empty

        start, end = self.window
        row: dict[str, float] = {
            "duration_s": end, "window_s": end - start, "hosts": float(len(fleet)),
            "cpu_capacity_cores": float(fleet["cores"].sum()),
            "cost_usd": float(fleet["monthly_cost_usd"].sum()) * (end - start) / MONTH_S}
        row |= self._host_figures()
        cpu = self.workloads.result() if "workloads" in self.recorded else None
        row |= _cpu_figures(cpu)
        jobs = self.jobs.result() if "jobs" in self.recorded else None
        row |= (jobs or {}).get(None) or _no_jobs(jobs is None)
        row["lifecycle_events"] = float(self.events) if "events" in self.recorded else math.nan
        row |= dict.fromkeys(("migrations", "slatah", "pdm", "slav", "host_shutdowns"),
                             math.nan)  # filled in by a [traces] run
        summary = conform(pd.DataFrame([row]), SUMMARY)
        by_name = {} if cpu is None else {n: g for n, g in cpu.groupby("workload", sort=False)}
        names = sorted(by_name.keys() | {n for n in (jobs or {}) if n is not None})
        if not names:
            return summary, empty(WORKLOAD_SUMMARY)
        rows = []
        for name in names:
            w: dict[str, object] = {"workload": name}
            w |= _cpu_figures(None if cpu is None else by_name.get(name, cpu.iloc[:0]))
            figures = (jobs or {}).get(name) or _no_jobs(jobs is None)
            w |= {k: figures[k] for k in ("jobs_finished", "response_time_p50_s",
                                          "response_time_p99_s", "slowdown_mean")}
            rows.append(w)
        return summary, conform(pd.DataFrame(rows), WORKLOAD_SUMMARY)

    def _host_figures(self) -> dict[str, float]:
        if "hosts" not in self.recorded or not self.hosts.first:
            return dict.fromkeys(_HOST_FIGURES, math.nan)
        start, end = self.window
        per_host = self.hosts.result()
        mean, p99 = self.fleet.result()
        span = end - np.maximum(start, per_host["first_t"].to_numpy(float))
        live = per_host["first_t"].to_numpy(float) < end
        means = per_host["cpu_utilization"].to_numpy(float)[live] / span[live]
        energy = math.nan if self.power_nan else float(per_host["power_w"].sum()) / J_PER_KWH
        return {"cpu_utilization_mean": mean, "cpu_utilization_p99": p99,
                "host_utilization_max": float(means.max()) if means.size else math.nan,
                "energy_kwh": energy,
                "hosts_on_mean": float(per_host["on"].sum()) / (end - start)
                if end > start else math.nan}


def _cpu_figures(per_key: pd.DataFrame | None) -> dict[str, float]:
    if per_key is None:
        return dict.fromkeys((*_CPU, "unmet_core_s", "satisfied_fraction"), math.nan)
    out = {figure: float(per_key[column].sum()) for figure, column in _CPU.items()}
    out["unmet_core_s"] = max(0.0, out["demand_core_s"] - out["allocated_core_s"])
    out["satisfied_fraction"] = (out["allocated_core_s"] / out["demand_core_s"]
                                 if out["demand_core_s"] > 0 else math.nan)
    return out


def _no_jobs(unrecorded: bool) -> dict[str, float]:
    if unrecorded:
        return dict.fromkeys(_JOB_FIGURES, math.nan)
    return {"jobs_arrived": 0.0, "jobs_finished": 0.0} | dict.fromkeys(_JOB_FIGURES[2:], math.nan)
