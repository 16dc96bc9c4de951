"""A factor's pages: latest and version-pinned, its history, and how to cite it.

URLs (a factor code never holds `@` or `/`, so the last segment parses unambiguously):
- `/factors/{p}/{d}/{code}` latest release; `…/{code}@{version}` pinned; `.json` after
  either is the API's own answer (`GET /v1/factors/{p}/{d}/{code}[?version=]`).
- `…/{code}/history` (`.json` = the API's history, `.csv` the same table).
- `…/{code}[@{version}]/cite?style=gb7714|apa|bibtex|csl-json` (`cite.json` CSL-JSON,
  `cite.bib` BibTeX).

A factor page never 404s for a factor that was ever released: a withdrawn or superseded
release says so and links the current one; a factor dropped from the current release shows
the last release that had it.

Caching: a pinned page shows its release's status, and a withdrawal (or a newer release) can
still change that, so pinned pages are short-lived with a strong ETag (conditional GETs get
304), like the API's pinned provenance; only a withdrawn release, whose page can no longer
change (its links go to the stable "latest" URL), is sent as immutable. The `.json` twins are
the API's answers, with the API's headers.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.params import Path
from sqlalchemy.orm import Session

from app.core.db import SessionDep
from app.core.errors import InvalidParameter, NotFound
from app.core.http_cache import IMMUTABLE, PINNED_RELEASE, SHORT_LIVED, cached_json
from app.core.params import DatasetSlug, PublisherSlug, only_query_params
from app.core.principal import ANONYMOUS
from app.core.problem_text import Message
from app.datasets.service import get_dataset, publisher_by_slug
from app.datasets.visibility import parse_semver
from app.factors import service
from app.factors.schemas import FACTOR_CODE_PATTERN, PEDIGREE_FIELDS
from app.provenance.factor_chain import factor_provenance
from app.reference.gwp import gwp_source, gwp_values
from app.versioning.history import factor_history
from app.web.citation import (
    BIBTEX_MEDIA_TYPE,
    CITATION_STYLES,
    CSL_JSON_MEDIA_TYPE,
    CitationStyle,
    CitedFactor,
    bibtex,
    cite,
    csl_json,
)
from app.web.i18n import Lang, Translator, catalog, negotiate
from app.web.search import csv_response
from app.web.templating import PageMeta, Twin, public_url, render_page

router = APIRouter()

FACTOR_CODE_RE = re.compile(FACTOR_CODE_PATTERN)
_SUFFIXES = (".json", ".csv")
HISTORY_COLUMNS = (
    "version",
    "version_status",
    "published_at",
    "withdrawn",
    "withdrawn_at",
    "withdrawn_reason",
    "co2e",
    "unit",
    "region",
    "reference_year",
    "gwp_set",
    "co2",
    "ch4",
    "n2o",
    "uid",
)


@dataclass(frozen=True)
class FactorRef:
    """The last path segment of a factor URL: `code`, `code@1.0.0`, either with `.json`."""

    factor_code: str
    version: str | None
    suffix: str | None

    @property
    def pinned(self) -> bool:
        return self.version is not None


def parse_ref(ref: str) -> FactorRef:
    suffix = next((s for s in _SUFFIXES if ref.endswith(s)), None)
    # `code.json` is the twin of `code`; a factor whose code itself ends in `.json` is reached
    # pinned (`code.json@1.0.0`) or through its `.json` twin (`code.json.json`).
    body = ref[: -len(suffix)] if suffix else ref
    code, at, version = body.partition("@")
    if not FACTOR_CODE_RE.match(code):
        raise InvalidParameter(
            Message("web.not_a_factor_code", code=code),
            errors=[
                {"loc": ["path", "factor_code"], "code": "invalid_factor_code", "detail": code}
            ],
        )
    if at:
        parse_semver(version)
    return FactorRef(code, version if at else None, suffix)


def factor_path(publisher: str, dataset: str, code: str, version: str | None = None) -> str:
    return f"/factors/{publisher}/{dataset}/{code}" + (f"@{version}" if version else "")


def api_factor_path(publisher: str, dataset: str, code: str, version: str | None = None) -> str:
    return f"/v1/factors/{publisher}/{dataset}/{code}" + (f"?version={version}" if version else "")


# --- what a factor page shows -------------------------------------------------------------


@dataclass
class GasLine:
    gas: str
    field: str
    amount: float
    gwp: float | None
    co2e: float | None


@dataclass
class FactorView:
    """Everything a factor page (and its citation) shows, from the services the API calls."""

    factor: dict[str, Any]
    pinned: bool
    dataset: dict[str, Any]
    publisher_name_zh: str | None
    publisher_name_en: str | None
    provenance: dict[str, Any]
    # The current release of the same factor, when the page shows another one.
    current: dict[str, Any] | None
    # Asked for the latest, but the current release does not hold this factor any more.
    dropped: bool = False
    gases: list[GasLine] = field(default_factory=list)
    gwp_values: dict[str, float] | None = None
    gwp_source: str | None = None
    # The same activity and region in the same dataset's current release, by reference year.
    series: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_current(self) -> bool:
        return self.current is not None and self.current["version"] == self.factor["version"]

    @property
    def pedigree(self) -> list[tuple[str, int]]:
        return [(name, self.factor[name]) for name in PEDIGREE_FIELDS if self.factor[name]]


def _gas_lines(factor: dict[str, Any], values: dict[str, float] | None) -> list[GasLine]:
    lines = []
    for gas, name in (("CO2", "co2"), ("CH4", "ch4"), ("N2O", "n2o")):
        amount = factor[name]
        if amount is None:
            continue
        # CO2's GWP is 1 by definition, whichever set; the others need the factor's set.
        gwp = 1.0 if gas == "CO2" else (values or {}).get(gas)
        lines.append(GasLine(gas, name, amount, gwp, None if gwp is None else amount * gwp))
    if factor["other_ghg_co2e"] is not None:
        amount = factor["other_ghg_co2e"]
        lines.append(GasLine("other", "other_ghg_co2e", amount, None, amount))
    contributions = [line.co2e for line in lines]
    if lines and None not in contributions:
        # What the itemised gases leave of co2e (e.g. CH4 and N2O given only as CO2e).
        rest = factor["co2e"] - sum(c for c in contributions if c is not None)
        if abs(rest) > 1e-9 * max(abs(factor["co2e"]), 1e-12):
            lines.append(GasLine("rest", "", rest, None, rest))
    return lines


def _get_factor(
    session: Session, publisher: str, dataset: str, code: str, version: str | None
) -> dict[str, Any]:
    return service.get_factor(
        session,
        viewer=ANONYMOUS,
        publisher=publisher,
        dataset=dataset,
        factor_code=code,
        version=version,
    )


@dataclass(frozen=True)
class ShownFactor:
    """Which release of a factor a page shows, and the current release's (None if dropped)."""

    factor: dict[str, Any]
    current: dict[str, Any] | None
    dropped: bool


