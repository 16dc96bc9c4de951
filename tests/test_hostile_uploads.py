"""Hostile uploads (issue 23): each is refused with a row and column, or stored made safe.

Every test here runs on SQLite and PostgreSQL, where a NUL byte or a lone surrogate used to
end in a 500 and on SQLite was stored as sent. Rows are synthetic (tests/upload_files.py).
"""

from __future__ import annotations

import csv
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

from app.core.formula import looks_like_formula
from app.core.text import content_disposition, safe_file_name
from app.publishing.records import RowProblem, parse_record
from tests.auth_fixtures import TokenKit
from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS, publish
from tests.test_upload_validation import good_rows, snapshot
from tests.upload_files import csv_bytes, jsonl_bytes, synthetic_row


def with_cell(row: int, column: str, value: Any) -> bytes:
    """Three good CSV rows, one with `value` in `column` (empty in the others)."""
    rows = [{**r, column: ""} for r in good_rows()]
    rows[row][column] = value
    return csv_bytes(rows)


def jsonl_line(**overrides: Any) -> bytes:
    return jsonl_bytes([synthetic_row(0, **overrides)])


def jsonl_raw(fragment: str) -> bytes:
    """One JSON Lines row with `fragment` (raw JSON text) added as its last members."""
    row = json.dumps(synthetic_row(0), ensure_ascii=True)
    return (row[:-1] + ", " + fragment + "}\n").encode()


def parquet_column(column: str, values: pa.Array) -> bytes:
    rows = good_rows()
    table = pa.Table.from_pylist(rows)
    table = table.set_column(table.schema.get_field_index(column), column, values)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# (case, file name, content, expected (row, column, code) among the reported errors)
REFUSED: list[tuple[str, str, Callable[[], bytes], tuple[int | None, str | None, str]]] = [
    (
        "NUL byte in a CSV name",
        "f.csv",
        lambda: with_cell(0, "name_en", "Synthetic\x00factor"),
        (2, "name_en", "forbidden_character"),
    ),
    (
        "NUL escape in a JSON Lines name",
        "f.jsonl",
        lambda: jsonl_line(name_en="Synthetic\x00factor"),
        (1, "name_en", "forbidden_character"),
    ),
    (
        "lone surrogate in a JSON Lines name",
        "f.jsonl",
        lambda: jsonl_raw('"notes": "\\ud800"'),
        (1, "notes", "forbidden_character"),
    ),
    (
        "right-to-left override in a name",
        "f.csv",
        lambda: with_cell(1, "name_zh", "合成\u202evsc.exe"),
        (3, "name_zh", "forbidden_character"),
    ),
    (
        "zero-width space in a name",
        "f.csv",
        lambda: with_cell(0, "name_en", "Synthetic\u200bfactor"),
        (2, "name_en", "forbidden_character"),
    ),
    (
        "escape sequence in the notes",
        "f.csv",
        lambda: with_cell(0, "notes", "\x1b[31mred"),
        (2, "notes", "forbidden_character"),
    ),
    (
        "C1 control in the source title",
        "f.csv",
        lambda: with_cell(0, "source_title", "Synthetic\x85source"),
        (2, "source_title", "forbidden_character"),
    ),
    (
        "bidi isolate in a description",
        "f.csv",
        lambda: with_cell(2, "description", "\u2066synthetic\u2069"),
        (4, "description", "forbidden_character"),
    ),
    (
        "byte-order mark inside a category",
        "f.csv",
        lambda: with_cell(0, "category", "energy\ufeff/synthetic"),
        (2, "category", "forbidden_character"),
    ),
    (
        "tab in a unit",
        "f.csv",
        lambda: with_cell(0, "unit", "k\tg"),
        (2, "unit", "forbidden_character"),
    ),
    (
        "5 MB description",
        "f.jsonl",
        lambda: jsonl_line(description="x" * 5_000_000),
        (1, "description", "too_long"),
    ),
    (
        "5 MB cell in a CSV",
        "f.csv",
        lambda: with_cell(1, "description", "x" * 5_000_000),
        (3, None, "malformed_csv"),
    ),
    (
        "description one character over its limit",
        "f.csv",
        lambda: with_cell(0, "description", "é" * 4001),
        (2, "description", "too_long"),
    ),
    (
        "DOI longer than its column",
        "f.jsonl",
        lambda: jsonl_line(source_doi="10.1/" + "x" * 300),
        (1, "source_doi", "too_long"),
    ),
    (
        "JSON Lines nested 100,000 deep",
        "f.jsonl",
        lambda: jsonl_bytes(good_rows(1)) + b"[" * 100_000 + b"\n",
        (2, None, "invalid_json"),
    ),
    (
        "JSON Lines nested past the limit inside a row",
        "f.jsonl",
        lambda: jsonl_raw('"notes": ' + "[" * 40 + "]" * 40),
        (1, None, "invalid_json"),
    ),
    (
        "JSON Lines with a repeated key",
        "f.jsonl",
        lambda: jsonl_raw('"co2e": 0.5'),  # after the row's own co2e
        (1, None, "invalid_json"),
    ),
    (
        "JSON Lines boolean as a number",
        "f.jsonl",
        lambda: jsonl_line(co2e=True),
        (1, "co2e", "wrong_type"),
    ),
    (
        "JSON Lines string that parses as a number",
        "f.jsonl",
        lambda: jsonl_line(co2e="155.5"),
        (1, "co2e", "wrong_type"),
    ),
    (
        "JSON Lines year as a string",
        "f.jsonl",
        lambda: jsonl_line(reference_year="2023"),
        (1, "reference_year", "wrong_type"),
    ),
    (
        "JSON Lines boolean pedigree score",
        "f.jsonl",
        lambda: jsonl_line(dq_temporal=True),
        (1, "dq_temporal", "wrong_type"),
    ),
    (
        "JSON Lines number as a date",
        "f.jsonl",
        lambda: jsonl_line(valid_from=0),
        (1, "valid_from", "wrong_type"),
    ),
    (
        "Parquet numbers stored as strings",
        "f.parquet",
        lambda: parquet_column("co2e", pa.array(["155.5", "156.5", "157.5"])),
        (1, "co2e", "wrong_type"),
    ),
    (
        "Parquet booleans as years",
        "f.parquet",
        lambda: parquet_column("reference_year", pa.array([True, True, True])),
        (1, "reference_year", "wrong_type"),
    ),
]


