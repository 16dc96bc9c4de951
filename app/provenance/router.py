"""The audit log, for administrators: read it, and verify its hash chain end to end."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.auth.dependencies import AdminDep
from app.auth.viewer import ViewerDep
from app.core.audit import verify_chain
from app.core.db import SessionDep
from app.core.http_cache import PRIVATE, SHORT_LIVED, cached_json
from app.core.models import AuditEvent
from app.core.pagination import after_id_from_cursor, id_cursor, page_response
from app.core.params import (
    DEFAULT_PAGE,
    Cursor,
    DatasetSlug,
    Limit,
    PublisherSlug,
    only_query_params,
)
from app.datasets import usage
from app.factors.router import FactorCode, VersionPin
from app.provenance.factor_chain import factor_provenance
from app.provenance.prov import prov_document
from app.provenance.schemas import ProvenanceChain, ProvJsonDocument

router = APIRouter(tags=["audit"])
# A factor's provenance, under its URL (app/main.py includes it after the factors' routes).
factor_router = APIRouter(prefix="/v1/factors", tags=["factors"])


class AuditEventRead(BaseModel):
    """One state change in the append-only audit log, chained to the one before by its hash."""

    id: int = Field(description="Position in the log (increasing)")
    occurred_at: str = Field(
        description="When it happened: RFC 3339 timestamp in UTC, e.g. 2026-12-03T14:05:00+00:00"
    )
    actor: str = Field(
        description="Who did it: a client_id, or `cli:<login>` for an operator's command"
    )
    action: str = Field(description="What happened, e.g. `version.published`, `client.created`")
    subject_type: str = Field(description="Kind of thing changed, e.g. `dataset_version`")
    subject_id: str = Field(description="Which one: its identifier within `subject_type`")
    payload: dict[str, Any] = Field(description="Details of the change, by action")
    prev_hash: str = Field(
        description="`hash` of the event before (64 zeros for the first), hex sha256"
    )
    hash: str = Field(
        description="sha256(prev_hash ‖ canonical JSON of the event), hex: recomputable by "
        "anyone holding the log"
    )
    leaf_hash: str | None = Field(
        description="The event's leaf in the audit Merkle tree: sha256(0x00 ‖ canonical JSON "
        "of the event), hex; the signed checkpoints' `root_hash` is the RFC 9162 root over "
        "these leaves in `id` order"
    )


class AuditPage(BaseModel):
    """One page of the audit log, oldest first."""

    items: list[AuditEventRead] = Field(description="The events of this page (at most `limit`)")
    next: str | None = Field(
        description="Root-relative URL of the next page; null on the last page"
    )


class ChainVerdictRead(BaseModel):
    """Whether every event's hash still matches its content and the event before it."""

    ok: bool = Field(description="True when the whole chain verifies")
    events: int = Field(description="Events checked (up to the first bad one)")
    first_bad_event: int | None = Field(description="id of the first event that fails")
    reason: str | None = Field(description="Why that event fails, for a person")


@router.get("/v1/audit", response_model=AuditPage, summary="Audit events, oldest first")
def list_audit_events(
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    """The audit log (client created, upload, submit, publish, withdraw, snapshot, …), oldest
    first, a page of at most `limit` events with each event's hash-chain links. Needs the
    `admin` scope: 401 without a valid token, 403 without the scope."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    after_id = after_id_from_cursor(cursor, {})
    if after_id is not None:
        query = query.where(AuditEvent.id > after_id)
    events = session.execute(query.limit(limit + 1)).scalars().all()
    more = len(events) > limit
    events = events[:limit]
    items = [
        {
            "id": e.id,
            "occurred_at": e.occurred_at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "subject_type": e.subject_type,
            "subject_id": e.subject_id,
            "payload": e.payload,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
            "leaf_hash": e.leaf_hash,
        }
        for e in events
    ]
    next_cursor = id_cursor(events[-1].id if more else None, {})
    return page_response(request, items, next_cursor, cache_control=PRIVATE)


@router.get(
    "/v1/audit/verify", response_model=ChainVerdictRead, summary="Verify the audit hash chain"
)
def verify_audit_chain(session: SessionDep, principal: AdminDep) -> ChainVerdictRead:
    """Recompute every audit event's hash from its content and the event before it, and say
    whether the chain is intact or which event first breaks it. Needs the `admin` scope."""
    verdict = verify_chain(session)
    return ChainVerdictRead(
        ok=verdict.ok,
        events=verdict.events,
        first_bad_event=verdict.first_bad_event,
        reason=verdict.reason,
    )


ProvenanceFormat = Annotated[
    Literal["json", "prov"],
    Query(
        alias="format",
        description="`json`: the chain in this service's shape; `prov`: W3C PROV-JSON "
        "(entities, activities, agents and their relations, with times)",
    ),
]


@factor_router.get(
    "/{publisher}/{dataset}/{factor_code}/provenance",
    summary="Where a factor comes from: source, version, upload, review, audit and history",
    dependencies=[Depends(only_query_params(("version", "format")))],
    response_model=ProvenanceChain | ProvJsonDocument,
    responses={
        200: {"description": "The provenance chain; with `format=prov`, a W3C PROV-JSON document"}
    },
)
def get_factor_provenance(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    factor_code: FactorCode,
    version: VersionPin = None,
    output: ProvenanceFormat = "json",
) -> Response:
    """Where a factor comes from: its cited source (with locator), the dataset version, the
    upload (file, sha256, row, client, time), who submitted, reviewed and published it and when,
    the version's content hash, and the factor's values across versions. Latest release, or the
    one pinned by `version`; readable as the factor is (404 otherwise)."""
    payload = factor_provenance(
        session,
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        factor_code=factor_code,
        version=version,
    )
    usage.meter(session, viewer, [(publisher, dataset, 1)])
    if output == "prov":
        base = request.app.state.settings.public_url
        payload = prov_document(payload, namespace=f"{base}/v1/")
    # A withdrawal changes a release's provenance, so even a pinned one is not immutable.
    return cached_json(request, payload, cache_control=SHORT_LIVED)
