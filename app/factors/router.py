"""Read API for factors: search and exact lookup."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.params import Path

from app.auth.viewer import ViewerDep
from app.core.db import SessionDep
from app.core.errors import InvalidParameter
from app.core.http_cache import PINNED_RELEASE, SHORT_LIVED, cached_json
from app.core.pagination import (
    after_id_from_cursor,
    decode_cursor,
    encode_cursor,
    id_cursor,
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
    only_query_params,
)
from app.core.schemas import Page
from app.factors import service
from app.factors.gwp import apply_gwp, gwp_table_for
from app.factors.schemas import (
    ACTIVITY_ID_PATTERN,
    FACTOR_CODE_PATTERN,
    MAX_YEAR,
    MIN_YEAR,
    REGION_PATTERN,
    Boundary,
    FactorWithGwp,
    GwpSetName,
)
from app.factors.units import UnitError, parse_declared_unit
from app.provenance.factor_chain import factor_provenance
from app.provenance.prov import prov_document
from app.versioning.history import factor_history
from app.versioning.service import AsOf as AsOfMoment
from app.versioning.service import parse_as_of

router = APIRouter(prefix="/v1/factors", tags=["factors"])

SEARCH_PARAMS = (
    "q",
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


GwpParam = Annotated[
    GwpSetName | None,
    Query(
        description="Answer co2e in this IPCC GWP100 set, recomputed from the gas breakdown "
        "where the factor has one (each factor says what was done in `gwp_conversion`)"
    ),
]


def ranked_after(cursor: str | None, scope: dict[str, object]) -> tuple[int, int] | None:
    """The (rank, id) a text-search cursor continues after."""
    if cursor is None:
        return None
    position = decode_cursor(cursor, scope, 2)
    if not all(
        isinstance(part, int) and not isinstance(part, bool) and 0 <= part < 2**63
        for part in position
    ):
        raise InvalidParameter(
            "The cursor is not one this service issued; start again without `cursor`.",
            errors=[{"loc": ["query", "cursor"], "code": "invalid_cursor", "detail": "malformed"}],
        )
    return int(position[0]), int(position[1])


def canonical_unit_filter(unit: str | None) -> str | None:
    """A `unit` filter in the spelling factors are stored with (`kwh` → `kWh`); 422 if unknown."""
    if unit is None:
        return None
    try:
        return parse_declared_unit(unit).canonical
    except UnitError as exc:
        raise InvalidParameter(
            f"unit: {exc.detail}.",
            errors=[{"loc": ["query", "unit"], "code": exc.code, "detail": exc.detail}],
        ) from exc


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
    activity_id: Annotated[str | None, Query(pattern=ACTIVITY_ID_PATTERN)] = None,
    region: Annotated[str | None, Query(pattern=REGION_PATTERN)] = None,
    year: Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)] = None,
    unit: Annotated[str | None, Query(max_length=32)] = None,
    category: Annotated[str | None, Query(max_length=255)] = None,
    boundary: Boundary | None = None,
    publisher: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
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
    _refuse_nul(q=q, category=category)
    if dataset is not None and "/" in dataset:
        owner, dataset = dataset.split("/", 1)
        if publisher is not None and publisher != owner:
            raise InvalidParameter(
                f"dataset names publisher '{owner}' but publisher is '{publisher}'.",
                errors=[{"loc": ["query", "publisher"], "code": "conflict", "detail": owner}],
            )
        publisher = owner
    if version is not None and as_of is not None:
        raise InvalidParameter(
            "Give `version` or `as_of`, not both: a pinned version is the same at every date.",
            errors=[{"loc": ["query", "as_of"], "code": "exclusive", "detail": "version given"}],
        )
    filters = service.FactorFilters(
        q=q,
        activity_id=activity_id,
        region=region,
        year=year,
        unit=canonical_unit_filter(unit),
        category=category,
        boundary=boundary,
        publisher=publisher,
        dataset=dataset,
        version=version,
        as_of=parsed_as_of(as_of),
    )
    scope = {k: v for k, v in vars(filters).items() if v is not None}
    next_cursor: str | None
    if filters.q:
        # Text search ranks exact activity matches first: the cursor is (rank, id).
        items, position = service.search_factors_ranked(
            session, viewer=viewer, filters=filters, after=ranked_after(cursor, scope), limit=limit
        )
        next_cursor = encode_cursor(list(position), scope) if position else None
    else:
        after_id = after_id_from_cursor(cursor, scope)
        items, last_id = service.search_factors(
            session, viewer=viewer, filters=filters, after_id=after_id, limit=limit
        )
        next_cursor = id_cursor(last_id, scope)
    table = gwp_table_for(session, gwp)
    items = [apply_gwp(item, gwp, table) for item in items]
    # An empty answer may be a version not released yet: kept only as long as a latest one.
    return page_response(
        request,
        items,
        next_cursor,
        cache_control=PINNED_RELEASE if version and items else SHORT_LIVED,
    )


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
    factor_code: Annotated[str, Path(pattern=FACTOR_CODE_PATTERN)],
    version: VersionPin = None,
    as_of: AsOf = None,
    gwp: GwpParam = None,
) -> Response:
    if version is not None and as_of is not None:
        raise InvalidParameter(
            "Give `version` or `as_of`, not both: a pinned version is the same at every date.",
            errors=[{"loc": ["query", "as_of"], "code": "exclusive", "detail": "version given"}],
        )
    factor = service.get_factor(
        session,
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        factor_code=factor_code,
        version=version,
        as_of=parsed_as_of(as_of),
    )
    factor = apply_gwp(factor, gwp, gwp_table_for(session, gwp))
    return cached_json(request, factor, cache_control=PINNED_RELEASE if version else SHORT_LIVED)


FactorCode = Annotated[str, Path(pattern=FACTOR_CODE_PATTERN)]


@router.get(
    "/{publisher}/{dataset}/{factor_code}/history",
    summary="The factor's values in every released version, newest first",
    dependencies=[Depends(only_query_params(()))],
)
def get_factor_history(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    factor_code: FactorCode,
) -> Response:
    items = factor_history(
        session, viewer=viewer, publisher=publisher, dataset=dataset, factor_code=factor_code
    )
    return cached_json(request, {"items": items}, cache_control=SHORT_LIVED)


ProvenanceFormat = Annotated[
    Literal["json", "prov"],
    Query(
        alias="format",
        description="`json`: the chain in this service's shape; `prov`: W3C PROV-JSON "
        "(entities, activities, agents and their relations, with times)",
    ),
]


@router.get(
    "/{publisher}/{dataset}/{factor_code}/provenance",
    summary="Where a factor comes from: source, version, upload, review, audit and history",
    dependencies=[Depends(only_query_params(("version", "format")))],
    responses={
        200: {
            "description": "The provenance chain; with `format=prov`, a W3C PROV-JSON document",
            "content": {"application/json": {}},
        }
    },
)
def get_factor_provenance(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    factor_code: FactorCode,
    version: VersionPin = None,
    output: ProvenanceFormat = "json",
) -> Response:
    payload = factor_provenance(
        session,
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        factor_code=factor_code,
        version=version,
    )
    if output == "prov":
        base = request.app.state.settings.public_url
        payload = prov_document(payload, namespace=f"{base}/v1/")
    # A withdrawal changes a release's provenance, so even a pinned one is not immutable.
    return cached_json(request, payload, cache_control=SHORT_LIVED)
