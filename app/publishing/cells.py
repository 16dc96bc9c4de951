"""The cells of an upload row, checked the same way whatever the file's format.

Before a row reaches the factor schema, every cell is checked for its kind and, if it is text,
normalised to NFC, refused if it holds a control or invisible character, and refused if longer
than its field's documented maximum. A CSV cell is always text (the schema parses numbers from
it); in Parquet and JSON Lines a number must be a number: a boolean or a string that happens to
parse is refused.
"""

from __future__ import annotations

import datetime as dt
import operator
import types
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Union, get_args, get_origin

from app.core.problem_text import Message
from app.core.text import INVISIBLE_LETTERS, forbidden_character, forbidden_pattern, nfc
from app.factors.schemas import FactorFields


class Kind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    INTEGER = "integer"
    DATE = "date"


# The maximum length, in characters after NFC normalisation, of every text field. The upload
# template and the README list them; the database columns are at least this wide.
TEXT_LIMITS: dict[str, int] = {
    "factor_code": 128,
    "activity_id": 128,
    "name_zh": 500,
    "name_en": 500,
    "description": 4000,
    "category": 255,
    "product_code_scheme": 64,
    "product_code": 64,
    "region": 32,
    "unit": 32,
    "ch4_origin": 16,
    "gwp_set": 8,
    "boundary": 32,
    "method": 255,
    "uncertainty_distribution": 16,
    "uncertainty_kind": 24,
    "source_title": 1000,
    "source_publisher": 500,
    "source_url": 2000,
    "source_doi": 255,
    "source_locator": 500,
    "notes": 4000,
}
# Fields whose text may span lines (tabs and line breaks allowed).
MULTILINE_FIELDS = frozenset({"description", "notes"})
# Dates in a CSV or JSON Lines file are ISO 8601 text; a date cell is never longer than this.
MAX_DATE_TEXT = 32


