"""Cheap refusal at the token endpoint, before any password hash is computed.

Two lines of defence, both checked before the client's secret is hashed (scrypt):

- **Rate:** at most `EFDB_TOKEN_ATTEMPTS_PER_IP` attempts a minute from one address and
  `EFDB_TOKEN_ATTEMPTS_PER_CLIENT` for one client id named in the request, known or not: the
  `token` budget of the rate limits (app/core/rate_limits.py), counted in each worker's memory,
  or shared by every worker and machine through Redis when `EFDB_REDIS_URL` is set.
- **In the database, for every worker:** a client whose secret fails
  `EFDB_TOKEN_LOCKOUT_FAILURES` times within `EFDB_TOKEN_LOCKOUT_WINDOW_SECONDS` is locked for
  `EFDB_TOKEN_LOCKOUT_SECONDS`; the lock is an audit event (`client.locked`, read by
  administrators at `GET /v1/audit`), and while it lasts the client is refused with 429.

A lock is temporary by design: anyone who knows a client id can lock it for that long, which
is the price of making its secret unguessable by volume.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import unquote

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import Client
from app.core.audit import append_event
from app.core.config import Settings
from app.core.rate_limits import Budget, RateLimiter, Refusal, too_many

__all__ = ["TokenThrottle", "locked_for", "presented_client_id", "record_outcome", "too_many"]


class TokenThrottle:
    """The token endpoint's budgets: the address first, then the client id named."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def refuse(self, *, ip: str, client_id: str | None) -> Refusal | None:
        refusal = await self.limiter.spend(Budget.TOKEN, "address", ip)
        if refusal is None and client_id is not None:
            refusal = await self.limiter.spend(Budget.TOKEN, "client", client_id)
        if refusal is not None:
            self.limiter.refused(refusal)
        return refusal


def presented_client_id(
    headers: Mapping[str, str], form: Mapping[str, Sequence[str]]
) -> str | None:
    """The client id a token request names (HTTP Basic or form), without checking anything."""
    authorization = headers.get("authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return unquote(decoded.partition(":")[0])[:255] or None
    values = form.get("client_id") or []
    return values[0][:255] if values else None


def locked_for(session: Session, client_id: str, now: datetime) -> float | None:
    """Seconds the client stays locked, or None (also for an unknown client id)."""
    locked_until = session.execute(
        select(Client.locked_until).where(Client.client_id == client_id)
    ).scalar_one_or_none()
    if locked_until is None or locked_until <= now:
        return None
    return (locked_until - now).total_seconds()


def record_outcome(
    session: Session,
    *,
    settings: Settings,
    client_id: str,
    succeeded: bool,
    ip: str,
    now: datetime,
) -> bool:
    """Count a failed authentication of a known client (locking it past the threshold), or
    forget its failures after a success. Unknown client ids have nothing to count.
    True when this failure locked the client."""
    client = session.execute(
        select(Client).where(Client.client_id == client_id)
    ).scalar_one_or_none()
    if client is None:
        return False
    if succeeded:
        if client.failed_attempts or client.locked_until is not None:
            client.failed_attempts, client.failed_since, client.locked_until = 0, None, None
        return False
    window = timedelta(seconds=settings.token_lockout_window_seconds)
    if client.failed_since is None or now - client.failed_since > window:
        client.failed_attempts, client.failed_since = 1, now
    else:
        client.failed_attempts += 1
    if client.failed_attempts < settings.token_lockout_failures:
        return False
    failures = client.failed_attempts
    client.locked_until = now + timedelta(seconds=settings.token_lockout_seconds)
    client.failed_attempts, client.failed_since = 0, None
    session.flush()
    append_event(
        session,
        actor="token-endpoint",
        action="client.locked",
        subject_type="client",
        subject_id=client_id,
        payload={
            "failures": failures,
            "window_seconds": settings.token_lockout_window_seconds,
            "locked_until": client.locked_until.isoformat(),
            "last_address": ip,
        },
        occurred_at=now,
    )
    return True
