"""Snapshots written from releases' own export files (`efdb exports prepare`, or a first
download): the same rows as written from the database; the workbook bound
(EFDB_SNAPSHOT_XLSX_MAX_ROWS); file downloads handed to nginx after efdb's checks. All data is
synthetic."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.exports.schema import COLUMNS, EXPORT_SCHEMA
from tests.conftest import run_efdb_in_process
from tests.factories import create_dataset, create_publisher, create_version, factor_fields

Headers = Callable[[], dict[str, str]]
ReaderHeaders = Callable[[str], dict[str, str]]


def synthetic_release(publisher: str, rows: int, offset: int) -> pa.Table:
    """A release's rows in the export schema: synthetic values, own dictionary values."""
    columns: dict[str, pa.Array] = {}
    for column in COLUMNS:
        kind = column.type
        if column.name == "publisher":
            columns[column.name] = pa.array([publisher] * rows).dictionary_encode()
        elif pa.types.is_dictionary(kind):
            values = [f"{publisher}-synthetic-{(i + offset) % 7}" for i in range(rows)]
            columns[column.name] = pa.array(values).dictionary_encode()
        elif pa.types.is_floating(kind):
            columns[column.name] = pa.array([(i + offset) * 0.1 for i in range(rows)], kind)
        elif pa.types.is_integer(kind):
            columns[column.name] = pa.array([2 + (i % 3) for i in range(rows)], kind)
        elif pa.types.is_date(kind):
            columns[column.name] = pa.array([date(2024, 1, 1 + i % 28) for i in range(rows)])
        elif pa.types.is_timestamp(kind):
            columns[column.name] = pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * rows, kind)
        else:
            columns[column.name] = pa.array([f"syn-{offset + i}" for i in range(rows)])
    return pa.table(columns, schema=EXPORT_SCHEMA)


def plain(table: pa.Table) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = table.to_pylist()
    return rows


def test_a_snapshot_above_the_workbook_bound_has_no_workbook_and_says_why(
    client: TestClient, seeded: None, admin_token: Headers, settings: Settings
) -> None:
    before = client.post("/v1/snapshots", headers=admin_token()).json()
    settings.snapshot_xlsx_max_rows = before["row_count"] - 1
    snapshot = client.post("/v1/snapshots", headers=admin_token()).json()
    base = f"/v1/snapshots/{snapshot['id']}"
    assert "factors.xlsx" not in {f["name"] for f in snapshot["files"]}
    manifest = client.get(f"{base}/manifest.json").json()
    assert manifest["workbook_max_rows"] == before["row_count"] - 1
    assert "factors.xlsx" not in {f["name"] for f in manifest["files"]}
    response = client.get(f"{base}/factors.xlsx")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "workbook_max_rows" in response.json()["detail"]
    # The same rows as the earlier snapshot (written with its workbook).
    rows = [
        pq.read_table(io.BytesIO(client.get(f"/v1/snapshots/{s['id']}/factors.parquet").content))
        for s in (before, snapshot)
    ]
    assert rows[0].to_pylist() == rows[1].to_pylist()


def test_a_snapshot_from_recorded_release_files_equals_one_from_rows(
    client: TestClient, seeded: None, admin_token: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    cold = client.post("/v1/snapshots", headers=admin_token()).json()
    for version in cold["dataset_versions"]:
        base = (
            f"/v1/datasets/{version['publisher']}/{version['dataset']}/versions/"
            f"{version['version']}/export"
        )
        for fmt in ("parquet", "arrows", "arrow"):
            assert client.get(f"{base}.{fmt}").status_code == 200
    warm = client.post("/v1/snapshots", headers=admin_token()).json()
    for name in ("factors.parquet", "factors.arrows", "factors.arrow"):
        tables = []
        for snapshot in (cold, warm):
            data = client.get(f"/v1/snapshots/{snapshot['id']}/{name}").content
            if name.endswith("parquet"):
                tables.append(pq.read_table(io.BytesIO(data)))
            elif name.endswith("arrows"):
                tables.append(ipc.open_stream(data).read_all())
            else:
                tables.append(ipc.open_file(io.BytesIO(data)).read_all())
        assert tables[0].to_pylist() == tables[1].to_pylist()
        assert tables[1].schema.metadata[b"efdb:snapshot_id"] == warm["id"].encode()


def test_with_the_offload_efdb_checks_and_names_the_file_nginx_sends(
    client: TestClient, session: Session, reader_token: ReaderHeaders, settings: Settings
) -> None:
    settings.x_accel_redirect_prefix = "/_efdb_files/"
    publisher = create_publisher(session, slug="synth-accel")
    dataset = create_dataset(session, publisher=publisher, slug="members", access="registered")
    create_version(session, dataset=dataset, factors=[factor_fields("r-1")])
    session.commit()
    url = "/v1/datasets/synth-accel/members/versions/1.0.0/export.parquet"
    refused = client.get(url)  # no token: the registered file stays unknown, nothing handed on
    assert refused.status_code == 404
    assert "x-accel-redirect" not in refused.headers
    handed = client.get(url, headers=reader_token("synth-accel/members"))
    assert handed.status_code == 200
    assert handed.content == b""
    etag = handed.headers["etag"].strip('"')
    assert handed.headers["x-accel-redirect"] == f"/_efdb_files/registered/sha256/{etag}.parquet"
    assert (settings.export_dir / "registered" / "sha256" / f"{etag}.parquet").is_file()
    assert handed.headers["cache-control"].startswith("private")
    assert handed.headers["content-type"] == "application/vnd.apache.parquet"
    assert handed.headers["content-disposition"] == (
        'attachment; filename="synth-accel_members_1.0.0.parquet"'
    )
    again = client.get(
        url, headers={**reader_token("synth-accel/members"), "If-None-Match": f'"{etag}"'}
    )
    assert again.status_code == 304
    assert "x-accel-redirect" not in again.headers


def test_exports_prepare_writes_what_snapshots_assemble(
    client: TestClient, seeded: None, admin_token: Headers, settings: Settings, database_url: str
) -> None:
    env = {
        "EFDB_DATABASE_URL": database_url,
        "EFDB_EXPORT_DIR": str(settings.export_dir),
        "EFDB_RELEASE_SIGNING_KEY": str(settings.release_signing_key),
    }
    prepared = run_efdb_in_process("exports", "prepare", env=env, cwd=settings.export_dir.parent)
    assert prepared.returncode == 0, prepared.stderr
    files = json.loads(prepared.stdout)["files"]
    snapshot = client.post("/v1/snapshots", headers=admin_token()).json()
    releases = {
        f"{v['publisher']}/{v['dataset']}@{v['version']}" for v in snapshot["dataset_versions"]
    }
    assert {(f["release"], f["format"]) for f in files} == {
        (release, fmt)
        for release in releases
        for fmt in ("parquet", "arrows", "arrow", "jsonld.zip", "ilcd.zip")
    }
    for release in snapshot["dataset_versions"]:
        base = (
            f"/v1/datasets/{release['publisher']}/{release['dataset']}/versions/"
            f"{release['version']}/export.parquet"
        )
        key = f"{release['publisher']}/{release['dataset']}@{release['version']}"
        (listed,) = [f for f in files if (f["release"], f["format"]) == (key, "parquet")]
        assert client.head(base).headers["etag"] == f'"{listed["sha256"]}"'  # the same file
    again = run_efdb_in_process("exports", "prepare", env=env, cwd=settings.export_dir.parent)
    assert json.loads(again.stdout)["files"] == files  # written once
