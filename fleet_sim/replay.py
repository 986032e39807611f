"""Replay a job trace on hosts of C cores (docs/model.md §3.3).

    python -m fleet_sim.replay TRACE.csv --cores C --out FINISHED.csv

The trace has columns ``time,host,workload,core_seconds,max_cores``. Each host
named in the file gets ``C`` cores; the workloads on a host share it equally and
the jobs of one workload share its allocation by max-min (each wanting at most
``max_cores``). The output has one row per job: ``job_id,workload,arrival,start,
finish`` where ``job_id`` is the job's row index in the trace (0-based).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import simpy

from fleet_sim.errors import FleetSimError
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import Job, JobWorkload, TraceJobs

if TYPE_CHECKING:  # pandas only for the frame replay() returns: the command line needs none
    import pandas as pd

OUTPUT_COLUMNS = ["job_id", "workload", "arrival", "start", "finish"]
#: the trace's columns as the fast reader reads them (a few hosts: dictionary-encoded)
TRACE_TYPES = {"time": pa.float64(), "host": pa.dictionary(pa.int32(), pa.string()),
               "workload": pa.string(),
               "core_seconds": pa.float64(), "max_cores": pa.float64()}
NUMBERS = ("time", "core_seconds", "max_cores")
#: the CSV reader's block: one thread with small blocks holds the least beside the table
#: (reading the 16 MB benchmark trace peaks 16–20 MiB above the imports; with pyarrow's
#: default 1 MiB blocks on every core, 31–34)
READ_BLOCK_BYTES = 256 << 10


class _BusyTraceJobs(TraceJobs):
    """One workload's trace jobs; the workload hangs under its host only while it has
    jobs, so a host's idle workloads (finished, or not yet started) cost nothing
    when it re-shares. Idle workloads get no CPU: the shares are the same."""

    def fire(self, sched, t: float) -> float | None:
        wl = self.workload
        if wl.parent is None:  # type: ignore[union-attr]
            sched.attach(wl, sched.root)
        return super().fire(sched, t)


class _LoneJobs(TraceJobs):
    """The jobs of a host's one-job workloads, each hung straight under the host's root:
    a workload of one job, weight 1 and no cap gets what its job would alone, so the
    shares are the same without the workload's node (and without a workload object:
    the output takes the workload's name from the trace)."""

    def fire(self, sched, t: float) -> float | None:
        _, work, cores, job_id = self._pending  # type: ignore[misc]
        sched.submit(Job(work, cores, job_id, t), sched.root)
        self._pending = next(self._it, None)  # type: ignore[arg-type]
        return None if self._pending is None else self._pending[0]


def replay(trace: str | Path | pd.DataFrame, cores: float, speed: float = 1.0) -> pd.DataFrame:
    """Run every job of ``trace`` (a path or a frame as from ``read_job_trace``) to completion.

    Returns the frame ``job_id, workload, arrival, start, finish`` (s), by job_id.
    Raises TraceError for a malformed file, ValueError for ``cores <= 0``.
    """
    return finished(trace, cores, speed).to_pandas()


def finished(trace: str | Path | pd.DataFrame, cores: float, speed: float = 1.0) -> pa.Table:
    """:func:`replay`'s rows as an arrow table (what the command line writes)."""
    if not cores > 0:
        raise ValueError(f"--cores must be > 0, got {cores!r}")
    # hosts run one by one, so no large model lives long: no need for long_run()
    jobs = _read(trace) if isinstance(trace, str | Path) else _columns_of(trace)
    return _replay(jobs, cores, speed)


Columns = dict[str, pa.ChunkedArray]
"""A trace's columns ``time, host, workload, core_seconds, max_cores`` in file order
(the rows of ``read_job_trace`` by job_id), and ``job_id`` unless it is the row."""