@pytest.fixture
def writer(client: TestClient, tokens: TokenKit) -> dict[str, str]:
    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201
    return headers


def post(
    client: TestClient,
    headers: dict[str, str],
    name: str,
    content: bytes,
    data: dict[str, str] | None = None,
) -> Any:
    return client.post(
        VERSIONS,
        headers=headers,
        data={"version": "1.0.0", **(data or {})},
        files={"file": (name, content, "application/octet-stream")},
    )


@pytest.mark.parametrize(
    ("case", "file_name", "make", "expected"), REFUSED, ids=[case[0] for case in REFUSED]
)
def test_hostile_upload_is_refused_with_its_row_and_column(
    client: TestClient,
    db: Engine,
    writer: dict[str, str],
    case: str,
    file_name: str,
    make: Callable[[], bytes],
    expected: tuple[int | None, str | None, str],
) -> None:
    before = snapshot(db)
    response = post(client, writer, file_name, make())
    assert response.status_code == 422, response.text[:2000]
    assert response.headers["content-type"] == "application/problem+json"
    found = {(e["row"], e["column"], e["code"]) for e in response.json()["errors"]}
    assert expected in found, json.dumps(response.json()["errors"], ensure_ascii=False)[:2000]
    assert snapshot(db) == before


def test_release_notes_with_a_nul_are_refused(
    client: TestClient, db: Engine, writer: dict[str, str]
) -> None:
    before = snapshot(db)
    response = post(
        client, writer, "f.csv", csv_bytes(good_rows()), data={"release_notes": "a\x00b"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["release_notes"]
    assert snapshot(db) == before


def test_text_is_stored_in_nfc_and_line_breaks_are_allowed_in_notes(
    client: TestClient, db: Engine, writer: dict[str, str]
) -> None:
    rows = [{**r, "notes": "", "description": ""} for r in good_rows()]
    rows[0]["name_en"] = "Cafe\u0301 synthetic"  # e + combining acute: NFD
    rows[0]["notes"] = "first line\nsecond line\twith a tab"
    rows[1]["description"] = "é" * 4000  # exactly at the limit
    response = post(client, writer, "f.csv", csv_bytes(rows))
    assert response.status_code == 201, response.text
    with db.connect() as connection:
        stored = connection.execute(
            # A draft's rows: in factor_draft until its submit.
            text("SELECT name_en, notes FROM factor_draft WHERE factor_code = 'synthetic-00000'")
        ).one()
    assert stored.name_en == "Caf\u00e9 synthetic"
    assert stored.notes == "first line\nsecond line\twith a tab"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../../../x.csv", "x.csv"),
        ("C:\\Users\\someone\\factors.csv", "factors.csv"),
        ("<script>alert(1)</script>.csv", "script_.csv"),
        ("a\u202egpj.csv", "agpj.csv"),
        (".hidden.csv", "hidden.csv"),
        ("钢铁 因子 (v2).csv", "钢铁 因子 (v2).csv"),
    ],
)
def test_file_names_are_kept_as_a_sanitised_base_name(
    client: TestClient, db: Engine, writer: dict[str, str], sent: str, kept: str
) -> None:
    response = post(client, writer, sent, csv_bytes(good_rows()))
    assert response.status_code == 201, response.text
    assert response.json()["file_name"] == kept
    version = client.get(f"{VERSIONS}/1.0.0", headers=writer).json()
    assert version["file_name"] == kept
    with db.connect() as connection:
        payload = connection.execute(
            text("SELECT payload FROM audit_event WHERE action = 'version.uploaded'")
        ).scalar_one()
    payload = json.loads(payload) if isinstance(payload, str) else payload
    assert payload["file_name"] == kept
    sent_escaped = payload.get("file_name_sent")
    assert sent_escaped is None or (sent_escaped.isascii() and sent_escaped.isprintable())


