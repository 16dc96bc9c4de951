"""Upload files (CSV, Parquet, JSON Lines) read as a stream of rows, never all at once.

Row numbers are what a publisher sees in their file: CSV counts the header as row 1, so the
first factor is row 2; JSON Lines counts lines from 1; Parquet counts data rows from 1.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from app.core.problem_text import Message
from app.core.strict_json import strict_loads
from app.factors.schemas import UPLOADABLE_FIELDS, FactorFields
from app.publishing.cells import TEXT_LIMITS
from app.publishing.labels import LABEL_COLUMNS
from app.publishing.records import RowProblem
from app.publishing.upload_limits import UploadLimits, UploadTooCostly, check_parquet_metadata

REQUIRED_COLUMNS = tuple(
    name for name, info in FactorFields.model_fields.items() if info.is_required()
)
# The factor fields, and the optional activity labels (app.publishing.labels).
KNOWN_COLUMNS = frozenset(UPLOADABLE_FIELDS) | frozenset(LABEL_COLUMNS)
PARQUET_MAGIC = b"PAR1"
_BATCH_ROWS = 4096


# A row's cells by column name, or the problem that kept the row from being read at all.
Row = dict[str, Any] | RowProblem


class UploadFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


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
}


def declared_format(file_name: str | None) -> UploadFormat:
    name = (file_name or "").lower()
    for extension, upload_format in _EXTENSIONS.items():
        if name.endswith(extension):
            return upload_format
    raise _file_problem(
        "unsupported_format",
        f"'{file_name}' is not a .csv, .parquet or .jsonl file (zip and Excel are not accepted)",
    )


def check_content(upload_format: UploadFormat, head: bytes) -> None:
    """Refuse a file whose bytes are not of the type its name declares."""
    if not head:
        raise _file_problem("empty_file", "the file is empty")
    is_parquet = head.startswith(PARQUET_MAGIC)
    if upload_format is UploadFormat.PARQUET and not is_parquet:
        raise _file_problem("not_parquet", "the file is named .parquet but is not a Parquet file")
    if upload_format is not UploadFormat.PARQUET and is_parquet:
        raise _file_problem(
            "format_mismatch", f"the file is named .{upload_format} but is a Parquet file"
        )
    if head.startswith((b"PK\x03\x04", b"\x1f\x8b")):
        raise _file_problem("compressed_file", "compressed files (zip, gzip) are not accepted")


def header_problems(columns: list[str]) -> list[RowProblem]:
    """Unknown, duplicated and missing columns, all listed at once."""
    problems: list[RowProblem] = []
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            problems.append(
                RowProblem(1, name, "duplicate_column", Message("column.duplicate", column=name))
            )
        seen.add(name)
        if name not in KNOWN_COLUMNS:
            problems.append(
                RowProblem(1, name, "unknown_column", Message("column.unknown", column=name))
            )
    for name in REQUIRED_COLUMNS:
        if name not in seen:
            problems.append(
                RowProblem(1, name, "missing_column", Message("column.missing", column=name))
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
    return _csv_rows(stream, has_bom=head.startswith(codecs.BOM_UTF8))


def _utf8_lines(stream: IO[bytes]) -> Iterator[str]:
    """Decode line by line, so that a bad byte is reported on the line it is on."""
    for number, raw in enumerate(stream, start=1):
        line = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
        try:
            yield line.decode("utf-8")
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
    columns = [name.strip() for name in header]
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
                yield row_number, dict(zip(columns, cells, strict=True))
        except csv.Error as exc:
            raise _file_problem("malformed_csv", _csv_reason(exc), row=row_number + 1) from exc

    return RowStream(rows(), header_problems(columns), warnings)


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
