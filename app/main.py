"""The FastAPI application: one router per domain, one error format, one engine."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.auth.identity import bearer_client
from app.auth.router import router as auth_router
from app.auth.runtime import install_auth
from app.auth.throttle import TokenThrottle
from app.changes.router import router as changes_router
from app.changes.webhook_router import router as webhooks_router
from app.core.bounds import LoadShedder, install_budget_errors
from app.core.collector import tune_collector
from app.core.compression import compression
from app.core.config import Settings, get_settings
from app.core.cors import CrossOrigin
from app.core.db import make_engine, make_sessionmaker
from app.core.errors import install_error_handlers
from app.core.limits import BodySizeLimit, body_cap_name, route_body_cap
from app.core.logs import AccessLog
from app.core.metrics import Metrics, RequestMetrics
from app.core.openapi import install_openapi
from app.core.rate_limits import RateLimit, RateLimiter
from app.core.replica import ReadRouting
from app.core.request_id import RequestID
from app.core.security_headers import DOCS_ASSETS_URL, SecurityHeaders
from app.core.strict_json import StrictJSON
from app.datasets.grants_router import router as grants_router
from app.datasets.router import router as datasets_router
from app.exports.router import router as exports_router
from app.exports.store import open_store
from app.factors.batch_router import router as factor_queries_router
from app.factors.lookup import LookupCache, LookupReader, LookupShortPath
from app.factors.page_cache import SearchPageShortPath
from app.factors.resolve_index import ResolveIndex, resolve_index_loader
from app.factors.router import router as factors_router
from app.factors.router import version_router as version_factors_router
from app.ops.router import router as ops_router
from app.provenance.router import factor_router as factor_provenance_router
from app.provenance.router import router as audit_router
from app.publishing.router import dataset_router as dataset_writes_router
from app.publishing.router import review_router, template_router
from app.publishing.router import router as publishing_router
from app.reference.router import router as reference_router
from app.signing.keys import ReleaseKeys, published_keys
from app.signing.router import router as signing_router
from app.versioning.read_router import diff_router, version_router
from app.versioning.read_router import factor_router as factor_history_router
from app.web.router import install_web

API_DESCRIPTION = """\
The national background emission-factor database: versioned, cited, licensed emission
factors for product carbon footprints. Every error is RFC 9457 `application/problem+json`.

