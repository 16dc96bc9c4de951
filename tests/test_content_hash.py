"""The content hash of contract §6, byte for byte."""

from __future__ import annotations

import hashlib
import tracemalloc
from datetime import date

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.datasets.version_models import DatasetVersion
from app.factors.models import Factor
from app.factors.schemas import UPLOADABLE_FIELDS
from app.factors.service import factor_select
from app.versioning import content_hash
from app.versioning.content_hash import (
    canonical_factor_json,
    compute_content_sha256,
    content_sha256,
    ordered_content_sha256,
)
from tests.factor_strategies import changed_value, example_record
from tests.factories import create_dataset_with_factors, factor_fields


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


def test_ordered_hash_is_the_hash_of_rows_given_in_order() -> None:
    rows = [example_record(code) for code in ("synthetic-b", "synthetic-a", "synthetic-a.1")]
    in_order = sorted(rows, key=lambda row: row["factor_code"])
    assert ordered_content_sha256(in_order) == content_sha256(rows)
    assert ordered_content_sha256([]) == content_sha256([])


def test_ordered_hash_refuses_rows_out_of_order() -> None:
    """A database that sorted codes otherwise (a collation of its own) must not give another
    hash without a word."""
    rows = [example_record("synthetic-ab"), example_record("synthetic-a-b")]
    with pytest.raises(ValueError, match="not in order"):
        ordered_content_sha256(rows)


# Codes that a language's collation (en_US, ICU) orders otherwise than by code point: it
# passes over punctuation and case at first.
COLLATION_CODES = ("ab", "a-b", "a_b", "A.b", "a:b", "a.B", "Zz", "a", "a-c", "0x", "b")


def test_stored_version_hash_is_the_contract_hash(session: Session) -> None:
    """The hash the database streams in factor_code order is the one computed from the
    version's rows in memory (and from any copy of them: the contract's order is by code
    point)."""
    dataset = create_dataset_with_factors(
        session,
        publisher="synthetic-order",
        dataset="collation-codes",
        factors=[factor_fields(code, co2e=n + 0.5) for n, code in enumerate(COLLATION_CODES)],
    )
    version = session.scalars(
        select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
    ).one()
    rows = session.execute(factor_select().where(Factor.version_id == version.id)).mappings()
    expected = content_sha256([dict(row) for row in rows])
    assert compute_content_sha256(session, version.id) == expected == version.content_sha256


@pytest.mark.postgresql_only
def test_a_database_collation_of_a_language_does_not_change_the_hash(session: Session) -> None:
    """On a PostgreSQL whose collation orders codes as a language does (en_US and the like,
    as many production servers have; here ICU's en-US on the column, inside the test's own
    transaction), the hash still follows the contract's code point order."""
    icu = text("SELECT count(*) FROM pg_collation WHERE collname = 'en-US-x-icu'")
    if session.scalar(icu) == 0:
        pytest.skip("this PostgreSQL has no ICU collations (built without ICU)")
    # This worker's database, rolled back at the end; a lock another session holds fails the
    # test at once instead of blocking it.
    session.execute(text("SET LOCAL lock_timeout = '5s'"))
    session.execute(
        text('ALTER TABLE factor ALTER COLUMN factor_code TYPE varchar(128) COLLATE "en-US-x-icu"')
    )
    dataset = create_dataset_with_factors(
        session,
        publisher="synthetic-icu",
        dataset="collation-codes",
        factors=[factor_fields(code) for code in COLLATION_CODES],
    )
    by_database = session.scalars(
        select(Factor.factor_code)
        .where(Factor.dataset_id == dataset.id)
        .order_by(Factor.factor_code)
    ).all()
    assert by_database != sorted(COLLATION_CODES)  # the collation does order them otherwise
    version = session.scalars(
        select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
    ).one()
    rows = session.execute(factor_select().where(Factor.version_id == version.id)).mappings()
    assert version.content_sha256 == content_sha256([dict(row) for row in rows])
    session.rollback()


def test_stored_version_is_hashed_in_bounded_memory(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version is hashed a partition of rows at a time: the hash of 1,500 rows, fetched 50
    at a time, holds a small part of what the rows take in memory."""
    dataset = create_dataset_with_factors(
        session,
        publisher="synthetic-memory",
        dataset="many-rows",
        factors=[factor_fields(f"synthetic-{n:05d}") for n in range(1_500)],
    )
    version_id = session.scalars(
        select(DatasetVersion.id).where(DatasetVersion.dataset_id == dataset.id)
    ).one()
    query = factor_select().where(Factor.version_id == version_id)
    tracemalloc.start()
    try:
        held = [dict(row) for row in session.execute(query).mappings()]
        whole = tracemalloc.get_traced_memory()[0]
        del held
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        monkeypatch.setattr(content_hash, "ROWS_PER_FETCH", 50)
        digest = compute_content_sha256(session, version_id)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert digest == content_sha256(dict(row) for row in session.execute(query).mappings())
    assert peak < whole / 5, (peak, whole)
