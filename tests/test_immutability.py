"""A published number never changes: the database itself refuses, whoever asks."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tests.factories import (
    Status,
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
)


def _refused(db: Engine, statement: str) -> None:
    with pytest.raises(DBAPIError) as caught, db.begin() as connection:
        connection.execute(text(statement))
    assert any(word in str(caught.value) for word in ("immutable", "append-only", "workflow"))


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE factor SET co2e = co2e * 2",
        "DELETE FROM factor",
        "UPDATE dataset_version SET content_sha256 = 'x'",
        "UPDATE dataset_version SET status = 'draft'",
        "DELETE FROM dataset_version",
        "UPDATE audit_event SET actor = 'mallory'",
        "DELETE FROM audit_event",
    ],
)
def test_released_rows_and_the_audit_log_cannot_be_changed(db: Engine, statement: str) -> None:
    _refused(db, statement)


@pytest.mark.usefixtures("seeded")
def test_no_factor_can_be_added_to_a_released_version(db: Engine) -> None:
    with db.begin() as connection:
        row = connection.execute(
            text("SELECT version_id, dataset_id, source_id FROM factor LIMIT 1")
        ).one()
    _refused(
        db,
        "INSERT INTO factor (uid, version_id, dataset_id, source_id, factor_code, activity_id,"
        " region, reference_year, unit, co2e, boundary) VALUES ('synthetic', "
        f"{row.version_id}, {row.dataset_id}, {row.source_id}, 'synthetic-extra', 'synthetic',"
        " 'GLO', 2020, 'kWh', 1.0, 'combustion')",
    )


@pytest.mark.usefixtures("seeded")
def test_withdrawing_a_release_is_still_allowed(db: Engine) -> None:
    with db.begin() as connection:
        connection.execute(
            text(
                "UPDATE dataset_version SET status = 'withdrawn', withdrawn_reason = 'test' "
                "WHERE id = (SELECT MIN(id) FROM dataset_version)"
            )
        )
        statuses = connection.execute(text("SELECT status FROM dataset_version")).scalars()
        assert "withdrawn" in set(statuses)


def _released_and_draft(session: Session, status: Status = "draft") -> tuple[int, int]:
    """A published version and a newer unreleased one (`status`: a draft, its rows in
    `factor_draft`, or a submission, in `factor`) of one synthetic dataset, two factors each."""
    dataset = create_dataset(session, publisher=create_publisher(session))
    released = create_version(
        session, dataset=dataset, factors=[factor_fields("syn-a"), factor_fields("syn-b")]
    )
    draft = create_version(
        session,
        dataset=dataset,
        version="1.1.0",
        status=status,
        factors=[factor_fields("syn-a"), factor_fields("syn-c")],
    )
    session.commit()
    return released.id, draft.id


def _factor_rows(db: Engine, table: str = "factor") -> list[tuple[int, str]]:
    with db.begin() as connection:
        rows = connection.execute(
            text(f"SELECT version_id, factor_code FROM {table} ORDER BY version_id, factor_code")
        )
        return [(row.version_id, row.factor_code) for row in rows]


@pytest.mark.parametrize(
    "statement",
    [
        # One statement over a draft's rows and a release's: the whole statement is refused.
        "DELETE FROM factor WHERE version_id IN ({draft}, {released})",
        "UPDATE factor SET notes = 'changed' WHERE version_id IN ({draft}, {released})",
        # A draft's rows moved into the release, or copied into it among others.
        "UPDATE factor SET version_id = {released} WHERE version_id = {draft} "
        "AND factor_code = 'syn-c'",
        "INSERT INTO factor (uid, version_id, dataset_id, source_id, factor_code, activity_id, "
        "region, reference_year, unit, co2e, boundary) SELECT substr(uid, 1, 28) || 'copy', "
        "CASE WHEN factor_code = 'syn-a' THEN {draft} ELSE {released} END, dataset_id, "
        "source_id, factor_code || '-copy', activity_id, region, reference_year, unit, co2e, "
        "boundary FROM factor WHERE version_id = {draft}",
    ],
)
def test_a_statement_touching_any_released_factor_changes_nothing(
    db: Engine, session: Session, statement: str
) -> None:
    """The guard may run once per statement (PostgreSQL) or per row (SQLite): either way a
    statement that touches one released factor is refused whole, unreleased rows included (a
    submission's: a draft's rows are in `factor_draft` until its submit)."""
    released, draft = _released_and_draft(session, "submitted")
    before = _factor_rows(db)
    _refused(db, statement.format(draft=draft, released=released))
    assert _factor_rows(db) == before


@pytest.mark.parametrize(("status", "table"), [("draft", "factor_draft"), ("submitted", "factor")])
def test_a_drafts_factors_stay_writable(
    db: Engine, session: Session, status: Status, table: str
) -> None:
    """A draft's rows (in `factor_draft`) and the guard's: an unreleased version's in `factor`."""
    released, draft = _released_and_draft(session, status)
    with db.begin() as connection:
        connection.execute(
            text(f"UPDATE {table} SET notes = 'revised' WHERE version_id = :v"), {"v": draft}
        )
        connection.execute(
            text(f"DELETE FROM {table} WHERE version_id = :v AND factor_code = 'syn-c'"),
            {"v": draft},
        )
    rows = [(released, "syn-a"), (released, "syn-b"), (draft, "syn-a")]
    assert sorted(_factor_rows(db) + _factor_rows(db, "factor_draft")) == rows


def test_a_draft_is_submitted_only_once_its_rows_moved(db: Engine, session: Session) -> None:
    """Its rows are in factor_draft until its submit moves them into factor: a status change
    that skips the move is refused (and changes nothing)."""
    _, draft = _released_and_draft(session)
    with pytest.raises(DBAPIError) as caught, db.begin() as connection:
        connection.execute(
            text("UPDATE dataset_version SET status = 'submitted' WHERE id = :v"), {"v": draft}
        )
    assert "factor_draft" in str(caught.value)
    with db.begin() as connection:
        status = connection.execute(
            text("SELECT status FROM dataset_version WHERE id = :v"), {"v": draft}
        ).scalar_one()
    assert status == "draft"
    assert len(_factor_rows(db, "factor_draft")) == 2
