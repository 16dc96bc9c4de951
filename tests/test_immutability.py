"""A published number never changes: the database itself refuses, whoever asks."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError


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
