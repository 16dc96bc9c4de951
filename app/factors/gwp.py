"""GWP100 values: checking a factor's co2e against its gases, and recomputing it in another set.

Sources (each set's citation travels with every recomputed answer as `gwp_source`):
- AR4: IPCC AR4 WG1 Ch. 2 Table 2.14 (CH4 25, N2O 298), as tabulated in the GHG Protocol
  "Global Warming Potential Values" (2016) and openclimatedata/globalwarmingpotentials (CC0).
- AR5: IPCC AR5 WG1 Ch. 8 Table 8.A.1, without climate-carbon feedback (CH4 28, N2O 265).
- AR6: IPCC AR6 WG1 Ch. 7 Table 7.SM.7 (CH4 27.9, N2O 273), from the chapter's data
  repository IPCC-WG1/Chapter-7, data_output/7sm/metrics_supplement_cleaned.csv. (Table 7.15
  splits CH4 into fossil 29.8 and non-fossil 27.0; factors carry one `ch4`, so 27.9 is used.)

The table lives here until reference data moves into the database (contract §11,
`gwp_value`); callers go through `gwp_values`/`gwp_source`/`recompute_co2e` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from app.factors.units import clean_float

GwpSet = Literal["AR4", "AR5", "AR6"]
GWP_SETS: tuple[str, ...] = get_args(GwpSet)

GWP100: dict[str, dict[str, float]] = {
    "AR4": {"CO2": 1.0, "CH4": 25.0, "N2O": 298.0},
    "AR5": {"CO2": 1.0, "CH4": 28.0, "N2O": 265.0},
    "AR6": {"CO2": 1.0, "CH4": 27.9, "N2O": 273.0},
}

GWP_SOURCES: dict[str, str] = {
    "AR4": "IPCC AR4 WG1 Ch. 2, Table 2.14 (GWP100: CH4 25, N2O 298)",
    "AR5": "IPCC AR5 WG1 Ch. 8, Table 8.A.1, without climate-carbon feedback "
    "(GWP100: CH4 28, N2O 265)",
    "AR6": "IPCC AR6 WG1 Ch. 7, Table 7.SM.7 (GWP100: CH4 27.9, N2O 273)",
}

# co2e must agree with the gas breakdown within this relative tolerance (contract §2).
CO2E_TOLERANCE = 0.005


def gwp_values(gwp_set: str) -> dict[str, float]:
    return GWP100[gwp_set]


def gwp_source(gwp_set: str) -> str:
    return GWP_SOURCES[gwp_set]


def co2e_from_gases(
    gwp_set: str, *, co2: float | None, ch4: float | None, n2o: float | None, other: float | None
) -> float:
    values = gwp_values(gwp_set)
    return (
        (co2 or 0.0) + values["CH4"] * (ch4 or 0.0) + values["N2O"] * (n2o or 0.0) + (other or 0.0)
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

    @property
    def ratio(self) -> float:
        return self.co2e / self.original_co2e if self.original_co2e else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "status": self.status,
            "detail": self.detail,
            "gwp_source": gwp_source(self.requested),
            "original_gwp_set": self.original_gwp_set,
            "original_co2e": self.original_co2e,
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
) -> GwpConversion:
    """co2e in the `requested` GWP100 set, from the factor's gas breakdown where it has one."""

    def result(
        status: Literal["recomputed", "unchanged", "not_possible"], detail: str, value: float
    ) -> GwpConversion:
        return GwpConversion(requested, status, detail, value, co2e, gwp_set)

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
    values = gwp_values(requested)
    recomputed = clean_float(
        co2e_from_gases(requested, co2=co2, ch4=ch4, n2o=n2o, other=other_ghg_co2e)
    )
    detail = f"co2e = co2 + {values['CH4']:g}·ch4 + {values['N2O']:g}·n2o"
    if other_ghg_co2e is not None:
        detail += f" + other_ghg_co2e (kept as given in {gwp_set}: its gases are not itemised)"
    return result(
        "recomputed", f"{detail}; was {co2e:g} in {gwp_set or 'an unstated set'}", recomputed
    )


def _close(a: float, b: float) -> bool:
    """Equal up to float noise: co2 0.18253 of co2e 0.18290 is within the 0.5 % upload
    tolerance, but the rest is CH4 and N2O whose CO2e depends on the GWP set."""
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12)


GWP_PAYLOAD_FIELDS = ("co2e", "gwp_set", "uncertainty_low", "uncertainty_high")


def apply_gwp(factor: dict[str, Any], requested: str | None) -> dict[str, Any]:
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
