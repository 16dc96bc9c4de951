"""Storing a version's factors and publishing it with its content hash."""

from __future__ import annotations

import contextlib
import operator
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import psycopg
from psycopg import Copy
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.core.audit import append_event
from app.core.bounds import BUDGET_KEY
from app.core.db import utcnow
from app.core.errors import Conflict
from app.core.problem_text import Message
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import DatasetVersion
from app.datasets.visibility import latest_resolvable, parse_semver
from app.factors.facets import record_release_facets
from app.factors.models import Factor
from app.factors.schemas import UPLOADABLE_FIELDS, FactorValues
from app.factors.search import index_released_factors
from app.factors.validation import data_quality_rating
from app.publishing.labels import publish_activity_labels
from app.publishing.sources import SourceCache
from app.signing.keys import ReleaseKeys
from app.signing.statements import ensure_release_statement, sign_checkpoint
from app.versioning.content_hash import compute_content_sha256

_SOURCE_FIELDS = {"source_title", "source_publisher", "source_year", "source_url", "source_doi"}
_STORED_FIELDS = [name for name in UPLOADABLE_FIELDS if name not in _SOURCE_FIELDS]


FACTOR_TABLE = Factor.metadata.tables["factor"]
DRAFT_TABLE = Factor.metadata.tables["factor_draft"]
_COPY_COLUMNS = [
    *_STORED_FIELDS,
    "uid",
    "version_id",
    "dataset_id",
    "source_id",
    "row_number",
    "dqr",
]
# A draft's rows also carry their place in the upload (1, 2, …): `factor_draft.position`.
_DRAFT_COLUMNS = [*_COPY_COLUMNS, "position"]
_stored_values = operator.attrgetter(*_STORED_FIELDS)


class FactorWriter:
    """Writes factor rows into the session's transaction, into `factor` or (`draft`) into
    `factor_draft`; the one place the two databases differ in how.

    PostgreSQL: one binary `COPY factor FROM STDIN` held open while rows come, so that the server
    stores them (indexes, constraints, triggers) while the caller validates the next ones on
    the other core; the connection can run nothing else meanwhile, so `pause()` ends the COPY
    before a query (the next row opens a new one). A COPY is one statement under the request's
    statement budget (`statement_timeout`, which counts the time it waits for rows too): one
    is ended, and the next begun, once it has been open a quarter of the budget. SQLite: rows
    gathered in batches of `batch_size`, each inserted with one executemany."""

    def __init__(self, session: Session, *, batch_size: int = 5000, draft: bool = False) -> None:
        self._session = session
        self.draft = draft
        self._table = DRAFT_TABLE if draft else FACTOR_TABLE
        self._columns = _DRAFT_COLUMNS if draft else _COPY_COLUMNS
        self._batch_size = batch_size
        self._copy_open = session.connection().dialect.name == "postgresql"
        self._stack = contextlib.ExitStack()
        self._copy: Copy | None = None
        self._batch: list[dict[str, Any]] = []
        budget_ms: int | None = session.info.get(BUDGET_KEY)
        self._copy_seconds = budget_ms / 4000 if budget_ms else None
        self._copy_ends_at = 0.0
        self._copy_rows = 0
        self._types: list[int] | None = None

    def write(self, row: Sequence[Any]) -> None:
        """One row, its values in `_COPY_COLUMNS` order (`_DRAFT_COLUMNS` for a draft)."""
        if not self._copy_open:
            self._batch.append(dict(zip(self._columns, row, strict=True)))
            if len(self._batch) >= self._batch_size:
                self.pause()
            return
        if self._copy is None:
            raw = self._session.connection().connection.driver_connection
            assert raw is not None
            cursor = self._stack.enter_context(raw.cursor())
            types = self._column_types(cursor)
            # The rows go to the server from a thread of psycopg's (a bounded queue of
            # buffers): this one validates the next rows meanwhile instead of waiting for the
            # socket whenever the server is slower for a moment.
            self._copy = self._stack.enter_context(
                cursor.copy(
                    f"COPY {self._table.name} ({', '.join(self._columns)}) FROM STDIN "
                    "(FORMAT binary)",
                    writer=QueuedLibpqWriter(cursor),
                )
            )
            self._copy.set_types(types)
            if self._copy_seconds is not None:
                self._copy_ends_at = time.monotonic() + self._copy_seconds
        self._copy.write_row(row)
        self._copy_rows += 1
        if (
            self._copy_seconds is not None
            and self._copy_rows % 1000 == 0
            and time.monotonic() > self._copy_ends_at
        ):
            self.pause()

    def _column_types(self, cursor: psycopg.Cursor[Any]) -> list[int]:
        if self._types is None:
            self._types = column_type_oids(cursor, self._table.name, self._columns)
        return self._types

    def pause(self) -> None:
        """Store what was written, so that the session may query (and see the rows)."""
        if self._batch:
            self._session.execute(insert(self._table), self._batch)
            self._batch = []
        if self._copy is not None:
            self._copy = None
            self._stack.close()  # ends the COPY: raises what the server refused

    def __enter__(self) -> FactorWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.pause()
        else:
            # An error in the caller: the COPY ends refused (the transaction is rolled back).
            self._batch = []
            self._copy = None
            self._stack.__exit__(exc_type, exc, traceback)


