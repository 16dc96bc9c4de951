"""A publisher's own file, read by an importer (app.importers), as a stream of upload rows.

The rows then go through the same checks as any upload; what this module adds is the way
back: a problem found in a field is reported at the publisher's sheet, row and column (in an
openLCA zip: process and exchange) it was read from (`RowStream.locate`), and the rows the
importer left out are warnings."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import IO

from app.core.problem_text import Message
from app.importers import (
    IMPORTERS,
    GwpChoice,
    ImportedRow,
    Importer,
    ImportFileError,
    SourceCell,
)
from app.publishing.records import RowProblem
from app.publishing.upload_formats import Row, RowStream, UploadFileError
from app.publishing.upload_limits import UploadLimits


def source_importer(source_format: str) -> Importer | None:
    return IMPORTERS.get(source_format)


def source_format_names() -> list[str]:
    return sorted(IMPORTERS)


def _problem(cell: SourceCell | None, code: str, detail: str) -> RowProblem:
    if cell is None:
        return RowProblem(None, None, code, detail)
    return RowProblem(
        cell.row,
        cell.column,
        code,
        detail,
        sheet=cell.sheet,
        process=cell.process,
        exchange=cell.exchange,
    )


def _check_unpacked_size(data: bytes, limits: UploadLimits) -> None:
    if not data.startswith(b"PK\x03\x04"):
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except zipfile.BadZipFile:
        return  # the importer says what is wrong with it
    if unpacked > limits.max_decoded_bytes:
        mib = 1024 * 1024
        raise UploadFileError(
            [
                RowProblem(
                    None,
                    None,
                    "uncompressed_too_large",
                    f"the file (a zip) unpacks to about {unpacked / mib:.0f} MB; an upload may "
                    f"decode to at most {limits.max_decoded_bytes / mib:.0f} MB",
                )
            ]
        )


def read_source_rows(
    importer: Importer,
    file_name: str | None,
    stream: IO[bytes],
    *,
    through_year: int | None = None,
    gwp: GwpChoice | None = None,
    limits: UploadLimits | None = None,
) -> RowStream:
    """The importer's rows, numbered by the publisher's own rows; raises UploadFileError when
    the file is not of this source format, or when a workbook (.xlsx, a zip) would unpack to
    more than `limits.max_decoded_bytes` (judged from its directory before anything is
    unpacked)."""
    name = (file_name or "").lower()
    if not name.endswith(importer.extensions):
        raise UploadFileError(
            [
                RowProblem(
                    None,
                    None,
                    "unsupported_format",
                    Message(
                        "upload.source_format_extension",
                        file=file_name or "",
                        source_format=importer.name,
                        extensions=", ".join(importer.extensions),
                    ),
                )
            ]
        )
    data = stream.read()
    stream.seek(0)
    _check_unpacked_size(data, limits or UploadLimits())
    try:
        items = list(importer.read(data, through_year=through_year, gwp=gwp))
    except ImportFileError as exc:
        raise UploadFileError([_problem(exc.cell, exc.code, exc.detail)]) from exc
    found: dict[int, ImportedRow] = {}
    warnings = [
        _problem(item.cell, item.code, item.detail)
        for item in items
        if not isinstance(item, ImportedRow)
    ]

    def rows() -> Iterator[tuple[int, Row]]:
        for item in items:
            if isinstance(item, ImportedRow):
                found[item.row] = item
                if item.problem is not None:
                    column, code, detail = item.problem
                    yield item.row, RowProblem(item.row, column, code, detail)
                else:
                    yield item.row, dict(item.values)

    def locate(problem: RowProblem) -> RowProblem:
        item = found.get(problem.row) if problem.row is not None else None
        if item is None:
            return problem
        cell = item.cell(problem.column)
        return RowProblem(
            cell.row,
            cell.column,
            problem.code,
            problem.detail,
            sheet=cell.sheet,
            field=problem.column,
            process=cell.process,
            exchange=cell.exchange,
        )

    return RowStream(rows(), [], warnings, locate=locate)
