"""Read trace files: PlanetLab utilization, fleet-wide aggregates and job traces.

I/O lives here, at the edge; the model only sees arrays and frames.
Every malformed input raises :class:`~fleet_sim.errors.TraceError` naming the
file, the data row (1-based, the header is not counted; the file line is given
too), the column and what is allowed.

- PlanetLab (CloudSim format): one integer CPU % (0–100) per line, one line per
  300 s. :func:`read_planetlab` returns utilization fractions in [0, 1].
- Aggregates: CSV with a header, one row per 300 s; time comes from a
  ``timestamp`` column (s) when there is one.
- Job traces: CSV ``time,host,workload,core_seconds,max_cores`` (s, names,
  core-s, cores), one job per row (docs/model.md §3).

Real data ships with the package (see ``fleet_sim/data/README.md``): all ten
PlanetLab days, loaded by day with :func:`planetlab_day` (one compressed uint8
array per day, made from the CloudSim folders by :func:`pack_planetlab`); 20
single-VM files of day 2011-03-03 and the aggregates, found by
:func:`bundled_planetlab` and :func:`bundled_aggregate`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import overload

import numpy as np
import pandas as pd

from fleet_sim.errors import TraceError

PLANETLAB_INTERVAL_S = 300.0
"""Sampling interval of the PlanetLab traces: line k holds from k × 300 s."""
AGGREGATE_INTERVAL_S = 300.0
"""Sampling interval of the bundled aggregates: row i holds from i × 300 s."""
JOB_TRACE_COLUMNS = ("time", "host", "workload", "core_seconds", "max_cores")
"""Columns of a job-trace CSV, in any order (units: s, -, -, core-s, cores)."""

PLANETLAB_SAMPLES = 288
"""Samples per PlanetLab day: 288 × 300 s = 24 h."""

_BUNDLED_PLANETLAB = ("planetlab", "20110303")
_PLANETLAB_DAY = re.compile(r"[0-9]{8}")
_BUNDLED_AGGREGATES = {
    "google2019": "google2019_instance_usage_3days_300s.csv",
    "azurev2": "azurev2_vm_usage_3days_300s.csv",
}
_PERCENT = re.compile(r"[0-9]+")

PathLike = str | os.PathLike[str]


def _data_dir(*parts: str) -> Path:
    return Path(str(resources.files("fleet_sim").joinpath("data", *parts)))


@overload
def bundled_planetlab(name: None = None) -> list[Path]: ...
@overload
def bundled_planetlab(name: str) -> Path: ...
def bundled_planetlab(name: str | None = None) -> list[Path] | Path:
    """Paths of the PlanetLab VM traces shipped with the package (day 2011-03-03).

    Without ``name``: all of them, sorted by file name. With ``name`` (a file
    name): that one file. Read them with :func:`read_planetlab`.
    """
    files = sorted(p for p in _data_dir(*_BUNDLED_PLANETLAB).iterdir() if p.is_file())
    if name is None:
        return files
    for p in files:
        if p.name == name:
            return p
    raise TraceError(
        f"no bundled PlanetLab trace named {name!r} (allowed: {', '.join(p.name for p in files)})"
    )


@dataclass(frozen=True)
class PlanetLabDay:
    """One PlanetLab day: a CPU trace per VM, 288 samples of 300 s each.

    ``vms``: the VM (trace file) names, sorted; ``cpu_percent``: read-only uint8
    array of shape (VMs, 288), row i the CPU % (0–100) of ``vms[i]``, column k
    its mean over [k × 300 s, (k + 1) × 300 s).
    """

    day: str
    vms: tuple[str, ...]
    cpu_percent: np.ndarray

    def utilization(self) -> np.ndarray:
        """CPU utilization fractions in [0, 1], shape (VMs, 288) (a new float array)."""
        return self.cpu_percent / 100.0


def planetlab_days() -> tuple[str, ...]:
    """The bundled PlanetLab days (``YYYYMMDD``), sorted."""
    return tuple(sorted(p.stem for p in _data_dir("planetlab").glob("*.npz")))


@cache
def planetlab_day(day: str) -> PlanetLabDay:
    """The bundled PlanetLab day ``day`` (``YYYYMMDD``, one of :func:`planetlab_days`)."""
    days = planetlab_days()
    if day not in days:
        raise TraceError(
            f"no bundled PlanetLab day {day!r} (allowed: {', '.join(days)})"
        )
    with np.load(_data_dir("planetlab", f"{day}.npz"), allow_pickle=False) as z:
        vms, percent = z["vm"], z["cpu_percent"]
    percent.setflags(write=False)
    return PlanetLabDay(day, tuple(str(v) for v in vms), percent)


def pack_planetlab(folder: PathLike, out_dir: PathLike) -> Path:
    """Pack a CloudSim PlanetLab day folder (one file per VM) into ``out_dir/<day>.npz``.

    The folder's name is the day (``YYYYMMDD``); every file in it is read with
    :func:`read_planetlab` and must hold 288 samples. Writes the sorted file
    names (``vm``) and the percents as uint8 (``cpu_percent``, VMs × 288),
    compressed; returns the path written. This is how the bundled days were made.
    """
    folder = Path(folder)
    if not _PLANETLAB_DAY.fullmatch(folder.name):
        raise TraceError(f"{folder}: folder name is not a day (allowed: YYYYMMDD)")
    files = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.name)
    if not files:
        raise TraceError(f"{folder}: no trace files (allowed: one file per VM)")
    percent = np.empty((len(files), PLANETLAB_SAMPLES), dtype=np.uint8)
    for i, path in enumerate(files):
        u = read_planetlab(path)
        if u.size != PLANETLAB_SAMPLES:
            raise TraceError(
                f"{path}: {u.size} lines (allowed: {PLANETLAB_SAMPLES}, one per 300 s of a day)"
            )
        percent[i] = np.rint(u * 100.0)
    out = Path(out_dir) / f"{folder.name}.npz"
    np.savez_compressed(out, vm=np.array([p.name for p in files]), cpu_percent=percent)
    return out


def bundled_aggregate(name: str) -> Path:
    """Path of a bundled fleet-wide aggregate (3 days at 300 s): see ``data/README.md``."""
    try:
        return _data_dir("aggregates", _BUNDLED_AGGREGATES[name])
    except KeyError:
        raise TraceError(
            f"no bundled aggregate named {name!r} (allowed: {', '.join(_BUNDLED_AGGREGATES)})"
        ) from None


def _read_text(path: PathLike) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except FileNotFoundError:
        raise TraceError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise TraceError(f"{path}: cannot read file ({e.strerror or e})") from None


def read_planetlab(path: PathLike) -> np.ndarray:
    """Utilization fractions in [0, 1] from a PlanetLab file (one integer % per line).

    Line k is the VM's mean CPU utilization over [k × 300 s, (k + 1) × 300 s).
    """
    lines = _read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise TraceError(f"{path}: file is empty (allowed: one integer percent 0..100 per line)")
    out = np.empty(len(lines))
    for k, line in enumerate(lines):
        text = line.strip()
        if not _PERCENT.fullmatch(text) or int(text) > 100:
            raise TraceError(
                f"{path}: line {k + 1}: {text!r} is not a CPU percent "
                "(allowed: an integer from 0 to 100)"
            )
        out[k] = int(text) / 100.0
    return out


class _Table:
    """A CSV file as strings: header, cells per column, file line of each data row."""

    def __init__(self, path: PathLike):
        self.path = path
        reader = csv.reader(
            io.StringIO(_read_text(path), newline=""), skipinitialspace=True, strict=True
        )
        try:  # (file line, fields), blank lines skipped
            rows = [(reader.line_num, r) for r in reader if r]
        except csv.Error as e:
            raise TraceError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None
        if not rows:
            raise TraceError(f"{path}: file is empty (allowed: a header line, then data rows)")
        self.header = [h.strip() for h in rows[0][1]]
        for j, h in enumerate(self.header):
            if h in self.header[:j]:
                raise TraceError(f"{path}: header: column {h!r} appears twice")
        self.lines = [line for line, _ in rows[1:]]
        data = [r for _, r in rows[1:]]
        for k, row in enumerate(data):
            if len(row) != len(self.header):
                raise TraceError(
                    f"{path}: row {k + 1} (line {self.lines[k]}): {len(row)} fields "
                    f"(allowed: {len(self.header)}, one per column {','.join(self.header)})"
                )
        data = [[c.strip() for c in r] for r in data]
        self.cells = {h: [r[j] for r in data] for j, h in enumerate(self.header)}

    def where(self, row: int, column: str) -> str:
        """'file: row r (line l), column c' for 0-based data row ``row``."""
        return f"{self.path}: row {row + 1} (line {self.lines[row]}), column {column!r}"

    def require(self, columns: tuple[str, ...], exact: bool) -> None:
        """Raise unless every one of ``columns`` is present (and only those, if ``exact``)."""
        missing = [c for c in columns if c not in self.cells]
        if missing:
            raise TraceError(
                f"{self.path}: header: missing column(s) {', '.join(missing)} "
                f"(allowed: {','.join(columns) if exact else ','.join(self.header)})"
            )
        unknown = [c for c in self.header if c not in columns]
        if exact and unknown:
            raise TraceError(
                f"{self.path}: header: unknown column(s) {', '.join(unknown)} "
                f"(allowed: {','.join(columns)})"
            )

    def numbers(
        self, column: str, ok: Callable[[np.ndarray], np.ndarray], allowed: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cells of ``column`` as floats, and the mask of cells that are not allowed."""
        raw = self.cells[column]
        values = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(float)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | ~ok(values)
        return values, bad

    def fail_first(self, checks: list[tuple[str, np.ndarray, str]]) -> None:
        """Raise for the first bad cell over ``checks`` (column, bad mask, allowed)."""
        total = sum(int(bad.sum()) for _, bad, _ in checks)
        if total == 0:
            return
        firsts = [(int(np.argmax(bad)), k) for k, (_, bad, _) in enumerate(checks) if bad.any()]
        row, k = min(firsts)
        column, _, allowed = checks[k]
        value = self.cells[column][row]
        problem = "empty" if value == "" else f"{value!r} is not allowed"
        more = f"; {total - 1} more bad value(s) in the file" if total > 1 else ""
        raise TraceError(f"{self.where(row, column)}: {problem} (allowed: {allowed}){more}")