def column_type_oids(cursor: psycopg.Cursor[Any], table: str, columns: Sequence[str]) -> list[int]:
    """The type (OID) of each column, as the server has it, for a binary COPY into `table`
    (`copy.set_types`). A binary COPY sends each value in its column's own binary form, with
    no text to format and parse again (psycopg formats a factor row in about a third of the
    time it takes as text), so psycopg must know the column's type rather than guess one from
    the Python value (an `int` would go as whatever integer size fits it)."""
    cursor.execute(
        "SELECT attname, atttypid::int FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (table,),
    )
    oids = dict(cursor.fetchall())
    return [oids[column] for column in columns]


def store_factors(
    session: Session,
    *,
    version: DatasetVersion,
    records: Iterable[tuple[int, FactorValues]],
    batch_size: int = 5000,
    writer: FactorWriter | None = None,
) -> int:
    """Insert the records of a version as they come (memory bounded by a batch, whatever their
    number); returns the number of rows. A draft's go into `factor_draft` (they move into
    `factor` at submit: `app.publishing.draft_rows`), any other version's into `factor`.

    `writer`: one the caller holds open (a draft's, `FactorWriter(session, draft=True)`), so
    that it can `pause()` it between rows to query what was stored."""
    if writer is None:
        with FactorWriter(
            session, batch_size=batch_size, draft=version.status == "draft"
        ) as own_writer:
            return store_factors(session, version=version, records=records, writer=own_writer)
    sources = SourceCache(session)
    version_id, dataset_id = version.id, version.dataset_id
    draft = writer.draft
    uids = uuid4_hexes()
    count = 0
    for row_number, record in records:
        source_id = sources.cached_id(record)
        if source_id is None:
            writer.pause()  # a source not seen yet: the query needs the connection
            source_id = sources.source_id(record)
        count += 1
        row = (
            *_stored_values(record),
            next(uids),
            version_id,
            dataset_id,
            source_id,
            row_number,
            data_quality_rating(record),
            *((count,) if draft else ()),
        )
        writer.write(row)
    writer.pause()
    version.row_count = count
    return count


# A UUID4's bytes are random but for its version (the high nibble of byte 6: 4) and its
# variant (the two high bits of byte 8: 10), set on every 16th byte at once with a table.
_UUID4_VERSION = bytes((b & 0x0F) | 0x40 for b in range(256))
_UUID4_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))


def uuid4_hexes(batch: int = 4096) -> Iterator[str]:
    """`uuid.uuid4().hex`, one after another, from one `os.urandom` call per `batch`."""
    while True:
        block = bytearray(os.urandom(16 * batch))
        block[6::16] = block[6::16].translate(_UUID4_VERSION)
        block[8::16] = block[8::16].translate(_UUID4_VARIANT)
        text = block.hex()
        yield from (text[start : start + 32] for start in range(0, len(text), 32))


class ReviewedContentDiffers(Conflict):
    code, title = "reviewed-content-differs", "Not the content that was reviewed"


