"""Facet counts for a factor search: how many results each value of a field would leave.

Each facet is one GROUP BY over exactly the rows the search answers (`service._apply_filters`
and `service.restrict_to_viewer` over the search's joins), with every current filter
applied: the count next to a value is the number of results a reader gets by adding that
value to the filters, which is what the API answers for the same filters.

Categories are paths (`energy/electricity`) and the `category` filter is a path prefix, so
category counts are rolled up: `energy` counts every factor under `energy/`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.core.db import AnySelect
from app.core.principal import Viewer
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.datasets.visibility import parse_semver, visible_version_ids
from app.factors import service
from app.factors.models import Factor, ReleaseFacetCount, ReleaseFacetPairCount
from app.reference.models import Activity, ActivityLabel

# Facet name → the columns of the search query it groups by. Dataset slugs are unique per
# publisher only, so the dataset facet's values are `publisher/dataset` (as the API accepts).
FACET_COLUMNS: dict[str, tuple[str, ...]] = {
    "region": ("region",),
    "year": ("reference_year",),
    "category": ("category",),
    "publisher": ("publisher",),
    "dataset": ("publisher", "dataset"),
    "unit": ("unit",),
    "boundary": ("boundary",),
    "license": ("license_id",),
    "activity_id": ("activity_id",),
}
FACETS: tuple[str, ...] = tuple(FACET_COLUMNS)
TOTAL = "_total"
# The facets that are columns of the factor itself: counted per release at publish. The
# others (publisher, dataset, license) are the same for every factor of a release.
FACTOR_FACETS: dict[str, Any] = {
    "region": Factor.region,
    "year": Factor.reference_year,
    "category": Factor.category,
    "unit": Factor.unit,
    "boundary": Factor.boundary,
    "activity_id": Factor.activity_id,
}
# Filters on factor columns: with any of them (or text), counts come from the factors, except
# for one filter of PAIR_FILTERS alone, which the counts per pair of facets answer.
_FACTOR_FILTERS = ("q", "activity_id", "region", "year", "unit", "category", "boundary")
# The factor facets a search may filter on alone and still read stored counts (the filter of
# `FactorFilters` has the facet's name). `activity_id` is not one: see ReleaseFacetPairCount.
PAIR_FILTERS: tuple[str, ...] = ("region", "year", "category", "unit", "boundary")


# Rows read at a time while counting a release at publish: memory stays bounded by this and
# by the release's distinct combinations of facet values, whatever its size.
_COUNT_CHUNK = 50_000
# From this many distinct combinations of facet values on, a release's counts are summed by
# Arrow's hash aggregation; below it, in Python (see `_sums_in_python`).
_ARROW_SUMS_FROM = 2_000


def record_release_facets(session: Session, *, version_id: int) -> None:
    """Count a version's factors per value of each factor facet, and per pair of values (one
    of a PAIR_FILTERS facet, one of another facet), once, as it is released.

    The version's facet columns are read once, in chunks, and grouped in Arrow (C++ hash
    aggregation) into their distinct combinations; every count is a sum over those. Grouping
    in the database instead took a pass per facet and per pair (4.7 s for 100k factors on
    SQLite, 2.8 s on PostgreSQL, against 0.3 s this way)."""
    names = list(FACTOR_FACETS)
    columns = [cast(column, String) for column in FACTOR_FACETS.values()]
    # Core rows (not the ORM's), streamed: a server-side cursor on PostgreSQL.
    result = session.connection().execute(
        select(*columns).where(Factor.version_id == version_id),
        execution_options={"yield_per": _COUNT_CHUNK},
    )
    parts: list[pa.Table] = []
    for chunk in result.partitions():
        table = pa.table(
            [
                pa.array(values, pa.string()).dictionary_encode()
                for values in zip(*chunk, strict=True)
            ],
            names=names,
        )
        parts.append(table.group_by(names, use_threads=False).aggregate([([], "count_all")]))
    if not parts:
        session.add(ReleaseFacetCount(version_id=version_id, facet=TOTAL, value="", count=0))
        return
    combinations = (
        pa.concat_tables(parts)
        .unify_dictionaries()
        .group_by(names, use_threads=False)
        .aggregate([("count_all", "sum")])
        .rename_columns([*names, "rows"])
    )
    total = pc.sum(combinations["rows"]).as_py()
    sums = _sums_in_python if combinations.num_rows < _ARROW_SUMS_FROM else _sums_in_arrow
    single: list[dict[str, Any]] = [
        {"version_id": version_id, "facet": TOTAL, "value": "", "count": total}
    ]
    for name in names:
        single.extend(
            {"version_id": version_id, "facet": name, "value": value, "count": count}
            for value, count in sums(combinations, [name])
        )
    session.execute(insert(ReleaseFacetCount), single)
    pairs: list[dict[str, Any]] = []
    for first in PAIR_FILTERS:
        for second in names:
            if second == first:
                continue
            pairs.extend(
                {
                    "version_id": version_id,
                    "filter_facet": first,
                    "filter_value": one,
                    "facet": second,
                    "value": other,
                    "count": count,
                }
                for one, other, count in sums(combinations, [first, second])
            )
    if pairs:
        session.execute(insert(ReleaseFacetPairCount), pairs)


def _sums_in_python(combinations: pa.Table, keys: list[str]) -> list[tuple[Any, ...]]:
    """What `_sums_in_arrow` answers, summed in Python: for a few hundred combinations
    (most releases) this is microseconds, where each Arrow grouping costs about a millisecond
    to set up and a release needs 31 of them."""
    sums: Counter[tuple[Any, ...]] = Counter()
    columns = [combinations[key].to_pylist() for key in keys]
    for values, rows in zip(
        zip(*columns, strict=True), combinations["rows"].to_pylist(), strict=True
    ):
        if None not in values:
            sums[values] += rows
    return [(*values, rows) for values, rows in sums.items()]


def _sums_in_arrow(combinations: pa.Table, keys: list[str]) -> list[tuple[Any, ...]]:
    """(value, ..., rows) per distinct non-null value of `keys` in the combinations."""
    table = combinations.select([*keys, "rows"])
    for key in keys:
        table = table.filter(pc.is_valid(table[key]))
    grouped = table.group_by(keys, use_threads=False).aggregate([("rows", "sum")])
    return list(zip(*(grouped[name].to_pylist() for name in [*keys, "rows_sum"]), strict=True))


def _whole_releases(filters: service.FactorFilters) -> bool:
    """True when the filters select whole released versions (no text, no factor column)."""
    return filters.version_id is None and all(
        getattr(filters, name) is None for name in _FACTOR_FILTERS
    )


def _pair_filter(filters: service.FactorFilters) -> str | None:
    """The one PAIR_FILTERS facet the filters set, when it is their only filter on factors
    (no text, no other factor column, released versions): None otherwise."""
    if filters.version_id is not None:
        return None
    named = [name for name in _FACTOR_FILTERS if getattr(filters, name) is not None]
    if len(named) == 1 and named[0] in PAIR_FILTERS:
        return named[0]
    return None


def stored_counts_answer(filters: service.FactorFilters) -> bool:
    """Whether the counts kept at publish answer these filters' facets."""
    return _whole_releases(filters) or _pair_filter(filters) is not None


