"""Database errors that concurrent writes cause, as answers a client can act on, in one place.

The write paths take a lock and check their rules under it (see
`app.datasets.service.lock_dataset`), so two writes at once normally meet as a `409` with what
happened. What still escapes to here is answered the same way whatever the route:

- a rule the database enforces (a unique key, a foreign key, a trigger of ours) that the
  other request's commit broke for this one: `409`, nothing written;
- PostgreSQL gave up on the transaction (serialization failure, deadlock): `409`, retry;
- a lock not had in time (PostgreSQL `lock_timeout`, SQLite "database is locked" after its
  busy timeout): `503` with `Retry-After`, nothing written.
"""

from __future__ import annotations

import sqlite3

from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.core.errors import problem_response
from app.core.problem_text import Lang, Message

# PostgreSQL SQLSTATEs.
_SERIALIZATION = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_LOCK_NOT_AVAILABLE = "55P03"
_RAISED_BY_TRIGGER = "P0001"  # raise_exception: our triggers (migrations 0002, 20261204_0201)


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "refused"


def _trigger_message(exc: DBAPIError) -> str | None:
    """The message of one of our triggers' refusals (written for people), else None."""
    if _sqlstate(exc) == _RAISED_BY_TRIGGER:
        return _first_line(exc)
    if isinstance(exc.orig, sqlite3.IntegrityError):
        message = _first_line(exc)
        # SQLite's own constraint messages end "constraint failed: ..."; RAISE(ABORT) is ours.
        return None if "constraint failed" in message else message
    return None


def _is_lock_timeout(exc: DBAPIError) -> bool:
    if _sqlstate(exc) == _LOCK_NOT_AVAILABLE:
        return True
    message = str(exc.orig)
    return isinstance(exc.orig, sqlite3.OperationalError) and (
        "database is locked" in message or "database is busy" in message
    )


def write_conflict_response(
    exc: DBAPIError, *, instance: str, retry_after: str, lang: Lang = "en"
) -> JSONResponse | None:
    """The problem answer for a database error caused by a concurrent write, else None."""
    refused = _trigger_message(exc)
    if refused is not None:
        return problem_response(
            status=409,
            code="refused-by-database",
            title="The database refused the change",
            detail=Message("write.refused", reason=refused),
            instance=instance,
            lang=lang,
        )
    if isinstance(exc, IntegrityError):
        return problem_response(
            status=409,
            code="write-conflict",
            title="Conflicting write",
            detail=Message("write.unique_conflict"),
            instance=instance,
            lang=lang,
        )
    if _sqlstate(exc) in _SERIALIZATION:
        return problem_response(
            status=409,
            code="write-conflict",
            title="Conflicting write",
            detail=Message("write.serialization"),
            instance=instance,
            lang=lang,
        )
    if _is_lock_timeout(exc):
        return problem_response(
            status=503,
            code="busy",
            title="Busy writing",
            detail=Message("write.lock_timeout"),
            instance=instance,
            lang=lang,
            headers={"Retry-After": retry_after},
        )
    return None
