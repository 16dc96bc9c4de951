"""Per-version exports and national snapshots, read back by real consumers.

pyarrow, DuckDB and polars open every file and must agree with the JSON API on row counts and
values; the content hash of every version is recomputed from nothing but the Parquet file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import statistics
import threading
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.audit import verify_chain
from app.core.config import Settings
from app.core.models import AuditEvent
from app.exports import service as export_service
from app.exports.schema import COLUMN_NAMES, EXPORT_SCHEMA
from app.exports.schemas import SnapshotManifest
from app.exports.source import release_batches
from tests.factories import (
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
)

IMMUTABLE = "public, max-age=31536000, immutable"
SEED_VERSIONS = [
    ("desnz-uk", "uk-ghg-conversion-factors-2024", "1.0.0"),
    ("ipcc-tfi", "ipcc-2006-stationary-combustion", "1.0.0"),
    ("mee-cn", "cn-electricity-co2", "1.0.0"),
]
# Redistributable seed datasets (the IPCC one forbids redistribution).
SEED_IN_SNAPSHOTS = {
    "desnz-uk/uk-ghg-conversion-factors-2024@1.0.0",
    "mee-cn/cn-electricity-co2@1.0.0",
}
Headers = Callable[..., dict[str, str]]


# --------------------------------------------------------------------------- helpers


def version_url(publisher: str, dataset: str, version: str) -> str:
    return f"/v1/datasets/{publisher}/{dataset}/versions/{version}"


def api_factors(
    client: TestClient, publisher: str, dataset: str, version: str, **kwargs: Any
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    url: str | None = version_url(publisher, dataset, version) + "/factors?limit=1000"
    while url:
        response = client.get(url, **kwargs)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        url = response.json()["next"]
    return items


def plain(value: Any) -> Any:
    """A value as the JSON API writes it."""
    if isinstance(value, date):
        return value.isoformat()
    return value


def assert_rows_match_api(rows: list[dict[str, Any]], api: list[dict[str, Any]]) -> None:
    """Every exported row equals the API's factor, field by field (exact floats)."""
    assert len(rows) == len(api)
    by_code = {item["factor_code"]: item for item in api}
    for row in rows:
        item = by_code[row["factor_code"]]
        for name in COLUMN_NAMES:
            if name == "published_at":
                continue
            assert plain(row[name]) == item[name], (row["factor_code"], name)


def recompute_content_hashes(data: bytes) -> dict[str, str]:
    """Each version's content_sha256 from a Parquet file alone (contract §6).

    Uses only pyarrow and the file: the hashed columns come from its metadata and each
    value's JSON form from the column's Arrow type.
    """
    table = pq.read_table(io.BytesIO(data))
    metadata = table.schema.metadata
    fields: list[str] = json.loads(metadata[b"efdb:content_hash_fields"])
    types = {name: table.schema.field(name).type for name in fields}

    def canonical(name: str, value: Any) -> Any:
        kind = types[name]
        if pa.types.is_integer(kind):
            return int(value)
        if pa.types.is_floating(kind):
            return float(value)
        if pa.types.is_date(kind):
            return value.isoformat()
        return value

    versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table.to_pylist():
        versions[f"{row['publisher']}/{row['dataset']}@{row['version']}"].append(row)
    hashes = {}
    for key, rows in versions.items():
        lines = [
            json.dumps(
                {name: canonical(name, row[name]) for name in fields if row[name] is not None},
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            )
            for row in sorted(rows, key=lambda r: r["factor_code"])
        ]
        hashes[key] = hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
    return hashes


def file_metadata(data: bytes) -> dict[str, str]:
    raw = pq.read_schema(io.BytesIO(data)).metadata
    return {k.decode(): v.decode() for k, v in raw.items()}


