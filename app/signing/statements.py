"""What the release key signs: release statements, audit checkpoints, snapshot manifests.

- A release statement is signed inside the publish transaction. A version released before
  signing existed (the seed data, any release of an older database) gets its statement on first
  request (`release.jws`, a per-version export), from the same recorded facts: its row, its
  dataset's licence and its `version.published` audit event.
- A checkpoint (event count, head hash, Merkle tree size and root, time) is signed after every
  publish, withdraw and snapshot, and by `efdb audit checkpoint`. It is not an audit event
  itself: it attests the chain, and whoever saved one can later check that the chain still
  extends it: against the log, or with a public consistency proof between its Merkle root and
  a newer checkpoint's (`GET /v1/audit/consistency`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.audit import tree_leaves
from app.core.db import utcnow
from app.core.merkle import root
from app.core.models import AuditEvent
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.signing.jws import TYP_CHECKPOINT, TYP_MANIFEST, TYP_RELEASE, canonical_json, sign
from app.signing.keys import ReleaseKeys
from app.signing.models import AuditCheckpoint, ReleaseStatement, SnapshotSignature

STATEMENT_TYPE = "efdb.release-statement/1"
CHECKPOINT_TYPE = "efdb.audit-checkpoint/1"
SYSTEM_ACTOR = "system:signing"


def release_statement_body(
    session: Session, version: DatasetVersion, *, issuer: str
) -> dict[str, Any]:
    """The facts a release statement signs, read from the database."""
    if version.status not in RELEASED_STATUSES or version.content_sha256 is None:
        raise ValueError(f"version {version.id} is not released")
    dataset, publisher = session.execute(
        select(Dataset, Publisher)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .where(Dataset.id == version.dataset_id)
    ).one()
    event_hash = session.execute(
        select(AuditEvent.hash)
        .where(
            AuditEvent.action == "version.published",
            AuditEvent.subject_type == "dataset_version",
            AuditEvent.subject_id == str(version.id),
        )
        .order_by(AuditEvent.id)
        .limit(1)
    ).scalar()
    assert version.published_at is not None
    return {
        "type": STATEMENT_TYPE,
        "issuer": issuer,
        "publisher": publisher.slug,
        "dataset": dataset.slug,
        "version": version.version,
        "content_sha256": version.content_sha256,
        "row_count": version.row_count,
        "license": {"id": dataset.license_id, "url": dataset.license_url},
        "published_at": version.published_at.isoformat(),
        "published_by": version.published_by,
        "audit_event_hash": event_hash,
    }


def ensure_release_statement(
    session: Session, keys: ReleaseKeys, *, version: DatasetVersion, now: datetime | None = None
) -> ReleaseStatement:
    """The version's signed statement: the recorded one, or signed now and recorded."""
    existing = session.get(ReleaseStatement, version.id)
    if existing is not None:
        return existing
    signed_at = now or utcnow()
    body = release_statement_body(session, version, issuer=keys.settings.issuer)
    key = keys.active_key(session, actor=SYSTEM_ACTOR, now=signed_at)
    statement = ReleaseStatement(
        version_id=version.id,
        kid=key.kid,
        signed_at=signed_at,
        jws=sign(canonical_json(body), key=key, typ=TYP_RELEASE, signed_at=signed_at),
    )
    try:
        with session.begin_nested():
            session.add(statement)
    except IntegrityError:  # another request signed it first: serve that one
        found = session.get(ReleaseStatement, version.id)
        assert found is not None
        return found
    return statement


def sign_checkpoint(
    session: Session, keys: ReleaseKeys, *, actor: str = SYSTEM_ACTOR, now: datetime | None = None
) -> AuditCheckpoint:
    """Sign the chain as it stands in this transaction (its own events included)."""
    signed_at = now or utcnow()
    key = keys.active_key(session, actor=actor, now=signed_at)  # may append an event: first
    # One statement, one snapshot: the count and the head agree.
    count, head = session.execute(
        select(
            func.count(AuditEvent.id),
            select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1).scalar_subquery(),
        )
    ).one()
    # Events become visible in id order (app.core.audit), so the first `count` are the ones
    # the statement above counted, even if more were committed since.
    tree_root = root(tree_leaves(session, int(count)))
    body = {
        "type": CHECKPOINT_TYPE,
        "issuer": keys.settings.issuer,
        "event_count": int(count),
        "head_hash": head or "0" * 64,
        "tree_size": int(count),
        "root_hash": tree_root,
        "signed_at": signed_at.isoformat(),
    }
    checkpoint = AuditCheckpoint(
        event_count=body["event_count"],
        head_hash=body["head_hash"],
        root_hash=tree_root,
        signed_at=signed_at,
        kid=key.kid,
        jws=sign(canonical_json(body), key=key, typ=TYP_CHECKPOINT, signed_at=signed_at),
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.execute(
        select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)
    ).scalar()


def checkpoint_resource(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {
        "id": checkpoint.id,
        "event_count": checkpoint.event_count,
        "head_hash": checkpoint.head_hash,
        "tree_size": checkpoint.event_count if checkpoint.root_hash is not None else None,
        "root_hash": checkpoint.root_hash,
        "signed_at": checkpoint.signed_at.isoformat(),
        "kid": checkpoint.kid,
        "jws": checkpoint.jws,
    }


def sign_manifest(
    session: Session, keys: ReleaseKeys, *, snapshot_id: str, manifest: bytes, actor: str
) -> SnapshotSignature:
    """Sign a snapshot's manifest.json bytes (the JWS payload is the file itself)."""
    signed_at = utcnow()
    key = keys.active_key(session, actor=actor, now=signed_at)
    record = SnapshotSignature(
        snapshot_id=snapshot_id,
        kid=key.kid,
        jws=sign(manifest, key=key, typ=TYP_MANIFEST, signed_at=signed_at),
    )
    session.add(record)
    session.flush()
    return record


@dataclass(frozen=True)
class Extension:
    """Whether a chain (its event hashes in order) extends a checkpoint."""

    ok: bool
    reason: str | None = None


def chain_extends(hashes: Sequence[str], *, event_count: int, head_hash: str) -> Extension:
    """True when the chain has at least `event_count` events and its event number
    `event_count` is `head_hash`: what a checkpoint saw is still the start of the chain.
    (The chain's own links are checked by `verify_chain`.)"""
    if event_count == 0:
        return Extension(True)
    if len(hashes) < event_count:
        return Extension(
            False,
            f"the chain has {len(hashes)} events, fewer than the {event_count} the checkpoint "
            "signed: events were deleted",
        )
    if hashes[event_count - 1] != head_hash:
        return Extension(
            False,
            f"event number {event_count} hashes to {hashes[event_count - 1]}, not the "
            f"checkpoint's head {head_hash}: the history was rewritten",
        )
    return Extension(True)