def shown_factor(
    session: Session,
    *,
    publisher: str,
    dataset: str,
    factor_code: str,
    version: str | None,
    history: list[dict[str, Any]] | None = None,
) -> ShownFactor:
    """The pinned release, else the current one, else (the factor was dropped from the current
    release) the newest release that had it; 404 if none ever did. `history`, when the caller
    has it already, saves reading it again."""
    try:
        current: dict[str, Any] | None = _get_factor(session, publisher, dataset, factor_code, None)
    except NotFound:
        current = None
    if version is not None:
        return ShownFactor(
            _get_factor(session, publisher, dataset, factor_code, version), current, False
        )
    if current is not None:
        return ShownFactor(current, current, False)
    if history is None:
        history = factor_history(
            session, viewer=ANONYMOUS, publisher=publisher, dataset=dataset, factor_code=factor_code
        )
    kept = [item for item in history if not item["withdrawn"]] or history
    factor = _get_factor(session, publisher, dataset, factor_code, kept[0]["version"])
    return ShownFactor(factor, None, True)


def load_factor_view(
    session: Session,
    *,
    publisher: str,
    dataset: str,
    factor_code: str,
    version: str | None,
    with_series: bool = False,
) -> FactorView:
    """What a factor page shows; `with_series` adds the other reference years (one search),
    which only the factor page itself lists."""
    shown = shown_factor(
        session, publisher=publisher, dataset=dataset, factor_code=factor_code, version=version
    )
    factor, current = shown.factor, shown.current
    owner = publisher_by_slug(session, publisher)
    gwp_set = factor["gwp_set"]
    values = gwp_values(gwp_set) if gwp_set else None
    view = FactorView(
        factor=factor,
        pinned=version is not None,
        dataset=get_dataset(session, viewer=ANONYMOUS, publisher=publisher, dataset=dataset),
        publisher_name_zh=owner.name_zh,
        publisher_name_en=owner.name_en,
        provenance=factor_provenance(
            session,
            viewer=ANONYMOUS,
            publisher=publisher,
            dataset=dataset,
            factor_code=factor_code,
            version=factor["version"],
        ),
        current=current,
        dropped=shown.dropped,
        gases=_gas_lines(factor, values),
        gwp_values=values,
        gwp_source=gwp_source(gwp_set) if gwp_set else None,
    )
    # Only beside the current release: another release's page must not change with it.
    if with_series and view.is_current:
        view.series = year_series(session, factor)
    return view


