"""The database refuses what the workflow never does, whoever asks with SQL (migration
20261204_0201): status changes off the workflow's graph, a second current release, a
released version's provenance rewritten, a cited source edited, a released dataset's licence
or terms changed. What the workflow does stays allowed. Data is synthetic."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.publishing import draft_rows
from tests.factories import create_dataset, create_publisher, create_version, factor_fields


@pytest.fixture
def history(session: Session) -> dict[str, int]:
    """One dataset: 1.0.0 deprecated, 1.1.0 published (current), 1.2.0 withdrawn,
    2.0.0 submitted, 3.0.0 draft, 0.9.0 rejected; and a dataset with no release. Ids by name."""
    publisher = create_publisher(session, slug="synthetic-guard")
    dataset = create_dataset(session, publisher=publisher, slug="synthetic-guarded")
    unreleased = create_dataset(session, publisher=publisher, slug="synthetic-unreleased")
    ids: dict[str, int] = {"dataset": dataset.id, "unreleased": unreleased.id}
    for version, status, code in [
        ("0.9.0", "rejected", "r"),
        ("1.0.0", "published", "a"),
        ("1.1.0", "published", "b"),
        ("1.2.0", "published", "c"),
        ("2.0.0", "submitted", "d"),
        ("3.0.0", "draft", "e"),
    ]:
        row = create_version(
            session,
            dataset=dataset,
            version=version,
            status=status,  # type: ignore[arg-type]
            factors=[factor_fields(f"{code}-1", source_title=f"Synthetic source {code}")],
        )
        ids[version] = row.id
    session.commit()
    # Withdrawing 1.2.0 (current) restores 1.1.0, as the service does.
    with session.begin():
        session.execute(
            text(
                "UPDATE dataset_version SET status = 'withdrawn', withdrawn_by = 'r',"
                " withdrawn_reason = 'synthetic' WHERE id = :id"
            ),
            {"id": ids["1.2.0"]},
        )
        session.execute(
            text(
                "UPDATE dataset_version SET status = 'published', deprecated_at = NULL"
                " WHERE id = :id"
            ),
            {"id": ids["1.1.0"]},
        )
    statuses: dict[str, str] = dict(
        session.execute(
            text("SELECT version, status FROM dataset_version WHERE dataset_id = :d"),
            {"d": dataset.id},
        ).all()
    )
    assert statuses == {
        "0.9.0": "rejected",
        "1.0.0": "deprecated",
        "1.1.0": "published",
        "1.2.0": "withdrawn",
        "2.0.0": "submitted",
        "3.0.0": "draft",
    }
    return ids


def _refused(db: Engine, statement: str, **params: object) -> str:
    with pytest.raises(DBAPIError) as caught, db.begin() as connection:
        connection.execute(text(statement), params)
    return str(caught.value.orig)


def _allowed(db: Engine, statement: str, **params: object) -> None:
    with db.begin() as connection:
        assert connection.execute(text(statement), params).rowcount == 1


STATUS = "UPDATE dataset_version SET status = :to WHERE id = :id"


@pytest.mark.parametrize(
    ("version", "to"),
    [
        ("3.0.0", "published"),  # draft -> published directly
        ("3.0.0", "deprecated"),
        ("3.0.0", "rejected"),
        ("2.0.0", "draft"),  # submitted back to draft
        ("2.0.0", "withdrawn"),
        ("1.2.0", "published"),  # withdrawn -> published
        ("1.2.0", "deprecated"),
        ("0.9.0", "submitted"),  # rejected -> anything
        ("0.9.0", "draft"),
        ("0.9.0", "published"),
        ("1.1.0", "submitted"),  # released -> unreleased
        ("1.0.0", "published"),  # a second current release
    ],
)
def test_a_status_change_off_the_workflow_is_refused(
    db: Engine, history: dict[str, int], version: str, to: str
) -> None:
    message = _refused(db, STATUS, to=to, id=history[version])
    assert "workflow" in message or "immutable" in message


def test_publishing_below_a_release_is_refused(db: Engine, session: Session) -> None:
    """Versions are published in order: 1.0.5 submitted after 1.1.0 was released."""
    publisher = create_publisher(session, slug="synthetic-order")
    dataset = create_dataset(session, publisher=publisher, slug="synthetic-ordered")
    create_version(session, dataset=dataset, version="1.1.0", factors=[factor_fields("x-1")])
    late = create_version(
        session,
        dataset=dataset,
        version="1.0.5",
        status="submitted",
        factors=[factor_fields("x-1")],
    )
    session.commit()
    # Deprecating the current one first, so that only the order rule is in the way.
    _allowed(
        db,
        "UPDATE dataset_version SET status = 'deprecated' WHERE dataset_id = :d "
        "AND status = 'published'",
        d=dataset.id,
    )
    assert "workflow" in _refused(db, STATUS, to="published", id=late.id)


def test_a_version_is_not_created_released(db: Engine, history: dict[str, int]) -> None:
    message = _refused(
        db,
        "INSERT INTO dataset_version (dataset_id, version, major, minor, patch, status, "
        "row_count, created_by, created_at) VALUES (:d, '9.0.0', 9, 0, 0, 'published', 0, "
        "'mallory', CURRENT_TIMESTAMP)",
        d=history["dataset"],
    )
    assert "draft" in message


@pytest.mark.parametrize(
    "assignment",
    [
        "upload_file_sha256 = 'forged'",
        "upload_file_name = 'other.csv'",
        "upload_format = 'parquet'",
        "created_by = 'mallory'",
        "submitted_by = 'mallory'",
        "release_notes = 'rewritten'",
        "major = 7",
        "supersedes_id = NULL",
    ],
)
@pytest.mark.parametrize("version", ["1.0.0", "1.1.0", "1.2.0"])
def test_a_released_versions_provenance_cannot_change(
    db: Engine, history: dict[str, int], assignment: str, version: str
) -> None:
    if assignment == "supersedes_id = NULL" and version == "1.0.0":
        assignment = f"supersedes_id = {history['1.2.0']}"  # 1.0.0 supersedes nothing
    message = _refused(
        db, f"UPDATE dataset_version SET {assignment} WHERE id = :id", id=history[version]
    )
    assert "immutable" in message


def test_a_withdrawal_cannot_be_rewritten(db: Engine, history: dict[str, int]) -> None:
    message = _refused(
        db,
        "UPDATE dataset_version SET withdrawn_reason = 'never happened' WHERE id = :id",
        id=history["1.2.0"],
    )
    assert "immutable" in message


# The one source of that version (a draft's rows are in factor_draft until its submit).
SOURCE_OF = (
    "SELECT source_id FROM factor WHERE version_id = :v "
    "UNION SELECT source_id FROM factor_draft WHERE version_id = :v"
)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE source SET title = 'forged' WHERE id = :s",
        "UPDATE source SET url = 'https://example.org/x' WHERE id = :s",
        "DELETE FROM source WHERE id = :s",
    ],
)
def test_a_source_cited_by_a_release_cannot_change(
    db: Engine, history: dict[str, int], statement: str
) -> None:
    with db.connect() as connection:
        source = connection.execute(text(SOURCE_OF), {"v": history["1.2.0"]}).scalar_one()
    assert "immutable" in _refused(db, statement, s=source)


def test_a_source_only_a_draft_cites_can_still_change(db: Engine, history: dict[str, int]) -> None:
    with db.connect() as connection:
        source = connection.execute(text(SOURCE_OF), {"v": history["3.0.0"]}).scalar_one()
    _allowed(
        db, "UPDATE source SET title = 'Synthetic source e, corrected' WHERE id = :s", s=source
    )


@pytest.mark.parametrize(
    "assignment",
    [
        "license_id = 'CC-BY-NC-4.0'",
        "license_url = 'https://example.org/other-licence'",
        "attribution = 'someone else'",
        "redistribution = NOT redistribution",
        "commercial_use = NOT commercial_use",
    ],
)
def test_a_released_datasets_licence_and_terms_cannot_change(
    db: Engine, history: dict[str, int], assignment: str
) -> None:
    message = _refused(db, f"UPDATE dataset SET {assignment} WHERE id = :d", d=history["dataset"])
    assert "immutable" in message
    # Before its first release a dataset's terms are still the publisher's to set.
    _allowed(db, f"UPDATE dataset SET {assignment} WHERE id = :d", d=history["unreleased"])


def test_what_the_workflow_does_stays_allowed(db: Engine, history: dict[str, int]) -> None:
    # The dataset's other fields, and its deprecation, are not its licence.
    _allowed(db, "UPDATE dataset SET priority = 3 WHERE id = :d", d=history["dataset"])
    # Submit moves the draft's rows out of factor_draft first (refused otherwise).
    with Session(db) as session, session.begin():
        draft_rows.move_into_factors(session, history["3.0.0"])
    _allowed(db, STATUS, to="submitted", id=history["3.0.0"])
    # Withdrawing the current 1.1.0 with nothing left to restore but 1.0.0 (which is highest).
    _allowed(
        db,
        "UPDATE dataset_version SET status = 'withdrawn', withdrawn_reason = 's' WHERE id = :id",
        id=history["1.1.0"],
    )
    _allowed(db, STATUS, to="published", id=history["1.0.0"])
    _allowed(db, STATUS, to="rejected", id=history["2.0.0"])
