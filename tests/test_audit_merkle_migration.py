"""The migration that adds the audit Merkle tree fills the leaves of the events already logged
from their stored fields, and leaves the append-only triggers as they were (both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import DBAPIError

from app.core.audit import GENESIS_HASH, canonical_event, chain_hash, verify_chain
from app.core.db import UTCDateTime, make_engine, make_sessionmaker
from app.core.merkle import leaf_hash
from app.core.migrations import alembic_config, upgrade_to_head
from app.signing.integrity import check_leaves
from tests.conftest import _postgres_database

BEFORE = "20261205_0331"
OLD_EVENTS = sa.table(
    "audit_event",
    sa.column("occurred_at", UTCDateTime()),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("subject_type", sa.String()),
    sa.column("subject_id", sa.String()),
    sa.column("payload", sa.JSON()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)
# Synthetic events, as an older efdb logged them (non-ASCII and nested payloads included).
SYNTHETIC: list[tuple[str, str, str, str, dict[str, Any]]] = [
    (
        "cli:root",
        "publisher.created",
        "publisher",
        "1",
        {"slug": "synthetic-pub", "name_zh": "合成"},
    ),
    ("client-a", "version.uploaded", "dataset_version", "1", {"rows": 3, "file": {"n": "a.csv"}}),
    ("client-b", "version.published", "dataset_version", "1", {"content_sha256": "0" * 64}),
]


@pytest.fixture
def old_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        yield from _postgres_database("efdb_merkle_migration")


def test_existing_events_get_their_leaves_and_stay_append_only(old_url: str) -> None:
    engine = make_engine(old_url)
    try:
        command.upgrade(alembic_config(old_url), BEFORE)
        previous, expected = GENESIS_HASH, []
        with engine.begin() as connection:
            for second, (actor, action, kind, subject, payload) in enumerate(SYNTHETIC):
                occurred_at = datetime(2026, 11, 30, 8, 0, second, 123456, tzinfo=UTC)
                body = canonical_event(
                    occurred_at=occurred_at,
                    actor=actor,
                    action=action,
                    subject_type=kind,
                    subject_id=subject,
                    payload=payload,
                )
                digest = chain_hash(previous, body)
                connection.execute(
                    OLD_EVENTS.insert().values(
                        occurred_at=occurred_at,
                        actor=actor,
                        action=action,
                        subject_type=kind,
                        subject_id=subject,
                        payload=payload,
                        prev_hash=previous,
                        hash=digest,
                    )
                )
                expected.append(leaf_hash(body))
                previous = digest
        upgrade_to_head(engine)
        with engine.connect() as connection:
            stored = connection.execute(
                sa.text("SELECT leaf_hash FROM audit_event ORDER BY id")
            ).scalars()
            assert list(stored) == expected
        with make_sessionmaker(engine)() as session:
            assert verify_chain(session).ok
            assert check_leaves(session) == (expected, [])
        # The UPDATE trigger the migration stepped past is in force again.
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(sa.text("UPDATE audit_event SET leaf_hash = NULL"))
    finally:
        engine.dispose()
