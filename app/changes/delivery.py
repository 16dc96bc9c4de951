"""The webhook worker: fans each outbox change out to the subscriptions that want it, then
sends the due deliveries, signed the Standard Webhooks way.

Claiming is a short transaction: the due deliveries are selected `FOR UPDATE SKIP LOCKED` on
PostgreSQL (another worker skips them) and leased (`locked_until`), then committed; the HTTP
request runs outside any transaction, and its outcome is written in another. Two workers never
send the same attempt at once, and a worker killed mid-delivery leaves a lease that runs out,
so the delivery is sent again after a restart (the receiver recognises it by `webhook-id`).

Back-off: 5 s after the first failure, doubling each time up to 6 h between attempts; a
delivery still failing a day after it was first due is marked `failed` and its subscription
`failing` (a replay starts it again).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from app.auth.service import client_state, granted_datasets
from app.changes import feed
from app.changes.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.changes.webhooks import fernet
from app.core.config import Settings
from app.core.db import utcnow
from app.core.models import AuditEvent, ChangeOutbox
from app.core.principal import Viewer

log = logging.getLogger("efdb.webhooks")


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(hours=6)
    give_up_after: timedelta = timedelta(days=1)
    lease: timedelta = timedelta(seconds=60)
    timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RetryPolicy:
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            first_delay=timedelta(seconds=settings.webhook_retry_first_seconds),
            **overrides,
        )

    def delay(self, attempts: int) -> timedelta:
        delay: timedelta = min(self.first_delay * (2 ** max(attempts - 1, 0)), self.max_delay)
        return delay


def outbox_head(session: Session) -> int:
    head = session.execute(select(ChangeOutbox.id).order_by(ChangeOutbox.id.desc()).limit(1))
    return head.scalar_one_or_none() or 0


def _viewer(session: Session, client_id: str) -> Viewer:
    """The subscription's client as a reader now: its scopes, its publisher (which reads its own
    registered datasets) and its grants; a revoked client reads as anonymous callers do."""
    state = client_state(session, client_id)
    if state is None or state.revoked:
        return Viewer(client_id=client_id)
    held = state.scopes
    granted = granted_datasets(session, client_id) if "factors:read" in held else frozenset()
    return Viewer(client_id=client_id, publisher=state.publisher, scopes=held, granted=granted)


def event_body(session: Session, *, audit_event_id: int, viewer: Viewer) -> dict[str, Any] | None:
    """The change as the feed tells it to `viewer`, or None when it may not see it."""
    event = session.get(AuditEvent, audit_event_id)
    if event is None:
        return None
    context = feed._Context(session, [event])
    return feed._change(event, context, viewer, feed.FeedFilter())


def fan_out(session: Session, *, batch: int = 500) -> int:
    """Create the deliveries of the changes each active subscription has not seen yet."""
    created = 0
    query = select(WebhookSubscription).where(WebhookSubscription.deleted_at.is_(None))
    if session.get_bind().dialect.name == "postgresql":
        # Another worker fanning out the same subscription skips it (no duplicate deliveries).
        query = query.with_for_update(skip_locked=True)
    subs = session.execute(query.order_by(WebhookSubscription.id)).scalars().all()
    for sub in subs:
        rows = session.execute(
            select(ChangeOutbox)
            .where(ChangeOutbox.id > sub.outbox_position)
            .order_by(ChangeOutbox.id)
            .limit(batch)
        ).scalars()
        viewer = _viewer(session, sub.client_id)
        for row in rows:
            sub.outbox_position = row.id
            if sub.events and row.change_type not in sub.events:
                continue
            change = event_body(session, audit_event_id=row.audit_event_id, viewer=viewer)
            if change is None:
                continue
            if sub.datasets and f"{change['publisher']}/{change['dataset']}" not in sub.datasets:
                continue
            session.add(
                WebhookDelivery(
                    subscription_id=sub.id,
                    outbox_id=row.id,
                    message_id=f"msg_efdb_{row.audit_event_id}",
                    status="pending",
                    attempts=0,
                    next_attempt_at=utcnow(),
                )
            )
            created += 1
    session.flush()
    return created


def claim(session: Session, *, now: datetime, policy: RetryPolicy, limit: int = 20) -> list[int]:
    query = (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            (WebhookDelivery.locked_until.is_(None)) | (WebhookDelivery.locked_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed = session.execute(query).scalars().all()
    for delivery in claimed:
        delivery.locked_until = now + policy.lease
    session.flush()
    return [d.id for d in claimed]


@dataclass(frozen=True)
class _Message:
    url: str
    message_id: str
    body: bytes
    secrets: list[str]


def _message(
    session: Session, delivery_id: int, settings: Settings, now: datetime
) -> _Message | None:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        return None
    sub = session.get(WebhookSubscription, delivery.subscription_id)
    outbox = session.get(ChangeOutbox, delivery.outbox_id)
    if sub is None or outbox is None or sub.deleted_at is not None:
        return None
    change = event_body(
        session, audit_event_id=outbox.audit_event_id, viewer=_viewer(session, sub.client_id)
    )
    if change is None:
        return None
    envelope = {"type": change["type"], "timestamp": change["occurred_at"], "data": change}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    keys = fernet(settings)
    secrets = [keys.decrypt(sub.secret_ciphertext.encode()).decode()]
    if (
        sub.previous_secret_ciphertext
        and sub.previous_secret_expires_at is not None
        and sub.previous_secret_expires_at > now
    ):
        secrets.append(keys.decrypt(sub.previous_secret_ciphertext.encode()).decode())
    return _Message(sub.url, delivery.message_id, body, secrets)


def send_one(
    sessions: sessionmaker[Session],
    delivery_id: int,
    *,
    settings: Settings,
    policy: RetryPolicy,
    http: httpx.Client,
) -> str:
    now = utcnow()
    with sessions.begin() as session:
        message = _message(session, delivery_id, settings, now)
        if message is None:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is not None:
                delivery.status = "cancelled"
            return "cancelled"
    signature = " ".join(
        Webhook(s).sign(message.message_id, now, message.body) for s in message.secrets
    )
    headers = {
        "content-type": "application/json",
        "webhook-id": message.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    try:
        response = http.post(
            message.url, content=message.body, headers=headers, timeout=policy.timeout_seconds
        )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"answered {status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    elapsed = int((time.monotonic() - started) * 1000)
    with sessions.begin() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        delivery.attempts += 1
        delivery.locked_until = None
        delivery.last_status_code = status_code
        delivery.last_error = error
        session.add(
            WebhookAttempt(
                delivery_id=delivery_id,
                attempted_at=now,
                status_code=status_code,
                error=error,
                duration_ms=elapsed,
            )
        )
        sub = session.get(WebhookSubscription, delivery.subscription_id)
        if error is None:
            delivery.status = "delivered"
            delivery.delivered_at = utcnow()
            if sub is not None and sub.status == "failing":
                sub.status, sub.failing_since = "active", None
            return "delivered"
        if utcnow() - delivery.created_at >= policy.give_up_after:
            delivery.status = "failed"
            if sub is not None and sub.status != "deleted":
                sub.status = "failing"
                sub.failing_since = sub.failing_since or utcnow()
            return "failed"
        delivery.next_attempt_at = utcnow() + policy.delay(delivery.attempts)
        return "retry"


def run_once(
    sessions: sessionmaker[Session],
    *,
    settings: Settings,
    policy: RetryPolicy,
    http: httpx.Client,
) -> int:
    """One round: fan out, claim what is due, send it. Returns the deliveries attempted."""
    with sessions.begin() as session:
        fan_out(session)
    with sessions.begin() as session:
        claimed = claim(session, now=utcnow(), policy=policy)
    for delivery_id in claimed:
        send_one(sessions, delivery_id, settings=settings, policy=policy, http=http)
    return len(claimed)


def run_worker(
    sessions: sessionmaker[Session],
    *,
    settings: Settings,
    stop: threading.Event,
    policy: RetryPolicy | None = None,
    poll_seconds: float = 1.0,
) -> None:
    """Deliver until `stop` is set (`efdb worker`, or `efdb serve`'s thread)."""
    policy = policy or RetryPolicy.from_settings(settings)
    with httpx.Client(follow_redirects=False) as http:
        while not stop.is_set():
            try:
                busy = run_once(sessions, settings=settings, policy=policy, http=http)
            except Exception:  # a database hiccup must not end the loop
                log.exception("webhook round failed; trying again")
                busy = 0
            if not busy:
                stop.wait(poll_seconds)
