"""The chunked fast path of a CSV upload (app.publishing.batch_records) against the row-by-row
path it stands in for: random valid and hostile rows give the same records, the same stored
values and the same report, row for row; with the other per-row shortcuts of the upload (its
UTF-8 decoding by blocks, its UUID4s). Every row here is synthetic."""

from __future__ import annotations

import codecs
import csv
import io
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

from app.factors.schemas import UPLOADABLE_FIELDS, FactorFields, FactorValues
from app.factors.validation import shipped_record_reference
from app.publishing import batch_records, drafts, upload_formats
from app.publishing.batch_records import fast_records
from app.publishing.cells import FIELD_KINDS, Kind
from app.publishing.labels import LabelCollector
from app.publishing.publish import uuid4_hexes
from app.publishing.records import parse_record
from app.publishing.upload_formats import (
    REQUIRED_COLUMNS,
    UploadFileError,
    UploadFormat,
    read_rows,
)
from app.reference.gwp import co2e_from_gases

LABELS = ("activity_name_zh", "activity_name_en", "activity_keywords")
# Cells that some field refuses, or that the cell checks refuse or change, or that a schema
# reads in a way worth comparing (whitespace, odd numbers, dates, literals, units, URLs).
HOSTILE = [
    "",
    " ",
    " x",
    "x ",
    "\u3000CN",
    "AR5\u00a0",
    "e\u0301",  # NFD: NFC changes it
    "\u212b",  # Angstrom sign: NFC gives Å
    "合成 e\u0301",
    "\x00",
    "\x7f",
    "\u200b",
    "\u202e",
    "\u3164",
    "\ufeff",
    "a\tb",
    "a\nb",
    "a\r\nb",
    "\u2028",
    "x" * 33,
    "x" * 65,
    "x" * 129,
    "x" * 256,
    "e\u0301" * 300,  # 600 characters sent, 300 once NFC
    "é" * 501,
    "1_000",
    " 1.5",
    "1.5 ",
    "1e400",
    "-1e400",
    "1e-400",
    "nan",
    "inf",
    "-inf",
    "-0",
    "-0.0",
    "0",
    "+1",
    ".5",
    "5.",
    "0x10",
    "1,5",
    "١٢٣",
    "1E3",
    "00012",
    "-3.5",
    "0.95",
    "1",
    "2020.0",
    "2020.5",
    "02020",
    "1899",
    "2101",
    "3",
    "6",
    "5.0",
    "true",
    "2020-02-30",
    "2020-1-1",
    "20200101",
    "2020-01-01T00:00:00",
    "2021-06-01",
    "2019-01-01",
    "1700000000",
    "AR5",
    "ar5",
    "AR7",
    "lognormal",
    "Lognormal",
    "confidence_interval",
    "min_max",
    "fossil",
    "combustion",
    "kWh",
    "kwh",
    "t*km",
    "m³",
    "GJ/t",
    "CN",
    "cn",
    "CN-GD",
    "XX",
    "CN-XX-YY",
    "https://example.org/a",
    "ftp://example.org",
    "javascript:alert(1)",
    "http://",
    "a b",
    "a/b",
    "中文",
    "=1+1",
    "+A1",
    "@SUM(1)",
]


