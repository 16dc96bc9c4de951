"""Which versions a reader sees: the latest release, a pinned one, or the state at a date."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache

from sqlalchemy import ColumnElement, Select, UnaryExpression, and_, func, or_, select
from sqlalchemy.orm import Session

from app.core.errors import InvalidParameter
from app.versioning.models import RELEASED_STATUSES, RESOLVABLE_STATUSES, DatasetVersion

SEMVER_PATTERN = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")


def parse_semver(version: str) -> tuple[int, int, int]:
    match = SEMVER_PATTERN.match(version)
    if match is None:
        raise InvalidParameter(
            f"'{version}' is not a version of the form MAJOR.MINOR.PATCH (e.g. 1.0.0).",
            errors=[{"loc": ["version"], "code": "invalid_version", "detail": version}],
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def newest_first() -> tuple[UnaryExpression[int], ...]:
    """ORDER BY for releases, highest semantic version first."""
    return (DatasetVersion.major.desc(), DatasetVersion.minor.desc(), DatasetVersion.patch.desc())


def visible_version_ids(*, as_of: date | None = None) -> Select[tuple[int]]:
    return _current_version_ids() if as_of is None else _version_ids(as_of)


@cache
def _current_version_ids() -> Select[tuple[int]]:
    return _version_ids(None)


def _version_ids(as_of: date | None) -> Select[tuple[int]]:
    """Ids of each dataset's current release, or of the release current at the end of `as_of`.

    Current: the highest version that is published or deprecated (withdrawn ones never
    answer "latest"). At a date: the highest version published by then and not yet
    withdrawn then.
    """
    condition: ColumnElement[bool]
    if as_of is None:
        condition = DatasetVersion.status.in_(RESOLVABLE_STATUSES)
    else:
        end_of_day = datetime.combine(as_of + timedelta(days=1), time.min, tzinfo=UTC)
        condition = and_(
            DatasetVersion.status.in_(RELEASED_STATUSES),
            DatasetVersion.published_at < end_of_day,
            or_(DatasetVersion.withdrawn_at.is_(None), DatasetVersion.withdrawn_at >= end_of_day),
        )
    ranked = (
        select(
            DatasetVersion.id,
            func.row_number()
            .over(partition_by=DatasetVersion.dataset_id, order_by=newest_first())
            .label("rank"),
        )
        .where(condition)
        .subquery()
    )
    return select(ranked.c.id).where(ranked.c.rank == 1)


def _latest(
    session: Session, *, dataset_id: int, statuses: tuple[str, ...]
) -> DatasetVersion | None:
    return session.execute(
        select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset_id, DatasetVersion.status.in_(statuses))
        .order_by(*newest_first())
        .limit(1)
    ).scalar_one_or_none()


def latest_released(session: Session, *, dataset_id: int) -> DatasetVersion | None:
    """The highest version ever released, withdrawn ones included: numbers never go back."""
    return _latest(session, dataset_id=dataset_id, statuses=RELEASED_STATUSES)


def latest_resolvable(session: Session, *, dataset_id: int) -> DatasetVersion | None:
    """The release that answers "latest" now."""
    return _latest(session, dataset_id=dataset_id, statuses=RESOLVABLE_STATUSES)
