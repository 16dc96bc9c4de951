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

from sqlalchemy import ColumnElement, String, cast, func, insert, literal, select, union_all
from sqlalchemy.orm import Session

from app.core.db import AnySelect
from app.core.principal import Viewer
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.datasets.visibility import parse_semver, visible_version_ids
from app.factors import service
from app.factors.models import Factor, ReleaseFacetCount
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
# Filters on factor columns: with any of them (or text), counts come from the factors.
_FACTOR_FILTERS = ("q", "activity_id", "region", "year", "unit", "category", "boundary")


def record_release_facets(session: Session, *, version_id: int) -> None:
    """Count a version's factors per value of each factor facet, once, as it is released."""
    groups = [
        select(literal(version_id), literal(TOTAL), literal(""), func.count()).where(
            Factor.version_id == version_id
        )
    ]
    for name, column in FACTOR_FACETS.items():
        groups.append(
            select(literal(version_id), literal(name), cast(column, String), func.count())
            .where(Factor.version_id == version_id, column.is_not(None))
            .group_by(column)
        )
    session.execute(
        insert(ReleaseFacetCount).from_select(
            ["version_id", "facet", "value", "count"], union_all(*groups)
        )
    )


def _whole_releases(filters: service.FactorFilters) -> bool:
    """True when the filters select whole released versions (no text, no factor column)."""
    return filters.version_id is None and all(
        getattr(filters, name) is None for name in _FACTOR_FILTERS
    )


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
    """Per facet, the count of each value, added up from the releases' stored counts."""
    releases = _release_select(viewer, filters).subquery("releases")
    counts = ReleaseFacetCount
    by_factor = (
        select(counts.facet, counts.value, func.sum(counts.count))
        .join(releases, releases.c.version_id == counts.version_id)
        .group_by(counts.facet, counts.value)
    )
    grouped: dict[str, dict[str, int]] = {name: {} for name in (TOTAL, *FACET_COLUMNS)}
    for facet, value, count in session.execute(by_factor):
        if facet in grouped:
            grouped[facet][str(value)] = int(count)
    grouped[TOTAL].setdefault("", 0)
    totals = session.execute(
        select(releases.c.publisher, releases.c.dataset, releases.c.license_id, counts.count).join(
            counts, (counts.version_id == releases.c.version_id) & (counts.facet == TOTAL)
        )
    ).all()
    for publisher, dataset, license_id, count in totals:
        for name, value in (
            ("publisher", publisher),
            ("dataset", f"{publisher}/{dataset}"),
            ("license", license_id),
        ):
            if value is not None:
                grouped[name][value] = grouped[name].get(value, 0) + int(count)
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

    Whole releases (no text, no filter on a factor column) add up the counts stored at
    publish; any other search groups its own rows, which its filters bound."""
    if _whole_releases(filters):
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
    if _whole_releases(others):
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
