"""The provenance chain of one factor: source, version, upload, review, audit, history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.auth.models import Client
from app.core.errors import NotFound
from app.core.models import AuditEvent
from app.core.principal import Viewer
from app.core.problem_text import Message
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.datasets.visibility import parse_semver, visible_version_ids
from app.factors.models import Factor, Source
from app.factors.service import restrict_to_viewer
from app.versioning.history import factor_history

# The number itself and what it is a number of: enough to tell which value this chain explains.
_VALUE_FIELDS = (
    "activity_id",
    "co2e",
    "unit",
    "region",
    "reference_year",
    "gwp_set",
    "boundary",
)


def factor_provenance(
    session: Session,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    factor_code: str,
    version: str | None,
) -> dict[str, Any]:
    query = (
        select(Factor, Source, DatasetVersion, Dataset)
        .join(Source, Source.id == Factor.source_id)
        .join(DatasetVersion, DatasetVersion.id == Factor.version_id)
        .join(Dataset, Dataset.id == Factor.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .where(
            Publisher.slug == publisher,
            Dataset.slug == dataset,
            Factor.factor_code == factor_code,
        )
    )
    if version is None:
        query = query.where(Factor.version_id.in_(visible_version_ids()))
    else:
        parse_semver(version)
        query = query.where(
            DatasetVersion.version == version, DatasetVersion.status.in_(RELEASED_STATUSES)
        )
    row = session.execute(restrict_to_viewer(query, viewer)).first()
    if row is None:
        factor_id = f"{publisher}/{dataset}/{factor_code}"
        raise NotFound(
            Message("not_found.factor_in_version", factor=factor_id, version=version)
            if version
            else Message("not_found.factor_pinned", factor=factor_id)
        )
    factor: Factor = row.Factor
    source: Source = row.Source
    release: DatasetVersion = row.DatasetVersion
    owner: Dataset = row.Dataset
    events = session.execute(
        select(
            AuditEvent.action,
            AuditEvent.actor,
            AuditEvent.occurred_at,
            AuditEvent.hash,
            AuditEvent.subject_type,
        )
        .where(
            or_(
                and_(
                    AuditEvent.subject_type == "dataset_version",
                    AuditEvent.subject_id == str(release.id),
                ),
                # The dataset's own events (created, deprecated) touch every factor in it.
                and_(
                    AuditEvent.subject_type == "dataset",
                    AuditEvent.subject_id == f"{publisher}/{dataset}",
                ),
            )
        )
        .order_by(AuditEvent.id)
    ).all()
    actors = sorted(
        {
            actor
            for actor in (
                release.created_by,
                release.submitted_by,
                release.published_by,
                release.withdrawn_by,
                *(event.actor for event in events),
            )
            if actor is not None
        }
    )
    clients = {
        client_id: slug
        for client_id, slug in session.execute(
            select(Client.client_id, Publisher.slug)
            .outerjoin(Publisher, Publisher.id == Client.publisher_id)
            .where(Client.client_id.in_(actors))
        )
    }
    successor = None
    if owner.superseded_by_id is not None:
        successor_row = session.execute(
            select(Publisher.slug, Dataset.slug)
            .join(Dataset, Dataset.publisher_id == Publisher.id)
            .where(Dataset.id == owner.superseded_by_id)
        ).one()
        successor = f"{successor_row[0]}/{successor_row[1]}"
    return {
        "id": f"{publisher}/{dataset}/{factor_code}@{release.version}",
        "factor": {
            "id": factor.id,
            "uid": factor.uid,
            "factor_code": factor.factor_code,
            **{name: getattr(factor, name) for name in _VALUE_FIELDS},
        },
        "source": {
            "id": source.id,
            "title": source.title,
            "publisher": source.publisher,
            "year": source.year,
            "url": source.url,
            "doi": source.doi,
            "locator": factor.source_locator,
        },
        "publisher": publisher,
        "dataset_version": {
            "dataset": f"{publisher}/{dataset}",
            "version": release.version,
            "status": release.status,
            "content_sha256": release.content_sha256,
            "created_by": release.created_by,
            "created_at": release.created_at,
            "submitted_by": release.submitted_by,
            "submitted_at": release.submitted_at,
            "published_by": release.published_by,
            "published_at": release.published_at,
            "withdrawn_by": release.withdrawn_by,
            "withdrawn_at": release.withdrawn_at,
            "withdrawn_reason": release.withdrawn_reason,
        },
        "upload": {
            "file_name": release.upload_file_name,
            "file_sha256": release.upload_file_sha256,
            "format": release.upload_format,
            "row_number": factor.row_number,
            "uploaded_by": release.created_by,
            "uploaded_at": release.created_at,
        },
        "audit_events": [event._asdict() for event in events],
        # Who each actor above is: an OAuth2 client of this service (and of which publisher,
        # none for a national reviewer), or not a client (an administrator's direct load).
        "actors": [
            {"id": actor, "client": actor in clients, "publisher": clients.get(actor)}
            for actor in actors
        ],
        "history": factor_history(
            session, viewer=viewer, publisher=publisher, dataset=dataset, factor_code=factor_code
        ),
        "dataset_status": owner.status,
        "superseded_by": successor,
        "license_id": owner.license_id,
        "attribution": owner.attribution,
        "license_url": owner.license_url,
    }
