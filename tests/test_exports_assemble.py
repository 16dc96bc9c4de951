"""Snapshots written from releases' own export files (`efdb exports prepare`, or a first
download): the same rows as written from the database; the workbook bound
(EFDB_SNAPSHOT_XLSX_MAX_ROWS); file downloads handed to nginx after efdb's checks. All data is
synthetic."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from hashlib import sha256
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.exports.schema import COLUMNS, EXPORT_SCHEMA
from app.exports.writer import (
    PARQUET_OPTIONS,
    arrow_file_batches,
    arrow_file_dictionaries,
    write_arrow_file,
    write_parquet,
    write_snapshot_files,
    write_stream_of_arrow_file,
)
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
    # With the JSON log, the progress lines are JSON records too; stdout, the answer alone.
    prepared = run_efdb_in_process(
        "exports",
        "prepare",
        env={**env, "EFDB_LOG_FORMAT": "json"},
        cwd=settings.export_dir.parent,
    )
    assert prepared.returncode == 0, prepared.stderr
    files = json.loads(prepared.stdout)["files"]
    records = [json.loads(line) for line in prepared.stderr.splitlines()]
    assert {(r["logger"], r["level"], r["request_id"]) for r in records} == {
        ("efdb.progress", "INFO", None)
    }
    snapshot = client.post("/v1/snapshots", headers=admin_token()).json()
    releases = {
        f"{v['publisher']}/{v['dataset']}@{v['version']}" for v in snapshot["dataset_versions"]
    }
    told = [r["message"] for r in records]
    count = len(releases)
    assert told[0].startswith(f"{count} releases, ")
    assert sorted(line.split(" ")[2].rstrip(":") for line in told[1:-1]) == sorted(releases)
    assert all(", wrote parquet, arrows, arrow, jsonld.zip, ilcd.zip (" in m for m in told[1:-1])
    assert told[-1].startswith(f"done: {len(files)} files recorded (")
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
    assert again.stderr.count("all files already recorded") == count

    # `efdb snapshot create` tells each release read (here from its recorded export.arrow) and
    # each file written, then the time it took.
    created = run_efdb_in_process("snapshot", "create", env=env, cwd=settings.export_dir.parent)
    assert created.returncode == 0, created.stderr
    made = json.loads(created.stdout)
    lines = created.stderr.splitlines()
    assert all(line.startswith("efdb: ") for line in lines), lines
    assert lines[0].startswith(f"efdb: snapshot {made['id']}: {count} releases, ")
    read = [line for line in lines if line.startswith("efdb: release ")]
    assert [line.split(" ")[2] for line in read] == [f"{i}/{count}" for i in range(1, count + 1)]
    assert all(line.endswith("factors, from its export.arrow") for line in read), read
    for written in made["files"]:
        assert f"efdb: {written['name']}: {written['bytes']:,} bytes" in created.stderr
    assert "efdb: signing manifest.json and an audit checkpoint" in lines
    assert lines[-1].startswith(f"efdb: done: snapshot {made['id']}, ")


def _release_arrow_file(folder: Path, table: pa.Table, name: str) -> Path:
    """A release's `export.arrow` as the service writes it (one dictionary per column)."""
    parquet = folder / f"{name}.parquet"
    pq.write_table(table, parquet, row_group_size=4, **PARQUET_OPTIONS)
    arrow = folder / f"{name}.arrow"
    write_arrow_file(arrow, parquet)
    return arrow


