"""The append-only audit chain: each event's hash covers the previous hash and the event."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.errors import InvalidParameter
from app.core.merkle import leaf_hash
from app.core.models import AuditEvent, ChangeOutbox

GENESIS_HASH = "0" * 64
# The audit actions that are public changes, and the change type each is told as (in the
# change feed, `GET /v1/changes`, and in webhook events).
PUBLIC_CHANGES: dict[str, str] = {
    "version.published": "release.published",
    "version.withdrawn": "release.withdrawn",
    "dataset.deprecated": "dataset.deprecated",
    "reference.loaded": "reference.reloaded",
}
# Any constant: serialises writers of the chain on PostgreSQL (SQLite has one writer anyway).
_CHAIN_LOCK_KEY = 0x65666462


def canonical_event(
    *,
    occurred_at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    payload: dict[str, Any],
) -> bytes:
    body = {
        "occurred_at": occurred_at.isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "payload": payload,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, event: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + event).hexdigest()


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    payload: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (at `occurred_at`, default now)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})
    prev_hash = (
        session.execute(
            select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
        ).scalar_one_or_none()
        or GENESIS_HASH
    )
    occurred_at = occurred_at or utcnow()
    body = payload or {}
    canonical = canonical_event(
        occurred_at=occurred_at,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=body,
    )
    event = AuditEvent(
        occurred_at=occurred_at,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=body,
        prev_hash=prev_hash,
        hash=chain_hash(prev_hash, canonical),
        leaf_hash=leaf_hash(canonical),
    )
    session.add(event)
    session.flush()
    change_type = PUBLIC_CHANGES.get(action)
    if change_type is not None:
        # The outbox row commits or rolls back with the change and its event.
        session.add(ChangeOutbox(audit_event_id=event.id, change_type=change_type))
        session.flush()
    return event


def event_bytes(event: AuditEvent) -> bytes:
    """A stored event's canonical bytes: what its chain hash and its Merkle leaf cover."""
    return canonical_event(
        occurred_at=event.occurred_at,
        actor=event.actor,
        action=event.action,
        subject_type=event.subject_type,
        subject_id=event.subject_id,
        payload=event.payload,
    )


class MissingLeaf(RuntimeError):
    """An audit event without its Merkle leaf hash (only a hand-edited database has one)."""


def tree_leaves(session: Session, size: int | None = None) -> list[str]:
    """The Merkle leaves of the audit log in event order: all, or the first `size`."""
    query = select(AuditEvent.id, AuditEvent.leaf_hash).order_by(AuditEvent.id)
    if size is not None:
        query = query.limit(size)
    leaves = []
    for event_id, leaf in session.execute(query):
        if leaf is None:
            raise MissingLeaf(f"audit event {event_id} has no Merkle leaf hash")
        leaves.append(leaf)
    return leaves


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    events: int
    first_bad_event: int | None = None
    reason: str | None = None


def verify_chain(session: Session) -> ChainVerdict:
    prev_hash = GENESIS_HASH
    count = 0
    for event in session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars():
        count += 1
        if event.prev_hash != prev_hash:
            return ChainVerdict(False, count, event.id, "prev_hash does not match the event before")
        expected = chain_hash(prev_hash, event_bytes(event))
        if event.hash != expected:
            return ChainVerdict(False, count, event.id, "hash does not match the event's content")
        prev_hash = event.hash
    return ChainVerdict(True, count)


# ----------------------------------------------------------------- positions in the chain
# The change feed (`GET /v1/changes?after=`) and the snapshot manifest (`changes_cursor`) name
# a position in the audit chain by an opaque cursor: the id of the last event it covers.
# Every audited write appends its event under the chain lock (above) and commits holding it,
# so event ids become visible in increasing order: a reader that saw event N has seen every
# committed event below N, and a cursor never skips one.
_CURSOR_PREFIX = "ev1:"


def chain_cursor(event_id: int) -> str:
    """The opaque cursor of the position just after audit event `event_id` (0: the start)."""
    raw = f"{_CURSOR_PREFIX}{event_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def parse_chain_cursor(cursor: str, *, loc: tuple[str, ...] = ("query", "after")) -> int:
    """The audit event id a cursor from `chain_cursor` stands after; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        text_ = raw.decode("ascii")
    except (binascii.Error, ValueError, UnicodeError):
        text_ = ""
    digits = text_.removeprefix(_CURSOR_PREFIX)
    if not text_.startswith(_CURSOR_PREFIX) or not digits.isdigit() or len(digits) > 18:
        raise InvalidParameter(
            "The cursor is not one this service issued (a change feed's `cursor`, or a "
            "snapshot manifest's `changes_cursor`); start again without it.",
            errors=[{"loc": list(loc), "code": "invalid_cursor", "detail": "unreadable"}],
        )
    return int(digits)


def chain_head_id(session: Session) -> int:
    """The id of the newest audit event this transaction sees (0 for an empty chain)."""
    return session.execute(select(func.coalesce(func.max(AuditEvent.id), 0))).scalar_one()
