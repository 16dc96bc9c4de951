"""The resolve page (one line of `POST /v1/factors:resolve`, and `POST /v1/estimate` when an
amount is given) and the compare page (two to five factors side by side, on one basis).

Both call the API's own handlers in-process (never over HTTP), as the anonymous reader, so
what a page shows is what the API answers, whatever the resolver learns next:

- `/resolve.json?…` = the answer of `POST /v1/factors:resolve` for `{"items": [that line]}`;
- `/resolve/estimate.json?…` = the answer of `POST /v1/estimate` for that line and amount;
- `/compare.json?f=…` = each factor as `GET /v1/factors/{p}/{d}/{code}?version=&gwp=` answers
  it, its value per the common unit (what `POST /v1/estimate` answers for 1 unit of it), and
  which fields of basis differ; `/compare.csv` is the same as a table.

The resolve page renders the fallback chain from what the match reports: its `region_steps`
as far as the resolver lists them (every field shown, unknown ones too), then the rest of
`region_chain`; from `region_chain` and `region_distance` alone for a resolver without steps.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.db import SessionDep
from app.core.errors import InvalidParameter, ProblemError
from app.core.http_cache import SHORT_LIVED, cached_json
from app.core.params import only_query_params
from app.core.principal import ANONYMOUS
from app.core.problem_text import Localized, Message, localize
from app.datasets.visibility import visible_version_ids
from app.factors import service
from app.factors.answers import estimate_payload, resolve_payload
from app.factors.models import Factor
from app.factors.schemas import (
    FACTOR_CODE_PATTERN,
    EstimateItem,
    GwpSetName,
    ResolveItem,
)
from app.reference.gwp import GWP_SETS, apply_gwp, gwp_table_for
from app.reference.models import Location
from app.reference.units import UnitError, parse_amount_unit
from app.web.dataset_pages import csv_response
from app.web.i18n import Lang, Translator, negotiate
from app.web.params import LANG_PARAM
from app.web.templating import PageMeta, Twin, query_string, render_page

router = APIRouter()
# The forms' fields, read from the query string (unknown parameters are refused, as in the API).
RESOLVE_PARAMS = ("activity_id", "region", "year", "amount", "unit", "gwp", LANG_PARAM)
COMPARE_PARAMS = ("f", "gwp", "unit", LANG_PARAM)

VIEWER = ANONYMOUS
MIN_COMPARED, MAX_COMPARED = 2, 5
# The fields whose differences the compare page flags: what a factor is a number *of*.
BASIS_FIELDS = ("boundary", "region", "reference_year", "source_title", "method", "gwp_set")
_SLUG = r"[a-z0-9][a-z0-9-]{0,63}"
_FACTOR_REF = re.compile(
    rf"^({_SLUG})/({_SLUG})/({FACTOR_CODE_PATTERN.strip('^$')})(?:@([0-9A-Za-z.+-]{{1,32}}))?$"
)


# --------------------------------------------------------------------------- resolve


@dataclass
class ResolveForm:
    """The resolve form as the reader filled it, and what is wrong with it."""

    activity_id: str = ""
    region: str = ""
    year: str = ""
    amount: str = ""
    unit: str = ""
    gwp: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def submitted(self) -> bool:
        return any((self.activity_id, self.region, self.year, self.amount, self.unit))

    @property
    def wants_estimate(self) -> bool:
        return bool(self.amount and self.unit)

    def query(self) -> str:
        return query_string(
            activity_id=self.activity_id,
            region=self.region,
            year=self.year,
            amount=self.amount,
            unit=self.unit,
            gwp=self.gwp,
        )


def read_form(request: Request, t: Translator) -> ResolveForm:
    params = request.query_params

    def value(name: str) -> str:
        return (params.get(name) or "").strip()

    form = ResolveForm(
        activity_id=value("activity_id"),
        region=value("region"),
        year=value("year"),
        amount=value("amount"),
        unit=value("unit"),
        gwp=value("gwp"),
    )
    if not form.submitted:
        return form
    for name in ("activity_id", "region", "year"):
        if not getattr(form, name):
            form.errors[name] = t("resolve_error_required")
    if form.year and not re.fullmatch(r"-?\d{1,6}", form.year):
        form.errors["year"] = t("resolve_error_year")
    if form.amount:
        try:
            float(form.amount)
        except ValueError:
            form.errors["amount"] = t("resolve_error_amount")
    if form.amount and not form.unit:
        form.errors["unit"] = t("resolve_error_unit_with_amount")
    if form.gwp and form.gwp not in GWP_SETS:
        form.errors["gwp"] = t("resolve_error_gwp")
    return form


def resolve_item(form: ResolveForm) -> ResolveItem:
    return ResolveItem(
        activity_id=form.activity_id,
        region=form.region.upper() if form.region.lower() != "glo" else "GLO",
        year=int(form.year),
        unit=form.unit or None,
    )


def estimate_item(form: ResolveForm) -> EstimateItem:
    item = resolve_item(form)
    return EstimateItem(
        activity_id=item.activity_id,
        region=item.region,
        year=item.year,
        amount=float(form.amount),
        unit=form.unit,
    )


def _field_errors(exc: ValidationError) -> dict[str, str]:
    return {str(error["loc"][0]): str(error["msg"]) for error in exc.errors() if error["loc"]}


def _gwp(value: str | None) -> GwpSetName | None:
    return cast(GwpSetName, value) if value in GWP_SETS else None


def _bare_request() -> Request:
    """A request without headers, for calling an API handler in-process (no 304 surprises)."""
    return Request(
        {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    )


def _problem(exc: ProblemError) -> dict[str, Any]:
    first = (exc.errors or [{}])[0]
    return {"code": first.get("code") or exc.code, "detail": exc.detail}


def resolve_answer(
    session: Session, item: ResolveItem, gwp: str | None, lang: Lang = "en"
) -> dict[str, Any]:
    """The answer of `POST /v1/factors:resolve` for `{"items": [item]}`, from the API's own
    service, as JSON: the page shows exactly what the API would send (a line's error in the
    reader's language)."""
    payload = resolve_payload(session, viewer=VIEWER, items=[item], gwp=_gwp(gwp))
    answer: dict[str, Any] = orjson.loads(orjson.dumps(localize(payload, lang)))
    return answer


def estimate_answer(
    session: Session, item: EstimateItem, gwp: str | None, lang: Lang = "en"
) -> dict[str, Any]:
    """What `POST /v1/estimate` answers for this line, or `{"error": …}` for its problem."""
    try:
        payload = estimate_payload(session, viewer=VIEWER, item=item, gwp=_gwp(gwp))
    except ProblemError as exc:
        return {"error": localize(_problem(exc), lang)}
    answer: dict[str, Any] = orjson.loads(orjson.dumps(localize(payload, lang)))
    return answer


def location_names(session: Session, codes: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """Chinese and English names of the regions of a chain, from the location table."""
    if not codes:
        return {}
    rows = session.execute(
        select(Location.code, Location.name_zh, Location.name_en).where(Location.code.in_(codes))
    )
    return {code: (name_zh, name_en) for code, name_zh, name_en in rows}


@dataclass(frozen=True)
class ChainStep:
    """One region of the fallback walk and what happened there."""

    number: int
    region: str
    name_zh: str | None
    name_en: str | None
    # "chosen", "passed" (no factor there), "not_needed" (after the chosen one), or the
    # resolver's own word for anything else (e.g. "other_unit_only").
    outcome: str
    relation: str | None = None  # requested | member_of | parent, when the resolver says
    of: str | None = None
    kind: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


_STEP_KEYS = ("region", "code", "outcome", "result", "status", "relation", "of", "kind")
_OUTCOMES = {"matched": "chosen", "chosen": "chosen", "no_factor": "passed", "passed": "passed"}


def chain_steps(
    match: Mapping[str, Any], names: Mapping[str, tuple[str | None, str | None]]
) -> list[ChainStep]:
    """The fallback walk: the resolver's own steps (`region_steps`) as far as it reports them,
    then the rest of `region_chain`; from the chain and `region_distance` alone otherwise."""
    chain = [str(code) for code in match.get("region_chain") or []]
    depth = int(match.get("region_distance") or 0)
    given = match.get("region_steps", match.get("steps"))
    reported = given if isinstance(given, list) and all(isinstance(s, dict) for s in given) else []
    steps: list[ChainStep] = []
    for number, step in enumerate(reported, start=1):
        region = str(step.get("region") or step.get("code") or "")
        raw = str(step.get("outcome") or step.get("result") or step.get("status") or "")
        zh, en = names.get(region, (None, None))
        steps.append(
            ChainStep(
                number,
                region,
                zh,
                en,
                _OUTCOMES.get(raw, raw or "passed"),
                relation=step.get("relation"),
                of=step.get("of"),
                kind=step.get("kind"),
                details={k: v for k, v in step.items() if k not in _STEP_KEYS and v is not None},
            )
        )
    for number, region in enumerate(chain[len(steps) :], start=len(steps) + 1):
        index = number - 1
        outcome = "passed" if index < depth else "chosen" if index == depth else "not_needed"
        zh, en = names.get(region, (None, None))
        steps.append(ChainStep(number, region, zh, en, outcome))
    return steps


def activity_choices(session: Session) -> list[str]:
    """Activity ids of the current releases, for the form's suggestion list."""
    rows = session.execute(
        select(Factor.activity_id)
        .where(Factor.version_id.in_(visible_version_ids()))
        .distinct()
        .order_by(Factor.activity_id)
        .limit(500)
    )
    return [row[0] for row in rows]


def _checked_item(form: ResolveForm) -> ResolveItem | None:
    """The line to resolve, or None with the form's errors filled in."""
    if form.errors or not form.submitted:
        return None
    try:
        item = resolve_item(form)
        if form.wants_estimate:
            estimate_item(form)
    except ValidationError as exc:
        form.errors.update(_field_errors(exc))
        return None
    return item


def _refuse(form: ResolveForm) -> InvalidParameter:
    return InvalidParameter(
        Message("web.resolve_invalid"),
        errors=[
            {"loc": ["query", name], "code": "invalid", "detail": detail}
            for name, detail in form.errors.items()
        ],
    )


@router.get("/resolve.json", dependencies=[Depends(only_query_params(RESOLVE_PARAMS))])
def resolve_json(request: Request, session: SessionDep) -> Response:
    form = read_form(request, Translator("en"))
    if not form.submitted:
        form.errors["activity_id"] = "required"
    item = _checked_item(form)
    if item is None:
        raise _refuse(form)
    return cached_json(
        request, resolve_answer(session, item, form.gwp or None), cache_control=SHORT_LIVED
    )


@router.get("/resolve/estimate.json", dependencies=[Depends(only_query_params(RESOLVE_PARAMS))])
def estimate_json(request: Request, session: SessionDep) -> Response:
    form = read_form(request, Translator("en"))
    if not form.wants_estimate:
        form.errors.setdefault("amount", "amount and unit are required")
    if _checked_item(form) is None:
        raise _refuse(form)
    # The API's service itself: its answer, or its problem (404 no match, 422 cannot answer).
    payload = estimate_payload(session, viewer=VIEWER, item=estimate_item(form), gwp=_gwp(form.gwp))
    return cached_json(request, orjson.loads(orjson.dumps(payload)), cache_control=SHORT_LIVED)


@router.get("/resolve", dependencies=[Depends(only_query_params(RESOLVE_PARAMS))])
def resolve_page(request: Request, session: SessionDep) -> Response:
    t = Translator(negotiate(request))
    form = read_form(request, t)
    item = _checked_item(form)
    gwp = form.gwp or None
    answer: dict[str, Any] | None = None
    steps: list[ChainStep] = []
    estimate: dict[str, Any] | None = None
    twins: list[Twin] = []
    api_path: str | None = None
    api_body: Any = None
    if item is not None:
        if form.wants_estimate:
            estimate = estimate_answer(session, estimate_item(form), gwp, t.lang)
        if estimate is not None and estimate.get("match"):
            # The factor the estimate used: the same resolution, but it may also reach a
            # factor of another dimension through a cited property (t of gas → TJ).
            answer = {"factor": estimate["factor"], "match": estimate["match"]}
        else:
            answer = resolve_answer(session, item, gwp, t.lang)["items"][0]
        if "match" in answer:
            match = answer["match"]
            codes = [str(c) for c in match.get("region_chain") or []]
            steps = chain_steps(match, location_names(session, codes))
        twins.append(Twin("application/json", "/resolve.json" + form.query(), t("resolve_twin")))
        api_path = "/v1/factors:resolve" + query_string(gwp=gwp)
        api_body = {"items": [item.model_dump(exclude_none=True)]}
        if form.wants_estimate:
            twins.append(
                Twin(
                    "application/json",
                    "/resolve/estimate.json" + form.query(),
                    t("resolve_twin_estimate"),
                )
            )
            api_path = "/v1/estimate" + query_string(gwp=gwp)
            api_body = estimate_item(form).model_dump(exclude_none=True)
    meta = PageMeta(title=t("resolve_title"), twins=twins, api_path=api_path, api_body=api_body)
    context = {
        "form": form,
        "answer": answer,
        "steps": steps,
        "estimate": estimate if estimate and "error" not in estimate else None,
        "estimate_error": estimate["error"] if estimate and "error" in estimate else None,
        "activities": activity_choices(session),
        "gwp_sets": GWP_SETS,
    }
    status = 422 if form.errors else 200
    return render_page(request, "resolve.html", context, meta=meta, status_code=status)


# --------------------------------------------------------------------------- compare


@dataclass
class Compared:
    """One column of the compare table."""

    ref: str
    factor: dict[str, Any] | None = None
    value: float | None = None  # kg CO2e per the common unit, in the common GWP set
    multiplier: float | None = None  # factor units per common unit
    properties: list[dict[str, Any]] = field(default_factory=list)  # cited, if it took any
    error: dict[str, Any] | None = None


def parse_refs(values: list[str]) -> list[str]:
    refs = [value.strip() for value in values if value and value.strip()]
    return list(dict.fromkeys(refs))


def _ref_error(ref: str) -> dict[str, Any] | None:
    if _FACTOR_REF.match(ref) is None:
        return {
            "code": "invalid_factor_id",
            "detail": f"'{ref}' is not a factor id publisher/dataset/factor_code[@version]",
        }
    return None


def lookup(session: Session, ref: str, gwp: str | None) -> Compared:
    """The factor as `GET /v1/factors/{p}/{d}/{code}?version=&gwp=` answers it."""
    problem = _ref_error(ref)
    if problem is not None:
        return Compared(ref, error=problem)
    found = _FACTOR_REF.match(ref)
    assert found is not None
    publisher, dataset, code, version = found.groups()
    try:
        factor = service.get_factor(
            session,
            viewer=VIEWER,
            publisher=publisher,
            dataset=dataset,
            factor_code=code,
            version=version,
            as_of=None,
        )
        factor = apply_gwp(factor, _gwp(gwp), gwp_table_for(session, _gwp(gwp)))
    except ProblemError as exc:
        return Compared(ref, error=_problem(exc))
    # As the API sends it (`GET /v1/factors/{p}/{d}/{code}?version=&gwp=`).
    response = cached_json(_bare_request(), factor, cache_control=SHORT_LIVED)
    return Compared(ref, factor=orjson.loads(bytes(response.body)))


def default_unit(compared: list[Compared]) -> str | None:
    units = [c.factor["unit"] for c in compared if c.factor is not None]
    return units[0] if units else None


def default_gwp(compared: list[Compared]) -> str | None:
    """The GWP set most of the factors were published in (the first one on a tie)."""
    sets = [c.factor["gwp_set"] for c in compared if c.factor and c.factor["gwp_set"]]
    return Counter(sets).most_common(1)[0][0] if sets else None


def normalise(session: Session, compared: Compared, unit: str, gwp: str | None) -> Compared:
    """kg CO2e per one `unit`: what `POST /v1/estimate` answers for 1 `unit` of this very
    factor (pinned by its id), so units of another kind convert through the same cited
    properties (a net calorific value…) as an estimate, or not at all."""
    if compared.factor is None:
        return compared
    item = EstimateItem(factor=compared.factor["id"], amount=1.0, unit=unit)
    answer = estimate_answer(session, item, gwp)
    if "error" in answer:
        compared.error = answer["error"]
        return compared
    conversion = answer["conversion"]
    compared.multiplier = conversion["multiplier"]
    compared.properties = conversion.get("properties") or []
    compared.value = answer["co2e_kg"]
    return compared


def differing_fields(compared: list[Compared]) -> list[str]:
    found = [c.factor for c in compared if c.factor is not None]
    return [name for name in BASIS_FIELDS if len({repr(factor[name]) for factor in found}) > 1]


@dataclass
class Comparison:
    refs: list[str]
    unit: str | None
    gwp: str | None
    items: list[Compared]
    differs: list[str]
    problem: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "gwp": self.gwp,
            "basis_fields": list(BASIS_FIELDS),
            "differs": self.differs,
            "items": [
                {"ref": c.ref, "error": c.error}
                if c.factor is None
                else {
                    "ref": c.ref,
                    "factor": c.factor,
                    "normalised": {
                        "co2e": c.value,
                        "unit": self.unit,
                        "multiplier": c.multiplier,
                        "properties": c.properties,
                        "error": c.error,
                    },
                }
                for c in self.items
            ],
        }


def compare(session: Session, request: Request, t: Translator) -> Comparison:
    params = request.query_params
    refs = parse_refs(params.getlist("f"))
    gwp = params.get("gwp") or None
    unit = (params.get("unit") or "").strip() or None
    problem = None
    if gwp is not None and gwp not in GWP_SETS:
        problem, gwp = t("resolve_error_gwp"), None
    if refs and not MIN_COMPARED <= len(refs) <= MAX_COMPARED:
        problem = t("compare_error_count", low=MIN_COMPARED, high=MAX_COMPARED, n=len(refs))
        refs = refs[:MAX_COMPARED]
    items = [lookup(session, ref, None) for ref in refs]
    gwp = gwp or default_gwp(items)
    if gwp is not None:
        # Each factor as `GET /v1/factors/…?gwp=` answers it in the common set.
        items = [c if c.factor is None else lookup(session, c.ref, gwp) for c in items]
    if unit is not None:
        try:
            unit = parse_amount_unit(unit).canonical
        except UnitError as exc:
            problem, unit = exc.detail, None
    unit = unit or default_unit(items)
    if unit is not None:
        items = [normalise(session, c, unit, gwp) for c in items]
    return Comparison(refs, unit, gwp, items, differing_fields(items), problem)


def _compare_query(comparison: Comparison) -> str:
    return query_string(f=comparison.refs, unit=comparison.unit, gwp=comparison.gwp)


COMPARE_CSV_COLUMNS = (
    "ref",
    "id",
    "name_zh",
    "name_en",
    "co2e",
    "unit",
    "gwp_set",
    "normalised_co2e",
    "normalised_unit",
    *[name for name in BASIS_FIELDS if name not in ("gwp_set",)],
    "license_id",
    "error",
)


def _compare_refused(session: Session, request: Request, problem: str) -> InvalidParameter:
    """The comparison's problem (worded by the English labels) in both languages: the Chinese
    labels word it again, and the client's `Accept-Language` picks one."""
    in_chinese = compare(session, request, Translator("zh")).problem
    return InvalidParameter(
        Localized(str(problem), localize(in_chinese if in_chinese is not None else problem, "zh"))
    )


@router.get("/compare.json", dependencies=[Depends(only_query_params(COMPARE_PARAMS))])
def compare_json(request: Request, session: SessionDep) -> Response:
    comparison = compare(session, request, Translator("en"))
    if comparison.problem is not None:
        raise _compare_refused(session, request, comparison.problem)
    return cached_json(request, comparison.payload(), cache_control=SHORT_LIVED)


@router.get("/compare.csv", dependencies=[Depends(only_query_params(COMPARE_PARAMS))])
def compare_csv(request: Request, session: SessionDep) -> Response:
    comparison = compare(session, request, Translator("en"))
    if comparison.problem is not None:
        raise _compare_refused(session, request, comparison.problem)

    def row(c: Compared) -> list[Any]:
        f = c.factor or {}
        error = (c.error or {}).get("detail")
        return [
            c.ref,
            f.get("id"),
            f.get("name_zh"),
            f.get("name_en"),
            f.get("co2e"),
            f.get("unit"),
            f.get("gwp_set"),
            c.value,
            comparison.unit if c.value is not None else None,
            *[f.get(name) for name in BASIS_FIELDS if name != "gwp_set"],
            f.get("license_id"),
            error,
        ]

    return csv_response(
        request,
        COMPARE_CSV_COLUMNS,
        (row(c) for c in comparison.items),
        filename="compare.csv",
        cache_control=SHORT_LIVED,
    )


@router.get("/compare", dependencies=[Depends(only_query_params(COMPARE_PARAMS))])
def compare_page(request: Request, session: SessionDep) -> Response:
    t = Translator(negotiate(request))
    comparison = compare(session, request, t)
    query = _compare_query(comparison)
    ready = len(comparison.refs) >= MIN_COMPARED
    meta = PageMeta(
        title=t("compare_title"),
        twins=(
            [
                Twin("application/json", f"/compare.json{query}", "JSON"),
                Twin("text/csv", f"/compare.csv{query}", "CSV"),
            ]
            if ready
            else []
        ),
        # The snippets fetch the JSON twin with every factor pinned to the release shown.
        api_path=(
            "/compare.json"
            + query_string(
                f=[c.factor["id"] if c.factor else c.ref for c in comparison.items],
                unit=comparison.unit,
                gwp=comparison.gwp,
            )
            if ready
            else None
        ),
    )
    slots = [*comparison.refs, *[""] * (MAX_COMPARED - len(comparison.refs))]
    context = {
        "comparison": comparison,
        "slots": slots[:MAX_COMPARED],
        "basis_fields": BASIS_FIELDS,
        "gwp_sets": GWP_SETS,
        "ready": ready,
    }
    status = 422 if comparison.problem else 200
    return render_page(request, "compare.html", context, meta=meta, status_code=status)