def _value_matches(
    column: InstrumentedAttribute[str], facet: str, filters: service.FactorFilters
) -> ColumnElement[bool]:
    """`column` (a stored facet value) holds what the filter on `facet` selects: the same
    comparison `service._apply_filters` makes on the factor column (the category a prefix)."""
    if facet == "category":
        assert filters.category is not None
        prefix = filters.category.rstrip("/")
        return or_(
            column == prefix,
            column.like(f"{service._escape_like(prefix)}/%", escape="\\"),
        )
    wanted = getattr(filters, facet)
    return column == str(wanted)


def _release_select(viewer: Viewer, filters: service.FactorFilters) -> AnySelect:
    """The released versions the filters select, with their publisher, dataset and license."""
    query = (
        select(
            DatasetVersion.id.label("version_id"),
            Publisher.slug.label("publisher"),
            Dataset.slug.label("dataset"),
            Dataset.license_id,
        )
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
    )
    if filters.version is not None:
        parse_semver(filters.version)
        query = query.where(
            DatasetVersion.version == filters.version,
            DatasetVersion.status.in_(RELEASED_STATUSES),
        )
    else:
        query = query.where(DatasetVersion.id.in_(visible_version_ids(as_of=filters.as_of)))
    if filters.publisher is not None:
        query = query.where(Publisher.slug == filters.publisher)
    if filters.dataset is not None:
        query = query.where(Dataset.slug == filters.dataset)
    if filters.license_id is not None:
        query = query.where(Dataset.license_id == filters.license_id)
    return service.restrict_to_viewer(query, viewer)


