"""The export store: files named by their sha256, written once, never replaced, found
through the database's records. Two implementations of one interface (`ExportStore`):

- `LocalExportStore`, the default: the directory ``EFDB_EXPORT_DIR``;
- `S3ExportStore` (``EFDB_EXPORT_STORE_URL=s3://bucket/prefix``, app/exports/object_store.py):
  an S3-compatible object store; downloads are answered with a redirect to a signed URL.

Layout (the same keys in either):
- ``sha256/<hex>.<ext>``: snapshot files and public versions' export files;
- ``registered/sha256/<hex>.<ext>``: registered datasets' export files (kept apart, so that
  the public part can sit behind a CDN as it is, contract §13);
- ``instances/<instance id>``: one marker per database that writes here (``/readyz``).

A file's name is its content's sha256, so two databases or servers sharing one store can
never write different bytes under one name. A file is written locally under a temporary name
(pyarrow writes local files), then kept: in the directory, fsynced, renamed into place and the
directory fsynced; in an object store, uploaded under its sha256 name and acknowledged by the
store. Only then does the database record it (the ``export_file`` and ``snapshot`` tables). A
file no record names is a crashed run's leftover, recognised by the records, never by its
name; nothing here deletes a file another database may have recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import quote

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.errors import ProblemError
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import DatasetVersion
from app.exports.models import DatabaseInstance, ExportFile, Snapshot

if TYPE_CHECKING:
    from app.core.config import Settings

log = logging.getLogger("efdb.exports")

PUBLIC_AREA = "sha256"
REGISTERED_AREA = "registered/sha256"
INSTANCES = "instances"
LEGACY_SNAPSHOTS = "snapshots"


@dataclass(frozen=True)
class StoredFile:
    """A file in the store: where (its key, relative to the store), its sha256 and size."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Download:
    """How a kept file is sent: the name it downloads as, its media type and caching. An
    object store keeps these with the object, so that a signed URL (or a CDN in front of the
    bucket) answers with them; the directory store sends them from the application."""

    filename: str
    media_type: str
    cache_control: str


class StoreUnavailable(ProblemError):
    """The object store did not answer (503, retry later)."""

    status, code, title = 503, "export-store-unavailable", "Export store unavailable"


class ExportStore(Protocol):
    """Where export and snapshot files are kept (`LocalExportStore`, `S3ExportStore`)."""

    # For messages: "the export directory /srv/efdb/exports", "the object store s3://b/p".
    description: str
    # Downloads are answered with a redirect to a signed URL rather than sent by the app.
    redirects: bool

    def new_file(self, *, private: bool) -> AbstractContextManager[Path]:
        """A local temporary path to write a file at; removed unless kept."""
        ...

    def keep(
        self,
        temporary: Path,
        *,
        ext: str,
        private: bool,
        download: Download | None = None,
        digest: tuple[str, int] | None = None,
    ) -> StoredFile:
        """Store a finished temporary file under its sha256 name; durable on return.
        `digest`: its sha256 and size, taken as it was written (not read again; only the size
        is checked); by default read from the file."""
        ...

    def size(self, location: str) -> int | None:
        """The stored file's size in bytes, None when there is none."""
        ...

    def local_copy(self, location: str) -> AbstractContextManager[Path]:
        """A local path holding the stored file's bytes while the block runs (pyarrow reads
        it); FileNotFoundError when there is none."""
        ...

    def digest(self, location: str) -> tuple[str, int]:
        """The stored bytes' sha256 and size, read in full; OSError when there are none."""
        ...

    def local_path(self, location: str) -> Path | None:
        """The file's path on this machine (the directory store), None in an object store."""
        ...

    def signed_url(
        self, location: str, *, seconds: int, method: Literal["GET", "HEAD"] = "GET"
    ) -> str:
        """A URL that fetches the file (`method`), without credentials, for `seconds`."""
        ...

    def adopt_legacy_snapshot_file(
        self, snapshot_id: str, name: str, *, sha256: str, ext: str
    ) -> None:
        """Take a snapshot file written before the store was content-addressed into it."""
        ...

    def read_marker(self, instance_id: str) -> str | None:
        """The instance marker's text, None when there is none; OSError when unreachable."""
        ...

    def write_marker(self, instance_id: str, body: str) -> None: ...

    def remove_marker(self, instance_id: str) -> None: ...


