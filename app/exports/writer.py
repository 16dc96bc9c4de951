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
import queue
import struct
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
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
        for table in row_group_tables(groups, schema, row_group_rows):
            writer.write_table(table, row_group_rows)
            if stream is not None:
                stream.write_table(table)
            rows += table.num_rows
            del table  # not held while the next row group is read
    return ExportFiles(
        written(target), written(arrows_target) if arrows_target is not None else None, rows
    )


def row_group_tables(
    groups: Iterable[Iterable[pa.RecordBatch]], schema: pa.Schema, row_group_rows: int
) -> Iterator[pa.Table]:
    """The batches gathered into tables of at most `row_group_rows` rows (each one row group)
    that never span two groups: the batches are sliced, never copied."""
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
                    yield pa.Table.from_batches(pending, schema=schema)
                    pending, pending_rows = [], 0
        if pending_rows:
            yield pa.Table.from_batches(pending, schema=schema)


def parquet_batches(
    path: Path, batch_rows: int, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """A Parquet export's batches, read through a small buffer (never a whole row group)."""
    with pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False) as parquet:
        yield from parquet.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False)


def arrow_file_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """An Arrow IPC file export's batches, one at a time (read, not memory-mapped, so that
    the file's pages do not count in the process's memory). Every batch of an IPC file
    shares one dictionary per column."""
    with pa.OSFile(str(path)) as source, ipc.open_file(source) as reader:
        for index in range(reader.num_record_batches):
            yield reader.get_batch(index)


def arrow_file_dictionaries(path: Path) -> dict[str, list[Any]]:
    """The values of each dictionary column of an Arrow IPC file export (its one dictionary
    per column, read with its first batch)."""
    with pa.OSFile(str(path)) as source, ipc.open_file(source) as reader:
        if reader.num_record_batches == 0:
            return {}
        batch = reader.get_batch(0)
        return {
            field.name: batch.column(index).dictionary.to_pylist()
            for index, field in enumerate(batch.schema)
            if pa.types.is_dictionary(field.type)
        }


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
    # The dictionary columns alone: a column's dictionaries do not depend on the others read.
    names = [schema.field(index).name for index in encoded]
    for batch in parquet_batches(source, IPC_BATCH_ROWS, columns=names):
        for position, index in enumerate(encoded):
            seen[index].update(dict.fromkeys(batch.column(position).dictionary.to_pylist()))
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


# The IPC file format is the stream format (schema, dictionaries, batches, end-of-stream
# marker) between an 8-byte header (magic, padding) and a trailer: the footer, its length as a
# little-endian int32, the magic (https://arrow.apache.org/docs/format/Columnar.html#ipc-file-format).
_ARROW_MAGIC = b"ARROW1"
_ARROW_FILE_HEADER = 8
_ARROW_FILE_TRAILER = 4 + len(_ARROW_MAGIC)


def arrow_file_stream_range(path: Path) -> tuple[int, int]:
    """Where the IPC stream inside an Arrow IPC file starts and ends."""
    with path.open("rb") as handle:
        head = handle.read(_ARROW_FILE_HEADER)
        size = handle.seek(0, os.SEEK_END)
        handle.seek(size - _ARROW_FILE_TRAILER)
        trailer = handle.read(_ARROW_FILE_TRAILER)
    (footer,) = struct.unpack("<i", trailer[:4])
    end = size - _ARROW_FILE_TRAILER - footer
    if head[: len(_ARROW_MAGIC)] != _ARROW_MAGIC or trailer[4:] != _ARROW_MAGIC or end < 0:
        raise ValueError(f"{path.name} is not an Arrow IPC file")
    return _ARROW_FILE_HEADER, end


