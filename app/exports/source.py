"""Reading one dataset version's factors from the database as Arrow record batches.

Rows stream from the database in bounded batches and never gather in memory:
- PostgreSQL: ``COPY (SELECT …) TO STDOUT (FORMAT csv)`` on the session's own connection
  (same transaction), parsed by Arrow's streaming CSV reader in C, in a reader thread that
  runs ahead of the writer. ``bench/export.py`` measures it against a server-side cursor
  (``yield_per``) feeding ``pa.array`` (3-4x slower) and the ADBC PostgreSQL driver (10-25 %
  faster at reading, but another native libpq, its own connection outside the request's
  transaction, and an abort at interpreter exit in our trials): figures in the README.
- SQLite (and PostgreSQL when ``fast=False``): SQLAlchemy with ``yield_per`` (a server-side
  cursor on PostgreSQL; SQLite steps its cursor lazily anyway), batches transposed into
  Arrow arrays.

Either way each batch leaves here in the export schema, with the release and license
columns (constant over a version) filled in by Arrow, not per row.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import ColumnElement, select, text
from sqlalchemy.orm import Session

from app.core.db import AnySelect
from app.exports.schema import (
    COLUMNS,
    DICT,
    EXPORT_SCHEMA,
    ROW_COLUMNS,
    TIMESTAMP_UTC,
    ReleaseInfo,
    storage_type,
)
from app.factors.models import Factor, Source

DEFAULT_BATCH_ROWS = 16_384
# Arrow's CSV reader turns each block into one batch (~2k factor rows per MiB), and its
# streaming reader reads up to 32 blocks ahead on its I/O thread: 4 MiB blocks held 166 MB
# more at the peak of reading 1M factors than 1 MiB blocks (63 MB), for the same time.
CSV_BLOCK_BYTES = 1 << 20

_SOURCE_COLUMNS: dict[str, Any] = {
    "source_title": Source.title,
    "source_publisher": Source.publisher,
    "source_year": Source.year,
    "source_url": Source.url,
    "source_doi": Source.doi,
}
_BY_NAME = {column.name: column for column in COLUMNS}


def _row_column(name: str) -> ColumnElement[Any]:
    if name in _SOURCE_COLUMNS:
        labelled: ColumnElement[Any] = _SOURCE_COLUMNS[name].label(name)
        return labelled
    column: ColumnElement[Any] = getattr(Factor, name)
    return column


def version_rows_query(version_id: int) -> AnySelect:
    """The per-row columns of one version, in upload order (the factor table's id order)."""
    return (
        select(*(_row_column(name) for name in ROW_COLUMNS))
        .join(Source, Source.id == Factor.source_id)
        .where(Factor.version_id == version_id)
        .order_by(Factor.id)
    )


def _constant_dictionary(value: str | None, length: int) -> pa.Array:
    if value is None:
        return pa.nulls(length, DICT)
    indices = pa.repeat(pa.scalar(0, pa.int32()), length)
    return pa.DictionaryArray.from_arrays(indices, pa.array([value], pa.string()))


def assemble_batch(columns: dict[str, pa.Array], release: ReleaseInfo) -> pa.RecordBatch:
    """A batch in the export schema from the per-row columns of one release."""
    length = len(columns[ROW_COLUMNS[0]])
    constants: dict[str, pa.Array] = {
        "publisher": _constant_dictionary(release.publisher, length),
        "dataset": _constant_dictionary(release.dataset, length),
        "version": _constant_dictionary(release.version, length),
        "published_at": pa.repeat(pa.scalar(release.published_at, TIMESTAMP_UTC), length),
        "license_id": _constant_dictionary(release.license_id, length),
        "license_url": _constant_dictionary(release.license_url, length),
        "attribution": _constant_dictionary(release.attribution, length),
    }
    arrays: list[pa.Array] = []
    for column in COLUMNS:
        array = constants.get(column.name)
        if array is None:
            array = columns[column.name]
            if array.type != column.type:
                if pa.types.is_dictionary(column.type):
                    array = pc.dictionary_encode(array.cast(pa.string()))
                else:
                    array = array.cast(column.type)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=EXPORT_SCHEMA)


def _generic_batches(
    session: Session, release: ReleaseInfo, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    query = version_rows_query(release.version_id).execution_options(yield_per=batch_rows)
    types = [storage_type(_BY_NAME[name]) for name in ROW_COLUMNS]
    result = session.execute(query)
    try:
        for rows in result.partitions():
            transposed = zip(*rows, strict=True) if rows else ([] for _ in ROW_COLUMNS)
            columns = {
                name: pa.array(values, type=kind)
                for name, values, kind in zip(ROW_COLUMNS, transposed, types, strict=True)
            }
            yield assemble_batch(columns, release)
    finally:
        result.close()


class _CopyReader(io.RawIOBase):
    """A readable byte stream over the rows of ``COPY … TO STDOUT``."""

    def __init__(self, chunks: Iterator[memoryview]) -> None:
        self._chunks = chunks
        self._pending = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        pending = self._pending
        if len(pending) < wanted:
            for chunk in self._chunks:
                pending += chunk
                if len(pending) >= wanted:
                    break
        size = min(wanted, len(pending))
        buffer[:size] = pending[:size]
        del pending[:size]
        return size


def _postgres_copy_batches(session: Session, release: ReleaseInfo) -> Generator[pa.RecordBatch]:
    query = version_rows_query(release.version_id)
    connection = session.connection()
    # The text forms the CSV reader expects, whatever the server's defaults: ISO dates and
    # floats in shortest exact form (PostgreSQL >= 12). Both last until the transaction ends.
    connection.execute(text("SET LOCAL datestyle = 'ISO, YMD'"))
    connection.execute(text("SET LOCAL extra_float_digits = 1"))
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    dbapi_connection: Any = connection.connection.driver_connection
    # Dictionary columns arrive as text and are encoded per batch by assemble_batch.
    column_types = {name: storage_type(_BY_NAME[name]) for name in ROW_COLUMNS}
    with (
        dbapi_connection.cursor() as cursor,
        cursor.copy(f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)") as copy,
    ):
        reader = pacsv.open_csv(
            _CopyReader(iter(copy)),
            read_options=pacsv.ReadOptions(
                column_names=list(ROW_COLUMNS), block_size=CSV_BLOCK_BYTES, use_threads=False
            ),
            # PostgreSQL writes NULL unquoted and empty, an empty string as "".
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            yield assemble_batch(dict(zip(ROW_COLUMNS, batch.columns, strict=True)), release)


_END = object()


def prefetched(batches: Generator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """The same batches, produced by a reader thread up to `depth` ahead of the consumer.

    The database, Arrow's CSV parser and the Parquet encoder then work at the same time (the
    latter two release the GIL). The consumer must not use the producer's session meanwhile.
    """
    slots: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)
        finally:
            batches.close()

    reader = threading.Thread(target=produce, name="efdb-export-reader", daemon=True)
    reader.start()
    try:
        while (item := slots.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def release_batches(
    session: Session,
    release: ReleaseInfo,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    fast: bool = True,
) -> Iterator[pa.RecordBatch]:
    """Every factor of one release, as record batches in the export schema."""
    if fast and session.get_bind().dialect.name == "postgresql":
        yield from prefetched(_postgres_copy_batches(session, release))
    else:
        yield from _generic_batches(session, release, batch_rows)
