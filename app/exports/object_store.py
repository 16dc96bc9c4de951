"""The export store in an S3-compatible object store (``EFDB_EXPORT_STORE_URL=s3://…``),
through `obstore` (the Rust `object_store` crate: requests signed, retried and checked there).

Files are written locally first (pyarrow writes local files, under ``EFDB_EXPORT_DIR``), hashed,
then uploaded under their sha256 name; the database records a file only after the store
acknowledged it, and an S3 PUT is acknowledged only once the object is stored durably. Each
upload signs its payload's sha256 (SigV4 ``x-amz-content-sha256``), so the store refuses bytes
that changed on the way. A file up to `SINGLE_PUT_BYTES` is put with ``If-None-Match: *``
(written once: a second writer of the same name is refused, and its bytes are the same, by the
name); a larger one is uploaded in parts when the store does not have it yet.

Credentials come from where the library reads them: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (``AWS_SESSION_TOKEN``), web identity or instance metadata; the
endpoint and region from the settings or ``AWS_ENDPOINT_URL`` / ``AWS_REGION``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, NotFoundError
from obstore.store import S3Store

from app.core.problem_text import Message
from app.exports.store import (
    INSTANCES,
    Download,
    StoredFile,
    StoreUnavailable,
    attachment,
    file_digest,
    first_line,
    known_digest,
    relative_path,
    temporary_in,
)

if TYPE_CHECKING:
    from obstore import Attributes

log = logging.getLogger("efdb.exports")

# Larger files are uploaded in parts (a single PUT holds the whole file in memory).
SINGLE_PUT_BYTES = 64 * 1024 * 1024
PART_BYTES = 16 * 1024 * 1024
# A store that does not answer fails a request (and /readyz) in seconds, not minutes.
RETRY_CONFIG: dict[str, Any] = {
    "max_retries": 3,
    "init_backoff": timedelta(milliseconds=100),
    "max_backoff": timedelta(seconds=2),
    "base": 2.0,
    "retry_timeout": timedelta(seconds=15),
}
STAGING = "staging"


class S3ExportStore:
    """Export files in an S3-compatible bucket under a prefix (`s3://bucket/prefix`)."""

    redirects = True

    def __init__(
        self,
        url: str,
        *,
        staging_dir: Path,
        endpoint: str | None = None,
        region: str | None = None,
        retry_after_seconds: int = 5,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry_after = str(retry_after_seconds)
        self.description = f"the object store {self.url}"
        self.staging = staging_dir / STAGING
        config: dict[str, Any] = {}
        if endpoint:
            config["endpoint"] = endpoint
        if region:
            config["region"] = region
        client_options: dict[str, Any] = {"connect_timeout": "5s", "timeout": "300s"}
        if endpoint and endpoint.startswith("http://"):
            client_options["allow_http"] = True  # a store on a private network (MinIO…)
        self.store = S3Store.from_url(
            self.url,
            config=config,  # type: ignore[arg-type]
            client_options=client_options,  # type: ignore[arg-type]
            retry_config=RETRY_CONFIG,  # type: ignore[arg-type]
        )

    def _unavailable(self, exc: BaseError | OSError) -> NoReturn:
        log.error("export store %s: %s", self.url, first_line(exc))
        raise StoreUnavailable(
            Message("export_store.unavailable", store=self.url),
            headers={"Retry-After": self.retry_after},
        ) from exc

    def new_file(self, *, private: bool) -> contextlib.AbstractContextManager[Path]:
        return temporary_in(self.staging)

    def keep(
        self,
        temporary: Path,
        *,
        ext: str,
        private: bool,
        download: Download | None = None,
        digest: tuple[str, int] | None = None,
    ) -> StoredFile:
        sha256, size = known_digest(temporary, digest) if digest else file_digest(temporary)
        location = relative_path(sha256, ext, private=private)
        attributes: Attributes = {"sha256": sha256}
        if download is not None:
            attributes.update(
                {
                    "Content-Type": download.media_type,
                    "Content-Disposition": attachment(download.filename),
                    "Cache-Control": download.cache_control,
                }
            )
        try:
            if size <= SINGLE_PUT_BYTES:
                try:
                    obstore.put(
                        self.store,
                        location,
                        temporary,
                        mode="create",
                        use_multipart=False,
                        attributes=attributes,
                    )
                except AlreadyExistsError:
                    # Its name says these bytes; a different size means it was damaged.
                    existing = self.size(location)
                    if existing != size:
                        self._replace(location, temporary, attributes, damaged=True)
            elif (existing := self.size(location)) != size:
                self._replace(location, temporary, attributes, damaged=existing is not None)
        except (BaseError, OSError) as exc:
            self._unavailable(exc)
        finally:
            temporary.unlink(missing_ok=True)
        return StoredFile(location, sha256, size)

    def _replace(
        self, location: str, temporary: Path, attributes: Attributes, *, damaged: bool
    ) -> None:
        if damaged:
            log.warning(
                "export store %s: %s differs from its name, written again", self.url, location
            )
        obstore.put(
            self.store,
            location,
            temporary,
            attributes=attributes,
            use_multipart=True,
            chunk_size=PART_BYTES,
            max_concurrency=4,
        )

    def size(self, location: str) -> int | None:
        try:
            return int(obstore.head(self.store, location)["size"])
        except (NotFoundError, FileNotFoundError):
            return None
        except (BaseError, OSError) as exc:
            self._unavailable(exc)

    def _chunks(self, location: str) -> Iterator[bytes]:
        try:
            result = obstore.get(self.store, location)
            for chunk in result.stream(min_chunk_size=1 << 20):
                yield bytes(chunk)
        except (NotFoundError, FileNotFoundError) as exc:
            raise FileNotFoundError(f"{self.url}/{location}") from exc
        except (BaseError, OSError) as exc:
            self._unavailable(exc)

    @contextlib.contextmanager
    def local_copy(self, location: str) -> Iterator[Path]:
        with temporary_in(self.staging) as temporary:
            with temporary.open("wb") as handle:
                for chunk in self._chunks(location):
                    handle.write(chunk)
            yield temporary

    def digest(self, location: str) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        for chunk in self._chunks(location):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size

    def local_path(self, location: str) -> Path | None:
        return None

    def signed_url(
        self, location: str, *, seconds: int, method: Literal["GET", "HEAD"] = "GET"
    ) -> str:
        try:
            return obstore.sign(self.store, method, location, timedelta(seconds=seconds))
        except (BaseError, OSError) as exc:
            self._unavailable(exc)

    def adopt_legacy_snapshot_file(
        self, snapshot_id: str, name: str, *, sha256: str, ext: str
    ) -> None:
        """Snapshots in an object store were always content-addressed: nothing to adopt."""

    def read_marker(self, instance_id: str) -> str | None:
        try:
            return b"".join(self._chunks(f"{INSTANCES}/{instance_id}")).decode("utf-8")
        except FileNotFoundError:
            return None

    def write_marker(self, instance_id: str, body: str) -> None:
        try:
            obstore.put(
                self.store, f"{INSTANCES}/{instance_id}", body.encode("utf-8"), mode="create"
            )
        except (BaseError, OSError) as exc:
            self._unavailable(exc)

    def remove_marker(self, instance_id: str) -> None:
        try:
            obstore.delete(self.store, f"{INSTANCES}/{instance_id}")
        except (BaseError, OSError) as exc:
            self._unavailable(exc)
