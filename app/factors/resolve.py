"""Batch resolution: the best factor for each (activity, region, year[, unit]) line.

A call costs four queries whatever its size:

1. the fallback chain of every region (a recursive walk up the `location` table);
2. the releases each line may draw on (current ones, pinned ones, those current at an
   `as_of` date) with their dataset's priority;
3. the probes: for each distinct (activity, region of a chain, year, unit dimension,
   boundary, releases) the nearest reference year that has a factor, found by walking the
   (activity_id, region, reference_year) index backwards (`ORDER BY … DESC LIMIT 1`), and
   the factors of that year grouped by release and unit (the lowest id and the count of
   each: a row per release and unit however many factors match, so that a line with 10^6
   candidates costs their count, not their transfer, and memory does not grow with them);
   plus, when a unit is given, the nearest factor in any unit, to explain an incompatible
   unit;
4. the full records of the chosen factors.

The lines travel as one JSON parameter (a table there: `jsonb_to_recordset` on PostgreSQL,
`json_each` on SQLite), so the statement is the same for 1 line or 1000, and no query
touches more than the few factors nearest to each line: visiting every candidate (every
year, dataset and boundary of every region of every chain: ~40 per line on 100,000
factors) and ranking them with window functions took over a second per 1000 lines.

Ranking, per line (first difference wins), among factors of the line's activity, in a
region of its chain, with a reference year no later than the line's year, in a release the
caller may see (and of the requested boundary and unit dimension, when given):

1. region: the nearest in the fallback chain (the region itself, then its parents, e.g.
   CN-GD → CN → GLO, as the `location` table says);
2. year: the nearest reference year not after the requested one;
3. dataset priority (`dataset.priority`, lower first, unset last): national reference
   datasets first;
4. the newest published release;
5. a factor per exactly the requested unit (no conversion needed);
6. the lowest factor id (deterministic).

A factor whose unit has another dimension than the requested unit never answers (kg cannot
become kWh without a conversion property); the match says when a nearer one was passed over.

A deprecated dataset (one whose `superseded_by` names its successor, or that was simply
retired) answers only when no other dataset the line may draw on has a factor anywhere in
its region chain: its successor's factors, and every current dataset's, rank first. The
match's `deprecated` says when one was passed over, or used for lack of anything else.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session, aliased
from sqlalchemy.types import TypeEngine

from app.core.errors import ProblemError
from app.core.principal import Viewer
from app.core.problem_text import Message
from app.core.suggest import did_you_mean, suggestion_message
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.datasets.visibility import AsOf, parse_semver, visible_version_ids
from app.factors.models import Factor
from app.factors.resolve_index import Candidate as _Candidate
from app.factors.resolve_index import (
    Probe,
    ResolveIndex,
    release_affixes,
    units_wanted,
)
from app.factors.schemas import BOUNDARIES, MAX_YEAR, MIN_YEAR, REGION_PATTERN, ResolveItem
from app.factors.service import factor_payloads, factor_select
from app.reference.gwp import GwpTable, apply_gwp, gwp_table_for
from app.reference.locations import RegionChain, region_chains
from app.reference.models import Location
from app.reference.schemas import ACTIVITY_ID_PATTERN
from app.reference.units import (
    ACCEPTED_UNITS,
    AmountUnit,
    UnitError,
    clean_float,
    conversion_multiplier,
    not_finite_detail,
    parse_amount_unit,
    units_of_dimension,
)

RANKING = [
    "unit: only factors per a unit of the requested unit's dimension answer (when one is given; "
    "estimates also accept a dimension a cited conversion property of the activity leads to)",
    "deprecated: a deprecated dataset answers only when no other dataset has a factor for the "
    "line anywhere in its region chain (its successor's factors, and every other's, first)",
    "region: nearest in the fallback chain (the region, the groupings it belongs to such as a "
    "regional grid, then its parents up to GLO, as the location table says)",
    "year: nearest reference year not after the requested year",
    "dataset_priority: lower first (national reference datasets first), unset last",
    "newest_published: the most recently published release",
    "exact_unit: per exactly the requested unit",
    "factor_id: lowest, for a deterministic answer",
]

_ACTIVITY = re.compile(ACTIVITY_ID_PATTERN)
_REGION = re.compile(REGION_PATTERN)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

# Visibility classes of the lines: 0 = current releases, 1 = any release (a pinned version),
# 2… = the releases current at one `as_of` moment each (the end of a date, or an instant).
_CURRENT, _RELEASED = 0, 1

# Statements built once per shape and dialect: building a Core statement of this size (and
# its cache key) costs more than running it for one line. They hold no data, only SQL.
_STATEMENTS: dict[tuple[str, ...], Any] = {}


def _statement(key: tuple[str, ...], build: Callable[[], Any]) -> Any:
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = build()
    return statement


@dataclass(frozen=True)
class LineError:
    code: str
    detail: str
    loc: tuple[str, ...] = ()
    # Known values close to the refused one, from the reference tables ("did you mean").
    suggestions: tuple[str, ...] = ()
    # The value refused, where suggestions may be looked up for it later.
    refused: str | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "detail": self.detail}
        if self.loc:
            body["loc"] = list(self.loc)
        if self.suggestions:
            body["suggestions"] = list(self.suggestions)
        return body

    def suggesting(self, suggestions: Sequence[str]) -> LineError:
        """The same error naming the known values it may have meant, in detail too."""
        if not suggestions:
            return self
        return replace(
            self,
            detail=suggestion_message(self.detail, suggestions),
            suggestions=tuple(suggestions),
        )


def unit_error(exc: UnitError, text: str) -> LineError:
    """An amount's or requested unit that was refused, with the known units it may have meant
    (the units factors are declared in, GET /v1/units)."""
    error = LineError(exc.code, exc.detail, ("unit",))
    if exc.code != "unknown_unit":
        return error
    return error.suggesting(did_you_mean(text, ACCEPTED_UNITS))


def suggest_regions(session: Session, answers: list[Any]) -> list[Any]:
    """Region codes that are not codes (`cn`) get the location table's closest codes (`CN`).

    One query, only when a line has such an error."""
    if not any(
        isinstance(answer, LineError) and answer.code == "invalid_region" for answer in answers
    ):
        return answers
    codes = list(session.scalars(select(Location.code)))
    return [
        answer.suggesting(did_you_mean(answer.refused or "", codes))
        if isinstance(answer, LineError) and answer.code == "invalid_region"
        else answer
        for answer in answers
    ]


class LineProblem(ProblemError):
    """A single-line request (`POST /v1/estimate`) that failed the way a batch line would."""

    def __init__(self, error: LineError, status: int) -> None:
        super().__init__(
            error.detail,
            errors=[error.as_dict()],
            extra={"suggestions": list(error.suggestions)} if error.suggestions else None,
        )
        self.status = status
        self.code = error.code.replace("_", "-")
        self.title = {404: "No matching factor", 422: "Cannot answer"}.get(status, "Bad request")


@dataclass(slots=True)
class Line:
    """A line that passed its checks, ready for the database (not changed once made; not
    frozen, which would make each of a call's 1000 lines cost twice as much to make)."""

    index: int
    activity_id: str
    region: str
    year: int
    unit: AmountUnit | None = None
    publisher: str | None = None
    dataset: str | None = None
    version: str | None = None
    as_of: AsOf | None = None
    boundary: str | None = None
    # Other unit dimensions a factor may be per: those a cited conversion property of the
    # activity links to the amount's (estimates only: t of coal against a per-TJ factor).
    convertible: tuple[str, ...] = ()

    @property
    def dimensions(self) -> tuple[str, ...] | None:
        if self.unit is None:
            return None
        if not self.convertible:
            return (self.unit.dimension,)
        return (self.unit.dimension, *sorted(set(self.convertible) - {self.unit.dimension}))


class Resolved:
    """The chosen factor (payload, GWP applied) and how it was chosen.

    `match_json`: the match as JSON (made from parts shared by the call's lines, not as a
    dict: the answer sends those bytes as they are); `match` is read from them when
    something asks for it (an estimate, the tests). `fragment`: the factor's record as JSON,
    when it came from the index (app/factors/resolve_index.py), likewise sent as it is, and
    `factor` read from it only when asked for (an estimate, metering).
    `per_requested_unit`: the match's `unit.co2e_per_requested_unit`."""

    __slots__ = (
        "_factor",
        "_match",
        "fragment",
        "match_json",
        "multiplier",
        "per_requested_unit",
    )

    def __init__(
        self,
        factor: dict[str, Any] | None,
        match_json: bytes,
        multiplier: float | None = None,
        fragment: bytes | None = None,
        per_requested_unit: float | None = None,
    ) -> None:
        self._factor = factor
        self._match: dict[str, Any] | None = None
        self.match_json = match_json
        self.multiplier = multiplier
        self.fragment = fragment
        self.per_requested_unit = per_requested_unit

    @property
    def factor(self) -> dict[str, Any]:
        if self._factor is None:
            assert self.fragment is not None
            self._factor = orjson.loads(self.fragment)
        return self._factor

    @property
    def match(self) -> dict[str, Any]:
        if self._match is None:
            self._match = orjson.loads(self.match_json)
        return self._match


@dataclass(frozen=True)
class _Release:
    """A release a line may draw on, with what ranks it."""

    version_id: int
    publisher: str
    dataset: str
    version: str
    priority: int | None
    published_at: datetime | None
    public: bool
    deprecated: bool = False
    superseded_by: str | None = None
    dataset_id: int = 0
    # The record's fields this release and its dataset decide (resolve_index.RELEASE_FIELDS).
    record_state: tuple[Any, ...] = ()

    def preference(self) -> tuple[int, int, int, float]:
        """Deprecated datasets last, then dataset priority (unset last), then the newest
        published first."""
        published = self.published_at.timestamp() if self.published_at else 0.0
        unset = self.priority is None
        return (int(self.deprecated), int(unset), self.priority or 0, -published)


def check_activity(activity_id: str) -> LineError | None:
    if _ACTIVITY.match(activity_id):
        return None
    return LineError(
        "invalid_activity_id",
        Message("resolve.invalid_activity_id", activity_id=activity_id),
        ("activity_id",),
    )


def check_line(index: int, item: ResolveItem) -> Line | LineError:
    """Per-line value checks: a bad line becomes an error in its place, not a failed batch."""
    problem = check_activity(item.activity_id)
    if problem is not None:
        return problem
    return check_line_values(
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


def check_line_values(
    index: int,
    *,
    activity_id: str,
    region: str,
    year: int,
    unit: str | None,
    publisher: str | None,
    dataset: str | None,
    version: str | None,
    as_of: AsOf | None,
    boundary: str | None,
) -> Line | LineError:
    if not _REGION.match(region):
        return LineError(
            "invalid_region",
            Message("resolve.invalid_region", region=region),
            ("region",),
            refused=region,
        )
    if not MIN_YEAR <= year <= MAX_YEAR:
        return LineError(
            "invalid_year", Message("resolve.invalid_year", low=MIN_YEAR, high=MAX_YEAR), ("year",)
        )
    parsed_unit: AmountUnit | None = None
    if unit is not None:
        try:
            parsed_unit = parse_amount_unit(unit)
        except UnitError as exc:
            return unit_error(exc, unit)
    if dataset is not None and "/" in dataset:
        owner, dataset = dataset.split("/", 1)
        if publisher is not None and publisher != owner:
            return LineError(
                "conflict",
                Message("resolve.publisher_conflict", owner=owner, publisher=publisher),
                ("publisher",),
            )
        publisher = owner
    for name, slug in (("publisher", publisher), ("dataset", dataset)):
        if slug is not None and not _SLUG.match(slug):
            return LineError(
                f"invalid_{name}", Message("resolve.invalid_slug", slug=slug, name=name), (name,)
            )
    if version is not None:
        if dataset is None or publisher is None:
            return LineError(
                "version_needs_dataset",
                Message("resolve.version_needs_dataset"),
                ("version",),
            )
        if as_of is not None:
            return LineError("exclusive", Message("resolve.version_or_as_of"), ("as_of",))
        try:
            parse_semver(version)
        except ProblemError as exc:
            return LineError("invalid_version", exc.detail, ("version",))
    if boundary is not None and boundary not in BOUNDARIES:
        return LineError(
            "invalid_boundary",
            Message("resolve.invalid_boundary", boundaries=", ".join(BOUNDARIES)),
            ("boundary",),
        )
    # By position: 1000 lines a call, and keywords cost as much again.
    return Line(
        index, activity_id, region, year, parsed_unit, publisher, dataset, version, as_of, boundary
    )


# --------------------------------------------------------------------------- the queries


def _json_table(
    dialect: str, name: str, columns: Sequence[tuple[str, TypeEngine[Any]]]
) -> FromClause:
    """A table of rows given as one JSON array parameter named `name` (same SQL for any size)."""
    parameter = bindparam(name, type_=Text)
    if dialect == "postgresql":
        return (
            select(
                func.jsonb_to_recordset(cast(parameter, JSONB))
                .table_valued(*(column(key, type_) for key, type_ in columns))
                .render_derived(name=f"{name}_rows", with_types=True)
            )
            .cte(name)
            .prefix_with("MATERIALIZED")
        )
    rows = func.json_each(parameter).table_valued("value", name=f"{name}_json")
    return (
        select(
            *(
                type_coerce(func.json_extract(rows.c.value, f"$.{key}"), type_).label(key)
                for key, type_ in columns
            )
        )
        .select_from(rows)
        # Materialized: json_extract would otherwise re-parse a row for every use of it.
        .cte(name)
        .prefix_with("MATERIALIZED")
    )


# One row per distinct probe: many lines share their country's and GLO's probes.
_PROBE_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("n", Integer()),  # probe number
    ("a", Text()),  # activity_id
    ("r", Text()),  # region
    ("y", Integer()),  # latest reference year wanted
    ("us", Text()),  # declared units of the wanted dimension, or null (see _units_filter)
    ("b", Text()),  # boundary wanted, or null
    ("g", Integer()),  # group of releases allowed
]


def _units_filter(dialect: str, table: FromClause) -> ColumnElement[bool]:
    """The factor's unit is one of the wanted units (any unit when none are wanted)."""
    if dialect == "postgresql":
        return or_(table.c.us.is_(None), Factor.unit == func.any(table.c.us))
    # SQLite has no arrays: the units travel as ",kWh,MWh,…," and are looked up with instr.
    return or_(table.c.us.is_(None), func.instr(table.c.us, "," + Factor.unit + ",") > 0)


@lru_cache(maxsize=64)
def _units_value(dialect: str, dimensions: tuple[str, ...] | None) -> tuple[str, ...] | str | None:
    if dimensions is None:
        return None
    units = tuple(unit for dimension in dimensions for unit in units_of_dimension(dimension))
    return units if dialect == "postgresql" else "," + ",".join(units) + ","


def _visible(as_of_dates: Sequence[AsOf]) -> FromClause:
    """(class, version id) pairs: current releases, every release, each as_of's releases."""
    current = visible_version_ids().subquery()
    parts = [
        select(literal(_CURRENT, Integer).label("c"), current.c.id.label("id")),
    ]
    for offset, day in enumerate(as_of_dates):
        dated = visible_version_ids(as_of=day).subquery()
        parts.append(select(literal(_RELEASED + 1 + offset, Integer).label("c"), dated.c.id))
    return union_all(*parts).subquery("visible")


_Successor = aliased(Dataset, name="successor")
_SuccessorPublisher = aliased(Publisher, name="successor_publisher")
_RELEASE_COLUMNS = (
    DatasetVersion.id,
    Publisher.slug,
    Dataset.slug,
    DatasetVersion.version,
    Dataset.priority,
    DatasetVersion.published_at,
    Dataset.access,
    Dataset.status,
    _SuccessorPublisher.slug,
    _Successor.slug,
    Dataset.id,
    DatasetVersion.status,
    DatasetVersion.withdrawn_at,
    DatasetVersion.withdrawn_reason,
    Dataset.license_id,
    Dataset.license_url,
    Dataset.attribution,
)


def _with_successor(query: Any) -> Any:
    return query.outerjoin(_Successor, _Successor.id == Dataset.superseded_by_id).outerjoin(
        _SuccessorPublisher, _SuccessorPublisher.id == _Successor.publisher_id
    )


def _releases_statement(as_of_dates: Sequence[AsOf], pins: Sequence[tuple[Any, ...]]) -> Any:
    visible = _visible(as_of_dates)
    parts = [
        _with_successor(
            select(visible.c.c.label("c"), *_RELEASE_COLUMNS)
            .select_from(visible)
            .join(DatasetVersion, DatasetVersion.id == visible.c.id)
            .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
            .join(Publisher, Publisher.id == Dataset.publisher_id)
        )
    ]
    if pins:
        parts.append(
            _with_successor(
                select(literal(_RELEASED, Integer).label("c"), *_RELEASE_COLUMNS)
                .select_from(DatasetVersion)
                .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
                .join(Publisher, Publisher.id == Dataset.publisher_id)
            ).where(
                DatasetVersion.status.in_(RELEASED_STATUSES),
                tuple_(Publisher.slug, Dataset.slug, DatasetVersion.version).in_(pins),
            )
        )
    return union_all(*parts) if len(parts) > 1 else parts[0]


def _releases(
    session: Session, *, lines: Sequence[Line], as_of_dates: Sequence[AsOf]
) -> dict[int, list[_Release]]:
    """The releases of each visibility class (query 2), pinned ones only if a line pins one.

    Read with every call, index or not: this is the state of the releases and datasets a
    call answers with (which may answer, their ranking, their records' release fields)."""
    pins = sorted({(line.publisher, line.dataset, line.version) for line in lines if line.version})
    return _read_releases(session, as_of_dates=as_of_dates, pins=pins)


def _read_releases(
    session: Session, *, as_of_dates: Sequence[AsOf], pins: Sequence[tuple[Any, ...]]
) -> dict[int, list[_Release]]:
    statement = (
        _statement(("releases",), lambda: _releases_statement((), ()))
        if not as_of_dates and not pins
        else _releases_statement(as_of_dates, pins)
    )
    found: dict[int, list[_Release]] = {}
    for row in session.connection().execute(statement):
        superseded_by = f"{row[9]}/{row[10]}" if row[10] is not None else None
        found.setdefault(row[0], []).append(
            _Release(
                version_id=row[1],
                publisher=row[2],
                dataset=row[3],
                version=row[4],
                priority=row[5],
                published_at=row[6],
                public=row[7] == "public",
                deprecated=row[8] == "deprecated",
                superseded_by=superseded_by,
                dataset_id=row[11],
                # In the order of resolve_index.RELEASE_FIELDS.
                record_state=(
                    row[2],
                    row[3],
                    row[4],
                    row[12],
                    row[13],
                    row[14],
                    row[8],
                    superseded_by,
                    row[15],
                    row[16],
                    row[17],
                ),
            )
        )
    return found


def _allowed(line: Line, releases: Sequence[_Release], viewer: Viewer) -> tuple[int, ...]:
    return tuple(
        sorted(
            release.version_id
            for release in releases
            if (
                release.public
                or viewer.may_read(
                    access="registered", publisher=release.publisher, dataset_id=release.dataset_id
                )
            )
            and (line.publisher is None or release.publisher == line.publisher)
            and (line.dataset is None or release.dataset == line.dataset)
            and (line.version is None or release.version == line.version)
        )
    )


def _version_filter(dialect: str, groups: FromClause) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return Factor.version_id == func.any(groups.c.vs)
    versions = func.json_each(groups.c.vs).table_valued("value", name="allowed_version")
    return Factor.version_id.in_(select(versions.c.value).scalar_subquery())


def _dumps(value: object) -> str:
    # orjson: the probes of 1000 lines are ~5,000 rows, which the json module takes ~10 ms on.
    return orjson.dumps(value).decode()


def _records_statement(dialect: str) -> Any:
    """The chosen factors' records, their ids as one parameter: an expanding `IN` list would
    make a new SQL text for every count of ids (rewritten, then parsed by the driver and the
    database at every call)."""
    if dialect == "postgresql":
        ids: ColumnElement[bool] = Factor.id == func.any(bindparam("ids", type_=ARRAY(Integer())))
    else:
        values = func.json_each(bindparam("ids", type_=Text)).table_valued("value")
        ids = Factor.id.in_(select(values.c.value).scalar_subquery())
    return factor_select().where(ids)


def _records(session: Session, dialect: str, wanted: list[int]) -> dict[int, dict[str, Any]]:
    """Query 4: the payloads of the chosen factors, by id."""
    result = session.connection().execute(
        _statement(("records", dialect), lambda: _records_statement(dialect)),
        {"ids": wanted if dialect == "postgresql" else _dumps(wanted)},
    )
    return factor_payloads(result)


def _probe_statement(dialect: str) -> Any:
    postgresql = dialect == "postgresql"
    lines = _json_table(
        dialect,
        "resolve_probes",
        [
            (name, ARRAY(Text()) if name == "us" and postgresql else type_)
            for name, type_ in _PROBE_COLUMNS
        ],
    )
    group_table = _json_table(
        dialect,
        "resolve_groups",
        [("g", Integer()), ("vs", ARRAY(Integer()) if postgresql else Text())],
    )
    wanted = and_(
        Factor.activity_id == lines.c.a,
        Factor.region == lines.c.r,
        or_(lines.c.b.is_(None), Factor.boundary == lines.c.b),
        _version_filter(dialect, group_table),
    )
    nearest_year = (
        select(Factor.reference_year)
        .where(wanted, _units_filter(dialect, lines), Factor.reference_year <= lines.c.y)
        .order_by(Factor.reference_year.desc())
        .limit(1)
        .scalar_subquery()
    )
    years = (
        select(lines, group_table.c.vs, nearest_year.label("top_year"))
        .select_from(lines)
        .join(group_table, group_table.c.g == lines.c.g)
        .cte("resolve_years")
        .prefix_with("MATERIALIZED")
    )
    # Only where a unit is wanted and none of its dimension is here: the nearest factor in
    # any unit, to say why this region was passed over (or why the line has no answer).
    nearest_any = (
        select(Factor.id)
        .where(
            Factor.activity_id == years.c.a,
            Factor.region == years.c.r,
            or_(years.c.b.is_(None), Factor.boundary == years.c.b),
            _version_filter(dialect, years),
            Factor.reference_year <= years.c.y,
        )
        .order_by(Factor.reference_year.desc(), Factor.id)
        .limit(1)
        .scalar_subquery()
    )
    tops = (
        select(
            years,
            case(
                (or_(years.c.us.is_(None), years.c.top_year.is_not(None)), None),
                else_=nearest_any,
            ).label("any_id"),
        )
        .cte("resolve_tops")
        .prefix_with("MATERIALIZED")
    )
    any_factor = aliased(Factor, name="any_factor")
    found = and_(
        Factor.activity_id == tops.c.a,
        Factor.region == tops.c.r,
        Factor.reference_year == tops.c.top_year,
        or_(tops.c.b.is_(None), Factor.boundary == tops.c.b),
        _units_filter(dialect, tops),
        _version_filter(dialect, tops),
    )
    # One row per probe, release and unit: the lowest factor id and the count. The ranking
    # needs no more (the best of a release and unit is its lowest id; `alternatives` is the
    # count), so the answer is a few rows per probe however many factors match.
    # ix_factor_resolve (activity_id, region, reference_year, version_id, unit, …) hands a probe's
    # factors over in release and unit order, from the index alone: no sort, no table reads.
    if not postgresql:
        # SQLite: the grouping in the outer query itself, one pass of the index per probe.
        # As a subquery joined on the probe number, it was scanned whole for every probe
        # (no index on it): ~3,000 × 3,000 rows for 1000 lines, most of the call's time.
        return (
            select(
                tops.c.n,
                func.min(Factor.id).label("factor_id"),
                tops.c.top_year,
                Factor.unit,
                Factor.version_id,
                func.count(Factor.id).label("matches"),
                any_factor.reference_year,
                any_factor.unit,
            )
            .select_from(tops)
            .outerjoin(Factor, found)
            .outerjoin(any_factor, any_factor.id == tops.c.any_id)
            .where(or_(tops.c.top_year.is_not(None), tops.c.any_id.is_not(None)))
            .group_by(
                tops.c.n,
                Factor.version_id,
                Factor.unit,
                tops.c.top_year,
                any_factor.reference_year,
                any_factor.unit,
            )
        )
    # PostgreSQL: per probe (LATERAL), so that each group is a run of the index: no sort.
    grouped = (
        select(
            func.min(Factor.id).label("factor_id"),
            Factor.unit.label("unit"),
            Factor.version_id.label("version_id"),
            func.count().label("matches"),
        )
        .where(found)
        .group_by(Factor.version_id, Factor.unit)
        .lateral("resolve_found")
    )
    query = (
        select(
            tops.c.n,
            grouped.c.factor_id,
            tops.c.top_year,
            grouped.c.unit,
            grouped.c.version_id,
            grouped.c.matches,
            any_factor.reference_year,
            any_factor.unit,
        )
        .select_from(tops)
        .outerjoin(grouped, true())
        .outerjoin(any_factor, any_factor.id == tops.c.any_id)
        .where(or_(tops.c.top_year.is_not(None), tops.c.any_id.is_not(None)))
    )
    return query


def _probe(
    session: Session, probes: Sequence[dict[str, Any]], groups: Sequence[tuple[int, ...]]
) -> dict[int, Probe]:
    """Query 3: for every probe, the factors of its nearest year (and the nearest in any unit)."""
    dialect = session.get_bind().dialect.name
    postgresql = dialect == "postgresql"
    # Core execution on the session's connection: the ORM result layer costs more than the
    # query for a few thousand rows.
    result = session.connection().execute(
        _statement(("probe", dialect), lambda: _probe_statement(dialect)),
        {
            "resolve_probes": _dumps(probes),
            "resolve_groups": _dumps(
                [
                    {"g": number, "vs": list(group) if postgresql else _dumps(list(group))}
                    for number, group in enumerate(groups)
                ]
            ),
        },
    )
    # Plain tuples from the driver: every column is an int or a str already, and building
    # SQLAlchemy rows for a few thousand of them is most of this function's time.
    with result:
        rows = result.cursor.fetchall() if result.cursor is not None else []
    candidates: dict[int, list[_Candidate]] = {}
    nearest: dict[int, tuple[int, str]] = {}
    for number, factor_id, year, unit, version_id, count, any_year, any_unit in rows:
        found = candidates.setdefault(number, [])
        if any_year is not None:
            nearest[number] = (any_year, any_unit)
        if factor_id is not None:
            found.append(_Candidate(factor_id, year, unit, version_id, count))
    return {number: Probe(found, nearest.get(number)) for number, found in candidates.items()}


def _database_plan(
    session: Session,
    lines: Sequence[Line],
    line_tiers: dict[int, list[int]],
    groups: list[tuple[int, ...]],
    chains: dict[str, RegionChain],
) -> list[list[list[Probe | None]]]:
    """Every line's probes (in `lines`' order), by the probe query (each distinct probe once)."""
    probes: dict[tuple[Any, ...], int] = {}
    numbers: dict[int, list[list[int]]] = {}
    for line in lines:
        activity, year, dimensions, boundary = (
            line.activity_id,
            line.year,
            line.dimensions,
            line.boundary,
        )
        codes = chains[line.region].codes
        numbers[line.index] = [
            [
                probes.setdefault((activity, code, year, dimensions, boundary, group), len(probes))
                for code in codes
            ]
            for group in line_tiers[line.index]
        ]
    dialect = session.get_bind().dialect.name
    probe_rows = [
        {"n": number, "a": a, "r": r, "y": y, "us": _units_value(dialect, d), "b": b, "g": g}
        for (a, r, y, d, b, g), number in probes.items()
    ]
    found = _probe(session, probe_rows, groups) if probe_rows else {}
    return [
        [[found.get(number) for number in tier] for tier in numbers[line.index]] for line in lines
    ]


def _index_plan(
    index: ResolveIndex,
    held: dict[int, Any],
    lines: Sequence[Line],
    line_tiers: dict[int, list[int]],
    groups: list[tuple[int, ...]],
    chains: dict[str, RegionChain],
) -> list[list[list[Probe | None]]]:
    """Every line's probes (in `lines`' order), answered from the worker's index as the probe
    query answers them: for each region of its chain, one bisection of the cell's years (a
    cell holds what a probe finds for each place a year bound may fall;
    app/factors/resolve_index.py)."""
    cells = [index.cells(tuple(held[version_id] for version_id in group)) for group in groups]
    plan: list[list[list[Probe | None]]] = []
    for line in lines:
        activity, boundary, bound = line.activity_id, line.boundary, -line.year
        units, dimensions = units_wanted(line.dimensions)
        codes = chains[line.region].codes
        tiers: list[list[Probe | None]] = []
        for group in line_tiers[line.index]:
            along = cells[group].along(activity, codes, boundary)
            if units is None:
                tiers.append([cell.every[bisect_left(cell.years, bound)] for cell in along])
            else:
                tiers.append(
                    [cell.view(units, dimensions)[bisect_left(cell.years, bound)] for cell in along]
                )
        plan.append(tiers)
    return plan


# --------------------------------------------------------------------------- resolving


def _visibility_class(line: Line, as_of_class: dict[AsOf, int]) -> int:
    if line.version is not None:
        return _RELEASED
    if line.as_of is not None:
        return as_of_class[line.as_of]
    return _CURRENT


def _decided_by(
    ranked: Sequence[_Candidate], releases: dict[int, _Release], requested: str | None
) -> str:
    """What set the chosen factor above the runner-up of its region and year."""
    if ranked[0].matches > 1:
        # The runner-up ties with it on everything but the id: another factor of the same
        # release and unit, or (as good) one of another unit that is no nearer the request.
        return "factor_id"
    if len(ranked) < 2:
        return "only_candidate"
    first, second = releases[ranked[0].version_id], releases[ranked[1].version_id]
    if (first.priority is None, first.priority) != (second.priority is None, second.priority):
        return "dataset_priority"
    if first.published_at != second.published_at:
        return "newest_published"
    # Only a factor per exactly the requested unit wins by its unit (two other units of the
    # same dimension tie: the id decides).
    if (ranked[0].unit == requested) != (ranked[1].unit == requested):
        return "exact_unit"
    return "factor_id"


def resolve_lines(
    session: Session,
    *,
    viewer: Viewer,
    lines: Sequence[Line],
    gwp: str | None,
    gwp_table: GwpTable | None = None,
    index: ResolveIndex | None = None,
) -> dict[int, Resolved | LineError]:
    """Resolve checked lines in four queries (five with `gwp`: the GWP100 table); the answer
    for every line index given.

    With `index` (the worker's, app/factors/resolve_index.py) the probes and the records come
    from it: a call then reads the region chains and the releases' state, nothing else (and
    the GWP100 table with `gwp`)."""
    if not lines:
        return {}
    if gwp_table is None:
        gwp_table = gwp_table_for(session, gwp)
    chains = region_chains(session, {line.region for line in lines})
    as_of_dates = sorted({line.as_of for line in lines if line.as_of is not None})
    as_of_class = {day: _RELEASED + 1 + n for n, day in enumerate(as_of_dates)}
    releases = _releases(session, lines=lines, as_of_dates=as_of_dates)
    by_version = {release.version_id: release for group in releases.values() for release in group}
    preference = {version_id: release.preference() for version_id, release in by_version.items()}

    groups: dict[tuple[int, ...], int] = {}
    # Per line, one or two tiers of releases (group numbers): the datasets that are not
    # deprecated first, then (only when the line may draw on a deprecated one) all of them.
    line_tiers: dict[int, list[int]] = {}
    # (visibility, publisher, dataset, version) → the numbers of its tiers' groups
    tiers_for: dict[tuple[Any, ...], list[int]] = {}
    for line in lines:
        visibility = _visibility_class(line, as_of_class)
        key = (visibility, line.publisher, line.dataset, line.version)
        tiers = tiers_for.get(key)
        if tiers is None:
            allowed = _allowed(line, releases.get(visibility, []), viewer)
            current = tuple(v for v in allowed if not by_version[v].deprecated)
            tiers = [
                groups.setdefault(tier, len(groups))
                for tier in dict.fromkeys((current, allowed))
                if tier
            ]
            tiers_for[key] = tiers
        line_tiers[line.index] = tiers
    dialect = session.get_bind().dialect.name
    held = None
    if index is not None:
        held = index.releases(
            session,
            {
                (version_id, by_version[version_id].published_at)
                for group in groups
                for version_id in group
            },
        )
    # Per line (in `lines`' order) and tier, what each probe along its region chain found
    # (None: nothing).
    plans: list[list[list[Probe | None]]]
    if held is not None:
        assert index is not None
        plans = _index_plan(index, held, lines, line_tiers, list(groups), chains)
    else:
        plans = _database_plan(session, lines, line_tiers, list(groups), chains)

    # A probe's candidates ranked once per call for each requested unit (lines that fall
    # back to the same region and year share them); the candidates are kept with their
    # ranking, so that their id stays theirs for the call.
    rankings: dict[tuple[int, str | None, bool], tuple[Sequence[_Candidate], list[_Candidate]]]
    rankings = {}

    def best(
        tier: list[Probe | None], requested: str | None, *, demote: bool = True
    ) -> tuple[int, Sequence[_Candidate]] | None:
        """The nearest region's candidates of `tier`, best first (`demote=False`: as if no
        dataset were deprecated)."""
        for depth, probe in enumerate(tier):
            if probe is not None and probe.candidates:
                candidates = probe.candidates
                if len(candidates) == 1:
                    return depth, candidates
                key = (id(candidates), requested, demote)
                kept = rankings.get(key)
                if kept is None:
                    skip = 0 if demote else 1
                    kept = rankings[key] = (
                        candidates,
                        sorted(
                            candidates,
                            key=lambda c: (
                                preference[c.version_id][skip:],
                                c.unit != requested,
                                c.factor_id,
                            ),
                        ),
                    )
                return depth, kept[1]
        return None

    picks: list[tuple[int, Sequence[_Candidate]] | None] = []
    # Per line, the deprecated release that was passed over or used, and which.
    deprecation: dict[int, dict[str, Any]] = {}
    for line, line_plan in zip(lines, plans, strict=True):
        requested = line.unit.canonical if line.unit else None
        pick = None
        for tier in line_plan:
            pick = best(tier, requested)
            if pick is not None:
                break
        picks.append(pick)
        if pick is None:
            continue
        used = by_version[pick[1][0].version_id]
        if used.deprecated:
            deprecation[line.index] = _deprecation("used", used, pick)
        elif len(line_plan) == 2:
            # What the line would have drawn on had no dataset been deprecated.
            undemoted = best(line_plan[1], requested, demote=False)
            rival = by_version[undemoted[1][0].version_id] if undemoted else None
            if undemoted is not None and rival is not None and rival.deprecated:
                deprecation[line.index] = _deprecation("passed_over", rival, undemoted)

    records: dict[int, dict[str, Any]] = {}
    if held is None:
        wanted = sorted({pick[1][0].factor_id for pick in picks if pick is not None})
        if wanted:
            records = _records(session, dialect, wanted)
    # From the index: each chosen factor's record as its release's state says now
    # (resolve_index.release_affixes: made once per release and call).
    fragments: dict[int, bytes] = {}
    affixes: dict[int, tuple[bytes, bytes]] = {}
    parts = _MatchParts()

    answers: dict[int, Resolved | LineError] = {}
    for line, line_plan, pick in zip(lines, plans, picks, strict=True):
        chain = chains[line.region]
        nearest_any: list[tuple[int, tuple[int, str]]] = []
        # Only a probe for a unit says what it found in other units.
        if line_plan and line.unit:
            for depth, probe in enumerate(line_plan[-1]):
                if probe is not None and probe.nearest_any is not None:
                    nearest_any.append((depth, probe.nearest_any))
        if pick is None:
            answers[line.index] = (
                _incompatible(line, chain, nearest_any[0])
                if nearest_any
                else _no_match(line, chain)
            )
            continue
        depth, ranked = pick
        top = ranked[0]
        factor: dict[str, Any] | None = None
        fragment: bytes | None = None
        if held is not None:
            fragment = fragments.get(top.factor_id)
            if fragment is None:
                around = affixes.get(top.version_id)
                if around is None:
                    around = affixes[top.version_id] = release_affixes(
                        by_version[top.version_id].record_state
                    )
                fragment = fragments[top.factor_id] = held[top.version_id].record(
                    top.factor_id, around
                )
            # What the match reads of the record, from the index.
            unit, year = top.unit, top.reference_year
            co2e = held[top.version_id].records[top.factor_id][2]
        else:
            factor = records[top.factor_id]
            unit, co2e, year = factor["unit"], factor["co2e"], factor["reference_year"]
        if gwp is not None:
            # Lines sharing a factor share its record, unless a GWP set rewrites it (no
            # answer changes a record after this).
            record = factor if fragment is None else orjson.loads(fragment)
            assert record is not None
            factor = apply_gwp(dict(record), gwp, gwp_table)
            fragment = None
            unit, co2e = factor["unit"], factor["co2e"]
        passed_over = None
        other_units: tuple[int, ...] = ()
        if nearest_any:
            passed_over = next(
                (
                    {"region": chain.codes[d], "year": any_year, "unit": any_unit}
                    for d, (any_year, any_unit) in nearest_any
                    if d < depth or (d == depth and any_year > year)
                ),
                None,
            )
            other_units = tuple(d for d, _ in nearest_any if d < depth)
        release = by_version[top.version_id]
        requested_unit = line.unit
        multiplier: float | None = None
        per_unit: float | None = None
        if requested_unit is None:
            unit_json = parts.any_unit(unit)
        else:
            head, multiplier = parts.unit(requested_unit, unit)
            if multiplier is not None:
                per_unit = clean_float(co2e * multiplier)
            unit_json = b"".join(
                (
                    head,
                    _dumps_bytes(per_unit),
                    b',"passed_over":',
                    _dumps_bytes(passed_over),
                    b"}",
                )
            )
        requested_year = line.year
        deprecated = deprecation.get(line.index)
        match_json = _MATCH % (
            b"exact" if depth == 0 and year == requested_year else b"fallback",
            parts.walk(line.region, chain, depth, other_units),
            year,
            requested_year,
            b"true" if year != requested_year else b"false",
            requested_year - year,
            parts.release(release),
            (top.matches if len(ranked) == 1 else sum(c.matches for c in ranked)) - 1,
            _decided_by(ranked, by_version, line.unit.canonical if line.unit else None).encode(),
            b"null" if deprecated is None else _dumps_bytes(deprecated),
            unit_json,
        )
        # From the index (without a GWP set) `factor` is None: the record is the fragment.
        answers[line.index] = Resolved(factor, match_json, multiplier, fragment, per_unit)
    return answers


# A match as JSON, key by key as `Resolved.match` reads: type, the region walk
# (`_MatchParts.walk`), the years, the dataset (`_MatchParts.release`), alternatives,
# decided_by, deprecated, unit.
_MATCH = (
    b'{"type":"%s"%s,"year":%d,"requested_year":%d,"year_fallback":%s,"year_distance":%d'
    b'%s%d,"decided_by":"%s","deprecated":%s,"unit":%s}'
)
_dumps_bytes = orjson.dumps


class _MatchParts:
    """The parts of a call's matches that many lines share, as JSON, made once per call:
    the region walks, the releases' dataset and priority, the unit conversions."""

    def __init__(self) -> None:
        self._walks: dict[tuple[str, int, tuple[int, ...]], bytes] = {}
        self._releases: dict[int, bytes] = {}
        self._units: dict[tuple[AmountUnit, str], tuple[bytes, float | None]] = {}
        self._any_units: dict[str, bytes] = {}

    def walk(
        self, region: str, chain: RegionChain, depth: int, other_units: tuple[int, ...]
    ) -> bytes:
        """From `region` to `requested_region`, `region_known` and `region_steps`: the
        walk up the chain to `depth`, past the regions with factors in other units only
        (`other_units`, depths nearest first)."""
        key = (region, depth, other_units)
        made = self._walks.get(key)
        if made is None:
            body = orjson.dumps(
                {
                    "region": chain.codes[depth],
                    "requested_region": region,
                    "region_fallback": depth > 0,
                    "region_distance": depth,
                    "region_chain": list(chain.codes),
                    "region_known": chain.known,
                    "region_steps": [
                        {
                            **step.as_dict(),
                            "outcome": "matched"
                            if n == depth
                            else ("other_unit_only" if n in other_units else "no_factor"),
                        }
                        for n, step in enumerate(chain.steps[: depth + 1])
                    ],
                }
            )
            made = self._walks[key] = b"," + body[1:-1]
        return made

    def release(self, release: _Release) -> bytes:
        """`dataset` and `dataset_priority`, up to the value of `alternatives`."""
        made = self._releases.get(release.version_id)
        if made is None:
            body = orjson.dumps(
                {
                    "dataset": f"{release.publisher}/{release.dataset}",
                    "dataset_priority": release.priority,
                }
            )
            made = self._releases[release.version_id] = b"," + body[1:-1] + b',"alternatives":'
        return made

    def any_unit(self, factor_unit: str) -> bytes:
        """`unit` when the line asks for none."""
        made = self._any_units.get(factor_unit)
        if made is None:
            made = self._any_units[factor_unit] = orjson.dumps(
                {"requested": None, "factor_unit": factor_unit}
            )
        return made

    def unit(self, requested: AmountUnit, factor_unit: str) -> tuple[bytes, float | None]:
        """`unit` up to the value of `co2e_per_requested_unit`, and the multiplier (None: the
        factor's unit has another dimension, converted by a cited property in estimates)."""
        key = (requested, factor_unit)
        made = self._units.get(key)
        if made is None:
            multiplier = (
                conversion_multiplier(requested.text, factor_unit)
                if ACCEPTED_UNITS.get(factor_unit) == requested.dimension
                else None
            )
            body = orjson.dumps(
                {
                    "requested": requested.canonical,
                    "factor_unit": factor_unit,
                    "dimension": requested.dimension,
                    "converted": factor_unit != requested.canonical,
                    "multiplier": multiplier,
                }
            )
            made = self._units[key] = (body[:-1] + b',"co2e_per_requested_unit":', multiplier)
        return made


def _deprecation(
    outcome: str, release: _Release, pick: tuple[int, Sequence[_Candidate]]
) -> dict[str, Any]:
    """The match's `deprecated`: a deprecated dataset's release and what became of it."""
    depth, ranked = pick
    return {
        "outcome": outcome,
        "dataset": f"{release.publisher}/{release.dataset}",
        "version": release.version,
        "superseded_by": release.superseded_by,
        "region_distance": depth,
        "year": ranked[0].reference_year,
    }


def _incompatible(
    line: Line, chain: RegionChain, nearest: tuple[int, tuple[int, str]]
) -> LineError:
    assert line.unit is not None
    depth, (year, unit) = nearest
    return LineError(
        "incompatible_unit",
        Message(
            "resolve.incompatible_unit",
            region=chain.codes[depth],
            year=year,
            dimension=line.unit.dimension,
            unit=line.unit.canonical,
            nearest=unit,
            nearest_kind=ACCEPTED_UNITS.get(unit, "another dimension"),
        ),
        ("unit",),
    )


def _no_match(line: Line, chain: RegionChain) -> LineError:
    where = " → ".join(chain.codes)
    scope = []
    if line.publisher or line.dataset:
        scope.append(f"dataset {line.publisher or '*'}/{line.dataset or '*'}")
    if line.version:
        scope.append(f"version {line.version}")
    if line.as_of:
        on = "on" if line.as_of.is_date else "at"
        scope.append(f"as published {on} {line.as_of.label}")
    if line.boundary:
        scope.append(f"boundary {line.boundary}")
    detail = Message(
        "resolve.no_match_scoped" if scope else "resolve.no_match",
        activity_id=line.activity_id,
        regions=where,
        year=line.year,
        **({"scope": ", ".join(scope)} if scope else {}),
    )
    if not chain.known:
        detail = Message("resolve.no_fallback", detail=detail, region=line.region)
    return LineError("no_match", detail)


def resolve_items(
    session: Session,
    *,
    viewer: Viewer,
    items: Sequence[ResolveItem],
    gwp: str | None,
    gwp_table: GwpTable | None = None,
    index: ResolveIndex | None = None,
) -> list[Resolved | LineError]:
    """Resolve a batch in request order; bad lines get errors, the rest their factor."""
    checked = suggest_regions(session, [check_line(n, item) for n, item in enumerate(items)])
    lines = [line for line in checked if isinstance(line, Line)]
    answers = resolve_lines(
        session, viewer=viewer, lines=lines, gwp=gwp, gwp_table=gwp_table, index=index
    )
    return [
        _finite(answers[entry.index]) if isinstance(entry, Line) else entry for entry in checked
    ]


def _finite(answer: Resolved | LineError) -> Resolved | LineError:
    """A resolved line whose factor, converted to the requested unit, overflows is an error
    with its reason (JSON has no infinity: it would have been a null)."""
    if isinstance(answer, LineError):
        return answer
    per_unit = answer.per_requested_unit
    if per_unit is not None and not math.isfinite(per_unit):
        unit = answer.match["unit"]
        return LineError(
            "not_finite",
            not_finite_detail(
                "co2e_per_requested_unit",
                f"{answer.factor['co2e']:g} kg CO2e/{unit['factor_unit']} × "
                f"{unit['multiplier']:g} {unit['factor_unit']}/{unit['requested']}",
            ),
            ("unit",),
        )
    return answer


def resolved_item_payload(answer: Resolved | LineError) -> dict[str, Any]:
    if isinstance(answer, LineError):
        return {"error": answer.as_dict()}
    match = orjson.Fragment(answer.match_json)
    if answer.fragment is not None:
        return {"factor": orjson.Fragment(answer.fragment), "match": match}
    return {"factor": answer.factor, "match": match}
