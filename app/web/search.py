"""The search page (`/`): text over Chinese and English names, facets with counts, keyset pages.

The page runs the API's own search (`service.search_factors` / `search_factors_ranked`, the
same cursors) and `facets.facet_counts` over the same filters. Filter state lives in the URL:
a GET form for the text, facet links that add or remove one filter, `next` links that carry
the API's opaque cursor. `/.json` answers the page's data in the API's list schema plus the
facets; `/.csv` the same page of results as CSV.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from app.core.db import SessionDep
from app.core.errors import InvalidParameter, pydantic_message
from app.core.formula import neutralise
from app.core.http_cache import SHORT_LIVED, cached_json, etag_matches
from app.core.pagination import (
    after_id_from_cursor,
    encode_cursor,
    id_cursor,
    next_link,
    set_link_header,
)
from app.core.params import DATASET_REF_PATTERN, SLUG_PATTERN, only_query_params
from app.core.principal import ANONYMOUS
from app.core.problem_text import Message, joined
from app.core.text import content_disposition
from app.factors import service
from app.factors.facets import FACETS, Facets, activity_totals, facet_counts
from app.factors.schemas import MAX_YEAR, MIN_YEAR, REGION_PATTERN, Boundary
from app.reference.schemas import ACTIVITY_ID_PATTERN
from app.web.i18n import Lang, Translator, negotiate
from app.web.templating import PageMeta, Twin, query_string, render_page

router = APIRouter()

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Facet name → the query parameter that filters on it (the API's names where it has one).
FILTER_PARAMS: tuple[str, ...] = (
    "q",
    "activity_id",
    "region",
    "year",
    "unit",
    "category",
    "boundary",
    "publisher",
    "dataset",
    "license",
    # Not a facet: how q's terms match (the API's `match`; unset: as terms).
    "match",
)
ACCEPTED = (*FILTER_PARAMS, "cursor", "limit", "lang")
# The columns of the CSV twin: the factor as the API gives it, most useful first.
CSV_COLUMNS = (
    "id",
    "publisher",
    "dataset",
    "version",
    "version_status",
    "factor_code",
    "name_zh",
    "name_en",
    "activity_id",
    "category",
    "region",
    "reference_year",
    "unit",
    "co2e",
    "co2",
    "ch4",
    "n2o",
    "gwp_set",
    "boundary",
    "source_title",
    "source_locator",
    "license_id",
    "attribution",
)


class SearchParams(BaseModel):
    """The page's filters, validated like the API's (an empty form field means "not set")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    q: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    activity_id: Annotated[str, Field(pattern=ACTIVITY_ID_PATTERN)] | None = None
    region: Annotated[str, Field(pattern=REGION_PATTERN)] | None = None
    year: Annotated[int, Field(ge=MIN_YEAR, le=MAX_YEAR)] | None = None
    unit: Annotated[str, Field(max_length=32)] | None = None
    category: Annotated[str, Field(max_length=255)] | None = None
    boundary: Boundary | None = None
    publisher: Annotated[str, Field(pattern=SLUG_PATTERN)] | None = None
    dataset: Annotated[str, Field(pattern=DATASET_REF_PATTERN)] | None = None
    license: Annotated[str, Field(max_length=128)] | None = None
    match: Literal["substring"] | None = None
    cursor: Annotated[str, Field(max_length=512)] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = PAGE_SIZE

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("q", "category", "license")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("the text contains a NUL character")
        return value

    def active(self) -> dict[str, str]:
        """The filters that are set, as URL parameters (the state a link must keep)."""
        return {
            name: str(getattr(self, name))
            for name in FILTER_PARAMS
            if getattr(self, name) is not None
        }


