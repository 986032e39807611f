"""ChangePointRecorder: cheap columnar recording during a run (docs/model.md §9).

Each table is a set of columns appended to as the run goes; numbers go into
``array('d')`` (8 bytes a value), everything else into lists. The run takes the
rows over at each of its steps (:meth:`ChangePointRecorder.take`) and
``results.tables`` turns them into DataFrames chunk by chunk, so the recorder only
ever holds one step's rows.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence

import numpy as np

from fleet_sim.model.protocols import Appender

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
        return self._cols

    @property
    def rows(self) -> int:
        """Rows held, over every table (recorded and not yet taken)."""
        held = sum(len(b) for b in self._bufs.values())
        return held + sum(len(next(iter(c.values()))) for c in self._cols.values() if c)

    def take(self, table: str, before_t: float = math.inf) -> dict[str, array | list]:
        """Remove and return the rows of ``table`` recorded so far (those with
        ``t < before_t`` if it has a ``t`` column), as columns in recording order.

        A run hands its rows over this way as it goes, so the recorder holds only
        what was recorded since; rows at or after ``before_t`` stay (an instant is
        never split between two takes)."""
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
