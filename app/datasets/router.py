"""Read API for datasets, their versions and a version's factors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from app.auth.dependencies import ReviewerDep, WriterDep
from app.auth.viewer import Viewer, ViewerDep
from app.core.db import SessionDep
from app.core.errors import InvalidParameter
from app.core.http_cache import (
    IMMUTABLE,
    PINNED_RELEASE,
    PRIVATE,
    SHORT_LIVED,
    cached_json,
    etag_matches,
)
from app.core.pagination import after_id_from_cursor, id_cursor, page_response
from app.core.params import (
    DEFAULT_PAGE,
    SLUG_PATTERN,
    Cursor,
    DatasetSlug,
    Limit,
    PublisherSlug,
    only_query_params,
)
from app.core.schemas import Page
from app.datasets import service
from app.datasets.schemas import DatasetCreate, DatasetRead, DeprecateBody, VersionRead
from app.factors import service as factor_service
from app.factors.schemas import FactorRead
from app.versioning.clock import ClockDep
from app.versioning.diff import diff_etag, released_pair, stream_diff_json
from app.versioning.models import RELEASED_STATUSES

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.get(
    "",
    response_model=Page[DatasetRead],
    summary="List datasets",
    dependencies=[Depends(only_query_params(("publisher", "limit", "cursor")))],
)
def list_datasets(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    items, next_cursor = datasets_page(
        session, viewer=viewer, publisher=publisher, cursor=cursor, limit=limit
    )
    return page_response(request, items, next_cursor, cache_control=SHORT_LIVED)


def datasets_page(
    session: Session, *, viewer: Viewer, publisher: str | None, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of datasets (one publisher's, or all) and the cursor of the next page. The
    API's list and the publisher page both read it, so either's cursor continues the other."""
    scope = {"publisher": publisher}
    items, last_id = service.list_datasets(
        session,
        viewer=viewer,
        publisher=publisher,
        after_id=after_id_from_cursor(cursor, scope),
        limit=limit,
    )
    return items, id_cursor(last_id, scope)


@router.get(
    "/{publisher}/{dataset}",
    response_model=DatasetRead,
    summary="Get a dataset",
    dependencies=[Depends(only_query_params(()))],
)
def get_dataset(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
) -> Response:
    payload = service.get_dataset(session, viewer=viewer, publisher=publisher, dataset=dataset)
    return cached_json(request, payload, cache_control=SHORT_LIVED)


@router.get(
    "/{publisher}/{dataset}/versions",
    response_model=Page[VersionRead],
    summary="List a dataset's released versions, newest first",
    dependencies=[Depends(only_query_params(()))],
)
def list_versions(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
) -> Response:
    items = service.list_versions(session, viewer=viewer, publisher=publisher, dataset=dataset)
    return cached_json(request, {"items": items, "next": None}, cache_control=SHORT_LIVED)


@router.get(
    "/{publisher}/{dataset}/versions/{version}",
    response_model=VersionRead,
    summary="Get one released version",
    dependencies=[Depends(only_query_params(()))],
)
def get_version(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: str,
) -> Response:
    payload, found = service.get_version(
        session, viewer=viewer, publisher=publisher, dataset=dataset, version=version
    )
    released = found.status in RELEASED_STATUSES
    return cached_json(request, payload, cache_control=PINNED_RELEASE if released else PRIVATE)


