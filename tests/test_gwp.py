"""GWP100 sets: the arithmetic against hand-computed values, and `?gwp=` on search and lookup."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.reference.gwp import apply_gwp, gwp_source, recompute_co2e, shipped_gwp_table
from app.reference.models import GwpValue
from tests.test_factors_api import assert_problem, lookup, search
from tests.test_reference_data import edited_reference

# IPCC 2006 Vol. 2 Table 2.2, natural gas: CO2 56 100, CH4 1, N2O 0.1 kg/TJ.
NATURAL_GAS: dict[str, Any] = {"co2": 56100.0, "ch4": 1.0, "n2o": 0.1, "other_ghg_co2e": None}
# (set, CO2e by hand)
HAND_COMPUTED = [
    ("AR4", 56154.8),  # 56100 + 25*1 + 298*0.1 = 56100 + 25 + 29.8
    ("AR5", 56154.5),  # 56100 + 28*1 + 265*0.1 = 56100 + 28 + 26.5
    ("AR6", 56155.2),  # 56100 + 27.9*1 + 273*0.1 = 56100 + 27.9 + 27.3
]


# GWP100 read in IPCC AR4 WG1 Table 2.14, AR5 WG1 Table 8.A.1 (no climate-carbon feedback) and
# AR6 WG1 Table 7.SM.7, as tabulated in openclimatedata/globalwarmingpotentials (CC0) and the
# chapter's data repository IPCC-WG1/Chapter-7 (see /work/shared/data/reference-figures.md §2).
IPCC_GWP100 = {
    "AR4": {"CO2": 1.0, "CH4": 25.0, "N2O": 298.0},
    "AR5": {"CO2": 1.0, "CH4": 28.0, "N2O": 265.0},
    "AR6": {"CO2": 1.0, "CH4": 27.9, "N2O": 273.0},
}


def test_the_shipped_gwp100_table_is_the_ipcc_one() -> None:
    table = shipped_gwp_table()
    assert {name: table.values(name) for name in IPCC_GWP100} == IPCC_GWP100
    assert "Table 2.14" in gwp_source("AR4")
    assert "Table 8.A.1" in gwp_source("AR5")
    assert "Table 7.SM.7" in gwp_source("AR6")


def test_the_api_lists_the_table_with_its_sources(client: TestClient) -> None:
    response = client.get("/v1/gwp")
    assert response.status_code == 200, response.text
    body = response.json()
    values = {(item["gwp_set"], item["gas"]): item for item in body["items"]}
    for gwp_set, gases in IPCC_GWP100.items():
        for gas, value in gases.items():
            assert values[(gwp_set, gas)]["value"] == value
    for item in body["items"]:
        assert item["source"], item
        assert item["locator"], item
    # AR6 distinguishes fossil and non-fossil methane (Table 7.15: 29.8 and 27.0).
    assert values[("AR6", "CH4-fossil")]["value"] == 29.8
    assert values[("AR6", "CH4-non-fossil")]["value"] == 27.0
    # SF6, NF3 and the common HFCs in every set, e.g. HFC-134a 1430 / 1300 / 1530.
    for gas in ("SF6", "NF3", "HFC-23", "HFC-32", "HFC-125", "HFC-134a", "HFC-143a"):
        assert {s for s, g in values if g == gas} == {"AR4", "AR5", "AR6"}, gas
    assert [values[(s, "HFC-134a")]["value"] for s in ("AR4", "AR5", "AR6")] == [
        1430.0,
        1300.0,
        1530.0,
    ]
    assert {entry["gwp_set"] for entry in body["sets"]} == {"AR4", "AR5", "AR6"}
    assert len(body["reference_version"]) == 64
    only = client.get("/v1/gwp", params={"gwp_set": "AR5", "gas": "ch4"}).json()["items"]
    assert [(item["gwp_set"], item["gas"], item["value"]) for item in only] == [
        ("AR5", "CH4", 28.0)
    ]
    assert_problem(client.get("/v1/gwp", params={"set": "AR5"}), 422)
    assert_problem(client.get("/v1/gwp", params={"gwp_set": "AR7"}), 422)


@pytest.fixture
def edited_gwp(session: Session) -> Any:
    """The database's AR6 fossil CH4 set to 30 (a deliberate edit), restored afterwards."""
    with edited_reference(
        session,
        "gwp",
        update(GwpValue)
        .where(GwpValue.gwp_set == "AR6", GwpValue.gas == "CH4-fossil")
        .values(value=30.0),
    ):
        yield


def test_recomputation_reads_the_database_table(
    client: TestClient, seeded: None, edited_gwp: None
) -> None:
    # 56100 + 30*1 + 273*0.1 = 56157.3: the edited row (the seeded natural gas is fuel
    # combustion, so fossil methane), not a number in code, is used.
    factor = lookup(client, IPCC_GAS, gwp="AR6")
    assert factor["co2e"] == 56157.3
    assert "CH4-fossil 30" in factor["gwp_conversion"]["gwp_source"]


@pytest.mark.parametrize(("gwp_set", "expected"), HAND_COMPUTED)
def test_natural_gas_in_each_set(gwp_set: str, expected: float) -> None:
    result = recompute_co2e(gwp_set, co2e=56154.5, gwp_set="AR5", **NATURAL_GAS)
    assert result.co2e == expected  # exact: no float noise left in the answer
    assert result.status == ("unchanged" if gwp_set == "AR5" else "recomputed")
    assert result.original_co2e == 56154.5


