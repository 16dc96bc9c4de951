"""Hypothesis strategies for synthetic factor records (uploadable fields of contract §1).

Every generated record is synthetic test data, never a real emission factor: its source
title says so.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from hypothesis import strategies as st

from app.factors.schemas import UPLOADABLE_FIELDS, FactorFields
from app.versioning.content_hash import INTEGER_FIELDS

SYNTHETIC_SOURCE = "Synthetic property-test record (not a real factor)"
CODES = tuple(f"synthetic-{letter}" for letter in "abcdefgh")

finite = st.floats(min_value=0.0, max_value=1e7, allow_nan=False, allow_infinity=False)
text = st.text(min_size=1, max_size=12)  # any Unicode: canonical JSON leaves it unescaped


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


# Values closer to real ones where the type alone would allow nonsense; every other uploadable
# field gets a strategy derived from its type in FactorFields (`_derived`), so that a field
# added to the record is generated, diffed and hashed by the property tests without an edit.
_CHOSEN: dict[str, st.SearchStrategy[Any]] = {
    "activity_id": st.sampled_from(["synthetic-grid", "synthetic-steel"]),
    "region": st.sampled_from(["CN", "CN-GD", "GB", "GLO"]),
    "unit": st.sampled_from(["kWh", "MWh", "t", "TJ", "t*km"]),
    "source_title": st.just(SYNTHETIC_SOURCE),
    "source_url": optional(st.sampled_from(["https://example.org/synthetic", "http://x.test/"])),
}


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(base type, constraints, optional) of a field's annotation."""
    metadata: list[Any] = []
    optional_ = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = get_args(annotation)
            metadata.extend(extra)
        elif origin is Union or origin is types.UnionType:
            members = [a for a in get_args(annotation) if a is not type(None)]
            optional_ = optional_ or len(members) < len(get_args(annotation))
            (annotation,) = members
        else:
            return annotation, metadata, optional_


def _flat(metadata: Iterable[Any]) -> Iterator[Any]:
    """Constraints, those inside a pydantic Field (Annotated[Year, Field(...)]) included."""
    for item in metadata:
        yield item
        yield from _flat(getattr(item, "metadata", ()))


def _bound(metadata: list[Any], attribute: str, default: int) -> int:
    """The `ge` or `le` bound of an int field (annotated_types.Ge/Le), or `default`."""
    for item in _flat(metadata):
        if getattr(item, attribute, None) is not None:
            return int(getattr(item, attribute))
    return default


def _derived(name: str) -> st.SearchStrategy[Any]:
    info = FactorFields.model_fields[name]
    base, metadata, is_optional = _unwrap(info.annotation)
    metadata.extend(info.metadata)
    strategy: st.SearchStrategy[Any]
    if get_origin(base) is Literal:
        strategy = st.sampled_from(get_args(base))
    elif base is int:
        low = _bound(metadata, "ge", 0)
        strategy = st.integers(low, _bound(metadata, "le", low + 100))
    elif base is float:
        strategy = finite
    elif base is date:
        strategy = st.dates(date(1990, 1, 1), date(2030, 12, 31))
    elif base is str:
        strategy = text
    else:
        raise TypeError(f"no strategy for {name}: {base!r}")
    return optional(strategy) if is_optional else strategy


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    name: _CHOSEN[name] if name in _CHOSEN else _derived(name)
    for name in UPLOADABLE_FIELDS
    if name != "factor_code"
}
FLOAT_FIELDS = frozenset(
    name for name in FIELDS if _unwrap(FactorFields.model_fields[name].annotation)[0] is float
)
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


_EXAMPLE_CHOSEN: dict[str, Any] = {
    "activity_id": "synthetic-grid",
    "region": "CN",
    "unit": "kWh",
    "source_title": SYNTHETIC_SOURCE,
    "source_url": "https://example.org/synthetic",
}


def _example_value(name: str) -> Any:
    base, metadata, _ = _unwrap(FactorFields.model_fields[name].annotation)
    if get_origin(base) is Literal:
        return get_args(base)[0]
    if base is int:
        return _bound([*metadata, *FactorFields.model_fields[name].metadata], "ge", 0)
    if base is float:
        return 0.5
    if base is date:
        return date(2020, 1, 1)
    return f"synthetic {name}"


def example_record(code: str = "synthetic-a") -> dict[str, Any]:
    """One synthetic record with every uploadable field filled (a field added to FactorFields
    is filled too), for tests that go field by field."""
    return {
        "factor_code": code,
        **{
            name: _EXAMPLE_CHOSEN[name] if name in _EXAMPLE_CHOSEN else _example_value(name)
            for name in FIELDS
        },
    }