def _valid_row(rng: random.Random, index: int) -> dict[str, str]:
    co2 = round(rng.lognormvariate(0.0, 1.5), 6)
    ch4 = round(co2 * rng.uniform(1e-4, 1e-2), 9)
    n2o = round(co2 * rng.uniform(1e-5, 1e-3), 9)
    gwp_set = rng.choice(["AR4", "AR5", "AR6"])
    co2e = round(co2e_from_gases(gwp_set, co2=co2, ch4=ch4, n2o=n2o, other=None), 9)
    return {
        "factor_code": f"syn-{index:06d}",
        "activity_id": rng.choice(["synthetic-coal", "synthetic-grid", "synthetic-steel"]),
        "name_zh": rng.choice([f"合成因子 {index}", ""]),
        "name_en": f"Synthetic factor {index}",
        "description": rng.choice(["Synthetic.", "Synthetic\nline two", ""]),
        "category": "synthetic/energy",
        "product_code_scheme": rng.choice(["", "HS2022"]),
        "product_code": rng.choice(["", "7208"]),
        "region": rng.choice(["CN", "CN-GD", "GLO", "DE-BY"]),
        "reference_year": str(rng.randint(2000, 2024)),
        "valid_from": rng.choice(["", "2020-01-01"]),
        "valid_to": rng.choice(["", "2020-12-31"]),
        "unit": rng.choice(["kWh", "t", "t*km", "m3", "GJ"]),
        "co2e": repr(co2e),
        "co2": repr(co2),
        "ch4": repr(ch4),
        "n2o": repr(n2o),
        "other_ghg_co2e": "",
        "biogenic_co2": rng.choice(["", "0", "0.5"]),
        "ch4_origin": rng.choice(["", "fossil", "non_fossil"]),
        "gwp_set": gwp_set,
        "boundary": rng.choice(["cradle-to-gate", "combustion"]),
        "method": "synthetic",
        "uncertainty_low": repr(round(co2e * 0.9, 9)),
        "uncertainty_high": repr(round(co2e * 1.1, 9)),
        "uncertainty_distribution": "lognormal",
        "uncertainty_kind": "",
        "uncertainty_confidence_level": "",
        **{f"dq_{name}": str(rng.randint(1, 5)) for name in _PEDIGREE},
        "source_title": rng.choice(["Synthetic source A", "Synthetic source B"]),
        "source_publisher": "efdb tests",
        "source_year": rng.choice(["", "2021"]),
        "source_url": rng.choice(["", "https://example.org/synthetic"]),
        "source_doi": "",
        "source_locator": f"row {index}",
        "notes": rng.choice(["", "Synthetic note\twith a tab"]),
    }


_PEDIGREE = ("reliability", "completeness", "temporal", "geographical", "technological")


def _chunks(seed: int, count: int, columns: list[str]) -> Iterator[list[tuple[bool, list[str]]]]:
    """Chunks of 1-8 rows, (unchanged, cells) each: valid rows, and in most chunks one row
    with 1-2 hostile cells (alone, so that the checks over the whole chunk decide)."""
    rng = random.Random(seed)
    index = 0
    while index < count:
        chunk: list[tuple[bool, list[str]]] = []
        hostile_at = rng.randrange(-2, 8)
        for offset in range(rng.randint(1, 8)):
            row = _valid_row(rng, index)
            index += 1
            if offset == hostile_at:
                for column in rng.sample(columns, rng.randint(1, 2)):
                    row[column] = rng.choice(HOSTILE)
            chunk.append((offset != hostile_at, [row.get(column, "") for column in columns]))
        yield chunk


def _values(record: FactorValues) -> list[tuple[type, object]]:
    # Types too: 1 == 1.0 == True would hide a float stored as an int; and a float's repr, as
    # -0.0 == 0.0 would hide a sign the content hash prints.
    return [
        (type(value), repr(value) if isinstance(value, float) else value)
        for value in (getattr(record, name) for name in UPLOADABLE_FIELDS)
    ]


@pytest.mark.parametrize(
    ("seed", "columns"),
    [
        (1, list(UPLOADABLE_FIELDS)),
        (2, list(reversed(UPLOADABLE_FIELDS))),
        (3, [c for c in UPLOADABLE_FIELDS if not c.startswith(("dq_", "valid_"))]),
    ],
)
def test_fast_records_are_the_records_of_parse_record(seed: int, columns: list[str]) -> None:
    reference = shipped_record_reference()
    fast_hits = row_number = 0
    for chunk in _chunks(seed, 3000, columns):
        found = fast_records(tuple(columns), [cells for _, cells in chunk], reference)
        for (unchanged, cells), record in zip(chunk, found, strict=True):
            row_number += 1
            expected = parse_record(row_number, dict(zip(columns, cells, strict=True)))
            if unchanged:
                # Every valid row of the generator takes the fast path.
                assert record is not None, (cells, expected)
            if record is not None:
                fast_hits += 1
                assert isinstance(expected, FactorFields), (cells, expected)
                assert _values(record) == _values(expected)
    assert fast_hits >= 2000