def open_store(settings: Settings) -> ExportStore:
    """The export store the settings name: an object store when `EFDB_EXPORT_STORE_URL` is
    set (`EFDB_EXPORT_DIR` then only holds files while they are written or read), the
    directory `EFDB_EXPORT_DIR` otherwise."""
    if settings.export_store_url:
        from app.exports.object_store import S3ExportStore

        return S3ExportStore(
            settings.export_store_url,
            staging_dir=settings.export_dir,
            endpoint=settings.export_store_endpoint,
            region=settings.export_store_region,
            retry_after_seconds=settings.retry_after_seconds,
        )
    return LocalExportStore(settings.export_dir)


def attachment(filename: str) -> str:
    """Content-Disposition as Starlette's FileResponse writes it."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'


def first_line(exc: BaseException) -> str:
    """An error's first line: the object store library's says what failed, the rest is its
    debug dump of the retries."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def relative_path(sha256: str, ext: str, *, private: bool) -> str:
    return f"{REGISTERED_AREA if private else PUBLIC_AREA}/{sha256}.{ext}"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: Path, *, sync: bool = False) -> tuple[str, int]:
    """A local file's sha256 and size (fsynced first when `sync`)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        if sync:
            os.fsync(handle.fileno())
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def known_digest(path: Path, digest: tuple[str, int]) -> tuple[str, int]:
    """A file's sha256 and size as taken while it was written: its size checked against the
    file's, the file fsynced; its bytes are not read again."""
    sha256, size = digest
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
        if os.fstat(handle.fileno()).st_size != size:
            raise RuntimeError(f"{path}: {size} bytes written, another size on disk")
    return sha256, size