def read_aggregate(
    path: PathLike, column: str, interval_s: float = AGGREGATE_INTERVAL_S
) -> tuple[np.ndarray, np.ndarray]:
    """Times (s) and values of one column of an aggregate CSV (units as in the file).

    Times come from a ``timestamp`` column (s, strictly increasing) if the file
    has one, else row i is taken to start at ``i * interval_s``.
    """
    table = _Table(path)
    table.require((column,), exact=False)
    values, bad = table.numbers(column, lambda v: np.ones(v.shape, bool), "a finite number")
    checks = [(column, bad, "a finite number")]
    if "timestamp" in table.cells:
        t_s, bad_t = table.numbers("timestamp", lambda v: v >= 0, "a finite time >= 0 s")
        checks.append(("timestamp", bad_t, "a finite time >= 0 s"))
    else:
        t_s = np.arange(values.size) * float(interval_s)
    table.fail_first(checks)
    if t_s.size > 1 and (np.diff(t_s) <= 0).any():
        row = int(np.argmax(np.diff(t_s) <= 0)) + 1
        raise TraceError(
            f"{table.where(row, 'timestamp')}: {table.cells['timestamp'][row]!r} is not after "
            f"the previous row's (allowed: strictly increasing times)"
        )
    return t_s, values


def read_job_trace(path: PathLike) -> pd.DataFrame:
    """Jobs from a CSV ``time,host,workload,core_seconds,max_cores`` (columns in any order).

    Returns one row per job, sorted stably by ``time``, with columns ``job_id``
    (0-based position of the row in the file), ``time`` (s, >= 0), ``host``,
    ``workload`` (non-empty names), ``core_seconds`` (core-s, >= 0) and
    ``max_cores`` (cores, > 0).
    """
    table = _Table(path)
    table.require(JOB_TRACE_COLUMNS, exact=True)
    time_s, bad_time = table.numbers("time", lambda v: v >= 0, "a finite time >= 0 s")
    work, bad_work = table.numbers("core_seconds", lambda v: v >= 0, "a finite number >= 0")
    cores, bad_cores = table.numbers("max_cores", lambda v: v > 0, "a finite number > 0")
    names = {c: np.array([s == "" for s in table.cells[c]], bool) for c in ("host", "workload")}
    checks = [
        ("time", bad_time, "a finite time >= 0 s"),
        ("host", names["host"], "a non-empty host name"),
        ("workload", names["workload"], "a non-empty workload name"),
        ("core_seconds", bad_work, "a finite number >= 0"),
        ("max_cores", bad_cores, "a finite number > 0"),
    ]
    checks.sort(key=lambda c: table.header.index(c[0]))
    table.fail_first(checks)
    jobs = pd.DataFrame(
        {
            "job_id": np.arange(time_s.size, dtype=np.int64),
            "time": time_s,
            "host": pd.Series(table.cells["host"], dtype=str),
            "workload": pd.Series(table.cells["workload"], dtype=str),
            "core_seconds": work,
            "max_cores": cores,
        }
    )
    return jobs.sort_values("time", kind="stable", ignore_index=True)