def publish(
    session: Session,
    *,
    version: DatasetVersion,
    reviewer: str,
    now: datetime | None = None,
    reviewed_sha256: str | None = None,
    keys: ReleaseKeys | None = None,
) -> DatasetVersion:
    """Freeze a version: content hash, timestamps, supersession, audit event (at `now`); with
    the release `keys`, also its signed release statement and an audit checkpoint (signed at
    the real time, whatever `now` says). Without them (seed loads) the statement is signed on
    its first request.

    The caller holds the dataset's lock (`app.datasets.service.lock_dataset`) and has checked
    that the version is newer than every release, so the release it supersedes is current.

    `reviewed_sha256`: the content hash the reviewer read; when the version's factors hash to
    anything else, nothing changes and the publish is refused (409).
    """
    content = compute_content_sha256(session, version.id)
    if reviewed_sha256 is not None and reviewed_sha256 != content:
        raise ReviewedContentDiffers(
            Message(
                "publish.reviewed_content_differs",
                version=version.version,
                content=content,
                reviewed=reviewed_sha256,
            ),
            extra={"content_sha256": content, "reviewed_sha256": reviewed_sha256},
        )
    # The release's search index and facet counts first: the status changes below raise the
    # catalogue's generation (a row lock until commit), which this long part need not hold.
    index_released_factors(session, version_id=version.id)
    record_release_facets(session, version_id=version.id)
    previous = latest_resolvable(session, dataset_id=version.dataset_id)
    published_at = now or utcnow()
    if previous is not None:
        previous.status = "deprecated"
        previous.deprecated_at = published_at
        # Written first: at no moment are two releases of a dataset "published" (the
        # database refuses that, see migration 20261204_0201).
        session.flush()
    version.content_sha256 = content
    version.status = "published"
    version.published_at = published_at
    version.published_by = reviewer
    if previous is not None:
        version.supersedes_id = previous.id
    session.flush()
    labelled = _publish_labels(session, version=version, published_at=published_at)
    append_event(
        session,
        actor=reviewer,
        action="version.published",
        subject_type="dataset_version",
        subject_id=str(version.id),
        payload={
            "version": version.version,
            "content_sha256": version.content_sha256,
            "row_count": version.row_count,
            **({"activity_labels": labelled} if labelled else {}),
        },
        occurred_at=version.published_at,
    )
    if keys is not None:
        ensure_release_statement(session, keys, version=version)
        sign_checkpoint(session, keys, actor=reviewer)
    return version


def _publish_labels(session: Session, *, version: DatasetVersion, published_at: datetime) -> int:
    """The activity labels the version's upload gave, into the vocabulary (same transaction)."""
    if not (version.validation_report or {}).get("activity_labels"):
        return 0
    publisher_id, publisher, dataset = session.execute(
        select(Publisher.id, Publisher.slug, Dataset.slug)
        .join(Dataset, Dataset.publisher_id == Publisher.id)
        .where(Dataset.id == version.dataset_id)
    ).one()
    return publish_activity_labels(
        session,
        version_id=version.id,
        report=version.validation_report,
        publisher_id=publisher_id,
        publisher=publisher,
        labelled_in=f"{publisher}/{dataset}@{version.version}",
        upload_file_name=version.upload_file_name,
        published_at=published_at,
    )


def release_directly(
    session: Session,
    *,
    dataset_id: int,
    version: str,
    records: Iterable[tuple[int, FactorValues]],
    actor: str,
    release_notes: str | None = None,
    file_name: str | None = None,
    file_sha256: str | None = None,
    upload_format: str = "csv",
) -> DatasetVersion:
    """Create, fill and publish a version in one step, for loads an administrator vouches for
    (seed data, benchmarks): the same rows, hash, statuses and audit events as an upload
    reviewed through the API, without the HTTP round trips."""
    major, minor, patch = parse_semver(version)
    row = DatasetVersion(
        dataset_id=dataset_id,
        version=version,
        major=major,
        minor=minor,
        patch=patch,
        status="submitted",
        release_notes=release_notes,
        upload_file_name=file_name,
        upload_file_sha256=file_sha256,
        upload_format=upload_format if file_name else None,
        created_by=actor,
        submitted_by=actor,
        submitted_at=utcnow(),
    )
    session.add(row)
    session.flush()
    count = store_factors(session, version=row, records=records)
    append_event(
        session,
        actor=actor,
        action="version.uploaded",
        subject_type="dataset_version",
        subject_id=str(row.id),
        payload={"file_sha256": file_sha256, "row_count": count},
    )
    return publish(session, version=row, reviewer=actor)
