"""The audit log as a Merkle tree: each event's leaf hash, each checkpoint's root.

`audit_event.leaf_hash` is the event's leaf in an RFC 9162 Merkle tree over the log in event
order: sha256(0x00 ‖ canonical event bytes), hex, where the canonical bytes are the ones the
hash chain covers. `audit_checkpoint.root_hash` is the root of the first `event_count` leaves
that a checkpoint signs from now on (null for the ones signed before). With both, anyone holding
an old checkpoint can check a consistency proof (`GET /v1/audit/consistency`) against a newer
one without seeing any event.

The existing events' leaves are filled here from their stored fields. The append-only triggers
refuse any UPDATE of `audit_event`, so this one migration steps past them inside its own
transaction: PostgreSQL disables its trigger and enables it again; SQLite (whose triggers cannot
be disabled) drops its UPDATE trigger and recreates it from the SQL it was stored with. The
column stays nullable: SQLite cannot make a filled column NOT NULL without copying the table,
which would lose its triggers; every event written after this has its leaf.

Revision ID: 20261206_0431
Revises: 20261205_0331
Create Date: 2026-12-06 04:31:00
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "20261206_0431"
down_revision: str | None = "20261205_0331"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_events = sa.table(
    "audit_event",
    sa.column("id", sa.BigInteger()),
    sa.column("occurred_at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("subject_type", sa.String()),
    sa.column("subject_id", sa.String()),
    sa.column("payload", sa.JSON()),
    sa.column("leaf_hash", sa.String()),
)


def _canonical_event(row: Any) -> bytes:
    """app.core.audit.canonical_event as it is (and must stay: the chain's hashes cover it)."""
    occurred_at: datetime = row.occurred_at
    occurred_at = (
        occurred_at.replace(tzinfo=UTC) if occurred_at.tzinfo is None else occurred_at
    ).astimezone(UTC)
    body = {
        "occurred_at": occurred_at.isoformat(timespec="microseconds"),
        "actor": row.actor,
        "action": row.action,
        "subject_type": row.subject_type,
        "subject_id": row.subject_id,
        "payload": row.payload,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _fill_leaves() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_events).order_by(_events.c.id)).all()
    leaves = [
        {"event_id": row.id, "leaf": hashlib.sha256(b"\x00" + _canonical_event(row)).hexdigest()}
        for row in rows
    ]
    if not leaves:
        return
    update = (
        _events.update()
        .where(_events.c.id == sa.bindparam("event_id"))
        .values(leaf_hash=sa.bindparam("leaf"))
    )
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
        bind.execute(update, leaves)
        op.execute("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")
        return
    created = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :name"),
        {"name": "audit_event_no_update"},
    ).scalar_one()
    # pysqlite runs DDL outside a transaction unless one is open (it opens one only before
    # DML): open it first, so that the trigger is never gone in a committed state.
    if not bind.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        op.execute("BEGIN")
    op.execute("DROP TRIGGER audit_event_no_update")
    bind.execute(update, leaves)
    op.execute(created)


def upgrade() -> None:
    op.add_column("audit_event", sa.Column("leaf_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_checkpoint", sa.Column("root_hash", sa.String(length=64), nullable=True))
    _fill_leaves()


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN in place (SQLite ≥ 3.35): a batch copy of `audit_event` would
    # lose the triggers that name it.
    op.drop_column("audit_checkpoint", "root_hash")
    op.drop_column("audit_event", "leaf_hash")
