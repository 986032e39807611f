"""Figures a fleet engineer expects, drawn from the result tables.

Every function takes DataFrames as :func:`fleet_sim.load` or :func:`fleet_sim.run`
return them (one run, or many runs concatenated with ``run_id``, ``seed``,
``replication`` and swept-parameter columns), draws on ``ax`` (a new figure if
None) and returns the Axes. Nothing is computed that the tables do not hold,
except time-weighted aggregation of change points through
:mod:`fleet_sim.numerics.timeweighted` (and sums over hosts or instances through
:class:`fleet_sim.results.fold.SumSeries`). :func:`plotted` gives the numbers
behind any figure drawn here, in the tables' units, for tests and notebooks.

Figures compare hosting modes where they can: ``by="mode"`` groups rows by the
``mode`` column (or ``hosting.mode`` when the mode is a swept parameter); any
other column name groups by that column; ``None`` draws one group. A hosting
mode has the same colour in every figure (:mod:`fleet_sim.report.style`), also
when it comes from another column whose values all name modes (e.g. variants
such as ``vm-overcommit``).
Time series (memory, power, serving capacity) show one run per group, the
first replication; distributions pool every run of a group.

Change points: a value holds from its ``t`` until the next row of the same key
and the last one until ``t_end``, the end of the run (s). Pass ``t_end`` (e.g.
``summary.duration_s``; a mapping run_id → s for many runs); without it the last
change point in the table is taken as the end.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.ticker import FuncFormatter, PercentFormatter

from fleet_sim.numerics import timeweighted
from fleet_sim.report.numbers import fmt
from fleet_sim.hosting.hypervisor import GUEST_OS
from fleet_sim.report.style import (
    CPU_COLORS,
    CPU_HATCHES,
    HEATMAP_CMAP,
    OTHER_COLOR,
    RC,
    ModeStyle,
    base_mode,
    mode_order,
    mode_style,
)
from fleet_sim.results.fold import SumSeries, small_codes
from fleet_sim.results.tables import last_per_key_and_t
from fleet_sim.units import DAY_S, GIB_MIB, HOUR_S, J_PER_KWH, MINUTE_S

#: column names that hold the hosting mode, in order of preference
MODE_COLUMNS = ("mode", "hosting.mode")
#: most points drawn per empirical CDF (every drawn point is an exact point of it)
MAX_CDF_POINTS = 4000
#: most change points drawn per fleet time series; longer ones are drawn as exact
#: time-weighted means over TIME_BINS bins
MAX_STEPS = 1500
TIME_BINS = 240
#: rows of a long table summed at a time (see ``_sums``)
SUM_SLICE_ROWS = 1_000_000

TEnd = float | Mapping[Any, float] | pd.Series | None

_PLOTTED: WeakKeyDictionary[Axes, pd.DataFrame] = WeakKeyDictionary()


def plotted(ax: Axes) -> pd.DataFrame:
    """The numbers behind a figure drawn by this module on ``ax``, in table units.

    Raises KeyError if ``ax`` was not drawn by a function of this module.
    """
    try:
        return _PLOTTED[ax]
    except KeyError:
        raise KeyError("these Axes were not drawn by fleet_sim.report") from None


def _styled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Draw inside the report's rc settings (fonts, grid) without touching global state."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ax") is None and kwargs.get("axes") is None:
            # pyplot will make the figure: import it (which may select and set up the
            # backend, e.g. Jupyter's inline one turns interactive mode on) *outside*
            # the rc context, whose exit would otherwise undo that set-up
            import matplotlib.pyplot  # noqa: F401
        with mpl.rc_context(RC):
            return fn(*args, **kwargs)

    return wrapper


def _new_axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    if ax is not None:
        ax.grid(True, color=RC["grid.color"], linewidth=RC["grid.linewidth"])
        ax.set_axisbelow(True)
        return ax
    import matplotlib.pyplot as plt  # only here: the module stays free of pyplot state

    _, new = plt.subplots(figsize=figsize or RC["figure.figsize"], layout="constrained")
    return new


# ---------------------------------------------------------------- grouping and runs
def natural_key(text: object) -> tuple:
    """Sort key that puts ``host2`` before ``host10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text)))


def mode_column(frame: pd.DataFrame) -> str | None:
    """The column holding the hosting mode (``mode`` or ``hosting.mode``), or None."""
    return next((c for c in MODE_COLUMNS if c in frame.columns), None)


def _group_column(frame: pd.DataFrame, by: str | None) -> str | None:
    if by is None:
        return None
    if by == "mode" or by in MODE_COLUMNS:
        return mode_column(frame)
    if by not in frame.columns:
        raise KeyError(f"no column {by!r} to group by; columns: {', '.join(map(str, frame))}")
    return by


def grouped(frame: pd.DataFrame, by: str | None) -> list[tuple[str, pd.DataFrame, ModeStyle]]:
    """(label, rows, style) per group, modes in the canonical order, others naturally."""
    col = _group_column(frame, by)
    if col is None:
        return [("", frame, ModeStyle(OTHER_COLOR))]
    values = list(frame[col].dropna().unique())
    ordered = isinstance(frame[col].dtype, pd.CategoricalDtype) and frame[col].cat.ordered
    if ordered:  # e.g. the report's groups: keep their order
        values = [v for v in frame[col].cat.categories if v in set(values)]
    if col in MODE_COLUMNS or (values and all(base_mode(str(v)) for v in values)):
        # a column of hosting modes (or variants of them) keeps the modes' colours
        labels = [str(v) for v in values] if ordered else mode_order(map(str, values))
        text = _as_text(frame[col])
        return [(m, _rows_of(frame, text == m), mode_style(m)) for m in labels]
    if not ordered:
        values.sort(key=natural_key)
    cmap = mpl.colormaps["cividis"]
    out = []
    for i, v in enumerate(values):
        color = to_hex(cmap(0.1 + 0.75 * i / max(1, len(values) - 1)))
        out.append((str(v) if ordered else f"{col}={v}", _rows_of(frame, frame[col] == v),
                    ModeStyle(color)))
    return out


