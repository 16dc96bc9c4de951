"""Estimates: an activity amount in some unit → kg CO2e, with the factor and the arithmetic shown.

A line names its factor either by activity (`activity_id`, `region`, `year`: resolved exactly
as `POST /v1/factors:resolve` does, with the amount's unit as the requested unit) or by id
(`publisher/dataset/factor_code`, latest release, or `@version` pinned). The amount is
converted into the factor's unit with pint: within a dimension directly (kWh/MWh/GJ/TJ,
kg/t, L/m3, t*km...), across dimensions only through a cited conversion property of the
activity (reference data: a net calorific value turns t of coal into TJ), which the answer
shows in `conversion.properties`. It is then multiplied by the factor, and the gases and the
uncertainty interval are scaled the same way. A batch costs a constant number of queries.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import case, tuple_
from sqlalchemy.orm import Session

from app.core.errors import ProblemError
from app.core.principal import Viewer
from app.core.problem_text import Message
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.datasets.visibility import parse_semver, visible_version_ids
from app.factors.models import Factor
from app.factors.resolve import (
    Line,
    LineError,
    LineProblem,
    Resolved,
    check_activity,
    check_line_values,
    resolve_lines,
    suggest_regions,
    unit_error,
)
from app.factors.resolve_index import ResolveIndex
from app.factors.schemas import FACTOR_CODE_PATTERN, EstimateItem
from app.factors.service import factor_payload, factor_select, restrict_to_viewer
from app.reference.conversions import PropertyIndex, convert_for_activity, load_properties
from app.reference.gwp import GwpTable, apply_gwp, gwp_table_for
from app.reference.units import (
    AmountUnit,
    UnitError,
    clean_float,
    conversion_multiplier,
    not_finite_detail,
    parse_amount_unit,
)

_SLUG = r"[a-z0-9][a-z0-9-]{0,63}"
_FACTOR_ID = re.compile(
    rf"^({_SLUG})/({_SLUG})/({FACTOR_CODE_PATTERN.strip('^$')})(?:@([0-9.]{{5,32}}))?$"
)
GAS_FIELDS = ("co2", "ch4", "n2o", "other_ghg_co2e", "biogenic_co2")
_ACTIVITY_ONLY = ("region", "year", "dataset", "publisher", "version", "as_of", "boundary")


@dataclass(frozen=True)
class FactorRef:
    """A line that names its factor by id."""

    index: int
    publisher: str
    dataset: str
    factor_code: str
    version: str | None
    amount: float
    unit: AmountUnit


@dataclass(frozen=True)
class ActivityLine:
    line: Line
    amount: float


def check_estimate(index: int, item: EstimateItem) -> ActivityLine | FactorRef | LineError:
    if not math.isfinite(item.amount) or item.amount <= 0:
        return LineError(
            "invalid_amount",
            Message("estimate.invalid_amount", amount=f"{item.amount:g}"),
            ("amount",),
        )
    if (item.activity_id is None) == (item.factor is None):
        return LineError(
            "activity_or_factor",
            Message("estimate.activity_or_factor"),
            ("activity_id",),
        )
    if item.factor is not None:
        return _check_factor_ref(index, item)
    assert item.activity_id is not None
    missing = [name for name in ("region", "year") if getattr(item, name) is None]
    if missing:
        return LineError(
            "missing_field",
            Message("estimate.missing_field", fields=" and ".join(missing)),
            (missing[0],),
        )
    assert item.region is not None
    assert item.year is not None
    problem = check_activity(item.activity_id)
    if problem is not None:
        return problem
    line = check_line_values(
        index,
        activity_id=item.activity_id,
        region=item.region,
        year=item.year,
        unit=item.unit,
        publisher=item.publisher,
        dataset=item.dataset,
        version=item.version,
        as_of=item.as_of,
        boundary=item.boundary,
    )
    if isinstance(line, LineError):
        return line
    return ActivityLine(line, item.amount)


def _check_factor_ref(index: int, item: EstimateItem) -> FactorRef | LineError:
    assert item.factor is not None
    given = [name for name in _ACTIVITY_ONLY if getattr(item, name) is not None]
    if given:
        return LineError(
            "exclusive",
            Message("estimate.exclusive", fields=", ".join(given)),
            (given[0],),
        )
    found = _FACTOR_ID.match(item.factor)
    if found is None:
        return LineError(
            "invalid_factor_id",
            Message("estimate.invalid_factor_id", factor=item.factor),
            ("factor",),
        )
    publisher, dataset, code, version = found.groups()
    if version is not None:
        try:
            parse_semver(version)
        except ProblemError as exc:
            return LineError("invalid_version", exc.detail, ("factor",))
    try:
        unit = parse_amount_unit(item.unit)
    except UnitError as exc:
        return unit_error(exc, item.unit)
    return FactorRef(index, publisher, dataset, code, version, item.amount, unit)


def _lookup_refs(
    session: Session, *, viewer: Viewer, refs: Sequence[FactorRef]
) -> dict[tuple[str, str, str, str | None], dict[str, Any]]:
    """Every factor named by id, in one query: all its releases, then the one each ref wants."""
    if not refs:
        return {}
    keys = sorted({(ref.publisher, ref.dataset, ref.factor_code) for ref in refs})
    current = case((Factor.version_id.in_(visible_version_ids()), 1), else_=0)
    query = (
        factor_select()
        .add_columns(current.label("is_current"))
        .where(
            tuple_(Publisher.slug, Dataset.slug, Factor.factor_code).in_(keys),
            DatasetVersion.status.in_(RELEASED_STATUSES),
        )
    )
    found: dict[tuple[str, str, str, str | None], dict[str, Any]] = {}
    for row in session.execute(restrict_to_viewer(query, viewer)):
        payload = factor_payload(row)
        is_current = payload.pop("is_current")
        key = (payload["publisher"], payload["dataset"], payload["factor_code"])
        found[(*key, payload["version"])] = payload
        if is_current:
            found[(*key, None)] = payload
    return found


def _result(
    factor: dict[str, Any],
    *,
    amount: float,
    unit: AmountUnit,
    match: dict[str, Any] | None,
    gwp: str | None,
    gwp_table: GwpTable | None,
    properties: PropertyIndex,
) -> dict[str, Any] | LineError:
    used: list[dict[str, Any]] = []
    try:
        multiplier = conversion_multiplier(unit.text, factor["unit"])
    except UnitError as exc:
        via = convert_for_activity(properties, factor["activity_id"], unit.text, factor["unit"])
        if via is None:
            return LineError(exc.code, exc.detail, ("unit",))
        multiplier, used = via.multiplier, via.described()
    factor = apply_gwp(dict(factor), gwp, gwp_table)
    in_factor_unit = clean_float(amount * multiplier)
    low, high = factor["uncertainty_low"], factor["uncertainty_high"]
    interval = None
    declared = factor.get("uncertainty_kind") is not None
    if low is not None and high is not None and declared:
        # Scaling by the (exact) amount keeps what the interval is: same kind, same level.
        interval = sorted([clean_float(low * in_factor_unit), clean_float(high * in_factor_unit)])
    co2e_kg = clean_float(factor["co2e"] * in_factor_unit)
    gases = {
        name: None if factor[name] is None else clean_float(factor[name] * in_factor_unit)
        for name in GAS_FIELDS
    }
    # An overflow is an error with its reason, never a null (JSON has no infinity).
    checked = [
        ("the amount in the factor's unit", in_factor_unit, f"{amount:g} × {multiplier:g}"),
        (
            "co2e_kg",
            co2e_kg,
            f"{amount:g} {unit.canonical} × {multiplier:g} × "
            f"{factor['co2e']:g} kg CO2e/{factor['unit']}",
        ),
        *(
            (f"gases_kg.{name}", value, f"{factor[name]:g} × {in_factor_unit:g}")
            for name, value in gases.items()
            if value is not None
        ),
        *(
            ("uncertainty_kg", bound, f"the factor's uncertainty bound × {in_factor_unit:g}")
            for bound in interval or ()
        ),
    ]
    for what, value, calculation in checked:
        if not math.isfinite(value):
            return LineError("not_finite", not_finite_detail(what, calculation), ("amount",))
    return {
        "co2e_kg": co2e_kg,
        "factor": factor,
        "match": match,
        "conversion": {
            "amount": amount,
            "unit": unit.canonical,
            "factor_unit": factor["unit"],
            "multiplier": multiplier,
            "amount_in_factor_unit": in_factor_unit,
            "property": used[0]["code"] if used else None,
            "properties": used,
        },
        "gases_kg": gases,
        "uncertainty_kg": interval,
        "uncertainty": _uncertainty(factor, interval),
    }


def _uncertainty(factor: Mapping[str, Any], interval: list[float] | None) -> dict[str, Any]:
    """What `uncertainty_kg` is, or why there is none: only a declared interval propagates."""
    kind = factor.get("uncertainty_kind")
    level = factor.get("uncertainty_confidence_level")
    note: Message
    if factor["uncertainty_low"] is None or factor["uncertainty_high"] is None:
        note = Message("estimate.note_no_interval")
    elif kind is None:
        note = Message(
            "estimate.note_undeclared",
            low=f"{factor['uncertainty_low']:g}",
            high=f"{factor['uncertainty_high']:g}",
        )
    elif level is not None:
        note = Message(
            "estimate.note_declared_level",
            kind=Message(f"estimate.kind.{kind}"),
            level=f"{level:.4g}",
        )
    else:
        note = Message("estimate.note_declared", kind=Message(f"estimate.kind.{kind}"))
    return {
        "interval_kg": interval,
        "kind": kind if interval is not None else None,
        "confidence_level": level if interval is not None else None,
        "note": note,
    }


def estimate_items(
    session: Session,
    *,
    viewer: Viewer,
    items: Sequence[EstimateItem],
    gwp: str | None,
    gwp_table: GwpTable | None = None,
    index: ResolveIndex | None = None,
) -> list[dict[str, Any] | LineError]:
    """Estimate every line in request order: a result or an error in each place."""
    checked = suggest_regions(
        session, [check_estimate(index, item) for index, item in enumerate(items)]
    )
    if gwp_table is None:
        gwp_table = gwp_table_for(session, gwp)
    properties = PropertyIndex(
        load_properties(session) if any(not isinstance(e, LineError) for e in checked) else ()
    )
    # An activity with a cited property (an NCV) may answer with a factor of the dimension
    # the property leads to (t of coal → a per-TJ factor).
    checked = [
        ActivityLine(
            replace(
                entry.line,
                convertible=properties.reachable_dimensions(
                    entry.line.activity_id, entry.line.unit.text
                ),
            ),
            entry.amount,
        )
        if isinstance(entry, ActivityLine) and entry.line.unit is not None
        else entry
        for entry in checked
    ]
    activity = [entry for entry in checked if isinstance(entry, ActivityLine)]
    refs = [entry for entry in checked if isinstance(entry, FactorRef)]
    resolved = resolve_lines(
        session, viewer=viewer, lines=[entry.line for entry in activity], gwp=None, index=index
    )
    named = _lookup_refs(session, viewer=viewer, refs=refs)
    answers: list[dict[str, Any] | LineError] = []
    for entry in checked:
        if isinstance(entry, LineError):
            answers.append(entry)
        elif isinstance(entry, ActivityLine):
            answer = resolved[entry.line.index]
            if isinstance(answer, LineError):
                answers.append(answer)
                continue
            assert isinstance(answer, Resolved)
            assert entry.line.unit is not None
            answers.append(
                _result(
                    answer.factor,
                    amount=entry.amount,
                    unit=entry.line.unit,
                    match=answer.match,
                    gwp=gwp,
                    gwp_table=gwp_table,
                    properties=properties,
                )
            )
        else:
            factor = named.get((entry.publisher, entry.dataset, entry.factor_code, entry.version))
            if factor is None:
                factor_id = f"{entry.publisher}/{entry.dataset}/{entry.factor_code}"
                answers.append(
                    LineError(
                        "no_match",
                        Message(
                            "estimate.no_factor_in_version", factor=factor_id, version=entry.version
                        )
                        if entry.version
                        else Message("estimate.no_factor_current", factor=factor_id),
                        ("factor",),
                    )
                )
                continue
            answers.append(
                _result(
                    factor,
                    amount=entry.amount,
                    unit=entry.unit,
                    match=None,
                    gwp=gwp,
                    gwp_table=gwp_table,
                    properties=properties,
                )
            )
    return answers


def estimate_one(
    session: Session,
    *,
    viewer: Viewer,
    item: EstimateItem,
    gwp: str | None,
    gwp_table: GwpTable | None = None,
    index: ResolveIndex | None = None,
) -> dict[str, Any]:
    """One estimate, or a problem+json error (404 when nothing matches, 422 otherwise)."""
    (answer,) = estimate_items(
        session, viewer=viewer, items=[item], gwp=gwp, gwp_table=gwp_table, index=index
    )
    if isinstance(answer, LineError):
        raise LineProblem(answer, 404 if answer.code == "no_match" else 422)
    return answer
