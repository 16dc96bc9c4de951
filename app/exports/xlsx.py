"""The XLSX export of a Parquet export file, for spreadsheet users (Excel, WPS, LibreOffice).

A workbook of two kinds of sheet:
- ``factors``: the export schema's columns (``app.exports.schema``), one row per factor, in the
  Parquet file's order. Numbers are numbers, `valid_from`/`valid_to` are dates,
  `published_at` is ISO 8601 text in UTC (a spreadsheet date has no time zone). An export
  larger than a sheet holds (Excel: 1,048,576 rows) continues on ``factors 2``, ``factors 3``…,
  each with the header row.
- ``read me``: what the workbook holds (each dataset version with its content hash, row
  count, licence and attribution), how to verify it, and the column list.

Written by XlsxWriter in constant-memory mode: rows go to disk as they are written, so memory
holds one Parquet batch whatever the export's size. Both XlsxWriter and openpyxl write numbers
with 16 significant digits, which changes some doubles (0.1 + 0.2 is written 0.3); the
factors sheet writes each number in its shortest round-trip form instead (17 digits where
needed; Excel and every reader parse it to the same double), so that the workbook's values
are the published ones and a version's content hash can be recomputed from it.

Text is written as text cells, never as formulas, so a cell starting with `=` is shown as
written (no apostrophe is added, unlike the CSV). An empty cell is a null: a workbook cannot
tell an empty text from an empty cell, and uploads store an empty cell as null anyway.
The file is deterministic for a given Parquet file (its creation time is the release's
publication or the snapshot's creation; XlsxWriter fixes the zip entries' timestamps).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from xlsxwriter import Workbook
from xlsxwriter.worksheet import Worksheet

from app.exports.schema import COLUMN_NAMES, COLUMNS
from app.exports.writer import WrittenFile, atomic_path, parquet_batches, written

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_TEXT = 32_767
FACTORS_SHEET = "factors"
README_SHEET = "read me"
XLSX_BATCH_ROWS = 8_192
DATE_FORMAT = "yyyy-mm-dd"


class ExactNumberSheet(Worksheet):  # type: ignore[misc]
    """A worksheet that writes numbers in their shortest round-trip form (`repr`), not the
    16 significant digits XlsxWriter writes by default (which changes some doubles)."""

    def _xml_number_element(self, number: float, attributes: Any = ()) -> None:
        attr = "".join(f' {key}="{self._escape_attributes(value)}"' for key, value in attributes)
        if isinstance(number, float) and number.is_integer() and abs(number) < 1e16:
            text = str(int(number))
        else:
            text = repr(float(number))
        self.fh.write(f"<c{attr}><v>{text}</v></c>")


def _sheet_name(index: int) -> str:
    return FACTORS_SHEET if index == 0 else f"{FACTORS_SHEET} {index + 1}"


def _text(value: str, where: str) -> str:
    if len(value) > EXCEL_MAX_TEXT:  # no factor field is this long; an attribution might be
        raise ValueError(f"{where}: text longer than a spreadsheet cell holds ({EXCEL_MAX_TEXT})")
    return value


def _metadata(source: Path) -> dict[str, str]:
    raw = pq.read_schema(source).metadata or {}
    return {key.decode(): value.decode() for key, value in raw.items()}


def _created_at(metadata: dict[str, str], versions: list[dict[str, Any]]) -> datetime:
    """The workbook's creation time: the snapshot's, or the latest publication's (so that the
    same export always gives the same bytes)."""
    if "efdb:created_at" in metadata:
        moment = datetime.fromisoformat(metadata["efdb:created_at"])
    elif versions:
        moment = max(datetime.fromisoformat(v["published_at"]) for v in versions)
    else:
        moment = datetime(2000, 1, 1, tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def readme_rows(metadata: dict[str, str], sheets: list[str]) -> list[list[Any]]:
    """The rows of the read-me sheet, from the Parquet file's key-value metadata."""
    versions: list[dict[str, Any]] = json.loads(metadata.get("efdb:dataset_versions", "[]"))
    fields: list[str] = json.loads(metadata.get("efdb:content_hash_fields", "[]"))
    snapshot = metadata.get("efdb:snapshot_id")
    what = (
        f"efdb national snapshot {snapshot}"
        if snapshot
        else "efdb export of "
        + ", ".join(f"{v['publisher']}/{v['dataset']}@{v['version']}" for v in versions)
    )
    rows: list[list[Any]] = [
        [what],
        [],
        ["Sheets", ", ".join(sheets) + f" (the factors, one row each); {README_SHEET} (this)"],
        ["Export schema version", int(metadata.get("efdb:schema_version", "0"))],
        [
            "Numbers",
            "kg CO2e (or kg of the gas) per the row's declared unit; written exactly as "
            "published (shortest round-trip form). An empty cell is a null.",
        ],
        ["Dates", "valid_from and valid_to are dates; published_at is ISO 8601 text in UTC."],
        [],
        ["Dataset versions (licence, attribution and content hash of each)"],
        [
            "publisher",
            "dataset",
            "version",
            "published_at",
            "row_count",
            "content_sha256",
            "license_id",
            "license_url",
            "attribution",
            "redistribution",
            "commercial_use",
        ],
    ]
    for v in versions:
        rows.append(
            [
                v["publisher"],
                v["dataset"],
                v["version"],
                v["published_at"],
                v["row_count"],
                v["content_sha256"],
                v["license_id"],
                v.get("license_url") or "",
                v["attribution"],
                "yes" if v.get("redistribution") else "no",
                "yes" if v.get("commercial_use") else "no",
            ]
        )
    rows += [
        [],
        ["How to verify"],
        [
            "1. This file",
            "Its sha256 is the ETag it was served with (and, in a snapshot, the sha256 of "
            "factors.xlsx in manifest.json, which manifest.json.jws signs).",
        ],
        [
            "2. Content hash",
            "Recompute each version's content_sha256 from the factors sheet: "
            + metadata.get("efdb:content_hash_recipe", ""),
        ],
        ["Hashed columns", ", ".join(fields)],
        [
            "Integer columns",
            ", ".join(c.name for c in COLUMNS if c.name in fields and pa.types.is_integer(c.type)),
        ],
        [
            "Date columns",
            ", ".join(c.name for c in COLUMNS if c.name in fields and pa.types.is_date(c.type)),
        ],
        [
            "3. Signature",
            "Each version's signed release statement (JWS, ES256) carries its content_sha256: "
            "GET /v1/datasets/{publisher}/{dataset}/versions/{version}/release.jws, checked "
            "with `efdb verify release.jws --jwks jwks.json` (the keys at "
            "/.well-known/jwks.json).",
        ],
    ]
    statement = metadata.get("efdb:release_statement")
    if statement:
        rows.append(["Release statement", statement])
    rows += [
        [],
        ["Columns"],
        ["name", "type", "unit", "description"],
        *([c.name, str(c.type), c.unit or "", c.description] for c in COLUMNS),
    ]
    return rows