def parse_params(request: Request) -> SearchParams:
    raw = {k: v for k, v in request.query_params.items() if k != "lang"}
    try:
        params = SearchParams.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {
                "loc": ["query", *(str(part) for part in error["loc"])],
                "code": error["type"],
                "detail": pydantic_message(error),
            }
            for error in exc.errors()
        ]
        where = joined(
            [
                Message("request.invalid_at", loc=e["loc"][-1], detail=e["detail"])
                for e in errors[:3]
            ]
        )
        raise InvalidParameter(Message("web.search_invalid", where=where), errors=errors) from exc
    return params


def to_filters(params: SearchParams) -> service.FactorFilters:
    """The service's filters for the page's parameters, read exactly as the API reads them."""
    publisher, dataset = params.publisher, params.dataset
    if dataset is not None and "/" in dataset:
        owner, dataset = dataset.split("/", 1)
        if publisher is not None and publisher != owner:
            raise InvalidParameter(
                Message("query.publisher_conflict", owner=owner, publisher=publisher),
                errors=[{"loc": ["query", "publisher"], "code": "conflict", "detail": owner}],
            )
        publisher = owner
    return service.FactorFilters(
        q=params.q,
        match=params.match if params.q else None,
        activity_id=params.activity_id,
        region=params.region,
        year=params.year,
        unit=service.canonical_unit_filter(params.unit),
        category=params.category,
        boundary=params.boundary,
        publisher=publisher,
        dataset=dataset,
        license_id=params.license,
    )


@dataclass
class SearchResult:
    items: list[dict[str, Any]]
    next_cursor: str | None
    facets: Facets
    # Activities the text found, with how many factors each has when the text is left out.
    related: dict[str, int]


def run_search(session: Session, params: SearchParams) -> SearchResult:
    """One page of results and the facets, for the anonymous reader, as the API answers them."""
    filters = to_filters(params)
    scope = {f.name: getattr(filters, f.name) for f in fields(filters)}
    scope = {k: v for k, v in scope.items() if v is not None}
    next_cursor: str | None
    if filters.q:
        items, position = service.search_factors_ranked(
            session,
            viewer=ANONYMOUS,
            filters=filters,
            after=service.ranked_after(params.cursor, scope),
            limit=params.limit,
        )
        next_cursor = encode_cursor(list(position), scope) if position else None
    else:
        items, last_id = service.search_factors(
            session,
            viewer=ANONYMOUS,
            filters=filters,
            after_id=after_id_from_cursor(params.cursor, scope),
            limit=params.limit,
        )
        next_cursor = id_cursor(last_id, scope)
    facets = facet_counts(session, viewer=ANONYMOUS, filters=filters)
    related: dict[str, int] = {}
    if filters.q and filters.activity_id is None:
        found = {value.value: value.count for value in facets.values["activity_id"]}
        totals = activity_totals(
            session, viewer=ANONYMOUS, filters=filters, activity_ids=list(found)
        )
        related = {name: total for name, total in totals.items() if total > found[name]}
    return SearchResult(items=items, next_cursor=next_cursor, facets=facets, related=related)


def api_path(params: SearchParams) -> str:
    """The API search that returns exactly this page: same filters, page size and cursor
    (cursors are tied to the filters, not to the path). The license filter only the page has,
    so such a search points at the page's own `.json` twin."""
    active = params.active()
    path = "/.json" if "license" in active else "/v1/factors"
    return path + query_string(**active, limit=params.limit, cursor=params.cursor)


def _href(lang: Lang, **params: Any) -> str:
    return "/" + query_string(**params, lang=lang)


def facet_links(params: SearchParams, lang: Lang) -> dict[str, dict[str, str]]:
    """For each facet: the link that sets a value (`{value}` placeholder) and the one that
    removes the facet's filter. Paging restarts whenever a filter changes."""
    active = params.active()
    limit = params.limit if params.limit != PAGE_SIZE else None
    links: dict[str, dict[str, str]] = {}
    for name in FILTER_PARAMS:
        others = {k: v for k, v in active.items() if k != name}
        if name == "publisher" and "dataset" in others and "/" in others["dataset"]:
            # A dataset named as publisher/dataset belongs to one publisher: drop it with it.
            others.pop("dataset")
        links[name] = {"remove": _href(lang, **others, limit=limit)}
    return links


