"""The life cycle of a version: draft → submitted → published → deprecated | withdrawn.

Each transition checks the state it starts from, records who and when, and appends an audit
event in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.core.audit import append_event
from app.core.db import utcnow
from app.core.errors import Conflict
from app.core.problem_text import Message
from app.datasets.service import check_four_eyes
from app.datasets.version_models import RESOLVABLE_STATUSES, DatasetVersion
from app.datasets.visibility import latest_released, latest_resolvable
from app.publishing import draft_rows
from app.publishing.publish import publish
from app.signing.keys import ReleaseKeys
from app.signing.statements import sign_checkpoint
from app.versioning.content_hash import compute_content_sha256


def _what_happened(version: DatasetVersion) -> str | Message:
    """ "published by r-1 at 2026-12-04T02:00:00+00:00", for a conflict's detail."""
    by, at = {
        "submitted": (version.submitted_by, version.submitted_at),
        "published": (version.published_by, version.published_at),
        "rejected": (version.rejected_by, version.rejected_at),
        "withdrawn": (version.withdrawn_by, version.withdrawn_at),
        "deprecated": (None, version.deprecated_at),
    }.get(version.status, (None, None))
    status = version.status
    if by is not None and at is not None:
        return Message("status.by_at", status=status, by=by, at=at.isoformat())
    if by is not None:
        return Message("status.by", status=status, by=by)
    if at is not None:
        return Message("status.at", status=status, at=at.isoformat())
    return status


def _expect(version: DatasetVersion, label: str, *statuses: str) -> None:
    """Checked under the dataset's lock: when another request changed the version first, the
    conflict says what it did, by whom and when."""
    if version.status not in statuses:
        raise Conflict(
            Message(
                "workflow.wrong_status",
                label=label,
                state=_what_happened(version),
                needed=" or ".join(statuses),
            ),
            extra={"status": version.status},
        )


def _audit(
    session: Session,
    version: DatasetVersion,
    actor: str,
    action: str,
    now: datetime | None,
    **payload: object,
) -> None:
    append_event(
        session,
        actor=actor,
        action=action,
        subject_type="dataset_version",
        subject_id=str(version.id),
        payload={"version": version.version, **payload},
        occurred_at=now,
    )


def submit(
    session: Session,
    *,
    version: DatasetVersion,
    label: str,
    actor: str,
    now: datetime | None = None,
) -> None:
    _expect(version, label, "draft")
    # Its rows leave `factor_draft` for `factor`, where the reviewers and every read path find
    # them (app.publishing.draft_rows); moved while the version is still a draft.
    draft_rows.move_into_factors(session, version.id)
    # Frozen from here on: the hash the reviewer reads is the one the publish must name.
    version.content_sha256 = compute_content_sha256(session, version.id)
    version.status = "submitted"
    version.submitted_at = now or utcnow()
    version.submitted_by = actor
    _audit(session, version, actor, "version.submitted", version.submitted_at)


def approve(
    session: Session,
    *,
    version: DatasetVersion,
    label: str,
    reviewer: str,
    reviewer_publisher: str | None,
    owner_publisher: str,
    reviewed_sha256: str,
    now: datetime | None = None,
    keys: ReleaseKeys | None = None,
) -> None:
    _expect(version, label, "submitted")
    check_four_eyes(reviewer_publisher, owner_publisher, label, "publish")
    latest = latest_released(session, dataset_id=version.dataset_id)
    if latest is not None and (version.major, version.minor, version.patch) <= (
        latest.major,
        latest.minor,
        latest.patch,
    ):
        raise Conflict(
            Message(
                "workflow.not_newer",
                label=label,
                latest=latest.version,
                state=_what_happened(latest),
            ),
            extra={"latest_release": latest.version},
        )
    publish(
        session,
        version=version,
        reviewer=reviewer,
        now=now,
        reviewed_sha256=reviewed_sha256,
        keys=keys,
    )


def reject(
    session: Session,
    *,
    version: DatasetVersion,
    label: str,
    reviewer: str,
    reviewer_publisher: str | None,
    owner_publisher: str,
    reason: str,
    now: datetime | None = None,
) -> None:
    _expect(version, label, "submitted")
    check_four_eyes(reviewer_publisher, owner_publisher, label, "reject")
    version.status = "rejected"
    version.rejected_at = now or utcnow()
    version.rejected_by = reviewer
    version.rejected_reason = reason
    _audit(session, version, reviewer, "version.rejected", version.rejected_at, reason=reason)


def withdraw(
    session: Session,
    *,
    version: DatasetVersion,
    label: str,
    reviewer: str,
    reviewer_publisher: str | None,
    owner_publisher: str,
    reason: str,
    now: datetime | None = None,
    keys: ReleaseKeys | None = None,
) -> None:
    _expect(version, label, *RESOLVABLE_STATUSES)
    check_four_eyes(reviewer_publisher, owner_publisher, label, "withdraw")
    was_current = version.status == "published"
    version.status = "withdrawn"
    version.withdrawn_at = now or utcnow()
    version.withdrawn_by = reviewer
    version.withdrawn_reason = reason
    session.flush()
    restored = latest_resolvable(session, dataset_id=version.dataset_id) if was_current else None
    if restored is not None:
        # The release it had superseded answers "latest" again, so it is current again.
        restored.status = "published"
        restored.deprecated_at = None
    _audit(
        session,
        version,
        reviewer,
        "version.withdrawn",
        version.withdrawn_at,
        reason=reason,
        current=restored.version if restored is not None else None,
    )
    if keys is not None:
        sign_checkpoint(session, keys, actor=reviewer)


def delete_draft(
    session: Session,
    *,
    version: DatasetVersion,
    label: str,
    actor: str,
    now: datetime | None = None,
) -> None:
    _expect(version, label, "draft")
    _audit(session, version, actor, "version.draft_deleted", now)
    draft_rows.delete_rows(session, version.id)
    session.delete(version)
    session.flush()
