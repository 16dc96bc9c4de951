"""Read API for datasets and their version lists (the catalog)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.viewer import ViewerDep
from app.core.db import SessionDep
from app.core.http_cache import SHORT_LIVED, cached_json
from app.core.pagination import page_response
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
from app.datasets.schemas import DatasetRead, VersionRead

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
    publisher: Annotated[
        str | None, Query(pattern=SLUG_PATTERN, description="Only this publisher's datasets (slug)")
    ] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    """A page of the datasets you may see, in creation order: public ones without a token, and
    the `registered` ones you may read too (granted, your publisher's, or every one for national
    roles). Each says its licence and latest release."""
    items, next_cursor = service.datasets_page(
        session, viewer=viewer, publisher=publisher, cursor=cursor, limit=limit
    )
    return page_response(request, items, next_cursor, cache_control=SHORT_LIVED)


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
    """One dataset: titles, sector, access, licence, status (and successor when deprecated) and
    its latest release. 404 when there is no such dataset or it is `registered` and the caller
    may not read it (no grant, not its publisher, no national role)."""
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
    """Every version of the dataset, newest first, in one page: released ones (published,
    deprecated, withdrawn) for every reader; drafts, submissions and rejections too for its
    publisher's writing clients and for reviewers. 404 for an unknown or unreadable dataset."""
    items = service.list_versions(session, viewer=viewer, publisher=publisher, dataset=dataset)
    return cached_json(request, {"items": items, "next": None}, cache_control=SHORT_LIVED)
