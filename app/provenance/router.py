"""The audit log, for administrators: read it, and verify its hash chain end to end."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
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
from app.factors.router import FactorCode, VersionPin
from app.provenance.factor_chain import factor_provenance
from app.provenance.prov import prov_document

router = APIRouter(tags=["audit"])
# A factor's provenance, under its URL (app/main.py includes it after the factors' routes).
factor_router = APIRouter(prefix="/v1/factors", tags=["factors"])


class AuditEventRead(BaseModel):
    id: int
    occurred_at: str
    actor: str
    action: str
    subject_type: str
    subject_id: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEventRead]
    next: str | None


class ChainVerdictRead(BaseModel):
    ok: bool
    events: int
    first_bad_event: int | None
    reason: str | None


@router.get("/v1/audit", response_model=AuditPage, summary="Audit events, oldest first")
def list_audit_events(
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
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
        }
        for e in events
    ]
    next_cursor = id_cursor(events[-1].id if more else None, {})
    return page_response(request, items, next_cursor, cache_control=PRIVATE)


@router.get(
    "/v1/audit/verify", response_model=ChainVerdictRead, summary="Verify the audit hash chain"
)
def verify_audit_chain(session: SessionDep, principal: AdminDep) -> ChainVerdictRead:
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
    responses={
        200: {
            "description": "The provenance chain; with `format=prov`, a W3C PROV-JSON document",
            "content": {"application/json": {}},
        }
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
    payload = factor_provenance(
        session,
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        factor_code=factor_code,
        version=version,
    )
    if output == "prov":
        base = request.app.state.settings.public_url
        payload = prov_document(payload, namespace=f"{base}/v1/")
    # A withdrawal changes a release's provenance, so even a pinned one is not immutable.
    return cached_json(request, payload, cache_control=SHORT_LIVED)
