"""The answers of `POST /v1/factors:resolve`, `/v1/estimate` and `/v1/estimate:batch` as
payloads: the API sends them, and the web explorer shows them."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy.orm import Session

from app.core.principal import Viewer
from app.factors.estimate import estimate_items, estimate_one
from app.factors.resolve import (
    RANKING,
    LineError,
    LineProblem,
    Resolved,
    resolve_items,
    resolved_item_payload,
)
from app.factors.resolve_index import ResolveIndex
from app.factors.schemas import EstimateItem, ResolveItem
from app.reference.gwp import (
    CH4_ORIGIN_GAS,
    GwpTable,
    GwpUnavailable,
    gwp_table_for,
    shipped_gwp_table,
)
from app.reference.units import clean_float, not_finite_detail


def gwp_info(gwp: str | None, table: GwpTable | None = None) -> dict[str, Any] | None:
    """The GWP100 set asked for, with the values and citations the answer used (`table`: the
    one the answer was computed with; without it, the table as shipped)."""
    if gwp is None:
        return None
    table = table or shipped_gwp_table()
    try:
        source, values = table.source(gwp), table.values(gwp)
    except GwpUnavailable as exc:
        # Only a database whose reference data was never loaded (`efdb db upgrade` loads it):
        # each factor's `gwp_conversion` then says `not_possible`, and so does this.
        source, values = f"{exc}, so every co2e is kept as published", {}
    return {
        "requested": gwp,
        "source": source,
        "values": values,
        "entries": [
            entry.as_dict()
            for entry in table.entries
            if entry.gwp_set == gwp and entry.gas in {"CO2", "CH4", "N2O", *CH4_ORIGIN_GAS.values()}
        ],
    }


def resolve_payload(
    session: Session,
    *,
    viewer: Viewer,
    items: Sequence[ResolveItem],
    gwp: str | None,
    index: ResolveIndex | None = None,
) -> dict[str, Any]:
    """The answer of `POST /v1/factors:resolve` (`index`: the worker's resolve index; a
    resolved line's `factor` may then be its record's JSON, an `orjson.Fragment`: see
    `resolved_factors` for the records as dicts)."""
    return resolve_answers(session, viewer=viewer, items=items, gwp=gwp, index=index)[0]


def resolve_answers(
    session: Session,
    *,
    viewer: Viewer,
    items: Sequence[ResolveItem],
    gwp: str | None,
    index: ResolveIndex | None = None,
) -> tuple[dict[str, Any], list[Resolved | LineError]]:
    """`resolve_payload` and the answers it was made from."""
    table = gwp_table_for(session, gwp)
    answers = resolve_items(
        session, viewer=viewer, items=items, gwp=gwp, gwp_table=table, index=index
    )
    failed = sum(isinstance(answer, LineError) for answer in answers)
    payload = {
        "items": [resolved_item_payload(answer) for answer in answers],
        "resolved": len(answers) - failed,
        "failed": failed,
        "ranking": RANKING,
        "gwp": gwp_info(gwp, table),
    }
    return payload, answers


def resolved_factors(answers: Sequence[Resolved | LineError]) -> Iterator[dict[str, Any]]:
    """The records of the resolved lines, as dicts (read from their JSON only when asked)."""
    return (answer.factor for answer in answers if isinstance(answer, Resolved))


def estimate_payload(
    session: Session,
    *,
    viewer: Viewer,
    item: EstimateItem,
    gwp: str | None,
    index: ResolveIndex | None = None,
) -> dict[str, Any]:
    table = gwp_table_for(session, gwp)
    result = estimate_one(session, viewer=viewer, item=item, gwp=gwp, gwp_table=table, index=index)
    result["gwp"] = gwp_info(gwp, table)
    return result


def estimate_batch_payload(
    session: Session,
    *,
    viewer: Viewer,
    items: Sequence[EstimateItem],
    gwp: str | None,
    index: ResolveIndex | None = None,
) -> dict[str, Any]:
    table = gwp_table_for(session, gwp)
    answers = estimate_items(
        session, viewer=viewer, items=items, gwp=gwp, gwp_table=table, index=index
    )
    lines: list[dict[str, Any]] = []
    total = 0.0
    for answer in answers:
        if isinstance(answer, LineError):
            lines.append({"error": answer.as_dict()})
        else:
            total += answer["co2e_kg"]
            lines.append({"result": answer})
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
    # The total is the batch's only when every line answered: a sum that silently leaves out
    # failed lines reads as the whole. The sum of the answered lines is given apart.
    return {
        "items": lines,
        "total_co2e_kg": None if failed else clean_float(total),
        "total_co2e_kg_of_resolved": clean_float(total),
        "resolved": len(answers) - failed,
        "failed": failed,
        "gwp": gwp_info(gwp, table),
    }
