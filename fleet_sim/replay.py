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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import simpy

from fleet_sim.errors import FleetSimError
from fleet_sim.model.collection import long_run
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import Job, JobFeed, JobWorkload, TraceJobs
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.scenarios.traces import JOB_TRACE_COLUMNS, read_job_trace

OUTPUT_COLUMNS = ["job_id", "workload", "arrival", "start", "finish"]


class _BusyTraceJobs(TraceJobs):
    """One workload's trace jobs; the workload hangs under its host only while it has
    jobs, so a host's idle workloads (finished, or not yet started) cost nothing
    when it re-shares. Idle workloads get no CPU: the shares are the same."""

    def fire(self, sched, t: float) -> float | None:
        wl = self.workload
        if wl.parent is None:  # type: ignore[union-attr]
            sched.attach(wl, sched.root)
        return super().fire(sched, t)


class _LoneJobs(JobFeed):
    """The jobs of a host's one-job workloads, each hung straight under the host's root:
    a workload of one job, weight 1 and no cap gets what its job would alone, so the
    shares are the same without the workload's node."""

    def __init__(self, rows: list[tuple[float, float, float, int, JobWorkload]]):
        super().__init__()
        self.rows = rows
        self._next = 0  # the row fired next

    def arrivals(self):
        return ((t, work, cores, job_id) for t, work, cores, job_id, _ in self.rows)

    def fire(self, sched, t: float) -> float | None:
        _, work, cores, job_id = self._pending  # type: ignore[misc]
        job = Job(work, cores, job_id, t)
        job.workload = self.rows[self._next][4]
        self._next += 1
        sched.submit(job, sched.root)
        self._pending = next(self._it, None)  # type: ignore[arg-type]
        return None if self._pending is None else self._pending[0]


def _detach_when_idle(host: Host) -> None:
    """After each job, take its workload off the host if it has nothing left to run."""
    record = host.cpu.on_job_done

    def done(job) -> None:
        record(job)  # type: ignore[misc]
        wl = job.workload
        if wl.parent is not None and not wl.children and all(f.exhausted for f in wl.feeds):
            host.cpu.detach(wl)

    host.cpu.on_job_done = done


def replay(trace: str | Path | pd.DataFrame, cores: float, speed: float = 1.0) -> pd.DataFrame:
    """Run every job of ``trace`` (a path or a frame as from ``read_job_trace``) to completion.

    Returns the frame ``job_id, workload, arrival, start, finish`` (s), by job_id.
    Raises TraceError for a malformed file, ValueError for ``cores <= 0``.
    """
    if not cores > 0:
        raise ValueError(f"--cores must be > 0, got {cores!r}")
    with long_run():
        jobs = _read(trace) if not isinstance(trace, pd.DataFrame) else trace
        return _replay(jobs, cores, speed)


def _read(path: str | Path) -> pd.DataFrame:
    """The trace as :func:`read_job_trace` returns it. A file it would accept as it is
    (exact header, finite numbers in range, non-empty names without surrounding
    blanks) is read by pyarrow, many times faster; anything else goes through
    ``read_job_trace``, which names the first bad row and column."""
    numbers = {"time": pa.float64(), "core_seconds": pa.float64(), "max_cores": pa.float64()}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={**numbers, "host": pa.string(), "workload": pa.string()},
            strings_can_be_null=False))
    except (pa.ArrowException, OSError, UnicodeError):
        return read_job_trace(path)
    if sorted(table.column_names) != sorted(JOB_TRACE_COLUMNS):
        return read_job_trace(path)
    cols = {c: table[c] for c in JOB_TRACE_COLUMNS}
    ok = all(cols[c].null_count == 0 and pc.all(pc.is_finite(cols[c])).as_py()
             for c in numbers)
    ok = ok and pc.min(cols["time"]).as_py() >= 0 and pc.min(cols["core_seconds"]).as_py() >= 0
    ok = ok and pc.min(cols["max_cores"]).as_py() > 0
    for c in ("host", "workload"):
        ok = ok and pc.min(pc.utf8_length(cols[c])).as_py() > 0
        ok = ok and pc.all(pc.equal(pc.utf8_trim_whitespace(cols[c]), cols[c])).as_py()
    if not ok or table.num_rows == 0:
        return read_job_trace(path)
    jobs = pd.DataFrame({"job_id": np.arange(table.num_rows, dtype=np.int64),
                         **{c: cols[c].to_numpy() for c in JOB_TRACE_COLUMNS}})
    return jobs.sort_values("time", kind="stable", ignore_index=True)


def _replay(jobs: pd.DataFrame, cores: float, speed: float) -> pd.DataFrame:
    env = simpy.Environment()
    recorder = ChangePointRecorder(["jobs"])
    hosts: list[Host] = []
    # one stable sort by (host, workload) keeps each workload's jobs in time order
    by = jobs.sort_values(["host", "workload"], kind="stable", ignore_index=True)
    host_col, wl_col = by["host"], by["workload"]
    first = (host_col != host_col.shift()) | (wl_col != wl_col.shift())
    starts = np.flatnonzero(first.to_numpy()).tolist()
    rows = list(zip(*(by[c].tolist() for c in ("time", "core_seconds", "max_cores", "job_id")),
                    strict=True))
    host = None
    lone: dict[Host, list] = {}
    for a, b, host_name, wl_name in zip(starts, [*starts[1:], len(by)],
                                        host_col.iloc[starts].tolist(),
                                        wl_col.iloc[starts].tolist(), strict=True):
        if host is None or host.name != host_name:
            host = Host(env, str(host_name), cores=cores, speed=speed, recorder=recorder)
            _detach_when_idle(host)
            hosts.append(host)
            lone[host] = []
        wl = JobWorkload(host, str(wl_name), keep_jobs=False, attach=False)
        if b - a == 1:
            lone[host].append((*rows[a], wl))
        else:
            wl.add_feed(_BusyTraceJobs.of_rows(rows[a:b]))  # attaches it at its first job
    for host, jobs_alone in lone.items():
        if jobs_alone:
            jobs_alone.sort(key=lambda row: row[0])  # stable: trace order at equal times
            feed = _LoneJobs(jobs_alone)
            host.cpu.add_feed(feed, feed.first(None))  # type: ignore[arg-type]  # own workloads
    for host in hosts:
        host.finalize(math.inf)
    done = recorder.data.get("jobs", {})
    out = pd.DataFrame({c: done.get(c, []) for c in OUTPUT_COLUMNS})
    out["job_id"] = out["job_id"].astype("int64")
    return out.sort_values("job_id", ignore_index=True)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` as CSV (numbers in their shortest exact form); names are quoted
    only if one of them needs it (a comma, a quote, a line break)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
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
        out = replay(args.trace, args.cores, args.speed)
    except (FleetSimError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_csv(out, args.out)
    print(f"replayed {len(out)} jobs on {args.cores:g}-core hosts -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
