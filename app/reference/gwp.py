"""GWP100 values: checking a factor's co2e against its gases, and recomputing it in another set.

The values are reference data (contract §11): the `gwp_value` table, loaded from
`seed_data/reference/gwp100.csv` where every value cites its IPCC table. No GWP number lives
in this module; callers pass a `GwpTable` read from the database once per request
(`load_gwp_table`), and each answer names the citation it used as `gwp_source`.
`shipped_gwp_table` reads the same file for code without a database (benchmarks, defaults).
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import shipped_path
from app.reference.models import GwpValue
from app.reference.units import clean_float

GwpSet = Literal["AR4", "AR5", "AR6"]
GWP_SETS: tuple[str, ...] = get_args(GwpSet)
# The gases a factor itemises (co2, ch4, n2o); other gases arrive already in CO2e.
BREAKDOWN_GASES = ("CO2", "CH4", "N2O")

# co2e must agree with the gas breakdown within this relative tolerance (contract §2).
CO2E_TOLERANCE = 0.005

GWP_FILE = shipped_path("seed_data") / "reference" / "gwp100.csv"


# The origin of a factor's CH4, where a set distinguishes it: AR6 WG1 Ch. 7 Table 7.15 gives
# fossil and non-fossil methane their own GWP100 (rows `CH4-fossil` and `CH4-non-fossil` of
# the gwp_value table); AR4 and AR5 have one CH4 value, used for either origin.
CH4_ORIGIN_GAS = {"fossil": "CH4-fossil", "non_fossil": "CH4-non-fossil"}
# The default when the publisher declared no origin: the CH4 of fuel combustion is fossil (a
# category path of `energy/` with a segment ending in `combustion`, e.g.
# `energy/stationary-combustion/energy-industries`). Fuel combustion's CH4 comes from burning
# the fuel itself (IPCC 2006 Guidelines Vol. 2 Ch. 2 counts it per fossil fuel type, Table
# 2.2); a publisher of biomass fuels declares `non_fossil`. Any other category has no default:
# the set's single CH4 value applies (AR6: 27.9, Table 7.SM.7) and the answer says so.
CH4_ORIGIN_RULE = (
    "default for fuel combustion (category energy/…combustion…): fossil, unless the "
    "publisher declares ch4_origin"
)


def default_ch4_origin(category: str | None) -> str | None:
    """The CH4 origin the default rule gives a factor of this category (None: no default)."""
    if not category:
        return None
    segments = category.split("/")
    if segments[0] == "energy" and any(part.endswith("combustion") for part in segments[1:]):
        return "fossil"
    return None


class GwpUnavailable(LookupError):
    """The table has no value for a gas the computation needs."""


@dataclass(frozen=True)
class GwpEntry:
    gwp_set: str
    gas: str
    value: float
    source: str
    locator: str
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "gwp_set": self.gwp_set,
            "gas": self.gas,
            "value": self.value,
            "source": self.source,
            "locator": self.locator,
            "note": self.note,
        }


@dataclass(frozen=True)
class GwpTable:
    """GWP100 values by (set, gas), each with its citation."""

    entries: tuple[GwpEntry, ...]
    _index: dict[tuple[str, str], GwpEntry] = field(init=False, repr=False, compare=False)
    _multipliers: dict[tuple[str, str | None], tuple[float, float, float]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_index", {(entry.gwp_set, entry.gas): entry for entry in self.entries}
        )
        object.__setattr__(self, "_multipliers", {})

    @classmethod
    def of(cls, entries: Iterable[GwpEntry]) -> GwpTable:
        return cls(tuple(entries))

    def sets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(entry.gwp_set for entry in self.entries))

    def entry(self, gwp_set: str, gas: str) -> GwpEntry:
        found = self._index.get((gwp_set, gas))
        if found is None:
            raise GwpUnavailable(f"no GWP100 for {gas} in {gwp_set} in the reference data")
        return found

    def value(self, gwp_set: str, gas: str) -> float:
        return self.entry(gwp_set, gas).value

    def ch4_entry(self, gwp_set: str, origin: str | None) -> GwpEntry:
        """The CH4 value of `gwp_set` for methane of this origin: the origin's own row where
        the set has one (AR6), else the set's single CH4 value (AR4, AR5, or no origin)."""
        if origin in CH4_ORIGIN_GAS:
            found = self._index.get((gwp_set, CH4_ORIGIN_GAS[origin]))
            if found is not None:
                return found
        return self.entry(gwp_set, "CH4")

    def multipliers(self, gwp_set: str, ch4_origin: str | None) -> tuple[float, float, float]:
        """The CO2, CH4 (of this origin) and N2O values of `gwp_set`, each looked up (and
        refused when missing) in the order `values` takes them; kept once found, as every
        upload row asks for them."""
        found = self._multipliers.get((gwp_set, ch4_origin))
        if found is None:
            co2_value = self.value(gwp_set, "CO2")
            self.entry(gwp_set, "CH4")
            n2o_value = self.value(gwp_set, "N2O")
            found = (co2_value, self.ch4_entry(gwp_set, ch4_origin).value, n2o_value)
            self._multipliers[(gwp_set, ch4_origin)] = found
        return found

    def values(self, gwp_set: str) -> dict[str, float]:
        """The values of the gases a factor itemises (CO2, CH4, N2O) in one set."""
        return {gas: self.value(gwp_set, gas) for gas in BREAKDOWN_GASES}

    def source(self, gwp_set: str, ch4_origin: str | None = None) -> str:
        """The citation of the values a recomputation in `gwp_set` uses (CH4 and N2O)."""
        used = [self.ch4_entry(gwp_set, ch4_origin), self.entry(gwp_set, "N2O")]
        sources = "; ".join(dict.fromkeys(entry.source for entry in used))
        numbers = ", ".join(f"{entry.gas} {entry.value:g}" for entry in used)
        return f"{sources} (GWP100: {numbers}; efdb reference table gwp_value)"


