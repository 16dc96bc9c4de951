"""The content hash of contract §6, byte for byte."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

from app.factors.schemas import UPLOADABLE_FIELDS
from app.versioning.content_hash import canonical_factor_json, content_sha256
from tests.factor_strategies import changed_value, example_record


def test_canonical_json_follows_the_contract() -> None:
    factor = {
        "factor_code": "b",
        "name_zh": "电力",
        "reference_year": 2022,
        "co2e": 1,
        "co2": 0.5366,
        "ch4": None,
        "valid_from": date(2022, 1, 1),
        "dq_reliability": 2,
        "uid": "ignored-derived-field",
        "dqr": 2.0,
    }
    assert canonical_factor_json(factor) == (
        '{"co2":0.5366,"co2e":1.0,"dq_reliability":2,"factor_code":"b",'
        '"name_zh":"电力","reference_year":2022,"valid_from":"2022-01-01"}'
    )


def test_hash_is_over_rows_sorted_by_code_joined_by_newline() -> None:
    rows = [{"factor_code": "b", "co2e": 2.0}, {"factor_code": "a", "co2e": 1.5}]
    expected = hashlib.sha256(
        b'{"co2e":1.5,"factor_code":"a"}\n{"co2e":2.0,"factor_code":"b"}'
    ).hexdigest()
    assert content_sha256(rows) == expected
    assert content_sha256(list(reversed(rows))) == expected


def test_floats_use_shortest_round_trip_form() -> None:
    assert canonical_factor_json({"factor_code": "x", "co2e": 0.1 + 0.2}) == (
        '{"co2e":0.30000000000000004,"factor_code":"x"}'
    )
    assert canonical_factor_json({"factor_code": "x", "co2e": 95025.5}) == (
        '{"co2e":95025.5,"factor_code":"x"}'
    )


def test_any_value_change_changes_the_hash() -> None:
    base = [{"factor_code": "a", "co2e": 1.0, "unit": "kWh"}]
    changed = [{"factor_code": "a", "co2e": 1.0, "unit": "MWh"}]
    assert content_sha256(base) != content_sha256(changed)


def test_empty_version_hashes_the_empty_string() -> None:
    assert content_sha256([]) == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("name", UPLOADABLE_FIELDS)
def test_every_uploadable_field_is_hashed(name: str) -> None:
    """Contract §6 hashes exactly the uploadable fields (the app's own list): editing or
    emptying any one of them changes the hash, or a changed release could keep its hash."""
    factor = example_record()
    others = [example_record("synthetic-b")]
    before = content_sha256([factor, *others])
    edited = {**factor, name: changed_value(name, factor[name])}
    assert content_sha256([edited, *others]) != before
    if name != "factor_code":  # the one field no row goes without
        assert content_sha256([{**factor, name: None}, *others]) != before
