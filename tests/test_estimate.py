"""`POST /v1/estimate` and `/v1/estimate:batch`: an amount in any unit → kg CO2e, step by step."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.reference.models import GwpValue
from app.reference.units import UnitError, conversion_multiplier, parse_amount_unit
from tests.factories import (
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
    load_iso_locations,
)
from tests.test_factors_api import assert_factor_shape, assert_problem
from tests.test_reference_data import edited_reference

ESTIMATE = "/v1/estimate"
BATCH = "/v1/estimate:batch"
README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")

# (amount unit, factor unit, factor units per amount unit): the conversion table.
CONVERSIONS = [
    ("kWh", "kWh", 1.0),
    ("MWh", "kWh", 1000.0),
    ("GWh", "MWh", 1000.0),
    ("kWh", "MWh", 0.001),
    ("GJ", "kWh", 277.777777778),
    ("kWh", "GJ", 0.0036),
    ("MJ", "kWh", 0.277777777778),
    ("TJ", "GJ", 1000.0),
    ("GJ", "TJ", 0.001),
    ("TJ", "kWh", 277777.777778),
    ("t", "kg", 1000.0),
    ("kg", "t", 0.001),
    ("g", "kg", 0.001),
    ("L", "m3", 0.001),
    ("m3", "L", 1000.0),
    ("t*km", "t*km", 1.0),
    ("tkm", "t*km", 1.0),
    ("kg*km", "t*km", 0.001),
    ("t*mile", "t*km", 1.609344),
    ("Btu", "kWh", 1055.056 / 3.6e6),  # pint: 1 Btu = 1055.056 J (ISO 31-4)
    ("gallon", "L", 3.785411784),
]


@pytest.mark.parametrize(("amount_unit", "factor_unit", "multiplier"), CONVERSIONS)
def test_conversion_table(amount_unit: str, factor_unit: str, multiplier: float) -> None:
    assert conversion_multiplier(amount_unit, factor_unit) == pytest.approx(multiplier, rel=1e-11)


@pytest.mark.parametrize(
    ("amount_unit", "factor_unit"),
    [("kg", "kWh"), ("L", "kg"), ("kWh", "t*km"), ("m3", "GJ"), ("piece", "kg"), ("km", "t*km")],
)
def test_other_dimensions_do_not_convert(amount_unit: str, factor_unit: str) -> None:
    with pytest.raises(UnitError) as raised:
        conversion_multiplier(amount_unit, factor_unit)
    assert raised.value.code == "incompatible_unit"
    assert "conversion property" in raised.value.detail


def test_amount_units_are_read_by_pint() -> None:
    assert parse_amount_unit("megawatt_hour").canonical == "MWh"
    assert parse_amount_unit("tonne").dimension == "mass"
    assert parse_amount_unit("Btu").dimension == "energy"
    with pytest.raises(UnitError) as raised:
        parse_amount_unit("kWhh")
    assert raised.value.code == "unknown_unit"


# --- Over HTTP --------------------------------------------------------------------------------


@pytest.fixture
def catalogue(session: Session) -> None:
    """Synthetic factors with round numbers, so that every expected value is hand-computed."""
    load_iso_locations(session)
    publisher = create_publisher(session, slug="synth")
    dataset = create_dataset(session, publisher=publisher, slug="factors")
    create_version(
        session,
        dataset=dataset,
        factors=[
            factor_fields("power", activity_id="power", unit="kWh", region="CN", co2e=0.5),
            factor_fields(
                "heat",
                activity_id="heat",
                unit="GJ",
                region="CN",
                co2e=2.0,
                uncertainty_low=1.5,
                uncertainty_high=2.5,
                # Declared, so that estimates propagate it (an undeclared one is not).
                uncertainty_kind="confidence_interval",
                uncertainty_confidence_level=0.95,
            ),
            factor_fields(
                "steel",
                activity_id="steel",
                unit="t",
                region="GLO",
                co2e=2000.0,
                co2=1900.0,
                ch4=1.0,
                n2o=0.1,
                gwp_set="AR5",
                biogenic_co2=5.0,
            ),
            factor_fields("diesel", activity_id="diesel", unit="L", region="CN", co2e=2.7),
            factor_fields("freight", activity_id="freight", unit="t*km", region="CN", co2e=0.1),
        ],
    )
    session.commit()


def estimate(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(ESTIMATE, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert_factor_shape(result["factor"])
    return result


@pytest.mark.parametrize(
    ("activity", "amount", "unit", "expected"),
    [
        ("power", 1200, "MWh", 600000.0),  # 1200 MWh = 1,200,000 kWh x 0.5
        ("power", 3.6, "GJ", 500.0),  # 3.6 GJ = 1000 kWh x 0.5
        ("heat", 1, "TJ", 2000.0),  # 1 TJ = 1000 GJ x 2
        ("heat", 500, "MJ", 1.0),  # 0.5 GJ x 2
        ("steel", 2500, "kg", 5000.0),  # 2.5 t x 2000
        ("diesel", 2, "m3", 5400.0),  # 2000 L x 2.7
        ("freight", 30, "t*km", 3.0),
        ("freight", 30000, "kg*km", 3.0),
    ],
)
def test_estimate_converts_units(
    client: TestClient, catalogue: None, activity: str, amount: float, unit: str, expected: float
) -> None:
    result = estimate(
        client, activity_id=activity, region="CN-GD", year=2024, amount=amount, unit=unit
    )
    assert result["co2e_kg"] == pytest.approx(expected)
    conversion = result["conversion"]
    assert conversion["amount"] == amount
    assert conversion["factor_unit"] == result["factor"]["unit"]
    assert conversion["amount_in_factor_unit"] == pytest.approx(amount * conversion["multiplier"])
    assert conversion["property"] is None
    assert result["match"]["region_fallback"] is True


def test_estimate_shows_gases_and_the_uncertainty_scaled(
    client: TestClient, catalogue: None
) -> None:
    steel = estimate(client, activity_id="steel", region="CN", year=2022, amount=3, unit="t")
    assert steel["co2e_kg"] == 6000.0
    assert steel["gases_kg"] == {
        "co2": 5700.0,
        "ch4": 3.0,
        "n2o": pytest.approx(0.3),
        "other_ghg_co2e": None,
        "biogenic_co2": 15.0,
    }
    assert steel["uncertainty_kg"] is None
    heat = estimate(client, activity_id="heat", region="CN", year=2022, amount=10, unit="GJ")
    assert heat["co2e_kg"] == 20.0
    assert heat["uncertainty_kg"] == [15.0, 25.0]


def test_estimate_with_another_gwp_set(client: TestClient, catalogue: None) -> None:
    response = client.post(
        ESTIMATE,
        json={"activity_id": "steel", "region": "CN", "year": 2022, "amount": 1, "unit": "t"},
        params={"gwp": "AR4"},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    # 1900 + 25*1 + 298*0.1 = 1954.8 kg CO2e per t
    assert result["co2e_kg"] == 1954.8
    assert result["factor"]["gwp_conversion"]["status"] == "recomputed"
    assert result["gwp"]["requested"] == "AR4"


def test_estimate_by_factor_id(client: TestClient, seeded: None) -> None:
    gas = "ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas"
    latest = estimate(client, factor=gas, amount=500, unit="GJ")
    assert latest["co2e_kg"] == pytest.approx(28077.25)  # 0.5 TJ x 56154.5
    assert latest["match"] is None
    assert latest["gases_kg"]["ch4"] == 0.5
    pinned = estimate(client, factor=f"{gas}@1.0.0", amount=1, unit="TJ")
    assert pinned["co2e_kg"] == 56154.5
    assert pinned["factor"]["id"] == f"{gas}@1.0.0"


def test_china_grid_electricity(client: TestClient, seeded: None) -> None:
    result = estimate(
        client, activity_id="electricity-grid-mix", region="CN", year=2022, amount=1200, unit="MWh"
    )
    assert result["co2e_kg"] == pytest.approx(643920.0)  # 1,200,000 kWh x 0.5366
    assert result["factor"]["id"] == "mee-cn/cn-electricity-co2/national-average-2022@1.0.0"
    assert result["gases_kg"]["co2"] == pytest.approx(643920.0)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"activity_id": "power", "region": "CN", "year": 2022, "amount": 5, "unit": "kg"},
            422,
            "incompatible_unit",
        ),
        (
            {"activity_id": "power", "region": "CN", "year": 2022, "amount": 5, "unit": "kwhh"},
            422,
            "unknown_unit",
        ),
        (
            {"activity_id": "coal", "region": "CN", "year": 2022, "amount": 5, "unit": "t"},
            404,
            "no_match",
        ),
        (
            {"activity_id": "power", "region": "CN", "amount": 5, "unit": "kWh"},
            422,
            "missing_field",
        ),
        ({"amount": 5, "unit": "kWh"}, 422, "activity_or_factor"),
        (
            {"factor": "synth/factors/power", "activity_id": "power", "amount": 5, "unit": "kWh"},
            422,
            "activity_or_factor",
        ),
        (
            {"factor": "synth/factors/power", "year": 2022, "amount": 5, "unit": "kWh"},
            422,
            "exclusive",
        ),
        ({"factor": "synth/factors", "amount": 5, "unit": "kWh"}, 422, "invalid_factor_id"),
        (
            {"factor": "synth/factors/power@1.0", "amount": 5, "unit": "kWh"},
            422,
            "invalid_factor_id",
        ),
        ({"factor": "synth/factors/nothing", "amount": 5, "unit": "kWh"}, 404, "no_match"),
        ({"factor": "synth/factors/power", "amount": 5, "unit": "kg"}, 422, "incompatible_unit"),
    ],
)
def test_estimate_errors_are_problems(
    client: TestClient, catalogue: None, body: dict[str, Any], status: int, code: str
) -> None:
    problem = assert_problem(client.post(ESTIMATE, json=body), status)
    assert problem["errors"][0]["code"] == code
    assert problem["type"].endswith(code.replace("_", "-"))


def test_kg_to_kwh_explains_what_is_missing(client: TestClient, catalogue: None) -> None:
    body = {"activity_id": "power", "region": "CN", "year": 2022, "amount": 5, "unit": "kg"}
    problem = assert_problem(client.post(ESTIMATE, json=body), 422)
    assert "kWh" in problem["detail"]
    assert "conversion property" in problem["detail"]


def test_batch_of_good_and_bad_lines(client: TestClient, catalogue: None) -> None:
    lines: list[dict[str, Any]] = [
        {"activity_id": "power", "region": "CN", "year": 2022, "amount": 1, "unit": "MWh"},
        {"activity_id": "power", "region": "CN", "year": 2022, "amount": 1, "unit": "kg"},
        {"factor": "synth/factors/heat", "amount": 1, "unit": "TJ"},
        {"factor": "synth/factors/gone", "amount": 1, "unit": "TJ"},
        {"activity_id": "diesel", "region": "CN-SC", "year": 2030, "amount": 100, "unit": "L"},
    ]
    response = client.post(BATCH, json={"items": lines})
    assert response.status_code == 200, response.text
    body = response.json()
    outcome = [
        item["result"]["co2e_kg"] if "result" in item else item["error"]["code"]
        for item in body["items"]
    ]
    assert outcome == [500.0, "incompatible_unit", 2000.0, "no_match", 270.0]
    # Two lines failed: no batch total; the three answered lines add up to 2770.
    assert body["total_co2e_kg"] is None
    assert body["total_co2e_kg_of_resolved"] == 2770.0
    assert (body["resolved"], body["failed"]) == (3, 2)


def test_batch_limits(client: TestClient, catalogue: None) -> None:
    line = {"activity_id": "power", "region": "CN", "year": 2022, "amount": 1, "unit": "kWh"}
    assert client.post(BATCH, json={"items": [line] * 1000}).status_code == 200
    assert_problem(client.post(BATCH, json={"items": [line] * 1001}), 422)
    assert_problem(client.post(BATCH, json={"items": [{**line, "amount": "lots"}]}), 422)
    assert_problem(client.post(ESTIMATE, json={**line, "colour": "green"}), 422)


# --- The README's POST examples ---------------------------------------------------------------

POSTS = re.findall(r"^curl -X POST .*$", README, flags=re.MULTILINE)


def test_readme_shows_post_examples() -> None:
    assert len(POSTS) >= 3


@pytest.mark.parametrize("command", POSTS)
def test_readme_post_examples_answer(client: TestClient, seeded: None, command: str) -> None:
    words = shlex.split(command)
    url = next(word for word in words if word.startswith("http://127.0.0.1:8000/"))
    body = words[words.index("-d") + 1]
    response = client.post(
        url.removeprefix("http://127.0.0.1:8000"),
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    for item in answer.get("items", []):
        assert "error" not in item, item


@pytest.fixture
def without_ar4(session: Session) -> Iterator[None]:
    """The GWP100 table without AR4 for one test (put back as shipped afterwards: the
    reference tables are shared between the tests on PostgreSQL)."""
    with edited_reference(session, "gwp", delete(GwpValue).where(GwpValue.gwp_set == "AR4")):
        yield


def test_a_gwp_set_missing_from_the_reference_data_keeps_co2e_as_published(
    client: TestClient, catalogue: None, without_ar4: None
) -> None:
    """A database whose GWP100 table lacks the set (reference data never loaded): the answer
    says so, for the batch and for each factor, instead of failing."""
    line = {"activity_id": "steel", "region": "CN", "year": 2022, "unit": "t"}
    resolved = client.post("/v1/factors:resolve", json={"items": [line]}, params={"gwp": "AR4"})
    estimated = client.post(ESTIMATE, json={**line, "amount": 1}, params={"gwp": "AR4"})
    for response in (resolved, estimated):
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["gwp"]["values"] == {}
        assert "no GWP100 for CH4 in AR4" in answer["gwp"]["source"]
    factor = resolved.json()["items"][0]["factor"]
    assert factor["co2e"] == estimated.json()["co2e_kg"] == 2000.0  # as published
    assert factor["gwp_conversion"]["status"] == "not_possible"
