"""Properties of the content hash (contract §6) over generated synthetic versions."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.versioning.content_hash import (
    INTEGER_FIELDS,
    UPLOADABLE,
    canonical_factor_json,
    content_sha256,
)
from tests.factor_strategies import MUTABLE_FIELDS, SYNTHETIC_SOURCE, changed_value, versions

# 50 examples: a record now draws every uploadable field (40, not 17 as before), so 50 draw
# more field values than the former 100 did, in about the same time.
FAST = settings(max_examples=50, deadline=None)


@FAST
@given(factors=versions(), data=st.data())
def test_the_hash_does_not_depend_on_row_order(factors: list[dict[str, Any]], data: Any) -> None:
    shuffled = data.draw(st.permutations(factors))
    assert content_sha256(shuffled) == content_sha256(factors)


@FAST
@given(factors=versions(min_size=1), data=st.data())
def test_any_single_field_change_changes_the_hash(factors: list[dict[str, Any]], data: Any) -> None:
    index = data.draw(st.integers(0, len(factors) - 1))
    name = data.draw(st.sampled_from(MUTABLE_FIELDS))
    edited = [dict(f) for f in factors]
    edited[index][name] = changed_value(name, edited[index][name])
    assert content_sha256(edited) != content_sha256(factors)
    if factors[index][name] is not None:  # and clearing a field (an empty cell) changes it too
        edited[index][name] = None
        assert content_sha256(edited) != content_sha256(factors)


@FAST
@given(factors=versions(min_size=1))
def test_derived_fields_and_nulls_do_not_count(factors: list[dict[str, Any]]) -> None:
    decorated = [
        {**f, "uid": f"uid-{i}", "dqr": 2.5, "version": "9.9.9", "co2": f["co2"]}
        for i, f in enumerate(factors)
    ]
    without_nulls = [{k: v for k, v in f.items() if v is not None} for f in factors]
    assert content_sha256(decorated) == content_sha256(factors) == content_sha256(without_nulls)


# A fixed vector: the same input hashes to this value on every run, platform and release.
# The canonical lines are written out so that anyone can check the digest by hand.
KNOWN_VERSION: list[dict[str, Any]] = [
    {
        "factor_code": "synthetic-b",
        "activity_id": "synthetic-grid",
        "name_zh": "合成电网因子",
        "region": "CN-GD",
        "reference_year": 2023,
        "valid_from": date(2023, 1, 1),
        "unit": "kWh",
        "co2e": 0.5,
        "co2": 0.1 + 0.2,
        "dq_reliability": 2,
        "boundary": "combustion",
        "source_title": SYNTHETIC_SOURCE,
        "notes": None,
    },
    {
        "factor_code": "synthetic-a",
        "activity_id": "synthetic-steel",
        "name_en": "Synthetic steel",
        "region": "GLO",
        "reference_year": 2020,
        "unit": "t",
        "co2e": 1850,
        "boundary": "cradle-to-gate",
        "source_title": SYNTHETIC_SOURCE,
    },
]
KNOWN_LINES = (
    '{"activity_id":"synthetic-steel","boundary":"cradle-to-gate","co2e":1850.0,'
    '"factor_code":"synthetic-a","name_en":"Synthetic steel","reference_year":2020,'
    '"region":"GLO","source_title":"Synthetic property-test record (not a real factor)",'
    '"unit":"t"}\n'
    '{"activity_id":"synthetic-grid","boundary":"combustion","co2":0.30000000000000004,'
    '"co2e":0.5,"dq_reliability":2,"factor_code":"synthetic-b","name_zh":"合成电网因子",'
    '"reference_year":2023,"region":"CN-GD",'
    '"source_title":"Synthetic property-test record (not a real factor)","unit":"kWh",'
    '"valid_from":"2023-01-01"}'
)
KNOWN_SHA256 = "e0cec5137fa8c42dbcfc694cf9ccb71c758a5e5d1a6c6dbd26868f53199de44e"


def test_a_known_vector_hashes_to_a_fixed_value() -> None:
    lines = "\n".join(
        canonical_factor_json(f) for f in sorted(KNOWN_VERSION, key=lambda f: f["factor_code"])
    )
    assert lines == KNOWN_LINES
    assert hashlib.sha256(KNOWN_LINES.encode("utf-8")).hexdigest() == KNOWN_SHA256
    assert content_sha256(KNOWN_VERSION) == KNOWN_SHA256


def _contract_json(factor: dict[str, Any]) -> str:
    """Canonical JSON as contract §6 words it, written plainly: what the hash's faster
    `canonical_factor_json` must give byte for byte."""
    body: dict[str, Any] = {}
    for name in UPLOADABLE:
        value = factor.get(name)
        if value is None:
            continue
        if isinstance(value, bool):
            body[name] = value
        elif isinstance(value, date):
            body[name] = value.isoformat()
        elif name in INTEGER_FIELDS:
            body[name] = int(value)
        elif isinstance(value, int | float):
            body[name] = float(value)
        else:
            body[name] = value
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@FAST
@given(factors=versions(min_size=1), data=st.data())
def test_canonical_json_is_the_contract_s(factors: list[dict[str, Any]], data: Any) -> None:
    """Every value kind the contract names, including those a mapping other than the
    database's may hold: integers in float fields, floats and texts in integer fields, a
    datetime, extra keys."""
    factor = dict(data.draw(st.sampled_from(factors)))
    odd = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "co2e": st.integers(0, 10**6),
                "reference_year": st.sampled_from([2021.0, "2022", 2023]),
                "dq_reliability": st.sampled_from([1.0, 3, "5"]),
                "valid_from": st.just(datetime(2022, 1, 1, 12, 30)),
                "notes": st.text(max_size=8),
                "unknown_extra": st.integers(),
            },
        )
    )
    factor.update(odd)
    assert canonical_factor_json(factor) == _contract_json(factor)
