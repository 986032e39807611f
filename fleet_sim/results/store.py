"""The results store: one folder per run, Parquet tables plus ``manifest.json``.

Layout: ``<out>/<run_id>/{table}.parquet`` and ``<out>/<run_id>/manifest.json``,
where ``run_id`` is a content hash of the resolved config and seed. A run is
written to a temporary folder ``<out>/.tmp-…`` and renamed into place only when
complete, so a folder named by a run id always holds a whole run, even if the
writer was killed. The manifest carries the provenance:
resolved config, seed, replication, swept parameters, package version, wall time
and, for a failed run, the exception.

:func:`load` reads one run folder or a folder of runs into :class:`Results`,
whose tables carry ``run_id``, ``seed``, ``replication`` and one column per key
path in which the runs' resolved configs differ, so runs concatenate and group.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fleet_sim.errors import FleetSimError
from fleet_sim.results.schema import RUN_COLUMNS, STR, TABLES
from fleet_sim.results.tables import empty, replication_summary

MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
OK, FAILED = "ok", "failed"
#: rows of a long table handed out at a time by :meth:`Results.chunks` (at most)
CHUNK_ROWS = 1_000_000


# ---------------------------------------------------------------- writing
def temporary_folder(out_dir: str | os.PathLike[str], run_id: str) -> Path:
    """A new temporary folder in ``out_dir`` for writing run ``run_id`` (removed as
    stale by :func:`remove_stale_temporaries` once its writer is gone)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{TMP_PREFIX}{run_id}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def write_run(out_dir: str | os.PathLike[str], run_id: str,
              tables: Mapping[str, pd.DataFrame | Path], manifest: Mapping[str, Any]) -> Path:
    """Write one run atomically to ``out_dir/run_id``; return that folder.

    A table is a DataFrame, or a Parquet file already written (a spooled run: it is
    moved, so it should be on the same file system). A finished run already there is
    kept (a concurrent duplicate); a failed one is replaced.
    """
    out = Path(out_dir)
    tmp = temporary_folder(out, run_id)
    try:
        for name, frame in tables.items():
            if isinstance(frame, Path):
                shutil.move(frame, tmp / f"{name}.parquet")
            else:
                frame.to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        final = out / run_id
        if final.exists():
            if read_manifest(final).get("status") == OK:
                shutil.rmtree(tmp)
                return final
            trash = out / f"{TMP_PREFIX}old-{tmp.name[len(TMP_PREFIX):]}"
            os.replace(final, trash)
            shutil.rmtree(trash)
        os.replace(tmp, final)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_manifest(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of one run folder."""
    return json.loads((Path(run_dir) / MANIFEST).read_text())


def finished_run_ids(out_dir: str | os.PathLike[str]) -> set[str]:
    """Ids of the runs in ``out_dir`` that finished successfully."""
    out = Path(out_dir)
    if not out.is_dir():
        return set()
    done = set()
    for run_dir in _run_dirs(out):
        try:
            if read_manifest(run_dir).get("status") == OK:
                done.add(run_dir.name)
        except (OSError, ValueError):
            continue
    return done


def remove_stale_temporaries(out_dir: str | os.PathLike[str]) -> int:
    """Delete temporary folders left by killed writers on this machine; return how many.

    A temporary folder is stale when the process that made it (by host name and
    pid in its name) is gone; folders of live writers are left alone.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return 0
    host = socket.gethostname()
    removed = 0
    for tmp in out.glob(f"{TMP_PREFIX}*"):
        parts = tmp.name.rsplit("-", 3)
        if len(parts) != 4 or parts[1] != host or not parts[2].isdigit():
            continue
        if not _alive(int(parts[2])):
            shutil.rmtree(tmp, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir()
                  if p.is_dir() and not p.name.startswith(TMP_PREFIX) and (p / MANIFEST).is_file())


# ---------------------------------------------------------------- reading
def config_items(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A resolved config flattened to ``key.path → value``; list entries are named by
    their ``name`` (apps) or ``type`` (hosts) as in ``--set``, else by index, and a list
    of plain values stays one value (``apps.web.replicas``, ``fleet.hosts.std.cores``)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out |= config_items(value, path)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                label = item.get("name", item.get("type", i))
                out |= config_items(item, f"{path}.{label}")
        else:
            out[path] = tuple(value) if isinstance(value, list) else value
    return out


def differing_keys(manifests: Iterable[Mapping[str, Any]]) -> list[str]:
    """The key paths that tell runs apart: the swept parameters, then every key of the
    resolved configs whose value differs between runs and is not already determined by
    the keys before it (so ``apps[0].replicas`` swept does not add ``apps.web.replicas``).
    Seeds are never among them: runs that differ only by seed are replications."""
    manifests = list(manifests)
    keys: list[str] = []
    for m in manifests:
        keys += [p for p in m.get("params") or {} if p not in keys]
    items = [config_items(m.get("config") or {}) for m in manifests]
    rows = [[repr((m.get("params") or {}).get(k, it.get(k))) for k in keys]
            for m, it in zip(manifests, items, strict=True)]
    for key in dict.fromkeys(k for it in items for k in it):
        column = [repr(it.get(key)) for it in items]
        groups = {tuple(r) for r in rows}
        finer = {(tuple(r), v) for r, v in zip(rows, column, strict=True)}
        if key != "run.seed" and len(finer) > len(groups):  # tells some runs apart
            keys.append(key)
            for r, v in zip(rows, column, strict=True):
                r.append(v)
    return keys


def run_values(manifest: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The run's value of each key path: its swept value, else its resolved config's."""
    swept = manifest.get("params") or {}
    items = config_items(manifest.get("config") or {})
    return {k: swept[k] if k in swept else items.get(k) for k in keys}


def with_run_columns(frame: pd.DataFrame, manifest: Mapping[str, Any],
                     params: list[str], compact: bool = False) -> pd.DataFrame:
    """``frame`` with the run's id, seed, replication and distinguishing key paths in
    front (``compact``: text as categoricals, as :meth:`Results.table` gives slices)."""
    values = {"run_id": manifest["run_id"], "seed": manifest["seed"],
              "replication": manifest.get("replication", 0)}
    values |= {p: _cell(v) for p, v in run_values(manifest, params).items()}
    dtypes = {c.name: c.dtype for c in RUN_COLUMNS}
    n = len(frame)
    front = {}
    for column, value in values.items():
        if compact and (isinstance(value, str) or value is None):
            front[column] = pd.Categorical.from_codes(
                np.full(n, -1 if value is None else 0, dtype=np.int8),
                [] if value is None else [value])
        elif column in dtypes:
            front[column] = pd.Series(np.full(n, value), dtype=dtypes[column], index=frame.index)
        else:
            front[column] = pd.Series([value] * n, index=frame.index,
                                      dtype=object).infer_objects()
    if compact:  # a slice read for the caller alone: add the columns, copy nothing
        for i, (column, value) in enumerate(front.items()):
            frame.insert(i, column, value)
        return frame
    return pd.concat([pd.DataFrame(front, index=frame.index), frame], axis=1)


def _concat_categoricals(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate frames whose text columns are categoricals, keeping them so."""
    if len(frames) == 1:
        return frames[0]
    for column in frames[0].columns:
        if isinstance(frames[0][column].dtype, pd.CategoricalDtype):
            cats = pd.api.types.union_categoricals(
                [f[column].array for f in frames], ignore_order=True).categories
            for f in frames:
                f[column] = f[column].cat.set_categories(cats)
    return pd.concat(frames, ignore_index=True)


def _check_columns(name: str, columns: Iterable[str]) -> None:
    if name not in TABLES:
        raise KeyError(f"no table {name!r} (allowed: {', '.join(TABLES)})")
    unknown = [c for c in columns if c not in TABLES[name].names]
    if unknown:
        raise KeyError(f"table {name!r} has no column {unknown} "
                       f"(allowed: {', '.join(TABLES[name].names)})")


def _cell(value: Any) -> Any:
    """A config value as a table cell: lists and tables as compact JSON text."""
    if isinstance(value, tuple | list | dict):
        return json.dumps(list(value) if isinstance(value, tuple) else value,
                          separators=(",", ":"))
    return value


class Results:
    """The tables of one run or of many (a sweep), as pandas DataFrames.

    Tables are attributes (``res.hosts``, ``res.workloads``, ``res.jobs``,
    ``res.events``, ``res.summary``, … — see :mod:`fleet_sim.results.schema`),
    read lazily and cached. Every table starts with ``run_id``, ``seed``,
    ``replication`` and one column per key path in which the runs differ (e.g. ``hosting.mode``).
    ``runs`` has one row per run with its status, wall time and error;
    :meth:`summarize` gives the mean and 95 % confidence interval of each metric
    across replications.
    """

    def __init__(self, manifests: list[dict[str, Any]],
                 read_table: Callable[..., pd.DataFrame | None],
                 read_chunks: Callable[..., Iterator[pd.DataFrame]],
                 out_dir: Path | None = None):
        self.manifests = manifests
        self.out_dir = out_dir
        self._read_table = read_table
        self._read_chunks = read_chunks
        self._cache: dict[str, pd.DataFrame] = {}
        self.info: dict[str, Any] = {}
        """How the results were made, e.g. a sweep's planned/skipped/ran/failed."""
        self.params: list[str] = differing_keys(manifests)
        """The key paths in which the runs differ (swept or not), seeds aside: each
        table has a column per key, and summaries group by them."""

    # ------------------------------------------------------------ tables
    def table(self, name: str, columns: Sequence[str] | None = None,
              runs: Iterable[str] | None = None,
              where: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
        """Table ``name`` of every successful run, concatenated (read once, then cached).

        With ``columns`` (the table's columns wanted), ``runs`` (run ids) or ``where``
        (column → the values wanted, e.g. ``{"workload": ["web-0.requests"]}``), only
        those rows and columns are read from disk, every time, and not cached: the way
        to work with long tables. Text columns then come as categoricals, far smaller
        than strings.
        """
        if name not in TABLES:
            raise KeyError(f"no table {name!r} (allowed: {', '.join(TABLES)})")
        if columns is None and runs is None and where is None:
            if name not in self._cache:
                self._cache[name] = self._read(name, None, None)
            return self._cache[name]
        _check_columns(name, [*(columns or []), *(where or {})])
        return self._read(name, list(TABLES[name].names) if columns is None else list(columns),
                          None if runs is None else set(runs), where)

    def chunks(self, name: str, columns: Sequence[str], run: str,
               where: Mapping[str, Sequence[Any]] | None = None) -> Iterator[pd.DataFrame]:
        """Only ``columns`` of table ``name`` of run ``run`` (and the rows ``where`` says,
        as in :meth:`table`), in the stored order, as frames of at most
        :data:`CHUNK_ROWS` rows read one at a time: a table far larger than memory can be
        folded (text as categoricals; no run columns)."""
        manifest = next((m for m in self.manifests if m["run_id"] == run), None)
        if manifest is None or manifest.get("status") != OK:
            raise KeyError(f"no successful run {run!r}")
        _check_columns(name, [*columns, *(where or {})])
        return self._read_chunks(manifest, name, list(columns), where)

    def _read(self, name: str, columns: list[str] | None, runs: set[str] | None,
              where: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
        compact = columns is not None
        frames = []
        for m in self.manifests:
            if m.get("status") != OK or (runs is not None and m["run_id"] not in runs):
                continue
            frame = self._read_table(m, name, columns, where)
            if frame is not None:
                frames.append(with_run_columns(frame, m, self.params, compact=compact))
        if not frames:  # keep the columns and dtypes
            frame = empty(TABLES[name])
            frame = frame if columns is None else frame[columns]
            frames = [with_run_columns(frame, {"run_id": "", "seed": 0}, self.params,
                                       compact=compact)]
        if not compact:
            return pd.concat(frames, ignore_index=True)
        return _concat_categoricals(frames)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table the runs produced (recorded or derived), by name."""
        recorded = []
        for m in self.manifests:
            recorded += [t for t in m.get("tables", {}) if t not in recorded]
        return {name: self.table(name) for name in TABLES if name in recorded}

    @property
    def runs(self) -> pd.DataFrame:
        """One row per run: id, status, seed, replication, swept parameters, wall time, error."""
        rows = []
        for m in self.manifests:
            row = {"run_id": m["run_id"], "status": m.get("status"), "seed": m["seed"],
                   "replication": m.get("replication", 0)}
            row |= {p: _cell(v) for p, v in run_values(m, self.params).items()}
            exc = m.get("exception") or {}
            row |= {"wall_time_s": m.get("wall_time_s"),
                    "error": f"{exc.get('type')}: {exc.get('message')}" if exc else ""}
            rows.append(row)
        return pd.DataFrame(rows)

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest of the run (only for a single run)."""
        if len(self.manifests) != 1:
            raise ValueError(f"{len(self.manifests)} runs: pick one from .manifests")
        return self.manifests[0]

    @property
    def config(self) -> dict[str, Any]:
        """The full resolved config of the run (only for a single run)."""
        return self.manifest["config"]

    def summarize(self, table: str = "summary") -> pd.DataFrame:
        """Mean and 95 % CI half-width of each metric of ``summary`` (or
        ``workload_summary``, per workload) across replications of each sweep point."""
        by = [*self.params, *(["workload"] if table == "workload_summary" else [])]
        frame = self.table(table)
        metrics = [c.name for c in TABLES[table].columns if c.dtype in ("float64", "int64")]
        return replication_summary(frame, by, metrics)

    def __len__(self) -> int:
        return len(self.manifests)

    def __repr__(self) -> str:
        failed = sum(m.get("status") != OK for m in self.manifests)
        where = f" in {self.out_dir}" if self.out_dir else ""
        return (f"Results({len(self)} run(s), {failed} failed{where}; "
                f"tables: {', '.join(TABLES)})")


def _table_property(name: str) -> property:
    return property(lambda self: self.table(name), doc=TABLES[name].description)


for _name in TABLES:
    setattr(Results, _name, _table_property(_name))


def read_parquet(file: Path, columns: list[str] | None = None,
                 where: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
    """A stored table, whole; or only ``columns`` (and the rows whose ``where`` columns
    hold one of the values given), text as categoricals (the strings are
    dictionary-encoded in the file, so this costs no decoding), and NaN for a column
    the file lacks (written by an older version)."""
    if columns is None:
        return pd.read_parquet(file)
    schema = pq.read_schema(file)
    present = [c for c in columns if c in schema.names]
    text = [c for c in present if pa.types.is_string(schema.field(c).type)
            or pa.types.is_large_string(schema.field(c).type)]
    filters = [(c, "in", list(v)) for c, v in (where or {}).items()] or None
    frame = pq.read_table(file, columns=present, read_dictionary=text,
                          filters=filters).to_pandas(
        self_destruct=True, split_blocks=True)  # frees each column once converted
    pa.default_memory_pool().release_unused()  # what the read freed goes back to the OS
    if len(present) == len(columns):
        return frame
    return frame.assign(**{c: np.nan for c in columns if c not in present})[columns]


def read_parquet_chunks(file: Path, columns: list[str],
                        where: Mapping[str, Sequence[Any]] | None = None,
                        rows: int | None = None) -> Iterator[pd.DataFrame]:
    """As :func:`read_parquet` with ``columns``, a row group at a time (cut into frames
    of at most ``rows``, default :data:`CHUNK_ROWS`), in the file's order: what is held
    is one row group."""
    rows = CHUNK_ROWS if rows is None else rows
    schema = pq.read_schema(file)
    present = [c for c in columns if c in schema.names]
    text = [c for c in present if pa.types.is_string(schema.field(c).type)
            or pa.types.is_large_string(schema.field(c).type)]
    wanted = {c: pa.array([str(x) for x in v]) for c, v in (where or {}).items()}
    parquet = pq.ParquetFile(file, read_dictionary=text)
    for group in range(parquet.num_row_groups):
        part = parquet.read_row_group(group, columns=sorted({*present, *wanted}))
        for column, values in wanted.items():
            part = part.filter(_is_in(part[column], values))
        for a in range(0, part.num_rows, rows):
            frame = part.slice(a, rows).select(present).to_pandas()
            if len(present) < len(columns):
                frame = frame.assign(**{c: np.nan for c in columns if c not in present})
            yield frame[columns]
        del part
        pa.default_memory_pool().release_unused()


def _is_in(column: pa.ChunkedArray, values: pa.Array) -> pa.ChunkedArray:
    """Which rows of ``column`` hold one of ``values``; for a dictionary-encoded column
    decided once per distinct value."""
    if not pa.types.is_dictionary(column.type):
        return pc.is_in(column, value_set=values)
    return pa.chunked_array([pc.take(pc.is_in(c.dictionary, value_set=values), c.indices)
                             for c in column.chunks], pa.bool_())


def in_memory(manifest: dict[str, Any], tables: Mapping[str, pd.DataFrame | Path]) -> Results:
    """Results of one run held in memory (not read from a store)."""

    def read(m: dict[str, Any], name: str, columns: list[str] | None,
             where: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame | None:
        table = tables.get(name)
        if isinstance(table, Path):
            return read_parquet(table, columns, where)
        if table is None or columns is None:
            return table
        for column, values in (where or {}).items():
            table = table[table[column].isin(list(values))]
        return table[columns].astype({c: "category" for c in columns
                                      if TABLES[name].dtypes()[c] == STR})

    def chunks(m: dict[str, Any], name: str, columns: list[str],
               where: Mapping[str, Sequence[Any]] | None = None) -> Iterator[pd.DataFrame]:
        table = tables.get(name)
        if isinstance(table, Path):
            return read_parquet_chunks(table, columns, where)
        frame = read(m, name, columns, where)
        return iter(()) if frame is None else (
            frame.iloc[a:a + CHUNK_ROWS] for a in range(0, len(frame), CHUNK_ROWS))

    path = manifest.get("path")
    return Results([manifest], read, chunks, Path(path) if path else None)


def load(path: str | os.PathLike[str], run_ids: Iterable[str] | None = None) -> Results:
    """Read the runs stored under ``path`` (a run folder, or a folder of run folders),
    or only those of ``run_ids``.

    Raises FleetSimError if there is no finished or failed run there.
    """
    root = Path(path)
    if not root.is_dir():
        raise FleetSimError(f"{root}: no such results folder")
    dirs = [root] if (root / MANIFEST).is_file() else _run_dirs(root)
    if run_ids is not None:
        wanted = set(run_ids)
        dirs = [d for d in dirs if d.name in wanted]
    manifests = []
    for d in dirs:
        m = read_manifest(d)
        m["path"] = str(d)
        manifests.append(m)
    if not manifests:
        raise FleetSimError(f"{root}: no runs found (a run folder holds {MANIFEST})")
    manifests.sort(key=lambda m: (m.get("sweep_point", 0), m.get("replication", 0),
                                  m["run_id"]))

    def read(m: dict[str, Any], name: str, columns: list[str] | None,
             where: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame | None:
        file = Path(m["path"]) / f"{name}.parquet"
        return read_parquet(file, columns, where) if file.is_file() else None

    def chunks(m: dict[str, Any], name: str, columns: list[str],
               where: Mapping[str, Sequence[Any]] | None = None) -> Iterator[pd.DataFrame]:
        file = Path(m["path"]) / f"{name}.parquet"
        return read_parquet_chunks(file, columns, where) if file.is_file() else iter(())

    return Results(manifests, read, chunks, root)
