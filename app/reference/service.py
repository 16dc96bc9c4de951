"""Reading the reference tables for the API: plain queries, no writes (only the loader writes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.core.errors import NotFound
from app.core.problem_text import Message
from app.reference.conversions import load_properties
from app.reference.gwp import load_gwp_table
from app.reference.locations import MAX_DEPTH, region_chains
from app.reference.models import Activity, Location, LocationMember, ReferenceVersion
from app.reference.units import (
    ACCEPTED_UNITS,
    conversion_multiplier,
    parse_declared_unit,
    pint_spelling,
)

_LOCATION_FIELDS = ("code", "kind", "parent_code", "name_zh", "name_en", "source", "locator")


def _location(row: Location) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _LOCATION_FIELDS}


def reference_version(session: Session, name: str) -> str | None:
    return session.scalar(select(ReferenceVersion.sha256).where(ReferenceVersion.name == name))


def list_reference_versions(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(ReferenceVersion).order_by(ReferenceVersion.name))
    return [
        {
            "name": row.name,
            "sha256": row.sha256,
            "row_count": row.row_count,
            "files": row.files,
            "loaded_at": row.loaded_at,
        }
        for row in rows
    ]


def list_locations(
    session: Session,
    *,
    kind: str | None,
    parent: str | None,
    q: str | None,
    after: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of locations ordered by code, and the last code when more follow."""
    query = select(Location).order_by(Location.code).limit(limit + 1)
    if kind is not None:
        query = query.where(Location.kind == kind)
    if parent is not None:
        query = query.where(Location.parent_code == parent)
    if q:
        query = query.where(
            or_(
                Location.code.icontains(q, autoescape=True),
                Location.name_en.icontains(q, autoescape=True),
                Location.name_zh.icontains(q, autoescape=True),
            )
        )
    if after is not None:
        query = query.where(Location.code > after)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return [_location(row) for row in rows], rows[-1].code if more and rows else None


def _memberships(session: Session, *, of_member: str | None, of_grouping: str | None) -> list[Any]:
    other = LocationMember.grouping_code if of_member else LocationMember.member_code
    query = (
        select(
            Location.code,
            Location.kind,
            Location.name_zh,
            Location.name_en,
            LocationMember.source,
            LocationMember.locator,
            LocationMember.confidence,
        )
        .join(Location, Location.code == other)
        .order_by(Location.code)
    )
    if of_member:
        query = query.where(LocationMember.member_code == of_member)
    else:
        query = query.where(LocationMember.grouping_code == of_grouping)
    keys = ("code", "kind", "name_zh", "name_en", "source", "locator", "confidence")
    return [dict(zip(keys, row, strict=True)) for row in session.execute(query)]


def get_location(session: Session, *, code: str) -> dict[str, Any]:
    location = session.get(Location, code)
    if location is None:
        raise NotFound(Message("not_found.location", code=code))
    ancestors: list[dict[str, Any]] = []
    parent = location.parent_code
    while parent is not None and len(ancestors) < MAX_DEPTH:
        row = session.get(Location, parent)
        if row is None:
            break
        ancestors.append(_location(row))
        parent = row.parent_code
    children = session.scalar(
        select(func.count()).select_from(Location).where(Location.parent_code == code)
    )
    return {
        **_location(location),
        "ancestors": ancestors,
        "groupings": _memberships(session, of_member=code, of_grouping=None),
        "members": _memberships(session, of_member=None, of_grouping=code),
        "children": children or 0,
        "fallback_chain": list(region_chains(session, [code])[code].codes),
        "reference_version": reference_version(session, "locations"),
    }


def list_gwp(session: Session, *, gwp_set: str | None, gas: str | None) -> dict[str, Any]:
    table = load_gwp_table(session)
    items = [
        entry.as_dict()
        for entry in table.entries
        if (gwp_set is None or entry.gwp_set == gwp_set)
        and (gas is None or entry.gas.lower() == gas.lower())
    ]
    sets = [
        {
            "gwp_set": name,
            "source": table.source(name),
            "gases": sum(entry.gwp_set == name for entry in table.entries),
        }
        for name in table.sets()
        if gwp_set is None or name == gwp_set
    ]
    return {
        "items": items,
        "sets": sets,
        "reference_version": reference_version(session, "gwp"),
        "next": None,
    }


def list_units() -> dict[str, Any]:
    import pint

    items = []
    for name, dimension in ACCEPTED_UNITS.items():
        declared = parse_declared_unit(name)
        base = next(unit for unit, of in ACCEPTED_UNITS.items() if of == dimension)
        items.append(
            {
                "unit": declared.canonical,
                "dimension": dimension,
                "pint": pint_spelling(name),
                "base": {"unit": base, "amount": conversion_multiplier(name, base)},
            }
        )
    return {"items": items, "engine": f"pint {pint.__version__}", "next": None}


def list_conversion_properties(
    session: Session, *, activity_id: str | None, material: str | None
) -> dict[str, Any]:
    items = [
        prop.as_dict()
        for prop in load_properties(session)
        if (activity_id is None or activity_id in prop.activity_ids)
        and (material is None or prop.material == material)
    ]
    return {
        "items": items,
        "reference_version": reference_version(session, "conversion_properties"),
        "next": None,
    }


_ACTIVITY_FIELDS = (
    "id",
    "name_zh",
    "name_en",
    "description_zh",
    "description_en",
    "keywords_zh",
    "keywords_en",
    "source",
    "locator",
)


def _activity(row: Activity) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _ACTIVITY_FIELDS}


def list_activities(
    session: Session, *, q: str | None, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of activities ordered by id, and the last id when more follow.

    `q`: every whitespace-separated term in the id, a name or a keyword (as factor search
    reads activity labels)."""
    query = select(Activity).order_by(Activity.id).limit(limit + 1)
    if q:
        terms = [term.lower() for term in dict.fromkeys(q.split())]
        query = query.where(
            and_(*(Activity.search_text.contains(term, autoescape=True) for term in terms))
        )
    if after is not None:
        query = query.where(Activity.id > after)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return [_activity(row) for row in rows], rows[-1].id if more and rows else None


def get_activity(session: Session, *, activity_id: str) -> dict[str, Any]:
    activity = session.get(Activity, activity_id)
    if activity is None:
        raise NotFound(
            f"No activity '{activity_id}' in the activity labels: see GET /v1/activities. "
            "Factors may still use it (publishers may introduce activities): "
            f"GET /v1/factors?activity_id={activity_id}."
        )
    return {
        **_activity(activity),
        "reference_version": reference_version(session, "activities"),
    }