def _as_text(column: pd.Series) -> pd.Series:
    """``column`` as text (a categorical's categories renamed: no per-row strings)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.rename_categories([str(c) for c in column.cat.categories])
    return column if pd.api.types.is_string_dtype(column) else column.astype(str)


def _rows_of(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    """The rows of ``mask`` (``frame`` itself, not a copy, when that is every row)."""
    return frame if bool(mask.all()) else frame[mask]


def _run_keys(frame: pd.DataFrame) -> list[str]:
    if "run_id" in frame.columns:
        return ["run_id"]
    return [c for c in ("seed", "replication") if c in frame.columns]


def _runs(frame: pd.DataFrame) -> list[tuple[Any, pd.DataFrame]]:
    """(run key, rows) of each run in ``frame``, first replication first."""
    keys = _run_keys(frame)
    if not keys:
        return [(None, frame)]
    if len(frame) and all(bool((frame[k] == frame[k].iloc[0]).all()) for k in keys):
        first = tuple(frame[k].iloc[0] for k in keys)  # one run: no copy of its rows
        return [(first if len(keys) > 1 else first[0], frame)]
    runs = [(k if len(keys) > 1 else k[0], g)
            for k, g in frame.groupby(keys, sort=False, dropna=False)]
    if "replication" in frame.columns:
        runs.sort(key=lambda kg: int(kg[1]["replication"].iloc[0]))
    return runs


def first_run(frame: pd.DataFrame) -> tuple[Any, pd.DataFrame, int]:
    """(run key, rows, number of runs) of the first replication in ``frame``."""
    runs = _runs(frame)
    if not runs:
        return None, frame, 0
    key, rows = runs[0]
    return key, rows, len(runs)


def _single_run(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    runs = _runs(frame)
    if len(runs) > 1:
        keys = _run_keys(frame)
        shown = ", ".join(str(k) for k, _ in runs[:5])
        raise ValueError(f"{what} draws one run but the table holds {len(runs)} (by "
                         f"{'/'.join(keys)}: {shown}{', …' if len(runs) > 5 else ''}); "
                         f"select one, e.g. frame[frame.{keys[0]} == …]")
    return frame


def _t_end(frame: pd.DataFrame, t_end: TEnd, run: Any = None, column: str = "t") -> float:
    """The end of the run (s) for ``frame`` (rows of one run)."""
    if t_end is None:
        if frame.empty:
            raise ValueError("cannot infer t_end from an empty table; pass t_end")
        return float(frame[column].max())
    if isinstance(t_end, Mapping | pd.Series):
        if run not in t_end:
            raise KeyError(f"t_end has no entry for run {run!r}")
        return float(t_end[run])
    return float(t_end)


def _time_unit(t_end_s: float) -> tuple[float, str]:
    """(seconds per unit, unit name) that keeps time tick labels short."""
    if t_end_s <= 10 * MINUTE_S:
        return 1.0, "s"
    if t_end_s <= 3 * HOUR_S:
        return MINUTE_S, "min"
    if t_end_s <= 3 * DAY_S:
        return HOUR_S, "h"
    return DAY_S, "days"


def _duration_text(seconds: float) -> str:
    for unit_s, unit in ((DAY_S, "days"), (HOUR_S, "h"), (MINUTE_S, "min")):
        if seconds >= unit_s:
            return f"{seconds / unit_s:.3g} {unit}"
    return f"{seconds:.3g} s"


def _steps(t: np.ndarray, v: np.ndarray, t_end: float) -> tuple[np.ndarray, np.ndarray]:
    """x, y of a step line through change points, held until ``t_end``."""
    keep = t <= t_end
    t, v = t[keep], v[keep]
    return np.append(t, t_end), np.append(v, v[-1] if v.size else np.nan)


def _series(frame: pd.DataFrame, key: Sequence[str], column: str) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Change points of Σ ``column`` over ``key`` (frame sorted by t, one row per key and t)."""
    t, sums = _sums(frame, key, [column])
    return t, sums[column]


