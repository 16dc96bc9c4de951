"""Fossil and non-fossil methane: AR6 gives them their own GWP100 (WG1 Ch. 7 Table 7.15), AR4
and AR5 one CH4 value. Hand-computed values from the reference table
(seed_data/reference/gwp100.csv): AR4 CH4 25, N2O 298; AR5 CH4 28, N2O 265; AR6 CH4 27.9
(Table 7.SM.7), CH4-fossil 29.8, CH4-non-fossil 27.0 (Table 7.15), N2O 273."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.reference.gwp import default_ch4_origin, recompute_co2e
from app.versioning.content_hash import content_sha256
from tests.auth_fixtures import TokenKit
from tests.test_factors_api import lookup
from tests.test_publishing import PUBLISHER, VERSIONS, create_dataset, publish, upload
from tests.upload_files import csv_bytes, jsonl_bytes, parquet_bytes, synthetic_row

# Synthetic factor (not real): 100 kg CO2 + 1 kg CH4 + 0.1 kg N2O, published in AR5.
SYNTHETIC: dict[str, Any] = {"co2": 100.0, "ch4": 1.0, "n2o": 0.1, "other_ghg_co2e": None}
PUBLISHED_AR5 = 154.5  # 100 + 28*1 + 265*0.1
# (set, origin, co2e by hand)
HAND_COMPUTED = [
    ("AR4", "fossil", 154.8),  # 100 + 25*1 + 298*0.1: AR4 has one CH4 value
    ("AR4", "non_fossil", 154.8),
    ("AR5", "fossil", 154.5),  # already AR5: unchanged
    ("AR5", "non_fossil", 154.5),
    ("AR6", "fossil", 157.1),  # 100 + 29.8*1 + 273*0.1
    ("AR6", "non_fossil", 154.3),  # 100 + 27.0*1 + 273*0.1
    ("AR6", None, 155.2),  # 100 + 27.9*1 + 273*0.1: no origin, no default
]


@pytest.mark.parametrize(("gwp_set", "origin", "expected"), HAND_COMPUTED)
def test_each_set_and_origin_by_hand(gwp_set: str, origin: str | None, expected: float) -> None:
    result = recompute_co2e(
        gwp_set, co2e=PUBLISHED_AR5, gwp_set="AR5", ch4_origin=origin, **SYNTHETIC
    )
    assert result.co2e == expected


def test_the_conversion_names_the_value_applied_per_gas() -> None:
    fossil = recompute_co2e(
        "AR6", co2e=PUBLISHED_AR5, gwp_set="AR5", ch4_origin="fossil", **SYNTHETIC
    )
    ch4, n2o = fossil.as_dict()["values_applied"]
    assert (ch4["gas"], ch4["gwp100"], ch4["gwp_table_gas"]) == ("CH4", 29.8, "CH4-fossil")
    assert ch4["ch4_origin_basis"] == "declared by the publisher"
    assert "Table 7.15" in ch4["source"]
    assert (n2o["gas"], n2o["gwp100"]) == ("N2O", 273.0)
    assert "29.8·ch4" in fossil.detail

    ar5 = recompute_co2e("AR4", co2e=PUBLISHED_AR5, gwp_set="AR5", ch4_origin="fossil", **SYNTHETIC)
    ch4 = ar5.as_dict()["values_applied"][0]
    assert (ch4["gwp100"], ch4["gwp_table_gas"]) == (25.0, "CH4")
    assert "single CH4 value of AR4" in ch4["why"]


@pytest.mark.parametrize(
    ("category", "origin"),
    [
        ("energy/stationary-combustion/energy-industries", "fossil"),
        ("energy/stationary-combustion/fuels", "fossil"),
        ("energy/mobile-combustion", "fossil"),
        ("energy/electricity", None),
        ("agriculture/enteric-fermentation", None),
        (None, None),
    ],
)
def test_the_default_rule_by_category(category: str | None, origin: str | None) -> None:
    assert default_ch4_origin(category) == origin


def test_fuel_combustion_defaults_to_fossil_without_a_declaration() -> None:
    result = recompute_co2e(
        "AR6",
        co2e=PUBLISHED_AR5,
        gwp_set="AR5",
        category="energy/stationary-combustion/fuels",
        **SYNTHETIC,
    )
    assert result.co2e == 157.1
    assert "fuel combustion" in result.values_applied[0]["ch4_origin_basis"]
    # A declaration wins over the default (a biomass fuel, say).
    declared = recompute_co2e(
        "AR6",
        co2e=PUBLISHED_AR5,
        gwp_set="AR5",
        category="energy/stationary-combustion/fuels",
        ch4_origin="non_fossil",
        **SYNTHETIC,
    )
    assert declared.co2e == 154.3


# --- Over HTTP -------------------------------------------------------------------------------

IPCC_GAS = "ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas"


def test_seeded_ipcc_fuel_combustion_is_fossil_methane_in_ar6(
    client: TestClient, seeded: None
) -> None:
    # IPCC 2006 Vol. 2 Table 2.2 natural gas: 56100 + 29.8*1 + 273*0.1 = 56157.1
    factor = lookup(client, IPCC_GAS, gwp="AR6")
    assert factor["co2e"] == 56157.1
    assert factor["ch4_origin"] is None  # not declared: the default rule applied
    ch4 = factor["gwp_conversion"]["values_applied"][0]
    assert (ch4["gwp_table_gas"], ch4["ch4_origin"]) == ("CH4-fossil", "fossil")


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("factors.csv", csv_bytes),
        ("factors.jsonl", jsonl_bytes),
        ("factors.parquet", parquet_bytes),
    ],
)
def test_an_upload_declares_the_origin_in_every_format(
    client: TestClient, tokens: TokenKit, name: str, encode: Any
) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    rows = [
        synthetic_row(0, co2=100.0, co2e=PUBLISHED_AR5, ch4_origin="fossil"),
        synthetic_row(1, co2=100.0, co2e=PUBLISHED_AR5, ch4_origin="non_fossil"),
        synthetic_row(2, co2=100.0, co2e=PUBLISHED_AR5, ch4_origin=None),
    ]
    response = upload(client, writer, encode(rows), name=name)
    assert response.status_code == 201, response.text
    client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    version = publish(client, tokens.reviewer(), "1.0.0").json()
    factors = client.get(f"{VERSIONS}/1.0.0/factors").json()["items"]
    assert [f["ch4_origin"] for f in factors] == ["fossil", "non_fossil", None]
    # The declared origin counts in the content hash; an undeclared one is left out.
    assert version["content_sha256"] == content_sha256(
        [{**row, "ch4_origin": row["ch4_origin"]} for row in rows]
    )
    answers = [
        client.get(
            f"/v1/factors/{PUBLISHER}/steel-products/synthetic-{i:05d}", params={"gwp": "AR6"}
        ).json()["co2e"]
        for i in range(3)
    ]
    assert answers == [157.1, 154.3, 155.2]


def test_an_unknown_origin_is_refused(client: TestClient, tokens: TokenKit) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    response = upload(client, writer, csv_bytes([synthetic_row(0, ch4_origin="biogenic")]))
    assert response.status_code == 422
    assert response.json()["errors"][0]["column"] == "ch4_origin"
