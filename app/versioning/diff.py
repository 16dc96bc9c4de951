"""What changed between two versions of a dataset, and what that means for the version number.

Contract §1: removing factors or changing a factor's unit or activity is MAJOR, adding factors
is at least MINOR, value-only corrections at least PATCH.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from app.factors.models import Factor
from app.factors.schemas import UPLOADABLE_FIELDS

_Old = aliased(Factor)
_New = aliased(Factor)
_SOURCE_FIELDS = {"source_title", "source_publisher", "source_year", "source_url", "source_doi"}
_COMPARED = [n for n in UPLOADABLE_FIELDS if n not in _SOURCE_FIELDS | {"factor_code"}]
_IDENTITY = ("unit", "activity_id")


class Bump(IntEnum):
    NONE = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3


@dataclass(frozen=True)
class DiffSummary:
    added: int
    removed: int
    changed: int
    identity_changed: int  # unit or activity_id changed: a different factor under the same code

    @property
    def required_bump(self) -> Bump:
        if self.removed or self.identity_changed:
            return Bump.MAJOR
        if self.added:
            return Bump.MINOR
        if self.changed:
            return Bump.PATCH
        return Bump.NONE


def _differs(name: str) -> ColumnElement[bool]:
    old, new = getattr(_Old, name), getattr(_New, name)
    return or_(
        old != new, and_(old.is_(None), new.isnot(None)), and_(old.isnot(None), new.is_(None))
    )


def diff_summary(session: Session, *, old_version_id: int, new_version_id: int) -> DiffSummary:
    """Counts computed by the database: no factor rows travel to Python."""

    def count_only_in(this: int, other: int) -> int:
        other_codes = select(Factor.factor_code).where(Factor.version_id == other)
        return session.execute(
            select(func.count())
            .select_from(Factor)
            .where(Factor.version_id == this, Factor.factor_code.not_in(other_codes))
        ).scalar_one()

    pairs = (
        select(func.count())
        .select_from(_Old)
        .join(_New, and_(_New.factor_code == _Old.factor_code, _New.version_id == new_version_id))
        .where(_Old.version_id == old_version_id)
    )
    changed = session.execute(
        pairs.where(or_(*(_differs(n) for n in _COMPARED), _Old.source_id != _New.source_id))
    ).scalar_one()
    identity_changed = session.execute(
        pairs.where(or_(*(_differs(n) for n in _IDENTITY)))
    ).scalar_one()
    return DiffSummary(
        added=count_only_in(new_version_id, old_version_id),
        removed=count_only_in(old_version_id, new_version_id),
        changed=changed,
        identity_changed=identity_changed,
    )


def bump_between(old: tuple[int, int, int], new: tuple[int, int, int]) -> Bump:
    if new[0] != old[0]:
        return Bump.MAJOR
    if new[1] != old[1]:
        return Bump.MINOR
    if new[2] != old[2]:
        return Bump.PATCH
    return Bump.NONE