def _sums(frame: pd.DataFrame, key: Sequence[str],
          columns: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Change points of Σ over ``key`` of each of ``columns``, in one pass: their common
    times and each column's sums."""
    t = frame["t"].to_numpy(float)
    if t.size and not bool(np.all(t[1:] >= t[:-1])):
        frame = frame.sort_values("t", kind="stable")
    sums = SumSeries(list(key), list(columns))
    # a long table is folded a time-ordered slice at a time, into arrays of at most a
    # change point per row: what the fold holds besides them is a few of one slice
    t = np.empty(len(frame))
    totals = np.empty((len(frame), len(columns)))
    n = 0
    for a in range(0, max(len(frame), 1), SUM_SLICE_ROWS):
        t_part, part = sums.add(last_per_key_and_t(frame.iloc[a:a + SUM_SLICE_ROWS], tuple(key)))
        t[n:n + t_part.size], totals[n:n + t_part.size] = t_part, part
        n += t_part.size
    t, totals = t[:n], totals[:n]
    if t.size > 1 and not bool(np.all(t[1:] > t[:-1])):  # a time split by a slice's end
        last = np.append(t[1:] != t[:-1], True)
        t, totals = t[last], totals[last]
    return t, {c: totals[:, i] for i, c in enumerate(columns)}


def _time_ordered_slices(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """``frame`` sorted by t (stable; a stored table is so already), SUM_SLICE_ROWS rows
    at a time."""
    t = frame["t"].to_numpy(float)
    if t.size and not bool(np.all(t[1:] >= t[:-1])):
        frame = frame.sort_values("t", kind="stable")
    return (frame.iloc[a:a + SUM_SLICE_ROWS] for a in range(0, len(frame), SUM_SLICE_ROWS))


class CpuFold:
    """What :func:`workload_cpu` draws of ``workload`` (a name, or names drawn as their
    sum) in one run, folded from chunks of that run's ``workloads`` table as they come
    (:meth:`add`, in time order): several folds can share one pass over a long table.
    ``t_end``, ``t_start``: as in :func:`workload_cpu`; the window is [t0, ``t_end``]
    (t0: ``t_start``, or the first record if later). It holds at most MAX_STEPS change
    points of the sums over hosts and instances, or then their exact means over
    TIME_BINS bins."""

    KEY = ("workload", "host", "instance")

    def __init__(self, workload: str | Sequence[str], t_end: float,
                 t_start: float | None = None):
        self.workload = workload
        self.wanted = [workload] if isinstance(workload, str) else list(workload)
        self.end, self.t_start = float(t_end), t_start
        self.columns = ("demand_cores", *CPU_PARTS)
        self.sums = SumSeries(list(self.KEY), list(self.columns))
        self.held_t: list[np.ndarray] = []
        self.held_v: list[np.ndarray] = []
        self.after = 0
        self.t0: float | None = None
        self.bins: timeweighted.StreamedBins | None = None

    def add(self, chunk: pd.DataFrame) -> None:
        """Fold in the rows of the workload in ``chunk`` (rows of one run)."""
        chunk = chunk[chunk["workload"].isin(self.wanted).to_numpy()]
        if chunk.empty:
            return
        t, v = self.sums.add(last_per_key_and_t(chunk, self.KEY))
        if self.t0 is None:
            self.t0 = max(float(t[0]), 0.0 if self.t_start is None else float(self.t_start))
        if self.bins is not None:
            self.bins.add(t, v)
            return
        self.held_t.append(t)
        self.held_v.append(v)
        self.after += int(np.count_nonzero(t > self.t0))
        if self.after + 1 > MAX_STEPS and self.end > self.t0:  # too many to see: bin means
            self.bins = timeweighted.StreamedBins(
                np.linspace(self.t0, self.end, TIME_BINS + 1), len(self.columns))
            for t_part, v_part in zip(self.held_t, self.held_v, strict=True):
                self.bins.add(t_part, v_part)
            self.held_t, self.held_v = [], []

    def result(self) -> tuple[float, np.ndarray, dict[str, np.ndarray], dict[str, float],
                              bool, int] | None:
        """t0, the times and values to draw (the change points, or the bin means), each
        column's integral over the window, whether binned, and the number of instances
        of real workloads; None without rows."""
        t0, end, columns = self.t0, self.end, self.columns
        if t0 is None:
            return None
        instances = len({k[1:] for k in self.sums.last if not is_pseudo(k[0])})
        if self.bins is not None:
            means, integrals = self.bins.finish()
            return (t0, self.bins.edges[:-1], {c: means[:, j] for j, c in enumerate(columns)},
                    {c: float(integrals[j]) for j, c in enumerate(columns)}, True, instances)
        t, v = np.concatenate(self.held_t), np.vstack(self.held_v)
        if t.size > 1 and not bool(np.all(t[1:] > t[:-1])):  # a time split by a chunk's end
            last = np.append(t[1:] != t[:-1], True)
            t, v = t[last], v[last]
        if t0 > float(t[0]):  # start at the window: the value holding at t0, then its changes
            first = int(np.searchsorted(t, t0, side="right")) - 1
            t, v = np.r_[t0, t[first + 1:]], v[first:]
        series = {c: v[:, j] for j, c in enumerate(columns)}
        totals = {c: timeweighted.integral(t, series[c], end, t0) for c in columns}
        return t0, t, series, totals, False, instances


def _width(i: int, n: int) -> float:
    """Line width of group ``i`` of ``n``: earlier groups wider, so that identical
    curves drawn on top of each other all stay visible."""
    return 1.5 + 1.0 * (n - 1 - i)


def _group_ticks(ax: Axes, names: Sequence[str], colors: Sequence[str],
                 crowded_at: int = 28) -> None:
    """Label bars 0..n-1 with their groups' names in their colours, slanted when the
    names together are longer than ``crowded_at`` characters (they would overlap)."""
    crowded = sum(len(n) for n in names) > crowded_at
    ax.set_xticks(range(len(names)), names, rotation=20 if crowded else 0,
                  ha="right" if crowded else "center")
    for tick, color in zip(ax.get_xticklabels(), colors, strict=True):
        tick.set_color(color)


def _legend(ax: Axes, **kwargs: Any) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(**kwargs)


def _legend_below(ax: Axes) -> None:
    """A legend under the axes, where it can never hide a line."""
    _legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1)


# ---------------------------------------------------------------- host × time heatmap
def _keyed(frame: pd.DataFrame, key: str,
           column: str) -> tuple[np.ndarray, pd.Index, np.ndarray, np.ndarray]:
    """``frame``'s ``key`` as 16-bit codes (see ``small_codes``), its values, and the
    times and ``column`` values, the rows sorted by t (stable; a stored table is so
    already)."""
    codes, names = pd.factorize(frame[key], sort=False)
    codes = small_codes(codes)
    t = frame["t"].to_numpy(float)
    v = frame[column].to_numpy(float)
    if t.size and not bool(np.all(t[1:] >= t[:-1])):
        order = np.argsort(t, kind="stable")
        codes, t, v = codes[order], t[order], v[order]
    return codes, names, t, v


def _fold_slices(fold: timeweighted.HeldValues | timeweighted.KeyedBins, codes: np.ndarray,
                 t: np.ndarray, v: np.ndarray) -> None:
    """Feed ``fold`` SUM_SLICE_ROWS rows at a time: what it holds besides is one slice."""
    for a in range(0, t.size, SUM_SLICE_ROWS):
        fold.add(codes[a:a + SUM_SLICE_ROWS], t[a:a + SUM_SLICE_ROWS], v[a:a + SUM_SLICE_ROWS])


@_styled
def utilization_heatmap(hosts: pd.DataFrame, *, t_end: float | None = None, bins: int = 120,
                        ax: Axes | None = None, title: str | None = None) -> Axes:
    """Host × time CPU utilization of one run: each cell is the exact time-weighted mean of
    ``cpu_utilization`` over its time bin (``bins`` equal bins over [0, ``t_end``]).

    ``hosts``: the ``hosts`` table of one run. Hosts are rows in natural name order;
    white cells are before a host's first record.
    """
    hosts = _single_run(hosts, "utilization_heatmap")
    if hosts.empty:
        raise ValueError("the hosts table is empty: nothing to draw")
    end = _t_end(hosts, t_end)
    if not end > 0:
        raise ValueError(f"t_end must be > 0, got {end!r}")
    edges = np.linspace(0.0, end, bins + 1)
    codes, hosts_seen, t, v = _keyed(hosts, "host", "cpu_utilization")
    cells = timeweighted.KeyedBins(len(hosts_seen), edges)
    _fold_slices(cells, codes, t, v)
    rank = sorted(range(len(hosts_seen)), key=lambda i: natural_key(hosts_seen[i]))
    z = cells.finish()[rank]
    names = [hosts_seen[i] for i in rank]
    scale, unit = _time_unit(end)
    ax = _new_axes(ax, (9.0, min(9.0, 2.2 + 0.16 * len(names))))
    cmap = mpl.colormaps[HEATMAP_CMAP].with_extremes(bad="white")
    image = ax.imshow(z, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0.0, vmax=1.0,
                      extent=(0.0, end / scale, len(names) - 0.5, -0.5))
    step = next(k for k in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, len(names))
                if len(names) / k <= 30)  # a round step: at most 30 host labels
    ax.set_yticks(range(0, len(names), step), [str(n) for n in names[::step]])
    ax.grid(False)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel(f"host ({len(names)})")
    mode_col = mode_column(hosts)
    mode = f" — {hosts[mode_col].iloc[0]}" if mode_col and hosts[mode_col].nunique() == 1 else ""
    ax.set_title(title or f"CPU utilization per host{mode} (means over "
                          f"{_duration_text(end / bins)} bins)")
    ax.figure.colorbar(image, ax=ax, label="CPU utilization (% of cores)",
                       format=PercentFormatter(1.0), fraction=0.05, pad=0.02)
    _PLOTTED[ax] = pd.DataFrame({
        "host": np.repeat(np.array(names, dtype=object), bins),
        "t_start": np.tile(edges[:-1], len(names)),
        "t_end": np.tile(edges[1:], len(names)),
        "cpu_utilization": z.ravel(),
    })
    return ax


