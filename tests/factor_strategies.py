"""Hypothesis strategies for synthetic factor records (uploadable fields of contract §1).

Every generated record is synthetic test data, never a real emission factor: its source
title says so.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from hypothesis import strategies as st

from app.versioning.content_hash import INTEGER_FIELDS

SYNTHETIC_SOURCE = "Synthetic property-test record (not a real factor)"
CODES = tuple(f"synthetic-{letter}" for letter in "abcdefgh")

finite = st.floats(min_value=0.0, max_value=1e7, allow_nan=False, allow_infinity=False)
text = st.text(min_size=1, max_size=12)  # any Unicode: canonical JSON leaves it unescaped


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "activity_id": st.sampled_from(["synthetic-grid", "synthetic-steel"]),
    "name_zh": optional(text),
    "name_en": optional(text),
    "region": st.sampled_from(["CN", "CN-GD", "GB", "GLO"]),
    "reference_year": st.integers(1990, 2030),
    "valid_from": optional(st.dates(date(1990, 1, 1), date(2030, 12, 31))),
    "unit": st.sampled_from(["kWh", "MWh", "t", "TJ", "t*km"]),
    "co2e": finite,
    "co2": optional(finite),
    "ch4": optional(finite),
    "gwp_set": optional(st.sampled_from(["AR4", "AR5", "AR6"])),
    "boundary": st.sampled_from(["cradle-to-gate", "combustion"]),
    "dq_reliability": optional(st.integers(1, 5)),
    "source_title": st.just(SYNTHETIC_SOURCE),
    "source_year": optional(st.integers(1990, 2030)),
    "source_locator": optional(text),
    "notes": optional(text),
}
FLOAT_FIELDS = frozenset({"co2e", "co2", "ch4"})
MUTABLE_FIELDS = tuple(name for name in FIELDS if name != "source_title")


def records(codes: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """One synthetic record as a dict of uploadable fields (None for an empty cell)."""
    return st.fixed_dictionaries({"factor_code": codes or st.sampled_from(CODES), **FIELDS})


def versions(min_size: int = 0) -> st.SearchStrategy[list[dict[str, Any]]]:
    """The factors of one version: unique factor codes."""
    return st.lists(
        records(), min_size=min_size, max_size=len(CODES), unique_by=lambda r: r["factor_code"]
    )


def changed_value(name: str, value: Any) -> Any:
    """A different value for `name` that canonical JSON writes differently."""
    if value is None:
        if name in INTEGER_FIELDS:
            return 1
        if name == "valid_from":
            return date(2000, 1, 1)
        return 1.5 if name in FLOAT_FIELDS else "x"
    if isinstance(value, bool):
        return not value
    if isinstance(value, date):
        return value + timedelta(days=1)
    if name in INTEGER_FIELDS:
        return value + 1
    if isinstance(value, float):
        return math.nextafter(value, math.inf)  # the smallest change there is
    return value + "x"
