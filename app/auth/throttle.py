"""Cheap refusal at the token endpoint, before any password hash is computed.

Two lines of defence, both checked before the client's secret is hashed (scrypt):

- **Per worker, in process:** at most `EFDB_TOKEN_ATTEMPTS_PER_IP` attempts a minute from one
  address and `EFDB_TOKEN_ATTEMPTS_PER_CLIENT` for one client id, known or not. The counts are
  this worker's own (contract §13 allows it: they decide nothing workers must agree on, and
  `N` workers admit at most `N` times the rate; shared limits through `EFDB_REDIS_URL` are a
  later issue).
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
import math
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import unquote

from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import Client
from app.core.audit import append_event
from app.core.config import Settings
from app.core.errors import problem_response
from app.core.problem_text import Lang

# Keys remembered per limiter; past it the least recently seen are forgotten.
_MAX_KEYS = 50_000
_WINDOW_SECONDS = 60.0


class SlidingWindow:
    """At most `limit` hits per key in any 60 s (this process only)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str, now: float) -> float | None:
        """Record a hit; None if allowed, else the seconds until one would be."""
        window = self.hits.get(key)
        if window is None:
            window = self.hits[key] = deque()
            if len(self.hits) > _MAX_KEYS:
                self.hits.popitem(last=False)
        else:
            self.hits.move_to_end(key)
        while window and window[0] <= now - _WINDOW_SECONDS:
            window.popleft()
        if len(window) >= self.limit:
            return window[0] + _WINDOW_SECONDS - now
        window.append(now)
        return None


class TokenThrottle:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.by_ip = SlidingWindow(settings.token_attempts_per_ip)
        self.by_client = SlidingWindow(settings.token_attempts_per_client)

    def refuse(self, *, ip: str, client_id: str | None) -> float | None:
        now = time.monotonic()
        wait = self.by_ip.hit(f"ip:{ip}", now)
        if wait is None and client_id is not None:
            wait = self.by_client.hit(f"client:{client_id}", now)
        return wait


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


def too_many(detail: str, wait_seconds: float, instance: str, lang: Lang = "en") -> JSONResponse:
    """429 problem details with `Retry-After`, the detail in the client's language."""
    return problem_response(
        status=429,
        code="too-many-requests",
        title="Too many requests",
        detail=detail,
        instance=instance,
        headers={"Retry-After": str(max(1, math.ceil(wait_seconds)))},
        lang=lang,
    )


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
