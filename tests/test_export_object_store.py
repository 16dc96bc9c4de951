"""The export store in an S3-compatible object store (`EFDB_EXPORT_STORE_URL`), against a real
S3 server running here (moto's, in this process: one per test session, a fresh bucket per
test). Files land in the bucket under their sha256 names; downloads are redirected to signed
URLs that a plain HTTP client follows to the same bytes the export directory would send;
registered datasets stay behind the application's access check.

The factors here are synthetic test fixtures, not real emission factors.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import obstore
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer
from obstore.store import S3Store
from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.exports import object_store
from app.exports.models import DatabaseInstance, ExportFile
from app.exports.store import Download, open_store
from app.exports.writer import write_snapshot_files
from app.main import create_app
from tests.conftest import run_efdb_in_process
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.live_server import loopback_client, serve_in_thread
from tests.test_exports_http import duckdb_with_httpfs

Headers = Callable[..., dict[str, str]]
REGION = "us-east-1"
PREFIX = "efdb/exports"
PUBLIC = "/v1/datasets/synth-s3/open/versions/1.0.0"
MEMBERS = "/v1/datasets/synth-s3/members/versions/1.0.0"
SNAPSHOT_FILES = ("factors.parquet", "factors.arrow", "factors.arrows", "manifest.json")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """One S3-compatible server (moto) for the test session, on a free port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; the credentials where the library reads them (the environment)."""
    name = f"efdb-{uuid.uuid4().hex[:16]}"
    httpx.put(f"{s3_endpoint}/{name}").raise_for_status()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return name


@pytest.fixture
def settings(settings: Settings, bucket: str, s3_endpoint: str) -> Settings:
    """The suite's settings, with the export store in the bucket (`client` uses them)."""
    return settings.model_copy(
        update={
            "export_store_url": f"s3://{bucket}/{PREFIX}",
            "export_store_endpoint": s3_endpoint,
            "export_store_region": REGION,
            "export_signed_url_seconds": 60,
        }
    )


@pytest.fixture
def bucket_store(bucket: str, s3_endpoint: str) -> S3Store:
    """The bucket, through a client of the test's own."""
    return S3Store(
        bucket,
        config={"endpoint": s3_endpoint, "region": REGION},
        client_options={"allow_http": True},
    )


@pytest.fixture
def keys_in_bucket(bucket_store: S3Store) -> Callable[[], set[str]]:
    def listing() -> set[str]:
        return {meta["path"] for batch in obstore.list(bucket_store) for meta in batch}

    return listing


def publish(session: Session) -> None:
    publisher = create_publisher(session, slug="synth-s3")
    open_data = create_dataset(session, publisher=publisher, slug="open")
    create_version(
        session, dataset=open_data, factors=[factor_fields("o-1"), factor_fields("o-2", co2e=2.5)]
    )
    members = create_dataset(session, publisher=publisher, slug="members", access="registered")
    create_version(session, dataset=members, factors=[factor_fields("m-1", co2e=7.0)])
    session.commit()


def follow(response: httpx.Response) -> httpx.Response:
    """The signed URL fetched as any client would: a plain GET, no credentials."""
    assert response.status_code == 307, response.text
    fetched = httpx.get(response.headers["location"])
    assert fetched.status_code == 200, fetched.text
    return fetched


