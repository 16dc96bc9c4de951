"""Factor search and lookup over the versions a reader may see."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from sqlalchemy import Integer, Result, Row, and_, func, literal_column, or_, select
from sqlalchemy.orm import Session, aliased

from app.core.db import AnySelect
from app.core.errors import InvalidParameter, NotFound, ProblemError
from app.core.pagination import after_id_from_cursor, decode_cursor, id_cursor
from app.core.principal import Viewer
from app.core.problem_text import Message, joined
from app.datasets.access import readable
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.datasets.visibility import AsOf, parse_semver, visible_version_ids
from app.factors.models import Factor, FactorDraft, Source
from app.factors.schemas import UPLOADABLE_FIELDS
from app.factors.search import TextSearch, text_search
from app.reference.terms import MATCH_TERM
from app.reference.units import UnitError, parse_declared_unit

_SOURCE_COLUMNS = {
    "source_title": Source.title,
    "source_publisher": Source.publisher,
    "source_year": Source.year,
    "source_url": Source.url,
    "source_doi": Source.doi,
}
_FACTOR_COLUMNS = [
    getattr(Factor, name) for name in UPLOADABLE_FIELDS if name not in _SOURCE_COLUMNS
]
Successor = aliased(Dataset)
SuccessorPublisher = aliased(Publisher)


def release_state_columns() -> tuple[Any, ...]:
    """The columns of a factor's answer that can change after its release: its release's and
    its dataset's state. A kept answer (app/factors/lookup.py) is served only while these are
    unchanged, so a column of that kind added to `factor_select` belongs here."""
    return (
        DatasetVersion.version.label("version"),
        DatasetVersion.status.label("version_status"),
        DatasetVersion.withdrawn_at,
        DatasetVersion.withdrawn_reason,
        Dataset.status.label("dataset_status"),
        (SuccessorPublisher.slug + "/" + Successor.slug).label("superseded_by"),
        Dataset.license_id,
        Dataset.license_url,
        Dataset.attribution,
    )


@cache
def factor_select() -> AnySelect:
    """Every column a factor response needs, in one joined query.

    Built once: statements are immutable, and building this join costs more than running it.
    """
    return _factor_select_from(Factor, Factor.id)


@cache
def draft_factor_select() -> AnySelect:
    """`factor_select` over a draft's rows (`factor_draft`, in upload order: `row_id` is the
    row's position in the upload)."""
    return _factor_select_from(FactorDraft, FactorDraft.position)


