"""Reading the reference tables for the API: plain queries, no writes (only the loader writes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.core.errors import NotFound
from app.core.problem_text import Message
from app.reference.conversions import load_properties
from app.reference.gwp import load_gwp_table
from app.reference.locations import MAX_DEPTH, region_chains
from app.reference.models import Activity, ActivityLabel, Location, LocationMember, ReferenceVersion
from app.reference.terms import MATCH_TERM, term_rule
from app.reference.units import (
    ACCEPTED_UNITS,
    UNIT_DEFINITIONS,
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
                "definition": UNIT_DEFINITIONS.get(name),
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
    return {
        **{name: getattr(row, name) for name in _ACTIVITY_FIELDS},
        "publisher": None,
        "labelled_in": None,
    }


def _publisher_activity(row: ActivityLabel) -> dict[str, Any]:
    """A publisher's labels, in the vocabulary's shape: the source is the release."""
    return {
        "id": row.activity_id,
        "name_zh": row.name_zh,
        "name_en": row.name_en,
        "description_zh": None,
        "description_en": None,
        "keywords_zh": row.keywords_zh,
        "keywords_en": row.keywords_en,
        "source": f"{row.publisher}'s own labels, given with the upload of {row.labelled_in}",
        "locator": f"upload file {row.upload_file_name or '(unnamed)'}, row {row.row_number}",
        "publisher": row.publisher,
        "labelled_in": row.labelled_in,
    }


def list_activities(
    session: Session,
    *,
    q: str | None,
    after: str | None,
    limit: int,
    match: str = MATCH_TERM,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of activities ordered by id, and the last id when more follow: the reference
    vocabulary and the labels publishers gave their own activities, merged by id.

    `q`: every whitespace-separated term in the id, a name or a keyword, matched as factor
    search matches them (`match`: as terms, see app.reference.terms, or as substrings)."""
    terms = [term.lower() for term in dict.fromkeys(q.split())] if q else []
    if terms:
        return _matching_activities(session, terms, after=after, limit=limit, match=match)
    reference = select(Activity).order_by(Activity.id).limit(limit + 1)
    published = select(ActivityLabel).order_by(ActivityLabel.activity_id).limit(limit + 1)
    if after is not None:
        reference = reference.where(Activity.id > after)
        published = published.where(ActivityLabel.activity_id > after)
    merged = {row.id: _activity(row) for row in session.scalars(reference)}
    for label in session.scalars(published):
        merged.setdefault(label.activity_id, _publisher_activity(label))  # reference first
    rows = [merged[key] for key in sorted(merged)][: limit + 1]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1]["id"] if more and rows else None


def _matching_activities(
    session: Session, terms: list[str], *, after: str | None, limit: int, match: str
) -> tuple[list[dict[str, Any]], str | None]:
    """The vocabulary rows that hold any term (the tables are small: read whole), each term's
    rule built from them, and the rows every term matches, in id order."""
    reference = list(
        session.scalars(
            select(Activity).where(
                or_(*(Activity.search_text.contains(term, autoescape=True) for term in terms))
            )
        )
    )
    published = list(
        session.scalars(
            select(ActivityLabel).where(
                or_(*(ActivityLabel.search_text.contains(term, autoescape=True) for term in terms))
            )
        )
    )
    vocabulary: list[Activity | ActivityLabel] = [*reference, *published]
    rules = [term_rule(term, vocabulary) for term in terms]

    def found(text: str) -> bool:
        if match == MATCH_TERM:
            return all(rule.term in text and rule.matches(text) for rule in rules)
        return all(term in text for term in terms)

    merged: dict[str, dict[str, Any]] = {}
    for row in reference:
        if found(row.search_text):
            merged[row.id] = _activity(row)
    for label in published:
        if found(label.search_text):
            merged.setdefault(label.activity_id, _publisher_activity(label))
    ids = [key for key in sorted(merged) if after is None or key > after]
    page = ids[:limit]
    return [merged[key] for key in page], page[-1] if len(ids) > limit else None


def get_activity(session: Session, *, activity_id: str) -> dict[str, Any]:
    activity = session.get(Activity, activity_id)
    if activity is None:
        label = session.get(ActivityLabel, activity_id)
        if label is not None:
            return {**_publisher_activity(label), "reference_version": None}
        raise NotFound(Message("not_found.activity", activity_id=activity_id))
    return {
        **_activity(activity),
        "reference_version": reference_version(session, "activities"),
    }