def _cell_writer(column_type: pa.DataType) -> str:
    if pa.types.is_integer(column_type) or pa.types.is_floating(column_type):
        return "number"
    if pa.types.is_date(column_type):
        return "date"
    if pa.types.is_timestamp(column_type):
        return "timestamp"
    return "string"


def write_xlsx(target: Path, source: Path, *, max_sheet_rows: int = EXCEL_MAX_ROWS) -> WrittenFile:
    """The workbook of a Parquet export (factors sheets, then the read-me sheet)."""
    metadata = _metadata(source)
    versions: list[dict[str, Any]] = json.loads(metadata.get("efdb:dataset_versions", "[]"))
    schema = pq.read_schema(source)
    if tuple(schema.names) != COLUMN_NAMES:
        raise ValueError(f"{source}: not a file in the current export schema")
    kinds = [_cell_writer(COLUMNS[i].type) for i in range(len(COLUMNS))]
    data_rows = max_sheet_rows - 1  # below the header row
    with atomic_path(target) as temporary:
        workbook = Workbook(
            str(temporary),
            {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False},
        )
        workbook.set_properties(
            {
                "title": "efdb emission factors",
                "comments": "Licence and attribution: see the 'read me' sheet.",
                "created": _created_at(metadata, versions),
            }
        )
        bold = workbook.add_format({"bold": True})
        date_format = workbook.add_format({"num_format": DATE_FORMAT})
        sheets: list[str] = []
        sheet: Worksheet | None = None
        row = 0

        def new_sheet() -> Worksheet:
            name = _sheet_name(len(sheets))
            sheets.append(name)
            added: Worksheet = workbook.add_worksheet(name, worksheet_class=ExactNumberSheet)
            added.freeze_panes(1, 0)
            added.write_row(0, 0, COLUMN_NAMES, bold)
            return added

        sheet = new_sheet()
        for batch in parquet_batches(source, XLSX_BATCH_ROWS):
            columns = [column.to_pylist() for column in batch.columns]
            for values in zip(*columns, strict=True):
                if row == data_rows:
                    sheet = new_sheet()
                    row = 0
                row += 1
                for col, (kind, value) in enumerate(zip(kinds, values, strict=True)):
                    if value is None or value == "":
                        continue
                    if kind == "number":
                        sheet.write_number(row, col, value)
                    elif kind == "date":
                        assert isinstance(value, date)
                        sheet.write_datetime(row, col, value, date_format)
                    elif kind == "timestamp":
                        assert isinstance(value, datetime)
                        text = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
                        sheet.write_string(row, col, text)
                    else:
                        sheet.write_string(row, col, _text(value, COLUMN_NAMES[col]))
        readme: Worksheet = workbook.add_worksheet(README_SHEET)
        readme.set_column(0, 0, 24)
        readme.set_column(1, 1, 60)
        for number, cells in enumerate(readme_rows(metadata, sheets)):
            for col, value in enumerate(cells):
                if isinstance(value, int):
                    readme.write_number(number, col, value)
                else:
                    text = _text(str(value), README_SHEET)
                    if text:
                        readme.write_string(number, col, text, bold if col == 0 else None)
        workbook.close()
    return written(target)
