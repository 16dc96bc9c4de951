"""The location table: loaded from ISO 3166 (via pycountry), read as fallback chains.

Region fallback (`CN-GD` → `CN` → `GLO`) follows `location.parent_code`, never the shape of
a code: GB-ABC (Armagh City, Banbridge and Craigavon) falls back to GB-NIR (Northern
Ireland) before GB because ISO 3166-2 says so, not because of its spelling. Groupings (grid
regions, economic areas) are locations too; a region's chain visits the groupings it is a
member of right after the region itself, before its parent.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pycountry
from sqlalchemy import bindparam, literal_column, select
from sqlalchemy.orm import Session

from app.reference.models import Location, LocationMember

GLOBAL_CODE = "GLO"
GLOBAL_SOURCE = "efdb: root of the location hierarchy (contract §1, region GLO)"
# ISO 3166-2 nests at most three levels (e.g. GB-ABC → GB-NIR → GB); groupings add one.
MAX_DEPTH = 8


def _translator(domain: str) -> gettext.NullTranslations:
    return gettext.translation(domain, pycountry.LOCALES_DIR, languages=["zh_CN"], fallback=True)


def _chinese(translator: gettext.NullTranslations, name: str) -> str | None:
    translated = translator.gettext(name)
    return translated if translated != name else None


@lru_cache(maxsize=1)
def iso_locations() -> tuple[dict[str, Any], ...]:
    """GLO, the ISO 3166-1 countries (parent GLO) and ISO 3166-2 subdivisions, parents first."""
    version = getattr(pycountry, "__version__", "")
    countries_source = f"ISO 3166-1 via pycountry {version}".strip()
    subdivisions_source = f"ISO 3166-2 via pycountry {version}".strip()
    zh_countries = _translator("iso3166-1")
    zh_subdivisions = _translator("iso3166-2")
    rows: list[dict[str, Any]] = [
        {
            "code": GLOBAL_CODE,
            "kind": "global",
            "parent_code": None,
            "name_zh": "全球",
            "name_en": "Global",
            "source": GLOBAL_SOURCE,
        }
    ]
    for country in sorted(pycountry.countries, key=lambda c: c.alpha_2):
        rows.append(
            {
                "code": country.alpha_2,
                "kind": "country",
                "parent_code": GLOBAL_CODE,
                "name_zh": _chinese(zh_countries, country.name),
                "name_en": country.name,
                "source": countries_source,
            }
        )
    countries = {row["code"] for row in rows}
    subdivisions = {s.code: s for s in pycountry.subdivisions}

    def parent_of(code: str) -> str:
        parent = getattr(subdivisions[code], "parent_code", None)
        if parent in subdivisions:
            return str(parent)
        return str(subdivisions[code].country_code)

    def depth(code: str) -> int:
        steps = 0
        while code in subdivisions and steps <= MAX_DEPTH:
            code = parent_of(code)
            steps += 1
        return steps

    for code in sorted(subdivisions, key=lambda c: (depth(c), c)):
        subdivision = subdivisions[code]
        if subdivision.country_code not in countries:
            continue
        rows.append(
            {
                "code": code,
                "kind": "subdivision",
                "parent_code": parent_of(code),
                "name_zh": _chinese(zh_subdivisions, subdivision.name),
                "name_en": subdivision.name,
                "source": subdivisions_source,
            }
        )
    return tuple(rows)


def load_locations(session: Session) -> int:
    """Insert or update the shipped locations and groupings (idempotent), without an audit
    event: for tests and benchmarks. Services use `app.reference.loader.load_reference_data`."""
    from app.reference.loader import reference_rows, sync_locations

    return sync_locations(session, reference_rows())


@dataclass(frozen=True)
class ChainStep:
    """One place a region's chain visits: how it was reached, and what kind of place it is."""

    code: str
    kind: str | None  # None: not in the location table
    relation: str  # requested | member_of (a grouping of `of`) | parent (of `of`)
    of: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"region": self.code, "kind": self.kind, "relation": self.relation, "of": self.of}


@dataclass(frozen=True)
class RegionChain:
    """Where a region falls back to, nearest first; `known` is False for a code not in the table."""

    region: str
    codes: tuple[str, ...]
    known: bool
    steps: tuple[ChainStep, ...] = ()


def _chains_statement() -> Any:
    chain = (
        select(
            Location.code.label("start"),
            Location.code.label("code"),
            Location.parent_code.label("parent"),
            Location.kind.label("kind"),
            literal_column("0").label("depth"),
        )
        .where(Location.code.in_(bindparam("regions", expanding=True)))
        .cte("chain", recursive=True)
    )
    chain = chain.union_all(
        select(chain.c.start, Location.code, Location.parent_code, Location.kind, chain.c.depth + 1)
        .join(chain, Location.code == chain.c.parent)
        .where(chain.c.depth < MAX_DEPTH)
    )
    return (
        select(
            chain.c.start, chain.c.code, chain.c.depth, chain.c.kind, LocationMember.grouping_code
        )
        .outerjoin(LocationMember, LocationMember.member_code == chain.c.code)
        .order_by(chain.c.start, chain.c.depth, LocationMember.grouping_code)
    )


# Built once: the statement holds no data (the regions are a parameter).
_CHAINS = _chains_statement()


def region_chains(session: Session, regions: Iterable[str]) -> dict[str, RegionChain]:
    """The fallback chain of every region in one query (a recursive walk up `parent_code`,
    visiting the groupings each place is a member of right after it)."""
    wanted = sorted(set(regions))
    if not wanted:
        return {}
    rows = session.connection().execute(_CHAINS, {"regions": wanted}).all()
    walked: dict[str, list[ChainStep]] = {}
    for start, code, depth, kind, grouping in rows:
        steps = walked.setdefault(start, [])
        codes = [step.code for step in steps]
        if code not in codes:
            below = next((s.code for s in reversed(steps) if s.relation != "member_of"), None)
            relation = "requested" if depth == 0 else "parent"
            steps.append(ChainStep(code, kind, relation, below))
            codes.append(code)
        if grouping is not None and grouping not in codes:
            steps.append(ChainStep(grouping, "grouping", "member_of", code))
    chains: dict[str, RegionChain] = {}
    for region in wanted:
        if region in walked:
            found = tuple(walked[region])
            chains[region] = RegionChain(region, tuple(s.code for s in found), True, found)
        else:
            step = ChainStep(region, None, "requested", None)
            chains[region] = RegionChain(region, (region,), False, (step,))
    return chains
