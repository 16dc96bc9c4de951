"""Consistency proofs of the audit log's Merkle tree, for anyone holding an old checkpoint.

A checkpoint signs the root of the tree over the first `event_count` events. Between two sizes
m ≤ n the service answers the RFC 9162 consistency proof computed from the stored leaves; with
the two signed roots, that proof shows (to someone who sees no event) that the tree of n
events starts with exactly the m events the older checkpoint covered: nothing it covered was
deleted or rewritten since.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.audit import tree_leaves
from app.core.errors import InvalidParameter, NotFound
from app.core.merkle import consistency_proof, root
from app.signing.models import AuditCheckpoint
from app.signing.statements import checkpoint_resource


def latest_rooted_checkpoint(
    session: Session, *, size: int | None = None
) -> AuditCheckpoint | None:
    """The newest checkpoint that signs a Merkle root (of `size` events, when given)."""
    query = select(AuditCheckpoint).where(AuditCheckpoint.root_hash.is_not(None))
    if size is not None:
        query = query.where(AuditCheckpoint.event_count == size)
    return session.execute(query.order_by(AuditCheckpoint.id.desc()).limit(1)).scalar()


def prove_consistency(session: Session, *, first: int, second: int | None) -> dict[str, Any]:
    """The proof between tree sizes `first` and `second` (default: the latest signed
    checkpoint's), both roots as computed now, and the signed checkpoint of size `second`."""
    if second is None:
        latest = latest_rooted_checkpoint(session)
        if latest is None:
            raise NotFound(
                "No checkpoint with a Merkle root has been signed yet: nothing to prove against."
            )
        second = latest.event_count
    if first > second:
        raise InvalidParameter(
            f"first ({first}) is larger than second ({second}): a consistency proof goes from "
            "an older, smaller tree to a newer one.",
            errors=[{"loc": ["query", "first"], "code": "too_large", "detail": "first > second"}],
        )
    leaves = tree_leaves(session, second)
    if len(leaves) < second:
        raise NotFound(
            f"The audit log has {len(leaves)} events: there is no tree of size {second}."
        )
    checkpoint = latest_rooted_checkpoint(session, size=second)
    return {
        "first": first,
        "second": second,
        "first_root": root(leaves[:first]),
        "second_root": root(leaves),
        "proof": consistency_proof(first, leaves),
        "checkpoint": checkpoint_resource(checkpoint) if checkpoint is not None else None,
    }
