"""Which versions a reader sees: the latest release, a pinned one, or the state at a moment
(`as_of`: the end of a date, or an RFC 3339 timestamp)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from sqlalchemy import ColumnElement, Select, UnaryExpression, and_, func, or_, select
from sqlalchemy.orm import Session

from app.core.errors import InvalidParameter
from app.core.problem_text import Message
from app.datasets.version_models import RELEASED_STATUSES, RESOLVABLE_STATUSES, DatasetVersion

SEMVER_PATTERN = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")


def parse_semver(version: str) -> tuple[int, int, int]:
    match = SEMVER_PATTERN.match(version)
    if match is None:
        raise InvalidParameter(
            Message("version.invalid", version=version),
            errors=[{"loc": ["version"], "code": "invalid_version", "detail": version}],
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?$"
)
_NO_END = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, order=True)
class AsOf:
    """A moment to answer as of: the releases published before `before` (exclusive) and not
    yet withdrawn then. A date means its end (the next midnight, UTC); a timestamp means
    that instant, so that a release published at it counts."""

    before: datetime
    label: str = field(compare=False)
    is_date: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return self.label

    @property
    def phrase(self) -> str:
        """ "at the end of 2024-12-31" or "at 2026-12-03T14:05:00Z", for messages."""
        return f"at the end of {self.label}" if self.is_date else f"at {self.label}"

    @classmethod
    def of_date(cls, day: date) -> AsOf:
        # 9999-12-31, a common "no end" sentinel, has no next midnight: it means "now on".
        end = _NO_END if day == date.max else datetime.combine(day, time.min, tzinfo=UTC)
        if day != date.max:
            end += timedelta(days=1)
        return cls(end, day.isoformat(), is_date=True)

    @classmethod
    def of_instant(cls, moment: datetime, label: str | None = None) -> AsOf:
        if moment.tzinfo is None:
            raise ValueError("a timestamp needs its UTC offset")
        moment = moment.astimezone(UTC)
        before = _NO_END if moment >= _NO_END - timedelta(microseconds=1) else moment
        if before is not _NO_END:
            before += timedelta(microseconds=1)
        return cls(before, label or moment.isoformat().replace("+00:00", "Z"))


def parse_as_of(value: Any) -> AsOf:
    """`as_of` from a query or a JSON body: `YYYY-MM-DD` (the end of that day, UTC) or an
    RFC 3339 timestamp with its offset (`2026-12-03T14:05:00Z`). A timestamp without an
    offset is refused: which instant it means would be a guess."""
    if isinstance(value, AsOf):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(_NAIVE)
        return AsOf.of_instant(value)
    if isinstance(value, date):
        return AsOf.of_date(value)
    if not isinstance(value, str):
        raise ValueError(_FORMS)
    text = value.strip()
    try:
        if _DATE.match(text):
            return AsOf.of_date(date.fromisoformat(text))
        matched = _TIMESTAMP.match(text)
        if matched is not None:
            if matched["offset"] is None:
                raise ValueError(_NAIVE)
            return AsOf.of_instant(datetime.fromisoformat(text.upper().replace("Z", "+00:00")))
    except (ValueError, OverflowError) as exc:
        if str(exc) == _NAIVE:
            raise
        raise ValueError(f"'{text}' is not a real date or time ({exc})") from exc
    raise ValueError(_FORMS)


_FORMS = "give a date (2026-12-03: its end, UTC) or an RFC 3339 timestamp (2026-12-03T14:05:00Z)"
_NAIVE = (
    "a timestamp needs its offset (2026-12-03T14:05:00Z or 2026-12-03T22:05:00+08:00): "
    "without one, which instant it means would be a guess"
)

AsOfValue = Annotated[
    AsOf,
    PlainValidator(parse_as_of),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A date (its end, UTC) or an RFC 3339 timestamp with its offset",
            "examples": ["2026-12-03", "2026-12-03T14:05:00Z"],
        }
    ),
]


def newest_first() -> tuple[UnaryExpression[int], ...]:
    """ORDER BY for releases, highest semantic version first."""
    return (DatasetVersion.major.desc(), DatasetVersion.minor.desc(), DatasetVersion.patch.desc())


def visible_version_ids(*, as_of: AsOf | None = None) -> Select[tuple[int]]:
    return _current_version_ids() if as_of is None else _version_ids(as_of)


@cache
def _current_version_ids() -> Select[tuple[int]]:
    return _version_ids(None)


def _version_ids(as_of: AsOf | None) -> Select[tuple[int]]:
    """Ids of each dataset's current release, or of the release current at `as_of`.

    Current: the highest version that is published or deprecated (withdrawn ones never
    answer "latest"). At a moment: the highest version published by then and not yet
    withdrawn then.
    """
    condition: ColumnElement[bool]
    if as_of is None:
        condition = DatasetVersion.status.in_(RESOLVABLE_STATUSES)
    else:
        end_of_day = as_of.before
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