def _read(path: str | Path) -> Columns:
    """The trace's columns. A file that :func:`read_job_trace` would accept as it is
    (exact header, finite numbers in range, non-empty names without surrounding
    blanks) is read by pyarrow, many times faster; anything else goes through
    ``read_job_trace``, which names the first bad row and column."""
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=TRACE_TYPES, strings_can_be_null=False),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=READ_BLOCK_BYTES),
            memory_pool=pa.system_memory_pool())  # malloc: what the reader frees, numpy reuses
    except (pa.ArrowException, OSError, UnicodeError):
        return _slow_read(path)
    if sorted(table.column_names) != sorted(TRACE_TYPES) or table.num_rows == 0:
        return _slow_read(path)
    cols = {c: table[c] for c in TRACE_TYPES}
    del table
    ok = all(cols[c].null_count == 0 and pc.all(pc.is_finite(cols[c])).as_py()
             for c in NUMBERS)
    ok = ok and pc.min(cols["time"]).as_py() >= 0 and pc.min(cols["core_seconds"]).as_py() >= 0
    ok = ok and pc.min(cols["max_cores"]).as_py() > 0
    host_names = pa.chunked_array([chunk.dictionary for chunk in cols["host"].chunks],
                                  pa.string())  # every row's name is in its chunk's
    for names in (host_names, cols["workload"]):
        ok = ok and pc.min(pc.utf8_length(names)).as_py() > 0
        ok = ok and pc.all(pc.equal(pc.utf8_trim_whitespace(names), names)).as_py()
    if not ok:
        return _slow_read(path)
    return cols


def _slow_read(path: str | Path) -> Columns:
    from fleet_sim.scenarios.traces import read_job_trace  # pandas: only for odd files

    columns = _columns_of(read_job_trace(path))
    del columns["job_id"]  # the row in the file
    return columns


def _columns_of(jobs: pd.DataFrame) -> Columns:
    """The columns of a frame as from ``read_job_trace``."""
    by_id = jobs.sort_values("job_id", kind="stable")[["job_id", *TRACE_TYPES]]
    table = pa.Table.from_pandas(by_id, preserve_index=False)
    return {c: table[c] for c in table.column_names} | {
        "host": pc.dictionary_encode(table["host"])}


def _hosts(hosts: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """The host names (dictionary-encoded) sorted as Python sorts ``str``, and each
    row's host as its position among them."""
    names = sorted({name for chunk in hosts.chunks for name in chunk.dictionary.to_pylist()})
    position = {name: i for i, name in enumerate(names)}
    codes = [np.array([position[name] for name in chunk.dictionary.to_pylist()],
                      np.int64)[_numpy(chunk.indices)] for chunk in hosts.chunks]
    return names, np.concatenate(codes) if codes else np.empty(0, np.int64)


def _codes(names: pa.ChunkedArray) -> np.ndarray:
    """Each row's name as its rank among the column's distinct names (1, 2, …), sorted
    as Python sorts ``str`` (by code point): codes order rows as their names do."""
    return _numpy(pc.rank(names, sort_keys="ascending", tiebreaker="dense")).view(np.int64)


def _numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column of numbers without nulls as a numpy array (pyarrow's ``to_numpy``
    would import pandas, 40 MiB that the command line does not need)."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    dtype = np.dtype(values.type.to_pandas_dtype())
    return np.frombuffer(values.buffers()[1], dtype, len(values), values.offset * dtype.itemsize)


def _arrow(values: np.ndarray) -> pa.Array:
    """A numpy array of numbers as an arrow array, without a copy (see :func:`_numpy`)."""
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                 [None, pa.py_buffer(values)])


