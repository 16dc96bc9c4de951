"""Per-version exports and national snapshots: which releases, which files, where.

Files live in the export store (``app.exports.store``: the export directory, or an
S3-compatible object store): named by their sha256, written once and never replaced, so no two
databases or servers sharing one store can ever send different bytes under one name. What a
release's or a snapshot's files are is recorded in the database:
- ``export_file``: a released version's ``export.{parquet,arrow,arrows,csv,xlsx}``,
  ``export.csv?bom=1`` (format ``bom.csv``), ``export.jsonld.zip`` (openLCA) and
  ``export.ilcd.zip`` (a released version is immutable, so each is written once, on its first
  request, and then served as a file);
- ``snapshot.files``: a snapshot's ``factors.parquet``, ``factors.arrow`` (IPC file),
  ``factors.arrows`` (IPC stream), ``factors.xlsx`` (snapshots written since XLSX exports),
  ``factors.jsonld.zip`` and ``factors.ilcd.zip`` (assembled from the releases' own packages,
  app.exports.bundle; snapshots written since) and ``manifest.json``, written first and
  recorded in the same transaction as the audit event, so no snapshot is ever listed without
  its files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import pyarrow as pa
from sqlalchemy import Row, and_, insert, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.audit import append_event, chain_cursor, chain_head_id
from app.core.db import AnySelect, utcnow
from app.core.errors import Conflict, InvalidParameter, NotFound
from app.core.http_cache import IMMUTABLE, PRIVATE
from app.core.pagination import decode_cursor, encode_cursor
from app.core.principal import Viewer
from app.core.problem_text import Message
from app.datasets import service as datasets_service
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import DatasetVersion
from app.datasets.visibility import visible_version_ids
from app.exports import store
from app.exports.bundle import merge_packages
from app.exports.ilcd import write_ilcd
from app.exports.models import ExportFile, Snapshot, snapshot_version
from app.exports.olca import write_olca
from app.exports.schema import (
    COLUMNS,
    CONTENT_HASH_FIELDS,
    CONTENT_HASH_RECIPE,
    SCHEMA_VERSION,
    ReleaseInfo,
    attribution_list,
)
from app.exports.schema import file_metadata as build_file_metadata
from app.exports.source import release_batches
from app.exports.writer import (
    arrow_file_batches,
    arrow_file_dictionaries,
    parquet_batches,
    write_arrow_file,
    write_arrow_stream,
    write_bytes_atomic,
    write_csv,
    write_csv_with_bom,
    write_parquet,
    write_snapshot_files,
)
from app.exports.xlsx import write_xlsx
from app.signing.keys import ReleaseKeys
from app.signing.models import SnapshotSignature
from app.signing.statements import (
    checkpoint_resource,
    ensure_release_statement,
    sign_checkpoint,
    sign_manifest,
)

log = logging.getLogger("efdb.exports")

# `arrow`: the Arrow IPC file format (random access); `arrows`: the Arrow IPC stream format.
ExportFormat = Literal[
    "parquet", "arrow", "arrows", "csv", "bom.csv", "xlsx", "jsonld.zip", "ilcd.zip"
]
SnapshotFileName = Literal[
    "factors.parquet",
    "factors.arrow",
    "factors.arrows",
    "factors.xlsx",
    "factors.jsonld.zip",
    "factors.ilcd.zip",
    "manifest.json",
]

MEDIA_TYPES: dict[str, str] = {
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.file",
    "arrows": "application/vnd.apache.arrow.stream",
    "csv": "text/csv; charset=utf-8; header=present",
    "bom.csv": "text/csv; charset=utf-8; header=present",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonld.zip": "application/zip",
    "ilcd.zip": "application/zip",
    "json": "application/json",
}
# Every file a snapshot may hold, in the order of its type.
SNAPSHOT_FILES: tuple[SnapshotFileName, ...] = get_args(SnapshotFileName)
# The exchange packages of a snapshot, assembled from its releases' own (app.exports.bundle).
SNAPSHOT_PACKAGES: dict[SnapshotFileName, ExportFormat] = {
    "factors.jsonld.zip": "jsonld.zip",
    "factors.ilcd.zip": "ilcd.zip",
}
SNAPSHOT_ID_PATTERN = r"^\d{4}-\d{2}-\d{2}\.[1-9]\d{0,5}$"
LATEST = "latest"
# Any constant: serialises snapshot writers on PostgreSQL (one national release at a time).
_SNAPSHOT_LOCK_KEY = 0x65666463
# Default of `EFDB_SNAPSHOT_XLSX_MAX_ROWS`: larger snapshots have no factors.xlsx.
SNAPSHOT_XLSX_MAX_ROWS = 100_000
# Default of `EFDB_SNAPSHOT_PACKAGES_MAX_ROWS`: larger snapshots have no openLCA/ILCD package.
SNAPSHOT_PACKAGES_MAX_ROWS = 100_000
# Batches read back from a finished version export (regrouped into row groups when written).
CACHED_BATCH_ROWS = 16_384

# Told one line per step of a long operation (`efdb snapshot create`, `efdb exports prepare`):
# per release or per file, never per row.
Progress = Callable[[str], None]


def _quiet(line: str) -> None:
    """No progress wanted (the API's snapshots)."""


def _told(batches: Iterable[pa.RecordBatch], tell: Progress, line: str) -> Iterator[pa.RecordBatch]:
    """A release's batches, `line` told when the writer starts reading them."""
    tell(line)
    yield from batches


def _release_line(index: int, releases: list[ReleaseInfo], source: str) -> str:
    release = releases[index]
    return (
        f"release {index + 1}/{len(releases)} {release.key}: "
        f"{release.row_count:,} factors, from {source}"
    )


@dataclass(frozen=True)
class ServedFile:
    """A finished export file and what the HTTP layer needs to serve it."""

    location: str  # its key in the export store
    sha256: str
    bytes: int
    media_type: str
    filename: str
    license_url: str | None = None
    private: bool = False
    rows: int = 0

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'


def version_filename(release: ReleaseInfo, fmt: str) -> str:
    return f"{release.publisher}_{release.dataset}_{release.version}.{fmt}"


def _version_download(release: ReleaseInfo, fmt: str) -> store.Download:
    private = release.access != "public"
    return store.Download(
        version_filename(release, fmt), MEDIA_TYPES[fmt], PRIVATE if private else IMMUTABLE
    )


def snapshot_filename(snapshot_id: str, name: str) -> str:
    return f"efdb-snapshot-{snapshot_id}-{name}"


# --------------------------------------------------------------------------- releases


def _release_select() -> AnySelect:
    return (
        select(
            DatasetVersion.id.label("version_id"),
            Publisher.slug.label("publisher"),
            Dataset.slug.label("dataset"),
            DatasetVersion.version,
            DatasetVersion.published_at,
            DatasetVersion.content_sha256,
            DatasetVersion.row_count,
            Dataset.license_id,
            Dataset.license_url,
            Dataset.attribution,
            Dataset.redistribution,
            Dataset.commercial_use,
            Dataset.access,
        )
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
    )


def _release(row: Row[Any]) -> ReleaseInfo:
    values = row._asdict()
    if values["published_at"] is None or values["content_sha256"] is None:
        raise RuntimeError(
            f"{values['publisher']}/{values['dataset']}@{values['version']} "
            "is not a published version"
        )
    return ReleaseInfo(**values)


def snapshot_releases(session: Session) -> list[ReleaseInfo]:
    """Each public, redistributable dataset's current release (contract §1 and §5).

    Registered datasets and datasets whose license forbids redistribution never enter a
    public snapshot.
    """
    rows = session.execute(
        _release_select()
        .where(
            DatasetVersion.id.in_(visible_version_ids()),
            Dataset.redistribution.is_(True),
            Dataset.access == "public",
        )
        .order_by(Publisher.slug, Dataset.slug)
    ).all()
    return [_release(row) for row in rows]


# --------------------------------------------------------------------------- per version


def recorded_export(session: Session, release: ReleaseInfo, fmt: str) -> ExportFile | None:
    """The recorded export file of a release in the current export schema, if written."""
    return session.get(ExportFile, (release.version_id, fmt, SCHEMA_VERSION))


def _intact(export_store: store.ExportStore, record: ExportFile) -> bool:
    return export_store.size(record.path) == record.bytes


RELEASE_STATEMENT_KEY = "efdb:release_statement"


def release_statement(session: Session, keys: ReleaseKeys, release: ReleaseInfo) -> str:
    """The release's signed statement (JWS compact), signed on first need."""
    version = session.get(DatasetVersion, release.version_id)
    assert version is not None
    return ensure_release_statement(session, keys, version=version).jws


def ensure_version_parquet(
    session: Session, export_store: store.ExportStore, release: ReleaseInfo, keys: ReleaseKeys
) -> ExportFile:
    record = recorded_export(session, release, "parquet")
    if record is not None:
        return record
    private = release.access != "public"
    # The signed statement rides in the key-value metadata (and so in the Arrow files derived
    # from this one): the file alone proves what was released.
    metadata = build_file_metadata([release], export="version")
    metadata[RELEASE_STATEMENT_KEY] = release_statement(session, keys, release)
    with export_store.new_file(private=private) as temporary:
        # Deterministic for a release (no write time inside; the statement is signed once and
        # recorded), so two workers racing to write it produce the same bytes, same name.
        files = write_parquet(
            temporary,
            [release_batches(session, release)],
            metadata=metadata,
        )
        if files.rows != release.row_count:
            raise RuntimeError(
                f"{release.key}: exported {files.rows} rows, expected {release.row_count}"
            )
        stored = export_store.keep(
            temporary,
            ext="parquet",
            private=private,
            download=_version_download(release, "parquet"),
        )
    return store.record_export_file(
        session,
        version_id=release.version_id,
        fmt="parquet",
        schema_version=SCHEMA_VERSION,
        stored=stored,
    )


def _ensure_derived(
    session: Session,
    export_store: store.ExportStore,
    release: ReleaseInfo,
    fmt: ExportFormat,
    keys: ReleaseKeys,
) -> ExportFile:
    """The Arrow, CSV, XLSX, openLCA or ILCD file of a release, derived from its Parquet
    file."""
    record = recorded_export(session, release, fmt)
    if record is not None:
        return record
    parquet = ensure_version_parquet(session, export_store, release, keys)
    if not _intact(export_store, parquet):
        raise _lost(release, "parquet")
    private = release.access != "public"
    with (
        export_store.local_copy(parquet.path) as parquet_path,
        export_store.new_file(private=private) as temporary,
    ):
        writers = {
            "arrow": write_arrow_file,
            "arrows": write_arrow_stream,
            "csv": write_csv,
            "bom.csv": write_csv_with_bom,
            "xlsx": write_xlsx,
            "jsonld.zip": write_olca,
            "ilcd.zip": write_ilcd,
        }
        writers[fmt](temporary, parquet_path)
        stored = export_store.keep(
            temporary, ext=fmt, private=private, download=_version_download(release, fmt)
        )
    return store.record_export_file(
        session,
        version_id=release.version_id,
        fmt=fmt,
        schema_version=SCHEMA_VERSION,
        stored=stored,
    )


_PACKAGE_WRITERS = {"jsonld.zip": write_olca, "ilcd.zip": write_ilcd}


def _release_packages(
    session: Session,
    export_store: store.ExportStore,
    releases: list[ReleaseInfo],
    fmt: ExportFormat,
    scratch: contextlib.ExitStack,
    tell: Progress = _quiet,
) -> Iterator[Path]:
    """Each release's recorded openLCA or ILCD package (a local copy where the store is an
    object store). One never written is written here to a temporary file (from the release's
    recorded Parquet file, else from its rows), used for this snapshot only: a snapshot
    records no release's files, so a failed one leaves nothing behind; `efdb exports prepare`
    (or a first download) records them once."""
    for index, release in enumerate(releases):
        record = recorded_export(session, release, fmt)
        if record is not None and _intact(export_store, record):
            yield scratch.enter_context(export_store.local_copy(record.path))
            continue
        tell(
            f"release {index + 1}/{len(releases)} {release.key}: no recorded {fmt}, "
            "writing one for this snapshot (`efdb exports prepare` records them)"
        )
        parquet_record = recorded_export(session, release, "parquet")
        if parquet_record is not None and _intact(export_store, parquet_record):
            source = scratch.enter_context(export_store.local_copy(parquet_record.path))
        else:
            source = scratch.enter_context(export_store.new_file(private=False))
            write_parquet(source, [release_batches(session, release)], metadata={})
        path = scratch.enter_context(export_store.new_file(private=False))
        _PACKAGE_WRITERS[fmt](path, source)
        yield path


def _lost(release: ReleaseInfo, fmt: str) -> NotFound:
    log.error("%s: its recorded %s export is missing from the export store", release.key, fmt)
    return NotFound(Message("not_found.export_lost", format=fmt, release=release.key))


def version_export(
    session: Session,
    *,
    export_store: store.ExportStore,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    version: str,
    fmt: ExportFormat,
    keys: ReleaseKeys,
) -> ServedFile:
    """The export file of one released version, written on first request."""
    # 404 for an unknown version, and for a registered dataset the viewer may not read.
    _, version_row = datasets_service.get_version(
        session, viewer=viewer, publisher=publisher, dataset=dataset, version=version
    )
    release = _release(
        session.execute(_release_select().where(DatasetVersion.id == version_row.id)).one()
    )
    if fmt == "parquet":
        record = ensure_version_parquet(session, export_store, release, keys)
    else:
        record = _ensure_derived(session, export_store, release, fmt, keys)
    if not _intact(export_store, record):
        # Removed or altered since it was recorded: `efdb exports verify` says so.
        raise _lost(release, fmt)
    return ServedFile(
        location=record.path,
        sha256=record.sha256,
        bytes=record.bytes,
        media_type=MEDIA_TYPES[fmt],
        filename=version_filename(release, fmt),
        license_url=release.license_url,
        private=release.access != "public",
        rows=release.row_count,
    )


# --------------------------------------------------------------------------- snapshots


def next_snapshot_id(session: Session, day: date) -> str:
    prefix = f"{day.isoformat()}."
    taken = session.execute(select(Snapshot.id).where(Snapshot.id.startswith(prefix))).scalars()
    sequence = max(
        (int(s.removeprefix(prefix)) for s in taken if s[len(prefix) :].isdigit()), default=0
    )
    return f"{prefix}{sequence + 1}"


def _schema_document() -> list[dict[str, Any]]:
    return [
        {
            "name": column.name,
            "type": str(column.type),
            "nullable": column.nullable,
            "description": column.description,
            **({"unit": column.unit} if column.unit else {}),
        }
        for column in COLUMNS
    ]


def _groups(
    session: Session,
    export_store: store.ExportStore,
    releases: list[ReleaseInfo],
    tell: Progress = _quiet,
) -> Iterator[Iterator[pa.RecordBatch]]:
    """Each release's batches: from its recorded per-version export when there is one (a
    published version never changes, so its export is reused by every later snapshot),
    otherwise streamed from the database."""
    for index, release in enumerate(releases):
        record = recorded_export(session, release, "parquet")
        if record is not None and _intact(export_store, record):
            tell(_release_line(index, releases, "its export.parquet"))
            yield _recorded_batches(export_store, record.path)
        else:
            tell(_release_line(index, releases, "the database"))
            yield release_batches(session, release)


def _recorded_batches(export_store: store.ExportStore, location: str) -> Iterator[pa.RecordBatch]:
    """A recorded Parquet file's batches, read from a local copy while they are taken (the
    file itself in the export directory; a download, removed afterwards, from an object
    store)."""
    with export_store.local_copy(location) as path:
        yield from parquet_batches(path, CACHED_BATCH_ROWS)


@dataclass(frozen=True)
class _Written:
    sha256: str
    bytes: int
    rows: int


def prepare_release_files(
    session: Session,
    *,
    export_store: store.ExportStore,
    keys: ReleaseKeys,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Write and record, once, the export files (`export.parquet`, which snapshots read, the
    `.arrows` and `.arrow` downloads, and the openLCA and ILCD packages a snapshot's are
    assembled from) of every release the next snapshot would hold, so that neither a snapshot
    nor a first download reads the rows again; the caller commits. Each as
    `{"release", "format", "sha256", "bytes"}`. `progress` is told each release as it is
    done."""
    tell = progress or _quiet
    written_files = []
    formats: tuple[ExportFormat, ...] = ("parquet", "arrows", "arrow", *SNAPSHOT_PACKAGES.values())
    releases = snapshot_releases(session)
    tell(f"{len(releases)} releases, {sum(r.row_count for r in releases):,} factors")
    for index, release in enumerate(releases):
        started = time.perf_counter()
        before = {fmt: recorded_export(session, release, fmt) is not None for fmt in formats}
        for fmt in formats:
            record = (
                ensure_version_parquet(session, export_store, release, keys)
                if fmt == "parquet"
                else _ensure_derived(session, export_store, release, fmt, keys)
            )
            if not _intact(export_store, record):
                raise _lost(release, fmt)
            written_files.append(
                {
                    "release": release.key,
                    "format": fmt,
                    "sha256": record.sha256,
                    "bytes": record.bytes,
                }
            )
        written = [fmt for fmt in formats if not before[fmt]]
        tell(
            f"release {index + 1}/{len(releases)} {release.key}: {release.row_count:,} factors, "
            + (f"wrote {', '.join(written)}" if written else "all files already recorded")
            + f" ({time.perf_counter() - started:.1f} s)"
        )
    return written_files


def _recorded_arrow_files(
    session: Session, export_store: store.ExportStore, releases: list[ReleaseInfo]
) -> list[str] | None:
    """Where each release's recorded, intact `export.arrow` is kept, or None if one has none."""
    locations = []
    for release in releases:
        record = recorded_export(session, release, "arrow")
        if record is None or not _intact(export_store, record):
            return None
        locations.append(record.path)
    return locations


def _merged_dictionaries(paths: list[Path]) -> dict[str, list[Any]]:
    """Each dictionary column's values over the releases' IPC files, in order of first
    appearance."""
    merged: dict[str, dict[Any, None]] = {}
    for path in paths:
        for name, values in arrow_file_dictionaries(path).items():
            merged.setdefault(name, {}).update(dict.fromkeys(values))
    return {name: list(values) for name, values in merged.items()}


def _streamed(
    session: Session,
    export_store: store.ExportStore,
    releases: list[ReleaseInfo],
    temporaries: dict[str, tuple[Path, str]],
    metadata: dict[str, str],
    tell: Progress = _quiet,
) -> dict[str, _Written]:
    """The snapshot's data files.

    When every release has its recorded `export.arrow` (`efdb exports prepare`, or a first
    download, writes it): Parquet and the Arrow IPC file in one pass over those files'
    batches, read once (decoding an IPC file is a fraction of decoding Parquet, and its
    batches share one dictionary per column, which the Parquet writer keeps), written on two
    threads, with the IPC file's dictionaries gathered first from the releases' own.
    The Arrow IPC stream is then the one inside the new IPC file, copied out of it (so its
    batches share the file's dictionaries). Otherwise: Parquet and the Arrow IPC stream in
    one pass over the releases' batches (`_groups`), then the Arrow IPC file from the new
    Parquet file."""
    arrow_locations = _recorded_arrow_files(session, export_store, releases)
    if arrow_locations is not None:
        with contextlib.ExitStack() as copies:
            # The files themselves in the export directory; downloads from an object store.
            arrow_files = [
                copies.enter_context(export_store.local_copy(location))
                for location in arrow_locations
            ]
            files = write_snapshot_files(
                parquet_target=temporaries["factors.parquet"][0],
                arrows_target=temporaries["factors.arrows"][0],
                arrow_target=temporaries["factors.arrow"][0],
                groups=[
                    _told(
                        arrow_file_batches(path),
                        tell,
                        _release_line(index, releases, "its export.arrow"),
                    )
                    for index, path in enumerate(arrow_files)
                ],
                dictionaries=_merged_dictionaries(arrow_files),
                metadata=metadata,
            )
        return {
            "factors.parquet": _Written(files.parquet.sha256, files.parquet.bytes, files.rows),
            "factors.arrow": _Written(files.arrow.sha256, files.arrow.bytes, files.rows),
            "factors.arrows": _Written(files.arrows.sha256, files.arrows.bytes, files.rows),
        }
    parquet = temporaries["factors.parquet"][0]
    written_files = write_parquet(
        parquet,
        _groups(session, export_store, releases, tell),
        metadata=metadata,
        arrows_target=temporaries["factors.arrows"][0],
    )
    assert written_files.arrows is not None
    rows = written_files.rows
    arrow = write_arrow_file(temporaries["factors.arrow"][0], parquet)
    return {
        "factors.parquet": _Written(
            written_files.parquet.sha256, written_files.parquet.bytes, rows
        ),
        "factors.arrow": _Written(arrow.sha256, arrow.bytes, rows),
        "factors.arrows": _Written(written_files.arrows.sha256, written_files.arrows.bytes, rows),
    }


def _releases_at_one_position(session: Session) -> tuple[list[ReleaseInfo], int]:
    """The releases to snapshot and the audit event they are consistent with.

    Every change of a release is audited in its own transaction, and events become visible in
    id order (app/core/audit.py): when the chain's head is the same before and after reading
    the releases, no change committed in between, so the releases are exactly the state after
    that event. A change that committed meanwhile makes the reading start again.
    """
    while True:
        head = chain_head_id(session)
        releases = snapshot_releases(session)
        if chain_head_id(session) == head:
            return releases, head


def create_snapshot(
    session: Session,
    *,
    export_store: store.ExportStore,
    actor: str,
    keys: ReleaseKeys | None = None,
    xlsx_max_rows: int = SNAPSHOT_XLSX_MAX_ROWS,
    packages_max_rows: int = SNAPSHOT_PACKAGES_MAX_ROWS,
    progress: Progress | None = None,
) -> Snapshot:
    """Write one national release and record it with its audit event; the caller commits.

    With the release `keys` (the API and the CLI always pass them): each version's entry in the
    manifest carries its signed release statement, the manifest carries a checkpoint of the
    audit chain signed just before it, `manifest.json` itself is signed (served as
    `manifest.json.jws`), and a checkpoint is signed after the snapshot's audit event.

    The data files are written by pyarrow from each release's own recorded `export.arrow`,
    read once, Parquet and the IPC file on two threads, the IPC stream copied out of the IPC
    file (`efdb exports prepare` or a first download writes it once); when a release has
    none, from its recorded `export.parquet` or its rows in the database (`_groups`), the
    Arrow IPC file then from the new Parquet file (`_streamed`). Memory holds a few row
    groups.
    `factors.xlsx` is written only for a snapshot of at most `xlsx_max_rows` factors (the
    manifest says the bound, so a snapshot without it says why); `factors.jsonld.zip` and
    `factors.ilcd.zip`, assembled from the releases' own packages, likewise up to
    `packages_max_rows`.

    The files are written under temporary names first and given their sha256 names only when
    all are complete; a run that fails after that leaves files no record names, which
    nothing serves (and a later run never takes for its own: its bytes have other names).

    `progress` (`efdb snapshot create`) is told each step: per release and per file.
    """
    tell = progress or _quiet
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SNAPSHOT_LOCK_KEY})
    releases, head = _releases_at_one_position(session)
    if not releases:
        raise Conflict(Message("snapshot.nothing_to_snapshot"))
    created_at = utcnow()
    snapshot_id = next_snapshot_id(session, created_at.date())
    tell(
        f"snapshot {snapshot_id}: {len(releases)} releases, "
        f"{sum(r.row_count for r in releases):,} factors"
    )
    entries = [release.manifest_entry() for release in releases]
    checkpoint: dict[str, Any] | None = None
    if keys is not None:
        tell("signing the releases' statements and an audit checkpoint")
        for entry_, release in zip(entries, releases, strict=True):
            entry_["release_statement"] = release_statement(session, keys, release)
        checkpoint = checkpoint_resource(sign_checkpoint(session, keys, actor=actor))
    metadata = build_file_metadata(
        releases, export="snapshot", snapshot_id=snapshot_id, created_at=created_at
    )
    # The same entries as the manifest's, signed statements included.
    metadata["efdb:dataset_versions"] = json.dumps(
        entries, ensure_ascii=False, separators=(",", ":")
    )
    with (
        export_store.new_file(private=False) as parquet_temporary,
        export_store.new_file(private=False) as arrow_temporary,
        export_store.new_file(private=False) as arrows_temporary,
        export_store.new_file(private=False) as xlsx_temporary,
        export_store.new_file(private=False) as jsonld_temporary,
        export_store.new_file(private=False) as ilcd_temporary,
        export_store.new_file(private=False) as manifest_temporary,
    ):
        temporaries = {
            "factors.parquet": (parquet_temporary, "parquet"),
            "factors.arrow": (arrow_temporary, "arrow"),
            "factors.arrows": (arrows_temporary, "arrows"),
        }
        data = _streamed(session, export_store, releases, temporaries, metadata, tell)
        for name in temporaries:
            tell(f"{name}: {data[name].bytes:,} bytes")
        rows = data["factors.parquet"].rows
        expected = sum(release.row_count for release in releases)
        if rows != expected:
            raise RuntimeError(f"snapshot {snapshot_id}: wrote {rows} rows, expected {expected}")
        if rows <= xlsx_max_rows:
            temporaries["factors.xlsx"] = (xlsx_temporary, "xlsx")
            done = write_xlsx(xlsx_temporary, parquet_temporary)
            data["factors.xlsx"] = _Written(done.sha256, done.bytes, rows)
            tell(f"factors.xlsx: {done.bytes:,} bytes")
        else:
            tell(f"factors.xlsx: left out ({rows:,} factors > {xlsx_max_rows:,})")
        for (name, fmt), temporary in zip(
            SNAPSHOT_PACKAGES.items(), (jsonld_temporary, ilcd_temporary), strict=True
        ):
            if rows > packages_max_rows:
                tell(f"{name}: left out ({rows:,} factors > {packages_max_rows:,})")
                continue
            with contextlib.ExitStack() as scratch:
                done = merge_packages(
                    temporary,
                    _release_packages(session, export_store, releases, fmt, scratch, tell),
                )
            temporaries[name] = (temporary, fmt)
            data[name] = _Written(done.sha256, done.bytes, rows)
            tell(f"{name}: {done.bytes:,} bytes, from {len(releases)} releases' packages")
        data_files = [
            {"name": name, "sha256": data[name].sha256, "bytes": data[name].bytes}
            for name in SNAPSHOT_FILES
            if name in data
        ]
        manifest: dict[str, Any] = {
            "format": "efdb-snapshot",
            "schema_version": SCHEMA_VERSION,
            "id": snapshot_id,
            "created_at": created_at.isoformat(),
            "created_by": actor,
            "row_count": rows,
            "dataset_versions": entries,
            "files": data_files,
            "workbook_max_rows": xlsx_max_rows,
            "packages_max_rows": packages_max_rows,
            "licenses": attribution_list(releases),
            "content_hash_fields": list(CONTENT_HASH_FIELDS),
            "content_hash_recipe": CONTENT_HASH_RECIPE,
            "columns": _schema_document(),
            "changes_cursor": chain_cursor(head),
        }
        if checkpoint is not None:
            manifest["audit_checkpoint"] = checkpoint
        body = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        write_bytes_atomic(manifest_temporary, body)
        temporaries["manifest.json"] = (manifest_temporary, "json")
        tell(f"manifest.json: {len(body):,} bytes; keeping the files in {export_store.description}")
        # The data files' sha256 were taken as they were written: not read again.
        kept = {
            name: export_store.keep(
                temporary,
                ext=ext,
                private=False,
                download=store.Download(
                    snapshot_filename(snapshot_id, name), _snapshot_media_type(name), IMMUTABLE
                ),
                digest=(data[name].sha256, data[name].bytes) if name in data else None,
            )
            for name, (temporary, ext) in temporaries.items()
        }
    files = [
        {"name": name, "sha256": kept[name].sha256, "bytes": kept[name].bytes}
        for name in SNAPSHOT_FILES
        if name in kept
    ]
    if [f["sha256"] for f in files[: len(data_files)]] != [f["sha256"] for f in data_files]:
        raise RuntimeError(f"snapshot {snapshot_id}: a file changed while it was kept")
    snapshot = Snapshot(
        id=snapshot_id,
        created_at=created_at,
        created_by=actor,
        row_count=rows,
        files=files,
        manifest=manifest,
    )
    session.add(snapshot)
    try:
        session.flush()
    except IntegrityError as exc:  # SQLite: another writer took this id first
        raise Conflict(Message("snapshot.being_written")) from exc
    session.execute(
        insert(snapshot_version),
        [{"snapshot_id": snapshot_id, "version_id": r.version_id} for r in releases],
    )
    append_event(
        session,
        actor=actor,
        action="snapshot.created",
        subject_type="snapshot",
        subject_id=snapshot_id,
        payload={
            "row_count": rows,
            "dataset_versions": {r.key: r.content_sha256 for r in releases},
            "files": {f["name"]: f["sha256"] for f in files},
        },
    )
    if keys is not None:
        tell("signing manifest.json and an audit checkpoint")
        sign_manifest(session, keys, snapshot_id=snapshot_id, manifest=body, actor=actor)
        sign_checkpoint(session, keys, actor=actor)
    return snapshot


