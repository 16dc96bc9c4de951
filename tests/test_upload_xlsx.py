"""XLSX uploads: read with python-calamine, reported like CSV with the sheet, row and column.

Workbooks are built with openpyxl as a spreadsheet user would leave them: a notes sheet before
the data, the header a few rows down, dates as date cells, numbers stored as text, codes Excel
turned into numbers, formulas, blank and formatted-but-empty rows. Every row is synthetic.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from openpyxl.styles import Font
from sqlalchemy.engine import Engine

from tests.auth_fixtures import TokenKit
from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
from tests.test_upload_validation import snapshot
from tests.upload_files import COLUMNS, csv_bytes, synthetic_row

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def workbook_bytes(
    rows: list[dict[str, Any]],
    *,
    columns: list[str] | None = None,
    sheet: str = "Sheet1",
    before: list[str] = (),  # type: ignore[assignment]
    top_rows: int = 0,
    as_text: set[str] = frozenset(),  # type: ignore[assignment]
) -> bytes:
    """A workbook: optional sheets `before` the data sheet, `top_rows` empty rows above the
    header; cells in `as_text` columns written as text cells."""
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    for index, name in enumerate(before):
        target = first if index == 0 else book.create_sheet(name)
        target.title = name
        target["A1"] = "Synthetic notes sheet (not data)."
    data = first if not before else book.create_sheet(sheet)
    data.title = sheet
    names = columns or list(rows[0])
    for col, name in enumerate(names, start=1):
        data.cell(top_rows + 1, col, name)
    for number, row in enumerate(rows, start=top_rows + 2):
        for col, name in enumerate(names, start=1):
            value = row.get(name)
            if value is None:
                continue
            cell = data.cell(number, col, value)
            if name in as_text or (isinstance(value, str) and not value.startswith("=")):
                cell.value = str(value)
                cell.data_type = "s"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def upload(
    client: TestClient, headers: dict[str, str], data: bytes, name: str = "f.xlsx", **kw: Any
) -> Any:
    return client.post(
        kw.get("versions", VERSIONS),
        headers=headers,
        data={"version": kw.get("version", "1.0.0")},
        files={"file": (name, data, XLSX)},
    )


@pytest.fixture
def writer(client: TestClient, tokens: TokenKit) -> dict[str, str]:
    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201
    return headers


def submitted_hash(client: TestClient, headers: dict[str, str], versions: str) -> str:
    response = client.post(f"{versions}/1.0.0/submit", headers=headers)
    assert response.status_code == 200, response.text
    content: str = response.json()["content_sha256"]
    return content


def test_an_xlsx_upload_gives_the_same_factors_as_the_csv(
    client: TestClient, writer: dict[str, str]
) -> None:
    rows = [
        synthetic_row(i, valid_from=date(2023, 1, 1), valid_to=date(2023, 12, 31)) for i in range(4)
    ]
    rows[1]["co2e"] = 0.1 + 0.2 + 154.5  # awkward doubles
    rows[1]["co2"] = 0.1 + 0.2 + 100.0
    response = upload(
        client, writer, workbook_bytes(rows, columns=[*COLUMNS, "valid_from", "valid_to"])
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["row_count"] == 4
    warnings = [w for w in body["report"]["warnings"] if w["code"] != "unlabelled_activity"]
    assert [(w["code"], w["detail"]) for w in warnings] == [("xlsx_sheet", warnings[0]["detail"])]
    assert "'Sheet1'" in warnings[0]["detail"]
    xlsx_hash = submitted_hash(client, writer, VERSIONS)

    # The same rows as CSV, in another dataset: the same content hash.
    other = {**DATASET_BODY, "slug": "steel-products-csv"}
    assert client.post("/v1/datasets", json=other, headers=writer).status_code == 201
    versions = f"/v1/datasets/{PUBLISHER}/steel-products-csv/versions"
    csv_rows = [
        {
            **row,
            "valid_from": row["valid_from"].isoformat(),
            "valid_to": row["valid_to"].isoformat(),
        }
        for row in rows
    ]
    sent = client.post(
        versions,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes(csv_rows), "text/csv")},
    )
    assert sent.status_code == 201, sent.text
    assert submitted_hash(client, writer, versions) == xlsx_hash

    factors = client.get(f"{VERSIONS}/1.0.0/factors", headers=writer).json()["items"]
    by_code = {f["factor_code"]: f for f in factors}
    assert by_code["synthetic-00001"]["co2e"] == 0.1 + 0.2 + 154.5
    assert by_code["synthetic-00000"]["valid_from"] == "2023-01-01"
    assert by_code["synthetic-00000"]["reference_year"] == 2023


def test_problems_name_the_sheet_and_the_row_as_the_spreadsheet_shows_it(
    client: TestClient, db: Engine, writer: dict[str, str]
) -> None:
    rows = [synthetic_row(i) for i in range(3)]
    rows[1]["unit"] = "kwhh"
    rows[2]["region"] = "china"
    data = workbook_bytes(rows, columns=COLUMNS, sheet="factors", before=["notes"], top_rows=2)
    before = snapshot(db)
    response = upload(client, writer, data)
    assert response.status_code == 422, response.text
    errors = {(e.get("sheet"), e["row"], e["column"], e["code"]) for e in response.json()["errors"]}
    # Header on row 3, so the factors are rows 4, 5, 6 of the sheet `factors`.
    assert {e[:3] for e in errors} == {("factors", 5, "unit"), ("factors", 6, "region")}
    assert ("factors", 5, "unit", "unknown_unit") in errors
    assert snapshot(db) == before


def test_header_problems_are_on_the_header_row(client: TestClient, writer: dict[str, str]) -> None:
    rows = [{**synthetic_row(0), "colour": "blue"}]
    response = upload(client, writer, workbook_bytes(rows, top_rows=1))
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["sheet"], error["row"], error["column"], error["code"]) == (
        "Sheet1",
        2,
        "colour",
        "unknown_column",
    )


def test_formula_cells_are_refused_at_their_place(
    client: TestClient, db: Engine, writer: dict[str, str]
) -> None:
    rows = [synthetic_row(i) for i in range(3)]
    co2e = COLUMNS.index("co2e")
    co2 = COLUMNS.index("co2")
    letter = "ABCDEFGHIJKLMNOP"
    rows[2]["co2e"] = f"={letter[co2]}4+28*{letter[co2 + 1]}4+265*{letter[co2 + 2]}4"
    before = snapshot(db)
    response = upload(client, writer, workbook_bytes(rows, columns=COLUMNS))
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert (error["sheet"], error["row"], error["column"], error["code"]) == (
        "Sheet1",
        4,
        "co2e",
        "formula_cell",
    )
    assert f"{letter[co2e]}4" in error["detail"]
    assert "paste" in error["detail"]
    assert snapshot(db) == before


def test_numbers_stored_as_text_and_codes_turned_into_numbers(
    client: TestClient, writer: dict[str, str]
) -> None:
    rows = [synthetic_row(i, product_code=7208 + i, reference_year=2023.0) for i in range(2)]
    columns = [*COLUMNS, "product_code"]
    data = workbook_bytes(rows, columns=columns, as_text={"co2", "ch4"})
    response = upload(client, writer, data)
    assert response.status_code == 201, response.text
    warnings = {
        (w["code"], w["column"], w["row"], w["sheet"])
        for w in response.json()["report"]["warnings"]
    }
    assert ("number_stored_as_text", "co2", 2, "Sheet1") in warnings
    assert ("number_stored_as_text", "ch4", 2, "Sheet1") in warnings
    assert ("number_as_text", "product_code", 2, "Sheet1") in warnings
    # One warning per column, not per cell.
    assert len([w for w in warnings if w[0] == "number_stored_as_text"]) == 2
    factors = client.get(f"{VERSIONS}/1.0.0/factors", headers=writer).json()["items"]
    by_code = {f["factor_code"]: f for f in factors}
    assert by_code["synthetic-00001"]["product_code"] == "7209"
    assert by_code["synthetic-00001"]["co2"] == 101.0
    assert by_code["synthetic-00001"]["reference_year"] == 2023


def test_cells_of_the_wrong_kind_are_refused_at_their_place(
    client: TestClient, writer: dict[str, str]
) -> None:
    rows = [synthetic_row(i) for i in range(4)]
    rows[0]["co2e"] = True  # a boolean
    rows[1]["reference_year"] = 2023.5
    rows[2]["valid_from"] = datetime(2023, 1, 1, 12, 30)  # a time of day
    rows[3]["co2"] = "about 100"  # text that is no number
    response = upload(client, writer, workbook_bytes(rows, columns=[*COLUMNS, "valid_from"]))
    assert response.status_code == 422, response.text
    found = {(e["row"], e["column"]) for e in response.json()["errors"]}
    assert {(2, "co2e"), (3, "reference_year"), (4, "valid_from"), (5, "co2")} <= found


def test_blank_and_formatted_empty_rows_are_skipped(
    client: TestClient, writer: dict[str, str]
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(COLUMNS)
    sheet.append([synthetic_row(0)[c] for c in COLUMNS])
    sheet.append([])  # a blank row between factors
    sheet.append([synthetic_row(1)[c] for c in COLUMNS])
    for row in range(5, 40):  # formatting left below the data, no values
        for col in range(1, len(COLUMNS) + 3):
            sheet.cell(row, col).font = Font(bold=True)
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    response = upload(client, writer, data)
    assert response.status_code == 201, response.text
    assert response.json()["row_count"] == 2
    # A problem after the blank row is on the row the spreadsheet shows.
    sheet.cell(4, COLUMNS.index("unit") + 1, "kwhh")
    buffer = io.BytesIO()
    book.save(buffer)
    refused = upload(client, writer, buffer.getvalue(), version="1.0.1")
    assert refused.status_code == 422
    assert [(e["row"], e["column"]) for e in refused.json()["errors"]] == [(4, "unit")]


def test_a_value_in_a_column_without_a_name_is_refused(
    client: TestClient, writer: dict[str, str]
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(COLUMNS)
    sheet.append([synthetic_row(0)[c] for c in COLUMNS])
    sheet.append([*(synthetic_row(1)[c] for c in COLUMNS), "stray"])
    buffer = io.BytesIO()
    book.save(buffer)
    response = upload(client, writer, buffer.getvalue())
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["row"], error["code"]) == (3, "cell_without_column")


def test_workbooks_past_the_upload_limits_are_refused_before_they_are_read(
    client: TestClient, db: Engine, writer: dict[str, str], settings: Any
) -> None:
    before = snapshot(db)
    # Rows: counted from the sheet's XML before calamine reads it.
    client.app.state.settings = settings.model_copy(update={"max_upload_rows": 2})  # type: ignore[attr-defined]
    response = upload(client, writer, workbook_bytes([synthetic_row(i) for i in range(3)]))
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["row"], error["code"]) == (None, "too_many_rows")

    # A small file that inflates: a sheet part of 3 MB of whitespace in a few kilobytes.
    client.app.state.settings = settings.model_copy(update={"max_upload_uncompressed_mb": 2})  # type: ignore[attr-defined]
    source = zipfile.ZipFile(io.BytesIO(workbook_bytes([synthetic_row(0)])))
    inflated = io.BytesIO()
    with zipfile.ZipFile(inflated, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"<sheetData>", b"<sheetData>" + b" " * (3 << 20), 1)
            target.writestr(info.filename, data)
    assert len(inflated.getvalue()) < 64 * 1024
    response = upload(client, writer, inflated.getvalue())
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["code"] == "uncompressed_too_large"
    assert snapshot(db) == before


def rewritten(data: bytes, part: str, change: Callable[[bytes], bytes]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info.filename, change(content) if info.filename == part else content)
    return out.getvalue()


@pytest.mark.parametrize(
    "change",
    [
        lambda xml: xml[: len(xml) // 2],  # cut off mid-element
        lambda xml: xml.replace(b'r="A2"', b'r="A2x"', 1).replace(b'<row r="2"', b'<row r="x"'),
        lambda xml: b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + xml,
    ],
    ids=["truncated", "bad-row-number", "doctype"],
)
def test_a_damaged_sheet_is_a_file_problem_not_a_crash(
    client: TestClient, writer: dict[str, str], change: Callable[[bytes], bytes]
) -> None:
    data = rewritten(
        workbook_bytes([synthetic_row(0), synthetic_row(1)]), "xl/worksheets/sheet1.xml", change
    )
    response = upload(client, writer, data)
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["code"] == "malformed_xlsx"


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("f.xlsx", csv_bytes([synthetic_row(0)]), "not_xlsx"),
        ("f.xlsx", b"PK\x03\x04" + b"\0" * 100, "malformed_xlsx"),
        ("f.xls", b"\xd0\xcf\x11\xe0" + b"\0" * 100, "unsupported_format"),
        ("f.xlsm", b"PK\x03\x04" + b"\0" * 100, "unsupported_format"),
        ("f.csv", b"PK\x03\x04" + b"\0" * 100, "compressed_file"),
    ],
    ids=["csv-named-xlsx", "broken-zip", "xls", "xlsm", "zip-named-csv"],
)
def test_files_that_are_not_workbooks(
    client: TestClient, writer: dict[str, str], name: str, data: bytes, code: str
) -> None:
    response = upload(client, writer, data, name=name)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["code"] == code
