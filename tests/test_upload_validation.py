"""Malformed uploads: each gets a precise report and leaves the database exactly as it was."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.auth_fixtures import TokenKit
from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
from tests.upload_files import COLUMNS, csv_bytes, jsonl_bytes, parquet_bytes, synthetic_row

TABLES = ("dataset_version", "factor", "factor_draft", "source", "audit_event")


def snapshot(db: Engine) -> dict[str, int]:
    with db.connect() as connection:
        return {
            t: connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES
        }


def good_rows(n: int = 3) -> list[dict[str, Any]]:
    return [synthetic_row(i) for i in range(n)]


def csv_text(body: str) -> bytes:
    return body.encode("utf-8")


def with_cell(row: int, column: str, value: Any) -> bytes:
    rows = good_rows()
    rows[row][column] = value
    return csv_bytes(rows)


def truncated_parquet() -> bytes:
    content = parquet_bytes(good_rows(50))
    return content[: len(content) // 2]


def header_of(columns: list[str]) -> bytes:
    rows = [{c: synthetic_row(0).get(c, "") for c in columns}]
    buffer = io.StringIO()
    buffer.write(",".join(columns) + "\n")
    buffer.write(",".join(str(rows[0][c]) for c in columns) + "\n")
    return buffer.getvalue().encode()


def duplicated_column() -> bytes:
    columns = [*COLUMNS, "unit"]
    values = [str(synthetic_row(0)[c]) for c in COLUMNS] + ["kWh"]
    return (",".join(columns) + "\n" + ",".join(values) + "\n").encode()


def parquet_with_nan() -> bytes:
    rows = good_rows()
    table = pa.Table.from_pylist(rows).set_column(
        COLUMNS.index("co2e"), "co2e", pa.array([float("nan"), 1.0, 2.0])
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# (name, file name, content, expected (row, column, code) of one reported error)
CASES: list[tuple[str, str, Callable[[], bytes], tuple[int | None, str | None, str]]] = [
    ("empty file", "f.csv", lambda: b"", (None, None, "empty_file")),
    ("header only", "f.csv", lambda: csv_bytes([], COLUMNS), (None, None, "no_rows")),
    (
        "latin-1 text",
        "f.csv",
        lambda: with_cell(1, "name_en", "Caf\u00e9").replace("Caf\u00e9".encode(), b"Caf\xe9"),
        (3, None, "not_utf8"),
    ),
    (
        "GBK-encoded Chinese",
        "f.csv",
        lambda: with_cell(0, "name_zh", "钢铁").replace("钢铁".encode(), "钢铁".encode("gbk")),
        (2, None, "not_utf8"),
    ),
    (
        "missing required column",
        "f.csv",
        lambda: header_of([c for c in COLUMNS if c != "co2e"]),
        (1, "co2e", "missing_column"),
    ),
    (
        "rows without a required column",
        "f.csv",
        lambda: csv_bytes(
            [{k: v for k, v in synthetic_row(i).items() if k != "co2e"} for i in range(3)],
            [c for c in COLUMNS if c != "co2e"],
        ),
        (1, "co2e", "missing_column"),
    ),
    (
        "unknown column",
        "f.csv",
        lambda: header_of([*COLUMNS, "colour"]),
        (1, "colour", "unknown_column"),
    ),
    ("duplicated column", "f.csv", duplicated_column, (1, "unit", "duplicate_column")),
    ("NaN co2e", "f.csv", lambda: with_cell(0, "co2e", "nan"), (2, "co2e", "not_finite")),
    ("infinite co2e", "f.csv", lambda: with_cell(1, "co2e", "inf"), (3, "co2e", "not_finite")),
    (
        "negative co2e",
        "f.csv",
        lambda: csv_bytes([synthetic_row(0, co2e=-1, co2="", ch4="", n2o="", gwp_set="")]),
        (2, "co2e", "negative_co2e"),
    ),
    (
        "text in a number",
        "f.csv",
        lambda: with_cell(2, "co2e", "12,5"),
        (4, "co2e", "float_parsing"),
    ),
    ("unknown unit", "f.csv", lambda: with_cell(0, "unit", "kwhh"), (2, "unit", "unknown_unit")),
    (
        "unit factors may not be per",
        "f.csv",
        lambda: with_cell(0, "unit", "Btu"),
        (2, "unit", "unsupported_unit"),
    ),
    (
        "bad region",
        "f.csv",
        lambda: with_cell(0, "region", "China"),
        (2, "region", "string_pattern_mismatch"),
    ),
    (
        "lowercase region",
        "f.csv",
        lambda: with_cell(1, "region", "cn"),
        (3, "region", "string_pattern_mismatch"),
    ),
    (
        "region code not in the location table",
        "f.csv",
        lambda: with_cell(1, "region", "XK"),
        (3, "region", "unknown_region"),
    ),
    (
        "grouping code not in the location table",
        "f.csv",
        lambda: with_cell(0, "region", "CN-GRID-MARS"),
        (2, "region", "unknown_region"),
    ),
    ("gas/GWP mismatch", "f.csv", lambda: with_cell(0, "co2e", 500), (2, "co2e", "co2e_mismatch")),
    (
        "gases without gwp_set",
        "f.csv",
        lambda: with_cell(0, "gwp_set", ""),
        (2, "gwp_set", "missing_gwp_set"),
    ),
    (
        "unknown GWP set",
        "f.csv",
        lambda: with_cell(0, "gwp_set", "AR3"),
        (2, "gwp_set", "literal_error"),
    ),
    (
        "duplicate factor code",
        "f.csv",
        lambda: csv_bytes([synthetic_row(1), synthetic_row(2), synthetic_row(1)]),
        (4, "factor_code", "duplicate_factor_code"),
    ),
    (
        "bad factor code",
        "f.csv",
        lambda: with_cell(0, "factor_code", "a b"),
        (2, "factor_code", "string_pattern_mismatch"),
    ),
    (
        "year out of range",
        "f.csv",
        lambda: with_cell(0, "reference_year", 3024),
        (2, "reference_year", "less_than_equal"),
    ),
    (
        "bad boundary",
        "f.csv",
        lambda: with_cell(0, "boundary", "cradle"),
        (2, "boundary", "literal_error"),
    ),
    (
        "missing source title",
        "f.csv",
        lambda: with_cell(0, "source_title", ""),
        (2, "source_title", "missing"),
    ),
    (
        "uncertainty above the value",
        "f.csv",
        lambda: csv_bytes([synthetic_row(0, uncertainty_low=1000)]),
        (2, "uncertainty_low", "uncertainty_order"),
    ),
    (
        "pedigree score 7",
        "f.csv",
        lambda: csv_bytes([synthetic_row(0, dq_temporal=7)]),
        (2, "dq_temporal", "less_than_equal"),
    ),
    (
        "row with too many cells",
        "f.csv",
        lambda: csv_bytes(good_rows()) + b"x,y,z" + b",1" * len(COLUMNS) + b"\n",
        (5, None, "wrong_cell_count"),
    ),
    (
        "unterminated quote",
        "f.csv",
        lambda: csv_bytes(good_rows()) + b'"synthetic-9,"oops\n',
        (5, None, "malformed_csv"),
    ),
    ("truncated Parquet", "f.parquet", truncated_parquet, (None, None, "malformed_parquet")),
    ("Parquet with NaN", "f.parquet", parquet_with_nan, (1, "co2e", "not_finite")),
    (
        "CSV named .parquet",
        "f.parquet",
        lambda: csv_bytes(good_rows()),
        (None, None, "not_parquet"),
    ),
    (
        "Parquet named .csv",
        "f.csv",
        lambda: parquet_bytes(good_rows()),
        (None, None, "format_mismatch"),
    ),
    ("zip file", "f.zip", lambda: b"PK\x03\x04rest", (None, None, "unsupported_format")),
    ("zip named .csv", "f.csv", lambda: b"PK\x03\x04rest", (None, None, "compressed_file")),
    (
        "Excel 97 file",
        "f.xls",
        lambda: b"\xd0\xcf\x11\xe0rest",
        (None, None, "unsupported_format"),
    ),
    ("Broken workbook", "f.xlsx", lambda: b"PK\x03\x04rest", (None, None, "malformed_xlsx")),
    (
        "JSON Lines with a broken line",
        "f.jsonl",
        lambda: jsonl_bytes(good_rows(2)) + b'{"factor_code": \n',
        (3, None, "invalid_json"),
    ),
    (
        "JSON Lines with NaN",
        "f.jsonl",
        lambda: jsonl_bytes(good_rows(1)).replace(b'"co2": 100.0', b'"co2": NaN'),
        (1, None, "invalid_json"),
    ),
    ("JSON Lines with an array", "f.jsonl", lambda: b"[1, 2]\n", (1, None, "invalid_json")),
    (
        "JSON Lines with an unknown key",
        "f.jsonl",
        lambda: jsonl_bytes([synthetic_row(0, colour="red")]),
        (1, "colour", "extra_forbidden"),
    ),
]


@pytest.fixture
def writer(client: TestClient, tokens: TokenKit) -> dict[str, str]:
    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201
    return headers


@pytest.mark.parametrize(
    ("case", "file_name", "make", "expected"), CASES, ids=[case[0] for case in CASES]
)
def test_malformed_upload_is_reported_precisely_and_stores_nothing(
    client: TestClient,
    db: Engine,
    writer: dict[str, str],
    case: str,
    file_name: str,
    make: Callable[[], bytes],
    expected: tuple[int | None, str | None, str],
) -> None:
    before = snapshot(db)
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": (file_name, make(), "application/octet-stream")},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["file"] == file_name
    found = {(e["row"], e["column"], e["code"]) for e in body["errors"]}
    assert expected in found, json.dumps(body["errors"], ensure_ascii=False)[:2000]
    assert all(e["detail"] for e in body["errors"])
    assert snapshot(db) == before


# (rows as (code index, overrides), the errors: (row, column, the first row of a duplicate))
DuplicateCase = tuple[list[tuple[int, dict[str, str]]], list[tuple[int, str, int | None]]]
DUPLICATE_CASES: dict[str, DuplicateCase] = {
    # Found by factor_draft's unique index as the rows are stored: the file is read again.
    "duplicates only": (
        [(0, {}), (1, {}), (2, {}), (1, {}), (1, {}), (0, {})],
        [(5, "factor_code", 3), (6, "factor_code", 3), (7, "factor_code", 2)],
    ),
    # After another error nothing more is stored: the codes stored so far are read back, and
    # the rest is checked against them (a code whose row failed is not among them).
    "an error, then duplicates": (
        [(0, {}), (1, {"unit": "kwhh"}), (2, {}), (0, {}), (1, {}), (1, {}), (2, {})],
        [(3, "unit", None), (5, "factor_code", 2), (7, "factor_code", 6), (8, "factor_code", 4)],
    ),
    "a duplicate, then an error, then a duplicate": (
        [(0, {}), (1, {}), (0, {}), (3, {"unit": "kwhh"}), (1, {})],
        [(4, "factor_code", 2), (5, "unit", None), (6, "factor_code", 3)],
    ),
}


@pytest.mark.parametrize("case", list(DUPLICATE_CASES))
def test_every_duplicate_code_is_reported_with_its_first_row(
    client: TestClient, db: Engine, writer: dict[str, str], case: str
) -> None:
    layout, expected = DUPLICATE_CASES[case]
    rows = [{**synthetic_row(index), **overrides} for index, overrides in layout]
    before = snapshot(db)
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes(rows), "text/csv")},
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [(e["row"], e["column"]) for e in errors] == [(r, c) for r, c, _ in expected]
    for error, (row, _, first) in zip(errors, expected, strict=True):
        if first is None:
            assert error["code"] == "unknown_unit"
        else:
            code = rows[row - 2]["factor_code"]
            assert error["code"] == "duplicate_factor_code"
            assert error["detail"] == f"'{code}' already appears in row {first}"
    assert response.json()["report"]["error_count"] == len(expected)
    assert snapshot(db) == before


def test_an_unknown_region_is_named_in_its_row(
    client: TestClient, db: Engine, writer: dict[str, str]
) -> None:
    before = snapshot(db)
    rows = [synthetic_row(0), synthetic_row(1, region="XK"), synthetic_row(2, region="CN-ZZ")]
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes(rows), "text/csv")},
    )
    assert response.status_code == 422, response.text
    errors = [(e["row"], e["column"], e["code"]) for e in response.json()["errors"]]
    assert errors == [(3, "region", "unknown_region"), (4, "region", "unknown_region")]
    details = [e["detail"] for e in response.json()["errors"]]
    assert "'XK'" in details[0]
    assert "'CN-ZZ'" in details[1]
    assert "GET /v1/locations" in details[0]
    assert snapshot(db) == before


def test_a_grouping_is_a_valid_region(client: TestClient, writer: dict[str, str]) -> None:
    rows = [synthetic_row(0, region="CN-GRID-NORTH"), synthetic_row(1, region="CN-BJ")]
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes(rows), "text/csv")},
    )
    assert response.status_code == 201, response.text


def test_a_bom_is_accepted_with_a_warning(client: TestClient, writer: dict[str, str]) -> None:
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", b"\xef\xbb\xbf" + csv_bytes(good_rows()), "text/csv")},
    )
    assert response.status_code == 201, response.text
    # (Its synthetic activity has no labels: a warning of its own, tests/test_activities.py.)
    codes = [w["code"] for w in response.json()["report"]["warnings"]]
    assert [code for code in codes if code != "unlabelled_activity"] == ["utf8_bom"]


def test_formula_cells_are_stored_as_text_with_a_warning(
    client: TestClient, writer: dict[str, str]
) -> None:
    formula = '=HYPERLINK("http://example.invalid","click")'
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", with_cell(0, "name_en", formula), "text/csv")},
    )
    assert response.status_code == 201, response.text
    (warning,) = [
        w for w in response.json()["report"]["warnings"] if w["code"] != "unlabelled_activity"
    ]
    assert (warning["row"], warning["column"], warning["code"]) == (
        2,
        "name_en",
        "formula_like_cell",
    )


def test_every_problem_of_a_file_is_listed_at_once(
    client: TestClient, writer: dict[str, str]
) -> None:
    rows = good_rows(5)
    rows[0]["unit"] = "kwhh"
    rows[2]["region"] = "china"
    rows[4]["co2e"] = "x"
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes(rows), "text/csv")},
    )
    assert {(e["row"], e["column"]) for e in response.json()["errors"]} == {
        (2, "unit"),
        (4, "region"),
        (6, "co2e"),
    }
    assert response.json()["report"]["error_count"] == 3


def test_row_cap(client: TestClient, writer: dict[str, str], settings: Any) -> None:
    client.app.state.settings = settings.model_copy(update={"max_upload_rows": 2})  # type: ignore[attr-defined]
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes(good_rows(3)), "text/csv")},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "too_many_rows"
