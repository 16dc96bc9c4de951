"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.core.errors import problem_response
from app.core.migrations import current_revision, head_revision
from app.exports.store import store_problem

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    """Liveness probe: answers `{"status": "ok"}` while the process serves requests, without
    touching the database; no token needed."""
    return {"status": "ok"}


def _unavailable(detail: str, **extra: Any) -> JSONResponse:
    return problem_response(
        status=503,
        code="not-ready",
        title="Not ready",
        detail=detail,
        instance="/readyz",
        extra=extra,
    )


@router.get(
    "/readyz",
    summary="The database is reachable and migrated to head, and the export directory is its own",
)
def readyz(request: Request) -> JSONResponse:
    """Readiness probe: `{"status": "ok", "database", "migration", "head", "export_dir"}` when the
    database answers, its schema is at the head migration and the export directory belongs to this
    database; otherwise 503 problem details saying which check failed. No token needed."""
    engine = request.app.state.engine
    settings: Settings = request.app.state.settings
    head = head_revision()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = current_revision(engine)
    except SQLAlchemyError:
        return _unavailable(
            "The database is unreachable.", database="unreachable", migration=None, head=head
        )
    if current != head:
        return _unavailable(
            f"The database is at migration {current}, not at head {head}; run `efdb db upgrade`.",
            database="ok",
            migration=current,
            head=head,
        )
    try:
        # On first start this names the database and marks the export directory as its own.
        with make_sessionmaker(engine).begin() as session:
            problem = store_problem(session, settings.export_dir)
    except SQLAlchemyError:
        return _unavailable(
            "The database is unreachable.", database="unreachable", migration=current, head=head
        )
    if problem is not None:
        return _unavailable(
            problem, database="ok", migration=current, head=head, export_dir="mismatch"
        )
    return JSONResponse(
        {"status": "ok", "database": "ok", "migration": current, "head": head, "export_dir": "ok"}
    )
