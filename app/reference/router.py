"""Reference data over HTTP: which locations, GWP100 values, units, conversion properties and
activity labels the service reasons with, each with where it comes from."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.core.db import SessionDep
from app.core.errors import InvalidParameter
from app.core.http_cache import SHORT_LIVED, cached_json
from app.core.pagination import decode_cursor, encode_cursor, page_response
from app.core.params import DEFAULT_PAGE, Cursor, Limit, only_query_params
from app.core.problem_text import Message
from app.core.schemas import Page
from app.reference import service
from app.reference.schemas import (
    ACTIVITY_ID_PATTERN,
    ActivityDetail,
    ActivityRead,
    ConversionPropertyList,
    GwpList,
    LocationDetail,
    LocationKind,
    LocationRead,
    ReferenceVersionRead,
    UnitList,
)

router = APIRouter(prefix="/v1", tags=["reference data"])

LOCATION_CODE = r"^[A-Za-z0-9-]{2,32}$"
LocationCode = Annotated[
    str, Path(pattern=LOCATION_CODE, description="GLO, ISO 3166-1/3166-2 code, or grouping")
]


def _after_code(cursor: str | None, scope: dict[str, object]) -> str | None:
    if cursor is None:
        return None
    (position,) = decode_cursor(cursor, scope, 1)
    if not isinstance(position, str) or len(position) > 32:
        raise InvalidParameter(
            Message("cursor.invalid"),
            errors=[{"loc": ["query", "cursor"], "code": "invalid_cursor", "detail": "malformed"}],
        )
    return position


@router.get(
    "/locations",
    response_model=Page[LocationRead],
    summary="List locations: GLO, countries, subdivisions and groupings (e.g. regional grids)",
    dependencies=[Depends(only_query_params(("kind", "parent", "q", "limit", "cursor")))],
)
def list_locations(
    request: Request,
    session: SessionDep,
    kind: Annotated[
        LocationKind | None,
        Query(description="Only this kind: global, country, subdivision or grouping"),
    ] = None,
    parent: Annotated[
        str | None,
        Query(
            pattern=LOCATION_CODE,
            description="Only the locations directly under this one, e.g. `CN`",
        ),
    ] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Text in the code or names")
    ] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    """Locations in code order, a page of at most `limit`: the region codes factors and
    resolution use, with names and where each comes from. No token needed."""
    scope: dict[str, object] = {"kind": kind, "parent": parent, "q": q}
    items, last = service.list_locations(
        session,
        kind=kind,
        parent=parent,
        q=q.replace("\x00", "") if q else None,
        after=_after_code(cursor, scope),
        limit=limit,
    )
    next_cursor = encode_cursor([last], scope) if last is not None else None
    return page_response(request, items, next_cursor, cache_control=SHORT_LIVED)


@router.get(
    "/locations/{code}",
    response_model=LocationDetail,
    summary="One location with its ancestors, its groupings (or members) and fallback chain",
    dependencies=[Depends(only_query_params(()))],
)
def get_location(request: Request, session: SessionDep, code: LocationCode) -> Response:
    """One location: its ancestors up to GLO, the groupings it belongs to (or a grouping's
    members), its number of children and the region fallback chain `POST /v1/factors:resolve`
    walks from it. No token needed; 404 for an unknown code."""
    payload = service.get_location(session, code=code)
    return cached_json(request, payload, cache_control=SHORT_LIVED)


@router.get(
    "/gwp",
    response_model=GwpList,
    summary="GWP100 values per IPCC assessment report and gas, each with its source",
    dependencies=[Depends(only_query_params(("gwp_set", "gas")))],
)
def list_gwp(
    request: Request,
    session: SessionDep,
    gwp_set: Annotated[
        str | None,
        Query(pattern=r"^AR[456]$", description="Only this set: `AR4`, `AR5` or `AR6`"),
    ] = None,
    gas: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9()-]{1,32}$",
            description="Only this gas, any letter case, e.g. `CH4`",
        ),
    ] = None,
) -> Response:
    """The GWP100 values the service computes and checks co2e with, per IPCC assessment
    report and gas, each with its citation, and the sets loaded. No token needed."""
    payload = service.list_gwp(session, gwp_set=gwp_set, gas=gas)
    return cached_json(request, payload, cache_control=SHORT_LIVED)


@router.get(
    "/units",
    response_model=UnitList,
    summary="Every unit a factor may be per, with its dimension and canonical spelling",
    dependencies=[Depends(only_query_params(()))],
)
def list_units(request: Request) -> Response:
    """Every unit a factor may be declared per, with its canonical spelling, its dimension,
    how the unit library reads it, and its size in the first unit of its dimension."""
    return cached_json(request, service.list_units(), cache_control=SHORT_LIVED)


@router.get(
    "/conversion-properties",
    response_model=ConversionPropertyList,
    summary="Cited properties that convert between dimensions (net calorific values, …)",
    dependencies=[Depends(only_query_params(("activity_id", "material")))],
)
def list_conversion_properties(
    request: Request,
    session: SessionDep,
    activity_id: Annotated[
        str | None,
        Query(
            pattern=ACTIVITY_ID_PATTERN,
            max_length=128,
            description="Only the properties that apply to this activity",
        ),
    ] = None,
    material: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
            description="Only the properties of this material, e.g. `natural-gas`",
        ),
    ] = None,
) -> Response:
    """The cited conversion properties (e.g. net calorific values) that let an estimate cross
    dimensions, e.g. from tonnes of coal to the TJ a factor is per. No token needed."""
    payload = service.list_conversion_properties(
        session, activity_id=activity_id, material=material
    )
    return cached_json(request, payload, cache_control=SHORT_LIVED)


ActivityId = Annotated[
    str,
    Path(pattern=ACTIVITY_ID_PATTERN, max_length=128, description="An activity_id"),
]


def _after_activity(cursor: str | None, scope: dict[str, object]) -> str | None:
    if cursor is None:
        return None
    (position,) = decode_cursor(cursor, scope, 1)
    if not isinstance(position, str) or len(position) > 128:
        raise InvalidParameter(
            Message("cursor.invalid"),
            errors=[{"loc": ["query", "cursor"], "code": "invalid_cursor", "detail": "malformed"}],
        )
    return position


@router.get(
    "/activities",
    response_model=Page[ActivityRead],
    summary="List activities: the activity_id vocabulary with names, synonyms and sources",
    dependencies=[Depends(only_query_params(("q", "match", "limit", "cursor")))],
)
def list_activities(
    request: Request,
    session: SessionDep,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Every term (whitespace-separated) in the id, a name or a keyword",
        ),
    ] = None,
    match: Annotated[
        Literal["term", "substring"],
        Query(
            description="How each term of `q` matches, as in `GET /v1/factors`: `term` "
            "(default; 烟煤 does not find 无烟煤) or `substring`",
        ),
    ] = "term",
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    """The activity vocabulary in id order, a page of at most `limit`: each activity_id with
    its names, descriptions, synonyms and where the wording comes from. No token needed."""
    q = q.replace("\x00", "") if q else None
    scope: dict[str, object] = {"q": q, **({"match": match} if match != "term" else {})}
    items, last = service.list_activities(
        session, q=q, after=_after_activity(cursor, scope), limit=limit, match=match
    )
    next_cursor = encode_cursor([last], scope) if last is not None else None
    return page_response(request, items, next_cursor, cache_control=SHORT_LIVED)


@router.get(
    "/activities/{activity_id}",
    response_model=ActivityDetail,
    summary="One activity's names, synonyms and where their wording comes from",
    dependencies=[Depends(only_query_params(()))],
)
def get_activity(request: Request, session: SessionDep, activity_id: ActivityId) -> Response:
    """One activity of the vocabulary with its names, synonyms and their source. No token
    needed; 404 for an unknown activity_id."""
    payload = service.get_activity(session, activity_id=activity_id)
    return cached_json(request, payload, cache_control=SHORT_LIVED)


@router.get(
    "/reference",
    response_model=Page[ReferenceVersionRead],
    summary="The loaded version (sha256 of the source files) of each reference table",
    dependencies=[Depends(only_query_params(()))],
)
def list_reference_versions(request: Request, session: SessionDep) -> Response:
    """Which version of each reference table (locations, GWP100, conversion properties,
    activities) is loaded: the sha256 of its source files, its row count and when it was
    loaded. No token needed."""
    items = service.list_reference_versions(session)
    return cached_json(request, {"items": items, "next": None}, cache_control=SHORT_LIVED)