def load_gwp_table(session: Session) -> GwpTable:
    """The GWP100 table as the database holds it (one query)."""
    rows = session.execute(
        select(
            GwpValue.gwp_set,
            GwpValue.gas,
            GwpValue.value,
            GwpValue.source,
            GwpValue.locator,
            GwpValue.note,
        ).order_by(GwpValue.gwp_set, GwpValue.gas)
    )
    return GwpTable.of(GwpEntry(*row) for row in rows)


def gwp_table_for(session: Session, requested: str | None) -> GwpTable | None:
    """The table when a GWP set is requested; no query otherwise."""
    return None if requested is None else load_gwp_table(session)


@lru_cache(maxsize=1)
def shipped_gwp_table() -> GwpTable:
    """The table as `seed_data/reference/gwp100.csv` ships it (for code without a database)."""
    with GWP_FILE.open(newline="", encoding="utf-8") as handle:
        return GwpTable.of(
            GwpEntry(
                row["gwp_set"],
                row["gas"],
                float(row["value"]),
                row["source"],
                row["locator"],
                row.get("note") or None,
            )
            for row in csv.DictReader(handle)
        )


def gwp_values(gwp_set: str, table: GwpTable | None = None) -> dict[str, float]:
    return (table or shipped_gwp_table()).values(gwp_set)


def gwp_source(gwp_set: str, ch4_origin: str | None = None, table: GwpTable | None = None) -> str:
    return (table or shipped_gwp_table()).source(gwp_set, ch4_origin)


def co2e_from_gases(
    gwp_set: str,
    *,
    co2: float | None,
    ch4: float | None,
    n2o: float | None,
    other: float | None,
    table: GwpTable | None = None,
    ch4_origin: str | None = None,
) -> float:
    co2_value, ch4_value, n2o_value = (table or shipped_gwp_table()).multipliers(
        gwp_set, ch4_origin
    )
    return (
        co2_value * (co2 or 0.0)
        + ch4_value * (ch4 or 0.0)
        + n2o_value * (n2o or 0.0)
        + (other or 0.0)
    )


