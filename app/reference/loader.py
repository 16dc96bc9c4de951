"""Loading the reference tables from `seed_data/reference/`, versioned and audited.

Each reference table is built from files that cite every row (and, for locations, from the
ISO 3166 data of the pinned `pycountry` package). The version of a table is the sha256 over
what it is built from; `reference_version` holds the version loaded. `load_reference_data`
compares the two and rewrites only the tables whose inputs changed, then records one audit
event (`reference.loaded`) naming each changed table with its files' sha256. When nothing
changed it costs one small query, so `efdb db upgrade`, `efdb seed` and `efdb serve` all run
it.

Locations are never deleted: factors may name a code that ISO later withdraws, and their
region must stay explainable. Renamed or re-parented ones are updated in place.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pycountry
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from app.core.audit import append_event
from app.core.config import shipped_path
from app.core.db import utcnow
from app.reference.locations import iso_locations
from app.reference.models import (
    Activity,
    ConversionProperty,
    GwpValue,
    Location,
    LocationMember,
    ReferenceVersion,
)

REFERENCE_DIR = shipped_path("seed_data") / "reference"
REFERENCE_ACTOR = "efdb-reference"
# Bumped when the way rows are built from the files changes (so the version changes too).
BUILD_FORMAT = "1"

TABLE_FILES: dict[str, tuple[str, ...]] = {
    "locations": ("locations.csv", "location_members.csv", "location_names_zh.csv"),
    "gwp": ("gwp100.csv",),
    "conversion_properties": ("conversion_properties.csv",),
    "activities": ("activities.csv",),
}
ACTIVITY_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LOCATION_COLUMNS = ("code", "kind", "parent_code", "name_zh", "name_en", "source", "locator")


class ReferenceDataError(Exception):
    pass


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            {key: (value or "").strip() for key, value in row.items()}
            for row in csv.DictReader(handle)
        ]


def _cited(path: Path, rows: list[dict[str, str]], *fields: str) -> None:
    for number, row in enumerate(rows, start=2):
        missing = [name for name in ("source", *fields) if not row.get(name)]
        if missing:
            raise ReferenceDataError(f"{path.name} row {number}: {', '.join(missing)} empty")


def _file_digests(reference_dir: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((reference_dir / name).read_bytes()).hexdigest()
        for names in TABLE_FILES.values()
        for name in names
    }


def _version(table: str, digests: dict[str, str]) -> str:
    inputs: dict[str, Any] = {"format": BUILD_FORMAT, "files": {}}
    for name in TABLE_FILES[table]:
        inputs["files"][name] = digests[name]
    if table == "locations":
        inputs["pycountry"] = _pycountry_version()
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _pycountry_version() -> str:
    return str(getattr(pycountry, "__version__", "unknown"))


@dataclass(frozen=True)
class ReferenceRows:
    """Every reference row as the shipped files define them."""

    locations: tuple[dict[str, Any], ...]
    members: tuple[dict[str, Any], ...]
    gwp: tuple[dict[str, Any], ...]
    conversion_properties: tuple[dict[str, Any], ...]
    activities: tuple[dict[str, Any], ...]
    versions: dict[str, str]
    files: dict[str, str]


def _location_rows(reference_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    names_path = reference_dir / "location_names_zh.csv"
    names = _read_csv(names_path)
    _cited(names_path, names, "code", "name_zh", "locator")
    overrides = {row["code"]: row for row in names}
    rows: list[dict[str, Any]] = []
    for iso in iso_locations():
        row = {**iso, "locator": _iso_locator(iso)}
        override = overrides.get(iso["code"])
        if override is not None:
            row["name_zh"] = override["name_zh"]
            row["source"] = f"{iso['source']}; name_zh: {override['source']}"[:255]
            row["locator"] = f"{row['locator']}; name_zh: {override['locator']}"[:255]
        rows.append(row)
    known = {row["code"] for row in rows}
    unknown_overrides = sorted(set(overrides) - known)
    if unknown_overrides:
        raise ReferenceDataError(f"{names_path.name}: unknown codes {unknown_overrides}")
    extra_path = reference_dir / "locations.csv"
    extra = _read_csv(extra_path)
    _cited(extra_path, extra, "code", "kind", "locator")
    for row in extra:
        if row["parent_code"] and row["parent_code"] not in known:
            raise ReferenceDataError(f"{extra_path.name}: {row['code']}: unknown parent")
        rows.append({name: row.get(name) or None for name in _LOCATION_COLUMNS})
        known.add(row["code"])
    members_path = reference_dir / "location_members.csv"
    members = _read_csv(members_path)
    _cited(members_path, members, "grouping_code", "member_code")
    for row in members:
        for code in (row["grouping_code"], row["member_code"]):
            if code not in known:
                raise ReferenceDataError(f"{members_path.name}: unknown location {code}")
    member_rows = [
        {
            "grouping_code": row["grouping_code"],
            "member_code": row["member_code"],
            "source": row["source"],
            "locator": row.get("locator") or None,
            "confidence": row.get("confidence") or None,
        }
        for row in members
    ]
    return rows, member_rows


def _iso_locator(row: dict[str, Any]) -> str | None:
    if row["kind"] == "country":
        return f"ISO 3166-1 alpha-2 {row['code']}"
    if row["kind"] == "subdivision":
        return f"ISO 3166-2 {row['code']}"
    return None


def _number(path: Path, row: dict[str, str], name: str) -> float | None:
    text = row.get(name, "")
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise ReferenceDataError(f"{path.name}: {name} '{text}' is not a number") from exc


def _gwp_rows(reference_dir: Path) -> list[dict[str, Any]]:
    path = reference_dir / "gwp100.csv"
    rows = _read_csv(path)
    _cited(path, rows, "gwp_set", "gas", "value", "locator")
    return [
        {
            "gwp_set": row["gwp_set"],
            "gas": row["gas"],
            "value": _number(path, row, "value"),
            "source": row["source"],
            "locator": row["locator"],
            "note": row.get("note") or None,
        }
        for row in rows
    ]


def _property_rows(reference_dir: Path) -> list[dict[str, Any]]:
    path = reference_dir / "conversion_properties.csv"
    rows = _read_csv(path)
    _cited(path, rows, "code", "material", "quantity", "value", "unit", "locator")
    return [
        {
            "code": row["code"],
            "material": row["material"],
            "name_en": row.get("name_en") or None,
            "name_zh": row.get("name_zh") or None,
            "quantity": row["quantity"],
            "value": _number(path, row, "value"),
            "unit": row["unit"],
            "low": _number(path, row, "low"),
            "high": _number(path, row, "high"),
            "activity_ids": row.get("activity_ids", "").split(),
            "source": row["source"],
            "locator": row["locator"],
        }
        for row in rows
    ]


def _keywords(text: str) -> list[str]:
    return [word.strip() for word in text.split(";") if word.strip()]


def activity_search_text(row: dict[str, Any]) -> str:
    """What `q` matches in an activity: its id, names and keywords, lowercased, one a line."""
    texts = [row["id"], row["name_zh"], row["name_en"], *row["keywords_zh"], *row["keywords_en"]]
    return "\n".join(" ".join(text.split()) for text in texts if text).lower()


def _activity_rows(reference_dir: Path) -> list[dict[str, Any]]:
    path = reference_dir / "activities.csv"
    rows = _read_csv(path)
    _cited(path, rows, "id", "name_zh", "name_en", "locator")
    seen: set[str] = set()
    activities = []
    for number, row in enumerate(rows, start=2):
        if not ACTIVITY_ID.fullmatch(row["id"]) or len(row["id"]) > 128:
            raise ReferenceDataError(
                f"{path.name} row {number}: '{row['id']}' is not an activity id"
            )
        if row["id"] in seen:
            raise ReferenceDataError(f"{path.name} row {number}: '{row['id']}' appears twice")
        seen.add(row["id"])
        activity: dict[str, Any] = {
            "id": row["id"],
            "name_zh": row["name_zh"],
            "name_en": row["name_en"],
            "description_zh": row.get("description_zh") or None,
            "description_en": row.get("description_en") or None,
            "keywords_zh": _keywords(row.get("keywords_zh", "")),
            "keywords_en": _keywords(row.get("keywords_en", "")),
            "source": row["source"],
            "locator": row["locator"],
        }
        activity["search_text"] = activity_search_text(activity)
        activities.append(activity)
    return activities


def reference_versions(
    reference_dir: Path = REFERENCE_DIR,
) -> tuple[dict[str, str], dict[str, str]]:
    """(version per table, sha256 per file): cheap, reads the files only."""
    digests = _file_digests(reference_dir)
    return {table: _version(table, digests) for table in TABLE_FILES}, digests


@lru_cache(maxsize=4)
def reference_rows(reference_dir: Path = REFERENCE_DIR) -> ReferenceRows:
    """The rows the shipped files define (cached per process: the files ship with the code)."""
    versions, digests = reference_versions(reference_dir)
    locations, members = _location_rows(reference_dir)
    return ReferenceRows(
        locations=tuple(locations),
        members=tuple(members),
        gwp=tuple(_gwp_rows(reference_dir)),
        conversion_properties=tuple(_property_rows(reference_dir)),
        activities=tuple(_activity_rows(reference_dir)),
        versions=versions,
        files=digests,
    )


# --------------------------------------------------------------------------- writing


def _copy_locations(session: Session, rows: list[dict[str, Any]]) -> None:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # COPY: ~10x faster than an INSERT executemany for the ~5,300 rows (parents first,
        # so the self-referencing foreign key holds row by row too).
        driver = connection.connection.driver_connection
        with (
            driver.cursor() as cursor,  # type: ignore[union-attr]
            cursor.copy(f"COPY location ({', '.join(_LOCATION_COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([row[name] for name in _LOCATION_COLUMNS])
    else:
        session.execute(insert(Location), rows)


def sync_locations(session: Session, rows: ReferenceRows) -> int:
    """Insert missing locations, update changed ones, replace the memberships; rows changed."""
    existing = {
        row[0]: tuple(row)
        for row in session.execute(select(*(getattr(Location, c) for c in _LOCATION_COLUMNS)))
    }
    missing = [row for row in rows.locations if row["code"] not in existing]
    changed = [
        row
        for row in rows.locations
        if row["code"] in existing
        and existing[row["code"]] != tuple(row[name] for name in _LOCATION_COLUMNS)
    ]
    if missing:
        _copy_locations(session, missing)
    if changed:
        session.execute(update(Location), changed)
    current_members = {
        tuple(row)
        for row in session.execute(
            select(
                LocationMember.grouping_code,
                LocationMember.member_code,
                LocationMember.source,
                LocationMember.locator,
                LocationMember.confidence,
            )
        )
    }
    wanted_members = {
        (m["grouping_code"], m["member_code"], m["source"], m["locator"], m["confidence"])
        for m in rows.members
    }
    member_changes = 0
    if current_members != wanted_members:
        session.execute(delete(LocationMember))
        if rows.members:
            session.execute(insert(LocationMember), list(rows.members))
        member_changes = len(current_members ^ wanted_members)
    session.flush()
    return len(missing) + len(changed) + member_changes


def _replace(session: Session, model: type[Any], rows: tuple[dict[str, Any], ...]) -> None:
    session.execute(delete(model))
    if rows:
        session.execute(insert(model), list(rows))


@dataclass(frozen=True)
class LoadResult:
    changed: dict[str, str]  # table -> new version
    versions: dict[str, str]


def load_reference_data(
    session: Session,
    reference_dir: Path = REFERENCE_DIR,
    *,
    actor: str = REFERENCE_ACTOR,
    audit: bool = True,
) -> LoadResult:
    """Bring every reference table to the version of the shipped files (idempotent).

    Records one `reference.loaded` audit event when something changed (unless `audit` is
    False: the test template, whose audit chain must start empty like a new database's).
    """
    versions, digests = reference_versions(reference_dir)
    loaded = {row.name: row for row in session.scalars(select(ReferenceVersion))}
    previous = {table: row.sha256 for table, row in loaded.items()}
    stale = [table for table, version in versions.items() if previous.get(table) != version]
    if not stale:
        return LoadResult({}, versions)
    rows = reference_rows(reference_dir)
    if rows.versions != versions:  # the files changed since this process cached them
        reference_rows.cache_clear()
        rows = reference_rows(reference_dir)
    counts: dict[str, int] = {}
    for table in stale:
        if table == "locations":
            sync_locations(session, rows)
            counts[table] = len(rows.locations) + len(rows.members)
        elif table == "gwp":
            _replace(session, GwpValue, rows.gwp)
            counts[table] = len(rows.gwp)
        elif table == "activities":
            _replace(session, Activity, rows.activities)
            counts[table] = len(rows.activities)
        else:
            _replace(session, ConversionProperty, rows.conversion_properties)
            counts[table] = len(rows.conversion_properties)
        files = {name: digests[name] for name in TABLE_FILES[table]}
        if table == "locations":
            files["pycountry"] = _pycountry_version()
        record = loaded.get(table)
        if record is None:
            record = ReferenceVersion(name=table)
            session.add(record)
        record.sha256 = versions[table]
        record.row_count = counts[table]
        record.files = files
        record.loaded_at = utcnow()
    session.flush()
    if audit:
        append_event(
            session,
            actor=actor,
            action="reference.loaded",
            subject_type="reference",
            subject_id=",".join(sorted(stale)),
            payload={
                table: {
                    "version": versions[table],
                    "previous_version": previous.get(table),
                    "rows": counts[table],
                    "files": {
                        f"seed_data/reference/{name}": digests[name] for name in TABLE_FILES[table]
                    },
                }
                for table in sorted(stale)
            },
        )
    return LoadResult({table: versions[table] for table in stale}, versions)
