"""`efdb audit verify`, deeper than the chain: what the database holds is what was released.

- the audit chain's links (app.core.audit.verify_chain);
- every release's rows still hash to its recorded `content_sha256`, which is still the one its
  `version.published` event and its signed statement name;
- every version's status is the one its audit events lead to (replayed: a publish deprecates
  the dataset's current release; a withdrawal of the current release makes the newest
  remaining release current again);
- the chain still extends every checkpoint signed here, and any saved checkpoint given;
- every event's stored Merkle leaf is the one its content hashes to, and the tree of the first
  `event_count` events still has the root each checkpoint signed (those signed since the tree
  exists): what the public consistency proofs are computed from is the chain itself.

Each discrepancy names what it is about (event id, version id and release key).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.audit import event_bytes, verify_chain
from app.core.merkle import leaf_hash, roots_at
from app.core.models import AuditEvent
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.signing.jws import TYP_CHECKPOINT, SignatureProblem, verify
from app.signing.keys import published_keys
from app.signing.models import AuditCheckpoint, ReleaseStatement
from app.signing.statements import chain_extends
from app.versioning.content_hash import compute_content_sha256


@dataclass(frozen=True)
class Discrepancy:
    kind: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


def _labels(session: Session) -> dict[int, tuple[str, DatasetVersion]]:
    rows = session.execute(
        select(DatasetVersion, Dataset.slug, Publisher.slug)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
    ).all()
    return {
        version.id: (f"{publisher}/{dataset}@{version.version} (version id {version.id})", version)
        for version, dataset, publisher in rows
    }


def _published_events(session: Session) -> dict[str, AuditEvent]:
    events = session.execute(
        select(AuditEvent).where(AuditEvent.action == "version.published").order_by(AuditEvent.id)
    ).scalars()
    return {event.subject_id: event for event in events}


def check_contents(session: Session) -> list[Discrepancy]:
    """Each release's rows against its recorded, audited and signed content hash."""
    found = []
    published = _published_events(session)
    statements = {s.version_id: s for s in session.execute(select(ReleaseStatement)).scalars()}
    for label, version in _labels(session).values():
        if version.status not in RELEASED_STATUSES:
            continue
        recomputed = compute_content_sha256(session, version.id)
        if recomputed != version.content_sha256:
            found.append(
                Discrepancy(
                    "content",
                    label,
                    f"its rows hash to {recomputed}, not its recorded content_sha256 "
                    f"{version.content_sha256}",
                )
            )
        event = published.get(str(version.id))
        audited = event.payload.get("content_sha256") if event is not None else None
        if event is None:
            found.append(Discrepancy("content", label, "released, but no version.published event"))
        elif audited != version.content_sha256:
            found.append(
                Discrepancy(
                    "content",
                    label,
                    f"recorded content_sha256 {version.content_sha256} is not the "
                    f"{audited} of its version.published event {event.id}",
                )
            )
        statement = statements.get(version.id)
        if statement is not None:
            signed = _payload(statement.jws).get("content_sha256")
            if signed != version.content_sha256:
                found.append(
                    Discrepancy(
                        "content",
                        label,
                        f"recorded content_sha256 {version.content_sha256} is not the {signed} "
                        "its signed release statement names",
                    )
                )
    return found


def _payload(token: str) -> dict[str, Any]:
    import base64

    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def replay_statuses(session: Session) -> list[Discrepancy]:
    """Each version's status against the one its audit events lead to."""
    labels = _labels(session)
    expected: dict[int, str] = {}
    by_dataset: dict[int, list[int]] = defaultdict(list)
    for version_id, (_, version) in labels.items():
        by_dataset[version.dataset_id].append(version_id)

    def semver(version_id: int) -> tuple[int, int, int]:
        version = labels[version_id][1]
        return (version.major, version.minor, version.patch)

    events = session.execute(
        select(AuditEvent)
        .where(AuditEvent.subject_type == "dataset_version")
        .order_by(AuditEvent.id)
    ).scalars()
    for event in events:
        if not event.subject_id.isdigit() or int(event.subject_id) not in labels:
            continue
        version_id = int(event.subject_id)
        siblings = by_dataset[labels[version_id][1].dataset_id]
        if event.action == "version.published":
            for other in siblings:
                if expected.get(other) == "published":
                    expected[other] = "deprecated"
            expected[version_id] = "published"
        elif event.action == "version.withdrawn":
            was_current = expected.get(version_id) == "published"
            expected[version_id] = "withdrawn"
            if was_current:
                resolvable = [v for v in siblings if expected.get(v) == "deprecated"]
                if resolvable:
                    expected[max(resolvable, key=semver)] = "published"
        elif event.action == "version.rejected":
            expected[version_id] = "rejected"
        elif event.action == "version.submitted":
            expected[version_id] = "submitted"
    found = []
    for version_id, (label, version) in sorted(labels.items()):
        should = expected.get(version_id)
        released = version.status in RELEASED_STATUSES or should in RELEASED_STATUSES
        if released and version.status != should:
            found.append(
                Discrepancy(
                    "status",
                    label,
                    f"status is {version.status}, but its audit events lead to "
                    f"{should or 'no release'}",
                )
            )
    return found