def _release_grouped(
    session: Session, *, viewer: Viewer, filters: service.FactorFilters
) -> dict[str, dict[str, int]]:
    """Per facet, the count of each value, added up from the releases' stored counts (whole
    releases, or one PAIR_FILTERS filter: `stored_counts_answer`)."""
    releases = _release_select(viewer, filters).subquery("releases")
    counts = ReleaseFacetCount
    grouped: dict[str, dict[str, int]] = {name: {} for name in (TOTAL, *FACET_COLUMNS)}
    selected = _pair_filter(filters)
    by_factor: Select[str, str, int] | CompoundSelect[str, str, int]
    if selected is None:
        by_factor = (
            select(counts.facet, counts.value, func.sum(counts.count))
            .join(releases, releases.c.version_id == counts.version_id)
            .group_by(counts.facet, counts.value)
        )
        # Each release's row count: what it adds to its publisher, dataset and license.
        per_release = select(
            releases.c.publisher, releases.c.dataset, releases.c.license_id, counts.count
        ).join(counts, (counts.version_id == releases.c.version_id) & (counts.facet == TOTAL))
    else:
        pairs = ReleaseFacetPairCount
        # The other facets from the pairs; the filtered facet's own values (those the filter
        # selects: one, or the paths under a category prefix) from the single counts.
        by_factor = union_all(
            select(pairs.facet, pairs.value, func.sum(pairs.count))
            .join(releases, releases.c.version_id == pairs.version_id)
            .where(
                pairs.filter_facet == selected,
                _value_matches(pairs.filter_value, selected, filters),
            )
            .group_by(pairs.facet, pairs.value),
            select(counts.facet, counts.value, func.sum(counts.count))
            .join(releases, releases.c.version_id == counts.version_id)
            .where(counts.facet == selected, _value_matches(counts.value, selected, filters))
            .group_by(counts.facet, counts.value),
        )
        per_release = (
            select(
                releases.c.publisher,
                releases.c.dataset,
                releases.c.license_id,
                func.sum(counts.count),
            )
            .join(counts, counts.version_id == releases.c.version_id)
            .where(counts.facet == selected, _value_matches(counts.value, selected, filters))
            .group_by(
                releases.c.version_id,
                releases.c.publisher,
                releases.c.dataset,
                releases.c.license_id,
            )
        )
    for facet, value, count in session.execute(by_factor):
        if facet in grouped:
            grouped[facet][str(value)] = int(count)
    total = 0
    for publisher, dataset, license_id, count in session.execute(per_release).all():
        total += int(count)
        for name, value in (
            ("publisher", publisher),
            ("dataset", f"{publisher}/{dataset}"),
            ("license", license_id),
        ):
            if value is not None:
                grouped[name][value] = grouped[name].get(value, 0) + int(count)
    if selected is not None:
        grouped[TOTAL][""] = total
    grouped[TOTAL].setdefault("", 0)
    return grouped


