"""Liveness and readiness probes, and the Prometheus metrics."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.auth.dependencies import authenticate
from app.changes.webhooks import pending_deliveries
from app.core.config import Settings
from app.core.db import SessionDep, make_sessionmaker
from app.core.errors import problem_response
from app.core.metrics import Metrics, pool_families, webhook_backlog_family
from app.core.migrations import current_revision, head_revision
from app.exports.store import ExportStore, store_problem

router = APIRouter(tags=["operations"])


class Liveness(BaseModel):
    """The process serves requests."""

    status: Literal["ok"] = Field(description="Always `ok`")


@router.get("/healthz", response_model=Liveness, summary="The process is up")
def healthz() -> Liveness:
    """Liveness probe: answers `{"status": "ok"}` while the process serves requests, without
    touching the database; no token needed."""
    return Liveness(status="ok")


def _unavailable(detail: str, **extra: Any) -> JSONResponse:
    return problem_response(
        status=503,
        code="not-ready",
        title="Not ready",
        detail=detail,
        instance="/readyz",
        extra=extra,
    )


class Readiness(BaseModel):
    """All of the readiness checks passed."""

    status: Literal["ok"] = Field(description="Always `ok` (a failed check answers 503)")
    database: Literal["ok"] = Field(description="The database answers")
    migration: str = Field(description="The database's migration revision")
    head: str = Field(description="The code's head migration (equal to `migration`)")
    export_dir: Literal["ok"] = Field(
        description="The export store (directory or object store) answers and is this database's"
    )


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database is reachable and migrated to head, and the export store is its own",
)
def readyz(request: Request) -> JSONResponse:
    """Readiness probe: `{"status": "ok", "database", "migration", "head", "export_dir"}` when the
    database answers, its schema is at the head migration and the export store (the directory, or
    the object store when configured: reached, its marker read) belongs to this database;
    otherwise 503 problem details saying which check failed. No token needed."""
    engine = request.app.state.engine
    export_store: ExportStore = request.app.state.export_store
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
        # On first start this names the database and marks the export store as its own.
        with make_sessionmaker(engine).begin() as session:
            problem = store_problem(session, export_store)
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


def _from_metrics_network(request: Request, settings: Settings) -> bool:
    try:
        address = ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    return any(address in network for network in settings.metrics_networks)


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests by route and status, what the bounds refused, "
    "uploads, batches, snapshots, database pools and the webhook backlog",
    description="The Prometheus text format. Open to the addresses in `EFDB_METRICS_NETWORKS` "
    "(default loopback); from anywhere else it needs a bearer token with the `admin` scope.",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        401: {"description": "Not from a metrics network, and no token"},
        403: {"description": "The token lacks the `admin` scope"},
    },
    openapi_extra={"security": [{}, {"OAuth2": ["admin"]}]},
)
def metrics(request: Request, session: SessionDep) -> Response:
    settings: Settings = request.app.state.settings
    if not _from_metrics_network(request, settings):
        authenticate(request, session, frozenset({"admin"}))
    registry: Metrics = request.app.state.metrics
    # Read now, once per scrape: this worker's pools and the webhook backlog.
    engines = {"primary": request.app.state.engine}
    if getattr(request.app.state, "read_engine", None) is not None:
        engines["replica"] = request.app.state.read_engine
    scraped = list(pool_families(engines))
    try:
        scraped.append(webhook_backlog_family(pending_deliveries(session)))
    except SQLAlchemyError:  # the database is down: the other metrics still answer
        session.rollback()
    body, media_type = registry.exposition(*scraped)
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})
