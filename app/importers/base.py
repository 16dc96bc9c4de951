"""What every importer gives the upload path: rows in the upload format, each with the place
in the publisher's file (sheet, row, column; or, in an openLCA zip, process and exchange) that
every one of its fields was read from."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from python_calamine import CalamineError, CalamineWorkbook

from app.core.problem_text import Message
from app.reference.gwp import GwpTable


@dataclass(frozen=True)
class SourceCell:
    """A place in the publisher's file: sheet (None for a CSV), 1-based row, column header.

    In an openLCA JSON-LD zip the "row" is the process's position among the zip's processes,
    `process` its `@id`, `exchange` the `internalId` of the exchange read (None for a field
    of the process itself), and `column` the JSON-LD property (`location`, `amount`, …)."""

    sheet: str | None
    row: int
    column: str | None
    process: str | None = None
    exchange: int | None = None


@dataclass
class ImportedRow:
    """One factor in the upload format (`values`, by field name), read from the publisher's
    file at `row` (the row stored as the factor's upload row), and where each field came from
    (`cells`; a field not listed came from `row` as a whole)."""

    row: int
    values: dict[str, Any]
    sheet: str | None = None
    cells: dict[str, SourceCell] = field(default_factory=dict)
    process: str | None = None
    # A problem that keeps the row from being a factor at all (field, code, detail): an error
    # at that field's place, the row's values unchecked.
    problem: tuple[str | None, str, str] | None = None

    def cell(self, name: str | None) -> SourceCell:
        if name is not None and name in self.cells:
            return self.cells[name]
        return SourceCell(self.sheet, self.row, None, process=self.process)


@dataclass(frozen=True)
class SkippedRow:
    """A row of the publisher's file that the importer leaves out, and why (a warning in the
    upload report: the publisher sees what was not imported)."""

    cell: SourceCell
    code: str
    detail: str


class ImportFileError(Exception):
    """The publisher's file cannot be read as this source format at all."""

    def __init__(self, code: str, detail: str, cell: SourceCell | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.cell = cell


@dataclass(frozen=True)
class GwpChoice:
    """The GWP100 set an importer computes CO2e with (`--gwp-set`), and the reference table
    (the database's `gwp_value`) it takes the values from."""

    gwp_set: str
    table: GwpTable


class Importer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def extensions(self) -> tuple[str, ...]: ...

    def read(
        self, data: bytes, *, through_year: int | None = None, gwp: GwpChoice | None = None
    ) -> Iterator[ImportedRow | SkippedRow]:
        """Every factor of the file (up to data year `through_year` where the file holds
        several years; CO2e computed in `gwp` where the file gives only gases), or the rows
        left out. Raises ImportFileError for an unreadable file."""
        ...


def slug(text: str) -> str:
    """Lower-case ASCII words joined by hyphens ("Gaseous fuels" → "gaseous-fuels")."""
    text = text.replace("&", " and ").replace("+", " plus ").replace("%", " percent ")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def refuse_through_year(source_format: str, through_year: int | None) -> None:
    """`through_year` means something only for a file holding several data years (MEE's)."""
    if through_year is not None:
        raise ImportFileError(
            "not_applicable",
            Message("importer.through_year_not_applicable", source_format=source_format),
        )


def refuse_gwp(source_format: str, gwp: GwpChoice | None) -> None:
    """A GWP set means something only for a file that gives gases without their CO2e."""
    if gwp is not None:
        raise ImportFileError(
            "not_applicable",
            Message("importer.gwp_set_not_applicable", source_format=source_format),
        )


def read_sheet(data: bytes, sheet: str) -> list[list[Any]]:
    """Every row of one sheet of a publisher's workbook (.xls or .xlsx), empty cells kept, so
    that row numbers are the ones the publisher sees."""
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        rows: list[list[Any]] = workbook.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
    except (CalamineError, ValueError, KeyError, OSError) as exc:
        raise ImportFileError(
            "unreadable_workbook",
            Message("importer.unreadable_workbook", sheet=sheet, reason=str(exc)),
        ) from exc
    return rows
