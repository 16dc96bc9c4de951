"""Fuzzing the upload endpoint (issue 23): whatever the bytes, never a 5xx; a refusal names a
row or the file and stores nothing.

Hypothesis generates rows (good cells mixed with hostile ones: control and invisible
characters, huge text, booleans and strings where numbers go, nested values) and encodes
them in each format, and it generates raw bytes and damaged copies of good files. Every row is
synthetic (tests/upload_files.py). `max_examples` is kept small so that this runs in seconds.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.core.text import forbidden_character
from app.publishing.cells import MULTILINE_FIELDS, TEXT_LIMITS
from tests.auth_fixtures import TokenKit
from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
from tests.test_upload_validation import snapshot
from tests.upload_files import csv_bytes, jsonl_bytes, parquet_bytes, synthetic_row

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)

hostile_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\x00", "\u202e", "\u200b", "\ufeff", "\x1b[0m", "\ud800", "=cmd|'/C'!A0"]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=4001, max_size=4100),
)
hostile_value = st.one_of(
    hostile_text,
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
COLUMNS = list(synthetic_row(0))
SOURCE_COLUMNS = ("source_title", "source_publisher", "source_url", "source_doi")


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few synthetic rows, some cells replaced by hostile values (and maybe a stray column)."""
    count = draw(st.integers(min_value=1, max_value=3))
    result = []
    for index in range(count):
        row = synthetic_row(index)
        for column in draw(st.lists(st.sampled_from([*COLUMNS, "stray"]), max_size=3)):
            row[column] = draw(hostile_value)
        result.append(row)
    columns = sorted({c for row in result for c in row}, key=lambda c: (c not in COLUMNS, c))
    return [{c: row.get(c) for c in columns} for row in result]


def encode(file_format: str, table: list[dict[str, Any]]) -> bytes:
    if file_format == "jsonl":
        # Python's json writes NaN and lone surrogates; the server must refuse both cleanly.
        return "".join(json.dumps(row) + "\n" for row in table).encode()
    if file_format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else str(v) for k, v in row.items()} for row in table)
        return buffer.getvalue().encode("utf-8", errors="surrogatepass")
    columns: dict[str, pa.Array] = {}
    for name in table[0]:
        values = [row[name] for row in table]
        try:
            if any(isinstance(v, dict) for v in values):
                raise TypeError("an empty struct cannot be written to Parquet")
            columns[name] = pa.array(values)
        except (pa.ArrowException, OverflowError, TypeError, UnicodeEncodeError):
            # Mixed, struct or not UTF-8: the column as text (repr escapes lone surrogates).
            columns[name] = pa.array([None if v is None else repr(v) for v in values])
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def good_file(file_format: str) -> bytes:
    table = [synthetic_row(i) for i in range(3)]
    encoders = {"csv": csv_bytes, "jsonl": jsonl_bytes, "parquet": parquet_bytes}
    return encoders[file_format](table)


@st.composite
def damaged(draw: st.DrawFn, file_format: str) -> bytes:
    """A good file cut short, with bytes overwritten, or with random bytes appended."""
    content = bytearray(good_file(file_format))
    how = draw(st.sampled_from(["cut", "flip", "append"]))
    if how == "cut":
        return bytes(content[: draw(st.integers(0, len(content) - 1))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            content[draw(st.integers(0, len(content) - 1))] = draw(st.integers(0, 255))
        return bytes(content)
    return bytes(content) + draw(st.binary(min_size=1, max_size=64))


@pytest.fixture
def upload_to(client: TestClient, tokens: TokenKit, db: Engine) -> Any:
    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201

    def check(file_name: str, content: bytes) -> None:
        before = snapshot(db)
        response = client.post(
            VERSIONS,
            headers=headers,
            data={"version": "1.0.0"},
            files={"file": (file_name, content, "application/octet-stream")},
        )
        assert response.status_code < 500, response.text[:1000]
        assert response.status_code in (200, 201, 413, 422), response.text[:1000]
        if response.status_code == 422:
            body = response.json()
            assert response.headers["content-type"] == "application/problem+json"
            assert body["file"] == file_name
            assert body["errors"], body
            for error in body["errors"]:
                # A row number, or a problem of the file as a whole (row null, column null or
                # a header column), always with a detail.
                assert set(error) == {"row", "column", "code", "detail"}, error
                assert error["row"] is None or error["row"] >= 1, error
                assert error["detail"], error
            assert snapshot(db) == before
        else:
            assert_stored_text_is_safe(db)

    return check


def assert_stored_text_is_safe(db: Engine) -> None:
    """What an accepted upload stored: NFC text without control or invisible characters,
    within each field's limit, and numbers in the number columns."""
    text_columns = [c for c in TEXT_LIMITS if c == "source_locator" or not c.startswith("source")]
    sources = ", ".join(f"source.{c.removeprefix('source_')} AS {c}" for c in SOURCE_COLUMNS)
    with db.connect() as connection:
        for row in connection.execute(
            text(
                f"SELECT {', '.join(text_columns)}, {sources}, co2e, reference_year "
                "FROM factor JOIN source ON source.id = factor.source_id"
            )
        ).mappings():
            for column in [*text_columns, *SOURCE_COLUMNS]:
                value = row[column]
                if value is None:
                    continue
                assert value == unicodedata.normalize("NFC", value), (column, value)
                multiline = column in MULTILINE_FIELDS
                assert forbidden_character(value, multiline=multiline) is None, (column, value)
                assert len(value) <= TEXT_LIMITS[column], column
            assert isinstance(row["co2e"], float), row
            assert isinstance(row["reference_year"], int), row


@pytest.mark.parametrize("file_format", ["csv", "jsonl", "parquet"])
def test_generated_rows_never_give_a_server_error(upload_to: Any, file_format: str) -> None:
    @FUZZ
    @given(table=rows())
    @example(table=[synthetic_row(0, name_en="Synthetic\x00factor")])
    @example(table=[synthetic_row(0, name_zh="\u202egnp.exe", notes="x" * 5000)])
    @example(table=[synthetic_row(0, co2e=True, reference_year="2023")])
    def run(table: list[dict[str, Any]]) -> None:
        upload_to(f"fuzz.{file_format}", encode(file_format, table))

    run()


@pytest.mark.parametrize("file_format", ["csv", "jsonl", "parquet"])
def test_damaged_and_random_bytes_never_give_a_server_error(
    upload_to: Any, file_format: str
) -> None:
    @FUZZ
    @given(content=st.one_of(damaged(file_format), st.binary(max_size=256)))
    def run(content: bytes) -> None:
        upload_to(f"fuzz.{file_format}", content)

    run()