@dataclass(frozen=True)
class GwpConversion:
    """What asking for a factor in another GWP100 set did to its co2e."""

    requested: str
    status: Literal["recomputed", "unchanged", "not_possible"]
    detail: str
    co2e: float
    original_co2e: float
    original_gwp_set: str | None
    source: str
    values_applied: tuple[dict[str, Any], ...] = ()

    @property
    def ratio(self) -> float:
        return self.co2e / self.original_co2e if self.original_co2e else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "status": self.status,
            "detail": self.detail,
            "gwp_source": self.source,
            "original_gwp_set": self.original_gwp_set,
            "original_co2e": self.original_co2e,
            "values_applied": [dict(value) for value in self.values_applied],
        }


def recompute_co2e(
    requested: str,
    *,
    co2e: float,
    gwp_set: str | None,
    co2: float | None,
    ch4: float | None,
    n2o: float | None,
    other_ghg_co2e: float | None,
    table: GwpTable | None = None,
    ch4_origin: str | None = None,
    category: str | None = None,
) -> GwpConversion:
    """co2e in the `requested` GWP100 set, from the factor's gas breakdown where it has one.

    `ch4_origin` is the origin the publisher declared; without one, the default rule of
    `default_ch4_origin` applies to the factor's `category`.
    """
    gwp = table or shipped_gwp_table()
    origin, basis = _ch4_origin(ch4_origin, category)
    try:
        source = gwp.source(requested, origin)
    except GwpUnavailable as exc:
        # Only a database whose reference data was never loaded (`efdb db upgrade` loads it).
        return GwpConversion(
            requested,
            "not_possible",
            f"{exc}, so co2e is kept as published",
            co2e,
            co2e,
            gwp_set,
            "",
        )

    def result(
        status: Literal["recomputed", "unchanged", "not_possible"],
        detail: str,
        value: float,
        applied: tuple[dict[str, Any], ...] = (),
    ) -> GwpConversion:
        return GwpConversion(requested, status, detail, value, co2e, gwp_set, source, applied)

    has_other_gases = ch4 is not None or n2o is not None
    if not has_other_gases:
        if co2 is not None and other_ghg_co2e is None and _close(co2, co2e):
            return result("unchanged", "CO2 only: the value is the same in every GWP set", co2e)
        if co2 is None:
            why = "the factor gives no gas breakdown"
        else:
            why = "the factor gives CO2 only and co2e includes other gases in an unknown split"
        return result(
            "not_possible",
            f"{why}, so co2e is kept as published ({gwp_set or 'GWP set not stated'})",
            co2e,
        )
    if gwp_set == requested:
        return result("unchanged", f"already in {requested}", co2e)
    values = gwp.values(requested)
    ch4_used = gwp.ch4_entry(requested, origin)
    values["CH4"] = ch4_used.value
    recomputed = clean_float(
        co2e_from_gases(
            requested,
            co2=co2,
            ch4=ch4,
            n2o=n2o,
            other=other_ghg_co2e,
            table=gwp,
            ch4_origin=origin,
        )
    )
    if not math.isfinite(recomputed):
        return result(
            "not_possible",
            f"co2e in {requested} (co2 + {values['CH4']:g}·ch4 + {values['N2O']:g}·n2o) is not "
            f"a finite number (beyond ±{sys.float_info.max:.3g}), so co2e is kept as published "
            f"({gwp_set or 'GWP set not stated'})",
            co2e,
        )
    detail = f"co2e = co2 + {values['CH4']:g}·ch4 + {values['N2O']:g}·n2o"
    if other_ghg_co2e is not None:
        detail += f" + other_ghg_co2e (kept as given in {gwp_set}: its gases are not itemised)"
    applied: list[dict[str, Any]] = []
    if ch4 is not None:
        applied.append(_applied("CH4", ch4_used, origin, basis, requested))
        detail += f"; CH4: {applied[-1]['why']}"
    if n2o is not None:
        applied.append(_applied("N2O", gwp.entry(requested, "N2O"), None, None, requested))
    return result(
        "recomputed",
        f"{detail}; was {co2e:g} in {gwp_set or 'an unstated set'}",
        recomputed,
        tuple(applied),
    )


