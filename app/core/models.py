"""The tables the shared kernel writes: the append-only, hash-chained audit log
(app/core/audit.py appends to it; every domain records its events there), and the outbox of
public changes that the audit writer fills in the same transaction (webhooks read it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigId, UTCDateTime, utcnow


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(255), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The event's leaf in the audit Merkle tree: sha256(0x00 ‖ canonical event), hex
    # (app/core/merkle.py). Null only if someone emptied it: every event written has one, the
    # migration that added it filled the older ones, and `efdb audit verify` names any other.
    leaf_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ChangeOutbox(Base):
    """One row per public change (release published or withdrawn, dataset deprecated,
    reference data reloaded), written by the audit writer in the change's own transaction:
    a committed change always has its row, a rolled-back one never. Append-only; the webhook
    worker reads it in id order."""

    __tablename__ = "change_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    audit_event_id: Mapped[int] = mapped_column(ForeignKey("audit_event.id"), unique=True)
    change_type: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
