"""The export store (``EFDB_EXPORT_DIR``): files named by their sha256, written once, never
replaced, found through the database's records.

Layout:
- ``sha256/<hex>.<ext>``: snapshot files and public versions' export files;
- ``registered/sha256/<hex>.<ext>``: registered datasets' export files (kept apart, so that
  the public part can sit behind a CDN as it is, contract §13);
- ``instances/<instance id>``: one marker per database that writes here (``/readyz``).

A file's name is its content's sha256, so two databases or servers sharing one store can
never write different bytes under one name. A file is written under a temporary name in its
final directory, fsynced, renamed into place and the directory fsynced; only then does the
database record it (the ``export_file`` and ``snapshot`` tables). A file no record names is a
crashed run's leftover, recognised by the records, never by its name; nothing here deletes a
file another database may have recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import DatasetVersion
from app.exports.models import DatabaseInstance, ExportFile, Snapshot

log = logging.getLogger("efdb.exports")

PUBLIC_AREA = "sha256"
REGISTERED_AREA = "registered/sha256"
INSTANCES = "instances"
LEGACY_SNAPSHOTS = "snapshots"


@dataclass(frozen=True)
class StoredFile:
    """A file in the store: where (relative to the store), its sha256 and size."""

    path: str
    sha256: str
    bytes: int


def relative_path(sha256: str, ext: str, *, private: bool) -> str:
    return f"{REGISTERED_AREA if private else PUBLIC_AREA}/{sha256}.{ext}"


def resolve(export_dir: Path, relative: str) -> Path:
    return export_dir / relative


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hash(path: Path, *, sync: bool = False) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        if sync:
            os.fsync(handle.fileno())
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@contextlib.contextmanager
def new_file(export_dir: Path, *, private: bool) -> Iterator[Path]:
    """A temporary path in the directory the file will be kept in; removed unless kept."""
    directory = export_dir / (REGISTERED_AREA if private else PUBLIC_AREA)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".tmp-{uuid.uuid4().hex}"
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


def keep(
    export_dir: Path,
    temporary: Path,
    *,
    ext: str,
    private: bool,
    digest: tuple[str, int] | None = None,
) -> StoredFile:
    """Give a finished temporary file its sha256 name (fsync, rename, fsync the directory).

    `digest`: the file's sha256 and size, taken as it was written (then only its size is
    checked here, not its bytes read again); by default they are read from the file.
    A file already under that name holds these very bytes (its name says so) and is left as it
    is; one whose bytes no longer match its name (damaged on disk) is replaced by the bytes
    the name promises.
    """
    if digest is None:
        sha256, size = _hash(temporary, sync=True)
    else:
        sha256, size = digest
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
            if os.fstat(handle.fileno()).st_size != size:
                raise RuntimeError(f"{temporary}: {size} bytes written, another size on disk")
    relative = relative_path(sha256, ext, private=private)
    final = resolve(export_dir, relative)
    if final.is_file() and _hash(final) == (sha256, size):
        temporary.unlink()
    else:
        os.replace(temporary, final)
        _fsync_directory(final.parent)
    return StoredFile(relative, sha256, size)


def snapshot_file_path(export_dir: Path, snapshot_id: str, entry: dict[str, object]) -> Path:
    """Where a snapshot's recorded file lives. A snapshot written before the store was
    content-addressed (``snapshots/<id>/<name>``) is taken into it the first time, if its
    bytes still match the record."""
    name = str(entry["name"])
    sha256 = str(entry["sha256"])
    ext = name.rsplit(".", 1)[-1]
    path = resolve(export_dir, relative_path(sha256, ext, private=False))
    if not path.exists():
        legacy = export_dir / LEGACY_SNAPSHOTS / snapshot_id / name
        with contextlib.suppress(OSError):
            if legacy.is_file() and _hash(legacy)[0] == sha256:
                with new_file(export_dir, private=False) as temporary:
                    os.link(legacy, temporary)
                    keep(export_dir, temporary, ext=ext, private=False)
    return path


# --------------------------------------------------------------------------- records


def record_export_file(
    session: Session, *, version_id: int, fmt: str, schema_version: int, stored: StoredFile
) -> ExportFile:
    """Record a per-version file; when another worker recorded it first, its record stands."""
    values = {
        "version_id": version_id,
        "format": fmt,
        "schema_version": schema_version,
        "path": stored.path,
        "sha256": stored.sha256,
        "bytes": stored.bytes,
        "created_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql_insert(ExportFile).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite_insert(ExportFile).values(values).on_conflict_do_nothing())
    else:  # pragma: no cover - efdb runs on SQLite and PostgreSQL only
        session.execute(insert(ExportFile).values(values))
    record = session.get(ExportFile, (version_id, fmt, schema_version), populate_existing=True)
    assert record is not None
    return record


@dataclass(frozen=True)
class RecordedFile:
    label: str
    path: Path
    sha256: str
    bytes: int


def recorded_files(session: Session, export_dir: Path) -> Iterator[RecordedFile]:
    """Every file the database points at: per-version exports, then snapshots' files."""
    rows = session.execute(
        select(ExportFile, Publisher.slug, Dataset.slug, DatasetVersion.version)
        .join(DatasetVersion, DatasetVersion.id == ExportFile.version_id)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .order_by(Publisher.slug, Dataset.slug, DatasetVersion.version, ExportFile.format)
    ).all()
    for record, publisher, dataset, version in rows:
        yield RecordedFile(
            f"{publisher}/{dataset}@{version} export.{record.format}",
            resolve(export_dir, record.path),
            record.sha256,
            record.bytes,
        )
    for snapshot in session.execute(select(Snapshot).order_by(Snapshot.id)).scalars():
        for entry in snapshot.files:
            yield RecordedFile(
                f"snapshot {snapshot.id} {entry['name']}",
                snapshot_file_path(export_dir, snapshot.id, entry),
                str(entry["sha256"]),
                int(entry["bytes"]),
            )