def test_a_file_name_with_line_breaks_and_controls_never_reaches_a_header_or_the_database(
    client: TestClient, db: Engine, writer: dict[str, str]
) -> None:
    # Sent by hand: a client library would escape these bytes in the multipart header.
    boundary = "synthetic-boundary"
    name = b'a\tb\x1b\x00"; x=.csv'
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="version"\r\n\r\n1.0.0\r\n'
            f"--{boundary}\r\n"
        ).encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + name
        + b'"\r\nContent-Type: text/csv\r\n\r\n'
        + csv_bytes(good_rows())
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        VERSIONS,
        headers={**writer, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body,
    )
    assert response.status_code < 500, response.text
    if response.status_code == 201:
        kept = response.json()["file_name"]
        assert kept.isprintable(), kept
        assert '"' not in kept


def test_safe_file_name_and_content_disposition() -> None:
    assert safe_file_name("..\\..\\evil\r\n.csv") == "evil.csv"
    assert safe_file_name("x" * 500 + ".parquet") == "x" * 192 + ".parquet"
    assert safe_file_name("..") == "upload"
    assert safe_file_name(None) is None
    header = content_disposition("inline", 'a"b\r\nSet-Cookie: x.csv')
    assert "\r" not in header
    assert "\n" not in header
    assert header.startswith('inline; filename="a_b__Set-Cookie__x.csv"; filename*=UTF-8')
    assert content_disposition("inline", "efdb-search.csv") == 'inline; filename="efdb-search.csv"'