SERIES_LIMIT = 50


def year_series(session: Session, factor: dict[str, Any]) -> list[dict[str, Any]]:
    """The factor's like-for-like siblings: same dataset, activity, region and unit in the
    current release (the search the API runs), oldest reference year first."""
    items, _ = service.search_factors(
        session,
        viewer=ANONYMOUS,
        filters=service.FactorFilters(
            activity_id=factor["activity_id"],
            region=factor["region"],
            unit=factor["unit"],
            publisher=factor["publisher"],
            dataset=factor["dataset"],
        ),
        after_id=None,
        limit=SERIES_LIMIT,
    )
    if len(items) < 2:
        return []
    return sorted(items, key=lambda item: (item["reference_year"], item["factor_code"]))


def hash_command(base_url: str, publisher: str, dataset: str, version: str) -> str:
    """One shell line that downloads the release's Parquet export and prints its content hash
    (the README's recipe: canonical JSON of the hashed columns, sorted by factor_code)."""
    url = f"{base_url}/v1/datasets/{publisher}/{dataset}/versions/{version}/export.parquet"
    name = f"efdb-{dataset}-{version}.parquet"
    program = (
        "import hashlib,json,pyarrow as pa,pyarrow.parquet as pq;"
        f't=pq.read_table("{name}");s=t.schema;'
        'F=json.loads(s.metadata[b"efdb:content_hash_fields"]);'
        "V=lambda n,x:(lambda k:int(x) if pa.types.is_integer(k) else float(x) "
        "if pa.types.is_floating(k) else x.isoformat() if pa.types.is_date(k) else x)"
        "(s.field(n).type);"
        'print(hashlib.sha256("\\n".join(json.dumps({n:V(n,r[n]) for n in F '
        'if r[n] is not None},sort_keys=True,separators=(",",":"),ensure_ascii=False) '
        'for r in sorted(t.to_pylist(),key=lambda r:r["factor_code"])).encode()).hexdigest())'
    )
    return f"curl -sfo {name} {shlex.quote(url)} && python3 -c {shlex.quote(program)}"


def _base_url(request: Request) -> str:
    """The configured public origin, never the request's `Host` (see Settings.public_url)."""
    return public_url(request)


