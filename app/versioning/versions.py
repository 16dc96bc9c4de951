"""One version as the API shows it: the catalog's record, with the content hash of a
submission that predates submit fixing it (computed from its rows)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.core.principal import Viewer
from app.datasets import service as dataset_service
from app.datasets.version_models import DatasetVersion
from app.versioning.content_hash import compute_content_sha256


def get_version(
    session: Session, *, viewer: Viewer, publisher: str, dataset: str, version: str
) -> tuple[dict[str, Any], DatasetVersion]:
    payload, target = dataset_service.get_version(
        session, viewer=viewer, publisher=publisher, dataset=dataset, version=version
    )
    if target.status == "submitted" and target.content_sha256 is None:
        # Submitted before submit fixed the hash: the reviewer still needs to read it.
        payload["content_sha256"] = compute_content_sha256(session, target.id)
    return payload, target