def manifest_signature(session: Session, snapshot_id: str) -> tuple[Snapshot, str]:
    """A snapshot's signed manifest (JWS compact, payload: the manifest.json bytes)."""
    snapshot = get_snapshot(session, snapshot_id)
    signature = session.get(SnapshotSignature, snapshot.id)
    if signature is None:
        raise NotFound(Message("not_found.snapshot_unsigned", snapshot=snapshot.id))
    return snapshot, signature.jws


def snapshot_resource(snapshot: Snapshot) -> dict[str, Any]:
    manifest = snapshot.manifest
    return {
        "id": snapshot.id,
        "created_at": snapshot.created_at,
        "created_by": snapshot.created_by,
        "row_count": snapshot.row_count,
        "schema_version": manifest.get("schema_version"),
        "dataset_versions": manifest.get("dataset_versions", []),
        "licenses": manifest.get("licenses", []),
        "changes_cursor": manifest.get("changes_cursor"),
        "files": [
            {
                **entry,
                "url": f"/v1/snapshots/{snapshot.id}/{entry['name']}",
                "media_type": _snapshot_media_type(entry["name"]),
            }
            for entry in snapshot.files
        ],
    }


def _snapshot_media_type(name: str) -> str:
    return MEDIA_TYPES[store.snapshot_file_ext(name)]