def _kind(annotation: Any) -> Kind:
    """The kind of a schema field, from its annotation (Optional and Annotated unwrapped)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kind(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        (inner,) = [a for a in get_args(annotation) if a is not type(None)]
        return _kind(inner)
    if annotation is float:
        return Kind.NUMBER
    if annotation is int:
        return Kind.INTEGER
    if annotation is dt.date:
        return Kind.DATE
    return Kind.TEXT


FIELD_KINDS: dict[str, Kind] = {
    name: _kind(info.annotation) for name, info in FactorFields.model_fields.items()
}


def _type_problem(kind: Kind, value: Any) -> str | None:
    """Why a typed (Parquet or JSON) value cannot be a cell of this kind, or None."""
    what = "a boolean" if isinstance(value, bool) else f"{type(value).__name__} {value!r:.40}"
    if kind in (Kind.NUMBER, Kind.INTEGER):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            return Message("cell.not_number", what=what)
    elif kind is Kind.DATE:
        # A Parquet timestamp at midnight is a date (the schema refuses any other time).
        if not isinstance(value, dt.date | str):
            return Message("cell.not_date", what=what)
    elif not isinstance(value, str):
        return Message("cell.not_text", what=what)
    return None


# The longest text a known column's cell may hold (numbers and dates: MAX_DATE_TEXT).
CELL_LIMITS: dict[str, int] = {name: TEXT_LIMITS.get(name, MAX_DATE_TEXT) for name in FIELD_KINDS}


@dataclass(frozen=True)
class _RowPlan:
    """What `plain_text_cells` needs of one header (one upload's rows all share it): each
    column's limit, and where its single-line and multi-line cells are."""

    columns: tuple[str, ...]
    limits: tuple[int, ...]
    single_line: Callable[[list[str]], tuple[str, ...]]
    multiline: tuple[int, ...]


_NO_PLAN = _RowPlan((), (), operator.itemgetter(0), ())
_PLANS: dict[tuple[str, ...], _RowPlan | None] = {}
_MAX_PLANS = 64
_non_empty = operator.itemgetter(1)


def _row_plan(columns: tuple[str, ...]) -> _RowPlan | None:
    """The plan of a header, or None when the row is better checked cell by cell (a column
    the schema does not know: the header's own error; fewer than two single-line columns)."""
    plan = _PLANS.get(columns, _NO_PLAN)
    if plan is not _NO_PLAN:
        return plan
    single = [i for i, column in enumerate(columns) if column not in MULTILINE_FIELDS]
    plan = None
    if len(single) >= 2 and all(column in CELL_LIMITS for column in columns):
        plan = _RowPlan(
            columns,
            tuple(CELL_LIMITS[column] for column in columns),
            operator.itemgetter(*single),
            tuple(i for i, column in enumerate(columns) if column in MULTILINE_FIELDS),
        )
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[columns] = plan
    return plan


def plain_text_cells(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """The values `check_cells` gives a row of text cells that all pass, found with a few
    checks over the whole row instead of several per cell; None when any cell may have a
    problem (or is not text), for `check_cells` to look at each cell.

    Most rows of a large upload are such rows, so the checks per cell are what an upload of a
    million rows spends its time on: here each check runs over the whole row at C speed (the
    kinds, the lengths, ASCII), one scan finds no forbidden character in any single-line
    cell, and only the cells that are not ASCII are brought to NFC (ASCII is its own normal
    form)."""
    columns = tuple(raw)
    plan = _row_plan(columns)
    if plan is None:
        return _plain_text_cells_one_by_one(raw)
    cells = list(raw.values())
    if set(map(type, cells)) != {str} or not all(map(operator.le, map(len, cells), plan.limits)):
        return None
    text = " ".join(plan.single_line(cells))
    if not text.isascii() or not all(map(str.isascii, cells)):
        # A space between cells composes with nothing: the row is NFC if its joined text is.
        if not unicodedata.is_normalized("NFC", " ".join(cells)):
            for i, value in enumerate(cells):
                if not value.isascii():
                    value = cells[i] = nfc(value)
                    if len(value) > plan.limits[i]:
                        return None
            text = " ".join(plan.single_line(cells))
        if not surely_visible(text) and forbidden_pattern(multiline=False).search(text):
            return None
    elif not text.isprintable():
        # In ASCII, the forbidden characters are the controls.
        return None
    if plan.multiline:
        refused = forbidden_pattern(multiline=True)
        if any(
            not surely_visible(cells[i]) and refused.search(cells[i]) is not None
            for i in plan.multiline
        ):
            return None
    # Empty cells are nulls: left out.
    return dict(filter(_non_empty, zip(columns, cells, strict=True)))


def surely_visible(text: str) -> bool:
    """No character of `text` is refused, found faster than `forbidden_pattern` finds it (a
    large character class) when true: every refused category (Cc, Cf, Cs, Zl, Zp) is one
    `str.isprintable` refuses, and the invisible letters are few. False says nothing: the
    pattern decides (it allows what `isprintable` does not, e.g. U+3000 and line breaks)."""
    return text.isprintable() and not any(letter in text for letter in INVISIBLE_LETTERS)


def _plain_text_cells_one_by_one(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """`plain_text_cells` for a row without a plan, cell by cell."""
    values: dict[str, Any] = {}
    single_line: list[str] = []
    multiline: list[str] = []
    for column, value in raw.items():
        if value is None or value == "":
            continue
        limit = CELL_LIMITS.get(column)
        if limit is None:  # a column the schema names as unknown
            values[column] = value
            continue
        if value.__class__ is not str or len(value) > limit:
            return None
        (multiline if column in MULTILINE_FIELDS else single_line).append(column)
        values[column] = value
    for column in (*single_line, *multiline):
        value = values[column]
        if not value.isascii():
            value = values[column] = nfc(value)
            if len(value) > CELL_LIMITS[column]:
                return None
    text = " ".join([values[column] for column in single_line])
    if not text.isascii():
        if forbidden_pattern(multiline=False).search(text):
            return None
    elif not text.isprintable():  # in ASCII, the forbidden characters are the controls
        return None
    refused = forbidden_pattern(multiline=True)
    if any(refused.search(values[column]) for column in multiline):
        return None
    return values


def check_cells(
    raw: Mapping[str, Any], *, text_cells: bool
) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """The row's non-empty cells, text normalised, and the problem of each refused cell
    (column → (code, detail)). Columns the schema does not know are passed on for it to name.

    `text_cells`: every cell is text (CSV), so numbers and dates are parsed by the schema."""
    if text_cells:
        plain = plain_text_cells(raw)
        if plain is not None:
            return plain, {}
    values: dict[str, Any] = {}
    problems: dict[str, tuple[str, str]] = {}
    for column, value in raw.items():
        if value is None or value == "":  # an empty cell is a null
            continue
        kind = FIELD_KINDS.get(column)
        if kind is None:
            values[column] = value
            continue
        if not text_cells:
            reason = _type_problem(kind, value)
            if reason is not None:
                problems[column] = ("wrong_type", reason)
                continue
        if isinstance(value, str):
            limit = TEXT_LIMITS.get(column, MAX_DATE_TEXT)
            if len(value) > limit * 4:  # too long whatever its normal form: no need to look
                problems[column] = (
                    "too_long",
                    Message("cell.too_long", length=len(value), limit=limit),
                )
                continue
            value = nfc(value)
            found = forbidden_character(value, multiline=column in MULTILINE_FIELDS)
            if found is not None:
                problems[column] = ("forbidden_character", Message("cell.forbidden", found=found))
                continue
            if len(value.strip()) > limit:
                problems[column] = (
                    "too_long",
                    Message("cell.too_long", length=len(value.strip()), limit=limit),
                )
                continue
        values[column] = value
    return values, problems