def test_version_export_is_uploaded_under_its_sha256_and_downloaded_by_redirect(
    client: TestClient,
    session: Session,
    settings: Settings,
    db: Engine,
    keys_in_bucket: Callable[[], set[str]],
) -> None:
    publish(session)
    response = client.get(f"{PUBLIC}/export.parquet", follow_redirects=False)
    body = follow(response).content
    digest = sha256(body)
    assert f"{PREFIX}/sha256/{digest}.parquet" in keys_in_bucket()
    assert not (settings.export_dir / "sha256").exists()  # the directory only staged it
    assert pq.read_table(io.BytesIO(body)).column("co2e").to_pylist() == [1.0, 2.5]

    # The redirect: short-lived, public, no ETag (a cache must not revalidate it into an
    # expired URL); the store answers with the file's type, download name and caching.
    assert response.headers["cache-control"] == "public, max-age=15"
    assert "etag" not in response.headers
    assert response.headers["link"].endswith('rel="license"')
    fetched = httpx.get(response.headers["location"])
    assert fetched.headers["content-type"] == "application/vnd.apache.parquet"
    assert fetched.headers["content-disposition"] == (
        'attachment; filename="synth-s3_open_1.0.0.parquet"'
    )
    assert fetched.headers["cache-control"] == "public, max-age=31536000, immutable"

    # HEAD is redirected too, to a URL signed for HEAD: the store tells the size and keeps
    # the file's sha256 beside its own ETag. A known ETag is a 304 here, no redirect.
    head = client.head(f"{PUBLIC}/export.parquet", follow_redirects=False)
    assert head.status_code == 307
    stored = httpx.head(head.headers["location"])
    assert stored.status_code == 200
    assert stored.headers["content-length"] == str(len(body))
    assert stored.headers["x-amz-meta-sha256"] == digest
    again = client.get(f"{PUBLIC}/export.parquet", headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304
    assert again.headers["etag"] == f'"{digest}"'

    # A byte range is the store's to answer, at the signed URL.
    ranged = httpx.get(response.headers["location"], headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206
    assert ranged.content == b"PAR1"

    # Derived formats read the Parquet file back from the bucket.
    csv_body = follow(client.get(f"{PUBLIC}/export.csv", follow_redirects=False)).content
    assert f"{PREFIX}/sha256/{sha256(csv_body)}.csv" in keys_in_bucket()

    # The export directory, for the same database and release, sends the very same bytes.
    with make_sessionmaker(db).begin() as writing:
        writing.execute(delete(ExportFile))
    local = create_app(settings.model_copy(update={"export_store_url": None}))
    try:
        with TestClient(local) as local_client:
            assert local_client.get(f"{PUBLIC}/export.parquet").content == body
            assert local_client.get(f"{PUBLIC}/export.csv").content == csv_body
    finally:
        local.state.engine.dispose()


def test_registered_export_is_redirected_only_after_the_access_check(
    client: TestClient,
    session: Session,
    reader_token: Headers,
    keys_in_bucket: Callable[[], set[str]],
) -> None:
    publish(session)
    for headers in ({}, reader_token()):  # anonymous; a reader without a grant
        refused = client.get(f"{MEMBERS}/export.parquet", headers=headers, follow_redirects=False)
        assert refused.status_code == 404
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "location" not in refused.headers
    assert not keys_in_bucket()  # nothing written for a viewer who may not read it

    granted = reader_token("synth-s3/members")
    response = client.get(f"{MEMBERS}/export.parquet", headers=granted, follow_redirects=False)
    assert response.headers["cache-control"] == "private, no-store"
    fetched = follow(response)
    assert fetched.headers["cache-control"] == "private, no-store"
    assert pq.read_table(io.BytesIO(fetched.content)).column("factor_code").to_pylist() == ["m-1"]
    # Kept apart from the public files, which a CDN may serve as they are.
    assert keys_in_bucket() == {f"{PREFIX}/registered/sha256/{sha256(fetched.content)}.parquet"}
    # The URL lives as long as the setting says, counted from its signing.
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["X-Amz-Expires"] == ["60"]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - signed_at) < timedelta(minutes=1)


def test_snapshot_files_are_uploaded_and_downloaded_by_redirect(
    app: FastAPI,
    session: Session,
    admin_token: Callable[[], dict[str, str]],
    keys_in_bucket: Callable[[], set[str]],
) -> None:
    """Against a real server: each file is fetched through its redirect in the requests right
    after the snapshot's answer, so it was in the bucket when the answer was sent."""
    publish(session)
    with serve_in_thread(app) as base, loopback_client(base_url=base) as client:
        created = client.post("/v1/snapshots", headers=admin_token())
        assert created.status_code == 201, created.text
        snapshot = created.json()
        keys = keys_in_bucket()
        for entry in snapshot["files"]:
            ext = entry["name"].rsplit(".", 1)[-1]
            assert f"{PREFIX}/sha256/{entry['sha256']}.{ext}" in keys, entry["name"]
        recorded = {entry["name"]: entry for entry in snapshot["files"]}
        for name in SNAPSHOT_FILES:
            response = client.get(f"/v1/snapshots/{snapshot['id']}/{name}", follow_redirects=False)
            body = follow(response).content
            assert (sha256(body), len(body)) == (recorded[name]["sha256"], recorded[name]["bytes"])
            assert response.headers["cache-control"] == "public, max-age=15"
        table = pq.read_table(
            io.BytesIO(
                follow(
                    client.get("/v1/snapshots/latest/factors.parquet", follow_redirects=False)
                ).content
            )
        )
        # The registered dataset never enters a public snapshot.
        assert sorted(table.column("factor_code").to_pylist()) == ["o-1", "o-2"]
        latest = client.get("/v1/snapshots/latest/manifest.json", follow_redirects=False)
        assert latest.headers["content-location"] == f"/v1/snapshots/{snapshot['id']}/manifest.json"


def test_a_snapshot_reads_its_releases_arrow_files_from_the_bucket(
    client: TestClient,
    session: Session,
    admin_token: Callable[[], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the release's `export.arrow` recorded in the bucket, a snapshot is written from
    a download of it: the same rows as one written from the database."""
    publish(session)
    cold = client.post("/v1/snapshots", headers=admin_token()).json()
    assert follow(client.get(f"{PUBLIC}/export.arrow", follow_redirects=False)).status_code == 200
    calls: list[int] = []

    def spied(**kwargs: Any) -> Any:
        calls.append(len(kwargs["groups"]))
        return write_snapshot_files(**kwargs)

    monkeypatch.setattr("app.exports.service.write_snapshot_files", spied)
    warm = client.post("/v1/snapshots", headers=admin_token()).json()
    assert calls == [1]  # written from the one release's IPC file, not from the database
    tables = []
    for snapshot in (cold, warm):
        recorded = {entry["name"]: entry for entry in snapshot["files"]}
        url = f"/v1/snapshots/{snapshot['id']}/factors.parquet"
        body = follow(client.get(url, follow_redirects=False)).content
        entry = recorded["factors.parquet"]
        assert (sha256(body), len(body)) == (entry["sha256"], entry["bytes"])
        tables.append(pq.read_table(io.BytesIO(body)))
    assert tables[0].to_pylist() == tables[1].to_pylist()
    assert sorted(tables[1].column("factor_code").to_pylist()) == ["o-1", "o-2"]


@pytest.mark.dialect_neutral
def test_signed_url_lives_as_long_as_the_setting(session: Session, settings: Settings) -> None:
    publish(session)
    app = create_app(settings.model_copy(update={"export_signed_url_seconds": 1}))
    try:
        with TestClient(app) as one_second:
            response = one_second.get(f"{PUBLIC}/export.arrow", follow_redirects=False)
    finally:
        app.state.engine.dispose()
    assert response.status_code == 307
    assert parse_qs(urlsplit(response.headers["location"]).query)["X-Amz-Expires"] == ["1"]


@pytest.mark.dialect_neutral
def test_readyz_checks_the_object_store(
    client: TestClient,
    db: Engine,
    settings: Settings,
    keys_in_bucket: Callable[[], set[str]],
) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    with make_sessionmaker(db)() as session:
        instance_id = session.execute(select(DatabaseInstance.instance_id)).scalar_one()
    assert keys_in_bucket() == {f"{PREFIX}/instances/{instance_id}"}

    # The same database pointed at a bucket that is not its own, and at a store that is down.
    for elsewhere in (
        {"export_store_url": f"s3://efdb-missing-{uuid.uuid4().hex[:8]}/x"},
        {"export_store_endpoint": "http://127.0.0.1:9"},
    ):
        app = create_app(settings.model_copy(update=elsewhere))
        try:
            with TestClient(app) as other:
                response = other.get("/readyz")
        finally:
            app.state.engine.dispose()
        assert response.status_code == 503, elsewhere
        assert response.json()["export_dir"] == "mismatch"
        assert "the object store s3://" in response.json()["detail"].lower()


@pytest.mark.dialect_neutral
def test_store_settings_are_checked_at_start(tmp_path: Path) -> None:
    base: dict[str, Any] = {"_env_file": None, "environment": "test", "export_dir": tmp_path}
    assert Settings(**base, export_store_url="s3://efdb-exports/prefix").export_store_url
    for wrong in ("https://efdb-exports/x", "s3://", "s3://UPPER/x", "/srv/exports"):
        with pytest.raises(ValidationError, match="EFDB_EXPORT_STORE_URL"):
            Settings(**base, export_store_url=wrong)
    with pytest.raises(ValidationError, match="EFDB_X_ACCEL_REDIRECT_PREFIX"):
        Settings(**base, export_store_url="s3://efdb-exports", x_accel_redirect_prefix="/_files/")
    with pytest.raises(ValidationError, match="less than or equal to 3600"):
        Settings(**base, export_signed_url_seconds=86_400)


@pytest.mark.dialect_neutral
def test_duckdb_reads_an_export_through_the_redirect(app: FastAPI, session: Session) -> None:
    """DuckDB's httpfs asks HEAD, then byte ranges, each redirected to the store."""
    publish(session)
    connection = duckdb_with_httpfs()
    with serve_in_thread(app) as base:
        rows = connection.execute(
            f"SELECT factor_code, co2e FROM read_parquet('{base}{PUBLIC}/export.parquet') "
            "ORDER BY factor_code"
        ).fetchall()
    assert rows == [("o-1", 1.0), ("o-2", 2.5)]


@pytest.mark.dialect_neutral
@pytest.mark.parametrize("single_put_bytes", [64 * 1024 * 1024, 1024], ids=["put", "parts"])
def test_a_file_is_written_once_under_its_name(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    keys_in_bucket: Callable[[], set[str]],
    single_put_bytes: int,
) -> None:
    """Kept twice, a file is stored once: a single PUT with If-None-Match (the store refuses
    the second), or past that bound (lowered here for `parts`) an upload in parts only when
    the store does not hold the name yet. The first object stands: its download name is the
    first writer's."""
    monkeypatch.setattr(object_store, "SINGLE_PUT_BYTES", single_put_bytes)
    export_store = open_store(settings)
    data = bytes(range(256)) * 4096  # 1 MiB, synthetic
    for filename in ("first.arrow", "second.arrow"):
        with export_store.new_file(private=False) as temporary:
            temporary.write_bytes(data)
            download = Download(filename, "application/vnd.apache.arrow.file", "no-store")
            stored = export_store.keep(temporary, ext="arrow", private=False, download=download)
    assert stored.sha256 == sha256(data)
    assert keys_in_bucket() == {f"{PREFIX}/sha256/{stored.sha256}.arrow"}
    assert export_store.digest(stored.path) == (sha256(data), len(data))
    url = export_store.signed_url(stored.path, seconds=60)
    assert httpx.get(url).headers["content-disposition"] == 'attachment; filename="first.arrow"'
    assert not list((settings.export_dir / "staging").iterdir())  # nothing left behind


@pytest.mark.dialect_neutral
def test_a_store_that_does_not_answer_is_a_503_and_nothing_is_recorded(
    session: Session, settings: Settings, db: Engine
) -> None:
    publish(session)
    app = create_app(settings.model_copy(update={"export_store_endpoint": "http://127.0.0.1:9"}))
    try:
        with TestClient(app) as down:
            response = down.get(f"{PUBLIC}/export.parquet", follow_redirects=False)
    finally:
        app.state.engine.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"].endswith("/export-store-unavailable")
    with make_sessionmaker(db)() as reading:
        assert reading.execute(select(ExportFile)).first() is None


@pytest.mark.dialect_neutral
def test_exports_verify_reads_every_recorded_file_from_the_bucket(
    client: TestClient,
    session: Session,
    settings: Settings,
    database_url: str,
    tmp_path: Path,
    admin_token: Callable[[], dict[str, str]],
    bucket: str,
    s3_endpoint: str,
    bucket_store: S3Store,
) -> None:
    publish(session)
    snapshot = client.post("/v1/snapshots", headers=admin_token()).json()
    env = {
        "EFDB_DATABASE_URL": database_url,
        "EFDB_EXPORT_DIR": str(settings.export_dir),
        "EFDB_EXPORT_STORE_URL": f"s3://{bucket}/{PREFIX}",
        "EFDB_EXPORT_STORE_ENDPOINT": s3_endpoint,
        "EFDB_EXPORT_STORE_REGION": REGION,
    }
    clean = run_efdb_in_process("exports", "verify", env=env, cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout) == {"ok": True, "files": len(snapshot["files"])}

    manifest = next(f for f in snapshot["files"] if f["name"] == "manifest.json")
    obstore.delete(bucket_store, f"{PREFIX}/sha256/{manifest['sha256']}.json")
    broken = run_efdb_in_process("exports", "verify", env=env, cwd=tmp_path)
    assert broken.returncode == 1
    assert broken.stdout.startswith(f"missing: snapshot {snapshot['id']} manifest.json")
    assert f"s3://{bucket}/{PREFIX}" in broken.stdout


def test_snapshot_packages_are_assembled_through_the_bucket(
    client: TestClient,
    session: Session,
    settings: Settings,
    admin_token: Callable[[], dict[str, str]],
    keys_in_bucket: Callable[[], set[str]],
) -> None:
    """A snapshot's openLCA and ILCD packages with the files in a bucket: one release's package
    recorded (downloaded) before, read back from the bucket; the packages land in it too."""
    settings.snapshot_packages_max_rows = 100_000  # the default (the suite leaves them out)
    publish(session)
    version = "/v1/datasets/synth-s3/open/versions/1.0.0"
    follow(client.get(f"{version}/export.jsonld.zip", follow_redirects=False))
    created = client.post("/v1/snapshots", headers=admin_token())
    assert created.status_code == 201, created.text
    snapshot = created.json()
    recorded = {entry["name"]: entry for entry in snapshot["files"]}
    keys = keys_in_bucket()
    for name, folder in (
        ("factors.jsonld.zip", "processes/"),
        ("factors.ilcd.zip", "ILCD/processes/"),
    ):
        entry = recorded[name]
        assert f"{PREFIX}/sha256/{entry['sha256']}.{name.split('.', 1)[1]}" in keys
        body = follow(
            client.get(f"/v1/snapshots/{snapshot['id']}/{name}", follow_redirects=False)
        ).content
        assert sha256(body) == entry["sha256"]
        with zipfile.ZipFile(io.BytesIO(body)) as package:
            assert len([n for n in package.namelist() if n.startswith(folder)]) == 2