def _facet_select() -> AnySelect:
    """The search's FROM and joins (those `_apply_filters` filters on), with only the columns
    facets group by: `service.factor_select()` without the source and successor joins and the
    forty columns a facet never reads."""
    return (
        select(
            Factor.id,
            Factor.region,
            Factor.reference_year,
            Factor.category,
            Factor.unit,
            Factor.boundary,
            Factor.activity_id,
            Publisher.slug.label("publisher"),
            Dataset.slug.label("dataset"),
            Dataset.license_id,
        )
        .join(DatasetVersion, DatasetVersion.id == Factor.version_id)
        .join(Dataset, Dataset.id == Factor.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
    )


def searched_rows(session: Session, *, viewer: Viewer, filters: service.FactorFilters) -> AnySelect:
    """Exactly the rows the search answers (same filters, same viewer restriction)."""
    return service.restrict_to_viewer(
        service._apply_filters(session, _facet_select(), filters), viewer
    )


@dataclass(frozen=True)
class FacetValue:
    """One value of a facet: what the filter is set to, its labels, and how many results."""

    value: str
    count: int
    label_zh: str | None = None
    label_en: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "count": self.count,
            "label_zh": self.label_zh,
            "label_en": self.label_en,
        }


def _category_rollup(counts: dict[str, int], selected: str | None) -> list[tuple[str, int]]:
    """Counts per category path one level below the selected prefix (or at the top level),
    and the selected prefix itself: each is what the prefix filter would answer."""
    prefix = selected.rstrip("/") if selected else None
    depth = prefix.count("/") + 1 if prefix else 0
    rolled: Counter[str] = Counter()
    for path, count in counts.items():
        if prefix is not None:
            if path != prefix and not path.startswith(prefix + "/"):
                continue
            rolled[prefix] += count
            if path == prefix:
                continue
        rolled["/".join(path.split("/")[: depth + 1])] += count
    return list(rolled.items())


@dataclass(frozen=True)
class Facets:
    """How many factors the search finds in all, and per value of each facet."""

    total: int
    values: dict[str, list[FacetValue]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "facets": {name: [v.as_dict() for v in values] for name, values in self.values.items()},
        }


def facet_counts(
    session: Session,
    *,
    viewer: Viewer,
    filters: service.FactorFilters,
    limit: int = 50,
) -> Facets:
    """The number of results, and every facet's values with their result counts, most results
    first (at most `limit` values per facet).

    Whole releases (no text, no filter on a factor column), or one filter on a region, year,
    category, unit or boundary, add up the counts stored at publish; any other search groups
    its own rows, which its filters bound."""
    if stored_counts_answer(filters):
        grouped = _release_grouped(session, viewer=viewer, filters=filters)
    else:
        grouped = _grouped_rows(session, viewer=viewer, filters=filters)
    return _facets(session, grouped, filters, limit)


def _grouped_rows(
    session: Session, *, viewer: Viewer, filters: service.FactorFilters
) -> dict[str, dict[str, int]]:
    """Per facet, the count of each value, grouped over the search's own rows."""
    # The search's rows once (MATERIALIZED: the filters, text search included, run once),
    # then one GROUP BY per facet over them, all answered in one round trip.
    searched = (
        searched_rows(session, viewer=viewer, filters=filters)
        .cte("searched")
        .prefix_with("MATERIALIZED", dialect="postgresql")
        .prefix_with("MATERIALIZED", dialect="sqlite")
    )
    everything = select(literal(TOTAL).label("facet"), literal("").label("value"), func.count())
    groups = [everything.select_from(searched)]
    for name, column_names in FACET_COLUMNS.items():
        columns = [searched.c[column_name] for column_name in column_names]
        value: ColumnElement[str] = cast(columns[0], String)
        for column in columns[1:]:
            value = value + "/" + cast(column, String)
        groups.append(
            select(literal(name), value, func.count())
            .where(*(column.is_not(None) for column in columns))
            .group_by(*columns)
        )
    grouped: dict[str, dict[str, int]] = {name: {} for name in (TOTAL, *FACET_COLUMNS)}
    for facet, text, count in session.execute(union_all(*groups)).all():
        grouped[facet][str(text)] = int(count)
    return grouped


