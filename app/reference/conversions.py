"""Conversion properties: cited quantities that turn an amount of one dimension into another.

A net calorific value (IPCC 2006 Vol. 2 Table 1.2: other bituminous coal 25.8 TJ/Gg) turns
tonnes of that coal into TJ, so an amount in `t` can be estimated against a per-TJ factor.
Each property names the activities whose amounts it may convert (`activity_ids`); nothing is
converted across dimensions without one, and every estimate that used one shows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.reference.models import ConversionProperty
from app.reference.units import (
    ACCEPTED_UNITS,
    UnitError,
    convert_with_properties,
    units_of_dimension,
)


@dataclass(frozen=True)
class Property:
    code: str
    material: str
    name_en: str | None
    name_zh: str | None
    quantity: str
    value: float
    unit: str
    low: float | None
    high: float | None
    activity_ids: tuple[str, ...]
    source: str
    locator: str

    def as_dict(self) -> dict[str, Any]:
        """The API's shape (`ConversionPropertyRead`): the fields in order, ids as a list."""
        return {**asdict(self), "activity_ids": list(self.activity_ids)}


def _property(row: ConversionProperty) -> Property:
    return Property(
        code=row.code,
        material=row.material,
        name_en=row.name_en,
        name_zh=row.name_zh,
        quantity=row.quantity,
        value=row.value,
        unit=row.unit,
        low=row.low,
        high=row.high,
        activity_ids=tuple(row.activity_ids or ()),
        source=row.source,
        locator=row.locator,
    )


def load_properties(session: Session) -> tuple[Property, ...]:
    """Every conversion property (a short table: one query)."""
    rows = session.scalars(select(ConversionProperty).order_by(ConversionProperty.code))
    return tuple(_property(row) for row in rows)


class PropertyIndex:
    """The properties of each activity, for one request."""

    def __init__(self, properties: Iterable[Property]) -> None:
        self.by_activity: dict[str, list[Property]] = {}
        # Memos: a batch of 1000 lines has a handful of distinct (activity, unit) pairs, and
        # each pint search costs about a millisecond.
        self._reachable: dict[tuple[str, str], tuple[str, ...]] = {}
        self._conversions: dict[tuple[str, str, str], PropertyConversion | None] = {}
        for prop in properties:
            for activity_id in prop.activity_ids:
                self.by_activity.setdefault(activity_id, []).append(prop)

    def of(self, activity_id: str) -> Sequence[Property]:
        return self.by_activity.get(activity_id, ())

    def reachable_dimensions(self, activity_id: str, unit_text: str) -> tuple[str, ...]:
        """The declared dimensions an amount in `unit_text` can become for this activity."""
        props = self.of(activity_id)
        if not props:
            return ()
        key = (activity_id, unit_text)
        if key not in self._reachable:
            self._reachable[key] = self._search_dimensions(props, unit_text)
        return self._reachable[key]

    def convert(self, activity_id: str, from_unit: str, to_unit: str) -> PropertyConversion | None:
        """`from_unit` → `to_unit` through the cited properties of `activity_id`, or None."""
        key = (activity_id, from_unit, to_unit)
        if key not in self._conversions:
            self._conversions[key] = self._search_conversion(
                list(self.of(activity_id)), from_unit, to_unit
            )
        return self._conversions[key]

    @staticmethod
    def _search_conversion(
        props: list[Property], from_unit: str, to_unit: str
    ) -> PropertyConversion | None:
        if not props:
            return None
        found = convert_with_properties(from_unit, to_unit, [(p.value, p.unit) for p in props])
        if found is None:
            return None
        multiplier, path = found
        return PropertyConversion(multiplier, tuple((props[i], sign) for i, sign in path))

    @staticmethod
    def _search_dimensions(props: Sequence[Property], unit_text: str) -> tuple[str, ...]:
        pairs = [(p.value, p.unit) for p in props]
        found = []
        for dimension in dict.fromkeys(ACCEPTED_UNITS.values()):
            target = units_of_dimension(dimension)[0]
            try:
                if convert_with_properties(unit_text, target, pairs) is not None:
                    found.append(dimension)
            except UnitError:
                continue
        return tuple(found)


@dataclass(frozen=True)
class PropertyConversion:
    multiplier: float
    used: tuple[tuple[Property, int], ...]  # (property, +1 multiplied / -1 divided)

    def described(self) -> list[dict[str, Any]]:
        return [
            {**prop.as_dict(), "applied": "multiplied" if sign > 0 else "divided"}
            for prop, sign in self.used
        ]


def convert_for_activity(
    index: PropertyIndex, activity_id: str, from_unit: str, to_unit: str
) -> PropertyConversion | None:
    """`from_unit` → `to_unit` through the cited properties of `activity_id`, or None."""
    return index.convert(activity_id, from_unit, to_unit)
