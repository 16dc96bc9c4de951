"""Bounded cost per request: a time budget for its database work, a cap on expensive requests.

Each request is of one kind (read, search, batch, write, export) from its method and path. Its
statements run under the kind's budget: PostgreSQL's `statement_timeout`, set with `SET LOCAL`
when the request's transaction begins; on SQLite a progress handler that interrupts a statement
past its deadline. A statement cancelled so answers 503 problem+json with `Retry-After`.

Expensive requests (search, resolve and estimate batches, uploads, snapshot creation) are also
counted per worker; past `EFDB_MAX_EXPENSIVE_REQUESTS` at once the next one answers 503 at
once instead of queueing. The count is per worker process by design (contract §13: it decides
nothing that workers must agree on; it only keeps one worker from taking more than its share).

A search or batch whose client goes away stops its query: while the request's database work
runs, a task waits for the ASGI `http.disconnect` message; when it comes, the statement running
on the request's connection is cancelled (PostgreSQL: psycopg's `cancel_safe()`, a cancel
request for that backend only; SQLite: `Connection.interrupt()`), no further statement starts,
and the transaction is rolled back before the connection goes back to the pool.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import anyio
from fastapi import FastAPI, Request, Response
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import Settings
from app.core.errors import log, problem_language, problem_response, scope_language
from app.core.limits import BATCH_PATHS, UPLOAD_PATH
from app.core.metrics import Metrics
from app.core.problem_text import Message
from app.core.replica import REPLICA, USED_KEY, replica_refusal
from app.core.write_conflicts import write_conflict_response

# Session.info key holding the request's statement budget in milliseconds.
BUDGET_KEY = "efdb_statement_budget_ms"
# Connection-record info key of the SQLite deadline holder.
_DEADLINE_KEY = "efdb_deadline"
# SQLite calls the progress handler every this many virtual-machine instructions.
_PROGRESS_STEPS = 1000


class RequestKind(StrEnum):
    READ = "read"
    SEARCH = "search"
    BATCH = "batch"
    WRITE = "write"
    # Building an export file or a snapshot: one long statement per release, done once.
    EXPORT = "export"


_SEARCH_PATHS = frozenset({"/v1/factors", "/", "/.json", "/.csv"})
_BATCH_POSTS = BATCH_PATHS | {"/v1/estimate"}
_BATCH_PAGES = re.compile(r"^/(resolve|compare)(/estimate)?(\.json|\.csv)?$")
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_EXPORT_FILES = re.compile(
    r"^/v1/(datasets/[^/]+/[^/]+/versions/[^/]+/export|snapshots/[^/]+/factors)\.[a-z.]+$"
)


def request_kind(method: str, path: str) -> RequestKind:
    if _EXPORT_FILES.match(path) or (method == "POST" and path == "/v1/snapshots"):
        return RequestKind.EXPORT
    if path in _BATCH_POSTS or _BATCH_PAGES.match(path):
        return RequestKind.BATCH
    if method not in _READ_METHODS:
        return RequestKind.WRITE
    if path in _SEARCH_PATHS:
        return RequestKind.SEARCH
    return RequestKind.READ


def is_expensive(method: str, path: str) -> bool:
    """Text search, resolve and estimate batches, uploads and snapshot creation."""
    kind = request_kind(method, path)
    if kind in (RequestKind.SEARCH, RequestKind.BATCH):
        return True
    return method == "POST" and (path == "/v1/snapshots" or UPLOAD_PATH.match(path) is not None)


def statement_budget_ms(settings: Settings, kind: RequestKind) -> int:
    return {
        RequestKind.READ: settings.db_timeout_read_ms,
        RequestKind.SEARCH: settings.db_timeout_search_ms,
        RequestKind.BATCH: settings.db_timeout_batch_ms,
        RequestKind.WRITE: settings.db_timeout_write_ms,
        RequestKind.EXPORT: settings.db_timeout_export_ms,
    }[kind]


def budget_for_request(request: Request) -> int:
    settings: Settings = request.app.state.settings
    return statement_budget_ms(settings, request_kind(request.method, request.url.path))


# --- applying the budget -------------------------------------------------------------------


class _Deadline:
    """The SQLite connection's current statement deadline (monotonic seconds), if any."""

    __slots__ = ("at", "cancelled")

    def __init__(self) -> None:
        self.at: float | None = None
        # Set by a StatementGuard whose client went away. `interrupt()` alone is lost when it
        # lands between the statement's start and its first step; this flag is not.
        self.cancelled = False

    def __call__(self) -> int:
        if self.cancelled:
            self.cancelled = False
            return 1
        if self.at is not None and time.monotonic() > self.at:
            # Fire once: the rollback that follows must not be interrupted in turn.
            self.at = None
            return 1
        return 0


