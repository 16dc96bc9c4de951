"""The values of one factor_code across every released version of its dataset."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import NotFound
from app.core.principal import Viewer
from app.core.problem_text import Message
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.datasets.visibility import newest_first
from app.factors.models import Factor
from app.factors.service import restrict_to_viewer

_FACTOR_FIELDS = (
    "uid",
    "co2e",
    "unit",
    "region",
    "reference_year",
    "gwp_set",
    "co2",
    "ch4",
    "n2o",
)


def factor_history(
    session: Session, *, viewer: Viewer, publisher: str, dataset: str, factor_code: str
) -> list[dict[str, Any]]:
    """One query: the factor in each released version, newest version first."""
    query = (
        select(
            DatasetVersion.version,
            DatasetVersion.status.label("version_status"),
            DatasetVersion.published_at,
            DatasetVersion.withdrawn_at,
            DatasetVersion.withdrawn_reason,
            *(getattr(Factor, name) for name in _FACTOR_FIELDS),
        )
        .select_from(Factor)
        .join(DatasetVersion, DatasetVersion.id == Factor.version_id)
        .join(Dataset, Dataset.id == Factor.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .where(
            Publisher.slug == publisher,
            Dataset.slug == dataset,
            Factor.factor_code == factor_code,
            DatasetVersion.status.in_(RELEASED_STATUSES),
        )
        .order_by(*newest_first())
    )
    rows = session.execute(restrict_to_viewer(query, viewer)).all()
    if not rows:
        raise NotFound(
            Message(
                "not_found.factor_history",
                dataset=f"{publisher}/{dataset}",
                factor_code=factor_code,
            )
        )
    return [{**row._asdict(), "withdrawn": row.version_status == "withdrawn"} for row in rows]
