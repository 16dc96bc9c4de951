"""`/v1/webhooks`: a client with `webhooks:manage` manages its own subscriptions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.auth.dependencies import WebhooksDep
from app.changes import webhooks
from app.changes.delivery import outbox_head
from app.changes.schemas import ChangeType
from app.core.config import Settings
from app.core.db import SessionDep, utcnow
from app.core.http_cache import PRIVATE, cached_json, json_bytes
from app.core.params import only_query_params

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
_NO_QUERY = [Depends(only_query_params(()))]
SubscriptionId = Annotated[
    str, Path(max_length=40, description="The subscription's id, e.g. `wh_…`")
]


class WebhookCreate(BaseModel):
    """An endpoint to receive changes at, and which changes."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=2048,
        description="HTTPS URL that receives the events (`http://127.0.0.1…` outside production)",
    )
    events: list[ChangeType] = Field(
        default_factory=list, description="Change types to receive; empty: every type"
    )
    datasets: list[str] = Field(
        default_factory=list,
        description="Datasets (`publisher/dataset`) whose changes to receive; empty: all the "
        "client may read (reference reloads come only with an empty list)",
    )


class WebhookRead(BaseModel):
    """A webhook subscription."""

    id: str = Field(description="Its id")
    url: str = Field(description="Where events are sent")
    events: list[str] = Field(description="Change types sent; empty: every type")
    datasets: list[str] = Field(description="Datasets whose changes are sent; empty: all")
    status: str = Field(description="`active`, or `failing` once a delivery kept failing for a day")
    failing_since: str | None = Field(description="When it started failing, RFC 3339 UTC")
    created_at: str = Field(description="When it was registered, RFC 3339 UTC")
    previous_secret_expires_at: str | None = Field(
        description="Until when the secret before the last rotation still signs too"
    )
    secret: str | None = Field(
        None,
        description="The signing secret (Standard Webhooks `whsec_…`): only in the answer "
        "that creates or rotates it, never again",
    )


class WebhookList(BaseModel):
    """The calling client's subscriptions."""

    items: list[WebhookRead] = Field(description="Oldest first")


class AttemptRead(BaseModel):
    """One try at sending a delivery."""

    at: str = Field(description="When, RFC 3339 UTC")
    status_code: int | None = Field(description="The receiver's HTTP status; null if none")
    error: str | None = Field(description="What went wrong; null when it was delivered")
    duration_ms: int = Field(description="How long the request took")


class DeliveryRead(BaseModel):
    """One event sent (or to be sent) to a subscription."""

    id: int = Field(description="The delivery's id (to replay it)")
    message_id: str = Field(description="The `webhook-id` header: the same on every attempt")
    status: str = Field(description="`pending`, `delivered`, `failed` or `cancelled`")
    attempts: list[AttemptRead] = Field(description="Every attempt, oldest first")
    next_attempt_at: str | None = Field(description="When it is tried next, while pending")
    delivered_at: str | None = Field(description="When the receiver accepted it")
    created_at: str = Field(description="When it became due")


class DeliveryList(BaseModel):
    """A subscription's deliveries, newest first."""

    items: list[DeliveryRead] = Field(description="At most `limit` deliveries")


class ReplayRead(BaseModel):
    """A delivery queued to be sent again."""

    id: int = Field(description="The delivery's id")
    message_id: str = Field(description="Its `webhook-id`, unchanged")
    status: str = Field(description="`pending`")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post(
    "",
    status_code=201,
    response_model=WebhookRead,
    summary="Register a webhook (its secret is in this answer only)",
    dependencies=_NO_QUERY,
)
def create_webhook(
    body: WebhookCreate, request: Request, session: SessionDep, principal: WebhooksDep
) -> Response:
    """Register an endpoint for the changes of some types and datasets, from now on (the change
    feed, `GET /v1/changes`, has the past). The answer holds the signing `secret`, shown this
    once; events are signed with it per Standard Webhooks (`webhook-id`,
    `webhook-timestamp`, `webhook-signature`)."""
    resource = webhooks.create_subscription(
        session,
        principal=principal,
        settings=_settings(request),
        url=body.url,
        events=list(body.events),
        datasets=body.datasets,
        outbox_head=outbox_head(session),
    )
    return Response(
        json_bytes(resource),
        status_code=201,
        media_type="application/json",
        headers={"Cache-Control": PRIVATE, "Location": f"/v1/webhooks/{resource['id']}"},
    )