def _factor_select_from(rows: type[Factor] | type[FactorDraft], row_id: Any) -> AnySelect:
    return (
        select(
            row_id.label("row_id"),
            rows.uid,
            rows.dqr,
            *(getattr(rows, column.key) for column in _FACTOR_COLUMNS),
            *(column.label(name) for name, column in _SOURCE_COLUMNS.items()),
            Publisher.slug.label("publisher"),
            Dataset.slug.label("dataset"),
            *release_state_columns(),
        )
        .join(DatasetVersion, DatasetVersion.id == rows.version_id)
        .join(Dataset, Dataset.id == rows.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .join(Source, Source.id == rows.source_id)
        .outerjoin(Successor, Successor.id == Dataset.superseded_by_id)
        .outerjoin(SuccessorPublisher, SuccessorPublisher.id == Successor.publisher_id)
    )


def factor_payload(row: Row[Any]) -> dict[str, Any]:
    return _payload(row._asdict())


def factor_payloads(result: Result[Any]) -> dict[int, dict[str, Any]]:
    """`factor_payload` of every row of a `factor_select` result, by factor id: the keys are
    read once (`Row._asdict` reads them again for every row)."""
    keys = tuple(result.keys())
    payloads: dict[int, dict[str, Any]] = {}
    for row in result:
        data = dict(zip(keys, row, strict=True))
        row_id = data["row_id"]
        payloads[row_id] = _payload(data)
    return payloads


def _payload(data: dict[str, Any]) -> dict[str, Any]:
    data.pop("row_id", None)
    data["id"] = f"{data['publisher']}/{data['dataset']}/{data['factor_code']}@{data['version']}"
    return data


def restrict_to_viewer(query: AnySelect, viewer: Viewer) -> AnySelect:
    if viewer.reads_every_dataset:
        return query
    return query.where(readable(viewer))


@dataclass(frozen=True)
class FactorFilters:
    q: str | None = None
    # How `q`'s terms match (app.factors.search.MATCH_MODES); None: as terms.
    match: str | None = None
    activity_id: str | None = None
    region: str | None = None
    year: int | None = None
    unit: str | None = None
    category: str | None = None
    boundary: str | None = None
    publisher: str | None = None
    dataset: str | None = None
    version: str | None = None
    as_of: AsOf | None = None
    # Not an API parameter (yet): the web explorer's license facet filters on it.
    license_id: str | None = None
    # Not an API parameter: one unreleased (draft or submitted) version, by id, for its
    # publisher or a reviewer (the caller has checked that they may see it).
    version_id: int | None = None


_SQLITE_UNINDEXED_VERSION = literal_column("+factor.version_id", Integer)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _apply_filters(
    session: Session, query: AnySelect, filters: FactorFilters, text: TextSearch | None = None
) -> AnySelect:
    """`query` narrowed to the factors `filters` find (`text`: `filters.q` already looked up
    in the activity labels, when the caller needs it for ranking too)."""
    if filters.version_id is not None:
        query = query.where(Factor.version_id == filters.version_id)
    elif filters.version is not None:
        if filters.dataset is None or filters.publisher is None:
            raise InvalidParameter(
                Message("query.version_needs_dataset"),
                errors=[
                    {
                        "loc": ["query", "version"],
                        "code": "version_needs_dataset",
                        "detail": "give publisher and dataset",
                    }
                ],
            )
        parse_semver(filters.version)
        query = query.where(
            DatasetVersion.version == filters.version,
            DatasetVersion.status.in_(RELEASED_STATUSES),
        )
    else:
        visible = visible_version_ids(as_of=filters.as_of)
        if session.get_bind().dialect.name == "sqlite":
            # `+version_id`: SQLite must not answer "which releases are current" through the
            # version index, which holds a whole release in version order and makes it sort
            # the release by id for every page (1.6 s at 1M factors); other filters' indexes,
            # or the table in id order up to the page's LIMIT, bound the work instead.
            query = query.where(_SQLITE_UNINDEXED_VERSION.in_(visible))
        else:
            query = query.where(Factor.version_id.in_(visible))
    if filters.q:
        if text is None:
            text = text_search(session, filters.q, filters.match or MATCH_TERM)
        query = query.where(text.condition())
    if filters.activity_id is not None:
        query = query.where(Factor.activity_id == filters.activity_id)
    if filters.region is not None:
        query = query.where(Factor.region == filters.region)
    if filters.year is not None:
        query = query.where(Factor.reference_year == filters.year)
    if filters.unit is not None:
        query = query.where(Factor.unit == filters.unit)
    if filters.category is not None:
        prefix = filters.category.rstrip("/")
        query = query.where(
            or_(
                Factor.category == prefix,
                Factor.category.like(f"{_escape_like(prefix)}/%", escape="\\"),
            )
        )
    if filters.boundary is not None:
        query = query.where(Factor.boundary == filters.boundary)
    if filters.publisher is not None:
        query = query.where(Publisher.slug == filters.publisher)
    if filters.dataset is not None:
        query = query.where(Dataset.slug == filters.dataset)
    if filters.license_id is not None:
        query = query.where(Dataset.license_id == filters.license_id)
    return query


def search_factors(
    session: Session,
    *,
    viewer: Viewer,
    filters: FactorFilters,
    after_id: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of factors in id order, and the id to continue after (None at the end)."""
    query = restrict_to_viewer(_apply_filters(session, factor_select(), filters), viewer)
    if after_id is not None:
        query = query.where(Factor.id > after_id)
    rows = session.execute(query.order_by(Factor.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    last_id = rows[-1].row_id if more else None
    return [factor_payload(row) for row in rows], last_id


# A text search ranks all it finds before the first page: it runs only where what it may find
# is bounded. Past this many candidates it is refused (422) with what to add instead.
TEXT_SEARCH_CANDIDATE_CAP = 20_000


class SearchTooBroad(ProblemError):
    status, code, title = 422, "search-too-broad", "Search too broad"


def _candidate_select() -> AnySelect:
    return (
        select(Factor.id)
        .join(DatasetVersion, DatasetVersion.id == Factor.version_id)
        .join(Dataset, Dataset.id == Factor.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
    )


def text_candidates(
    session: Session, *, viewer: Viewer, filters: FactorFilters, text: TextSearch
) -> AnySelect:
    """The ids of at most TEXT_SEARCH_CANDIDATE_CAP + 1 factors a text search may find: those
    the other filters and the indexable terms leave (terms of fewer than three word characters
    have no index, so they narrow nothing here), read through the indexes and no further."""
    query = restrict_to_viewer(
        _apply_filters(session, _candidate_select(), replace(filters, q=None)), viewer
    )
    indexed = text.indexed_condition()
    if indexed is not None:
        query = query.where(indexed)
    return query.limit(TEXT_SEARCH_CANDIDATE_CAP + 1)


def too_broad(filters: FactorFilters, text: TextSearch) -> SearchTooBroad:
    short = text.short_terms()
    reasons: list[Message] = []
    if short:
        listed = ", ".join(f"'{term}'" for term in short)
        reasons.append(
            Message("search.short_term" if len(short) == 1 else "search.short_terms", terms=listed)
        )
    if text.indexed_condition() is not None:
        reasons.append(Message("search.common_terms"))
    cap = f"{TEXT_SEARCH_CANDIDATE_CAP:,}"
    return SearchTooBroad(
        Message(
            "search.too_broad_because",
            q=filters.q,
            cap=cap,
            reasons=joined(reasons, en="; ", zh="；"),
        )
        if reasons
        else Message("search.too_broad", q=filters.q, cap=cap),
        errors=[
            {
                "loc": ["query", "q"],
                "code": "too_broad",
                "detail": Message("search.too_many_candidates", cap=TEXT_SEARCH_CANDIDATE_CAP),
            }
        ],
    )


def search_factors_ranked(
    session: Session,
    *,
    viewer: Viewer,
    filters: FactorFilters,
    after: tuple[int, int] | None,
    limit: int,
) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
    """One page of a text search (`filters.q`), exact activity matches first, then by id;
    factors found only through their activity's labels last (`TextSearch.rank`).

    Keyset pagination on (rank, id): the position to continue after, or None at the end.
    """
    assert filters.q
    text = text_search(session, filters.q, filters.match or MATCH_TERM)
    rank = text.rank()
    # Bounded by construction: the page is ranked among at most CAP + 1 candidates, read once
    # through the indexes (MATERIALIZED), and their number comes back with every row.
    candidates = (
        text_candidates(session, viewer=viewer, filters=filters, text=text)
        .cte("candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
        .prefix_with("MATERIALIZED", dialect="sqlite")
    )
    found = select(func.count()).select_from(candidates).scalar_subquery()
    query = (
        factor_select()
        .add_columns(rank.label("text_rank"), found.label("candidate_count"))
        .where(Factor.id.in_(select(candidates.c.id)))
    )
    short = text.short_condition()
    if short is not None:
        query = query.where(short)
    refined = text.refine_condition()
    if refined is not None:
        query = query.where(refined)
    if after is not None:
        after_rank, after_id = after
        query = query.where(or_(rank > after_rank, and_(rank == after_rank, Factor.id > after_id)))
    rows = session.execute(query.order_by(rank, Factor.id).limit(limit + 1)).all()
    counted = (
        rows[0].candidate_count
        if rows
        else session.execute(select(func.count()).select_from(candidates)).scalar_one()
    )
    if counted > TEXT_SEARCH_CANDIDATE_CAP:
        raise too_broad(filters, text)
    more = len(rows) > limit
    rows = rows[:limit]
    position = (int(rows[-1].text_rank), int(rows[-1].row_id)) if more else None
    items = []
    for row in rows:
        payload = factor_payload(row)
        payload.pop("text_rank")
        payload.pop("candidate_count")
        items.append(payload)
    return items, position


def get_factor(
    session: Session,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    factor_code: str,
    version: str | None = None,
    as_of: AsOf | None = None,
) -> dict[str, Any]:
    query = factor_select().where(
        Publisher.slug == publisher, Dataset.slug == dataset, Factor.factor_code == factor_code
    )
    if version is not None:
        parse_semver(version)
        query = query.where(
            DatasetVersion.version == version, DatasetVersion.status.in_(RELEASED_STATUSES)
        )
    else:
        query = query.where(Factor.version_id.in_(visible_version_ids(as_of=as_of)))
    row = session.execute(restrict_to_viewer(query, viewer)).first()
    if row is None:
        raise _missing_factor(
            session,
            viewer=viewer,
            publisher=publisher,
            dataset=dataset,
            factor_code=factor_code,
            version=version,
            as_of=as_of,
        )
    return factor_payload(row)


def _missing_factor(
    session: Session,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    factor_code: str,
    version: str | None,
    as_of: AsOf | None,
) -> NotFound:
    """Say which part of a failed lookup is missing: the dataset, the release or the factor."""
    name = f"{publisher}/{dataset}"
    dataset_id = session.execute(
        restrict_to_viewer(
            select(Dataset.id)
            .join(Publisher, Publisher.id == Dataset.publisher_id)
            .where(Publisher.slug == publisher, Dataset.slug == dataset),
            viewer,
        )
    ).scalar_one_or_none()
    if dataset_id is None:
        return NotFound(Message("not_found.dataset", dataset=name))
    releases = select(DatasetVersion.version).where(DatasetVersion.dataset_id == dataset_id)
    if version is not None:
        releases = releases.where(
            DatasetVersion.version == version, DatasetVersion.status.in_(RELEASED_STATUSES)
        )
        no_release = Message("not_found.released_version", version=version, dataset=name)
    else:
        releases = releases.where(DatasetVersion.id.in_(visible_version_ids(as_of=as_of)))
        no_release = (
            Message(
                "not_found.release_as_of",
                dataset=name,
                when=Message(
                    "as_of.end_of_day" if as_of.is_date else "as_of.instant", label=as_of.label
                ),
            )
            if as_of
            else Message("not_found.no_current_release", dataset=name)
        )
    release = session.execute(releases).scalar_one_or_none()
    if release is None:
        return NotFound(no_release)
    which = (
        Message("as_of.current_on" if as_of.is_date else "as_of.current_at", label=as_of.label)
        if as_of
        else Message("release.pinned" if version else "release.latest")
    )
    return NotFound(
        Message(
            "not_found.factor", factor_code=factor_code, dataset=name, release=release, which=which
        )
    )


def version_factors_page(
    session: Session,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    version: str,
    cursor: str | None,
    limit: int,
    unreleased_id: int | None = None,
    draft: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of one release's factors and the cursor of the next (the caller has checked
    that the release exists, or that it may read the unreleased version `unreleased_id`;
    `draft`: that version is a draft, its rows in `factor_draft`). The API's list and the
    version page both read it, so either's cursor continues the other."""
    filters = FactorFilters(
        publisher=publisher, dataset=dataset, version=version, version_id=unreleased_id
    )
    scope = {k: v for k, v in vars(filters).items() if v is not None}
    after_id = after_id_from_cursor(cursor, scope)
    if draft and unreleased_id is not None:
        query = restrict_to_viewer(
            draft_factor_select().where(
                FactorDraft.version_id == unreleased_id,
                Publisher.slug == publisher,
                Dataset.slug == dataset,
            ),
            viewer,
        )
        if after_id is not None:
            query = query.where(FactorDraft.position > after_id)
        rows = session.execute(query.order_by(FactorDraft.position).limit(limit + 1)).all()
        last_id = rows[limit - 1].row_id if len(rows) > limit else None
        items = [factor_payload(row) for row in rows[:limit]]
    else:
        items, last_id = search_factors(
            session, viewer=viewer, filters=filters, after_id=after_id, limit=limit
        )
    return items, id_cursor(last_id, scope)


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
            Message("cursor.invalid"),
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