def write_stream_of_arrow_file(target: Path, source: Path) -> WrittenFile:
    """The Arrow IPC stream held in the Arrow IPC file `source` (which pyarrow wrote), its bytes
    copied out rather than encoded and compressed a second time, hashed as they are written
    and fsynced. pyarrow then reads the copy's messages (their bodies are not decompressed)
    to check that it is the file's schema and every one of its batches, ended as a stream
    ends."""
    with pa.memory_map(str(source)) as mapped, ipc.open_file(mapped) as file:
        schema, batches = file.schema, file.num_record_batches
    start, end = arrow_file_stream_range(source)
    with source.open("rb") as handle, contextlib.closing(_HashingFile(target)) as copy:
        handle.seek(start)
        left = end - start
        while left:
            chunk = handle.read(min(left, 1 << 20))
            if not chunk:
                raise ValueError(f"{source.name} ended before its footer")
            copy.write(chunk)
            left -= len(chunk)
    with pa.memory_map(str(target)) as mapped:
        stream = ipc.MessageReader.open_stream(mapped)
        first = stream.read_next_message()
        copied = sum(message.type == "record batch" for message in stream)
        ended = mapped.tell() == mapped.size()
    if (
        first.type != "schema"
        or not ipc.read_schema(first).equals(schema, check_metadata=True)
        or copied != batches
        or not ended
    ):
        raise ValueError(f"{target.name}: the stream copied out of {source.name} is not whole")
    return copy.written(target)


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


# --------------------------------------------------------------------------- snapshots


