"""Webhook subscriptions: register an endpoint for some change types and datasets, see it,
rotate its secret, delete it, list its deliveries and replay one.

The signing secret (Standard Webhooks form, `whsec_…`) is shown once, at creation and at
rotation, and stored only encrypted (Fernet, `EFDB_WEBHOOK_KEY`): the worker needs the
secret itself to sign, so a hash would not do. A rotated-out secret keeps signing beside the
new one (two signatures in `webhook-signature`) for a grace period.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.changes.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.core.audit import PUBLIC_CHANGES
from app.core.config import Settings
from app.core.errors import InvalidParameter, NotFound
from app.core.principal import Principal
from app.datasets.models import Dataset, Publisher

ROTATION_GRACE = timedelta(hours=24)
MAX_DATASETS = 100
_DATASET_REF = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}/[a-z0-9][a-z0-9-]{0,63}$")


class WebhookKeyMissing(RuntimeError):
    pass


def fernet(settings: Settings) -> Fernet:
    """The key that encrypts webhook secrets: `EFDB_WEBHOOK_KEY`, or outside production one
    generated once (mode 0600) beside the generated signing key."""
    if settings.webhook_key is not None:
        return Fernet(settings.webhook_key.get_secret_value().encode())
    if settings.environment == "production":
        raise WebhookKeyMissing("EFDB_WEBHOOK_KEY must be set in production to use webhooks")
    path = Path(settings.generated_signing_key).with_name("webhook-key")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key())
    return Fernet(path.read_bytes().strip())


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def check_url(url: str, settings: Settings) -> None:
    parts = urlsplit(url)
    local = parts.scheme == "http" and parts.hostname == "127.0.0.1"
    if parts.scheme == "https" and parts.hostname:
        return
    if local and settings.environment != "production":
        return
    allowed = "https://" + (
        "" if settings.environment == "production" else " (or http://127.0.0.1)"
    )
    raise InvalidParameter(
        f"A webhook URL must be {allowed}: '{url}' is not.",
        errors=[{"loc": ["body", "url"], "code": "insecure_url", "detail": f"use {allowed}"}],
    )


def _check_events(events: list[str]) -> list[str]:
    known = set(PUBLIC_CHANGES.values())
    errors = [
        {
            "loc": ["body", "events", str(i)],
            "code": "unknown_event",
            "detail": f"'{e}' is none of {', '.join(sorted(known))}",
        }
        for i, e in enumerate(events)
        if e not in known
    ]
    if errors:
        raise InvalidParameter("Unknown event type(s).", errors=errors)
    return sorted(set(events))


def _check_datasets(session: Session, datasets: list[str], principal: Principal) -> list[str]:
    if len(datasets) > MAX_DATASETS:
        raise InvalidParameter(
            f"At most {MAX_DATASETS} datasets a subscription.",
            errors=[
                {"loc": ["body", "datasets"], "code": "too_many", "detail": str(len(datasets))}
            ],
        )
    rows = session.execute(
        select(Publisher.slug, Dataset.slug, Dataset.access, Dataset.id).join(
            Publisher, Publisher.id == Dataset.publisher_id
        )
    ).all()
    viewer = principal.as_viewer()
    visible = {
        f"{p}/{d}"
        for p, d, access, dataset_id in rows
        if viewer.may_read(access=access, publisher=p, dataset_id=dataset_id)
    }
    errors = [
        {"loc": ["body", "datasets", str(i)], "code": "unknown_dataset", "detail": ref}
        for i, ref in enumerate(datasets)
        if not _DATASET_REF.match(ref) or ref not in visible
    ]
    if errors:
        raise InvalidParameter(
            "No such dataset (publisher/dataset) that this client may read.", errors=errors
        )
    return sorted(set(datasets))


def _new_id() -> str:
    return "wh_" + secrets.token_hex(12)


def subscription_resource(sub: WebhookSubscription, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": sub.id,
        "url": sub.url,
        "events": sub.events,
        "datasets": sub.datasets,
        "status": sub.status,
        "failing_since": sub.failing_since.isoformat() if sub.failing_since else None,
        "created_at": sub.created_at.isoformat(),
        "previous_secret_expires_at": (
            sub.previous_secret_expires_at.isoformat() if sub.previous_secret_expires_at else None
        ),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def create_subscription(
    session: Session,
    *,
    principal: Principal,
    settings: Settings,
    url: str,
    events: list[str],
    datasets: list[str],
    outbox_head: int,
) -> dict[str, Any]:
    check_url(url, settings)
    secret = new_secret()
    sub = WebhookSubscription(
        id=_new_id(),
        client_id=principal.client_id,
        url=url,
        events=_check_events(events),
        datasets=_check_datasets(session, datasets, principal),
        secret_ciphertext=fernet(settings).encrypt(secret.encode()).decode("ascii"),
        status="active",
        outbox_position=outbox_head,
    )
    session.add(sub)
    session.flush()
    return subscription_resource(sub, secret)


def owned(session: Session, principal: Principal, subscription_id: str) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, subscription_id)
    if sub is None or sub.client_id != principal.client_id or sub.deleted_at is not None:
        raise NotFound(f"No webhook '{subscription_id}' of this client.")
    return sub


def list_subscriptions(session: Session, principal: Principal) -> list[dict[str, Any]]:
    subs = session.execute(
        select(WebhookSubscription)
        .where(
            WebhookSubscription.client_id == principal.client_id,
            WebhookSubscription.deleted_at.is_(None),
        )
        .order_by(WebhookSubscription.created_at, WebhookSubscription.id)
    ).scalars()
    return [subscription_resource(sub) for sub in subs]


def rotate_secret(
    session: Session, sub: WebhookSubscription, *, settings: Settings, now: datetime
) -> dict[str, Any]:
    secret = new_secret()
    sub.previous_secret_ciphertext = sub.secret_ciphertext
    sub.previous_secret_expires_at = now + ROTATION_GRACE
    sub.secret_ciphertext = fernet(settings).encrypt(secret.encode()).decode("ascii")
    session.flush()
    return subscription_resource(sub, secret)


def delete_subscription(session: Session, sub: WebhookSubscription, *, now: datetime) -> None:
    sub.deleted_at = now
    sub.status = "deleted"
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == sub.id, WebhookDelivery.status == "pending")
        .values(status="cancelled")
    )
    session.flush()


def pending_deliveries(session: Session) -> int:
    """Deliveries waiting to be sent or retried, every subscription's (the backlog `/metrics`
    reports): one count over the index on (status, next_attempt_at)."""
    count = select(func.count()).where(WebhookDelivery.status == "pending")
    return int(session.scalar(count) or 0)


def deliveries(session: Session, sub: WebhookSubscription, *, limit: int) -> list[dict[str, Any]]:
    rows = (
        session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == sub.id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )
    attempts: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for attempt in session.execute(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([r.id for r in rows]))
            .order_by(WebhookAttempt.id)
        ).scalars():
            attempts.setdefault(attempt.delivery_id, []).append(
                {
                    "at": attempt.attempted_at.isoformat(),
                    "status_code": attempt.status_code,
                    "error": attempt.error,
                    "duration_ms": attempt.duration_ms,
                }
            )
    return [
        {
            "id": r.id,
            "message_id": r.message_id,
            "status": r.status,
            "attempts": attempts.get(r.id, []),
            "next_attempt_at": r.next_attempt_at.isoformat() if r.status == "pending" else None,
            "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ]


def replay(
    session: Session, sub: WebhookSubscription, delivery_id: int, *, now: datetime
) -> dict[str, Any]:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.subscription_id != sub.id:
        raise NotFound(f"No delivery {delivery_id} of webhook '{sub.id}'.")
    delivery.status = "pending"
    delivery.next_attempt_at = now
    delivery.locked_until = None
    delivery.created_at = now  # the retry window starts again
    if sub.status == "failing":
        sub.status = "active"
        sub.failing_since = None
    session.flush()
    return {"id": delivery.id, "message_id": delivery.message_id, "status": delivery.status}
