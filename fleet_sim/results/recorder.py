"""ChangePointRecorder: cheap columnar recording during a run (docs/model.md §9).

Each table is a set of columns appended to as the run goes; numbers go into
``array('d')`` (8 bytes a value), everything else into lists. The run takes the
rows over at each of its steps (:meth:`ChangePointRecorder.take`) and
``results.tables`` turns them into DataFrames chunk by chunk, so the recorder only
ever holds one step's rows.

A *series* (:meth:`ChangePointRecorder.series`) is the cheap form for the change
points of one key (a host, a CPU node): the key's columns are stored once and each
row is one ``array.extend`` of its numbers. A chunk holds the rows of each series
in turn, each in time order, its text keys as categoricals; ``results.tables`` sorts
a chunk by time.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from fleet_sim.model.protocols import Appender, SeriesWriter

ALL_TABLES = ("hosts", "workloads", "instances", "jobs", "events", "links", "timeline")

#: columns stored as float arrays; every other column is a list
FLOAT_COLUMNS = frozenset({
    "t", "arrival", "start", "finish", "work_core_s", "max_cores", "cpu_used_cores",
    "cpu_capacity_cores", "power_w", "ram_used_mib", "ram_capacity_mib", "demand_cores",
    "allocated_cores", "throttled_cores", "contention_cores", "speed", "allocated_mb_s",
    "bytes_mb", "cpu_cores", "ram_mib", "duration_s", "count",
})

#: the typed columns of an event, with their value when an event has none
EVENT_FIELDS = {"host": "", "kernel": "", "cpu_cores": math.nan, "ram_mib": math.nan,
                "duration_s": math.nan, "count": math.nan}


class ChangePointRecorder:
    """Records the tables named in ``tables`` (default: all of them).

    Implements :class:`fleet_sim.model.protocols.Recorder`. Rows are buffered as
    tuples and moved into typed columns every ``FLUSH_ROWS`` rows, which keeps an
    append cheap (one list append) and memory at 8 bytes a number.
    """

    FLUSH_ROWS = 4096

    def __init__(self, tables: Iterable[str] | None = None):
        wanted = ALL_TABLES if tables is None else tuple(tables)
        unknown = set(wanted) - set(ALL_TABLES)
        if unknown:
            raise ValueError(f"unknown tables {sorted(unknown)}; allowed: {list(ALL_TABLES)}")
        self.wanted = frozenset(wanted)
        self._cols: dict[str, dict[str, array | list]] = {}
        self._bufs: dict[str, list[tuple]] = {}
        self._series: dict[str, list[_Series]] = {}
        self._series_names: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._events = self.columns("events", ("t", "kind", "entity", *EVENT_FIELDS,
                                               "detail"))

    def wants(self, table: str) -> bool:
        """Whether ``table`` is being recorded."""
        return table in self.wanted

    @property
    def data(self) -> dict[str, dict[str, array | list]]:
        """All recorded columns, ``data[table][column]`` (flushes the buffers)."""
        for table in self._bufs:
            self._flush(table)
        out: dict[str, dict[str, array | list]] = dict(self._cols)
        for table in self._series:
            out[table] = _joined(self._cols.get(table), self._series_columns(table, math.inf,
                                                                             remove=False))
        return out

    @property
    def rows(self) -> int:
        """Rows held, over every table (recorded and not yet taken)."""
        held = sum(len(b) for b in self._bufs.values())
        held += sum(len(s.data) // s.width for group in self._series.values() for s in group)
        return held + sum(len(next(iter(c.values()))) for c in self._cols.values() if c)

    def take(self, table: str, before_t: float = math.inf) -> dict[str, array | list]:
        """Remove and return the rows of ``table`` recorded so far (those with
        ``t < before_t`` if it has a ``t`` column), as columns in recording order.

        A run hands its rows over this way as it goes, so the recorder holds only
        what was recorded since; rows at or after ``before_t`` stay (an instant is
        never split between two takes)."""
        if table in self._series:
            return _joined(self._take_rows(table, before_t),
                           self._series_columns(table, before_t, remove=True))
        return self._take_rows(table, before_t)

    def _take_rows(self, table: str, before_t: float) -> dict[str, array | list]:
        cols = self._cols.get(table)
        if cols is None:
            return {}
        self._flush(table)
        t = cols.get("t")
        if t is None or not len(t) or max(t) < before_t:
            self._cols[table] = {n: array("d") if isinstance(c, array) else []
                                 for n, c in cols.items()}
            return cols
        later = np.frombuffer(t, dtype=float) >= before_t
        keep, out = np.flatnonzero(later), np.flatnonzero(~later)
        taken, kept = {}, {}
        for n, c in cols.items():
            values = np.frombuffer(c, dtype=float) if isinstance(c, array) else np.array(c,
                                                                                     object)
            taken[n], kept[n] = values[out].tolist(), values[keep].tolist()
            if isinstance(c, array):
                taken[n], kept[n] = array("d", taken[n]), array("d", kept[n])
        self._cols[table] = kept
        return taken

    def _flush(self, table: str) -> None:
        buf = self._bufs[table]
        if buf:
            for col, values in zip(self._cols[table].values(), zip(*buf, strict=True), strict=True):
                col.extend(values)
            buf.clear()

    def columns(self, table: str, names: Sequence[str]) -> Appender | None:
        """An ``append(*values)`` writing one row of ``table`` (None if not recorded).

        Several parts of the model may append to one table with the same names.
        """
        if table not in self.wanted:
            return None
        cols = self._cols.get(table)
        if cols is None:
            cols = self._cols[table] = {
                n: array("d") if n in FLOAT_COLUMNS else [] for n in names
            }
            self._bufs[table] = []
        elif tuple(cols) != tuple(names):
            raise ValueError(f"table {table!r} has columns {tuple(cols)}, not {tuple(names)}")
        buf = self._bufs[table]
        add = buf.append
        limit = self.FLUSH_ROWS
        flush = self._flush

        def append(*values: object) -> None:
            add(values)
            if len(buf) >= limit:
                flush(table)

        return append

    def series(self, table: str, names: Sequence[str],
               key: Mapping[str, object]) -> SeriesWriter | None:
        """A ``write(values)`` for the rows of one key of ``table`` (None if not recorded).

        ``names``: the table's recorded columns; ``key``: the columns that hold the
        same value on every row of this series (e.g. ``{"host": "std001"}``);
        ``values``: a tuple of the other columns' numbers, in ``names`` order. Rows
        of one series must come in time order (``t`` non-decreasing).
        """
        if table not in self.wanted:
            return None
        names = tuple(names)
        values = tuple(n for n in names if n not in key)
        spec = self._series_names.setdefault(table, (names, values))
        if spec != (names, values) or key.keys() - set(names):
            raise ValueError(f"table {table!r} has series columns {spec[0]} with values "
                             f"{spec[1]}, not {names} with key {tuple(key)}")
        series = _Series(tuple(key[n] for n in names if n in key), len(values))
        self._series.setdefault(table, []).append(series)
        return series.data.extend

    def _series_columns(self, table: str, before_t: float,
                        remove: bool) -> dict[str, np.ndarray]:
        """The rows of ``table``'s series with ``t < before_t``, as columns (taken out
        of the series if ``remove``)."""
        names, values = self._series_names[table]
        group = self._series[table]
        t_at = values.index("t")
        blocks, counts = [], []
        for s in group:
            # a copy, not a view of the array's buffer: a buffer still exported when the
            # array is resized below raises BufferError (a sampling profiler in another
            # thread, as Dask workers run, can keep this frame's locals alive)
            rows = np.array(s.data, dtype=float).reshape(-1, s.width)
            n = int(np.searchsorted(rows[:, t_at], before_t, side="left"))
            blocks.append(rows[:n])
            counts.append(n)
            if remove and n:
                del s.data[:n * s.width]
        numbers = np.concatenate(blocks) if blocks else np.empty((0, len(values)))
        key_names = [n for n in names if n not in values]
        out: dict[str, np.ndarray | pd.Categorical] = {}
        for name in names:
            if name in values:
                out[name] = numbers[:, values.index(name)]
            else:
                out[name] = _key_column([s.key[key_names.index(name)] for s in group], counts)
        return out

    def event(self, t: float, kind: str, entity: str, detail: str = "",
              **fields: str | float) -> None:
        """Record one discrete event; ``fields`` are its typed columns (``host``,
        ``kernel``, ``cpu_cores``, ``ram_mib``, ``duration_s``, ``count``; see the
        ``events`` table in :mod:`fleet_sim.results.schema`)."""
        if self._events is not None:
            unknown = fields.keys() - EVENT_FIELDS.keys()
            if unknown:
                raise ValueError(f"unknown event fields {sorted(unknown)} "
                                 f"(allowed: {', '.join(EVENT_FIELDS)})")
            self._events(t, kind, entity, *(fields.get(k, v) for k, v in EVENT_FIELDS.items()),
                         detail)


class _Series:
    """The rows of one key of a table: its key values, and its numbers row after row."""

    __slots__ = ("data", "key", "width")

    def __init__(self, key: tuple, width: int):
        self.key = key
        self.width = width
        self.data = array("d")


def _key_column(of_series: list, counts: list[int]) -> np.ndarray | pd.Categorical:
    """A key column of series rows: each series' key value repeated over its ``counts``
    rows; text as a categorical made from codes (no string per row; None is missing)."""
    if not any(isinstance(v, str) for v in of_series):
        return np.repeat(np.array(of_series, dtype=float), counts)
    categories = list(dict.fromkeys(v for v in of_series if v is not None))
    code = {v: i for i, v in enumerate(categories)}
    codes = np.array([code.get(v, -1) for v in of_series], dtype=np.int32)
    return pd.Categorical.from_codes(np.repeat(codes, counts), categories=categories)


def _joined(rows: Mapping[str, Sequence], series: Mapping[str, Sequence]) -> dict:
    """The columns of rows appended row by row followed by those of series."""
    if not rows or not len(next(iter(rows.values()))):
        return dict(series)
    if set(rows) != set(series):
        raise ValueError(f"rows with columns {tuple(rows)} and series with columns "
                         f"{tuple(series)} in one table")
    out: dict[str, Sequence] = {}
    for n in rows:
        if isinstance(series[n], pd.Categorical):
            out[n] = pd.Categorical([*rows[n], *np.asarray(series[n], dtype=object)])
        else:
            out[n] = np.concatenate([np.asarray(rows[n], dtype=float), series[n]])
    return out