def test_json_bodies_with_a_nul_or_nested_too_deep_are_refused(
    client: TestClient, db: Engine, tokens: TokenKit
) -> None:
    headers = tokens.writer(PUBLISHER)
    before = snapshot(db)
    nul = client.post("/v1/datasets", json={**DATASET_BODY, "title_en": "a\x00b"}, headers=headers)
    assert nul.status_code == 422, nul.text
    deep = client.post(
        "/v1/datasets",
        content=b"[" * 100_000,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert deep.status_code == 422, deep.text
    assert "deep" in deep.json()["detail"]
    assert snapshot(db) == before


# --- every problem of a row (issue 13) ---------------------------------------------------------


def test_a_row_reports_every_problem_not_only_the_first(
    client: TestClient, db: Engine, writer: dict[str, str]
) -> None:
    before = snapshot(db)
    rows = [{**r, "dq_temporal": "", "uncertainty_low": ""} for r in good_rows()]
    rows[0]["dq_temporal"] = 7  # a bad quality score ...
    rows[0]["co2e"] = 500  # ... and a co2e that disagrees with its gases
    rows[1]["region"] = "China"  # a required field wrong ...
    rows[1]["co2e"] = 500  # ... does not hide the gas check
    rows[2]["name_en"] = "x\x00"  # a refused cell ...
    rows[2]["uncertainty_low"] = 1000  # ... does not hide the uncertainty check
    response = post(client, writer, "f.csv", csv_bytes(rows))
    assert response.status_code == 422
    found = {(e["row"], e["column"], e["code"]) for e in response.json()["errors"]}
    assert found == {
        (2, "co2e", "co2e_mismatch"),
        (2, "dq_temporal", "less_than_equal"),
        (3, "region", "string_pattern_mismatch"),
        (3, "co2e", "co2e_mismatch"),
        (4, "name_en", "forbidden_character"),
        (4, "uncertainty_low", "uncertainty_order"),
    }
    assert snapshot(db) == before


def codes(parsed: object) -> set[tuple[str | None, str]]:
    assert isinstance(parsed, list)
    return {(p.column, p.code) for p in parsed if isinstance(p, RowProblem)}


def test_cross_field_checks_skip_what_depends_on_a_failed_cell() -> None:
    row = {k: str(v) for k, v in synthetic_row(0).items()}
    # A gas that is not a number: no co2e mismatch invented from the gases left.
    assert codes(parse_record(2, {**row, "ch4": "x"})) == {("ch4", "float_parsing")}
    # A name refused: not also "give name_zh or name_en".
    assert codes(parse_record(2, {**row, "name_en": "\u202e", "name_zh": ""})) == {
        ("name_en", "forbidden_character")
    }
    # A region refused: not also "not in the location table".
    assert codes(parse_record(2, {**row, "region": "china"})) == {
        ("region", "string_pattern_mismatch")
    }


# --- formula text in every CSV the service writes ---------------------------------------------

FORMULAS = {
    "name_en": "=cmd|' /C calc'!A0",
    "name_zh": "\uff1d1+1",  # a full-width equals sign: a formula to spreadsheets in zh locales
    "notes": "  @SUM(1,2)",
}


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_formula_text_is_neutralised_in_every_csv_the_service_writes(
    client: TestClient, tokens: TokenKit, writer: dict[str, str]
) -> None:
    rows = [{**r, "notes": ""} for r in good_rows(2)]
    rows[0].update(FORMULAS)
    first = post(client, writer, "f.csv", csv_bytes(rows), data={"release_notes": "=1+2"})
    assert first.status_code == 201, first.text
    rows[1]["co2e"] = rows[1]["co2e"] + 0.0001
    second = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.1", "release_notes": "+ fix"},
        files={"file": ("f.csv", csv_bytes(rows), "text/csv")},
    )
    assert second.status_code == 201, second.text
    for version in ("1.0.0", "1.0.1"):
        assert client.post(f"{VERSIONS}/{version}/submit", headers=writer).status_code == 200
        published = publish(client, tokens.reviewer(), version)
        assert published.status_code == 200, published.text
    factor = f"{PUBLISHER}/steel-products/synthetic-00000"
    urls = [
        f"{VERSIONS}/1.0.0/export.csv",
        "/.csv",
        f"/factors/{factor}/history.csv",
        f"/datasets/{PUBLISHER}/steel-products/versions.csv",
        f"/datasets/{PUBLISHER}/steel-products/diff/1.0.0...1.0.1.csv",
        f"/compare.csv?f={factor}&f={PUBLISHER}/steel-products/synthetic-00001",
    ]
    seen: set[str] = set()
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.text[:500])
        cells = [c for row in csv.reader(io.StringIO(response.text)) for c in row]
        dangerous = [c for c in cells if looks_like_formula(c) and not is_number(c)]
        assert dangerous == [], url
        seen.update(cells)
    assert {"'" + text.strip() for text in FORMULAS.values()} | {"'=1+2", "'+ fix"} <= seen


def test_typed_cells_keep_their_types_and_a_midnight_timestamp_is_a_date() -> None:
    from datetime import datetime

    row = synthetic_row(0, valid_from=datetime(2023, 1, 1), reference_year=2023.0)
    parsed = parse_record(1, row, text_cells=False)
    assert not isinstance(parsed, list), parsed
    assert str(parsed.valid_from) == "2023-01-01"
    assert codes(
        parse_record(1, {**row, "valid_from": datetime(2023, 1, 1, 12)}, text_cells=False)
    ) == {("valid_from", "date_from_datetime_inexact")}