@contextlib.contextmanager
def temporary_in(directory: Path) -> Iterator[Path]:
    """A temporary path in `directory`; removed unless renamed away."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".tmp-{uuid.uuid4().hex}"
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


class LocalExportStore:
    """The export directory (`EFDB_EXPORT_DIR`): files are sent by the application (or by
    nginx, `EFDB_X_ACCEL_REDIRECT_PREFIX`)."""

    redirects = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"the export directory {root}"

    def resolve(self, location: str) -> Path:
        return self.root / location

    def new_file(self, *, private: bool) -> AbstractContextManager[Path]:
        # In the directory the file will be kept in: keeping it is a rename.
        return temporary_in(self.root / (REGISTERED_AREA if private else PUBLIC_AREA))

    def keep(
        self,
        temporary: Path,
        *,
        ext: str,
        private: bool,
        download: Download | None = None,
        digest: tuple[str, int] | None = None,
    ) -> StoredFile:
        """Give a finished temporary file its sha256 name (fsync, rename, fsync the directory).

        A file already under that name holds these very bytes (its name says so) and is left
        as it is; one whose bytes no longer match its name (damaged on disk) is replaced by the
        bytes the name promises.
        """
        if digest is not None:
            sha256, size = known_digest(temporary, digest)
        else:
            sha256, size = file_digest(temporary, sync=True)
        relative = relative_path(sha256, ext, private=private)
        final = self.resolve(relative)
        if final.is_file() and file_digest(final) == (sha256, size):
            temporary.unlink()
        else:
            os.replace(temporary, final)
            _fsync_directory(final.parent)
        return StoredFile(relative, sha256, size)

    def size(self, location: str) -> int | None:
        try:
            return self.resolve(location).stat().st_size
        except OSError:
            return None

    @contextlib.contextmanager
    def local_copy(self, location: str) -> Iterator[Path]:
        path = self.resolve(location)
        if not path.is_file():
            raise FileNotFoundError(path)
        yield path

    def digest(self, location: str) -> tuple[str, int]:
        return file_digest(self.resolve(location))

    def local_path(self, location: str) -> Path | None:
        return self.resolve(location)

    def signed_url(
        self, location: str, *, seconds: int, method: Literal["GET", "HEAD"] = "GET"
    ) -> str:
        raise NotImplementedError("the export directory's files are sent by the application")

    def adopt_legacy_snapshot_file(
        self, snapshot_id: str, name: str, *, sha256: str, ext: str
    ) -> None:
        """A snapshot written before the store was content-addressed
        (``snapshots/<id>/<name>``) is taken into it the first time, if its bytes still match
        the record."""
        legacy = self.root / LEGACY_SNAPSHOTS / snapshot_id / name
        with contextlib.suppress(OSError):
            if legacy.is_file() and file_digest(legacy)[0] == sha256:
                with self.new_file(private=False) as temporary:
                    os.link(legacy, temporary)
                    self.keep(temporary, ext=ext, private=False)

    def _marker(self, instance_id: str) -> Path:
        return self.root / INSTANCES / instance_id

    def read_marker(self, instance_id: str) -> str | None:
        try:
            return self._marker(instance_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_marker(self, instance_id: str, body: str) -> None:
        marker = self._marker(instance_id)
        with temporary_in(marker.parent) as temporary:
            with temporary.open("w", encoding="utf-8") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, marker)
            _fsync_directory(marker.parent)

    def remove_marker(self, instance_id: str) -> None:
        self._marker(instance_id).unlink(missing_ok=True)


def snapshot_file_ext(name: str) -> str:
    """The extension a snapshot file is stored under: `factors.jsonld.zip` → `jsonld.zip`."""
    return name.split(".", 1)[1]


def snapshot_file_location(store: ExportStore, snapshot_id: str, entry: dict[str, object]) -> str:
    """Where a snapshot's recorded file lives in the store (a snapshot written before the
    store was content-addressed is taken into it the first time it is asked for)."""
    name = str(entry["name"])
    sha256 = str(entry["sha256"])
    ext = snapshot_file_ext(name)
    location = relative_path(sha256, ext, private=False)
    if store.size(location) is None:
        store.adopt_legacy_snapshot_file(snapshot_id, name, sha256=sha256, ext=ext)
    return location


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
    path: str  # the file's key in the store
    sha256: str
    bytes: int


def recorded_files(session: Session, store: ExportStore) -> Iterator[RecordedFile]:
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
            record.path,
            record.sha256,
            record.bytes,
        )
    for snapshot in session.execute(select(Snapshot).order_by(Snapshot.id)).scalars():
        for entry in snapshot.files:
            yield RecordedFile(
                f"snapshot {snapshot.id} {entry['name']}",
                snapshot_file_location(store, snapshot.id, entry),
                str(entry["sha256"]),
                int(entry["bytes"]),
            )


@dataclass(frozen=True)
class FileCheck:
    file: RecordedFile
    problem: Literal["missing", "differs"] | None


def verify_files(session: Session, store: ExportStore) -> list[FileCheck]:
    """Each recorded file checked against its recorded sha256 and size (read in full)."""
    checks = []
    for file in recorded_files(session, store):
        problem: Literal["missing", "differs"] | None = None
        try:
            if store.digest(file.path) != (file.sha256, file.bytes):
                problem = "differs"
        except OSError:
            problem = "missing"
        checks.append(FileCheck(file, problem))
    return checks


# --------------------------------------------------------------------------- instance marker


def ensure_instance(session: Session, store: ExportStore) -> str:
    """This database's instance id; on first start, a new one, with its marker in the store.

    The marker is written before the row, so that a row never exists without its marker; a
    marker whose row lost the race to another worker is removed again. The caller commits.
    """
    existing = session.execute(select(DatabaseInstance.instance_id)).scalar()
    if existing is not None:
        return existing
    candidate = uuid.uuid4().hex
    body = json.dumps({"instance_id": candidate, "created_at": utcnow().isoformat()})
    store.write_marker(candidate, body + "\n")
    values = {"id": 1, "instance_id": candidate, "created_at": utcnow()}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(postgresql_insert(DatabaseInstance).values(values).on_conflict_do_nothing())
    else:
        session.execute(sqlite_insert(DatabaseInstance).values(values).on_conflict_do_nothing())
    recorded = session.execute(select(DatabaseInstance.instance_id)).scalar_one()
    if recorded != candidate:
        store.remove_marker(candidate)
    return recorded


def store_problem(session: Session, store: ExportStore) -> str | None:
    """Why the export store is not the one this database recorded (or cannot be reached),
    or None if it is."""
    described = store.description[0].upper() + store.description[1:]
    try:
        instance_id = ensure_instance(session, store)
        text = store.read_marker(instance_id)
    except OSError as exc:
        return f"{described} cannot be written: {exc.strerror or exc}."
    except StoreUnavailable as exc:
        return f"{described} does not answer: {first_line(exc.__cause__ or exc)[:300]}"
    try:
        named = json.loads(text).get("instance_id") if text is not None else None
    except (ValueError, AttributeError):
        named = None
    if named != instance_id:
        return (
            f"{described} is not the one this database recorded: it has no marker "
            f"{INSTANCES}/{instance_id} for database instance {instance_id}."
        )
    return None