Requests spend a budget a minute, of reads, of writes, or of token requests: the client's with
a valid bearer token, otherwise the address's. Past it, any operation answers `429`
(problem details) with `Retry-After`, the seconds to wait.
"""


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Once the worker has loaded everything (app/core/collector.py).
    tune_collector()
    yield


def release_connections(app: FastAPI) -> None:
    """Close what the application opened beside its primary engine: the lookup readers' and
    the resolve index's connections, and the read replica's pools."""
    for reader in (app.state.lookup_reader, app.state.read_lookup_reader):
        if reader is not None:
            reader.close()
    app.state.resolve_index.close()
    if app.state.read_engine is not None:
        app.state.read_engine.dispose()


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """The application. `engine`: the primary database's engine when the caller keeps one
    for several applications (the test suite: one per database, so that compiled statements
    and open connections outlive each test's application); the caller then disposes it and
    calls `release_connections`. By default the application makes its own, and disposing
    that engine also closes the connections the application opened beside it."""
    settings = settings or get_settings()
    # Swagger UI (/docs) and ReDoc (/redoc) served from this service, with the assets that
    # fastapi-offline ships (no CDN: the docs work offline and under a same-origin CSP).
    app = FastAPIOffline(
        static_url=DOCS_ASSETS_URL,
        title="efdb",
        version="1.0.0",
        description=API_DESCRIPTION,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
        lifespan=_lifespan,
    )
    owns_engine = engine is None
    engine = engine or make_engine(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.export_store = open_store(settings)
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.lookup_cache = LookupCache(settings.lookup_cache_entries)
    # Resolve and estimate without probing the database (app/factors/resolve_index.py): each
    # worker's index of the released factors (which never change), read on its own
    # connection; shared by the primary and a replica.
    app.state.resolve_index = ResolveIndex(
        settings.resolve_index_factors, resolve_index_loader(engine, settings)
    )
    app.state.lookup_reader = LookupReader(
        engine, app.state.lookup_cache, settings.db_timeout_read_ms
    )
    # The read replica, if any (app/core/replica.py): its own pools. The lookup cache is
    # shared: a kept answer is served only when the database asked says its state is the one
    # it was made in, whichever database that is.
    app.state.read_engine = app.state.read_sessionmaker = app.state.read_lookup_reader = None
    if settings.read_database_url:
        read_engine = app.state.read_engine = make_engine(settings.read_database_url)
        app.state.read_sessionmaker = make_sessionmaker(read_engine)
        app.state.read_lookup_reader = LookupReader(
            read_engine, app.state.lookup_cache, settings.db_timeout_read_ms
        )
    if owns_engine:
        event.listen(engine, "engine_disposed", lambda *_: release_connections(app))
    metrics = app.state.metrics = Metrics()
    install_error_handlers(app)
    install_budget_errors(app, settings, metrics)
    # Innermost of the middlewares (added first): every one below still applies to the
    # lookups and kept search pages they answer (app/factors/lookup.py, page_cache.py).
    app.add_middleware(LookupShortPath)
    app.add_middleware(SearchPageShortPath)
    if settings.read_database_url:
        # Just outside the short paths, which follow its choice of database.
        app.add_middleware(
            ReadRouting,
            read_your_writes_seconds=settings.read_your_writes_seconds,
            on_retry=lambda reason: metrics.replica_retries.labels(reason=reason).inc(),
        )
    install_auth(app, settings)
    app.state.release_keys = ReleaseKeys(settings)
    # The JWKS (an auth route) also publishes the release keys, active and retired.
    app.state.published_keys = published_keys
    limiter = app.state.rate_limiter = RateLimiter(settings, metrics)
    app.state.token_throttle = TokenThrottle(limiter)
    app.include_router(ops_router)
    app.include_router(auth_router)
    # Routes live with their domain; they are included in the order in which requests are
    # matched and the OpenAPI document lists paths (a URL prefix spans several domains).
    app.include_router(factors_router)
    app.include_router(factor_history_router)
    app.include_router(factor_provenance_router)
    app.include_router(factor_queries_router)
    app.include_router(datasets_router)
    app.include_router(grants_router)
    app.include_router(version_router)
    app.include_router(version_factors_router)
    app.include_router(signing_router)
    app.include_router(dataset_writes_router)
    app.include_router(diff_router)
    app.include_router(publishing_router)
    app.include_router(template_router)
    app.include_router(review_router)
    app.include_router(audit_router)
    app.include_router(exports_router)
    app.include_router(reference_router)
    app.include_router(changes_router)
    app.include_router(webhooks_router)
    install_web(app)
    install_openapi(app)
    # Added last, runs first: the size cap applies before anything reads the body, and an
    # expensive request past this worker's bound is refused before anything else is done.
    app.add_middleware(StrictJSON)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_upload_mb * 1024 * 1024,
        cap_for=route_body_cap(
            upload_bytes=settings.max_upload_mb * 1024 * 1024,
            batch_bytes=settings.max_batch_json_kb * 1024,
            json_bytes=settings.max_json_kb * 1024,
        ),
        on_refuse=lambda method, path: metrics.body_too_large.labels(
            cap=body_cap_name(method, path)
        ).inc(),
    )
    app.add_middleware(
        LoadShedder,
        limit=settings.max_expensive_requests,
        retry_after=settings.retry_after_seconds,
        metrics=metrics,
    )
    # Outside the shedder: a request past its rate budget takes no slot and reads no body.
    app.add_middleware(RateLimit, limiter=limiter, identify=bearer_client)
    # JSON, CSV and pages above a size, in the encoding offered (app/core/compression.py).
    app.add_middleware(compression, minimum_size=settings.compress_min_bytes)
    # Cross-origin reads and writes from the configured origins only (app/core/cors.py).
    app.add_middleware(
        CrossOrigin,
        read_origins=settings.cors_origins,
        write_origins=settings.cors_write_origins,
    )
    # Outermost: every answer carries them, refusals by the middlewares above included.
    app.add_middleware(SecurityHeaders)
    # Counts every answer, by route template and status class, whoever gave it.
    app.add_middleware(RequestMetrics, metrics=metrics)
    if settings.log_format == "json":
        # Inside RequestID: its line names the request's id; it sees every answer.
        app.add_middleware(AccessLog)
    # First of all: the request's id, echoed on its answer and named in its log lines.
    app.add_middleware(RequestID)
    return app
