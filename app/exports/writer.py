"""Writing export files: Parquet from record batches, Arrow IPC and CSV from the Parquet file.

Every file is written under a temporary name in its final directory and renamed into place
only when complete (``os.replace`` is atomic on POSIX), so a crash never leaves a half file
where one is served.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from app.core.formula import neutralise
from app.exports.schema import COLUMN_NAMES, COLUMNS, EXPORT_SCHEMA


def _return_memory_to_the_system() -> None:
    """Arrow's default allocator (mimalloc) keeps memory freed on another thread than the one
    that allocated it, which an export's reader thread does for every batch; a snapshot left
    the server hundreds of MB larger. jemalloc with immediate purging gives it back."""
    with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(0)


_return_memory_to_the_system()

PARQUET_COMPRESSION = "zstd"
# Parquet dictionary pages for the low-cardinality columns (Arrow dictionaries) and the small
# integers; the per-row text (names, descriptions, uid) and the measured values go plain, so
# the writer never builds, then abandons, a dictionary of unique values.
DICTIONARY_COLUMNS = [
    c.name for c in COLUMNS if pa.types.is_dictionary(c.type) or pa.types.is_integer(c.type)
]
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": PARQUET_COMPRESSION,
    "use_dictionary": DICTIONARY_COLUMNS,
    "write_page_index": True,
    "store_schema": True,
}
# Row groups hold one dataset version each (so a reader filtering on publisher/dataset skips
# the others by their statistics), split when a version is larger than this.
ROW_GROUP_ROWS = 65_536
IPC_BATCH_ROWS = 16_384
CSV_BATCH_ROWS = 8_192


@dataclass(frozen=True)
class WrittenFile:
    name: str
    sha256: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "bytes": self.bytes}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, renamed onto it when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield temporary
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)


def written(path: Path) -> WrittenFile:
    return WrittenFile(path.name, file_sha256(path), path.stat().st_size)


class ExportFiles(NamedTuple):
    parquet: WrittenFile
    arrows: WrittenFile | None  # the Arrow IPC stream
    rows: int


def ipc_options() -> ipc.IpcWriteOptions:
    return ipc.IpcWriteOptions(compression=PARQUET_COMPRESSION)


def write_parquet(
    target: Path,
    groups: Iterable[Iterable[pa.RecordBatch]],
    *,
    metadata: dict[str, str],
    row_group_rows: int = ROW_GROUP_ROWS,
    arrows_target: Path | None = None,
) -> ExportFiles:
    """Write groups of batches (one group per dataset version) as Parquet, and in the same
    pass, when `arrows_target` is given, as an Arrow IPC stream. (The Arrow IPC file is
    written afterwards from the Parquet file, `write_arrow_file`: a file holds one dictionary
    per column, known only once every batch has been seen.)

    Batches are gathered into row groups of at most `row_group_rows` rows that never span two
    groups, so memory holds at most one row group, whatever the size of the export.
    """
    schema = EXPORT_SCHEMA.with_metadata(metadata)
    rows = 0
    with contextlib.ExitStack() as stack:
        temporary = stack.enter_context(atomic_path(target))
        stream: ipc.RecordBatchStreamWriter | None = None
        if arrows_target is not None:
            arrows_temporary = stack.enter_context(atomic_path(arrows_target))
            sink = stack.enter_context(pa.OSFile(str(arrows_temporary), "wb"))
            stream = stack.enter_context(ipc.new_stream(sink, schema, options=ipc_options()))
        writer = stack.enter_context(pq.ParquetWriter(temporary, schema, **PARQUET_OPTIONS))

        def flush(pending: list[pa.RecordBatch]) -> int:
            table = pa.Table.from_batches(pending, schema=schema)
            writer.write_table(table, row_group_rows)
            if stream is not None:
                stream.write_table(table)
            count: int = table.num_rows
            return count

        for group in groups:
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            for batch in group:
                while batch.num_rows:
                    take = min(batch.num_rows, row_group_rows - pending_rows)
                    pending.append(batch.slice(0, take))
                    pending_rows += take
                    batch = batch.slice(take)
                    if pending_rows == row_group_rows:
                        rows += flush(pending)
                        pending, pending_rows = [], 0
            if pending_rows:
                rows += flush(pending)
    return ExportFiles(
        written(target), written(arrows_target) if arrows_target is not None else None, rows
    )


def parquet_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """A Parquet export's batches, read through a small buffer (never a whole row group)."""
    with pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False) as parquet:
        yield from parquet.iter_batches(batch_size=batch_rows, use_threads=False)