def set_link(params: SearchParams, lang: Lang, name: str, value: str) -> str:
    active = {k: v for k, v in params.active().items() if k != name}
    limit = params.limit if params.limit != PAGE_SIZE else None
    return _href(lang, **active, **{name: value}, limit=limit)


def related_link(params: SearchParams, lang: Lang, activity_id: str) -> str:
    """Every factor of an activity the text found: the text gives way to the activity."""
    active = {k: v for k, v in params.active().items() if k not in ("q", "activity_id")}
    limit = params.limit if params.limit != PAGE_SIZE else None
    return _href(lang, **active, activity_id=activity_id, limit=limit)


def _search_meta(request: Request, params: SearchParams, t: Translator) -> PageMeta:
    query = request.url.query
    suffix = f"?{query}" if query else ""
    return PageMeta(
        title=t("search_title_with_q", q=params.q) if params.q else t("search_title"),
        twins=[
            Twin("application/json", f"/.json{suffix}", t("search_twin_json")),
            Twin("text/csv", f"/.csv{suffix}", t("search_twin_csv")),
        ],
        api_path=api_path(params),
    )


@router.get("/", dependencies=[Depends(only_query_params(ACCEPTED))])
def search_page(request: Request, session: SessionDep) -> Response:
    params = parse_params(request)
    result = run_search(session, params)
    lang = negotiate(request)
    t = Translator(lang)
    next_url = next_link(request, result.next_cursor)
    # Activities by their names in the page's language (labels: reference or publisher's).
    labels = {
        value.value: t.pick(value.label_zh, value.label_en)
        for value in result.facets.values["activity_id"]
        if value.label_zh or value.label_en
    }
    context = {
        "params": params,
        "active": params.active(),
        "items": result.items,
        "facets": result.facets.values,
        "total": result.facets.total,
        "next_url": next_url,
        "first_url": _href(lang, **params.active()) if params.cursor else None,
        "links": facet_links(params, lang),
        "set_link": lambda name, value: set_link(params, lang, name, value),
        "facet_names": FACETS,
        "substring_link": set_link(params, lang, "match", "substring")
        if params.q and params.match is None
        else None,
        "related": [
            (labels.get(name) or name, total, related_link(params, lang, name))
            for name, total in sorted(result.related.items())
        ],
    }
    response = render_page(
        request, "search.html", context, meta=_search_meta(request, params, t), lang=lang
    )
    set_link_header(response, next_url)
    return response


@router.get("/.json", dependencies=[Depends(only_query_params(ACCEPTED))])
def search_json(request: Request, session: SessionDep) -> Response:
    """The page's data: the API's `{"items", "next"}` for the same filters, plus the facets."""
    params = parse_params(request)
    result = run_search(session, params)
    next_url = next_link(request, result.next_cursor)
    payload = {"items": result.items, "next": next_url, **result.facets.as_dict()}
    response = cached_json(request, payload, cache_control=SHORT_LIVED)
    set_link_header(response, next_url)
    return response


def csv_cell(value: Any) -> str:
    """A CSV cell: empty for null, text a spreadsheet would run as a formula neutralised."""
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def csv_response(
    request: Request, columns: tuple[str, ...], rows: list[dict[str, Any]], *, filename: str
) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in columns])
    body = buffer.getvalue().encode("utf-8")
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": SHORT_LIVED,
        "Content-Disposition": content_disposition("inline", filename),
    }
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/.csv", dependencies=[Depends(only_query_params(ACCEPTED))])
def search_csv(request: Request, session: SessionDep) -> Response:
    """The same page of results as CSV; the next page is in the `Link` header."""
    params = parse_params(request)
    result = run_search(session, params)
    response = csv_response(request, CSV_COLUMNS, result.items, filename="efdb-search.csv")
    set_link_header(response, next_link(request, result.next_cursor))
    return response
