"""A run's tables spooled to Parquet as they grow: one file per table, a row group a chunk.

The :class:`~fleet_sim.results.fold.ChunkStore` of a stored run: the run writes each
step's rows here (strings dictionary-encoded, as pyarrow does by default) instead of
holding them, the summaries' further passes read them back a row group at a time, and
:func:`fleet_sim.results.store.write_run` moves the files into the run's folder.
Names starting with ``_`` are the fold's scratch data and are deleted by :meth:`close`.
Encoding and writing happen on one background thread (pyarrow releases the GIL while
it encodes), in the order the chunks came; reading waits for what is pending, and a
failed write is raised by the next call.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class ParquetSpool:
    """Chunks of tables written to ``folder/<name>.parquet`` (made if missing)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._pending: list[Future] = []

    def path(self, name: str) -> Path:
        """The file of table ``name``."""
        return self.folder / f"{name}.parquet"

    def append(self, name: str, frame: pd.DataFrame) -> None:
        """Write ``frame`` (not to be changed afterwards) as the next row group of
        table ``name``, in the background."""
        self._pending = [f for f in self._pending if not _done(f)]
        self._pending.append(self._thread.submit(self._write, name, frame))
        self.rows[name] = self.rows.get(name, 0) + len(frame)

    def _write(self, name: str, frame: pd.DataFrame) -> None:
        table = _plain_text(pa.Table.from_pandas(frame, preserve_index=False))
        writer = self._writers.get(name)
        if writer is None:
            writer = self._writers[name] = pq.ParquetWriter(self.path(name), table.schema)
        writer.write_table(table.cast(writer.schema))

    def _drain(self) -> None:
        """Wait for every pending write (raising the first that failed)."""
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()

    def chunks(self, name: str, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        """The row groups of ``name`` written so far, in order (only ``columns``)."""
        self._drain()
        writer = self._writers.pop(name, None)
        if writer is not None:  # a file is readable once its footer is written
            writer.close()
        if not self.path(name).is_file():
            return
        file = pq.ParquetFile(self.path(name))
        for i in range(file.num_row_groups):
            yield file.read_row_group(i, columns=list(columns)).to_pandas()

    def tables(self) -> dict[str, Path]:
        """Close every file and drop the scratch ones; the result tables by name."""
        self._drain()
        self._thread.shutdown()
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
        out = {}
        for name in list(self.rows):
            if name.startswith("_"):
                self.path(name).unlink(missing_ok=True)
            else:
                out[name] = self.path(name)
        return out

    def discard(self) -> None:
        """Close and delete everything (a run that failed)."""
        self._thread.shutdown(cancel_futures=True)
        self._pending = []
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
        shutil.rmtree(self.folder, ignore_errors=True)


def _done(f: Future) -> bool:
    if f.done():
        f.result()  # raise a failed write now
        return True
    return False


def _plain_text(table: pa.Table) -> pa.Table:
    """``table`` with its categorical (dictionary) columns as plain strings, which the
    file dictionary-encodes by itself: every chunk of a table has the same schema."""
    if not any(pa.types.is_dictionary(f.type) for f in table.schema):
        return table
    fields = [pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
              for f in table.schema]
    return table.cast(pa.schema(fields))  # no pandas metadata: it would say categorical