def test_coal_in_ar6_by_hand() -> None:
    # Other bituminous coal, Table 2.2: CO2 94 600, CH4 1, N2O 1.5 kg/TJ.
    # AR6: 94600 + 27.9 + 273*1.5 = 94600 + 27.9 + 409.5 = 95037.4
    result = recompute_co2e(
        "AR6",
        co2e=94625.0 + 397.5,
        gwp_set="AR5",
        co2=94600.0,
        ch4=1.0,
        n2o=1.5,
        other_ghg_co2e=None,
    )
    assert result.co2e == 95037.4
    # AR4: 94600 + 25 + 298*1.5 = 94600 + 25 + 447 = 95072
    assert (
        recompute_co2e(
            "AR4", co2e=95022.5, gwp_set="AR5", co2=94600.0, ch4=1.0, n2o=1.5, other_ghg_co2e=None
        ).co2e
        == 95072.0
    )


def test_other_gases_are_kept_as_given() -> None:
    # 10 kg CO2 + 0.1 kg CH4 + 5 kg CO2e of HFCs (AR5): AR4 = 10 + 2.5 + 5 = 17.5
    result = recompute_co2e(
        "AR4", co2e=17.8, gwp_set="AR5", co2=10.0, ch4=0.1, n2o=None, other_ghg_co2e=5.0
    )
    assert result.co2e == 17.5
    assert "other_ghg_co2e (kept as given in AR5" in result.detail


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"co2": None}, "not_possible", "no gas breakdown"),
        ({"co2": 0.18253}, "not_possible", "CO2 only and co2e includes other gases"),
        ({"co2": 0.1829}, "unchanged", "CO2 only"),
    ],
)
def test_factors_without_a_full_breakdown_keep_their_value(
    fields: dict[str, Any], status: str, words: str
) -> None:
    result = recompute_co2e(
        "AR6", co2e=0.1829, gwp_set=None, ch4=None, n2o=None, other_ghg_co2e=None, **fields
    )
    assert (result.status, result.co2e) == (status, 0.1829)
    assert words in result.detail


def test_apply_gwp_scales_the_uncertainty_and_says_so() -> None:
    factor: dict[str, Any] = {
        "co2e": 56154.5,
        "gwp_set": "AR5",
        "uncertainty_low": 54000.0,
        "uncertainty_high": 58000.0,
        **NATURAL_GAS,
    }
    apply_gwp(factor, "AR6")
    ratio = 56155.2 / 56154.5
    assert factor["co2e"] == 56155.2
    assert factor["gwp_set"] == "AR6"
    assert factor["uncertainty_low"] == pytest.approx(54000.0 * ratio)
    assert factor["uncertainty_high"] == pytest.approx(58000.0 * ratio)
    conversion = factor["gwp_conversion"]
    assert conversion["status"] == "recomputed"
    assert conversion["original_gwp_set"] == "AR5"
    assert "uncertainty bounds scaled" in conversion["detail"]
    assert conversion["gwp_source"] == gwp_source("AR6")


def test_no_gwp_asked_leaves_the_record_alone() -> None:
    factor = {"co2e": 1.0}
    assert apply_gwp(factor, None) == {"co2e": 1.0}


# --- Over HTTP, on the real seed -------------------------------------------------------------

IPCC_GAS = "ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas"


# The seeded factor is fuel combustion, so its methane is fossil: AR6 applies CH4-fossil 29.8
# (Table 7.15) instead of 27.9: 56100 + 29.8*1 + 273*0.1 = 56157.1.
SEEDED_HAND_COMPUTED = [*HAND_COMPUTED[:2], ("AR6", 56157.1)]


@pytest.mark.parametrize(("gwp_set", "expected"), SEEDED_HAND_COMPUTED)
def test_lookup_in_each_set(
    client: TestClient, seeded: None, gwp_set: str, expected: float
) -> None:
    factor = lookup(client, IPCC_GAS, gwp=gwp_set)
    assert factor["co2e"] == expected
    assert factor["gwp_set"] == gwp_set
    assert factor["gwp_conversion"]["requested"] == gwp_set
    assert factor["gwp_conversion"]["gwp_source"] == gwp_source(gwp_set, "fossil")


def test_lookup_without_gwp_is_the_published_record(client: TestClient, seeded: None) -> None:
    factor = lookup(client, IPCC_GAS)
    assert factor["co2e"] == 56154.5
    assert "gwp_conversion" not in factor


def test_search_says_what_it_could_not_convert(client: TestClient, seeded: None) -> None:
    items = {f["factor_code"]: f for f in search(client, gwp="AR4")}
    assert items["natural-gas"]["co2e"] == 56154.8
    assert items["natural-gas"]["gwp_conversion"]["status"] == "recomputed"
    desnz = items["natural-gas-kwh-net-cv"]
    assert desnz["co2e"] == 0.20264
    assert desnz["gwp_conversion"]["status"] == "not_possible"
    assert "no gas breakdown" in desnz["gwp_conversion"]["detail"]
    gross = items["natural-gas-kwh-gross-cv"]
    assert gross["gwp_conversion"]["status"] == "not_possible"
    china = items["national-average-2022"]
    assert (china["co2e"], china["gwp_conversion"]["status"]) == (0.5366, "unchanged")


def test_unknown_gwp_set_is_refused(client: TestClient, seeded: None) -> None:
    body = assert_problem(client.get(f"/v1/factors/{IPCC_GAS}", params={"gwp": "AR7"}), 422)
    assert body["errors"][0]["loc"] == ["query", "gwp"]
    assert_problem(client.get("/v1/factors", params={"gwp": "ar5"}), 422)
