"""Queries for accounting tools: batch resolution and estimates (POST, JSON in and out)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from app.auth.viewer import ViewerDep
from app.core.db import SessionDep
from app.core.errors import headers_language
from app.core.params import only_query_params
from app.core.problem_text import localize
from app.datasets import usage
from app.factors.answers import (
    estimate_batch_payload,
    estimate_payload,
    resolve_answers,
    resolved_factors,
)
from app.factors.router import GwpParam
from app.factors.schemas import (
    EstimateBatchRequest,
    EstimateBatchResponse,
    EstimateItem,
    EstimateResult,
    ResolveRequest,
    ResolveResponse,
)

router = APIRouter(tags=["factors"])

_GWP_ONLY = [Depends(only_query_params(("gwp",)))]


def json_response(payload: Any, request: Request, status_code: int = 200) -> Response:
    """JSON straight from dicts with orjson: a 1000-line answer is ~1.5 MB, which the standard
    library encodes in ~60 ms and jsonable_encoder in far more; orjson takes a few ms.

    A line's `error.detail` follows `Accept-Language` as problem details do (English unless
    Chinese is asked for)."""
    lang = headers_language(request.headers)
    body = orjson.dumps(localize(payload, lang) if lang != "en" else payload)
    headers = {"Content-Language": "zh-CN" if lang == "zh" else "en", "Vary": "Accept-Language"}
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


@router.post(
    "/v1/factors:resolve",
    response_model=ResolveResponse,
    summary="Resolve up to 1000 lines to their best factor, explaining each match",
    dependencies=_GWP_ONLY,
)
def resolve(
    body: ResolveRequest,
    session: SessionDep,
    viewer: ViewerDep,
    request: Request,
    gwp: GwpParam = None,
) -> Response:
    """For each line (activity, region, year, and optionally unit, dataset, version, `as_of`),
    the best factor you may read and why it was chosen: region fallback up the location
    hierarchy to `GLO`, the nearest earlier reference year, unit conversion when compatible.
    A line that cannot be answered gets its own `error`; the batch is 422 only when the body
    itself is invalid (not 1 to 1000 lines, unknown fields)."""
    request.app.state.metrics.batch_lines.labels(kind="resolve").observe(len(body.items))
    payload, answers = resolve_answers(
        session, viewer=viewer, items=body.items, gwp=gwp, index=request.app.state.resolve_index
    )
    usage.meter_factors(session, viewer, resolved_factors(answers))
    return json_response(payload, request)


@router.post(
    "/v1/estimate",
    response_model=EstimateResult,
    summary="Turn an activity amount into kg CO2e, showing the factor and the conversion",
    dependencies=_GWP_ONLY,
    responses={404: {"description": "No factor matches"}, 422: {"description": "Cannot answer"}},
)
def estimate(
    body: EstimateItem,
    session: SessionDep,
    viewer: ViewerDep,
    request: Request,
    gwp: GwpParam = None,
) -> Response:
    """kg CO2e for an amount of an activity (resolved like a resolve line) or of a factor named
    by id, with the factor used, the unit conversion (through a cited conversion property when
    the dimensions differ) and the gas breakdown. 404 problem details when no factor matches,
    422 when the line cannot be answered (e.g. the units cannot be converted)."""
    payload = estimate_payload(
        session, viewer=viewer, item=body, gwp=gwp, index=request.app.state.resolve_index
    )
    return json_response(payload, request)


@router.post(
    "/v1/estimate:batch",
    response_model=EstimateBatchResponse,
    summary="Estimate up to 1000 lines; a bad line gets its own error",
    dependencies=_GWP_ONLY,
)
def estimate_batch(
    body: EstimateBatchRequest,
    session: SessionDep,
    viewer: ViewerDep,
    request: Request,
    gwp: GwpParam = None,
) -> Response:
    """Estimates for up to 1000 lines, each as `POST /v1/estimate` would answer it, and their
    total in kg CO2e; a line that cannot be answered gets its own `error` in its place."""
    request.app.state.metrics.batch_lines.labels(kind="estimate").observe(len(body.items))
    payload = estimate_batch_payload(
        session, viewer=viewer, items=body.items, gwp=gwp, index=request.app.state.resolve_index
    )
    return json_response(payload, request)