def cited_factor(request: Request, view: FactorView, lang: Lang) -> CitedFactor:
    factor = view.factor
    release = view.provenance["dataset_version"]
    labels = catalog()
    published_at: datetime = release["published_at"]
    return CitedFactor(
        publisher=factor["publisher"],
        dataset=factor["dataset"],
        factor_code=factor["factor_code"],
        version=factor["version"],
        content_sha256=release["content_sha256"],
        published_at=published_at,
        permalink=_base_url(request)
        + factor_path(
            factor["publisher"], factor["dataset"], factor["factor_code"], factor["version"]
        ),
        accessed=datetime.now(UTC).date(),
        publisher_name_zh=view.publisher_name_zh,
        publisher_name_en=view.publisher_name_en,
        dataset_title_zh=view.dataset["title_zh"],
        dataset_title_en=view.dataset["title_en"],
        factor_name_zh=factor["name_zh"],
        factor_name_en=factor["name_en"],
        site_name_zh=labels["zh"]["site_name"],
        site_name_en=labels["en"]["site_name"],
    )


# --- routes ---------------------------------------------------------------------------------

PageRef = Annotated[str, Path(max_length=200)]


def _factor_json(
    request: Request, session: Session, publisher: str, dataset: str, ref: FactorRef
) -> Response:
    """`GET /v1/factors/{p}/{d}/{code}[?version=]`: the same service call and cache policy
    as the API's route, so the body and headers are the API's."""
    factor = service.get_factor(
        session,
        viewer=ANONYMOUS,
        publisher=publisher,
        dataset=dataset,
        factor_code=ref.factor_code,
        version=ref.version,
        as_of=None,
    )
    return cached_json(
        request, factor, cache_control=PINNED_RELEASE if ref.version else SHORT_LIVED
    )


@router.get(
    "/factors/{publisher}/{dataset}/{ref}",
    dependencies=[Depends(only_query_params(("lang",)))],
)
def factor_page(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    ref: PageRef,
) -> Response:
    parsed = parse_ref(ref)
    if parsed.suffix == ".json":
        return _factor_json(request, session, publisher, dataset, parsed)
    if parsed.suffix is not None:
        raise NotFound(Message("web.no_factor_form", suffix=parsed.suffix))
    view = load_factor_view(
        session,
        publisher=publisher,
        dataset=dataset,
        factor_code=parsed.factor_code,
        version=parsed.version,
        with_series=True,
    )
    lang = negotiate(request)
    t = Translator(lang)
    factor = view.factor
    code, version = factor["factor_code"], factor["version"]
    here = factor_path(publisher, dataset, code, parsed.version)
    pinned_path = factor_path(publisher, dataset, code, version)
    meta = PageMeta(
        title=t.pick(factor["name_zh"], factor["name_en"]) or code,
        twins=[
            Twin("application/json", f"{here}.json", t("factor_twin_json")),
            Twin(
                "application/json",
                f"/v1/factors/{publisher}/{dataset}/{code}/provenance?version={version}",
                t("factor_twin_provenance"),
            ),
        ],
        api_path=api_factor_path(publisher, dataset, code, parsed.version),
        canonical=_base_url(request) + pinned_path,
    )
    context = {
        "view": view,
        "factor": factor,
        "publisher_slug": publisher,
        "dataset_slug": dataset,
        "latest_path": factor_path(publisher, dataset, code),
        "pinned_path": pinned_path,
        "history_path": factor_path(publisher, dataset, code) + "/history",
        "cite_path": pinned_path + "/cite",
        "hash_command": hash_command(_base_url(request), publisher, dataset, version),
    }
    final = view.pinned and factor["version_status"] == "withdrawn"
    return render_page(
        request,
        "factor.html",
        context,
        meta=meta,
        lang=lang,
        cache_control=IMMUTABLE if final else SHORT_LIVED,
    )