# Number cells at the edges of what the float fields accept (the fast path checks them with
# pydantic-core's own constraints instead of the schema's Python validators).
NUMBER_EDGES = [
    "-0",
    "-0.0",
    " -0 ",
    "0",
    "-1",
    "-3.5",
    "-1e-400",
    "1e-400",
    "1e400",
    "-1e400",
    "inf",
    "-inf",
    "nan",
    "NaN",
    "Infinity",
    "1e308",
    "5e-324",
    "-5e-324",
    "2.5",
]
FLOAT_FIELDS = [name for name, kind in FIELD_KINDS.items() if kind is Kind.NUMBER]


@pytest.mark.parametrize("field", FLOAT_FIELDS)
def test_number_edges_come_fast_only_as_parse_record_reads_them(field: str) -> None:
    """Each float field alone at an edge, in a row with nothing else to refuse (co2e 0, no
    gases, no interval): the fast path gives parse_record's very value (the sign of a zero
    too) or leaves the row to it, and never lets through a row it refuses."""
    columns = list(UPLOADABLE_FIELDS)
    base = {
        **_valid_row(random.Random(11), 0),
        **dict.fromkeys(FLOAT_FIELDS, ""),
        "co2e": "0",
        "uncertainty_distribution": "",
        "uncertainty_kind": "",
    }
    rows = [[{**base, field: text}.get(c, "") for c in columns] for text in NUMBER_EDGES]
    found = fast_records(tuple(columns), rows, shipped_record_reference())
    compared_zeros = 0
    for text, cells, record in zip(NUMBER_EDGES, rows, found, strict=True):
        expected = parse_record(2, dict(zip(columns, cells, strict=True)))
        if isinstance(expected, list):
            assert record is None, (field, text, expected)
            continue
        if record is not None:
            assert _values(record) == _values(expected), (field, text)
            compared_zeros += text.strip().startswith("-0")
    # A confidence level is above 0: the one field where no zero is valid.
    if field != "uncertainty_confidence_level":
        assert compared_zeros, f"no signed zero of {field} came fast: the test checks nothing"


@pytest.mark.parametrize("missing", REQUIRED_COLUMNS)
def test_a_header_without_a_required_column_takes_the_row_by_row_path(missing: str) -> None:
    """The row-by-row path reports the missing field on every row; no record comes fast."""
    columns = [c for c in UPLOADABLE_FIELDS if c != missing]
    rng = random.Random(7)
    rows = [[_valid_row(rng, index).get(c, "") for c in columns] for index in range(5)]
    assert fast_records(tuple(columns), rows, shipped_record_reference()) == [None] * 5


def _csv(rows: list[list[str]], columns: list[str], tail: str = "") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return (buffer.getvalue() + tail).encode()


def _upload(content: bytes, max_rows: int) -> tuple[list[tuple[int, str]], dict[str, Any], str]:
    """The records `_valid_records` yields (dumped), its report, and the file error if any."""
    rows = read_rows(UploadFormat.CSV, io.BytesIO(content))
    report = drafts.UploadReport()
    labels = LabelCollector(
        publisher="synthetic",
        reference_ids=frozenset({"synthetic-grid"}),
        labelled_ids=frozenset({"synthetic-grid"}),
    )
    stored: list[tuple[int, str]] = []
    failure = ""
    try:
        for row_number, record in drafts._valid_records(
            rows, report, max_rows, shipped_record_reference(), labels, text_cells=True
        ):
            stored.append((row_number, repr(_values(record))))
    except UploadFileError as exc:
        failure = repr([p.as_dict() for p in exc.problems])
    report.activity_labels = labels.report()
    return stored, report.as_dict(), failure


