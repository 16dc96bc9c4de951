"""`GET /v1/changes`: the change feed (app/changes/feed.py)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from app.auth.viewer import ViewerDep
from app.changes import citations, feed
from app.changes.schemas import (
    ChangesPageRead,
    CitationsVerifyRequest,
    CitationsVerifyResponse,
)
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
from app.factors.batch_router import json_response

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


@router.post(
    "/v1/citations:verify",
    response_model=CitationsVerifyResponse,
    summary="Check up to 1000 factor citations against the releases' current state",
    dependencies=[Depends(only_query_params(()))],
)
def verify_citations(
    request: Request, body: CitationsVerifyRequest, session: SessionDep, viewer: ViewerDep
) -> Response:
    """For each citation (`publisher/dataset/factor_code@version`, optionally the release's
    `content_sha256` and the value used): whether the factor is found, whether the value and
    the hash are the ones cited, whether its release is published, superseded or withdrawn
    (with the reason and date), whether its dataset is deprecated and by what, and the
    current factor that replaces it. Nothing is written. A malformed citation, or more than
    1000, is a 422 whose `errors` name each bad citation's index; nothing is checked then.
    Registered datasets answer as not found without `factors:read`."""
    parsed = citations.parse_citations([c.model_dump() for c in body.citations])
    items = citations.verify_citations(session, viewer=viewer, citations=parsed)
    return json_response({"items": items}, request)
