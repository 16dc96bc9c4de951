"""The export store: no file is ever sent under a name, ETag or sha256 that once meant other
bytes, whoever else writes into the same export directory.

The factors here are synthetic test fixtures, not real emission factors.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker
from app.core.migrations import upgrade_to_head
from app.exports.models import DatabaseInstance, Snapshot
from app.main import create_app
from app.ops.router import Readiness
from app.reference.loader import load_reference_data
from tests.auth_fixtures import TokenKit
from tests.factories import create_dataset, create_publisher, create_version, factor_fields

Headers = Callable[[], dict[str, str]]
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_VERSION = "/v1/datasets/synth-shared/shared/versions/1.0.0"
FORMATS = ("parquet", "arrow", "arrows", "csv")
SNAPSHOT_FILES = (
    "factors.parquet",
    "factors.arrow",
    "factors.arrows",
    "factors.xlsx",
    "manifest.json",
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish_shared(engine: Engine, co2e: float) -> None:
    """The same dataset and version in either database, with other (synthetic) values."""
    with make_sessionmaker(engine).begin() as session:
        publisher = create_publisher(session, slug="synth-shared")
        dataset = create_dataset(session, publisher=publisher, slug="shared")
        create_version(
            session,
            dataset=dataset,
            factors=[factor_fields("s-1", co2e=co2e), factor_fields("s-2", co2e=co2e * 2)],
        )


@pytest.fixture
def other_engine(tmp_path: Path) -> Iterator[Engine]:
    """A second database (SQLite), migrated as `efdb db upgrade` does."""
    engine = make_engine(f"sqlite:///{tmp_path / 'other' / 'efdb.sqlite3'}")
    upgrade_to_head(engine)
    with make_sessionmaker(engine).begin() as session:
        load_reference_data(session, audit=False)
    yield engine
    engine.dispose()


def assert_version_exports_are_its_own(client: TestClient, co2e: float) -> None:
    for fmt in FORMATS:
        response = client.get(f"{SHARED_VERSION}/export.{fmt}")
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == f'"{sha256(response.content)}"'
        if fmt == "parquet":
            values = pq.read_table(io.BytesIO(response.content)).column("co2e").to_pylist()
        elif fmt == "arrow":
            values = ipc.open_file(response.content).read_all().column("co2e").to_pylist()
        elif fmt == "arrows":
            values = ipc.open_stream(response.content).read_all().column("co2e").to_pylist()
        else:
            rows = csv.DictReader(io.StringIO(response.content.decode("utf-8")))
            values = [float(row["co2e"]) for row in rows]
        assert values == [co2e, co2e * 2], fmt


def assert_snapshot_is_its_own(client: TestClient, created: dict[str, Any], co2e: float) -> None:
    snapshot_id = created["id"]
    resource = client.get(f"/v1/snapshots/{snapshot_id}").json()
    assert resource["files"] == created["files"]
    recorded = {entry["name"]: entry for entry in resource["files"]}
    sent: dict[str, bytes] = {}
    for name in SNAPSHOT_FILES:
        response = client.get(f"/v1/snapshots/{snapshot_id}/{name}")
        assert response.status_code == 200, response.text
        digest = sha256(response.content)
        assert response.headers["etag"] == f'"{digest}"', name
        assert digest == recorded[name]["sha256"], name
        assert len(response.content) == recorded[name]["bytes"], name
        sent[name] = response.content
    manifest = json.loads(sent["manifest.json"])
    assert manifest["id"] == snapshot_id
    assert manifest["created_at"].replace("+00:00", "Z") == resource["created_at"].replace(
        "+00:00", "Z"
    )
    for entry in manifest["files"]:
        assert (entry["sha256"], entry["bytes"]) == (
            sha256(sent[entry["name"]]),
            len(sent[entry["name"]]),
        )
    table = pq.read_table(io.BytesIO(sent["factors.parquet"]))
    assert table.schema.metadata[b"efdb:snapshot_id"] == snapshot_id.encode()
    shared = table.filter(pc.equal(table.column("dataset"), "shared"))
    assert shared.column("co2e").to_pylist() == [co2e, co2e * 2]


Instance = tuple[TestClient, dict[str, str], float]


@pytest.fixture
def two_instances(db: Engine, other_engine: Engine, settings: Settings) -> Iterator[list[Instance]]:
    """The README's SQLite quick start and its PostgreSQL section in one checkout: two
    databases, one export directory. Both hold the same dataset version with other values,
    and both number their first snapshot of the day `.1`."""
    publish_shared(db, 1.5)
    publish_shared(other_engine, 7.25)
    other_settings = settings.model_copy(
        update={"database_url": other_engine.url.render_as_string(hide_password=False)}
    )
    first_app, second_app = create_app(settings), create_app(other_settings)
    try:
        with TestClient(first_app) as first, TestClient(second_app) as second:
            instances = [
                (first, TokenKit(first, db).admin(), 1.5),
                (second, TokenKit(second, other_engine).admin(), 7.25),
            ]
            for client, _, _ in instances:
                assert client.get("/readyz").status_code == 200
            yield instances
            for client, _, _ in instances:
                assert client.get("/readyz").status_code == 200
    finally:
        first_app.state.engine.dispose()
        second_app.state.engine.dispose()
    # One marker per database in the shared directory.
    assert len(list((settings.export_dir / "instances").iterdir())) == 2


def test_two_databases_sharing_one_export_directory_each_send_their_own_version_exports(
    two_instances: list[Instance],
) -> None:
    for client, _, _ in two_instances:
        for fmt in FORMATS:
            assert client.get(f"{SHARED_VERSION}/export.{fmt}").status_code == 200
    # Each read back after the other has written: still its own bytes.
    for client, _, co2e in two_instances:
        assert_version_exports_are_its_own(client, co2e)


def test_two_databases_sharing_one_export_directory_each_send_their_own_snapshots(
    two_instances: list[Instance],
) -> None:
    created: list[dict[str, Any]] = []
    for client, headers, _ in two_instances:
        response = client.post("/v1/snapshots", headers=headers)
        assert response.status_code == 201, response.text
        created.append(response.json())
    # Each read back after the other has written: still its own bytes.
    for (client, _, co2e), snapshot in zip(two_instances, created, strict=True):
        assert_snapshot_is_its_own(client, snapshot, co2e)
    # Per-version exports written after the snapshots are each database's own too.
    for client, _, co2e in two_instances:
        assert_version_exports_are_its_own(client, co2e)


# --------------------------------------------------------------------------- /readyz


def test_readyz_refuses_an_export_directory_the_database_did_not_record(
    client: TestClient, db: Engine, settings: Settings, tmp_path: Path
) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert Readiness.model_validate(ready.json()).export_dir == "ok"
    with make_sessionmaker(db)() as session:
        instance_id = session.execute(select(DatabaseInstance.instance_id)).scalar_one()
    marker = settings.export_dir / "instances" / instance_id
    assert json.loads(marker.read_text())["instance_id"] == instance_id

    # The same database started on another directory (say, a volume not mounted).
    elsewhere = tmp_path / "elsewhere"
    moved = create_app(settings.model_copy(update={"export_dir": elsewhere}))
    try:
        with TestClient(moved) as moved_client:
            response = moved_client.get("/readyz")
    finally:
        moved.state.engine.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 503
    assert "not the one this database recorded" in problem["detail"]
    assert instance_id in problem["detail"]
    assert not (elsewhere / "instances").exists()

    # The right directory, its marker lost: not ready either.
    marker.unlink()
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


# --------------------------------------------------------------------------- efdb exports verify


def run_efdb(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_exports_verify_names_missing_and_altered_files(
    client: TestClient,
    seeded: None,
    admin_token: Headers,
    settings: Settings,
    database_url: str,
    tmp_path: Path,
) -> None:
    version = "/v1/datasets/mee-cn/cn-electricity-co2/versions/1.0.0"
    csv_etag = ""
    for fmt in FORMATS:
        response = client.get(f"{version}/export.{fmt}")
        assert response.status_code == 200
        csv_etag = response.headers["etag"].strip('"')
    snapshot = client.post("/v1/snapshots", headers=admin_token()).json()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env |= {
        "EFDB_DATABASE_URL": database_url,
        "EFDB_EXPORT_DIR": str(settings.export_dir),
        "PYTHONPATH": str(PROJECT_ROOT),
    }

    clean = run_efdb("exports", "verify", env=env, cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    # The version's files, and the snapshot's (Parquet, Arrow file and stream, XLSX, manifest;
    # no openLCA and ILCD packages: tests/conftest.py's settings leave them out).
    recorded = len(FORMATS) + len(SNAPSHOT_FILES)
    assert json.loads(clean.stdout) == {"ok": True, "files": recorded}

    # One byte changed (same size), and one file gone.
    altered = settings.export_dir / "sha256" / f"{csv_etag}.csv"
    data = bytearray(altered.read_bytes())
    data[-3] = ord("9") if data[-3] != ord("9") else ord("8")
    altered.write_bytes(bytes(data))
    manifest = next(f for f in snapshot["files"] if f["name"] == "manifest.json")
    (settings.export_dir / "sha256" / f"{manifest['sha256']}.json").unlink()

    broken = run_efdb("exports", "verify", env=env, cwd=tmp_path)
    assert broken.returncode == 1
    lines = broken.stdout.splitlines()
    assert len(lines) == 2, broken.stdout
    assert lines[0].startswith("differs: mee-cn/cn-electricity-co2@1.0.0 export.csv")
    assert lines[1].startswith(f"missing: snapshot {snapshot['id']} manifest.json")
    assert f"2 of {recorded} recorded export files are missing or differ" in broken.stderr


def test_a_snapshot_in_the_old_layout_is_served_only_while_its_bytes_match(
    client: TestClient, seeded: None, admin_token: Headers, settings: Settings
) -> None:
    """Snapshots written before the store was content-addressed lived in `snapshots/<id>/`;
    their files are taken into the store on first request if they still match the record."""
    snapshot = client.post("/v1/snapshots", headers=admin_token()).json()
    base = f"/v1/snapshots/{snapshot['id']}"
    sent = {name: client.get(f"{base}/{name}").content for name in SNAPSHOT_FILES}
    legacy = settings.export_dir / "snapshots" / snapshot["id"]
    legacy.mkdir(parents=True)
    for entry in snapshot["files"]:
        ext = entry["name"].split(".", 1)[1]  # factors.jsonld.zip: jsonld.zip
        (settings.export_dir / "sha256" / f"{entry['sha256']}.{ext}").rename(legacy / entry["name"])
    # Overwritten by another database (what the old layout allowed): never sent as this one's.
    (legacy / "factors.arrow").write_bytes(b"another database's bytes")
    for name in ("factors.parquet", "manifest.json"):
        response = client.get(f"{base}/{name}")
        assert response.status_code == 200
        assert response.content == sent[name]
        assert response.headers["etag"] == f'"{sha256(sent[name])}"'
    overwritten = client.get(f"{base}/factors.arrow")
    assert overwritten.status_code == 404
    assert overwritten.headers["content-type"].startswith("application/problem+json")


def test_snapshot_create_refuses_an_export_directory_the_database_did_not_record(
    client: TestClient, seeded: None, database_url: str, settings: Settings, tmp_path: Path
) -> None:
    assert client.get("/readyz").status_code == 200  # first start: the directory is marked
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env |= {
        "EFDB_DATABASE_URL": database_url,
        "EFDB_EXPORT_DIR": str(tmp_path / "elsewhere"),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    refused = run_efdb("snapshot", "create", env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert "not the one this database recorded" in refused.stderr
    assert not (tmp_path / "elsewhere" / "sha256").exists()
    assert client.get("/v1/snapshots").json()["items"] == []


def test_a_snapshot_from_before_arrow_files_serves_its_stream_at_arrows(
    client: TestClient, seeded: None, admin_token: Headers, session: Any, settings: Settings
) -> None:
    """Export schema 1 wrote a snapshot's factors.arrow as an Arrow IPC stream. Such a
    snapshot's record is kept as written: its stream is served at factors.arrows with the
    stream media type, and factors.arrow says where it went instead of sending a stream
    under the file media type."""
    created = client.post("/v1/snapshots", headers=admin_token()).json()
    snapshot = session.get(Snapshot, created["id"])
    stream = next(f for f in snapshot.files if f["name"] == "factors.arrows")
    # The record as schema 1 wrote it: the stream under the name factors.arrow.
    snapshot.files = [
        {**f, "name": "factors.arrow"} if f["name"] == "factors.arrows" else f
        for f in snapshot.files
        if f["name"] != "factors.arrow"
    ]
    session.commit()
    # Schema 1 kept it in the store under the extension of its name.
    store = settings.export_dir / "sha256"
    (store / f"{stream['sha256']}.arrow").write_bytes(
        (store / f"{stream['sha256']}.arrows").read_bytes()
    )
    base = f"/v1/snapshots/{created['id']}"

    moved = client.get(f"{base}/factors.arrow")
    assert moved.status_code == 404
    assert f"{base}/factors.arrows" in moved.json()["detail"]
    served = client.get(f"{base}/factors.arrows")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert served.headers["etag"] == f'"{stream["sha256"]}"'
    assert ipc.open_stream(served.content).read_all().num_rows == created["row_count"]