def _history_items(
    session: Session, publisher: str, dataset: str, ref: FactorRef
) -> list[dict[str, Any]]:
    return factor_history(
        session,
        viewer=ANONYMOUS,
        publisher=publisher,
        dataset=dataset,
        factor_code=ref.factor_code,
    )


@router.get(
    "/factors/{publisher}/{dataset}/{ref}/history.json",
    dependencies=[Depends(only_query_params(()))],
)
def history_json(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    ref: PageRef,
) -> Response:
    """`GET /v1/factors/{p}/{d}/{code}/history`: the API's service call and cache policy."""
    items = factor_history(
        session,
        viewer=ANONYMOUS,
        publisher=publisher,
        dataset=dataset,
        factor_code=parse_ref(ref).factor_code,
    )
    return cached_json(request, {"items": items}, cache_control=SHORT_LIVED)


@router.get(
    "/factors/{publisher}/{dataset}/{ref}/history.csv",
    dependencies=[Depends(only_query_params(()))],
)
def history_csv(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    ref: PageRef,
) -> Response:
    parsed = parse_ref(ref)
    items = _history_items(session, publisher, dataset, parsed)
    return csv_response(
        request, HISTORY_COLUMNS, items, filename=f"{parsed.factor_code}-history.csv"
    )


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    version: str
    value: float
    withdrawn: bool


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    points: list[ChartPoint]
    y_ticks: list[tuple[float, float]]
    baseline: float
    unit: str
    path: str


def history_chart(items: list[dict[str, Any]], width: int = 640, height: int = 260) -> Chart | None:
    """The value per release, oldest left, as plot coordinates (None when units differ)."""
    chronological = list(reversed(items))
    if not chronological or len({item["unit"] for item in chronological}) != 1:
        return None
    left, right, top, bottom = 80, 20, 20, 50
    values = [float(item["co2e"]) for item in chronological]
    low, high = min(values), max(values)
    pad = (high - low) * 0.15 or abs(high) * 0.1 or 1.0
    low, high = max(0.0, low - pad) if low >= 0 else low - pad, high + pad
    span = high - low
    inner_w, inner_h = width - left - right, height - top - bottom
    step = inner_w / max(len(values) - 1, 1)

    def y_of(value: float) -> float:
        return round(top + inner_h * (1 - (value - low) / span), 2)

    points = [
        ChartPoint(
            x=round(left + (step * i if len(values) > 1 else inner_w / 2), 2),
            y=y_of(value),
            version=item["version"],
            value=value,
            withdrawn=bool(item["withdrawn"]),
        )
        for i, (item, value) in enumerate(zip(chronological, values, strict=True))
    ]
    ticks = [(low + span * k / 4, y_of(low + span * k / 4)) for k in range(5)]
    path = " ".join(("M" if i == 0 else "L") + f"{p.x},{p.y}" for i, p in enumerate(points))
    return Chart(width, height, points, ticks, top + inner_h, chronological[0]["unit"], path)


@router.get(
    "/factors/{publisher}/{dataset}/{ref}/history",
    dependencies=[Depends(only_query_params(("lang",)))],
)
def history_page(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    ref: PageRef,
) -> Response:
    parsed = parse_ref(ref)
    if parsed.suffix is not None:
        raise NotFound(Message("not_found.page", path=request.url.path))
    items = _history_items(session, publisher, dataset, parsed)
    # The names the page shows; neither the provenance nor the series a factor page reads.
    shown = shown_factor(
        session,
        publisher=publisher,
        dataset=dataset,
        factor_code=parsed.factor_code,
        version=None,
        history=items,
    )
    lang = negotiate(request)
    t = Translator(lang)
    base = factor_path(publisher, dataset, parsed.factor_code)
    factor = shown.factor
    meta = PageMeta(
        title=t("history_title", name=t.pick(factor["name_zh"], factor["name_en"])),
        twins=[
            Twin("application/json", f"{base}/history.json", t("history_twin_json")),
            Twin("text/csv", f"{base}/history.csv", t("history_twin_csv")),
        ],
        api_path=f"/v1/factors/{publisher}/{dataset}/{parsed.factor_code}/history",
    )
    context = {
        "factor": factor,
        "items": items,
        "chart": history_chart(items),
        "current_version": shown.current["version"] if shown.current else None,
        "latest_path": base,
        "base_path": base,
    }
    return render_page(request, "history.html", context, meta=meta, lang=lang)


