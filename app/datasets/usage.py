"""Usage metering of registered data: per client, per dataset, per day (UTC), the requests
that served the dataset's factor rows and how many rows they served.

One upsert per request (a row per registered dataset the request served; public datasets are
never metered, nor anonymous callers, who cannot read registered data). Metered: factor
search, factor lookup, a version's factors, resolve, a factor's history (its versions' rows)
and provenance (one row), a diff between versions (the request only: its rows are streamed as
they are computed), and version exports (a download counts the release's rows; its `HEAD`,
`304` and range answers count nothing, nor does a diff's `304`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import Date, ForeignKey, Integer, String, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.db import Base, utcnow
from app.core.principal import Viewer
from app.datasets.models import Dataset, Publisher


class DatasetUsage(Base):
    __tablename__ = "dataset_usage"

    client_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)


def meter(session: Session, viewer: Viewer, served: Iterable[tuple[str, str, int]]) -> None:
    """Count one request, and the rows it served, for each registered dataset in `served`
    (`(publisher, dataset, rows)`; a dataset may appear more than once)."""
    if viewer.client_id is None:
        return
    counts: Counter[tuple[str, str]] = Counter()
    for publisher, dataset, rows in served:
        counts[(publisher, dataset)] += rows
    if not counts:
        return
    registered = session.execute(
        select(Dataset.id, Publisher.slug, Dataset.slug)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .where(
            Dataset.access == "registered",
            tuple_(Publisher.slug, Dataset.slug).in_(sorted(counts)),
        )
    ).all()
    if not registered:
        return
    day = utcnow().date()
    values = [
        {
            "client_id": viewer.client_id,
            "dataset_id": dataset_id,
            "day": day,
            "requests": 1,
            "rows": counts[(publisher, slug)],
        }
        for dataset_id, publisher, slug in sorted(registered)
    ]
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(DatasetUsage).values(values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["client_id", "dataset_id", "day"],
            set_={
                "requests": DatasetUsage.requests + statement.excluded.requests,
                "rows": DatasetUsage.rows + statement.excluded.rows,
            },
        )
    )


def meter_factors(session: Session, viewer: Viewer, factors: Iterable[dict[str, Any]]) -> None:
    """`meter` for factor payloads (each names its `publisher` and `dataset`)."""
    if viewer.client_id is None:
        return
    meter(session, viewer, ((f["publisher"], f["dataset"], 1) for f in factors))


def usage(session: Session, *, dataset_id: int, since: date | None = None) -> list[dict[str, Any]]:
    """The dataset's metered use, by day then client."""
    query = (
        select(DatasetUsage)
        .where(DatasetUsage.dataset_id == dataset_id)
        .order_by(DatasetUsage.day, DatasetUsage.client_id)
    )
    if since is not None:
        query = query.where(DatasetUsage.day >= since)
    return [
        {"day": u.day, "client_id": u.client_id, "requests": u.requests, "rows": u.rows}
        for u in session.execute(query).scalars()
    ]
