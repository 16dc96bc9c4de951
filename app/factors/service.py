"""Factor search and lookup over the versions a reader may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Row, or_, select
from sqlalchemy.orm import Session

from app.auth.viewer import Viewer
from app.core.db import AnySelect
from app.core.errors import InvalidParameter, NotFound
from app.datasets.models import Dataset, Publisher
from app.factors.models import Factor
from app.factors.schemas import UPLOADABLE_FIELDS
from app.provenance.models import Source
from app.versioning.models import RELEASED_STATUSES, DatasetVersion
from app.versioning.service import parse_semver, visible_version_ids

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


def factor_select() -> AnySelect:
    """Every column a factor response needs, in one joined query."""
    return (
        select(
            Factor.id.label("row_id"),
            Factor.uid,
            Factor.dqr,
            *_FACTOR_COLUMNS,
            *(column.label(name) for name, column in _SOURCE_COLUMNS.items()),
            Publisher.slug.label("publisher"),
            Dataset.slug.label("dataset"),
            DatasetVersion.version.label("version"),
            DatasetVersion.status.label("version_status"),
            Dataset.license_id,
            Dataset.license_url,
            Dataset.attribution,
        )
        .join(DatasetVersion, DatasetVersion.id == Factor.version_id)
        .join(Dataset, Dataset.id == Factor.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .join(Source, Source.id == Factor.source_id)
    )


def factor_payload(row: Row[Any]) -> dict[str, Any]:
    data = row._asdict()
    data.pop("row_id", None)
    data["id"] = f"{data['publisher']}/{data['dataset']}/{data['factor_code']}@{data['version']}"
    return data


def restrict_to_viewer(query: AnySelect, viewer: Viewer) -> AnySelect:
    if viewer.can_read_registered:
        return query
    return query.where(Dataset.access == "public")


@dataclass(frozen=True)
class FactorFilters:
    q: str | None = None
    activity_id: str | None = None
    region: str | None = None
    year: int | None = None
    unit: str | None = None
    category: str | None = None
    boundary: str | None = None
    publisher: str | None = None
    dataset: str | None = None
    version: str | None = None
    as_of: date | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _apply_filters(query: AnySelect, filters: FactorFilters) -> AnySelect:
    if filters.version is not None:
        if filters.dataset is None or filters.publisher is None:
            raise InvalidParameter(
                "`version` pins one dataset's release: give `publisher` and `dataset` with it "
                "(or `dataset=publisher/dataset`).",
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
        query = query.where(Factor.version_id.in_(visible_version_ids(as_of=filters.as_of)))
    if filters.q:
        pattern = f"%{_escape_like(filters.q.lower())}%"
        query = query.where(
            or_(
                Factor.name_zh.ilike(pattern, escape="\\"),
                Factor.name_en.ilike(pattern, escape="\\"),
                Factor.activity_id.ilike(pattern, escape="\\"),
            )
        )
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
    query = restrict_to_viewer(_apply_filters(factor_select(), filters), viewer)
    if after_id is not None:
        query = query.where(Factor.id > after_id)
    rows = session.execute(query.order_by(Factor.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    last_id = rows[-1].row_id if more else None
    return [factor_payload(row) for row in rows], last_id


def get_factor(
    session: Session,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    factor_code: str,
    version: str | None = None,
    as_of: date | None = None,
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
        where = f"version {version}" if version else (f"as of {as_of}" if as_of else "latest")
        raise NotFound(f"No factor '{factor_code}' in {publisher}/{dataset} ({where} release).")
    return factor_payload(row)