@router.get("", response_model=WebhookList, summary="The client's webhooks", dependencies=_NO_QUERY)
def list_webhooks(request: Request, session: SessionDep, principal: WebhooksDep) -> Response:
    """Every webhook of the calling client, without secrets."""
    items = webhooks.list_subscriptions(session, principal)
    return cached_json(request, {"items": items}, cache_control=PRIVATE)


@router.get(
    "/{subscription_id}",
    response_model=WebhookRead,
    summary="One of the client's webhooks",
    dependencies=_NO_QUERY,
)
def get_webhook(
    subscription_id: SubscriptionId, request: Request, session: SessionDep, principal: WebhooksDep
) -> Response:
    """The subscription, without its secret; 404 for another client's."""
    sub = webhooks.owned(session, principal, subscription_id)
    return cached_json(request, webhooks.subscription_resource(sub), cache_control=PRIVATE)


@router.delete(
    "/{subscription_id}",
    status_code=204,
    summary="Delete a webhook",
    dependencies=_NO_QUERY,
)
def delete_webhook(
    subscription_id: SubscriptionId, session: SessionDep, principal: WebhooksDep
) -> Response:
    """Stop sending: pending deliveries are cancelled."""
    sub = webhooks.owned(session, principal, subscription_id)
    webhooks.delete_subscription(session, sub, now=utcnow())
    return Response(status_code=204)


@router.post(
    "/{subscription_id}/secret:rotate",
    response_model=WebhookRead,
    summary="Rotate a webhook's secret (the new one is in this answer only)",
    dependencies=_NO_QUERY,
)
def rotate_webhook_secret(
    subscription_id: SubscriptionId, request: Request, session: SessionDep, principal: WebhooksDep
) -> Response:
    """A new secret, shown this once; for 24 hours events carry a signature with each secret,
    so a receiver can switch without missing one."""
    sub = webhooks.owned(session, principal, subscription_id)
    resource = webhooks.rotate_secret(session, sub, settings=_settings(request), now=utcnow())
    return cached_json(request, resource, cache_control=PRIVATE)


@router.get(
    "/{subscription_id}/deliveries",
    response_model=DeliveryList,
    summary="A webhook's deliveries, with their attempts",
    dependencies=[Depends(only_query_params(("limit",)))],
)
def list_deliveries(
    subscription_id: SubscriptionId,
    request: Request,
    session: SessionDep,
    principal: WebhooksDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 100,
) -> Response:
    """Newest first: each event's status and every attempt (time, HTTP status, error)."""
    sub = webhooks.owned(session, principal, subscription_id)
    items = webhooks.deliveries(session, sub, limit=limit)
    return cached_json(request, {"items": items}, cache_control=PRIVATE)


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/replay",
    response_model=ReplayRead,
    summary="Send a delivery again",
    dependencies=_NO_QUERY,
)
def replay_delivery(
    subscription_id: SubscriptionId,
    delivery_id: Annotated[int, Path(ge=1, lt=2**63, description="The delivery's id")],
    session: SessionDep,
    principal: WebhooksDep,
) -> ReplayRead:
    """Queue the delivery to be sent at once, with the same `webhook-id` (a failing
    subscription becomes active again)."""
    sub = webhooks.owned(session, principal, subscription_id)
    return ReplayRead(**webhooks.replay(session, sub, delivery_id, now=utcnow()))