class _HashingFile:
    """A file object for `pa.PythonFile`: what pyarrow writes goes to `path` and through
    sha256 on the way, so a finished file's name is known without reading it back."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("wb")
        self._digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._digest.update(view)
        self._handle.write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def written(self, path: Path) -> WrittenFile:
        return WrittenFile(path.name, self._digest.hexdigest(), self.size)


@contextlib.contextmanager
def _hashed_sink(target: Path) -> Iterator[tuple[pa.NativeFile, _HashingFile]]:
    """An output stream for pyarrow onto `target` (buffered in Arrow, so Python sees 1 MiB
    writes), hashed as written and fsynced when closed."""
    hashing = _HashingFile(target)
    sink = pa.BufferedOutputStream(pa.PythonFile(hashing, mode="w"), buffer_size=1 << 20)
    try:
        yield sink, hashing
    finally:
        if not sink.closed:
            sink.close()
        hashing.close()


_DONE = object()


def _fan_out(tables: Iterator[pa.Table], consumers: list[Callable[[pa.Table], None]]) -> int:
    """Each table to every consumer, each consumer on its own thread (pyarrow's encoders
    release the GIL, so the formats are written at the same time as the next row group is
    read). The next table is read once every consumer has taken the last one: memory holds
    two row groups, the one being written and the one being read.
    The first error of any thread is raised here, after every thread has stopped."""
    stop = threading.Event()
    errors: list[BaseException] = []
    slots: list[queue.Queue[Any]] = [queue.Queue(1) for _ in consumers]

    def run(consume: Callable[[pa.Table], None], slot: queue.Queue[Any]) -> None:
        while True:
            table = slot.get()
            slot.task_done()
            if table is _DONE:
                return
            if not stop.is_set():  # after an error: take the rest, write nothing
                try:
                    consume(table)
                except BaseException as exc:
                    errors.append(exc)
                    stop.set()
            table = None  # not held while waiting for the next one

    threads = [
        threading.Thread(target=run, args=(consume, slot), name="efdb-snapshot-writer")
        for consume, slot in zip(consumers, slots, strict=True)
    ]
    for thread in threads:
        thread.start()
    rows = 0
    try:
        for table in tables:
            if stop.is_set():
                break
            for slot in slots:
                slot.put(table)
            rows += table.num_rows
            for slot in slots:
                slot.join()
            del table  # freed as soon as the writers are done with it
    except BaseException as exc:
        errors.append(exc)
        stop.set()
    finally:
        for slot in slots:
            slot.put(_DONE)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return rows


class SnapshotFiles(NamedTuple):
    parquet: WrittenFile
    arrows: WrittenFile
    arrow: WrittenFile
    rows: int


def write_snapshot_files(
    *,
    parquet_target: Path,
    arrows_target: Path,
    arrow_target: Path,
    groups: Iterable[Iterable[pa.RecordBatch]],
    dictionaries: dict[str, list[Any]],
    metadata: dict[str, str],
    row_group_rows: int = ROW_GROUP_ROWS,
) -> SnapshotFiles:
    """A snapshot's Parquet file and Arrow IPC file in one pass over the groups' batches (one
    group per dataset version), each written by pyarrow on its own thread from the same row
    groups, each file hashed as it is written; then the Arrow IPC stream, copied out of the
    IPC file (`write_stream_of_arrow_file`).

    The IPC file holds one dictionary per dictionary-encoded column for all its batches;
    `dictionaries` must hold every value of each such column (the releases' own IPC files'
    dictionaries, gathered before the first batch). Each batch's indices are mapped onto
    them, once per distinct source dictionary. The row groups and the file's batches (16,384
    rows, never spanning two row groups) are those `write_parquet` and `write_arrow_file`
    write; the stream holds the file's batches and dictionaries.
    """
    schema = EXPORT_SCHEMA.with_metadata(metadata)
    encoded = [index for index, item in enumerate(schema) if pa.types.is_dictionary(item.type)]
    unified = {
        index: pa.array(dictionaries.get(schema.field(index).name, []), pa.string())
        for index in encoded
    }
    index_types = {index: schema.field(index).type.index_type for index in encoded}
    with contextlib.ExitStack() as stack:
        parquet_sink, parquet_hash = stack.enter_context(_hashed_sink(parquet_target))
        arrow_sink, arrow_hash = stack.enter_context(_hashed_sink(arrow_target))
        parquet = stack.enter_context(pq.ParquetWriter(parquet_sink, schema, **PARQUET_OPTIONS))
        file = stack.enter_context(ipc.new_file(arrow_sink, schema, options=ipc_options()))
        # Per dictionary column: the last source dictionary seen and its positions in the
        # file's (None: the same values in the same order, the indices stand as they are).
        mappings: dict[int, tuple[pa.Array, pa.Array | None]] = {}

        def onto_file_dictionary(index: int, column: pa.DictionaryArray) -> pa.DictionaryArray:
            seen = mappings.get(index)
            if seen is None or not seen[0].equals(column.dictionary):
                mapping = None
                if not column.dictionary.equals(unified[index]):
                    mapping = pc.index_in(column.dictionary, value_set=unified[index]).cast(
                        index_types[index]
                    )
                    if mapping.null_count:
                        raise ValueError(
                            f"{schema.field(index).name}: a value outside the IPC dictionary"
                        )
                seen = mappings[index] = (column.dictionary, mapping)
            indices = column.indices if seen[1] is None else seen[1].take(column.indices)
            return pa.DictionaryArray.from_arrays(indices, unified[index])

        def write_file(table: pa.Table) -> None:
            for offset in range(0, table.num_rows, IPC_BATCH_ROWS):
                piece = table.slice(offset, IPC_BATCH_ROWS)
                columns = []
                for index, chunked in enumerate(piece.columns):
                    if index in unified:
                        chunks = [onto_file_dictionary(index, chunk) for chunk in chunked.chunks]
                        columns.append(pa.concat_arrays(chunks) if len(chunks) != 1 else chunks[0])
                    elif chunked.num_chunks == 1:
                        columns.append(chunked.chunk(0))
                    else:
                        columns.append(chunked.combine_chunks())
                file.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))

        rows = _fan_out(
            row_group_tables(groups, schema, row_group_rows),
            [lambda table: parquet.write_table(table, row_group_rows), write_file],
        )
    return SnapshotFiles(
        parquet_hash.written(parquet_target),
        write_stream_of_arrow_file(arrows_target, arrow_target),
        arrow_hash.written(arrow_target),
        rows,
    )
