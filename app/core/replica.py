"""Reads from a PostgreSQL streaming replica (`EFDB_READ_DATABASE_URL`), writes to the primary.

Which database answers a request (`ReadRouting` decides before routing; the session dependency
and the lookup short path follow it):

- the **replica**: `GET` and `HEAD` requests without a token and without a fresh
  read-your-writes cookie, except the few routes marked `reads_primary`: a version's export
  file and release statement (made and recorded on first request), and `/metrics`;
- the **primary**: everything else. Every other method (writes, and the batch reads sent as
  `POST`), every request with an `Authorization` header (its token is checked against the
  primary's clients, so a revocation counts at once, and its registered reads are metered,
  which is a write), and the reads of a client that wrote less than
  `EFDB_READ_YOUR_WRITES_SECONDS` ago.

Read-your-writes: a successful answer to a write (any method but GET, HEAD, OPTIONS and the
read-only queries sent as POST, `app.core.cors.is_read`; status below 400) sets the cookie
`efdb_primary_until` to the moment (Unix seconds) until which that client's reads go to the
primary; the window covers the replica's usual lag, and a client without a cookie jar may send
the cookie back itself (or its token, which always reads from the primary). Every answer a
database served names it in `EFDB-Database: primary|replica`.

A read on the replica that tries to write after all (a route that writes on first read and is
not marked) fails there with `read_only_sql_transaction` before anything is sent; it is then
answered again from the primary, so such a route is slower on its first request, never wrong.
So is a read the replica cancelled for a recovery conflict (replay removing rows it still
needed). A replica that does not answer at all is not worked around: `/readyz` says so (503).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.cors import is_read

PRIMARY = "primary"
REPLICA = "replica"
# scope["state"] keys: where the request's reads should go, and which database answered.
CHOICE_KEY = "efdb_database_choice"
USED_KEY = "efdb_database_used"
HEADER = "EFDB-Database"
COOKIE = "efdb_primary_until"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What the replica answers that the primary would not, so that the request is answered again
# from the primary: a write in a read-only transaction (every transaction on a hot standby is
# one), and a statement cancelled because replay had to remove rows it could still see (a
# recovery conflict, past `max_standby_streaming_delay`; a read-only request meets no other
# serialization failure).
READ_ONLY_SQLSTATE = "25006"
RECOVERY_CONFLICT_SQLSTATE = "40001"
_RETRIED_ON_PRIMARY = frozenset({READ_ONLY_SQLSTATE, RECOVERY_CONFLICT_SQLSTATE})
_PRIMARY_ROUTE = "_efdb_reads_primary"
log = logging.getLogger("efdb")

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def reads_primary(endpoint: Endpoint) -> Endpoint:
    """Mark a GET endpoint that may write (e.g. makes and records a file on its first
    request): its session is the primary's even when the request could read from the
    replica. Put it below the route decorator."""
    setattr(endpoint, _PRIMARY_ROUTE, True)
    return endpoint


def session_database(scope: Scope) -> str:
    """The database the request's session opens on (recorded as the one that answered)."""
    state = scope.setdefault("state", {})
    database = PRIMARY
    if state.get(CHOICE_KEY) == REPLICA:
        endpoint = getattr(scope.get("route"), "endpoint", None)
        if not getattr(endpoint, _PRIMARY_ROUTE, False):
            database = REPLICA
    state[USED_KEY] = database
    return database


def wants_replica(scope: Scope) -> bool:
    """The short path's question: does this request read from the replica?"""
    return bool(scope.get("state", {}).get(CHOICE_KEY) == REPLICA)


def mark_used(scope: Scope, database: str) -> None:
    scope.setdefault("state", {})[USED_KEY] = database


def _primary_until(scope: Scope) -> float | None:
    for name, value in scope["headers"]:
        if name == b"cookie":
            cookie: SimpleCookie = SimpleCookie()
            try:
                cookie.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header: as if absent
                continue
            morsel = cookie.get(COOKIE)
            if morsel is not None:
                try:
                    return float(morsel.value)
                except ValueError:
                    return None
    return None


def choose_database(scope: Scope, *, now: float) -> str:
    """The rule in the module's docstring, before routing."""
    if scope["method"] not in ("GET", "HEAD"):
        return PRIMARY
    for name, _ in scope["headers"]:
        if name == b"authorization":
            return PRIMARY
    until = _primary_until(scope)
    if until is not None and until > now:
        return PRIMARY
    return REPLICA


def replica_refusal(exc: BaseException) -> str | None:
    """The SQLSTATE of an error the primary would not have given (see above), else None."""
    if not isinstance(exc, DBAPIError):
        return None
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate if sqlstate in _RETRIED_ON_PRIMARY else None


class ReadRouting:
    """ASGI, just outside the lookup short path: decides the request's database (module
    docstring), names the one that answered, sets the read-your-writes cookie on a write's
    answer, and answers again from the primary a replica read that tried to write."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        read_your_writes_seconds: int,
        on_retry: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`on_retry(reason)`: a read answered again from the primary (`wrote`,
        `recovery-conflict`)."""
        self.app = app
        self.window = read_your_writes_seconds
        self.on_retry = on_retry
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        now = self.clock()
        state = scope.setdefault("state", {})
        choice = state[CHOICE_KEY] = choose_database(scope, now=now)
        # The read-only queries sent as POST (a batch's body) write nothing to read back.
        wrote = scope["method"] not in SAFE_METHODS and not is_read(scope["method"], scope["path"])
        started = False

        async def send_naming_database(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                used = state.get(USED_KEY)
                if used is not None:
                    headers[HEADER] = used
                if wrote and message["status"] < 400 and self.window:
                    until = int(now) + self.window
                    headers.append(
                        "Set-Cookie",
                        f"{COOKIE}={until}; Max-Age={self.window}; Path=/; HttpOnly; "
                        "SameSite=Lax" + ("; Secure" if scope.get("scheme") == "https" else ""),
                    )
            await send(message)

        if choice != REPLICA:
            await self.app(scope, receive, send_naming_database)
            return
        try:
            await self.app(scope, receive, send_naming_database)
        except Exception as exc:
            refusal = replica_refusal(exc)
            if started or refusal is None:
                raise
            # A write is worth marking `reads_primary` if it is more than a first request's.
            reason = "wrote" if refusal == READ_ONLY_SQLSTATE else "recovery-conflict"
            log.warning(
                "%s %s on the read replica: %s; answered again from the primary",
                scope["method"],
                scope["path"],
                reason,
            )
            if self.on_retry is not None:
                self.on_retry(reason)
            # A GET or HEAD has no body: the request is the same the second time.
            state[CHOICE_KEY] = PRIMARY
            state.pop(USED_KEY, None)
            await self.app(scope, receive, send_naming_database)
