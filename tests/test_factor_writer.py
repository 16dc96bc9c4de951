"""Storing a draft's rows: on PostgreSQL one COPY held open while rows come, ended for a query
(a source not seen yet) or when it has been open a quarter of the request's statement budget,
and begun again; on SQLite batches. Either way every row is stored once, with its own source."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core.bounds import BUDGET_KEY
from app.datasets.version_models import DatasetVersion
from app.publishing import draft_rows
from app.publishing.publish import store_factors
from tests.factories import create_dataset, create_publisher, factor_fields

ROWS = 2500


def _stored(session: Session, table: str, version_id: int, order: str) -> list[tuple[object, ...]]:
    rows = session.execute(
        text(
            f"SELECT {table}.factor_code, {table}.row_number, source.title FROM {table} "
            f"JOIN source ON source.id = {table}.source_id WHERE {table}.version_id = :v "
            f"ORDER BY {table}.{order}"
        ),
        {"v": version_id},
    ).all()
    return [tuple(row) for row in rows]


def test_every_row_is_stored_once_with_its_source_across_copies(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = create_dataset(session, publisher=create_publisher(session))
    draft = DatasetVersion(
        dataset_id=dataset.id,
        version="1.0.0",
        major=1,
        minor=0,
        patch=0,
        status="draft",
        created_by="synthetic-test",
    )
    session.add(draft)
    session.flush()
    # A 1 ms budget: the COPY is ended after every 1000 rows (each open longer than 0.25 ms).
    session.info[BUDGET_KEY] = 1
    # A new source every 700 rows: the COPY is ended for its query, then the rows go on.
    records = (
        (
            number + 2,
            factor_fields(
                f"syn-{number:05d}",
                source_title=f"Synthetic source {number // 700} (not a real document)",
            ),
        )
        for number in range(ROWS)
    )
    assert store_factors(session, version=draft, records=records, batch_size=600) == ROWS
    expected = [
        (f"syn-{n:05d}", n + 2, f"Synthetic source {n // 700} (not a real document)")
        for n in range(ROWS)
    ]
    # A draft's rows are in `factor_draft`, in upload order ...
    assert _stored(session, "factor_draft", draft.id, "position") == expected
    assert _stored(session, "factor", draft.id, "id") == []
    assert draft.row_count == ROWS
    # ... and move into `factor` at submit, in statements of MOVE_CHUNK rows, ids in that order.
    monkeypatch.setattr(draft_rows, "MOVE_CHUNK", 1000)
    assert draft_rows.move_into_factors(session, draft.id) == ROWS
    assert _stored(session, "factor", draft.id, "id") == expected
    assert _stored(session, "factor_draft", draft.id, "position") == []
