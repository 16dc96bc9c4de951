"""Per-dataset grants: the clients, beyond the publisher's own and the national roles, that may
read a registered dataset. Each change is audited (`dataset.grant_added`, `.grant_removed`;
subject `dataset_grant`, not `dataset`: a grant is no part of the data's provenance)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import Client, DatasetGrant
from app.core.audit import append_event
from app.core.errors import Conflict, NotFound
from app.datasets.models import Dataset, Publisher


def find_dataset(session: Session, publisher: str, dataset: str) -> Dataset:
    found = session.execute(
        select(Dataset)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .where(Publisher.slug == publisher, Dataset.slug == dataset)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"There is no dataset {publisher}/{dataset}.")
    return found


def _payload(grant: DatasetGrant, label: str) -> dict[str, Any]:
    return {
        "dataset": label,
        "client_id": grant.client_id,
        "granted_by": grant.granted_by,
        "granted_at": grant.granted_at,
    }


def add_grant(
    session: Session, *, publisher: str, dataset: str, client_id: str, actor: str
) -> tuple[dict[str, Any], bool]:
    """Grant `client_id` reading `publisher/dataset`; (the grant, whether it is new). Granting
    again changes nothing. Public datasets need no grant: 409."""
    target = find_dataset(session, publisher, dataset)
    label = f"{publisher}/{dataset}"
    if target.access == "public":
        raise Conflict(f"{label} is public: every reader sees it, no grant is needed.")
    if session.execute(select(Client.id).where(Client.client_id == client_id)).first() is None:
        raise NotFound(f"There is no client {client_id}.")
    existing = session.execute(
        select(DatasetGrant).where(
            DatasetGrant.dataset_id == target.id, DatasetGrant.client_id == client_id
        )
    ).scalar_one_or_none()
    if existing is not None:
        return _payload(existing, label), False
    grant = DatasetGrant(client_id=client_id, dataset_id=target.id, granted_by=actor)
    session.add(grant)
    session.flush()
    append_event(
        session,
        actor=actor,
        action="dataset.grant_added",
        subject_type="dataset_grant",
        subject_id=label,
        payload={"client_id": client_id},
    )
    return _payload(grant, label), True


def remove_grant(
    session: Session, *, publisher: str, dataset: str, client_id: str, actor: str
) -> None:
    """End `client_id`'s grant on the dataset (at once: grants are read with every token)."""
    target = find_dataset(session, publisher, dataset)
    label = f"{publisher}/{dataset}"
    grant = session.execute(
        select(DatasetGrant).where(
            DatasetGrant.dataset_id == target.id, DatasetGrant.client_id == client_id
        )
    ).scalar_one_or_none()
    if grant is None:
        raise NotFound(f"{client_id} holds no grant on {label}.")
    session.delete(grant)
    append_event(
        session,
        actor=actor,
        action="dataset.grant_removed",
        subject_type="dataset_grant",
        subject_id=label,
        payload={"client_id": client_id},
    )


def list_grants(
    session: Session, *, publisher: str | None = None, dataset: str | None = None
) -> list[dict[str, Any]]:
    """Grants, by dataset then client: of one dataset, one publisher's, or all."""
    query = (
        select(DatasetGrant, Publisher.slug, Dataset.slug)
        .join(Dataset, Dataset.id == DatasetGrant.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .order_by(Publisher.slug, Dataset.slug, DatasetGrant.client_id)
    )
    if publisher is not None:
        if dataset is not None:
            find_dataset(session, publisher, dataset)
            query = query.where(Dataset.slug == dataset)
        query = query.where(Publisher.slug == publisher)
    return [_payload(grant, f"{p}/{d}") for grant, p, d in session.execute(query)]