StyleParam = Annotated[CitationStyle, Query()]


def _cite_view(session: Session, publisher: str, dataset: str, ref: FactorRef) -> FactorView:
    return load_factor_view(
        session,
        publisher=publisher,
        dataset=dataset,
        factor_code=ref.factor_code,
        version=ref.version,
    )


def _citation_file(
    request: Request,
    session: Session,
    publisher: str,
    dataset: str,
    ref: str,
    *,
    write: Callable[[CitedFactor, Lang], str],
    media_type: str,
) -> Response:
    """The citation of a factor as a file for reference managers, in the reader's language."""
    lang = negotiate(request)
    view = _cite_view(session, publisher, dataset, parse_ref(ref))
    body = write(cited_factor(request, view, lang), lang).encode("utf-8")
    return Response(body, media_type=media_type, headers={"Cache-Control": SHORT_LIVED})


@router.get(
    "/factors/{publisher}/{dataset}/{ref}/cite.json",
    dependencies=[Depends(only_query_params(("lang",)))],
)
def cite_json(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    ref: PageRef,
) -> Response:
    """The citation as CSL-JSON (a one-item array), for reference managers."""
    return _citation_file(
        request, session, publisher, dataset, ref, write=csl_json, media_type=CSL_JSON_MEDIA_TYPE
    )


@router.get(
    "/factors/{publisher}/{dataset}/{ref}/cite.bib",
    dependencies=[Depends(only_query_params(("lang",)))],
)
def cite_bib(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    ref: PageRef,
) -> Response:
    """The citation as BibTeX."""
    return _citation_file(
        request,
        session,
        publisher,
        dataset,
        ref,
        write=bibtex,
        media_type=f"{BIBTEX_MEDIA_TYPE}; charset=utf-8",
    )


@router.get(
    "/factors/{publisher}/{dataset}/{ref}/cite",
    dependencies=[Depends(only_query_params(("lang", "style")))],
)
def cite_page(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    ref: PageRef,
    style: StyleParam = "gb7714",
) -> Response:
    parsed = parse_ref(ref)
    if parsed.suffix is not None:
        raise NotFound(Message("not_found.page", path=request.url.path))
    view = _cite_view(session, publisher, dataset, parsed)
    lang = negotiate(request)
    t = Translator(lang)
    cited = cited_factor(request, view, lang)
    factor = view.factor
    pinned_path = factor_path(publisher, dataset, factor["factor_code"], factor["version"])
    meta = PageMeta(
        title=t("cite_title", name=t.pick(factor["name_zh"], factor["name_en"])),
        twins=[
            Twin(CSL_JSON_MEDIA_TYPE, f"{pinned_path}/cite.json?lang={lang}", t("cite_twin_csl")),
            Twin(BIBTEX_MEDIA_TYPE, f"{pinned_path}/cite.bib?lang={lang}", t("cite_twin_bibtex")),
            Twin("application/json", f"{pinned_path}.json", t("factor_twin_json")),
        ],
        api_path=api_factor_path(publisher, dataset, factor["factor_code"], factor["version"]),
    )
    context = {
        "view": view,
        "factor": factor,
        "cited": cited,
        "style": style,
        "styles": CITATION_STYLES,
        "text": cite(cited, style, lang),
        "pinned_path": pinned_path,
        "cite_base": f"{pinned_path}/cite",
    }
    return render_page(request, "cite.html", context, meta=meta, lang=lang)