def test_snapshot_files_written_at_once_hold_what_the_two_passes_wrote(tmp_path: Path) -> None:
    """`write_snapshot_files` (three writers fed from one read of the releases' IPC files)
    against `write_parquet` + `write_arrow_file` (the path for releases without them): the
    same rows, schema and metadata, row groups and batches; the sha256 taken while writing
    is the file's."""
    releases = [synthetic_release("synth-a", 11, 0), synthetic_release("synth-b", 6, 3)]
    arrow_files = [
        _release_arrow_file(tmp_path, table, f"release-{i}") for i, table in enumerate(releases)
    ]
    dictionaries: dict[str, dict[object, None]] = {}
    for path in arrow_files:
        for name, values in arrow_file_dictionaries(path).items():
            dictionaries.setdefault(name, {}).update(dict.fromkeys(values))
    metadata = {"efdb:snapshot_id": "2026-01-01.1"}
    at_once = write_snapshot_files(
        parquet_target=tmp_path / "at-once.parquet",
        arrows_target=tmp_path / "at-once.arrows",
        arrow_target=tmp_path / "at-once.arrow",
        groups=[arrow_file_batches(path) for path in arrow_files],
        dictionaries={name: list(values) for name, values in dictionaries.items()},
        metadata=metadata,
        row_group_rows=5,
    )
    two_passes = write_parquet(
        tmp_path / "passes.parquet",
        [table.to_batches(max_chunksize=3) for table in releases],
        metadata=metadata,
        arrows_target=tmp_path / "passes.arrows",
        row_group_rows=5,
    )
    write_arrow_file(tmp_path / "passes.arrow", tmp_path / "passes.parquet")
    assert at_once.rows == two_passes.rows == 17
    for written_file in (at_once.parquet, at_once.arrows, at_once.arrow):
        data = (tmp_path / written_file.name).read_bytes()
        assert (written_file.sha256, written_file.bytes) == (sha256(data).hexdigest(), len(data))
    new, old = (
        pq.ParquetFile(tmp_path / "at-once.parquet"),
        pq.ParquetFile(tmp_path / "passes.parquet"),
    )
    # Row groups of one release each, at most 5 rows: 5, 5, 1 and 5, 1.
    sizes = [new.metadata.row_group(i).num_rows for i in range(new.metadata.num_row_groups)]
    assert sizes == [5, 5, 1, 5, 1]
    assert sizes == [old.metadata.row_group(i).num_rows for i in range(old.metadata.num_row_groups)]
    assert new.read().equals(old.read())  # dictionary order aside, the same arrays
    assert plain(new.read()) == plain(old.read()) == plain(pa.concat_tables(releases))
    streams = [
        ipc.open_stream((tmp_path / f"{n}.arrows").read_bytes()) for n in ("at-once", "passes")
    ]
    assert streams[0].schema.equals(streams[1].schema, check_metadata=True)
    assert plain(streams[0].read_all()) == plain(streams[1].read_all())
    files = [ipc.open_file(tmp_path / f"{n}.arrow") for n in ("at-once", "passes")]
    assert files[0].schema.equals(files[1].schema, check_metadata=True)
    assert files[0].schema.metadata[b"efdb:snapshot_id"] == b"2026-01-01.1"
    assert [f.num_record_batches for f in files] == [5, 5]
    assert plain(files[0].read_all()) == plain(files[1].read_all())
    dictionary = files[0].get_batch(0).column("activity_id").dictionary.to_pylist()
    # One dictionary for every batch: each release's values, the first release's first.
    assert dictionary == list(dictionaries["activity_id"])
    assert set(dictionary) == set(pa.concat_tables(releases)["activity_id"].to_pylist())


def test_a_failing_release_stops_every_snapshot_writer(tmp_path: Path) -> None:
    table = synthetic_release("synth-a", 40, 0)

    def failing() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=10)
        raise OSError("the release file went away")

    with pytest.raises(OSError, match="went away"):
        write_snapshot_files(
            parquet_target=tmp_path / "f.parquet",
            arrows_target=tmp_path / "f.arrows",
            arrow_target=tmp_path / "f.arrow",
            groups=[failing()],
            dictionaries={
                name: table[name].unique().dictionary.to_pylist()
                for name in table.column_names
                if pa.types.is_dictionary(table.schema.field(name).type)
            },
            metadata={},
            row_group_rows=10,
        )
    assert not [t for t in threading.enumerate() if t.name == "efdb-snapshot-writer"]


def test_the_stream_copied_out_of_an_arrow_file_is_that_file_as_a_stream(tmp_path: Path) -> None:
    """A snapshot's `factors.arrows` is the IPC stream inside its `factors.arrow` (the file
    format is the stream between a header and a footer): pyarrow and polars read it as a
    stream, with the file's schema, metadata, batches and dictionaries."""
    table = pa.concat_tables(
        [synthetic_release("synth-a", 11, 0), synthetic_release("synth-b", 6, 3)]
    ).replace_schema_metadata({"efdb:snapshot_id": "2026-01-01.1"})
    source = tmp_path / "factors.arrow"
    with ipc.new_file(source, table.schema) as writer:
        writer.write_table(table.unify_dictionaries(), max_chunksize=5)
    copied = write_stream_of_arrow_file(tmp_path / "factors.arrows", source)
    data = (tmp_path / "factors.arrows").read_bytes()
    assert (copied.sha256, copied.bytes) == (sha256(data).hexdigest(), len(data))
    stream = ipc.open_stream(data)
    assert stream.schema.equals(table.schema, check_metadata=True)
    batches = list(stream)
    file = ipc.open_file(source)
    assert [b.num_rows for b in batches] == [5, 5, 1, 5, 1]
    assert len(batches) == file.num_record_batches
    assert all(b.equals(file.get_batch(i)) for i, b in enumerate(batches))
    assert pl.read_ipc_stream(io.BytesIO(data)).to_dicts() == table.to_pylist()


@pytest.mark.parametrize("damage", ["footer length", "truncated", "not arrow"])
def test_a_stream_is_not_copied_out_of_a_damaged_arrow_file(tmp_path: Path, damage: str) -> None:
    table = synthetic_release("synth-a", 11, 0)
    source = tmp_path / "factors.arrow"
    with ipc.new_file(source, table.schema) as writer:
        writer.write_table(table, max_chunksize=5)
    data = source.read_bytes()
    if damage == "footer length":  # points into the middle of the last batch
        data = data[:-10] + (len(data) // 3).to_bytes(4, "little") + data[-6:]
    elif damage == "truncated":
        data = data[: len(data) // 2] + data[-10:]
    else:
        data = b"PAR1" + data[4:]
    source.write_bytes(data)
    # pyarrow's own reader refuses the footer, or the check after the copy does
    with pytest.raises((ValueError, OSError)):
        write_stream_of_arrow_file(tmp_path / "factors.arrows", source)