def _replay(jobs: Columns, cores: float, speed: float) -> pa.Table:
    """Replay ``jobs`` one host after another (hosts share nothing), each with the
    feeds of :func:`_feeds`; takes out of ``jobs`` the columns it no longer needs.
    A job's id in the model is its row in ``jobs``."""
    n = len(jobs["time"])
    host_names, host = _hosts(jobs.pop("host"))
    by_host = np.argsort(host, kind="stable")  # each host's rows in trace order
    bounds = [0, *np.cumsum(np.bincount(host, minlength=len(host_names))).tolist()]
    del host
    workloads = jobs["workload"]
    start, finish = np.zeros(n), np.zeros(n)
    env = simpy.Environment()
    for host_name, lo, hi in zip(host_names, bounds[:-1], bounds[1:], strict=True):
        rows = by_host[lo:hi]
        at = _arrow(rows)  # a host's numbers are taken out as it runs: no copy of a column
        time, work, max_cores = (_numpy(jobs[c].take(at)) for c in NUMBERS)
        order, starts, lone = _feeds(_codes(workloads.take(at)), time)
        rows = rows[order]
        columns = (time[order], work[order], max_cores[order], rows)
        machine = Host(env, host_name, cores=cores, speed=speed)
        machine.cpu.on_job_done = _job_done(machine, memoryview(start), memoryview(finish))
        for a, b, alone in zip(starts.tolist(), [*starts[1:].tolist(), len(rows)],
                               lone.tolist(), strict=True):
            if alone:
                feed = _LoneJobs(*columns, start=a, stop=b)
                machine.cpu.add_feed(feed, feed.first(None))  # type: ignore[arg-type]
            else:
                wl = JobWorkload(machine, workloads[int(rows[a])].as_py(), keep_jobs=False,
                                 attach=False)
                wl.add_feed(_BusyTraceJobs(*columns, start=a, stop=b))  # attached at its 1st job
        machine.finalize(math.inf)
    ids = jobs["job_id"] if "job_id" in jobs else _arrow(np.arange(n, dtype=np.int64))
    return pa.Table.from_arrays(
        [ids, workloads, jobs["time"], _arrow(start), _arrow(finish)], names=OUTPUT_COLUMNS)


def _feeds(workload: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One host's jobs in the order its feeds deliver them (positions into ``workload``
    and ``time``, the host's rows in trace order), the position where each feed
    starts, and whether it is the host's feed of one-job workloads.

    A feed for each workload of several jobs, as their names sort (``workload``:
    codes from :func:`_codes`), with its jobs by time (trace order at equal times);
    then one feed of all the one-job workloads by time (name order at equal times)."""
    n = len(time)
    order = np.lexsort((time, workload))  # by workload, time; stable: trace order at ties
    of_row = workload[order]
    first = np.ones(n, bool)
    np.not_equal(of_row[1:], of_row[:-1], out=first[1:])
    size = np.diff(np.flatnonzero(first), append=n)
    lone = np.repeat(size == 1, size)
    of_row = time[order]
    of_row[~lone] = 0.0  # the busy workloads' jobs as they are, then the lone ones by time
    again = np.lexsort((of_row, lone))
    order, lone, first = order[again], lone[again], first[again]
    first[1:] = np.where(lone[1:], ~lone[:-1], first[1:])  # the lone jobs are one feed
    starts = np.flatnonzero(first)
    return order, starts, lone[starts]


def _job_done(host: Host, start: memoryview, finish: memoryview):
    """The host's job-done hook: note each job's start and finish (s) at its row, and
    take its workload off the host if it has nothing left to run."""
    detach = host.cpu.detach

    def done(job) -> None:
        start[job.job_id] = job.start
        finish[job.job_id] = job.finish
        wl = job.workload
        if (wl is not None and wl.parent is not None
                and all(f.exhausted for f in wl.feeds) and not wl.in_flight):
            detach(wl)

    return done


def write_csv(table: pa.Table | pd.DataFrame, path: str | Path) -> None:
    """Write ``table`` (or a frame) as CSV (numbers in their shortest exact form); names
    are quoted only if one of them needs it (a comma, a quote, a line break)."""
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    header = (",".join(table.column_names) + "\n").encode()
    for quoting in ("none", "needed"):  # "none" refuses a value that needs quotes
        try:
            with open(path, "wb") as f:
                f.write(header)
                pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False,
                                                             quoting_style=quoting))
            return
        except pa.ArrowInvalid:
            continue


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(
        prog="fleet-sim replay", description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  fleet-sim replay trace.csv --cores 8 --out finished.csv",
    )
    ap.add_argument("trace", help="CSV with time,host,workload,core_seconds,max_cores")
    ap.add_argument("--cores", type=float, required=True, help="cores of every host")
    ap.add_argument("--speed", type=float, default=1.0, help="per-core speed factor (1.0)")
    ap.add_argument("--out", required=True,
                    help="CSV to write: job_id,workload,arrival,start,finish")
    args = ap.parse_args(argv)
    try:
        out = finished(args.trace, args.cores, args.speed)
    except (FleetSimError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_csv(out, args.out)
    print(f"replayed {out.num_rows} jobs on {args.cores:g}-core hosts -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