def install_sqlite_deadline(engine: Engine) -> None:
    """Every SQLite connection gets a progress handler; a statement with a budget gets a
    deadline when it starts, and the handler interrupts it past that deadline."""

    @event.listens_for(engine, "connect")
    def _handler(dbapi_connection: sqlite3.Connection, record: Any) -> None:
        deadline = _Deadline()
        record.info[_DEADLINE_KEY] = deadline
        dbapi_connection.set_progress_handler(deadline, _PROGRESS_STEPS)

    @event.listens_for(engine, "before_cursor_execute")
    def _start(connection: Connection, *_args: Any) -> None:
        deadline: _Deadline | None = connection.info.get(_DEADLINE_KEY)
        budget: int | None = connection.info.get(BUDGET_KEY)
        if deadline is not None:
            deadline.at = None if budget is None else time.monotonic() + budget / 1000

    @event.listens_for(engine, "checkin")
    def _clear(_dbapi_connection: Any, record: Any) -> None:
        record.info.pop(BUDGET_KEY, None)
        deadline: _Deadline | None = record.info.get(_DEADLINE_KEY)
        if deadline is not None:
            deadline.at = None
            deadline.cancelled = False


def bound_raw_statement(connection_info: dict[Any, Any], budget_ms: int) -> Callable[[], None]:
    """For a statement run on a pooled SQLite DBAPI connection directly (no engine events):
    start its deadline now (`connection_info`: the pool record's `info`); returns what ends
    it. PostgreSQL connections carry their own `statement_timeout`: nothing to do."""
    deadline: _Deadline | None = connection_info.get(_DEADLINE_KEY)
    if deadline is None:
        return _nothing
    deadline.at = time.monotonic() + budget_ms / 1000

    def _end() -> None:
        deadline.at = None

    return _end


def _nothing() -> None:
    return None