@router.get(
    "/{publisher}/{dataset}/versions/{version}/factors",
    response_model=Page[FactorRead],
    summary="List the factors of one released version",
    dependencies=[Depends(only_query_params(("limit", "cursor")))],
)
def list_version_factors(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: str,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    # 404 for an unknown or hidden version rather than an empty page.
    _, found = service.get_version(
        session, viewer=viewer, publisher=publisher, dataset=dataset, version=version
    )
    released = found.status in RELEASED_STATUSES
    items, next_cursor = version_factors_page(
        session,
        viewer=service.reading_viewer(viewer, publisher),
        publisher=publisher,
        dataset=dataset,
        version=version,
        cursor=cursor,
        limit=limit,
        unreleased_id=None if released else found.id,
    )
    return page_response(
        request, items, next_cursor, cache_control=PINNED_RELEASE if released else PRIVATE
    )


def version_factors_page(
    session: Session,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    version: str,
    cursor: str | None,
    limit: int,
    unreleased_id: int | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of one release's factors and the cursor of the next (the caller has checked
    that the release exists, or that it may read the unreleased version `unreleased_id`).
    The API's list and the version page both read it, so either's cursor continues the
    other."""
    filters = factor_service.FactorFilters(
        publisher=publisher, dataset=dataset, version=version, version_id=unreleased_id
    )
    scope = {k: v for k, v in vars(filters).items() if v is not None}
    items, last_id = factor_service.search_factors(
        session,
        viewer=viewer,
        filters=filters,
        after_id=after_id_from_cursor(cursor, scope),
        limit=limit,
    )
    return items, id_cursor(last_id, scope)


@router.post(
    "",
    status_code=201,
    response_model=DatasetRead,
    summary="Create a dataset of the caller's own publisher",
)
def create_dataset(
    session: SessionDep, principal: WriterDep, clock: ClockDep, body: DatasetCreate
) -> JSONResponse:
    if principal.publisher is None:
        raise InvalidParameter(
            "Only a publisher's client creates datasets; this client belongs to no publisher."
        )
    publisher = service.publisher_by_slug(session, principal.publisher)
    created = service.create_dataset(
        session,
        publisher=publisher,
        fields=body.model_dump(),
        actor=principal.client_id,
        now=clock(),
    )
    return JSONResponse(
        DatasetRead.model_validate(created).model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/datasets/{created['id']}"},
    )


@router.post(
    "/{publisher}/{dataset}/deprecate",
    response_model=DatasetRead,
    summary="Deprecate a dataset and name the dataset that supersedes it (national reviewer)",
    responses={
        403: {"description": "The reviewer is of the dataset's publisher"},
        409: {"description": "Already deprecated, or the successor chain would loop"},
    },
)
def deprecate_dataset(
    session: SessionDep,
    principal: ReviewerDep,
    clock: ClockDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    body: DeprecateBody,
) -> JSONResponse:
    deprecated = service.deprecate_dataset(
        session,
        publisher=publisher,
        dataset=dataset,
        superseded_by=body.superseded_by,
        reason=body.reason,
        actor=principal.client_id,
        actor_publisher=principal.publisher,
        now=clock(),
    )
    return JSONResponse(DatasetRead.model_validate(deprecated).model_dump(mode="json"))


@router.get(
    "/{publisher}/{dataset}/versions/{version}/diff",
    summary="What changed from one released version to another (or to a submitted version, "
    "for its publisher and reviewers), field by field",
    dependencies=[Depends(only_query_params(("from",)))],
)
def diff_versions(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: str,
    from_version: Annotated[
        str, Query(alias="from", max_length=32, description="The older version, e.g. 1.0.0")
    ],
) -> Response:
    old, new = released_pair(
        session,
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        from_version=from_version,
        to_version=version,
        unreleased_to=True,
    )
    # A diff to a draft or a submission is only for its publisher and reviewers: never
    # stored by a shared cache. A submission's frozen content hash still makes a strong ETag.
    released = new.status in RELEASED_STATUSES
    headers = {"Cache-Control": IMMUTABLE if released else PRIVATE}
    if new.content_sha256 is not None:
        headers["ETag"] = diff_etag(old, new)
    if "ETag" in headers and etag_matches(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    # Written as it is computed, from a session of its own: the request's has ended by then.
    body = stream_diff_json(request.app.state.sessionmaker, old=old, new=new)
    return StreamingResponse(body, media_type="application/json", headers=headers)
