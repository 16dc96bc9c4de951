"""XLSX exports of released versions and snapshots, read back by two independent readers.

openpyxl (pure Python, the reader most scripts use) and python-calamine (Rust's calamine, what
polars and pandas use for fast reads) open every workbook; every cell must equal the JSON
API's factor and the Parquet export's row, and the read-me sheet must state the licence,
attribution, version, content hash and signed statement of each release.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from openpyxl.cell.cell import Cell
from python_calamine import CalamineWorkbook
from sqlalchemy.orm import Session

from app.exports.models import Snapshot
from app.exports.schema import COLUMN_NAMES, COLUMNS, EXPORT_SCHEMA, SCHEMA_VERSION
from app.exports.xlsx import write_xlsx
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.test_exports import (
    IMMUTABLE,
    SEED_VERSIONS,
    Headers,
    api_factors,
    synthetic_rich_factors,
    version_url,
)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TYPES = {column.name: column.type for column in COLUMNS}


# --------------------------------------------------------------------------- readers


def openpyxl_rows(data: bytes, sheet: str) -> list[list[Any]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    try:
        return [list(row) for row in book[sheet].iter_rows(values_only=True)]
    finally:
        book.close()


def calamine_rows(data: bytes, sheet: str) -> list[list[Any]]:
    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    rows: list[list[Any]] = book.get_sheet_by_name(sheet).to_python()
    return rows


def normalised(name: str, value: Any) -> Any:
    """A cell as the JSON API writes the field: a workbook has only one kind of number (the
    readers give a whole one as int or float), openpyxl gives dates as datetimes and empty
    cells as None, calamine empty cells as ''."""
    if value is None or value == "":
        return None
    kind = TYPES[name]
    if pa.types.is_integer(kind):
        assert isinstance(value, int | float), (name, value)
        assert float(value).is_integer(), (name, value)
        return int(value)
    if pa.types.is_date(kind):
        if isinstance(value, datetime):
            assert value.time() == datetime.min.time()
            value = value.date()
        assert isinstance(value, date), (name, value)
        return value.isoformat()
    if pa.types.is_floating(kind):
        assert isinstance(value, int | float), (name, value)
        assert not isinstance(value, bool), (name, value)
        return float(value)
    else:
        assert isinstance(value, str), (name, value)  # text stays text, never a number
    return value


def sheet_records(rows: list[list[Any]]) -> list[dict[str, Any]]:
    header, *body = rows
    assert tuple(header) == COLUMN_NAMES
    return [
        {name: normalised(name, cell) for name, cell in zip(header, row, strict=True)}
        for row in body
    ]


def api_value(name: str, value: Any) -> Any:
    # An empty text and a null are both an empty cell (uploads store an empty cell as null).
    return None if value == "" else value


def assert_records_match(
    records: list[dict[str, Any]], api: list[dict[str, Any]], parquet: list[dict[str, Any]]
) -> None:
    """Every cell equals the API's field (exact floats) and the Parquet export's value."""
    assert len(records) == len(api) == len(parquet)
    by_code = {item["factor_code"]: item for item in api}
    for record, row in zip(records, parquet, strict=True):
        assert record["factor_code"] == row["factor_code"]  # the same order as the Parquet file
        item = by_code[record["factor_code"]]
        for name in COLUMN_NAMES:
            expected_parquet = row[name]
            if isinstance(expected_parquet, datetime):
                assert record[name] == expected_parquet.isoformat().replace("+00:00", "Z")
                continue
            if isinstance(expected_parquet, date):
                expected_parquet = expected_parquet.isoformat()
            assert record[name] == api_value(name, expected_parquet), (record["factor_code"], name)
            assert record[name] == api_value(name, item[name]), (record["factor_code"], name)


def readme_pairs(rows: list[list[Any]]) -> dict[str, Any]:
    return {row[0]: row[1] for row in rows if row and row[0] and len(row) > 1}


def readme_versions(rows: list[list[Any]]) -> list[dict[str, Any]]:
    start = next(i for i, row in enumerate(rows) if row and row[0] == "publisher")
    header = [cell for cell in rows[start] if cell]
    versions = []
    for row in rows[start + 1 :]:
        if not row or not row[0]:
            break
        versions.append(dict(zip(header, row, strict=False)))
    return versions


# --------------------------------------------------------------------------- fixtures


def rich_factors() -> list[Any]:
    """Chinese text, dates, formula-like text, awkward floats (synthetic, not real data)."""
    return [
        *synthetic_rich_factors(),
        factor_fields(
            "syn-formula",
            name_en='=HYPERLINK("http://example.invalid","x")',
            name_zh="+合成（公式样文本）",
            description="@SUM(A1:A2)\n第二行",
            notes="-2+3",
            co2e=1e-12,
            co2=123456789.123456789,
            product_code="007208",  # a number stored as text stays text
        ),
    ]


@pytest.fixture
def rich_dataset(session: Session) -> tuple[str, str, str]:
    publisher = create_publisher(session, slug="synth-xlsx")
    dataset = create_dataset(session, publisher=publisher, slug="rich")
    create_version(session, dataset=dataset, factors=rich_factors())
    session.commit()
    return "synth-xlsx", "rich", "1.0.0"


# --------------------------------------------------------------------------- per version


@pytest.mark.parametrize(("publisher", "dataset", "version"), SEED_VERSIONS)
def test_version_xlsx_agrees_with_the_api_and_the_parquet_export(
    client: TestClient, seeded: None, publisher: str, dataset: str, version: str
) -> None:
    base = version_url(publisher, dataset, version)
    response = client.get(base + "/export.xlsx")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    assert response.headers["cache-control"] == IMMUTABLE
    assert "attachment" in response.headers["content-disposition"]
    assert f"{publisher}_{dataset}_{version}.xlsx" in response.headers["content-disposition"]
    license_url = client.get(f"/v1/datasets/{publisher}/{dataset}").json()["license_url"]
    assert response.headers["link"] == f'<{license_url}>; rel="license"'

    api = api_factors(client, publisher, dataset, version)
    parquet = pq.read_table(io.BytesIO(client.get(base + "/export.parquet").content)).to_pylist()
    for reader in (openpyxl_rows, calamine_rows):
        assert_records_match(sheet_records(reader(response.content, "factors")), api, parquet)

    detail = client.get(base).json()
    readme = calamine_rows(response.content, "read me")
    assert readme[0][0] == f"efdb export of {publisher}/{dataset}@{version}"
    (entry,) = readme_versions(readme)
    assert entry["content_sha256"] == detail["content_sha256"]
    assert entry["version"] == version
    assert entry["license_id"] == detail["license_id"]
    assert entry["attribution"] == detail["attribution"]
    assert entry["license_url"] == license_url
    assert entry["row_count"] == detail["row_count"] == len(api)
    pairs = readme_pairs(readme)
    assert pairs["Release statement"] == client.get(base + "/release.jws").text.strip()
    assert "content_sha256" in pairs["2. Content hash"]
    assert pairs["Export schema version"] == SCHEMA_VERSION


def test_rich_text_dates_and_awkward_numbers_round_trip_exactly(
    client: TestClient, rich_dataset: tuple[str, str, str]
) -> None:
    base = version_url(*rich_dataset)
    data = client.get(base + "/export.xlsx").content
    api = api_factors(client, *rich_dataset)
    parquet = pq.read_table(io.BytesIO(client.get(base + "/export.parquet").content)).to_pylist()
    for reader in (openpyxl_rows, calamine_rows):
        records = {r["factor_code"]: r for r in sheet_records(reader(data, "factors"))}
        assert_records_match(list(records.values()), api, parquet)
        # Doubles that need 17 digits come back as the same double (the writers' default of
        # 16 significant digits would give 0.3).
        assert records["syn-b"]["co2e"] == 0.1 + 0.2
        assert records["syn-formula"]["co2"] == 123456789.123456789
        assert records["syn-formula"]["co2e"] == 1e-12
        assert records["syn-b"]["valid_from"] == "2023-01-01"
        assert records["syn-b"]["name_zh"] == "合成测试：电网排放因子（华北）"
        assert records["syn-b"]["description"] == '含换行\n与引号"的合成描述'
        # Formula-like text is text as published: no apostrophe, never a formula.
        assert records["syn-formula"]["name_en"] == '=HYPERLINK("http://example.invalid","x")'
        assert records["syn-formula"]["notes"] == "-2+3"
        assert records["syn-formula"]["product_code"] == "007208"
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book["factors"]
    assert book.sheetnames == ["factors", "read me"]
    column = {name: index + 1 for index, name in enumerate(COLUMN_NAMES)}
    types = {
        sheet.cell(row, column["factor_code"]).value: sheet.cell(row, column["name_en"]).data_type
        for row in range(2, sheet.max_row + 1)
    }
    assert types["syn-formula"] == "s"  # a string cell, not "f"
    valid_from = sheet.cell(2, column["valid_from"])
    assert isinstance(valid_from, Cell)
    assert valid_from.is_date
    assert valid_from.number_format == "yyyy-mm-dd"
    assert sheet.freeze_panes == "A2"


def test_xlsx_is_written_once_and_served_as_a_file(
    client: TestClient, rich_dataset: tuple[str, str, str], settings: Any
) -> None:
    url = version_url(*rich_dataset) + "/export.xlsx"
    first = client.get(url)
    sha256 = hashlib.sha256(first.content).hexdigest()
    path = settings.export_dir / "sha256" / f"{sha256}.xlsx"
    assert path.read_bytes() == first.content
    written_at = path.stat().st_mtime_ns
    second = client.get(url)
    assert second.content == first.content
    assert path.stat().st_mtime_ns == written_at
    not_modified = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    head = client.head(url)
    assert head.headers["content-length"] == str(len(first.content))
    assert head.headers["etag"] == first.headers["etag"]
    part = client.get(url, headers={"Range": "bytes=0-3"})
    assert part.status_code == 206
    assert part.content == b"PK\x03\x04"
    # Deterministic: written again from the same Parquet file, the same bytes.
    parquet = settings.export_dir / "sha256"
    (source,) = parquet.glob("*.parquet")
    again = write_xlsx(settings.export_dir / "again.xlsx", source)
    assert again.sha256 == sha256


def test_registered_dataset_xlsx_needs_a_granted_reader(
    client: TestClient, session: Session, reader_token: Headers, settings: Any
) -> None:
    publisher = create_publisher(session, slug="synth-xreg")
    dataset = create_dataset(session, publisher=publisher, slug="members", access="registered")
    create_version(session, dataset=dataset, factors=[factor_fields("r-1")])
    session.commit()
    url = version_url("synth-xreg", "members", "1.0.0") + "/export.xlsx"
    anonymous = client.get(url)
    assert anonymous.status_code == 404
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    # A reader without a grant for it is told it does not exist, as anyone else is.
    assert client.get(url, headers=reader_token()).status_code == 404
    response = client.get(url, headers=reader_token("synth-xreg/members"))
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("private")
    (record,) = sheet_records(calamine_rows(response.content, "factors"))
    assert record["factor_code"] == "r-1"
    assert list((settings.export_dir / "registered/sha256").glob("*.xlsx"))
    assert not list(settings.export_dir.glob("sha256/*.xlsx"))


def test_a_large_export_continues_on_further_sheets(tmp_path: Path) -> None:
    """Past the rows a sheet holds, the factors continue on `factors 2`, … with the header."""
    rows = 7
    columns = {}
    for column in COLUMNS:
        kind = column.type
        if pa.types.is_dictionary(kind):
            columns[column.name] = pa.array(["synthetic"] * rows).dictionary_encode()
        elif pa.types.is_floating(kind):
            columns[column.name] = pa.array([i + 0.5 for i in range(rows)], kind)
        elif pa.types.is_integer(kind):
            columns[column.name] = pa.array([2] * rows, kind)
        elif pa.types.is_date(kind):
            columns[column.name] = pa.array([date(2024, 1, 1)] * rows, kind)
        elif pa.types.is_timestamp(kind):
            columns[column.name] = pa.array([datetime(2024, 1, 1)] * rows, kind)
        else:
            columns[column.name] = pa.array([f"syn-{i}" for i in range(rows)])
    source = tmp_path / "synthetic.parquet"
    pq.write_table(pa.table(columns, schema=EXPORT_SCHEMA), source)
    write_xlsx(tmp_path / "out.xlsx", source, max_sheet_rows=3)
    data = (tmp_path / "out.xlsx").read_bytes()
    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    assert book.sheet_names == ["factors", "factors 2", "factors 3", "factors 4", "read me"]
    codes = []
    for name in book.sheet_names[:-1]:
        codes += [r["factor_code"] for r in sheet_records(calamine_rows(data, name))]
    assert codes == [f"syn-{i}" for i in range(rows)]
    assert "factors 4" in readme_pairs(calamine_rows(data, "read me"))["Sheets"]


# --------------------------------------------------------------------------- snapshots


def test_snapshot_xlsx_agrees_with_its_parquet_file_and_manifest(
    client: TestClient, seeded: None, admin_token: Headers
) -> None:
    snapshot = client.post("/v1/snapshots", headers=admin_token()).json()
    base = f"/v1/snapshots/{snapshot['id']}"
    by_name = {f["name"]: f for f in snapshot["files"]}
    entry = by_name["factors.xlsx"]
    assert entry["url"] == f"{base}/factors.xlsx"
    assert entry["media_type"] == XLSX
    manifest = client.get(f"{base}/manifest.json").json()
    (listed,) = [f for f in manifest["files"] if f["name"] == "factors.xlsx"]
    assert (listed["sha256"], listed["bytes"]) == (entry["sha256"], entry["bytes"])

    response = client.get(entry["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == XLSX
    assert response.headers["etag"] == f'"{entry["sha256"]}"'
    assert response.headers["cache-control"] == IMMUTABLE
    assert hashlib.sha256(response.content).hexdigest() == entry["sha256"]
    latest = client.get("/v1/snapshots/latest/factors.xlsx")
    assert latest.content == response.content
    assert latest.headers["content-location"] == f"{base}/factors.xlsx"

    parquet = pq.read_table(io.BytesIO(client.get(f"{base}/factors.parquet").content))
    records = sheet_records(openpyxl_rows(response.content, "factors"))
    assert len(records) == parquet.num_rows == snapshot["row_count"]
    for version in snapshot["dataset_versions"]:
        p, d, v = version["publisher"], version["dataset"], version["version"]
        assert_records_match(
            [r for r in records if (r["publisher"], r["dataset"]) == (p, d)],
            api_factors(client, p, d, v),
            [r for r in parquet.to_pylist() if (r["publisher"], r["dataset"]) == (p, d)],
        )
    readme = calamine_rows(response.content, "read me")
    assert readme[0][0] == f"efdb national snapshot {snapshot['id']}"
    listed_versions = {
        f"{v['publisher']}/{v['dataset']}@{v['version']}": v for v in readme_versions(readme)
    }
    for version in manifest["dataset_versions"]:
        key = f"{version['publisher']}/{version['dataset']}@{version['version']}"
        assert listed_versions[key]["content_sha256"] == version["content_sha256"]
        assert listed_versions[key]["attribution"] == version["attribution"]
        assert listed_versions[key]["license_id"] == version["license_id"]
    assert len(listed_versions) == len(manifest["dataset_versions"])


def test_a_snapshot_from_before_workbooks_says_so(
    client: TestClient, seeded: None, admin_token: Headers, session: Session
) -> None:
    created = client.post("/v1/snapshots", headers=admin_token()).json()
    snapshot = session.get(Snapshot, created["id"])
    assert snapshot is not None
    snapshot.files = [f for f in snapshot.files if f["name"] != "factors.xlsx"]
    session.commit()
    response = client.get(f"/v1/snapshots/{created['id']}/factors.xlsx")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "factors.parquet holds the same rows" in response.json()["detail"]


# --------------------------------------------------------------------------- README


def readme_recipe() -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    (block,) = [b for b in blocks if "CalamineWorkbook" in b]
    return block


def run_recipe(data: bytes, folder: Path) -> str:
    folder.mkdir()
    (folder / "export.xlsx").write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", readme_recipe()],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_recipe_recomputes_content_hashes_from_a_workbook(
    client: TestClient, session: Session, seeded: None, admin_token: Headers, tmp_path: Path
) -> None:
    publisher, dataset, version = "synth-xrecipe", "rich", "1.0.0"
    created = create_dataset(
        session, publisher=create_publisher(session, slug=publisher), slug=dataset
    )
    # Every factor as an upload can store it: an empty text cell is a null.
    factors = [f for f in rich_factors() if f.name_en != ""]
    create_version(session, dataset=created, factors=factors)
    session.commit()
    data = client.get(version_url(publisher, dataset, version) + "/export.xlsx").content
    out = run_recipe(data, tmp_path / "version")
    assert out == f"{publisher}/{dataset}@{version} content_sha256 verified from the workbook\n"

    # A snapshot's workbook: every version in it.
    snapshot = client.post("/v1/snapshots", headers=admin_token()).json()
    data = client.get(f"/v1/snapshots/{snapshot['id']}/factors.xlsx").content
    out = run_recipe(data, tmp_path / "snapshot")
    assert out.count("content_sha256 verified") == len(snapshot["dataset_versions"])

    # An altered number is caught.
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book["factors"]
    co2e = COLUMN_NAMES.index("co2e") + 1
    cell = sheet.cell(2, co2e)
    assert isinstance(cell.value, int | float)
    cell.value = cell.value + 1
    altered = io.BytesIO()
    book.save(altered)
    (tmp_path / "altered").mkdir()
    (tmp_path / "altered" / "export.xlsx").write_bytes(altered.getvalue())
    done = subprocess.run(
        [sys.executable, "-c", readme_recipe()],
        cwd=tmp_path / "altered",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "AssertionError" in done.stderr