def install_statement_budget(factory: sessionmaker[Session]) -> None:
    """When a session with a budget begins its transaction, bound that transaction's statements."""

    @event.listens_for(factory, "after_begin")
    def _bound(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
        guard: StatementGuard | None = session.info.get(GUARD_KEY)
        if guard is not None:
            connection.info[GUARD_KEY] = guard
            guard.attach(
                connection.connection.dbapi_connection,
                connection.dialect.name,
                connection.info.get(_DEADLINE_KEY),
            )
        budget: int | None = session.info.get(BUDGET_KEY)
        if budget is not None:
            apply_budget(connection, budget)


def apply_budget(connection: Connection, budget_ms: int) -> None:
    """Bound the statements of the transaction `connection` has begun to `budget_ms`."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(budget_ms)}")
    else:
        connection.info[BUDGET_KEY] = int(budget_ms)


def is_cancelled_statement(exc: DBAPIError) -> bool:
    """The driver's own word for a statement stopped by its budget."""
    original = exc.orig
    if type(original).__name__ == "QueryCanceled":  # psycopg.errors.QueryCanceled (57014)
        return True
    return isinstance(original, sqlite3.OperationalError) and str(original) == "interrupted"


def install_budget_errors(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    retry_after = str(settings.retry_after_seconds)

    def _client_gone(request: Request) -> Response:
        kind = request_kind(request.method, request.url.path)
        metrics.client_disconnects.labels(kind=str(kind)).inc()
        # Nobody reads it: 499 (a front server's "client closed request") for the logs.
        return problem_response(
            status=499,
            code="client-closed-request",
            title="Client closed the request",
            detail="The client went away; its database work was stopped.",
            instance=request.url.path,
        )

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, _exc: ClientGone) -> Response:
        return _client_gone(request)

    @app.exception_handler(DBAPIError)
    async def _cancelled(request: Request, exc: DBAPIError) -> Response:
        if replica_refusal(exc) and request.scope.get("state", {}).get(USED_KEY) == REPLICA:
            raise exc  # answered again from the primary (app/core/replica.py)
        if not is_cancelled_statement(exc):
            conflict = write_conflict_response(
                exc,
                instance=request.url.path,
                retry_after=retry_after,
                lang=problem_language(request),
            )
            if conflict is not None:
                return conflict
            raise exc  # neither a budget nor a concurrent write: the generic logged 500
        guard: StatementGuard | None = getattr(request.state, "statement_guard", None)
        if guard is not None and guard.gone:
            return _client_gone(request)
        kind = request_kind(request.method, request.url.path)
        budget = statement_budget_ms(settings, kind)
        metrics.statement_timeouts.labels(kind=str(kind)).inc()
        return problem_response(
            status=503,
            code="query-time-exceeded",
            title="Query took too long",
            detail=Message("bounds.statement_timeout", kind=str(kind), budget=budget),
            instance=request.url.path,
            lang=problem_language(request),
            headers={"Retry-After": retry_after},
        )


# --- a client that goes away stops its query ------------------------------------------------

# Session.info and connection-record info key of the request's StatementGuard.
GUARD_KEY = "efdb_statement_guard"


class ClientGone(Exception):
    """The client closed the connection: the request's next statement is not started."""


class StatementGuard:
    """Cancels the statement a request runs, from another thread, once its client is gone.

    The lock makes "is a statement running on this connection?" and "cancel it" one step, so
    a cancel is only ever sent while this request's own statement runs: it can never reach a
    statement of the next request that uses the same pooled connection.
    """

    __slots__ = ("_lock", "backend", "dbapi", "deadline", "gone", "running")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.gone = False
        self.running = False
        self.dbapi: Any = None
        self.backend = ""
        self.deadline: _Deadline | None = None

    def attach(self, dbapi: Any, backend: str, deadline: _Deadline | None = None) -> None:
        with self._lock:
            self.dbapi, self.backend, self.deadline = dbapi, backend, deadline

    def detach(self) -> None:
        with self._lock:
            self.dbapi, self.running, self.deadline = None, False, None

    def starting(self) -> None:
        with self._lock:
            if self.gone:
                raise ClientGone()
            self.running = True

    def finished(self) -> None:
        with self._lock:
            self.running = False

    def cancel(self) -> None:
        """The client is gone: stop the running statement (if any) and start no other."""
        with self._lock:
            self.gone = True
            if not self.running or self.dbapi is None:
                return
            if self.backend == "postgresql":
                # Blocks until the server took the request; a cancel reaching the backend
                # after the statement ended finds it idle and is discarded.
                self.dbapi.cancel_safe(timeout=5)
            else:
                if self.deadline is not None:
                    self.deadline.cancelled = True  # seen at the statement's next step
                self.dbapi.interrupt()


def install_statement_guard(engine: Engine) -> None:
    """Statements on a connection lent to a guarded request tell the guard when they run."""

    @event.listens_for(engine, "before_cursor_execute")
    def _starting(connection: Connection, *_args: Any) -> None:
        guard: StatementGuard | None = connection.info.get(GUARD_KEY)
        if guard is not None:
            guard.starting()

    @event.listens_for(engine, "after_cursor_execute")
    def _finished(connection: Connection, *_args: Any) -> None:
        guard: StatementGuard | None = connection.info.get(GUARD_KEY)
        if guard is not None:
            guard.finished()

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        connection = context.connection
        guard = connection.info.get(GUARD_KEY) if connection is not None else None
        if guard is not None:
            guard.finished()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        guard: StatementGuard | None = record.info.pop(GUARD_KEY, None)
        if guard is not None:
            guard.detach()


def watches_disconnect(request: Request) -> bool:
    """Searches and batches: long enough to be worth stopping, and their body (if any) is
    read before their database work starts, so waiting for `http.disconnect` takes nothing
    the endpoint needs."""
    kind = request_kind(request.method, request.url.path)
    return kind in (RequestKind.SEARCH, RequestKind.BATCH)


async def cancel_on_disconnect(request: Request, guard: StatementGuard) -> None:
    """Wait for the client to go away, then cancel the request's statement."""
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                break
        await anyio.to_thread.run_sync(guard.cancel)
    except Exception:  # the watch must never fail the request it watches
        log.exception("could not stop the statement of a request whose client went away")


def start_disconnect_watch(request: Request, guard: StatementGuard) -> asyncio.Task[None]:
    return asyncio.create_task(cancel_on_disconnect(request, guard))


# --- load shedding -------------------------------------------------------------------------


class LoadShedder:
    """At most `limit` expensive requests at once in this worker; the next answers 503."""

    def __init__(
        self, app: ASGIApp, *, limit: int, retry_after: int, metrics: Metrics | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = retry_after
        self.metrics = metrics
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_expensive(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            if self.metrics is not None:
                kind = request_kind(scope["method"], scope["path"])
                self.metrics.load_shed.labels(kind=str(kind)).inc()
            response = problem_response(
                status=503,
                code="overloaded",
                title="Service busy",
                detail=Message("bounds.overloaded", limit=self.limit),
                instance=scope.get("path"),
                lang=scope_language(scope),
                headers={"Retry-After": str(self.retry_after)},
            )
            await response(scope, receive, send)
            return
        # No await between the check and the increment: the event loop cannot interleave.
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