def _newest_first() -> tuple[Any, ...]:
    return (Snapshot.created_at.desc(), Snapshot.id.desc())


def list_snapshots(
    session: Session, *, after: tuple[datetime, str] | None, limit: int
) -> tuple[list[Snapshot], tuple[datetime, str] | None]:
    """Snapshots newest first; the position to continue after (None at the end)."""
    query = select(Snapshot)
    if after is not None:
        created_at, snapshot_id = after
        query = query.where(
            or_(
                Snapshot.created_at < created_at,
                and_(Snapshot.created_at == created_at, Snapshot.id < snapshot_id),
            )
        )
    rows = list(session.execute(query.order_by(*_newest_first()).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, ((rows[-1].created_at, rows[-1].id) if more else None)


def get_snapshot(session: Session, snapshot_id: str) -> Snapshot:
    if snapshot_id == LATEST:
        latest = session.execute(select(Snapshot).order_by(*_newest_first()).limit(1)).scalar()
        if latest is None:
            raise NotFound(Message("not_found.no_snapshot_yet"))
        return latest
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise NotFound(Message("not_found.snapshot", snapshot=snapshot_id))
    return snapshot


def snapshot_file(
    session: Session, *, export_store: store.ExportStore, snapshot_id: str, name: SnapshotFileName
) -> tuple[Snapshot, ServedFile]:
    snapshot = get_snapshot(session, snapshot_id)
    entry = next((f for f in snapshot.files if f["name"] == name), None)
    names = {f["name"] for f in snapshot.files}
    if name == "factors.xlsx" and name not in names:
        limit = snapshot.manifest.get("workbook_max_rows")
        if limit is not None and snapshot.row_count > limit:
            raise NotFound(
                Message(
                    "not_found.snapshot_xlsx_too_large",
                    snapshot=snapshot.id,
                    rows=snapshot.row_count,
                    limit=limit,
                )
            )
        raise NotFound(Message("not_found.snapshot_no_xlsx", snapshot=snapshot.id))
    if name in SNAPSHOT_PACKAGES and name not in names:
        limit = snapshot.manifest.get("packages_max_rows")
        if limit is not None and snapshot.row_count > limit:
            raise NotFound(
                Message(
                    "not_found.snapshot_package_too_large",
                    snapshot=snapshot.id,
                    name=name,
                    rows=snapshot.row_count,
                    limit=limit,
                )
            )
        raise NotFound(Message("not_found.snapshot_no_package", snapshot=snapshot.id, name=name))
    if "factors.arrows" not in names and name in {"factors.arrow", "factors.arrows"}:
        # Written before export schema 2: its factors.arrow is an Arrow IPC stream. It is
        # served as what it is, at factors.arrows; there is no Arrow IPC file to serve.
        if name == "factors.arrow":
            raise NotFound(
                Message(
                    "not_found.snapshot_no_arrow_file",
                    snapshot=snapshot.id,
                    schema_version=snapshot.manifest.get("schema_version", 1),
                )
            )
        entry = next((f for f in snapshot.files if f["name"] == "factors.arrow"), None)
    location = store.snapshot_file_location(export_store, snapshot.id, entry) if entry else None
    if location is None or entry is None or export_store.size(location) != entry["bytes"]:
        log.error("snapshot %s: %s is missing from the export store or altered", snapshot.id, name)
        raise NotFound(Message("not_found.snapshot_file", snapshot=snapshot.id, name=name))
    return snapshot, ServedFile(
        location=location,
        sha256=entry["sha256"],
        bytes=entry["bytes"],
        media_type=_snapshot_media_type(name),
        filename=snapshot_filename(snapshot.id, name),
    )


def snapshot_after(cursor: str | None) -> tuple[datetime, str] | None:
    """The (created_at, id) a snapshot cursor continues after."""
    if cursor is None:
        return None
    created_at, snapshot_id = decode_cursor(cursor, {}, 2)
    try:
        return datetime.fromisoformat(str(created_at)), str(snapshot_id)
    except ValueError as exc:
        raise InvalidParameter(
            Message("cursor.invalid"),
            errors=[{"loc": ["query", "cursor"], "code": "invalid_cursor", "detail": "malformed"}],
        ) from exc


def snapshots_page(
    session: Session, *, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of snapshots, newest first, and the cursor of the next page. The API's list and
    the snapshots page both read it, so either's cursor continues the other."""
    snapshots, position = list_snapshots(session, after=snapshot_after(cursor), limit=limit)
    next_cursor = encode_cursor([position[0].isoformat(), position[1]], {}) if position else None
    return [snapshot_resource(snapshot) for snapshot in snapshots], next_cursor
