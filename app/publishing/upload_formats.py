"""Upload files (CSV, Parquet, JSON Lines, XLSX) read as a stream of rows.

Row numbers are what a publisher sees in their file: CSV counts the header as row 1, so the
first factor is row 2; JSON Lines counts lines from 1; Parquet counts data rows from 1; XLSX
rows are numbered as the spreadsheet shows them (the header is usually row 1), on the sheet
named `factors` or else the first sheet, and the report names that sheet.

CSV, Parquet and JSON Lines are never held whole. An XLSX sheet is (calamine reads a sheet at
once): `app.publishing.upload_xlsx` bounds its size, rows and cells before it is read.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from python_calamine import CalamineError, CalamineWorkbook

from app.core.problem_text import Message
from app.core.strict_json import strict_loads
from app.factors.schemas import UPLOADABLE_FIELDS, FactorFields
from app.publishing.cells import FIELD_KINDS, TEXT_LIMITS, Kind
from app.publishing.labels import LABEL_COLUMNS
from app.publishing.records import RowProblem
from app.publishing.upload_limits import UploadLimits, UploadTooCostly, check_parquet_metadata
from app.publishing.upload_xlsx import NotAWorkbook, column_letters, scan_workbook

REQUIRED_COLUMNS = tuple(
    name for name, info in FactorFields.model_fields.items() if info.is_required()
)
# The factor fields, and the optional activity labels (app.publishing.labels).
KNOWN_COLUMNS = frozenset(UPLOADABLE_FIELDS) | frozenset(LABEL_COLUMNS)
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
_BATCH_ROWS = 4096


# A row's cells by column name, or the problem that kept the row from being read at all; a
# CSV file's rows are lists of cells in the header's order (`RowStream.columns`).
Row = dict[str, Any] | list[str] | RowProblem


class UploadFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"
    XLSX = "xlsx"


class UploadFileError(Exception):
    """The file as a whole cannot be read: no row-level report is possible past this point."""

    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__(problems[0].detail if problems else "unreadable file")
        self.problems = problems


def _file_problem(code: str, detail: str, row: int | None = None) -> UploadFileError:
    return UploadFileError([RowProblem(row=row, column=None, code=code, detail=detail)])


_EXTENSIONS = {
    ".csv": UploadFormat.CSV,
    ".parquet": UploadFormat.PARQUET,
    ".pq": UploadFormat.PARQUET,
    ".jsonl": UploadFormat.JSONL,
    ".ndjson": UploadFormat.JSONL,
    ".xlsx": UploadFormat.XLSX,
}


def declared_format(file_name: str | None) -> UploadFormat:
    name = (file_name or "").lower()
    for extension, upload_format in _EXTENSIONS.items():
        if name.endswith(extension):
            return upload_format
    raise _file_problem(
        "unsupported_format",
        f"'{file_name}' is not a .csv, .parquet, .jsonl or .xlsx file (zip, .xls and .xlsm "
        "are not accepted)",
    )


def check_content(upload_format: UploadFormat, head: bytes) -> None:
    """Refuse a file whose bytes are not of the type its name declares."""
    if not head:
        raise _file_problem("empty_file", "the file is empty")
    is_parquet = head.startswith(PARQUET_MAGIC)
    if upload_format is UploadFormat.XLSX:
        if not head.startswith(ZIP_MAGIC):
            raise _file_problem("not_xlsx", "the file is named .xlsx but is not an XLSX workbook")
        return
    if upload_format is UploadFormat.PARQUET and not is_parquet:
        raise _file_problem("not_parquet", "the file is named .parquet but is not a Parquet file")
    if upload_format is not UploadFormat.PARQUET and is_parquet:
        raise _file_problem(
            "format_mismatch", f"the file is named .{upload_format} but is a Parquet file"
        )
    if head.startswith((b"PK\x03\x04", b"\x1f\x8b")):
        raise _file_problem("compressed_file", "compressed files (zip, gzip) are not accepted")


def header_problems(columns: Sequence[str], row: int = 1) -> list[RowProblem]:
    """Unknown, duplicated and missing columns, all listed at once (`row`: the header's)."""
    problems: list[RowProblem] = []
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            problems.append(
                RowProblem(row, name, "duplicate_column", Message("column.duplicate", column=name))
            )
        seen.add(name)
        if name not in KNOWN_COLUMNS:
            problems.append(
                RowProblem(row, name, "unknown_column", Message("column.unknown", column=name))
            )
    for name in REQUIRED_COLUMNS:
        if name not in seen:
            problems.append(
                RowProblem(row, name, "missing_column", Message("column.missing", column=name))
            )
    return problems


@dataclass
class RowStream:
    """Rows of one upload, plus what was noticed about the file while reading it."""

    rows: Iterator[tuple[int, Row]]
    header_problems: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    # Where a row's problem is in the file as its publisher sees it: the identity for the
    # upload format, the publisher's sheet, row and column for an importer's rows.
    locate: Callable[[RowProblem], RowProblem] = lambda problem: problem
    # The sheet read, for a workbook: every problem with a row is on it.
    sheet: str | None = None
    # Warnings found while the rows are read (reported once they all are).
    late_warnings: list[RowProblem] = field(default_factory=list)
    # A CSV file's header: each row is then the list of its cells in this order, as the CSV
    # reader gives it (a dict by column name is built only for a row that needs one).
    columns: tuple[str, ...] | None = None


def read_rows(
    upload_format: UploadFormat, stream: IO[bytes], *, limits: UploadLimits | None = None
) -> RowStream:
    head = stream.read(8)
    stream.seek(0)
    check_content(upload_format, head)
    if upload_format is UploadFormat.PARQUET:
        return _parquet_rows(stream, limits or UploadLimits())
    if upload_format is UploadFormat.JSONL:
        return RowStream(_jsonl_rows(stream))
    if upload_format is UploadFormat.XLSX:
        return _xlsx_rows(stream, limits or UploadLimits())
    return _csv_rows(stream, has_bom=head.startswith(codecs.BOM_UTF8))


_BLOCK_BYTES = 1 << 20


def _utf8_lines(stream: IO[bytes]) -> Iterator[str]:
    """Decode line by line (lines end at `\n` only), so that a bad byte is reported on the
    line it is on; a block of whole lines is decoded at once, and only a block that is not
    UTF-8 is decoded again line by line to find where."""
    number = 0  # lines before the block
    pending: list[bytes] = []  # the start of a line that goes on in the next block
    while True:
        read = stream.read(_BLOCK_BYTES)
        if read:
            end = read.rfind(b"\n") + 1
            if not end:
                pending.append(read)
                continue
            block = b"".join([*pending, read[:end]])
            pending = [read[end:]]
        else:
            block = b"".join(pending)
            if not block:
                return
        if not number and block.startswith(codecs.BOM_UTF8):
            block = block[len(codecs.BOM_UTF8) :]
            if not block:
                yield ""  # a file of a BOM alone: one empty line
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            yield from _utf8_lines_one_by_one(block, number)
        else:
            yield from io.StringIO(text, newline="\n")
        if not read:
            return
        number += block.count(b"\n")


def _utf8_lines_one_by_one(block: bytes, before: int) -> Iterator[str]:
    for number, raw in enumerate(io.BytesIO(block), start=before + 1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _file_problem(
                "not_utf8",
                f"line {number} is not UTF-8 ({exc.reason} at byte {exc.start + 1}); "
                "save the file as UTF-8",
                row=number,
            ) from exc


def _csv_rows(stream: IO[bytes], *, has_bom: bool) -> RowStream:
    reader = csv.reader(_utf8_lines(stream), strict=True)
    try:
        header = next(reader)
    except StopIteration as exc:
        raise _file_problem("empty_file", "the file has no header row") from exc
    except csv.Error as exc:
        raise _file_problem("malformed_csv", _csv_reason(exc), row=1) from exc
    columns = tuple(name.strip() for name in header)
    warnings = []
    if has_bom:
        warnings.append(RowProblem(1, None, "utf8_bom", Message("warning.utf8_bom")))

    def rows() -> Iterator[tuple[int, Row]]:
        row_number = 1
        try:
            for row_number, cells in enumerate(reader, start=2):
                if len(cells) != len(columns):
                    if not any(cell.strip() for cell in cells):
                        continue  # a blank line
                    yield (
                        row_number,
                        RowProblem(
                            row_number,
                            None,
                            "wrong_cell_count",
                            Message("row.cell_count", cells=len(cells), columns=len(columns)),
                        ),
                    )
                    continue
                yield row_number, cells
        except csv.Error as exc:
            raise _file_problem("malformed_csv", _csv_reason(exc), row=row_number + 1) from exc

    return RowStream(rows(), header_problems(columns), warnings, columns=columns)


def _csv_reason(exc: csv.Error) -> str:
    if "field limit" in str(exc):
        longest = max(TEXT_LIMITS.values())
        return (
            f"a cell is longer than {csv.field_size_limit():,} characters (no field allows "
            f"more than {longest:,}); the rest of the file cannot be read"
        )
    return str(exc)


def _jsonl_rows(stream: IO[bytes]) -> Iterator[tuple[int, Row]]:
    for line_number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            # The same strictness as JSON request bodies: no NaN, no repeated key, bounded depth.
            value = strict_loads(line)
        except ValueError as exc:  # UnicodeDecodeError is one too
            yield line_number, RowProblem(line_number, None, "invalid_json", str(exc))
            continue
        if not isinstance(value, dict):
            yield (
                line_number,
                RowProblem(line_number, None, "invalid_json", "each line must be a JSON object"),
            )
            continue
        yield line_number, value


def _parquet_rows(stream: IO[bytes], limits: UploadLimits) -> RowStream:
    try:
        parquet = pq.ParquetFile(stream)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _file_problem("malformed_parquet", f"the Parquet file cannot be read: {exc}") from exc
    try:
        check_parquet_metadata(parquet.metadata, limits)
    except UploadTooCostly as exc:
        raise UploadFileError([exc.problem]) from exc
    columns = list(parquet.schema_arrow.names)

    def rows() -> Iterator[tuple[int, Row]]:
        row_number = 0
        try:
            for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
                for record in batch.to_pylist():
                    row_number += 1
                    yield row_number, record
        except (pa.ArrowInvalid, OSError) as exc:
            raise _file_problem(
                "malformed_parquet",
                f"the Parquet file is damaged after row {row_number}: {exc}",
                row=row_number + 1,
            ) from exc

    return RowStream(rows(), header_problems(columns))


# --------------------------------------------------------------------------- XLSX

# A decimal number written as text (Excel's "number stored as text"): no NaN, no infinity, no
# thousands separators, no `_`.
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _number_text(value: float) -> str:
    """A number in a text column as the spreadsheet shows it: 7208, not 7208.0."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def xlsx_cell(kind: Kind | None, value: Any) -> tuple[Any, tuple[str, Message] | None]:
    """One spreadsheet cell as an upload value for a field of this kind, and the warning
    (code, detail) its conversion calls for.

    Deliberate conversions, each with a warning once per column: a number in a text column
    (a code or locator Excel turned into a number) becomes its text; a number stored as text
    in a numeric column becomes the number. A date in a date column is the date (a date at
    midnight; a time of day is refused by the field). Everything else is passed as it is, for
    the cell checks to refuse with the row and column: a boolean, a date in a number column, a
    number in a date column (a date serial without a date format), an error value (`#N/A`).
    """
    if value == "":
        return None, None
    if isinstance(value, bool):
        return value, None
    if isinstance(value, int | float):
        number = float(value)
        if kind is Kind.INTEGER:
            return (int(number) if number.is_integer() else number), None
        if kind in (Kind.NUMBER, Kind.DATE):
            return number, None
        text = _number_text(number)
        return text, ("number_as_text", Message("warning.xlsx_number_as_text", text=text))
    if isinstance(value, dt.datetime):
        if kind is Kind.DATE and value.time() == dt.time(0):
            return value.date(), None
        return value, None
    if isinstance(value, str) and kind in (Kind.NUMBER, Kind.INTEGER):
        stripped = value.strip()
        if _NUMBER_TEXT.fullmatch(stripped):
            number = float(stripped)
            converted = int(number) if kind is Kind.INTEGER and number.is_integer() else number
            return converted, (
                "number_stored_as_text",
                Message("warning.xlsx_number_stored_as_text"),
            )
    return value, None


def _xlsx_rows(stream: IO[bytes], limits: UploadLimits) -> RowStream:
    try:
        scan = scan_workbook(stream, limits)
    except UploadTooCostly as exc:
        raise UploadFileError([exc.problem]) from exc
    except NotAWorkbook as exc:
        raise _file_problem("malformed_xlsx", f"the XLSX workbook cannot be read: {exc}") from exc
    try:
        workbook = CalamineWorkbook.from_filelike(stream)
        sheet = workbook.get_sheet_by_name(scan.name)
    except (CalamineError, OSError, ValueError) as exc:
        raise _file_problem("malformed_xlsx", f"the XLSX workbook cannot be read: {exc}") from exc
    # iter_rows() gives every row from the sheet's first (row 1, so a row's number is its
    # position), each from the first used column (`start`) on.
    _, first_column = sheet.start or (0, 0)
    cells = enumerate(sheet.iter_rows(), start=1)
    header_row, header_cells = next(
        ((number, row) for number, row in cells if any(cell != "" for cell in row)), (0, [])
    )
    if not header_row:
        raise UploadFileError(
            [RowProblem(None, None, "empty_file", f"the sheet '{scan.name}' has no header row")]
        )
    names = [str(cell).strip() if cell != "" else "" for cell in header_cells]
    while names and names[-1] == "":
        names.pop()  # formatted but empty columns at the right
    if scan.formulas:
        raise UploadFileError(
            [
                RowProblem(
                    row,
                    _column_name(names, index - first_column),
                    "formula_cell",
                    Message(
                        "cell.xlsx_formula",
                        cell=f"{column_letters(index) if index >= 0 else '?'}{row}",
                    ),
                    sheet=scan.name,
                )
                for row, index in scan.formulas[:100]
            ]
        )
    sheet_read = RowProblem(
        None,
        None,
        "xlsx_sheet",
        Message("warning.xlsx_sheet_read", sheet=scan.name),
        sheet=scan.name,
    )
    warnings: list[RowProblem] = []
    warned: set[tuple[str, str]] = set()

    def rows() -> Iterator[tuple[int, Row]]:
        for row_number, values in cells:
            if not any(value != "" for value in values):
                continue  # an empty row (between rows, or formatting left below the data)
            record: dict[str, Any] = {}
            extra = values[len(names) :]
            if any(value != "" for value in extra):
                yield (
                    row_number,
                    RowProblem(
                        row_number,
                        None,
                        "cell_without_column",
                        Message(
                            "row.xlsx_cell_without_column",
                            cell=f"{column_letters(first_column + len(names))}{row_number}",
                        ),
                    ),
                )
                continue
            for name, value in zip(names, values, strict=False):
                record[name], warning = xlsx_cell(FIELD_KINDS.get(name), value)
                if warning is not None and (warning[0], name) not in warned:
                    warned.add((warning[0], name))
                    warnings.append(RowProblem(row_number, name, *warning))
            yield row_number, record

    return RowStream(
        rows(),
        header_problems(names, header_row),
        [sheet_read],
        sheet=scan.name,
        late_warnings=warnings,
    )


def _column_name(names: list[str], index: int) -> str | None:
    return names[index] if 0 <= index < len(names) and names[index] else None
