"""Liveness and readiness probes, and the Prometheus metrics."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.auth.dependencies import authenticate
from app.changes.webhooks import pending_deliveries
from app.core.config import Settings
from app.core.db import SessionDep, make_sessionmaker
from app.core.errors import problem_response
from app.core.metrics import (
    Metrics,
    pool_families,
    replica_lag_family,
    webhook_backlog_family,
)
from app.core.migrations import current_revision, head_revision
from app.core.replica import reads_primary
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
    replica: Literal["ok"] | None = Field(
        default=None,
        description="With a read replica (`EFDB_READ_DATABASE_URL`): it answers and is in "
        "recovery (streaming from a primary); absent without one",
    )
    replica_lag_bytes: int | None = Field(
        default=None,
        description="WAL the primary has flushed that the replica has yet to replay, in bytes "
        "(at rest, at most the part of a record still being written)",
    )
    replica_replayed_at: str | None = Field(
        default=None,
        description="Commit time (ISO 8601) of the newest transaction the replica has replayed",
    )


# On the replica: whether it is one, what it has replayed, and when that was committed.
_REPLICA_STATE = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp()"
)
_BYTES_BEHIND = text("SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), CAST(:lsn AS pg_lsn))")


def replica_state(primary: Engine, replica: Engine) -> dict[str, Any]:
    """The replica's readiness fields (`Readiness`): `replica` is `ok`, `unreachable` or
    `not-replicating` (answers but is not in recovery)."""
    try:
        with replica.connect() as connection:
            in_recovery, replayed, replayed_at = connection.execute(_REPLICA_STATE).one()
    except SQLAlchemyError:
        return {"replica": "unreachable"}
    if not in_recovery or replayed is None:
        return {"replica": "not-replicating"}
    with primary.connect() as connection:
        behind = connection.execute(_BYTES_BEHIND, {"lsn": replayed}).scalar_one()
    return {
        "replica": "ok",
        "replica_lag_bytes": max(int(behind), 0),
        "replica_replayed_at": None if replayed_at is None else replayed_at.isoformat(),
    }


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database is reachable and migrated to head, and the export store is its own",
)
def readyz(request: Request) -> JSONResponse:
    """Readiness probe: `{"status": "ok", "database", "migration", "head", "export_dir"}` when the
    database answers, its schema is at the head migration and the export store (the directory, or
    the object store when configured: reached, its marker read) belongs to this database;
    otherwise 503 problem details saying which check failed. With a read replica, also
    `replica` (503 when it is unreachable or not in recovery) and its lag: `replica_lag_bytes`
    and `replica_replayed_at`. No token needed."""
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
    checks: dict[str, Any] = {
        "database": "ok",
        "migration": current,
        "head": head,
        "export_dir": "ok",
    }
    read_engine: Engine | None = getattr(request.app.state, "read_engine", None)
    if read_engine is not None:
        try:
            replica = replica_state(engine, read_engine)
        except SQLAlchemyError:
            return _unavailable(
                "The database is unreachable.", **checks | {"database": "unreachable"}
            )
        if replica["replica"] != "ok":
            detail = (
                "The read replica is unreachable."
                if replica["replica"] == "unreachable"
                else "The read replica is not in recovery: it replicates no primary."
            )
            return _unavailable(detail, **checks | replica)
        checks |= replica
    return JSONResponse({"status": "ok", **checks})


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
@reads_primary  # the webhook backlog as the primary has it
def metrics(request: Request, session: SessionDep) -> Response:
    settings: Settings = request.app.state.settings
    if not _from_metrics_network(request, settings):
        authenticate(request, session, frozenset({"admin"}))
    registry: Metrics = request.app.state.metrics
    # Read now, once per scrape: this worker's pools and the webhook backlog.
    engines = {"primary": request.app.state.engine}
    read_engine: Engine | None = getattr(request.app.state, "read_engine", None)
    if read_engine is not None:
        engines["replica"] = read_engine
    scraped = list(pool_families(engines))
    if read_engine is not None:
        try:
            lag = replica_state(request.app.state.engine, read_engine).get("replica_lag_bytes")
        except SQLAlchemyError:  # the primary is down: the other metrics still answer
            lag = None
        scraped.append(replica_lag_family(lag))
    try:
        scraped.append(webhook_backlog_family(pending_deliveries(session)))
    except SQLAlchemyError:  # the database is down: the other metrics still answer
        session.rollback()
    body, media_type = registry.exposition(*scraped)
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})