def write_arrow_file(target: Path, source: Path) -> WrittenFile:
    """The Arrow IPC file of a Parquet export (same schema and metadata), zstd buffers.

    An IPC file holds one dictionary per dictionary-encoded column for all its batches (no
    replacement), so two passes over the Parquet file: the first gathers each such column's
    dictionary values (low-cardinality columns: small), the second remaps every batch's
    indices onto them.
    Memory holds one batch and the dictionaries, whatever the size of the export.
    """
    schema = pq.read_schema(source)
    encoded = [index for index, item in enumerate(schema) if pa.types.is_dictionary(item.type)]
    seen: dict[int, dict[str, None]] = {index: {} for index in encoded}
    for batch in parquet_batches(source, IPC_BATCH_ROWS):
        for index in encoded:
            seen[index].update(dict.fromkeys(batch.column(index).dictionary.to_pylist()))
    dictionaries = {
        index: pa.array(list(values), type=schema.field(index).type.value_type)
        for index, values in seen.items()
    }
    with (
        atomic_path(target) as temporary,
        pa.OSFile(str(temporary), "wb") as sink,
        ipc.new_file(sink, schema, options=ipc_options()) as writer,
    ):
        for batch in parquet_batches(source, IPC_BATCH_ROWS):
            columns = list(batch.columns)
            for index in encoded:
                # The batch's own (small) dictionary mapped onto the file's, then its indices.
                column = columns[index]
                mapping = pc.index_in(column.dictionary, value_set=dictionaries[index]).cast(
                    schema.field(index).type.index_type
                )
                positions = mapping.take(column.indices)
                columns[index] = pa.DictionaryArray.from_arrays(positions, dictionaries[index])
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
    return written(target)


def write_arrow_stream(target: Path, source: Path) -> WrittenFile:
    """The Arrow IPC stream of a Parquet export (same schema and metadata), zstd buffers."""
    schema = pq.read_schema(source)
    with (
        atomic_path(target) as temporary,
        pa.OSFile(str(temporary), "wb") as sink,
        ipc.new_stream(sink, schema, options=ipc_options()) as writer,
    ):
        for batch in parquet_batches(source, IPC_BATCH_ROWS):
            writer.write_batch(batch)
    return written(target)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    # floats are written with repr(): the shortest form that reads back exactly.
    return value


def write_csv(target: Path, source: Path, *, bom: bool = False) -> WrittenFile:
    """The CSV of a Parquet export: UTF-8, a header row, formula-like text neutralised.

    `bom`: the file starts with the UTF-8 byte order mark, which Excel on Windows needs to
    read a CSV as UTF-8 rather than the system code page (Chinese names would be garbled)."""
    with (
        atomic_path(target) as temporary,
        temporary.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle,
    ):
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(COLUMN_NAMES)
        for batch in parquet_batches(source, CSV_BATCH_ROWS):
            columns = [column.to_pylist() for column in batch.columns]
            writer.writerows(
                [_csv_cell(value) for value in row] for row in zip(*columns, strict=True)
            )
    return written(target)


def write_csv_with_bom(target: Path, source: Path) -> WrittenFile:
    """The CSV of a Parquet export with the UTF-8 byte order mark (`export.csv?bom=1`)."""
    return write_csv(target, source, bom=True)
