"""Prometheus metrics at `GET /metrics`: requests by route template, and what the bounds refuse.

Metrics (all names start with `efdb_`):

- `http_requests_total{method, route, status}` and `http_request_duration_seconds{method,
  route, status}`: `route` is the route's template (`/v1/factors/{publisher}/{dataset}/
  {factor_code}`), never the raw path, and `status` is the class (`2xx` … `5xx`), so the number
  of series stays bounded whatever clients send. A path no route matches is `<unmatched>`; a
  request refused before routing (shed, body too large) keeps its expensive route's path, or
  is `<refused before routing>`.
- `statement_timeouts_total{kind}`: statements stopped by their request kind's budget.
- `client_disconnects_total{kind}`: statements stopped because the client went away.
- `load_shed_total{kind}`: expensive requests refused with 503 by the per-worker bound.
- `body_too_large_total{cap}`: bodies refused with 413 (`upload`, `batch` or `json` cap).
- `token_refusals_total{reason}`: `/oauth/token` attempts refused with 429 (`rate`: the
  per-address or per-client rate; `locked`: the client is locked); `token_lockouts_total`:
  clients locked after repeated failures.
- `rate_limited_total{budget, by}`: requests refused with 429 past a rate budget (`read`,
  `write`, `token`), spent by a `client` (valid bearer token; on `/oauth/token` the client id
  named) or an `address`; `rate_limit_storage_errors_total`: checks that Redis
  (`EFDB_REDIS_URL`) did not answer, counted in the worker's own memory instead.
- `upload_rows_total`: factor rows stored by uploads that made a new draft;
  `upload_duration_seconds{outcome}` and `snapshot_duration_seconds{outcome}`: the time an
  upload or a snapshot took (`ok`: committed, `refused`: a problem answer such as a
  validation report, `error`: a failure of the service, a failed commit included).
- `batch_lines{kind}`: lines per batch (`resolve`, `estimate`): the `_sum` is the lines asked.
- Read at each scrape, not counted per request: `db_pool_size`, `db_pool_max_overflow`,
  `db_pool_checked_out`, `db_pool_checked_in` and `db_pool_overflow` `{engine}` (the
  connection pool of the worker that answers the scrape), and `webhook_pending_deliveries`
  (one `COUNT` over the deliveries' status index).

One worker keeps its metrics in its own registry. With several worker processes
(`efdb serve --workers N`), set `PROMETHEUS_MULTIPROC_DIR` to an empty directory writable by
the service (emptied before each start): each process then writes its values there and
`/metrics` answers the sum over all workers (prometheus-client's multiprocess mode).

Who may read it: the numbers describe the service's internals (its routes' load, its refusals),
so `/metrics` answers without a token only to addresses in `EFDB_METRICS_NETWORKS` (default
loopback: a scraper on the same host, or behind the front server); anyone else needs a bearer
token with the `admin` scope.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import ProblemError
from app.core.limits import BATCH_PATHS, UPLOAD_PATH

UNMATCHED = "<unmatched>"
UNROUTED = "<refused before routing>"
_EXPENSIVE_FIXED_PATHS = frozenset(
    {"/v1/factors", "/", "/.json", "/.csv", "/v1/estimate", "/v1/snapshots"} | BATCH_PATHS
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Request latency buckets (seconds): cheap lookups in milliseconds, searches and batches up
# to their budgets.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Uploads and snapshots: a small CSV in a fraction of a second, a national snapshot or a
# 2M-row upload in minutes (their budget is the export statement timeout, 10 min).
_LONG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# Lines per batch: a batch holds 1 to 1000 lines.
_LINE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The service's metric objects, and the registry `/metrics` reads."""

    def __init__(self) -> None:
        shared = multiprocess_dir() is not None
        # Multiprocess mode: values live in the directory's files, read back by a collector
        # at each scrape; the metric objects belong to no registry. Otherwise one registry per
        # app, so that several apps in one process (tests) do not share counts.
        self._own = None if shared else CollectorRegistry(auto_describe=True)
        registry = self._own
        self.requests = Counter(
            "efdb_http_requests",
            "HTTP requests answered, by route template and status class",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "efdb_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status class",
            ["method", "route", "status"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.statement_timeouts = Counter(
            "efdb_statement_timeouts",
            "Database statements stopped by their request kind's time budget",
            ["kind"],
            registry=registry,
        )
        self.client_disconnects = Counter(
            "efdb_client_disconnects",
            "Database statements stopped because the client closed the connection",
            ["kind"],
            registry=registry,
        )
        self.load_shed = Counter(
            "efdb_load_shed",
            "Expensive requests refused (503) because this worker already runs its bound",
            ["kind"],
            registry=registry,
        )
        self.body_too_large = Counter(
            "efdb_body_too_large",
            "Request bodies refused (413) past their route's cap",
            ["cap"],
            registry=registry,
        )
        self.token_refusals = Counter(
            "efdb_token_refusals",
            "Token requests refused (429) before any secret was hashed",
            ["reason"],
            registry=registry,
        )
        self.token_lockouts = Counter(
            "efdb_token_lockouts",
            "Clients locked after repeated failed authentications",
            registry=registry,
        )
        self.rate_limited = Counter(
            "efdb_rate_limited",
            "Requests refused (429) past a rate budget, by budget and by whose budget",
            ["budget", "by"],
            registry=registry,
        )
        self.rate_limit_storage_errors = Counter(
            "efdb_rate_limit_storage_errors",
            "Rate-limit checks Redis did not answer (counted in the worker's memory instead)",
            registry=registry,
        )
        self.upload_rows = Counter(
            "efdb_upload_rows",
            "Factor rows stored by uploads that made a new draft",
            registry=registry,
        )
        self.upload_duration = Histogram(
            "efdb_upload_duration_seconds",
            "Time to read, validate and store an upload, by outcome",
            ["outcome"],
            buckets=_LONG_BUCKETS,
            registry=registry,
        )
        self.snapshot_duration = Histogram(
            "efdb_snapshot_duration_seconds",
            "Time to write a national snapshot, by outcome",
            ["outcome"],
            buckets=_LONG_BUCKETS,
            registry=registry,
        )
        self.batch_lines = Histogram(
            "efdb_batch_lines",
            "Lines per resolve or estimate batch",
            ["kind"],
            buckets=_LINE_BUCKETS,
            registry=registry,
        )
        self.replica_retries = Counter(
            "efdb_replica_retries",
            "Reads the replica refused and the primary answered again, by reason",
            ["reason"],
            registry=registry,
        )

    def exposition(self, *scraped: Metric) -> tuple[bytes, str]:
        """The text format of every metric (summed over workers in multiprocess mode), and of
        the `scraped` families read for this scrape."""
        registry = self._own
        if registry is None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        # One object per scrape rather than a collector registered in the shared registry:
        # concurrent scrapes would register the same names twice.
        return generate_latest(_Scrape(registry, scraped)), CONTENT_TYPE_LATEST


class _Scrape(Collector):
    """The registry's metrics, then families read for this scrape (pool use, webhook
    backlog), which live in no file and no counter."""

    def __init__(self, registry: CollectorRegistry, families: Iterable[Metric]) -> None:
        self.registry = registry
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        yield from self.registry.collect()
        yield from self.families


def pool_families(engines: Mapping[str, Engine]) -> Iterator[Metric]:
    """Each engine's connection pool as it is now (a pool without a size, such as SQLite's
    in-memory one, reports what it has)."""
    readings: dict[str, tuple[str, Callable[[Any], int]]] = {
        "size": ("Connections the pool keeps open", lambda pool: pool.size()),
        "max_overflow": (
            "Connections the pool may open beyond its size",
            lambda pool: max(pool._max_overflow, 0),
        ),
        "checked_out": ("Connections in use by a request now", lambda pool: pool.checkedout()),
        "checked_in": ("Idle connections in the pool now", lambda pool: pool.checkedin()),
        # QueuePool counts from -size: negative while fewer than `size` are open.
        "overflow": (
            "Connections open beyond the pool's size now",
            lambda pool: max(pool.overflow(), 0),
        ),
    }
    for name, (documentation, read) in readings.items():
        family = GaugeMetricFamily(f"efdb_db_pool_{name}", documentation, labels=["engine"])
        for label, engine in engines.items():
            try:
                family.add_metric([label], float(read(engine.pool)))
            except AttributeError:  # this kind of pool does not keep that number
                continue
        yield family


def replica_lag_family(lag_bytes: int | None) -> Metric:
    """The replica's lag in bytes of WAL, or -1 when it does not answer as a replica."""
    return GaugeMetricFamily(
        "efdb_replica_lag_bytes",
        "WAL the primary has flushed that the read replica has not replayed (-1: unreachable)",
        value=-1 if lag_bytes is None else lag_bytes,
    )


def webhook_backlog_family(pending: int) -> Metric:
    return GaugeMetricFamily(
        "efdb_webhook_pending_deliveries",
        "Webhook deliveries waiting to be sent (or retried)",
        value=pending,
    )


_P = ParamSpec("_P")
_R = TypeVar("_R")


def timed(histogram: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Times a (synchronous) route function into `app.state.metrics.<histogram>{outcome}`:
    `ok`, `refused` (a problem answer below 500) or `error`. The route takes `request`."""

    def decorate(endpoint: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(endpoint)
        def observed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            started = time.perf_counter()
            outcome = "error"
            try:
                result = endpoint(*args, **kwargs)
                outcome = "ok"
                return result
            except (ProblemError, HTTPException) as exc:
                status = exc.status if isinstance(exc, ProblemError) else exc.status_code
                outcome = "refused" if status < 500 else "error"
                raise
            finally:
                metrics: Metrics = kwargs["request"].app.state.metrics  # type: ignore[attr-defined]
                getattr(metrics, histogram).labels(outcome=outcome).observe(
                    time.perf_counter() - started
                )

        return observed

    return decorate


def route_template(scope: Scope, status: int | None = None) -> str:
    """The template of the route that answered (or would answer) the request; `status`, the
    answer's, tells a path no route matched (404 with no route) from a refusal."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if status == 404:
        return UNMATCHED
    # Refused before routing (a shed request, an oversized body): the fixed paths of the
    # expensive routes are their own templates; anything else is one bounded label.
    raw = scope.get("path", "")
    if raw in _EXPENSIVE_FIXED_PATHS:
        return str(raw)
    if UPLOAD_PATH.match(raw):
        return "/v1/datasets/{publisher}/{dataset}/versions"
    return UNROUTED


async def observed(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    done: Callable[[int, float], None],
) -> None:
    """Runs an HTTP request through `app`, then tells `done` its status (500 if no answer
    started) and its duration in seconds, whether the app raised or not."""
    started = time.perf_counter()
    status = 500

    async def recording_send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    try:
        await app(scope, receive, recording_send)
    finally:
        done(status, time.perf_counter() - started)


class RequestMetrics:
    """Counts every HTTP request and its latency by route template and status class."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def record(status: int, seconds: float) -> None:
            labels: dict[str, Any] = {
                "method": scope["method"] if scope["method"] in _METHODS else "other",
                "route": route_template(scope, status),
                "status": f"{status // 100}xx",
            }
            self.metrics.requests.labels(**labels).inc()
            self.metrics.latency.labels(**labels).observe(seconds)

        await observed(self.app, scope, receive, send, record)