# ---------------------------------------------------------------- utilization distribution
def _held_utilization(rows: pd.DataFrame, begin: float,
                      end: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The host-seconds of one run at each utilization value in [``begin``, ``end``]
    (each host from its first record): the values, their durations (s) and the number
    of hosts."""
    codes, names, t, v = _keyed(rows, "host", "cpu_utilization")
    held = timeweighted.HeldValues(len(names), begin, end)
    _fold_slices(held, codes, t, v)
    return (*held.finish(), len(names))


@_styled
def utilization_distribution(hosts: pd.DataFrame, *, by: str | None = "mode",
                             t_end: TEnd = None, t_start: TEnd = None,
                             ax: Axes | None = None, title: str | None = None) -> Axes:
    """Distribution of host CPU utilization per group, time-weighted over all host-seconds.

    Each curve is the fraction of host-time with utilization ≤ x (exact
    time-weighted quantiles of ``cpu_utilization``, at 201 levels), pooling every
    host of every run of the group over [``t_start`` (e.g. the warm-up), ``t_end``]
    (each a number of s, or a mapping run_id → s).
    The legend gives the time-weighted mean and 99th percentile.
    """
    ax = _new_axes(ax)
    q = np.linspace(0.0, 1.0, 201)
    rows = []
    groups = grouped(hosts, by)
    for i, (label, group, style) in enumerate(groups):
        held, n_series, hosts_per_run = [], 0, set()
        runs = _runs(group)
        for run, rows_of_run in runs:
            end = _t_end(rows_of_run, t_end, run)
            begin = 0.0 if t_start is None else _t_end(rows_of_run, t_start, run)
            values, durations, n_hosts = _held_utilization(rows_of_run, begin, end)
            held.append((values, durations))
            n_series += n_hosts
            hosts_per_run.add(n_hosts)
        if not n_series:
            continue
        values = np.concatenate([h[0] for h in held])
        durations = np.concatenate([h[1] for h in held])
        if not durations.size:
            raise ValueError("no host has a record inside the window")
        x = np.asarray(timeweighted.weighted_percentile(values, durations, q))
        mean = min(max(float(np.sum(values * durations) / np.sum(durations)),
                       float(values.min())), float(values.max()))
        p99 = float(timeweighted.weighted_percentile(values, durations, 0.99))
        name = f"{label}: " if label else ""
        what = (f"{len(runs)} run{'s' if len(runs) > 1 else ''} × {hosts_per_run.pop()} host"
                f"{'s' if n_series > len(runs) else ''}" if len(hosts_per_run) == 1
                else f"{n_series} host-runs")
        ax.plot(x, q, color=style.color, linestyle=style.linestyle,
                linewidth=_width(i, len(groups)),
                label=f"{name}host-time mean {fmt(mean, 'fraction')}, per-host p99 "
                      f"{fmt(p99, 'fraction')} ({what})")
        ax.axvline(mean, color=style.color, linestyle=":", linewidth=1)
        rows.append(pd.DataFrame({"group": label, "q": q, "cpu_utilization": x,
                                  "mean": mean, "p99": p99, "host_runs": n_series}))
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0, 1.01)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("host CPU utilization (% of cores)")
    ax.set_ylabel("fraction of host-time ≤ x")
    ax.set_title(title or "Host CPU utilization distribution (time-weighted; dotted: means)")
    _legend_below(ax)
    _PLOTTED[ax] = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return ax


# ---------------------------------------------------------------- demand vs allocated
CPU_PARTS = ("allocated_cores", "contention_cores", "throttled_cores")


#: workloads that model the hosting itself (a VM's guest OS), not an app's work
PSEUDO_WORKLOADS = (GUEST_OS,)


def is_pseudo(workload: str) -> bool:
    """Whether ``workload`` is a pseudo-workload of the hosting (``web-0-vm.guest-os``)."""
    return str(workload).rpartition(".")[2] in PSEUDO_WORKLOADS


class NoRows(ValueError):
    """A figure was asked of chunks that hold no rows of what it draws."""


@_styled
def workload_cpu(workloads: pd.DataFrame | Iterable[pd.DataFrame] | CpuFold,
                 workload: str | Sequence[str] | None = None, *,
                 t_end: float | None = None, t_start: float | None = None,
                 mode: str | None = None, ax: Axes | None = None,
                 title: str | None = None) -> Axes:
    """CPU of a workload over time in one run: allocated (filled, in the mode's colour),
    with contention (neighbours' fault) and throttled (own caps) stacked on top, and the
    demand as a black line. Sums over every host and instance the workload runs in.
    A series of more than MAX_STEPS change points is drawn as exact time-weighted
    means over TIME_BINS equal bins (the y label says so).

    ``workloads``: the table, or a table too long to hold as its rows of one run in
    time-ordered chunks (e.g. :meth:`fleet_sim.results.store.Results.chunks`), which
    are folded one at a time; then ``workload`` and ``t_end`` must be given; or a
    :class:`CpuFold` already fed (several workloads from one pass over a long table;
    its workload and window hold).
    ``workload``: its name, or a list of names drawn as their sum (e.g. every replica
    of an app); may be omitted if the table holds one. ``t_start``: start of the
    statistics window (s; default: the first record), so that install and start-up
    during a warm-up is neither drawn nor counted. ``mode``: colour of the allocated
    area (default: the table's mode column, else grey). The legend (below the axes)
    gives each part's integral over [``t_start``, ``t_end``] in core-s.
    """
    if isinstance(workloads, pd.DataFrame):
        workloads = _single_run(workloads, "workload_cpu")
        names = sorted(workloads["workload"].unique(), key=natural_key)
        if workload is None:
            if len(names) != 1:
                raise ValueError(f"the table holds {len(names)} workloads; pick one of: "
                                 f"{', '.join(map(str, names[:20]))}")
            workload = str(names[0])
        wanted = [workload] if isinstance(workload, str) else list(workload)
        chosen = workloads["workload"].isin(wanted).to_numpy()
        rows = workloads if chosen.all() else workloads[chosen]  # no copy when all are wanted
        if rows.empty:
            raise ValueError(f"no workload {workload!r}; the table holds: "
                             f"{', '.join(map(str, names[:20]))}")
        end = _t_end(workloads, t_end)
        mode_col = mode_column(rows)
        if mode is None and mode_col is not None and rows[mode_col].nunique() == 1:
            mode = str(rows[mode_col].iloc[0])
        fold = CpuFold(workload, end, t_start)
        for chunk in _time_ordered_slices(rows):
            fold.add(chunk)
    elif isinstance(workloads, CpuFold):
        fold = workloads
    else:
        if workload is None or t_end is None:
            raise ValueError("workload_cpu of chunks needs workload and t_end")
        fold = CpuFold(workload, t_end, t_start)
        for chunk in workloads:
            fold.add(chunk)
    workload, wanted, end = fold.workload, fold.wanted, fold.end
    lines = fold.result()
    if lines is None:
        raise NoRows(f"no rows of workload {workload!r}")
    t0, t_draw, drawn, totals, binned, n_inst = lines
    demand_total = totals["demand_cores"]
    scale, unit = _time_unit(end)
    ax = _new_axes(ax)
    x = _steps(t_draw, t_draw, end)[0] / scale
    base = np.zeros(x.size)

    def share(c: str) -> str:
        return f" ({fmt(totals[c] / demand_total, 'fraction')})" if demand_total > 0 else ""

    colors = {"allocated_cores": mode_style(mode).color if mode else CPU_COLORS["allocated"],
              "contention_cores": CPU_COLORS["contention"],
              "throttled_cores": CPU_COLORS["throttled"]}
    for c in CPU_PARTS:
        y = base + _steps(t_draw, drawn[c], end)[1]
        part = c.removesuffix("_cores")
        ax.fill_between(x, base, y, step="post", facecolor=colors[c],
                        alpha=0.85 if part == "allocated" else 0.55,
                        hatch=CPU_HATCHES.get(part), edgecolor="white", linewidth=0,
                        label=f"{part} {fmt(totals[c])}{share(c)}")
        base = y
    demand = _steps(t_draw, drawn["demand_cores"], end)[1]
    ax.plot(x, demand, drawstyle="steps-post", color=CPU_COLORS["demand"], linewidth=1.2,
            label=f"demand {fmt(demand_total)}")
    ax.set_xlim(t0 / scale, end / scale)
    top = float(np.nanmax(np.r_[base, demand, 0.0]))
    ax.set_ylim(0, max(top, 1e-9) * 1.05)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("CPU (cores)" + (f", means over {_duration_text((end - t0) / TIME_BINS)}"
                                   if binned else ""))
    where = f" ({n_inst} instances)" if n_inst > 1 else ""
    shown = workload if isinstance(workload, str) else ", ".join(wanted)
    ax.set_title(title or f"{shown}{where}{' under ' + mode if mode else ''}: "
                          "CPU demand vs allocated")
    _legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8,
            title="core-s in the window", title_fontsize=8, columnspacing=1.0,
            handlelength=1.5)
    _PLOTTED[ax] = pd.DataFrame({"t": t_draw, **drawn, "binned": binned})
    return ax


# ---------------------------------------------------------------- unmet CPU per mode
@_styled
def unmet_cpu(workload_summary: pd.DataFrame, workload: str | Sequence[str] | None = None, *,
              by: str | None = "mode", ax: Axes | None = None,
              title: str | None = None) -> Axes:
    """Unmet CPU of a workload per group: contention and throttled core-s (stacked bars,
    mean over replications), labelled with the satisfied fraction (allocated / demand
    of each run, mean over replications: for every workload together, the summary
    table's ``satisfied_fraction``).

    ``workload_summary``: that table (concatenated over runs); ``workload``: a name,
    a list of names (summed per run), or None for every workload together.
    """
    frame = workload_summary
    names = None if workload is None else [workload] if isinstance(workload, str) else list(
        workload)
    if names is not None:
        frame = frame[frame["workload"].isin(names)]
        if frame.empty:
            raise ValueError(f"no workload {workload!r} in the workload_summary table")
    ax = _new_axes(ax)
    parts = ("contention_core_s", "throttled_core_s")
    rows = []
    for label, group, style in grouped(frame, by):
        per_run = [g[[*parts, "demand_core_s", "allocated_core_s"]].sum()
                   for _, g in _runs(group)]
        runs = pd.DataFrame(per_run)
        means = runs.mean()
        # the mean of each run's fraction, as the summary tables are averaged
        satisfied = float((runs["allocated_core_s"] / runs["demand_core_s"]).mean())
        rows.append({"group": label or "all", "runs": len(runs), **means.to_dict(),
                     "satisfied_fraction": satisfied, "color": style.color})
    table = pd.DataFrame(rows)
    if table.empty:
        raise ValueError("the workload_summary table is empty: nothing to draw")
    x = np.arange(len(table))
    bottom = np.zeros(len(table))
    for part in parts:
        name = part.removesuffix("_core_s")
        ax.bar(x, table[part], bottom=bottom, color=CPU_COLORS[name], alpha=0.75,
               hatch=CPU_HATCHES[name], edgecolor="white", label=name, width=0.6)
        bottom = bottom + table[part].to_numpy(float)
    for xi, top, sat, color in zip(x, bottom, table["satisfied_fraction"], table["color"],
                                   strict=True):
        ax.annotate(f"{fmt(sat, 'fraction')} satisfied", (xi, top), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=9,
                    color=color, fontweight="bold")
    _group_ticks(ax, list(table["group"]), list(table["color"]))
    ax.set_ylim(0, max(1.0, float(bottom.max())) * 1.15)
    ax.set_ylabel("unmet CPU (core-s)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    which = "all workloads" if names is None else ", ".join(names) if len(names) <= 3 else (
        f"{len(names)} workloads")
    ax.set_title(title or f"Unmet CPU of {which} (mean over replications)")
    _legend(ax, loc="upper right")
    _PLOTTED[ax] = table.drop(columns="color")
    return ax


# ---------------------------------------------------------------- response time CDF
def _ecdf_points(n: int) -> np.ndarray:
    """Indices of sorted samples to draw: all of them, or an even subset plus the tail."""
    if n <= MAX_CDF_POINTS:
        return np.arange(n)
    body = np.linspace(0, n - 1, MAX_CDF_POINTS // 2).astype(int)
    tail = np.arange(max(0, n - int(0.01 * n) - 1, n - MAX_CDF_POINTS // 2), n)
    return np.unique(np.concatenate([body, tail]))


@_styled
def response_time_cdf(jobs: pd.DataFrame, *, by: str | None = "mode",
                      workload: str | Sequence[str] | None = None, ax: Axes | None = None,
                      title: str | None = None) -> Axes:
    """Empirical CDF of job response time per group (log x), pooling every run of a group.

    ``jobs``: the ``jobs`` table; ``workload``: restrict to one name or a list.
    The curve at x is the fraction of *arrived* jobs that finished within x s, so it
    tops out below 1 when jobs failed or were unfinished at the end. The legend gives the
    median and 99th percentile of finished jobs (as the ``summary`` table does).
    """
    if workload is not None:
        wanted = [workload] if isinstance(workload, str) else list(workload)
        jobs = jobs[jobs["workload"].isin(wanted)]
    ax = _new_axes(ax)
    rows = []
    groups = grouped(jobs, by)
    for i, (label, group, style) in enumerate(groups):
        resp = group["response_time_s"].to_numpy(float)
        finished = resp[np.isfinite(resp)]
        if finished.size == 0:
            continue
        n_all = resp.size
        ordered = np.sort(finished)
        frac = np.arange(1, ordered.size + 1) / n_all
        keep = _ecdf_points(ordered.size)
        keep = keep[ordered[keep] > 0]  # a log axis cannot show zero-work jobs
        p50, p99 = np.quantile(finished, [0.5, 0.99])
        outcome = group["outcome"].to_numpy(object)
        extra = "".join(f", {n:,} {what}" for what in ("failed", "unfinished")
                        if (n := int((outcome == what).sum())))
        name = f"{label}: " if label else ""
        ax.plot(ordered[keep], frac[keep], drawstyle="steps-post", color=style.color,
                linestyle=style.linestyle, linewidth=_width(i, len(groups)),
                label=f"{name}p50 {fmt(p50)} s, p99 {fmt(p99)} s (n={n_all:,}{extra})")
        rows.append(pd.DataFrame({"group": label, "response_time_s": ordered[keep],
                                  "fraction": frac[keep], "p50_s": p50, "p99_s": p99,
                                  "jobs": n_all, "finished": finished.size}))
    ax.set_xscale("log")
    if rows:
        # from just below the 0.5 % quantile: a few near-zero jobs would stretch the axis
        low = min(float(np.quantile(r["response_time_s"], 0.005)) for r in rows)
        high = max(float(r["response_time_s"].max()) for r in rows)
        ax.set_xlim(low / 2, high * 1.5)
    ax.set_ylim(0, 1.02)
    ax.axhline(0.99, color="#999999", linestyle=":", linewidth=1)
    ax.annotate("p99", (0.0, 0.99), xycoords=("axes fraction", "data"), xytext=(2, -10),
                textcoords="offset points", fontsize=8, color="#777777")
    ax.set_xlabel("response time (s, log scale)")
    ax.set_ylabel("fraction of jobs finished within x")
    which = "" if workload is None else f" of {', '.join(wanted)}"
    ax.set_title(title or f"Job response time{which} (CDF)")
    _legend_below(ax)
    _PLOTTED[ax] = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return ax


# ---------------------------------------------------------------- fleet totals over time
def _fleet_total(hosts: pd.DataFrame, column: str, by: str | None, t_end: TEnd, ax: Axes,
                 scale_y: float,
                 label_of: Callable[[str, np.ndarray, np.ndarray, float],
                                    tuple[str, dict[str, float]]],
                 known: dict[Any, tuple[np.ndarray, np.ndarray]] | None = None,
                 ) -> tuple[list[pd.DataFrame], int, float, float | None]:
    """Draw Σ over hosts of ``column`` per group (first run of each).

    A series of more than MAX_STEPS change points is drawn as exact time-weighted
    means over TIME_BINS equal bins (the same bins for every line), which keeps its
    integral. Earlier groups get wider lines, so identical series stay visible.
    ``label_of(label, t, v, t_end)`` gives a line's legend text and figures of the
    exact series to add to its plotted frame; ``known``: series already summed, by
    run (not summed again; taken out once drawn). Returns the plotted frames, the most
    runs a group held, the time unit scale and the bin width (s; None when exact).
    """
    most_runs, drawn = 0, []
    for label, group, style in grouped(hosts, by):
        run, rows_of_run, n_runs = first_run(group)
        if rows_of_run.empty:
            continue
        most_runs = max(most_runs, n_runs)
        end = _t_end(rows_of_run, t_end, run)
        t, v = (known or {}).pop(run, None) or _series(rows_of_run, ("host",), column)
        if np.isnan(v).any():  # e.g. hosts without a power model record NaN
            ax.plot([], [], color=style.color, label=f"{label + ': ' if label else ''}"
                                                   f"{column} not recorded for every host")
            continue
        moved = np.append(True, v[1:] != v[:-1])  # other columns' changes move nothing here
        if not moved.all():
            t, v = t[moved], v[moved]
        drawn.append((label, style, t, v, end))
    longest = max((d[4] for d in drawn), default=1.0)
    scale, _ = _time_unit(longest)
    binned = any(d[2].size > MAX_STEPS for d in drawn)
    edges = np.linspace(0.0, longest, TIME_BINS + 1) if binned else None
    rows = []
    for i, (label, style, t, v, end) in enumerate(drawn):
        if edges is not None:
            bins = np.append(edges[edges < end], end)
            x_t, x_v = bins[:-1], timeweighted.bin_means(t, v, bins)
        else:
            x_t, x_v = t, v
        x, y = _steps(x_t, x_v, end)
        text, figures = label_of(label, t, v, end)
        ax.plot(x / scale, y / scale_y, drawstyle="steps-post", color=style.color,
                linestyle=style.linestyle, linewidth=_width(i, len(drawn)),
                label=text)
        rows.append(pd.DataFrame({"group": label, "t": x_t, column: x_v, "t_end": end,
                                  "binned": edges is not None, **figures}))
    return rows, most_runs, scale, (longest / TIME_BINS if binned else None)


@_styled
def memory_over_time(hosts: pd.DataFrame, *, by: str | None = "mode",
                     fleet: pd.DataFrame | None = None, t_end: TEnd = None,
                     ax: Axes | None = None, title: str | None = None) -> Axes:
    """RAM in use by the whole fleet over time (GiB, Σ ``ram_used_mib`` over hosts), one
    line per group (its first run). With the ``fleet`` table, the RAM capacity is a
    dashed line (one per group if the groups' fleets differ)."""
    ax = _new_axes(ax)

    def label_of(label: str, t: np.ndarray, v: np.ndarray,
                 end: float) -> tuple[str, dict[str, float]]:
        peak = float(v[t <= end].max())
        return (f"{label + ': ' if label else ''}peak {fmt(peak / GIB_MIB)} GiB",
                {"peak_ram_used_mib": peak})

    rows, most_runs, scale, bin_s = _fleet_total(hosts, "ram_used_mib", by, t_end, ax,
                                                 GIB_MIB, label_of)
    if fleet is not None:
        caps = []
        for label, group, style in grouped(fleet, by):
            _, inventory, _ = first_run(group)
            if len(inventory):
                caps.append((label, float(inventory["ram_mib"].sum()) / GIB_MIB, style))
        if len({c for _, c, _ in caps}) == 1:
            caps = [("", caps[0][1], ModeStyle(OTHER_COLOR))]
        for label, cap, style in caps:
            ax.axhline(cap, color=style.color, linestyle="--", linewidth=1,
                       label=f"{label + ' ' if label else ''}RAM capacity {cap:,.0f} GiB")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.set_xlabel(f"time ({_unit_name(scale)})")
    ax.set_ylabel("RAM in use (GiB)")
    note = _series_note(most_runs, bin_s)
    ax.set_title(title or f"Fleet memory in use{note}")
    _legend_below(ax)
    _PLOTTED[ax] = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return ax


def _series_note(most_runs: int, bin_s: float | None) -> str:
    notes = (["first replication"] if most_runs > 1 else []) + (
        [f"means over {_duration_text(bin_s)} bins"] if bin_s else [])
    return f" ({'; '.join(notes)})" if notes else ""


def _unit_name(scale: float) -> str:
    return {1.0: "s", MINUTE_S: "min", HOUR_S: "h", DAY_S: "days"}[scale]


@_styled
def power_over_time(hosts: pd.DataFrame, *, by: str | None = "mode", t_end: TEnd = None,
                    t_start: TEnd = None, ax: Axes | None = None,
                    title: str | None = None) -> Axes:
    """Electrical power of the whole fleet over time (kW, Σ ``power_w`` over hosts), one
    line per group (its first run). The legend gives each group's energy over the
    statistics window [``t_start`` (e.g. the warm-up; default 0), ``t_end``] (kWh, the
    exact integral of the power), the mean over the group's runs: the ``summary``
    table's ``energy_kwh``, averaged as the report's tables average it."""
    ax = _new_axes(ax)
    energy, known, drawn_mean_w = {}, {}, {}
    for label, group, _ in grouped(hosts, by):
        per_run = []
        drawn_run = first_run(group)[0]
        for run, rows_of_run in _runs(group):
            end = _t_end(rows_of_run, t_end, run)
            begin = 0.0 if t_start is None else _t_end(rows_of_run, t_start, run)
            t, v = _series(rows_of_run, ("host",), "power_w")
            if run == drawn_run:  # summed once, for its energy and its line
                known[run] = (t, v)
            if t.size and t[0] < end and not np.isnan(v).any():
                t0 = float(t[0])
                begin = min(max(begin, t0), end)
                window_j = timeweighted.integral(t, v, end, begin)
                per_run.append(window_j)
                if run == drawn_run:  # its mean power since its first row, from the
                    # window's energy and that of the points before the window
                    k = int(np.searchsorted(t, begin, side="right"))
                    warm_j = timeweighted.integral(t[:k], v[:k], begin, t0) if begin > t0 \
                        else 0.0
                    drawn_mean_w[label] = (window_j + warm_j) / (end - t0)
        energy[label] = (float(np.mean(per_run)) / J_PER_KWH if per_run else math.nan,
                         len(per_run))

    def label_of(label: str, t: np.ndarray, v: np.ndarray,
                 end: float) -> tuple[str, dict[str, float]]:
        kwh, n = energy[label]
        mean_w = drawn_mean_w.get(label, float(v[0]))
        runs = f", mean of {n} runs" if n > 1 else ""
        return (f"{label + ': ' if label else ''}{fmt(kwh)} kWh in the window{runs}",
                {"energy_kwh": kwh, "runs": n, "mean_power_w": mean_w})

    rows, most_runs, scale, bin_s = _fleet_total(hosts, "power_w", by, t_end, ax, 1000.0,
                                                 label_of, known)
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.set_xlabel(f"time ({_unit_name(scale)})")
    ax.set_ylabel("power (kW)")
    ax.set_title(title or f"Fleet power draw and energy{_series_note(most_runs, bin_s)}")
    _legend_below(ax)
    _PLOTTED[ax] = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return ax


# ---------------------------------------------------------------- density
#: panels of a density comparison: for each, the candidate summary columns (the first
#: present is drawn) with their axis labels, and the panel's title
DENSITY_METRICS: tuple[tuple[tuple[tuple[str, str], ...], str], ...] = (
    ((("apps_per_host", "apps per host"),), "Apps per host"),
    ((("hosts_needed", "hosts"), ("hosts_used", "hosts"), ("hosts", "hosts")), "Hosts needed"),
    ((("monthly_cost_usd", "$ per month"), ("cost_usd", "$ over the run")), "Cost"),
)


def density_metrics(summary: pd.DataFrame,
                     metrics: Sequence[str] | None) -> list[tuple[str, str, str]]:
    """(column, axis label, title) of each panel to draw."""
    known = {col: (label, title) for cands, title in DENSITY_METRICS for col, label in cands}
    if metrics is not None:
        missing = [m for m in metrics if m not in summary.columns]
        if missing:
            raise KeyError(f"summary has no column(s) {missing}")
        return [(m, *known.get(m, (m, m))) for m in metrics]
    found = []
    for candidates, title in DENSITY_METRICS:
        hit = next(((c, lab) for c, lab in candidates if c in summary.columns), None)
        if hit is not None:
            found.append((*hit, title))
    if not found:
        raise KeyError("summary has none of the density columns "
                       f"{[c for cands, _ in DENSITY_METRICS for c, _ in cands]}")
    return found


@_styled
def density_summary(summary: pd.DataFrame, *, by: str | None = "mode",
                    metrics: Sequence[str] | None = None, axes: Sequence[Axes] | None = None,
                    title: str | None = None) -> np.ndarray:
    """Density per group: apps per host, hosts needed and cost, one panel each.

    ``summary``: one row per run (concatenated ``summary`` tables). Each bar is the
    mean over the group's runs with its 95 % Student-t confidence interval
    (:func:`fleet_sim.numerics.timeweighted.mean_ci`) when there are several, and its
    value printed on top. ``metrics``: summary columns to draw (default: the
    first present of apps_per_host; hosts_needed/hosts_used/hosts;
    monthly_cost_usd/cost_usd).
    Returns the array of Axes (one per metric).
    """
    chosen = density_metrics(summary, metrics)
    if axes is None:
        import matplotlib.pyplot as plt

        fig, new = plt.subplots(1, len(chosen), figsize=(3.6 * len(chosen) + 0.8, 4.2),
                                layout="constrained", squeeze=False)
        axes = list(new[0])
        if title or len(chosen) > 1:
            fig.suptitle(title or "Density per hosting mode", fontweight="bold")
    axes = list(axes)
    if len(axes) != len(chosen):
        raise ValueError(f"{len(chosen)} metrics need {len(chosen)} axes, got {len(axes)}")
    groups = grouped(summary, by)
    rows = []
    for ax, (col, label, panel) in zip(axes, chosen, strict=True):
        _new_axes(ax)
        for i, (group, rows_of_group, style) in enumerate(groups):
            values = rows_of_group[col].to_numpy(float)
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            mean, half = timeweighted.mean_ci(values)
            err = None if math.isnan(half) else half
            ax.bar(i, mean, yerr=err, capsize=4, color=style.color, hatch=style.hatch,
                   edgecolor="white", width=0.65, error_kw={"elinewidth": 1.2})
            ax.annotate(fmt(mean),
                        (i, mean + (err or 0.0)), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=9)
            rows.append({"metric": col, "group": group or "all", "n": values.size,
                         "mean": mean, "ci95": half})
        _group_ticks(ax, [g[0] or "all" for g in groups], [g[2].color for g in groups])
        ax.set_ylabel(label)
        ax.set_title(panel)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
        ax.grid(False, axis="x")
    data = pd.DataFrame(rows)
    for ax in axes:
        _PLOTTED[ax] = data
    return np.array(axes, dtype=object)


# ---------------------------------------------------------------- rollout
@_styled
def rollout_timeline(capacity: pd.DataFrame, *, by: str | None = "mode",
                     n_replicas: int | None = None, t_end: TEnd = None, ax: Axes | None = None,
                     title: str | None = None) -> Axes:
    """Serving capacity during a rollout: instances of the old version (dashed) and the
    new version (solid) that are healthy over time, one pair of lines per group (its
    first run). ``capacity``: change points ``t``, ``old_healthy``, ``new_healthy``.
    ``n_replicas`` (the replicas rolled out) draws the full-capacity line. Each line
    holds its last value until ``t_end`` (default: the latest change point over all
    groups)."""
    ax = _new_axes(ax)
    drawn, most_runs = [], 0
    for label, group, style in grouped(capacity, by):
        run, rows_of_run, n_runs = first_run(group)
        if rows_of_run.empty:
            continue
        most_runs = max(most_runs, n_runs)
        rows_of_run = rows_of_run.sort_values("t", kind="stable")
        # time since the rollout began: its first change point (at_s)
        rows_of_run = rows_of_run.assign(t=rows_of_run["t"] - rows_of_run["t"].iloc[0])
        drawn.append((label, run, rows_of_run, style))
    if not drawn:
        raise ValueError("the capacity table is empty: nothing to draw")
    ends = [_t_end(r, t_end, run) for _, run, r, _ in drawn]
    longest = max(ends)
    scale, unit = _time_unit(longest)
    rows = []
    for (label, _, r, style), end in zip(drawn, ends, strict=True):
        end = longest if t_end is None else end
        t = r["t"].to_numpy(float)
        for column, version, linestyle, width in (("new_healthy", "new", "-", 2.2),
                                                  ("old_healthy", "old", "--", 1.4)):
            v = r[column].to_numpy(float)
            x, y = _steps(t, v, end)
            finish = ""
            if version == "new":
                done = t[v >= v.max()][0] if v.size else math.nan
                finish = f", all {v.max():.0f} by {_duration_text(done)}"
            ax.plot(x / scale, y, drawstyle="steps-post", color=style.color,
                    linestyle=linestyle, linewidth=width,
                    alpha=1.0 if version == "new" else 0.65,
                    label=f"{label + ' ' if label else ''}{version} version{finish}")
        rows.append(r[["t", "old_healthy", "new_healthy"]].assign(group=label))
    if n_replicas is not None:
        ax.axhline(n_replicas, color="#555555", linestyle=":", linewidth=1)
        ax.annotate(f"{n_replicas} replicas", (0.0, n_replicas),
                    xycoords=("axes fraction", "data"),
                    xytext=(3, 3), textcoords="offset points", fontsize=8, color="#555555")
    ax.set_xlim(0, longest / scale * 1.03)  # a margin: the last step often ends the run
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"time since the rollout began ({unit})")
    ax.set_ylabel("healthy (serving) instances")
    note = " (first replication)" if most_runs > 1 else ""
    ax.set_title(title or f"Rollout: serving instances of old and new version{note}")
    _legend_below(ax)
    _PLOTTED[ax] = pd.concat(rows, ignore_index=True)
    return ax


# ---------------------------------------------------------------- the headline
@_styled
def headline_bars(headline: pd.DataFrame, *, axes: Sequence[Axes] | None = None,
                  title: str | None = None) -> np.ndarray:
    """The answer per group: p99 response time and mean slowdown of each job workload,
    bars of the mean over replications with their 95 % confidence intervals, value on
    top; a dotted line marks the reference group (the no-neighbour baseline).

    ``headline``: :func:`fleet_sim.report.answer.headline` (groups in its row order).
    Returns the two Axes; :func:`plotted` gives the headline rows drawn.
    """
    if headline.empty:
        raise ValueError("the headline is empty: no job workload finished a job")
    if axes is None:
        import matplotlib.pyplot as plt

        fig, new = plt.subplots(1, 2, figsize=(10.0, 4.2), layout="constrained",
                                squeeze=False)
        axes = list(new[0])
        if title:
            fig.suptitle(title, fontweight="bold")
    axes = list(axes)
    labels = list(dict.fromkeys(headline["group"]))
    workloads = list(dict.fromkeys(headline["workload"]))
    styles = {label: style for label, _, style in grouped(
        pd.DataFrame({"g": pd.Categorical(labels, categories=labels, ordered=True)}), "g")}
    width = 0.8 / len(workloads)
    panels = (("p99_s", "p99_ci95_s", "p99 response time (s)", "p99 response time"),
              ("slowdown", "slowdown_ci95", "mean slowdown (1 = never slowed)",
               "Mean slowdown"))
    for ax, (col, ci, ylabel, panel) in zip(axes, panels, strict=True):
        _new_axes(ax)
        for k, workload in enumerate(workloads):
            rows = headline[headline["workload"] == workload]
            for _, row in rows.iterrows():
                i = labels.index(row["group"])
                x = i + (k - (len(workloads) - 1) / 2) * width
                style = styles[row["group"]]
                err = None if math.isnan(row[ci]) else row[ci]
                ax.bar(x, row[col], width=width * 0.9, yerr=err, capsize=4, color=style.color,
                       hatch=style.hatch, edgecolor="white", error_kw={"elinewidth": 1.2})
                ax.annotate(fmt(row[col]), (x, row[col] + (err or 0.0)), xytext=(0, 3),
                            textcoords="offset points", ha="center", va="bottom", fontsize=9)
            ref = rows[rows["group"] == rows["reference"]]
            if len(ref):
                ax.axhline(float(ref[col].iloc[0]), color="#777777", linestyle=":",
                           linewidth=1)
        _group_ticks(ax, labels, [styles[label].color for label in labels], crowded_at=40)
        ax.set_ylabel(ylabel)
        runs = int(headline["runs"].max())
        note = f"\nmean ± 95 % CI over {runs} runs" if runs > 1 else ""
        which = workloads[0] if len(workloads) == 1 else f"{len(workloads)} job workloads"
        ax.set_title(f"{panel} of {which}{note}")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
        ax.grid(False, axis="x")
        _PLOTTED[ax] = headline
    return np.array(axes, dtype=object)
