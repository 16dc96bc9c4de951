"""The whole-row check of a CSV row's cells gives what the cell-by-cell check gives."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.publishing import cells
from app.publishing.cells import check_cells

COLUMNS = ("factor_code", "name_zh", "name_en", "description", "unit", "co2e", "notes")
PIECES = st.sampled_from(
    [
        "",
        " ",
        "a",
        "Synthetic 1.5",
        "合成因子",
        "e\u0301",  # NFD: normalised to é
        "\u00e9",
        "\t",
        "\n",
        "\x00",
        "\x7f",
        "\u200b",  # zero-width space
        "\u202e",  # right-to-left override
        "\u3164",  # an invisible letter
        "\u3000",
        "x" * 30,
    ]
)
CELL = st.lists(PIECES, max_size=6).map("".join)


def _one_by_one(raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    with mock.patch.object(cells, "plain_text_cells", return_value=None):
        return check_cells(raw, text_cells=True)


@settings(max_examples=400, deadline=None)
@given(st.lists(CELL, min_size=len(COLUMNS), max_size=len(COLUMNS)), st.booleans())
@example(["c", "", "Cafe\u0301", "de\u0301ja\u0300", "t", "1", ""], False)  # NFD, ASCII names
@example(["c", "", "", "", "x" * 40, "1", ""], True)  # longer than a unit may be
def test_a_row_checked_whole_gives_what_its_cells_give(values: list[str], drop: bool) -> None:
    columns = COLUMNS[:-1] if drop else COLUMNS
    raw = dict(zip(columns, values, strict=False))
    whole = cells.plain_text_cells(dict(raw))
    one_by_one, problems = _one_by_one(dict(raw))
    if whole is not None:
        assert (whole, {}) == (one_by_one, problems)
    assert check_cells(dict(raw), text_cells=True) == (one_by_one, problems)


def test_a_row_of_plain_cells_is_checked_whole() -> None:
    raw = {"factor_code": "c-1", "name_zh": "合成因子", "name_en": "Cafe\u0301", "unit": "t"}
    assert cells.plain_text_cells(raw) == {
        "factor_code": "c-1",
        "name_zh": "合成因子",
        "name_en": "Caf\u00e9",
        "unit": "t",
    }
    # A multi-line cell is brought to NFC too, whatever the other cells hold.
    raw = {"factor_code": "c-1", "name_en": "x", "description": "de\u0301ja\u0300\nvu"}
    assert cells.plain_text_cells(raw) == {
        "factor_code": "c-1",
        "name_en": "x",
        "description": "d\u00e9j\u00e0\nvu",
    }