@dataclass(frozen=True)
class FileCheck:
    file: RecordedFile
    problem: Literal["missing", "differs"] | None


def verify_files(session: Session, export_dir: Path) -> list[FileCheck]:
    """Each recorded file checked against its recorded sha256 and size."""
    checks = []
    for file in recorded_files(session, export_dir):
        problem: Literal["missing", "differs"] | None = None
        try:
            if _hash(file.path) != (file.sha256, file.bytes):
                problem = "differs"
        except OSError:
            problem = "missing"
        checks.append(FileCheck(file, problem))
    return checks


# --------------------------------------------------------------------------- instance marker


def marker_path(export_dir: Path, instance_id: str) -> Path:
    return export_dir / INSTANCES / instance_id


def ensure_instance(session: Session, export_dir: Path) -> str:
    """This database's instance id; on first start, a new one, with its marker in the store.

    The marker is written before the row, so that a row never exists without its marker; a
    marker whose row lost the race to another worker is removed again. The caller commits.
    """
    existing = session.execute(select(DatabaseInstance.instance_id)).scalar()
    if existing is not None:
        return existing
    candidate = uuid.uuid4().hex
    marker = marker_path(export_dir, candidate)
    marker.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"instance_id": candidate, "created_at": utcnow().isoformat()})
    temporary = marker.with_name(f".tmp-{uuid.uuid4().hex}")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(body + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, marker)
        _fsync_directory(marker.parent)
    finally:
        temporary.unlink(missing_ok=True)
    values = {"id": 1, "instance_id": candidate, "created_at": utcnow()}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(postgresql_insert(DatabaseInstance).values(values).on_conflict_do_nothing())
    else:
        session.execute(sqlite_insert(DatabaseInstance).values(values).on_conflict_do_nothing())
    recorded = session.execute(select(DatabaseInstance.instance_id)).scalar_one()
    if recorded != candidate:
        marker.unlink(missing_ok=True)
    return recorded


def store_problem(session: Session, export_dir: Path) -> str | None:
    """Why the export directory is not the one this database recorded, or None if it is."""
    try:
        instance_id = ensure_instance(session, export_dir)
    except OSError as exc:
        return f"The export directory {export_dir} cannot be written: {exc.strerror or exc}."
    marker = marker_path(export_dir, instance_id)
    try:
        named = json.loads(marker.read_text(encoding="utf-8")).get("instance_id")
    except (OSError, ValueError, AttributeError):
        named = None
    if named != instance_id:
        return (
            f"The export directory {export_dir} is not the one this database recorded: it has "
            f"no marker {INSTANCES}/{instance_id} for database instance {instance_id}."
        )
    return None