def duckdb_rows(path: Path, sql: str = "SELECT * FROM t") -> list[dict[str, Any]]:
    connection = duckdb.connect()
    try:
        connection.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")
        result = connection.execute(sql)
        names = [column[0] for column in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    finally:
        connection.close()


def synthetic_rich_factors() -> list[Any]:
    """Chinese text, dates, nulls, integers and awkward floats (synthetic, not real data)."""
    return [
        factor_fields(
            "syn-b",
            name_zh="合成测试：电网排放因子（华北）",
            name_en=None,
            description='含换行\n与引号"的合成描述',
            valid_from=date(2023, 1, 1),
            valid_to=date(2023, 12, 31),
            co2e=0.1 + 0.2,
            co2=0.3,
            uncertainty_low=0.25,
            uncertainty_high=0.35,
            uncertainty_distribution="lognormal",
            dq_reliability=2,
            dq_completeness=1,
            dq_temporal=3,
            region="CN-BJ",
            reference_year=2023,
            source_year=2024,
            source_locator="表 3，第 12 页",
        ),
        factor_fields("syn-a", co2e=95025.5, category=None, method=None, notes=None),
        factor_fields(
            "syn-c",
            co2e=0.0,
            name_en="",
            unit="t",
            product_code_scheme="HS2022",
            product_code="7208",
        ),
    ]


@pytest.fixture
def rich_dataset(session: Session) -> tuple[str, str, str]:
    publisher = create_publisher(session, slug="synth-rich")
    dataset = create_dataset(session, publisher=publisher, slug="rich")
    create_version(session, dataset=dataset, factors=synthetic_rich_factors())
    session.commit()
    return "synth-rich", "rich", "1.0.0"


@pytest.fixture
def licensing_mix(session: Session, seeded: None) -> None:
    """Beside the seed: a registered dataset, a non-redistributable one, a two-release one."""
    publisher = create_publisher(session, slug="synth-lic")
    members = create_dataset(session, publisher=publisher, slug="members-only", access="registered")
    create_version(session, dataset=members, factors=[factor_fields("m-1")])
    closed = create_dataset(
        session,
        publisher=publisher,
        slug="no-redistribution",
        redistribution=False,
        license_id="LicenseRef-Synthetic-Closed",
    )
    create_version(session, dataset=closed, factors=[factor_fields("c-1")])
    history = create_dataset(session, publisher=publisher, slug="history")
    create_version(session, dataset=history, factors=[factor_fields("h-1")], version="1.0.0")
    create_version(
        session,
        dataset=history,
        factors=[factor_fields("h-1", co2e=2.0), factor_fields("h-2")],
        version="1.1.0",
    )
    withdrawn = create_dataset(session, publisher=publisher, slug="withdrawn-latest")
    create_version(session, dataset=withdrawn, factors=[factor_fields("w-1")], version="1.0.0")
    create_version(
        session,
        dataset=withdrawn,
        factors=[factor_fields("w-1", co2e=9.0)],
        version="2.0.0",
        status="withdrawn",
    )
    session.commit()


EXPECTED_SNAPSHOT = SEED_IN_SNAPSHOTS | {
    "synth-lic/history@1.1.0",
    "synth-lic/withdrawn-latest@1.0.0",
}


# --------------------------------------------------------------------------- per version


@pytest.mark.parametrize(("publisher", "dataset", "version"), SEED_VERSIONS)
def test_version_parquet_agrees_with_the_api(
    client: TestClient, seeded: None, publisher: str, dataset: str, version: str, tmp_path: Path
) -> None:
    response = client.get(version_url(publisher, dataset, version) + "/export.parquet")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    assert response.headers["cache-control"] == IMMUTABLE
    assert response.headers["accept-ranges"] == "bytes"
    detail = client.get(version_url(publisher, dataset, version)).json()
    license_url = client.get(f"/v1/datasets/{publisher}/{dataset}").json()["license_url"]
    assert response.headers["link"] == f'<{license_url}>; rel="license"'

    table = pq.read_table(io.BytesIO(response.content))
    assert table.schema.equals(EXPORT_SCHEMA, check_metadata=False)
    api = api_factors(client, publisher, dataset, version)
    assert table.num_rows == detail["row_count"] == len(api)
    assert_rows_match_api(table.to_pylist(), api)

    metadata = file_metadata(response.content)
    assert metadata["efdb:export"] == "version"
    (entry,) = json.loads(metadata["efdb:dataset_versions"])
    assert entry["content_sha256"] == detail["content_sha256"]
    assert entry["license_id"] == detail["license_id"]
    assert entry["attribution"] == detail["attribution"]
    assert recompute_content_hashes(response.content) == {
        f"{publisher}/{dataset}@{version}": detail["content_sha256"]
    }

    # DuckDB and polars read the same file to the same rows.
    path = tmp_path / "export.parquet"
    path.write_bytes(response.content)
    assert_rows_match_api(duckdb_rows(path), api)
    assert_rows_match_api(pl.read_parquet(path).to_dicts(), api)


def test_content_hash_from_parquet_with_chinese_text_dates_and_nulls(
    client: TestClient, rich_dataset: tuple[str, str, str], tmp_path: Path
) -> None:
    publisher, dataset, version = rich_dataset
    response = client.get(version_url(*rich_dataset) + "/export.parquet")
    assert response.status_code == 200, response.text
    expected = client.get(version_url(*rich_dataset)).json()["content_sha256"]
    assert recompute_content_hashes(response.content) == {
        f"{publisher}/{dataset}@{version}": expected
    }
    table = pq.read_table(io.BytesIO(response.content))
    assert table.schema.field("reference_year").type == pa.int16()
    assert table.schema.field("valid_from").type == pa.date32()
    assert table.schema.field("co2e").type == pa.float64()
    assert table.schema.field("region").type == pa.dictionary(pa.int32(), pa.string())
    assert table.schema.field("published_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("co2e").metadata[b"unit"] == b"kg CO2e per declared `unit`"
    assert table.schema.field("name_zh").metadata[b"description"]
    rows = {row["factor_code"]: row for row in table.to_pylist()}
    assert rows["syn-b"]["name_zh"] == "合成测试：电网排放因子（华北）"
    assert rows["syn-b"]["valid_from"] == date(2023, 1, 1)
    assert rows["syn-b"]["co2e"] == 0.1 + 0.2
    assert rows["syn-b"]["name_en"] is None
    assert rows["syn-c"]["name_en"] == ""  # an empty string is not a null
    assert_rows_match_api(table.to_pylist(), api_factors(client, *rich_dataset))


def test_version_export_is_written_once_and_served_as_a_file(
    client: TestClient, seeded: None, settings: Settings
) -> None:
    url = version_url("mee-cn", "cn-electricity-co2", "1.0.0") + "/export.parquet"
    first = client.get(url)
    sha256 = hashlib.sha256(first.content).hexdigest()
    assert first.headers["etag"] == f'"{sha256}"'
    # Named by its sha256 in the export store.
    path = settings.export_dir / "sha256" / f"{sha256}.parquet"
    assert path.read_bytes() == first.content
    written_at = path.stat().st_mtime_ns
    second = client.get(url)
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert path.stat().st_mtime_ns == written_at
    # No temporary file is left beside it.
    assert [p.name for p in path.parent.iterdir()] == [path.name]

    etag = first.headers["etag"]
    not_modified = client.get(url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert not_modified.headers["cache-control"] == IMMUTABLE

    size = len(first.content)
    part = client.get(url, headers={"Range": "bytes=4-99"})
    assert part.status_code == 206
    assert part.content == first.content[4:100]
    assert part.headers["content-range"] == f"bytes 4-99/{size}"
    tail = client.get(url, headers={"Range": "bytes=-8", "If-Range": etag})
    assert tail.status_code == 206
    assert tail.content == first.content[-8:]
    assert tail.content.endswith(b"PAR1")
    stale = client.get(url, headers={"Range": "bytes=0-3", "If-Range": '"other"'})
    assert stale.status_code == 200
    assert stale.content == first.content
    head = client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(size)
    assert head.headers["etag"] == etag


def test_a_half_written_or_altered_file_is_never_served(
    client: TestClient, seeded: None, settings: Settings
) -> None:
    url = version_url("mee-cn", "cn-electricity-co2", "1.0.0") + "/export.parquet"
    store = settings.export_dir / "sha256"
    store.mkdir(parents=True)
    # A run that crashed mid-write left a half file under a temporary name; no record names it.
    leftover = store / ".tmp-crashed"
    leftover.write_bytes(b"PAR1" + b"\0" * 100)
    good = client.get(url)
    assert good.status_code == 200
    sha256 = hashlib.sha256(good.content).hexdigest()
    assert good.headers["etag"] == f'"{sha256}"'
    assert pq.read_table(io.BytesIO(good.content)).num_rows > 0
    # Altered after it was recorded: never sent under its recorded ETag.
    path = store / f"{sha256}.parquet"
    path.write_bytes(good.content[: len(good.content) // 2])
    altered = client.get(url)
    assert altered.status_code == 404
    assert altered.headers["content-type"].startswith("application/problem+json")
    assert "export store" in altered.json()["detail"]


def test_arrow_file_export_reads_in_every_arrow_file_reader(
    client: TestClient, rich_dataset: tuple[str, str, str], tmp_path: Path
) -> None:
    response = client.get(version_url(*rich_dataset) + "/export.arrow")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.arrow.file"
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    api = api_factors(client, *rich_dataset)

    table = ipc.open_file(io.BytesIO(response.content)).read_all()
    assert table.schema.equals(EXPORT_SCHEMA, check_metadata=False)
    assert table.schema.metadata[b"efdb:export"] == b"version"
    assert_rows_match_api(table.to_pylist(), api)
    path = tmp_path / "export.arrow"
    path.write_bytes(response.content)
    assert feather.read_table(path).to_pylist() == table.to_pylist()
    assert_rows_match_api(pl.read_ipc(path).to_dicts(), api)
    connection = duckdb.connect()
    connection.register("arrow_table", table)  # DuckDB scans the Arrow data in place
    result = connection.execute("SELECT count(*), sum(co2e) FROM arrow_table").fetchone()
    assert result == (len(api), sum(item["co2e"] for item in api))


def test_arrow_stream_export_stays_at_arrows(
    client: TestClient, rich_dataset: tuple[str, str, str]
) -> None:
    response = client.get(version_url(*rich_dataset) + "/export.arrows")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
    api = api_factors(client, *rich_dataset)
    table = ipc.open_stream(io.BytesIO(response.content)).read_all()
    assert table.schema.equals(EXPORT_SCHEMA, check_metadata=False)
    assert_rows_match_api(table.to_pylist(), api)
    assert_rows_match_api(pl.read_ipc_stream(io.BytesIO(response.content)).to_dicts(), api)
    # The file and the stream hold the same table.
    arrow_file = client.get(version_url(*rich_dataset) + "/export.arrow").content
    assert ipc.open_file(io.BytesIO(arrow_file)).read_all().to_pylist() == table.to_pylist()


def test_csv_export_opens_in_the_csv_module(
    client: TestClient, rich_dataset: tuple[str, str, str]
) -> None:
    response = client.get(version_url(*rich_dataset) + "/export.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"), newline="")))
    api = {item["factor_code"]: item for item in api_factors(client, *rich_dataset)}
    assert len(rows) == len(api)
    assert list(rows[0]) == list(COLUMN_NAMES)
    for row in rows:
        item = api[row["factor_code"]]
        assert float(row["co2e"]) == item["co2e"]  # shortest round-trip text reads back exactly
        assert row["name_zh"] == (item["name_zh"] or "")
        assert row["valid_from"] == (item["valid_from"] or "")
        assert row["reference_year"] == str(item["reference_year"])
        assert row["description"] == (item["description"] or "")


def test_csv_export_neutralises_formula_like_cells(client: TestClient, session: Session) -> None:
    publisher = create_publisher(session, slug="synth-csv")
    dataset = create_dataset(session, publisher=publisher, slug="formulas")
    create_version(
        session,
        dataset=dataset,
        factors=[
            factor_fields(
                "f-1",
                name_en='=HYPERLINK("http://example.invalid","x")',
                name_zh="+合成",
                description="@SUM(A1:A2)",
                notes="-2+3",
                co2e=1.5,
            )
        ],
    )
    session.commit()
    response = client.get(version_url("synth-csv", "formulas", "1.0.0") + "/export.csv")
    (row,) = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"), newline="")))
    assert row["name_en"] == '\'=HYPERLINK("http://example.invalid","x")'
    assert row["name_zh"] == "'+合成"
    assert row["description"] == "'@SUM(A1:A2)"
    assert row["notes"] == "'-2+3"
    assert row["co2e"] == "1.5"  # numbers are not text and stay numbers
    # The Parquet export keeps the values as published.
    table = pq.read_table(
        io.BytesIO(
            client.get(version_url("synth-csv", "formulas", "1.0.0") + "/export.parquet").content
        )
    )
    assert table.column("notes").to_pylist() == ["-2+3"]


def test_registered_dataset_export_needs_a_reader_token(
    client: TestClient, session: Session, reader_token: Headers, settings: Settings
) -> None:
    publisher = create_publisher(session, slug="synth-reg")
    dataset = create_dataset(session, publisher=publisher, slug="members", access="registered")
    create_version(session, dataset=dataset, factors=[factor_fields("r-1")])
    session.commit()
    base = version_url("synth-reg", "members", "1.0.0")
    for fmt in ("parquet", "arrow", "csv"):
        anonymous = client.get(f"{base}/export.{fmt}")
        assert anonymous.status_code == 404
        assert anonymous.headers["content-type"].startswith("application/problem+json")
    headers = reader_token("synth-reg/members")
    for fmt in ("parquet", "arrow", "csv"):
        response = client.get(f"{base}/export.{fmt}", headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"].startswith("private")
    table = pq.read_table(io.BytesIO(client.get(f"{base}/export.parquet", headers=headers).content))
    assert table.column("factor_code").to_pylist() == ["r-1"]
    # Kept apart from the public files, which a CDN may serve as they are.
    assert len(list((settings.export_dir / "registered/sha256").iterdir())) == 3
    assert not (settings.export_dir / "sha256").exists()


def test_non_redistributable_version_is_served_with_its_license(
    client: TestClient, seeded: None
) -> None:
    base = version_url("ipcc-tfi", "ipcc-2006-stationary-combustion", "1.0.0")
    response = client.get(base + "/export.parquet")
    assert response.status_code == 200
    assert response.headers["link"] == '<https://www.ipcc.ch/copyright/>; rel="license"'
    (entry,) = json.loads(file_metadata(response.content)["efdb:dataset_versions"])
    assert entry["license_id"] == "LicenseRef-IPCC-Copyright"
    assert entry["redistribution"] is False
    assert "(c) IPCC 2006" in file_metadata(response.content)["efdb:attribution"]


def test_unknown_versions_and_formats_are_problems(client: TestClient, seeded: None) -> None:
    base = "/v1/datasets/mee-cn/cn-electricity-co2/versions"
    assert client.get(f"{base}/9.9.9/export.parquet").status_code == 404
    assert client.get(f"{base}/1.0.0/export.xls").status_code == 404
    assert client.get(f"{base}/not-a-version/export.csv").status_code == 422
    assert client.get(f"{base}/1.0.0/export.csv?x=1").status_code == 422


# --------------------------------------------------------------------------- snapshots


@pytest.fixture
def snapshot(client: TestClient, licensing_mix: None, admin_token: Headers) -> dict[str, Any]:
    response = client.post("/v1/snapshots", headers=admin_token())
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/snapshots/{body['id']}"
    return body


def test_snapshot_holds_only_redistributable_public_latest_releases(
    client: TestClient, snapshot: dict[str, Any], tmp_path: Path
) -> None:
    keys = {f"{v['publisher']}/{v['dataset']}@{v['version']}" for v in snapshot["dataset_versions"]}
    assert keys == EXPECTED_SNAPSHOT
    data = client.get(f"/v1/snapshots/{snapshot['id']}/factors.parquet").content
    table = pq.read_table(io.BytesIO(data))
    present = {
        f"{p}/{d}@{v}"
        for p, d, v in zip(
            table.column("publisher").to_pylist(),
            table.column("dataset").to_pylist(),
            table.column("version").to_pylist(),
            strict=True,
        )
    }
    assert present == EXPECTED_SNAPSHOT
    # Never the IPCC rows (no redistribution), the registered or the closed dataset.
    assert "ipcc-tfi" not in set(table.column("publisher").to_pylist())
    datasets = set(table.column("dataset").to_pylist())
    assert not {"members-only", "no-redistribution", "ipcc-2006-stationary-combustion"} & datasets
    assert set(table.column("license_id").to_pylist()) == {
        "OGL-UK-3.0",
        "LicenseRef-CN-Official-Document",
        "CC0-1.0",
    }


def test_snapshot_packages_are_their_releases_packages_merged(
    client: TestClient,
    licensing_mix: None,
    admin_token: Headers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
) -> None:
    """The snapshot's openLCA and ILCD packages hold every entry of its releases' own recorded
    packages, byte for byte, each name once: a process (or ILCD process data set) per factor,
    the shared entities once."""
    settings.snapshot_packages_max_rows = export_service.SNAPSHOT_PACKAGES_MAX_ROWS  # default
    own: dict[str, dict[str, bytes]] = {"jsonld.zip": {}, "ilcd.zip": {}}
    for key in sorted(EXPECTED_SNAPSHOT):
        publisher, rest = key.split("/", 1)
        dataset, version = rest.split("@")
        for fmt, expected in own.items():
            response = client.get(f"{version_url(publisher, dataset, version)}/export.{fmt}")
            with zipfile.ZipFile(io.BytesIO(response.content)) as package:
                for name in package.namelist():
                    expected.setdefault(name, package.read(name))
    created = client.post("/v1/snapshots", headers=admin_token())
    assert created.status_code == 201, created.text
    snapshot = created.json()
    assert {
        f"{v['publisher']}/{v['dataset']}@{v['version']}" for v in snapshot["dataset_versions"]
    } == EXPECTED_SNAPSHOT
    for fmt, expected in own.items():
        response = client.get(f"/v1/snapshots/{snapshot['id']}/factors.{fmt}")
        assert response.status_code == 200, response.text
        merged = zipfile.ZipFile(io.BytesIO(response.content))
        names = merged.namelist()
        assert len(names) == len(set(names))
        assert set(names) == set(expected)
        assert [n for n in names if merged.read(n) != expected[n]] == []
        folder = "processes/" if fmt == "jsonld.zip" else "ILCD/processes/"
        assert len([n for n in names if n.startswith(folder)]) == snapshot["row_count"]

    # The README's openLCA recipe reads the snapshot's package as it reads a version's.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (recipe,) = [
        b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "ZipReader" in b
    ]
    (tmp_path / "export.jsonld.zip").write_bytes(
        client.get(f"/v1/snapshots/{snapshot['id']}/factors.jsonld.zip").content
    )
    monkeypatch.chdir(tmp_path)
    exec(recipe, {})
    assert len(capsys.readouterr().out.splitlines()) == snapshot["row_count"]


def test_snapshot_files_agree_with_the_manifest_and_the_api(
    client: TestClient, snapshot: dict[str, Any], tmp_path: Path
) -> None:
    snapshot_id = snapshot["id"]
    assert snapshot_id.endswith(".1")
    manifest_response = client.get(f"/v1/snapshots/{snapshot_id}/manifest.json")
    assert manifest_response.status_code == 200
    manifest = manifest_response.json()
    SnapshotManifest.model_validate(manifest)  # the schema the OpenAPI document publishes
    assert manifest["id"] == snapshot_id
    assert manifest["dataset_versions"] == snapshot["dataset_versions"]
    assert manifest["licenses"] == snapshot["licenses"]
    by_name = {f["name"]: f for f in snapshot["files"]}
    assert set(by_name) == {
        "factors.parquet",
        "factors.arrow",
        "factors.arrows",
        "factors.xlsx",
        "manifest.json",
    }
    assert {f["name"] for f in manifest["files"]} == {
        "factors.parquet",
        "factors.arrow",
        "factors.arrows",
        "factors.xlsx",
    }
    # tests/conftest.py's settings leave the openLCA and ILCD packages out (they cost a second
    # or two per snapshot); the manifest says the bound, and the API why there are none.
    assert manifest["packages_max_rows"] == 0
    missing = client.get(f"/v1/snapshots/{snapshot_id}/factors.jsonld.zip")
    assert missing.status_code == 404
    assert "packages_max_rows" in missing.json()["detail"]
    for entry in manifest["files"]:
        assert by_name[entry["name"]]["sha256"] == entry["sha256"]

    downloads: dict[str, bytes] = {}
    for name, entry in by_name.items():
        response = client.get(entry["url"])
        assert response.status_code == 200
        assert response.headers["cache-control"] == IMMUTABLE
        assert response.headers["etag"] == f'"{entry["sha256"]}"'
        assert hashlib.sha256(response.content).hexdigest() == entry["sha256"]
        assert len(response.content) == entry["bytes"]
        assert response.headers["content-type"].startswith(entry["media_type"])
        downloads[name] = response.content

    parquet = downloads["factors.parquet"]
    metadata = file_metadata(parquet)
    assert metadata["efdb:snapshot_id"] == snapshot_id
    assert metadata["efdb:export"] == "snapshot"
    assert json.loads(metadata["efdb:dataset_versions"]) == manifest["dataset_versions"]
    assert json.loads(metadata["efdb:licenses"]) == manifest["licenses"]
    attributions = {entry["attribution"] for entry in manifest["licenses"]}
    assert any(text.startswith("Contains public sector information") for text in attributions)

    # The content hash of every version, from the Parquet file alone, equals the API's.
    recomputed = recompute_content_hashes(parquet)
    for version in snapshot["dataset_versions"]:
        key = f"{version['publisher']}/{version['dataset']}@{version['version']}"
        api_hash = client.get(
            version_url(version["publisher"], version["dataset"], version["version"])
        ).json()["content_sha256"]
        assert recomputed[key] == version["content_sha256"] == api_hash

    # pyarrow, DuckDB, polars and the Arrow stream agree with the API, dataset by dataset.
    path = tmp_path / "factors.parquet"
    path.write_bytes(parquet)
    table = pq.read_table(path)
    stream = ipc.open_stream(io.BytesIO(downloads["factors.arrows"])).read_all()
    assert stream.equals(table)
    arrow_frame = pl.read_ipc_stream(io.BytesIO(downloads["factors.arrows"]))
    assert arrow_frame.height == table.num_rows
    # The Arrow IPC file: every Arrow file reader opens it.
    # (It holds one dictionary per column for the whole file, so values are compared.)
    rows = table.to_pylist()
    assert ipc.open_file(io.BytesIO(downloads["factors.arrow"])).read_all().to_pylist() == rows
    arrow_path = tmp_path / "factors.arrow"
    arrow_path.write_bytes(downloads["factors.arrow"])
    assert feather.read_table(arrow_path).to_pylist() == rows
    assert pl.read_ipc(arrow_path).height == table.num_rows
    connection = duckdb.connect()
    connection.register("stream", stream)
    assert connection.execute("SELECT count(*), sum(co2e) FROM stream").fetchone() == (
        table.num_rows,
        pytest.approx(sum(table.column("co2e").to_pylist())),
    )
    assert table.num_rows == snapshot["row_count"] == manifest["row_count"]
    frame = pl.read_parquet(path)
    counts = {
        (row["publisher"], row["dataset"]): row["n"]
        for row in duckdb_rows(path, "SELECT publisher, dataset, count(*) AS n FROM t GROUP BY ALL")
    }
    for version in snapshot["dataset_versions"]:
        p, d, v = version["publisher"], version["dataset"], version["version"]
        api = api_factors(client, p, d, v)
        assert counts[(p, d)] == version["row_count"] == len(api)
        assert_rows_match_api(
            [r for r in table.to_pylist() if (r["publisher"], r["dataset"]) == (p, d)], api
        )
        assert_rows_match_api(
            duckdb_rows(path, f"SELECT * FROM t WHERE publisher = '{p}' AND dataset = '{d}'"), api
        )
        assert_rows_match_api(
            frame.filter((pl.col("publisher") == p) & (pl.col("dataset") == d)).to_dicts(), api
        )


def test_snapshot_row_groups_never_span_two_datasets(
    client: TestClient, snapshot: dict[str, Any]
) -> None:
    data = client.get(f"/v1/snapshots/{snapshot['id']}/factors.parquet").content
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.metadata.num_row_groups == len(snapshot["dataset_versions"])
    for index in range(parquet.metadata.num_row_groups):
        group = parquet.read_row_group(index, columns=["publisher", "dataset", "version"])
        assert len(set(zip(*(c.to_pylist() for c in group.columns), strict=True))) == 1
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"


def test_snapshot_is_audited_in_the_same_transaction(
    client: TestClient, snapshot: dict[str, Any], session: Session
) -> None:
    event = session.execute(
        select(AuditEvent).where(AuditEvent.action == "snapshot.created")
    ).scalar_one()
    assert event.subject_id == snapshot["id"]
    assert event.payload["row_count"] == snapshot["row_count"]
    sha = {f["name"]: f["sha256"] for f in snapshot["files"]}
    assert event.payload["files"] == sha
    assert verify_chain(session).ok


def test_snapshot_list_latest_and_ids(
    client: TestClient, licensing_mix: None, admin_token: Headers
) -> None:
    assert client.get("/v1/snapshots").json() == {"items": [], "next": None}
    assert client.get("/v1/snapshots/latest").status_code == 404
    assert client.get("/v1/snapshots/latest/factors.parquet").status_code == 404
    headers = admin_token()
    first = client.post("/v1/snapshots", headers=headers).json()
    second = client.post("/v1/snapshots", headers=headers).json()
    day, sequence = first["id"].rsplit(".", 1)
    assert date.fromisoformat(day)
    assert second["id"] == f"{day}.{int(sequence) + 1}"

    page = client.get("/v1/snapshots?limit=1")
    assert [s["id"] for s in page.json()["items"]] == [second["id"]]
    following = client.get(page.json()["next"]).json()
    assert [s["id"] for s in following["items"]] == [first["id"]]
    assert following["next"] is None

    latest = client.get("/v1/snapshots/latest")
    assert latest.json()["id"] == second["id"]
    assert latest.headers["cache-control"] == "public, max-age=60"
    assert latest.headers["content-location"] == f"/v1/snapshots/{second['id']}"
    pinned = client.get(f"/v1/snapshots/{first['id']}")
    assert pinned.json() == first
    assert pinned.headers["cache-control"] == IMMUTABLE
    assert (
        client.get(
            f"/v1/snapshots/{first['id']}", headers={"If-None-Match": pinned.headers["etag"]}
        ).status_code
        == 304
    )

    latest_file = client.get("/v1/snapshots/latest/factors.parquet")
    assert latest_file.status_code == 200
    assert (
        latest_file.headers["content-location"] == f"/v1/snapshots/{second['id']}/factors.parquet"
    )
    assert latest_file.headers["cache-control"] == "public, max-age=60"
    parquet_entry = next(f for f in second["files"] if f["name"] == "factors.parquet")
    assert latest_file.headers["etag"] == f'"{parquet_entry["sha256"]}"'
    assert client.get("/v1/snapshots/2000-01-01.1").status_code == 404
    assert client.get("/v1/snapshots/not-an-id").status_code == 422


def test_creating_a_snapshot_needs_the_admin_scope(
    client: TestClient, licensing_mix: None, reader_token: Headers
) -> None:
    anonymous = client.post("/v1/snapshots")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert client.post("/v1/snapshots", headers=reader_token()).status_code == 403
    assert client.get("/v1/snapshots").json()["items"] == []


def test_nothing_to_snapshot_is_a_conflict(client: TestClient, admin_token: Headers) -> None:
    response = client.post("/v1/snapshots", headers=admin_token())
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_failed_snapshot_leaves_nothing_behind(
    app: FastAPI,
    client: TestClient,
    licensing_mix: None,
    admin_token: Headers,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(target: Path, data: bytes) -> None:
        target.write_bytes(data[:10])
        raise OSError("disk full (simulated)")

    # The manifest is the last file written: the Parquet and Arrow files exist by then.
    monkeypatch.setattr(export_service, "write_bytes_atomic", broken)
    with TestClient(app, raise_server_exceptions=False) as failing:
        response = failing.post("/v1/snapshots", headers=admin_token())
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/snapshots").json()["items"] == []
    root = settings.export_dir / "sha256"
    assert not root.exists() or list(root.iterdir()) == []


def test_the_api_answers_while_a_snapshot_is_written(
    client: TestClient,
    licensing_mix: None,
    admin_token: Headers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = release_batches

    def slow(*args: Any, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        time.sleep(0.4)  # would stall every request if the writer ran on the event loop
        yield from original(*args, **kwargs)

    monkeypatch.setattr(export_service, "release_batches", slow)
    headers = admin_token()
    result: dict[str, Any] = {}

    def create() -> None:
        result["response"] = client.post("/v1/snapshots", headers=headers)

    worker = threading.Thread(target=create)
    worker.start()
    time.sleep(0.2)
    latencies = []
    while worker.is_alive():
        started = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)
    worker.join()
    assert result["response"].status_code == 201
    # Were the writer on the event loop, next to nothing would be answered until it ended.
    assert len(latencies) >= 10, latencies
    assert statistics.median(latencies) < 0.1, latencies


def test_snapshot_reuses_finished_version_exports(
    client: TestClient, licensing_mix: None, admin_token: Headers, settings: Settings
) -> None:
    headers = admin_token()
    cold = client.post("/v1/snapshots", headers=headers).json()
    for version in cold["dataset_versions"]:
        url = version_url(version["publisher"], version["dataset"], version["version"])
        assert client.get(url + "/export.parquet").status_code == 200
    warm = client.post("/v1/snapshots", headers=headers).json()
    assert warm["dataset_versions"] == cold["dataset_versions"]

    def table(snapshot: dict[str, Any]) -> pa.Table:
        data = client.get(f"/v1/snapshots/{snapshot['id']}/factors.parquet").content
        return pq.read_table(io.BytesIO(data))

    assert table(warm).equals(table(cold))  # same rows, types and order; other snapshot id
    assert table(warm).schema.metadata[b"efdb:snapshot_id"] == warm["id"].encode()
