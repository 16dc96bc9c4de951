"""The national reviewer's queue: submitted versions, oldest first, with what each changes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.principal import Viewer
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import DatasetVersion
from app.datasets.visibility import latest_resolvable
from app.versioning.content_hash import compute_content_sha256
from app.versioning.diff import diff_summary


def review_queue(session: Session, *, viewer: Viewer) -> list[dict[str, Any]]:
    """Every submitted version, oldest submission first: its counts against the dataset's
    current release, its upload report's counts, its content hash (what a publish names)
    and links to read it."""
    rows = session.execute(
        select(DatasetVersion, Dataset.slug.label("dataset"), Publisher.slug.label("publisher"))
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .where(DatasetVersion.status == "submitted")
        .order_by(DatasetVersion.submitted_at, DatasetVersion.id)
    ).all()
    return [_queue_item(session, row, viewer) for row in rows]


def _queue_item(session: Session, row: Any, viewer: Viewer) -> dict[str, Any]:
    version: DatasetVersion = row.DatasetVersion
    name = f"{row.publisher}/{row.dataset}"
    base = f"/v1/datasets/{name}/versions/{version.version}"
    current = latest_resolvable(session, dataset_id=version.dataset_id)
    changes: dict[str, int] | None = None
    if current is not None:
        summary = diff_summary(session, old_version_id=current.id, new_version_id=version.id)
        changes = {"added": summary.added, "removed": summary.removed, "changed": summary.changed}
    report = version.validation_report or {}
    return {
        "dataset": name,
        "version": version.version,
        "status": version.status,
        "submitted_at": version.submitted_at,
        "submitted_by": version.submitted_by,
        "row_count": version.row_count,
        "content_sha256": version.content_sha256 or compute_content_sha256(session, version.id),
        "current_release": current.version if current is not None else None,
        "changes": changes,
        "error_count": report.get("error_count"),
        "warning_count": report.get("warning_count"),
        "activity_labels": [item["activity_id"] for item in report.get("activity_labels") or []],
        # A reviewer of the same publisher reads it but cannot publish or reject it.
        "can_review": viewer.publisher != row.publisher,
        "links": {
            "version": base,
            "factors": f"{base}/factors",
            "diff": f"{base}/diff?from={current.version}" if current is not None else None,
            "publish": f"{base}/publish",
            "reject": f"{base}/reject",
        },
    }