def _ch4_origin(declared: str | None, category: str | None) -> tuple[str | None, str | None]:
    """The CH4 origin used and on what basis: declared, the default rule, or none."""
    if declared is not None:
        return declared, "declared by the publisher"
    default = default_ch4_origin(category)
    if default is not None:
        return default, CH4_ORIGIN_RULE
    return None, None


def _applied(
    gas: str, entry: GwpEntry, origin: str | None, basis: str | None, requested: str
) -> dict[str, Any]:
    """One gas's GWP100 as a recomputation applied it, and why that value."""
    if gas != "CH4":
        why = f"{entry.value:g}, the {requested} value"
    elif entry.gas != "CH4":
        why = f"{entry.value:g}, {requested} {entry.gas} ({origin}: {basis})"
    elif origin is not None:
        why = (
            f"{entry.value:g}, the single CH4 value of {requested} (the set does not "
            f"distinguish fossil from non-fossil methane; origin {origin}: {basis})"
        )
    else:
        why = (
            f"{entry.value:g}, the {requested} CH4 value without origin (the factor declares "
            "no ch4_origin and its category has no default)"
        )
    return {
        "gas": gas,
        "gwp100": entry.value,
        "gwp_table_gas": entry.gas,
        "ch4_origin": origin if gas == "CH4" else None,
        "ch4_origin_basis": basis if gas == "CH4" else None,
        "source": entry.source,
        "why": why,
    }


def _close(a: float, b: float) -> bool:
    """Equal up to float noise: co2 0.18253 of co2e 0.18290 is within the 0.5 % upload
    tolerance, but the rest is CH4 and N2O whose CO2e depends on the GWP set."""
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12)


GWP_PAYLOAD_FIELDS = ("co2e", "gwp_set", "uncertainty_low", "uncertainty_high")


def apply_gwp(
    factor: dict[str, Any], requested: str | None, table: GwpTable | None = None
) -> dict[str, Any]:
    """A factor payload answered in the `requested` GWP set, saying what was done.

    Recomputed: `co2e` and `gwp_set` are the requested set's and the uncertainty bounds are
    scaled by the same ratio (the relative interval is kept). Otherwise the record is as
    published and `gwp_conversion` says why.
    """
    if requested is None:
        return factor
    conversion = recompute_co2e(
        requested,
        co2e=factor["co2e"],
        gwp_set=factor["gwp_set"],
        co2=factor["co2"],
        ch4=factor["ch4"],
        n2o=factor["n2o"],
        other_ghg_co2e=factor["other_ghg_co2e"],
        table=table,
        ch4_origin=factor.get("ch4_origin"),
        category=factor.get("category"),
    )
    bounds = {
        bound: clean_float(factor[bound] * conversion.ratio)
        for bound in ("uncertainty_low", "uncertainty_high")
        if factor[bound] is not None
    }
    if conversion.status == "recomputed" and not all(map(math.isfinite, bounds.values())):
        conversion = replace(
            conversion,
            status="not_possible",
            detail=f"the uncertainty bounds scaled to {requested} are not finite numbers "
            f"(beyond ±{sys.float_info.max:.3g}), so the factor is kept as published",
            co2e=conversion.original_co2e,
        )
    if conversion.status == "recomputed":
        ratio = conversion.ratio
        factor["co2e"] = conversion.co2e
        factor["gwp_set"] = requested
        scaled = False
        for bound in ("uncertainty_low", "uncertainty_high"):
            if factor[bound] is not None:
                factor[bound] = clean_float(factor[bound] * ratio)
                scaled = True
        described = conversion.as_dict()
        if scaled:
            described["detail"] += "; uncertainty bounds scaled by the same ratio"
        factor["gwp_conversion"] = described
        return factor
    factor["gwp_conversion"] = conversion.as_dict()
    return factor