@pytest.mark.parametrize(
    ("seed", "hostile_share", "max_rows", "tail"),
    [
        (10, 0.0, 10_000, ""),  # all valid: everything stored
        (11, 0.0, 10_000, '\n\nsyn-x,"unclosed\n'),  # rows, then a malformed CSV line
        (12, 0.02, 10_000, ""),  # a few bad rows: the report lists them
        (13, 0.5, 10_000, ""),
        (14, 0.0, 700, ""),  # more rows than allowed
    ],
)
def test_upload_report_and_stored_rows_unchanged(
    seed: int, hostile_share: float, max_rows: int, tail: str
) -> None:
    rng = random.Random(seed)
    columns = [*UPLOADABLE_FIELDS, *LABELS]
    rows: list[list[str]] = []
    for index in range(1100):
        row = _valid_row(rng, index)
        if row["activity_id"] == "synthetic-steel" and rng.random() < 0.5:
            row.update(dict(zip(LABELS, ["合成钢", "Synthetic steel", "steel;钢"], strict=True)))
        if rng.random() < hostile_share:
            for column in rng.sample(columns, rng.randint(1, 3)):
                row[column] = rng.choice([*HOSTILE, "syn-000001"])
        cells = [row.get(column, "") for column in columns]
        if rng.random() < hostile_share / 4:
            cells = cells[:-2]  # a wrong cell count
        rows.append(cells)
        if rng.random() < 0.01:
            rows.append([])  # a blank line
    content = _csv(rows, columns, tail)
    chunked = _upload(content, max_rows)
    with mock.patch.object(
        batch_records, "fast_records", lambda columns, rows, reference: [None] * len(rows)
    ):
        row_by_row = _upload(content, max_rows)
    assert chunked == row_by_row
    stored, report, failure = chunked
    if hostile_share == 0 and max_rows > len(rows) and not tail:
        assert len(stored) == 1100
        assert not report["errors"]
    assert bool(failure) == bool(tail)


def _lines_one_by_one(stream: io.BytesIO) -> Iterator[str]:
    """What `_utf8_lines` did before it decoded blocks: each line on its own."""
    for number, raw in enumerate(stream, start=1):
        line = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise upload_formats._file_problem(
                "not_utf8",
                f"line {number} is not UTF-8 ({exc.reason} at byte {exc.start + 1}); "
                "save the file as UTF-8",
                row=number,
            ) from exc


def _lines(read: Callable[[io.BytesIO], Iterator[str]], content: bytes) -> list[object]:
    found: list[object] = []
    try:
        found.extend(read(io.BytesIO(content)))
    except UploadFileError as exc:
        found.append([p.as_dict() for p in exc.problems])
    return found


@pytest.mark.parametrize("block_bytes", [7, 64, 1 << 20])
def test_utf8_lines_decoded_in_blocks_as_line_by_line(block_bytes: int) -> None:
    pieces = [b"a", b"\n", b"\r", b"\r\n", "合".encode(), b"\xff", b"\xe5\x90", b",", b'"']
    pieces += [codecs.BOM_UTF8, b"x" * 50, "\u2028".encode(), b"\x85", b"\x0b"]
    rng = random.Random(block_bytes)
    with mock.patch.object(upload_formats, "_BLOCK_BYTES", block_bytes):
        for _ in range(1500):
            content = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
            if rng.random() < 0.3:
                content = codecs.BOM_UTF8 + content
            assert _lines(upload_formats._utf8_lines, content) == _lines(
                _lines_one_by_one, content
            ), content


def test_uuid4_hexes_are_distinct_uuid4s() -> None:
    uids = uuid4_hexes(batch=64)
    found = [next(uids) for _ in range(5000)]  # several batches
    assert len(set(found)) == len(found)
    for uid in found:
        parsed = uuid.UUID(hex=uid)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, uid)
