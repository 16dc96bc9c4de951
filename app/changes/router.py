"""`GET /v1/changes`: the change feed (app/changes/feed.py)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from app.auth.viewer import ViewerDep
from app.changes import feed
from app.changes.schemas import ChangesPageRead
from app.core.audit import chain_cursor, parse_chain_cursor
from app.core.db import SessionDep
from app.core.errors import InvalidParameter
from app.core.http_cache import PRIVATE, SHORT_LIVED, cached_json
from app.core.pagination import set_link_header
from app.core.params import (
    DATASET_REF_PATTERN,
    DEFAULT_PAGE,
    SLUG_PATTERN,
    Limit,
    only_query_params,
)
from app.core.principal import Viewer

router = APIRouter(tags=["changes"])

After = Annotated[
    str | None,
    Query(
        max_length=512,
        description="Opaque position: a page's `cursor`, a change's `cursor`, or a snapshot "
        "manifest's `changes_cursor`; omitted: from the first change",
    ),
]
PublisherFilter = Annotated[
    str | None,
    Query(pattern=SLUG_PATTERN, description="Only changes of this publisher's datasets"),
]
DatasetFilter = Annotated[
    str | None,
    Query(
        pattern=DATASET_REF_PATTERN,
        description="Only changes of this dataset: `slug` or `publisher/slug`",
    ),
]


def feed_filter(publisher: str | None, dataset: str | None) -> feed.FeedFilter:
    if dataset is not None and "/" in dataset and publisher is not None:
        owner = dataset.split("/", 1)[0]
        if owner != publisher:
            raise InvalidParameter(
                f"dataset names publisher '{owner}' but publisher is '{publisher}'.",
                errors=[{"loc": ["query", "publisher"], "code": "conflict", "detail": owner}],
            )
    return feed.FeedFilter(publisher=publisher, dataset=dataset)


def read_changes(
    session: Session,
    viewer: Viewer,
    *,
    after: str | None,
    limit: int,
    publisher: str | None,
    dataset: str | None,
) -> feed.ChangesPage:
    position = parse_chain_cursor(after) if after is not None else 0
    return feed.changes_page(
        session,
        viewer=viewer,
        after=position,
        limit=limit,
        wanted=feed_filter(publisher, dataset),
    )


def page_next(request: Request, page: feed.ChangesPage) -> str | None:
    if not page.more:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
    params.append(("after", chain_cursor(page.position)))
    return f"{quote(request.url.path)}?{urlencode(params)}"


@router.get(
    "/v1/changes",
    response_model=ChangesPageRead,
    summary="Every public change, in order, after a cursor",
    dependencies=[Depends(only_query_params(("after", "limit", "publisher", "dataset")))],
)
def list_changes(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    after: After = None,
    limit: Limit = DEFAULT_PAGE,
    publisher: PublisherFilter = None,
    dataset: DatasetFilter = None,
) -> Response:
    """Releases published and withdrawn, datasets deprecated and reference data reloaded, in
    the order of the audit chain, each naming its audit event and that event's hash. Follow
    `next` while it is given; then keep `cursor` and ask again later with `?after=`: nothing
    is skipped or repeated. A snapshot manifest's `changes_cursor` is the position that
    snapshot is consistent with. Registered datasets' changes appear only to readers with
    `factors:read`. Under a narrow filter a page may hold fewer than `limit` changes and still
    have a `next`."""
    page = read_changes(
        session, viewer, after=after, limit=limit, publisher=publisher, dataset=dataset
    )
    next_url = page_next(request, page)
    body = {"items": page.items, "next": next_url, "cursor": chain_cursor(page.position)}
    cache_control = PRIVATE if viewer.scopes else SHORT_LIVED
    response = cached_json(request, body, cache_control=cache_control)
    set_link_header(response, next_url)
    return response
