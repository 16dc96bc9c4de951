"""Queries for accounting tools: batch resolution and estimates (POST, JSON in and out)."""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Response

from app.auth.viewer import ViewerDep
from app.core.db import SessionDep
from app.core.params import only_query_params
from app.factors.estimate import estimate_items, estimate_one
from app.factors.gwp import GwpTable, gwp_table_for, shipped_gwp_table
from app.factors.resolve import (
    RANKING,
    LineError,
    LineProblem,
    resolve_items,
    resolved_item_payload,
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
from app.factors.units import clean_float, not_finite_detail

router = APIRouter(tags=["factors"])

_GWP_ONLY = [Depends(only_query_params(("gwp",)))]


def gwp_info(gwp: str | None, table: GwpTable | None = None) -> dict[str, Any] | None:
    """The GWP100 set asked for, with the values and citations the answer used (`table`: the
    one the answer was computed with; without it, the table as shipped)."""
    if gwp is None:
        return None
    table = table or shipped_gwp_table()
    return {
        "requested": gwp,
        "source": table.source(gwp),
        "values": table.values(gwp),
        "entries": [table.entry(gwp, gas).as_dict() for gas in ("CO2", "CH4", "N2O")],
    }


def json_response(payload: Any, status_code: int = 200) -> Response:
    """JSON straight from dicts with orjson: a 1000-line answer is ~1.5 MB, which the standard
    library encodes in ~60 ms and jsonable_encoder in far more; orjson takes a few ms."""
    body = orjson.dumps(payload)
    return Response(body, status_code=status_code, media_type="application/json")


@router.post(
    "/v1/factors:resolve",
    response_model=ResolveResponse,
    summary="Resolve up to 1000 lines to their best factor, explaining each match",
    dependencies=_GWP_ONLY,
)
def resolve(
    body: ResolveRequest, session: SessionDep, viewer: ViewerDep, gwp: GwpParam = None
) -> Response:
    table = gwp_table_for(session, gwp)
    answers = resolve_items(session, viewer=viewer, items=body.items, gwp=gwp, gwp_table=table)
    failed = sum(isinstance(answer, LineError) for answer in answers)
    return json_response(
        {
            "items": [resolved_item_payload(answer) for answer in answers],
            "resolved": len(answers) - failed,
            "failed": failed,
            "ranking": RANKING,
            "gwp": gwp_info(gwp, table),
        }
    )


@router.post(
    "/v1/estimate",
    response_model=EstimateResult,
    summary="Turn an activity amount into kg CO2e, showing the factor and the conversion",
    dependencies=_GWP_ONLY,
    responses={404: {"description": "No factor matches"}, 422: {"description": "Cannot answer"}},
)
def estimate(
    body: EstimateItem, session: SessionDep, viewer: ViewerDep, gwp: GwpParam = None
) -> Response:
    table = gwp_table_for(session, gwp)
    result = estimate_one(session, viewer=viewer, item=body, gwp=gwp, gwp_table=table)
    result["gwp"] = gwp_info(gwp, table)
    return json_response(result)


@router.post(
    "/v1/estimate:batch",
    response_model=EstimateBatchResponse,
    summary="Estimate up to 1000 lines; a bad line gets its own error",
    dependencies=_GWP_ONLY,
)
def estimate_batch(
    body: EstimateBatchRequest, session: SessionDep, viewer: ViewerDep, gwp: GwpParam = None
) -> Response:
    table = gwp_table_for(session, gwp)
    answers = estimate_items(session, viewer=viewer, items=body.items, gwp=gwp, gwp_table=table)
    items: list[dict[str, Any]] = []
    total = 0.0
    for answer in answers:
        if isinstance(answer, LineError):
            items.append({"error": answer.as_dict()})
        else:
            total += answer["co2e_kg"]
            items.append({"result": answer})
    failed = sum(isinstance(answer, LineError) for answer in answers)
    if not math.isfinite(total):
        # Every line is finite but their sum is not: the batch has no total to give.
        raise LineProblem(
            LineError(
                "not_finite",
                not_finite_detail("total_co2e_kg", "the sum of the lines' co2e_kg"),
                ("items",),
            ),
            422,
        )
    return json_response(
        {
            "items": items,
            "total_co2e_kg": clean_float(total),
            "resolved": len(answers) - failed,
            "failed": failed,
            "gwp": gwp_info(gwp, table),
        }
    )
