"""The audit log, for administrators: read it, and verify its hash chain end to end."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import select

from app.auth.dependencies import AdminDep
from app.core.audit import verify_chain
from app.core.db import SessionDep
from app.core.http_cache import PRIVATE
from app.core.models import AuditEvent
from app.core.pagination import after_id_from_cursor, id_cursor, page_response
from app.core.params import DEFAULT_PAGE, Cursor, Limit

router = APIRouter(tags=["audit"])


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