def _facets(
    session: Session, grouped: dict[str, dict[str, int]], filters: service.FactorFilters, limit: int
) -> Facets:
    total = grouped[TOTAL].get("", 0)
    facets: dict[str, list[FacetValue]] = {}
    for name in FACET_COLUMNS:
        counts = grouped[name]
        pairs = (
            _category_rollup(counts, filters.category)
            if name == "category"
            else list(counts.items())
        )
        if name == "year":
            pairs.sort(key=lambda pair: -int(pair[0]))
        else:
            pairs.sort(key=lambda pair: (-pair[1], pair[0]))
        facets[name] = [FacetValue(value, count) for value, count in pairs[:limit]]
    _label_publishers_and_datasets(session, facets)
    _label_activities(session, facets)
    return Facets(total=total, values=facets)


def _label_activities(session: Session, facets: dict[str, list[FacetValue]]) -> None:
    """Activity values carry their names from the activity labels (reference data, and the
    labels publishers gave their own activities): a search for 电网 then shows why the MEE's
    电力 factors are there. Unlabelled ones keep the id."""
    wanted = {value.value for value in facets["activity_id"]}
    if not wanted:
        return
    names = {
        row.activity_id: (row.name_zh, row.name_en)
        for row in session.execute(
            select(ActivityLabel.activity_id, ActivityLabel.name_zh, ActivityLabel.name_en).where(
                ActivityLabel.activity_id.in_(wanted)
            )
        )
    }
    # The reference vocabulary's names win over a publisher's for the same id.
    names.update(
        (row.id, (row.name_zh, row.name_en))
        for row in session.execute(
            select(Activity.id, Activity.name_zh, Activity.name_en).where(Activity.id.in_(wanted))
        )
    )
    facets["activity_id"] = [
        FacetValue(v.value, v.count, *names.get(v.value, (None, None)))
        for v in facets["activity_id"]
    ]


def _label_publishers_and_datasets(session: Session, facets: dict[str, list[FacetValue]]) -> None:
    publishers = {value.value for value in facets["publisher"]}
    publishers |= {value.value.split("/", 1)[0] for value in facets["dataset"]}
    if not publishers:
        return
    names = {
        row.slug: (row.name_zh, row.name_en)
        for row in session.execute(
            select(Publisher.slug, Publisher.name_zh, Publisher.name_en).where(
                Publisher.slug.in_(publishers)
            )
        )
    }
    facets["publisher"] = [
        FacetValue(v.value, v.count, *names.get(v.value, (None, None))) for v in facets["publisher"]
    ]
    wanted = [tuple(v.value.split("/", 1)) for v in facets["dataset"]]
    titles: dict[str, tuple[str | None, str | None]] = {}
    if wanted:
        rows = session.execute(
            select(Publisher.slug, Dataset.slug, Dataset.title_zh, Dataset.title_en)
            .join(Publisher, Publisher.id == Dataset.publisher_id)
            .where(Publisher.slug.in_({owner for owner, _ in wanted}))
        )
        titles = {f"{owner}/{slug}": (zh, en) for owner, slug, zh, en in rows}
    facets["dataset"] = [
        FacetValue(v.value, v.count, *titles.get(v.value, (None, None))) for v in facets["dataset"]
    ]


def activity_totals(
    session: Session,
    *,
    viewer: Viewer,
    filters: service.FactorFilters,
    activity_ids: list[str],
) -> dict[str, int]:
    """How many factors each activity has under the other filters, the text left out.

    A text search finds names, and names differ between publishers (the MEE's 全国电力平均
    二氧化碳排放因子 and DESNZ's 英国电网电力 are both `electricity-grid-mix`): these counts let
    a page offer every factor of the activities the text found.
    """
    if not activity_ids:
        return {}
    others = replace(filters, q=None)
    if stored_counts_answer(others):
        grouped = _release_grouped(session, viewer=viewer, filters=others)["activity_id"]
        return {name: grouped[name] for name in activity_ids if name in grouped}
    searched = searched_rows(session, viewer=viewer, filters=replace(filters, q=None)).subquery(
        "searched"
    )
    rows = session.execute(
        select(searched.c.activity_id, func.count())
        .where(searched.c.activity_id.in_(activity_ids))
        .group_by(searched.c.activity_id)
    ).all()
    return {str(activity): int(count) for activity, count in rows}