def _hashes(session: Session) -> list[str]:
    return list(session.execute(select(AuditEvent.hash).order_by(AuditEvent.id)).scalars())


def check_leaves(session: Session) -> tuple[list[str], list[Discrepancy]]:
    """Each event's Merkle leaf recomputed from its content, against the stored one. Returns
    the recomputed leaves (in event order) and each event whose stored leaf differs."""
    leaves, found = [], []
    for event in session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars():
        leaf = leaf_hash(event_bytes(event))
        leaves.append(leaf)
        if event.leaf_hash != leaf:
            found.append(
                Discrepancy(
                    "merkle",
                    f"audit event {event.id}",
                    f"stored leaf hash {event.leaf_hash} is not the {leaf} its content hashes "
                    "to: the public consistency proofs would not describe this log",
                )
            )
    return leaves, found


def check_checkpoints(
    session: Session,
    saved: Sequence[str] = (),
    *,
    hashes: list[str] | None = None,
    leaves: list[str] | None = None,
) -> list[Discrepancy]:
    """The chain against every checkpoint recorded here and every saved one (JWS compact;
    a saved one must verify with this service's release keys): the head still at its place,
    and, for a checkpoint with a Merkle root, the tree of its events still with that root."""
    hashes = hashes if hashes is not None else _hashes(session)
    found = []
    claims: list[tuple[str, int, str, str | None]] = []
    for c in session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).scalars():
        signed = _payload(c.jws)
        if (signed.get("event_count"), signed.get("head_hash"), signed.get("root_hash")) != (
            c.event_count,
            c.head_hash,
            c.root_hash,
        ):
            found.append(
                Discrepancy(
                    "checkpoint",
                    f"checkpoint {c.id}",
                    "its recorded count, head or root is not the one it signed",
                )
            )
        claims.append((f"checkpoint {c.id}", c.event_count, c.head_hash, signed.get("root_hash")))
    jwks = {"keys": published_keys(session)}
    for index, token in enumerate(saved, start=1):
        try:
            body = verify(token, jwks, typ=TYP_CHECKPOINT).json()
        except SignatureProblem as exc:
            found.append(Discrepancy("checkpoint", f"saved checkpoint {index}", str(exc)))
            continue
        claims.append(
            (
                f"saved checkpoint {index} (signed {body['signed_at']})",
                int(body["event_count"]),
                str(body["head_hash"]),
                body.get("root_hash"),
            )
        )
    if leaves is None:
        leaves = check_leaves(session)[0]
    roots = roots_at(leaves, {count for _, count, _, root in claims if root is not None})
    for name, count, head, signed_root in claims:
        extension = chain_extends(hashes, event_count=count, head_hash=head)
        if not extension.ok:
            found.append(Discrepancy("checkpoint", name, str(extension.reason)))
        elif signed_root is not None and roots.get(count) != signed_root:
            found.append(
                Discrepancy(
                    "checkpoint",
                    name,
                    f"the Merkle tree of the first {count} events has root {roots.get(count)}, "
                    f"not the signed {signed_root}: the history was rewritten",
                )
            )
    return found


@dataclass(frozen=True)
class DeepVerdict:
    events: int
    releases: int
    checkpoints: int
    discrepancies: list[Discrepancy]
    chain_broken_at: int | None = None
    chain_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.chain_broken_at is None and not self.discrepancies


def deep_verify(session: Session, *, saved_checkpoints: Sequence[str] = ()) -> DeepVerdict:
    chain = verify_chain(session)
    leaves, leaf_problems = check_leaves(session)
    discrepancies = [
        *check_contents(session),
        *replay_statuses(session),
        *leaf_problems,
        *check_checkpoints(session, saved_checkpoints, leaves=leaves),
    ]
    releases = sum(
        1 for _, version in _labels(session).values() if version.status in RELEASED_STATUSES
    )
    checkpoints = len(list(session.execute(select(AuditCheckpoint.id)).scalars()))
    return DeepVerdict(
        events=chain.events,
        releases=releases,
        checkpoints=checkpoints + len(saved_checkpoints),
        discrepancies=discrepancies,
        chain_broken_at=chain.first_bad_event,
        chain_reason=chain.reason,
    )
