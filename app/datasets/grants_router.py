"""The publisher's own grants: who, beyond its clients and the national roles, reads each of
its registered datasets. `datasets:write` of that publisher, or `admin`; others get 404."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from app.auth.dependencies import authenticate
from app.core.db import SessionDep
from app.core.errors import NotFound
from app.core.params import DatasetSlug, PublisherSlug
from app.core.principal import Principal
from app.datasets import grants, usage

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

ClientIdPath = Annotated[
    str, Path(max_length=64, description="The client id (`efdb client list` shows them)")
]


class GrantRead(BaseModel):
    """A client's grant to read one registered dataset."""

    dataset: str = Field(description="`publisher/dataset`")
    client_id: str = Field(description="The client that may read the dataset")
    granted_by: str = Field(description="Who granted it (client id, or the CLI's actor)")
    granted_at: datetime = Field(description="When it was granted, UTC")


class GrantList(BaseModel):
    """Every grant on one dataset, by client id."""

    items: list[GrantRead] = Field(description="The grants, by client id")


def _manager(
    request: Request, session: SessionDep, publisher: PublisherSlug, dataset: DatasetSlug
) -> Principal:
    """`datasets:write` of the dataset's publisher, or `admin`; any other token gets 404."""
    principal = authenticate(request, session, frozenset())
    if principal.has("admin"):
        return principal
    if principal.has("datasets:write") and principal.publisher == publisher:
        return principal
    raise NotFound(f"There is no dataset {publisher}/{dataset} whose grants you may manage.")


ManagerDep = Annotated[Principal, Depends(_manager)]
# Either scope will do (OpenAPI lists alternatives): the publisher's writer, or an administrator.
MANAGERS: dict[str, Any] = {"security": [{"OAuth2": ["datasets:write"]}, {"OAuth2": ["admin"]}]}


@router.get(
    "/{publisher}/{dataset}/grants",
    response_model=GrantList,
    summary="List grants",
    openapi_extra=MANAGERS,
)
def list_grants(
    session: SessionDep, principal: ManagerDep, publisher: PublisherSlug, dataset: DatasetSlug
) -> GrantList:
    """The clients granted reading this registered dataset (its publisher's clients and the
    national roles read it without a grant). `datasets:write` of the publisher, or `admin`."""
    items = grants.list_grants(session, publisher=publisher, dataset=dataset)
    return GrantList(items=[GrantRead.model_validate(item) for item in items])


@router.put(
    "/{publisher}/{dataset}/grants/{client_id}",
    response_model=GrantRead,
    summary="Grant a client reading a registered dataset",
    openapi_extra=MANAGERS,
    responses={201: {"model": GrantRead, "description": "Granted now"}},
)
def put_grant(
    response: Response,
    session: SessionDep,
    principal: ManagerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    client_id: ClientIdPath,
) -> GrantRead:
    """Let `client_id` (with `factors:read`) read the dataset: 201 when granted now, 200 when
    it already was. 409 for a public dataset (no grant needed); 404 for an unknown client.
    Audited as `dataset.grant_added`."""
    item, created = grants.add_grant(
        session,
        publisher=publisher,
        dataset=dataset,
        client_id=client_id,
        actor=principal.client_id,
    )
    response.status_code = 201 if created else 200
    return GrantRead.model_validate(item)


@router.delete(
    "/{publisher}/{dataset}/grants/{client_id}",
    status_code=204,
    summary="Revoke a client's grant",
    openapi_extra=MANAGERS,
)
def delete_grant(
    session: SessionDep,
    principal: ManagerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    client_id: ClientIdPath,
) -> Response:
    """End the grant at once: the client's next read of the dataset is a 404. Audited as
    `dataset.grant_removed`."""
    grants.remove_grant(
        session,
        publisher=publisher,
        dataset=dataset,
        client_id=client_id,
        actor=principal.client_id,
    )
    return Response(status_code=204)


class UsageDay(BaseModel):
    """One client's metered reads of the dataset on one day (UTC)."""

    day: date = Field(description="The day, UTC")
    client_id: str = Field(description="The client that read")
    requests: int = Field(description="Requests that served the dataset's factor rows")
    rows: int = Field(description="Factor rows served (a version export: the release's rows)")


class UsageRead(BaseModel):
    """Metered use of one registered dataset, by day then client."""

    dataset: str = Field(description="`publisher/dataset`")
    items: list[UsageDay] = Field(description="By day, then client id; empty for public data")


@router.get(
    "/{publisher}/{dataset}/usage",
    response_model=UsageRead,
    summary="Metered use of a registered dataset",
    openapi_extra=MANAGERS,
)
def get_usage(
    session: SessionDep,
    principal: ManagerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    since: Annotated[
        date | None, Query(description="Only this day (UTC) and later, YYYY-MM-DD")
    ] = None,
) -> UsageRead:
    """Per client and day: the requests that read this registered dataset's factors (search,
    lookup, a version's factors, resolve, version exports) and the rows they served. Public
    datasets are not metered. `datasets:write` of the publisher, or `admin`."""
    target = grants.find_dataset(session, publisher, dataset)
    items = usage.usage(session, dataset_id=target.id, since=since)
    return UsageRead(
        dataset=f"{publisher}/{dataset}", items=[UsageDay.model_validate(i) for i in items]
    )
