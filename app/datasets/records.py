"""Reading factor records from an upload-format file, row by row, with precise problems."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from app.factors.schemas import FactorFields
from app.factors.validation import RecordReference, record_problems


@dataclass(frozen=True)
class RowProblem:
    row: int | None
    column: str | None
    code: str
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "column": self.column, "code": self.code, "detail": self.detail}


def parse_record(
    row: int, raw: Mapping[str, object], reference: RecordReference | None = None
) -> FactorFields | list[RowProblem]:
    """One record, or every problem found in it (column-level first, then cross-field).

    `reference` is the database's reference data (regions, GWP100); without it, the data as
    `seed_data/reference/` ships it."""
    # Empty cells are nulls; leaving them out lets a required column report "missing".
    values = {k: v for k, v in raw.items() if v is not None and v != ""}
    try:
        record = FactorFields.model_validate(values)
    except ValidationError as exc:
        return [
            RowProblem(
                row=row,
                column=str(err["loc"][0]) if err["loc"] else None,
                code=err["type"],
                detail=err["msg"],
            )
            for err in exc.errors()
        ]
    problems = [
        RowProblem(row, p.column, p.code, p.detail) for p in record_problems(record, reference)
    ]
    return problems or record


def read_csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, cells) with the header as row 1, as the validation report counts rows."""
    with path.open(newline="", encoding="utf-8") as handle:
        yield from enumerate(csv.DictReader(handle), start=2)
