"""Read API for factors: search and exact lookup."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.params import Path
from sqlalchemy.engine import Engine

from app.auth.viewer import ViewerDep
from app.core.db import SessionDep
from app.core.errors import InvalidParameter
from app.core.http_cache import (
    PINNED_RELEASE,
    PRIVATE,
    SHORT_LIVED,
    cached_json,
    json_answer,
    json_bytes,
)
from app.core.pagination import (
    after_id_from_cursor,
    encode_cursor,
    id_cursor,
    next_link,
    page_response,
)
from app.core.params import (
    DATASET_REF_PATTERN,
    DEFAULT_PAGE,
    SLUG_PATTERN,
    Cursor,
    DatasetSlug,
    Limit,
    PublisherSlug,
    VersionPath,
    only_query_params,
)
from app.core.principal import ANONYMOUS
from app.core.problem_text import Message
from app.core.schemas import Page
from app.datasets import service as dataset_service
from app.datasets import usage
from app.datasets.generation import committed_generation
from app.datasets.version_models import RELEASED_STATUSES
from app.datasets.visibility import AsOf as AsOfMoment
from app.datasets.visibility import parse_as_of
from app.factors import service
from app.factors.lookup import lookup_answer
from app.factors.page_cache import kept_response, make_page, page_key, search_page_cache
from app.factors.schemas import (
    FACTOR_CODE_PATTERN,
    MAX_YEAR,
    MIN_YEAR,
    REGION_PATTERN,
    Boundary,
    FactorRead,
    FactorWithGwp,
    GwpSetName,
)
from app.reference.gwp import apply_gwp, gwp_table_for
from app.reference.schemas import ACTIVITY_ID_PATTERN

router = APIRouter(prefix="/v1/factors", tags=["factors"])
# A release's factors, under its dataset's URL (app/main.py includes it after the catalog's).
version_router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

SEARCH_PARAMS = (
    "q",
    "match",
    "activity_id",
    "region",
    "year",
    "unit",
    "category",
    "boundary",
    "publisher",
    "dataset",
    "version",
    "as_of",
    "limit",
    "cursor",
    "gwp",
)
VersionPin = Annotated[
    str | None, Query(max_length=32, description="Pin an exact release, e.g. 1.0.0")
]
AsOf = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Answer as the database stood at the end of this date (UTC), or at this "
        "RFC 3339 timestamp (with its offset, e.g. 2026-12-03T14:05:00Z)",
        examples=["2026-12-03", "2026-12-03T14:05:00Z"],
    ),
]


def parsed_as_of(as_of: str | None) -> AsOfMoment | None:
    """The `as_of` query parameter as a moment; 422 naming the parameter if it is not one."""
    if as_of is None:
        return None
    try:
        return parse_as_of(as_of)
    except ValueError as exc:
        raise InvalidParameter(
            f"as_of: {exc}.",
            errors=[{"loc": ["query", "as_of"], "code": "invalid_as_of", "detail": str(exc)}],
        ) from exc


def _refuse_nul(**texts: str | None) -> None:
    """PostgreSQL text cannot hold NUL: refuse it as bad input rather than fail in the database."""
    for name, text in texts.items():
        if text is not None and "\x00" in text:
            raise InvalidParameter(
                f"{name}: the text contains a NUL character.",
                errors=[{"loc": ["query", name], "code": "invalid_text", "detail": "NUL"}],
            )


FactorCode = Annotated[
    str,
    Path(
        pattern=FACTOR_CODE_PATTERN,
        description="The publisher's key for the factor within the dataset, e.g. "
        "`national-average-2021`",
    ),
]
GwpParam = Annotated[
    GwpSetName | None,
    Query(
        description="Answer co2e in this IPCC GWP100 set, recomputed from the gas breakdown "
        "where the factor has one (each factor says what was done in `gwp_conversion`)"
    ),
]


@router.get(
    "",
    response_model=Page[FactorWithGwp],
    summary="Search factors",
    dependencies=[Depends(only_query_params(SEARCH_PARAMS))],
)
def search_factors(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Text in the factor's Chinese or English name, or in the names and "
            "keywords of its activity (`GET /v1/activities`), e.g. 电网 or grid",
        ),
    ] = None,
    match: Annotated[
        Literal["term", "substring"],
        Query(
            description="How each term of `q` matches: `term` (default) a whole term: "
            "Chinese outside the longer, distinct terms of the activity vocabulary (烟煤 "
            "does not find 无烟煤, anthracite), others at the start of a word (`coal` does not "
            "find charcoal); `substring` anywhere, term matches ranked first",
        ),
    ] = "term",
    activity_id: Annotated[
        str | None,
        Query(
            pattern=ACTIVITY_ID_PATTERN,
            description="Only this activity (shared slug, e.g. `electricity-grid-mix`)",
        ),
    ] = None,
    region: Annotated[
        str | None,
        Query(
            pattern=REGION_PATTERN,
            description="Only factors for exactly this region (no fallback), e.g. `CN`, "
            "`CN-GD`, `GLO`",
        ),
    ] = None,
    year: Annotated[
        int | None,
        Query(ge=MIN_YEAR, le=MAX_YEAR, description="Only this reference year, e.g. 2022"),
    ] = None,
    unit: Annotated[
        str | None,
        Query(
            max_length=32,
            description="Only factors per this unit, in any accepted spelling (`kwh` finds "
            "`kWh`); 422 if it is not a unit",
        ),
    ] = None,
    category: Annotated[
        str | None,
        Query(
            max_length=255,
            description="Only this category and its subcategories, e.g. `energy` finds "
            "`energy/electricity`",
        ),
    ] = None,
    boundary: Annotated[Boundary | None, Query(description="Only this life-cycle boundary")] = None,
    publisher: Annotated[
        str | None, Query(pattern=SLUG_PATTERN, description="Only this publisher (slug)")
    ] = None,
    dataset: Annotated[
        str | None,
        Query(
            pattern=DATASET_REF_PATTERN,
            description="Dataset slug, or publisher/dataset",
        ),
    ] = None,
    version: VersionPin = None,
    as_of: AsOf = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
    gwp: GwpParam = None,
) -> Response:
    """Search the released factors you may read (public datasets without a token, `registered`
    ones your client was granted, or its own publisher's): current releases, or one pinned
    `version`, or those published `as_of` a moment. A page of at most `limit` factors with a
    `next` link (also in the `Link` header); 422 names an unknown or invalid parameter."""
    _refuse_nul(q=q, category=category)
    if dataset is not None and "/" in dataset:
        owner, dataset = dataset.split("/", 1)
        if publisher is not None and publisher != owner:
            raise InvalidParameter(
                Message("query.publisher_conflict", owner=owner, publisher=publisher),
                errors=[{"loc": ["query", "publisher"], "code": "conflict", "detail": owner}],
            )
        publisher = owner
    if version is not None and as_of is not None:
        raise InvalidParameter(
            Message("query.version_or_as_of"),
            errors=[{"loc": ["query", "as_of"], "code": "exclusive", "detail": "version given"}],
        )
    filters = service.FactorFilters(
        q=q,
        # Only a substring match is named: the default leaves cursors as they were.
        match="substring" if q and match == "substring" else None,
        activity_id=activity_id,
        region=region,
        year=year,
        unit=service.canonical_unit_filter(unit),
        category=category,
        boundary=boundary,
        publisher=publisher,
        dataset=dataset,
        version=version,
        as_of=parsed_as_of(as_of),
    )
    keep = viewer == ANONYMOUS and filters.q is None and filters.as_of is None and gwp is None
    # Read before the search, and from the database the search reads (the replica's, when it
    # serves this request), so that a page is never kept under a newer generation than the
    # state it was made from.
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    generation = committed_generation(engine) if keep else None
    cache = search_page_cache(request.app)
    key = page_key(request)
    if generation is not None:
        kept = cache.get(key, generation)
        if kept is not None:
            return kept_response(request, kept)
    scope = {k: v for k, v in vars(filters).items() if v is not None}
    next_cursor: str | None
    if filters.q:
        # Text search ranks exact activity matches first: the cursor is (rank, id).
        items, position = service.search_factors_ranked(
            session,
            viewer=viewer,
            filters=filters,
            after=service.ranked_after(cursor, scope),
            limit=limit,
        )
        next_cursor = encode_cursor(list(position), scope) if position else None
    else:
        after_id = after_id_from_cursor(cursor, scope)
        items, last_id = service.search_factors(
            session, viewer=viewer, filters=filters, after_id=after_id, limit=limit
        )
        next_cursor = id_cursor(last_id, scope)
    usage.meter_factors(session, viewer, items)
    table = gwp_table_for(session, gwp)
    items = [apply_gwp(item, gwp, table) for item in items]
    # An empty answer may be a version not released yet: kept only as long as a latest one.
    cache_control = PINNED_RELEASE if version and items else SHORT_LIVED
    if generation is None:
        return page_response(request, items, next_cursor, cache_control=cache_control)
    next_url = next_link(request, next_cursor)
    body = json_bytes({"items": items, "next": next_url})
    page = make_page(generation, body, cache_control=cache_control, next_url=next_url)
    cache.put(key, page)
    return kept_response(request, page)


@router.get(
    "/{publisher}/{dataset}/{factor_code}",
    response_model=FactorWithGwp,
    summary="Get one factor (latest release, or pinned with ?version=)",
    dependencies=[Depends(only_query_params(("version", "as_of", "gwp")))],
)
def get_factor(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    factor_code: FactorCode,
    version: VersionPin = None,
    as_of: AsOf = None,
    gwp: GwpParam = None,
) -> Response:
    """One factor by its id: its latest published release, the release pinned by `version`
    (withdrawn ones too, flagged), or the one published `as_of` a moment. Registered datasets
    need `factors:read`; 404 says whether the dataset, the release or the factor is missing."""
    if version is not None and as_of is not None:
        raise InvalidParameter(
            Message("query.version_or_as_of"),
            errors=[{"loc": ["query", "as_of"], "code": "exclusive", "detail": "version given"}],
        )
    cache_control = PINNED_RELEASE if version else SHORT_LIVED
    if as_of is None and gwp is None:
        # The short path (app/factors/lookup.py): the same bytes, kept per release.
        answer = lookup_answer(
            session,
            request.app.state.lookup_cache,
            viewer=viewer,
            publisher=publisher,
            dataset=dataset,
            factor_code=factor_code,
            version=version,
        )
        if answer is not None:
            # Committed here, in this thread, rather than on another trip to the pool.
            session.commit()
            return json_answer(request, answer.body, answer.etag, cache_control=cache_control)
    factor = service.get_factor(
        session,
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        factor_code=factor_code,
        version=version,
        as_of=parsed_as_of(as_of),
    )
    usage.meter_factors(session, viewer, [factor])
    factor = apply_gwp(factor, gwp, gwp_table_for(session, gwp))
    return cached_json(request, factor, cache_control=cache_control)


@version_router.get(
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
    version: VersionPath,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    """A page of the factors of one version, in a stable order. Published, deprecated and
    withdrawn releases are readable as their dataset's access allows; drafts and submissions
    only by its publisher's writing clients and reviewers. 404 for an unknown version or one
    you cannot see."""
    # 404 for an unknown or hidden version rather than an empty page.
    _, found = dataset_service.get_version(
        session, viewer=viewer, publisher=publisher, dataset=dataset, version=version
    )
    released = found.status in RELEASED_STATUSES
    items, next_cursor = service.version_factors_page(
        session,
        viewer=dataset_service.reading_viewer(viewer, publisher),
        publisher=publisher,
        dataset=dataset,
        version=version,
        cursor=cursor,
        limit=limit,
        unreleased_id=None if released else found.id,
        draft=found.status == "draft",
    )
    usage.meter_factors(session, viewer, items)
    return page_response(
        request, items, next_cursor, cache_control=PINNED_RELEASE if released else PRIVATE
    )
