"""GWP100 values used to check a factor's co2e against its gas breakdown.

Sources:
- AR4: IPCC AR4 WG1 Ch. 2 Table 2.14 (CH4 25, N2O 298), as tabulated in the GHG Protocol
  "Global Warming Potential Values" (2016) and openclimatedata/globalwarmingpotentials (CC0).
- AR5: IPCC AR5 WG1 Ch. 8 Table 8.A.1, without climate-carbon feedback (CH4 28, N2O 265).
- AR6: IPCC AR6 WG1 Ch. 7 Table 7.SM.7 (CH4 27.9, N2O 273), from the chapter's data
  repository IPCC-WG1/Chapter-7, data_output/7sm/metrics_supplement_cleaned.csv.
"""

from __future__ import annotations

from typing import Literal

GwpSet = Literal["AR4", "AR5", "AR6"]

GWP100: dict[str, dict[str, float]] = {
    "AR4": {"CO2": 1.0, "CH4": 25.0, "N2O": 298.0},
    "AR5": {"CO2": 1.0, "CH4": 28.0, "N2O": 265.0},
    "AR6": {"CO2": 1.0, "CH4": 27.9, "N2O": 273.0},
}

# co2e must agree with the gas breakdown within this relative tolerance (contract §2).
CO2E_TOLERANCE = 0.005


def co2e_from_gases(
    gwp_set: str, *, co2: float | None, ch4: float | None, n2o: float | None, other: float | None
) -> float:
    values = GWP100[gwp_set]
    return (
        (co2 or 0.0) + values["CH4"] * (ch4 or 0.0) + values["N2O"] * (n2o or 0.0) + (other or 0.0)
    )
