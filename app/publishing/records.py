"""Reading factor records from an upload-format file, row by row, with precise problems."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from app.core.errors import pydantic_message
from app.factors.schemas import FactorFields
from app.factors.validation import RecordReference, record_problems
from app.publishing.cells import check_cells


@dataclass(frozen=True)
class RowProblem:
    row: int | None
    column: str | None
    code: str
    detail: str
    # The sheet of a workbook the row is on (an XLSX upload, or a publisher's own file read by
    # an importer, app.importers), and for the latter the upload-format field the publisher's
    # `column` was mapped to.
    sheet: str | None = None
    field: str | None = None
    # In an openLCA JSON-LD zip (source format `olca-jsonld`): the process `@id` and the
    # exchange's `internalId` (the row is the process's position among the zip's processes).
    process: str | None = None
    exchange: int | None = None

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {
            "row": self.row,
            "column": self.column,
            "code": self.code,
            "detail": self.detail,
        }
        if self.sheet is not None:
            found["sheet"] = self.sheet
        if self.field is not None:
            found["field"] = self.field
        if self.process is not None:
            found["process"] = self.process
        if self.exchange is not None:
            found["exchange"] = self.exchange
        return found


# What each cross-field check reads: it is skipped when one of these failed its own check.
_GAS_FIELDS = frozenset({"co2e", "co2", "ch4", "n2o", "other_ghg_co2e", "gwp_set"})
_CROSS_FIELD_INPUTS: dict[str, frozenset[str]] = {
    "unknown_region": frozenset({"region"}),
    "missing_name": frozenset({"name_zh", "name_en"}),
    "invalid_window": frozenset({"valid_from", "valid_to"}),
    "uncertainty_order": frozenset({"co2e", "uncertainty_low", "uncertainty_high"}),
    "missing_gwp_set": _GAS_FIELDS,
    "co2_exceeds_co2e": _GAS_FIELDS,
    "unknown_gwp_set": _GAS_FIELDS,
    "co2e_mismatch": _GAS_FIELDS,
}
# Stand-ins for required fields that failed, so that the cross-field checks of the other
# fields still run (every check that reads a stand-in is skipped).
_STAND_INS: dict[str, object] = {
    "factor_code": "x",
    "activity_id": "x",
    "region": "GLO",
    "reference_year": 2000,
    "unit": "kg",
    "co2e": 0.0,
    "boundary": "combustion",
    "source_title": "x",
}
_FIELD_ORDER = {name: index for index, name in enumerate(FactorFields.model_fields)}


def parse_record(
    row: int,
    raw: Mapping[str, object],
    reference: RecordReference | None = None,
    *,
    text_cells: bool = True,
) -> FactorFields | list[RowProblem]:
    """One record, or every problem found in it: each cell's own problem (kind, characters,
    length, schema), then the cross-field checks of the cells that passed their own.

    `reference` is the database's reference data (regions, GWP100); without it, the data as
    `seed_data/reference/` ships it. `text_cells`: every cell is text (CSV); otherwise numbers
    must be numbers (Parquet, JSON Lines)."""
    # Empty cells are nulls; leaving them out lets a required column report "missing".
    values, cell_problems = check_cells(raw, text_cells=text_cells)
    problems = [
        RowProblem(row, column, code, detail) for column, (code, detail) in cell_problems.items()
    ]
    failed = set(cell_problems)
    record: FactorFields | None = None
    try:
        record = FactorFields.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors():
            column = str(err["loc"][0]) if err["loc"] else None
            if column in cell_problems:
                continue  # refused before the schema saw it: reported once
            problems.append(RowProblem(row, column, err["type"], pydantic_message(err)))
            if column is not None:
                failed.add(column)
    if record is None and failed:
        record = _without(values, failed)
    if record is not None:
        problems.extend(
            RowProblem(row, p.column, p.code, p.detail)
            for p in record_problems(record, reference)
            if not (_CROSS_FIELD_INPUTS.get(p.code, frozenset({p.column})) & failed)
        )
    if not problems and record is not None:
        return record
    problems.sort(key=lambda p: _FIELD_ORDER.get(p.column or "", len(_FIELD_ORDER)))
    return problems


def _without(values: Mapping[str, object], failed: set[str]) -> FactorFields | None:
    """The record without its failed fields (required ones stood in for), or None."""
    kept = {k: v for k, v in values.items() if k not in failed}
    kept.update({k: v for k, v in _STAND_INS.items() if k in failed})
    try:
        return FactorFields.model_validate(kept)
    except ValidationError:
        return None


def read_csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, cells) with the header as row 1, as the validation report counts rows."""
    with path.open(newline="", encoding="utf-8") as handle:
        yield from enumerate(csv.DictReader(handle), start=2)
