"""Results that overflow a 64-bit float are errors with a reason, never `null` with 200.

JSON has no infinity: a product beyond ±1.8e308 (a huge amount, a huge synthetic factor, a
unit conversion or a GWP recomputation that multiplies it further) used to be written as
`null` in a 200 answer. Every factor here is synthetic, with deliberately absurd values.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.reference.gwp import co2e_from_gases
from tests.factories import (
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
    load_iso_locations,
)

ESTIMATE = "/v1/estimate"
BATCH = "/v1/estimate:batch"
RESOLVE = "/v1/factors:resolve"
# n2o so large that co2e is finite in AR5 (265) but not in AR4 (298).
HUGE_N2O = 6.7e305


@pytest.fixture
def huge(session: Session) -> None:
    load_iso_locations(session)
    publisher = create_publisher(session, slug="synthetic-huge")
    dataset = create_dataset(session, publisher=publisher, slug="absurd-values")
    create_version(
        session,
        dataset=dataset,
        factors=[
            factor_fields("mass", activity_id="huge-mass", unit="kg", co2e=1e306),
            factor_fields("energy", activity_id="huge-energy", unit="kWh", co2e=1e300),
            factor_fields(
                "bounded",
                activity_id="huge-bounded",
                unit="kWh",
                co2e=1e300,
                uncertainty_low=0.5e300,
                uncertainty_high=1e305,
                # Declared, so that an estimate propagates it (an undeclared one is not).
                uncertainty_kind="min_max",
            ),
            factor_fields("small", activity_id="small", unit="kWh", co2e=0.5),
            factor_fields(
                "gases",
                activity_id="huge-gases",
                unit="t",
                co2=1.0,
                n2o=HUGE_N2O,
                gwp_set="AR5",
                co2e=co2e_from_gases("AR5", co2=1.0, ch4=None, n2o=HUGE_N2O, other=None),
            ),
        ],
    )
    session.commit()


def line(activity: str, amount: float, unit: str) -> dict[str, Any]:
    return {"activity_id": activity, "region": "CN", "year": 2024, "amount": amount, "unit": unit}


def assert_no_null_number(body: Any) -> None:
    """No number in the answer was turned into a null (and none is infinite)."""
    text = json.dumps(body)
    assert "Infinity" not in text
    assert "NaN" not in text


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (line("small", 1e308, "MWh"), "the amount in the factor's unit"),  # 1e311 kWh
        (line("huge-energy", 1e10, "kWh"), "co2e_kg"),  # 1e300 x 1e10
        (line("huge-mass", 1000, "kg"), "co2e_kg"),  # 1e306 x 1000
        (line("huge-bounded", 1e4, "kWh"), "uncertainty_kg"),  # co2e finite, its high bound not
        ({"factor": "synthetic-huge/absurd-values/mass", "amount": 1, "unit": "t"}, "co2e_kg"),
    ],
)
def test_an_estimate_that_overflows_is_a_422_with_its_reason(
    client: TestClient, huge: None, body: dict[str, Any], what: str
) -> None:
    response = client.post(ESTIMATE, json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["errors"][0]["code"] == "not_finite"
    assert what in problem["detail"]
    assert "1.8e+308" in problem["detail"]


def test_an_estimate_just_below_the_limit_answers(client: TestClient, huge: None) -> None:
    response = client.post(ESTIMATE, json=line("huge-energy", 1e8, "kWh"))
    assert response.status_code == 200, response.text
    assert response.json()["co2e_kg"] == pytest.approx(1e308)


def test_a_batch_line_that_overflows_is_an_error_in_its_place(
    client: TestClient, huge: None
) -> None:
    lines = [line("small", 2, "kWh"), line("huge-energy", 1e10, "kWh"), line("small", 4, "kWh")]
    response = client.post(BATCH, json={"items": lines})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_no_null_number(body)
    outcome = [
        item["result"]["co2e_kg"] if "result" in item else item["error"]["code"]
        for item in body["items"]
    ]
    assert outcome == [1.0, "not_finite", 2.0]
    # A line failed: no batch total, the answered lines' sum apart.
    assert body["total_co2e_kg"] is None
    assert body["total_co2e_kg_of_resolved"] == 3.0
    assert (body["resolved"], body["failed"]) == (2, 1)


def test_a_batch_whose_total_overflows_is_a_422(client: TestClient, huge: None) -> None:
    lines = [line("huge-energy", 1.5e8, "kWh")] * 2  # 1.5e308 each: finite, their sum is not
    response = client.post(BATCH, json={"items": lines})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["code"] == "not_finite"
    assert "total_co2e_kg" in problem["detail"]


def test_a_resolve_whose_unit_conversion_overflows_is_a_line_error(
    client: TestClient, huge: None
) -> None:
    items = [
        {"activity_id": "huge-mass", "region": "CN", "year": 2024, "unit": "t"},  # x1000
        {"activity_id": "huge-mass", "region": "CN", "year": 2024, "unit": "kg"},
        {"activity_id": "huge-mass", "region": "CN", "year": 2024},
    ]
    response = client.post(RESOLVE, json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_no_null_number(body)
    first, second, third = body["items"]
    assert first["error"]["code"] == "not_finite"
    assert "co2e_per_requested_unit" in first["error"]["detail"]
    assert second["match"]["unit"]["co2e_per_requested_unit"] == 1e306
    assert third["factor"]["co2e"] == 1e306
    assert (body["resolved"], body["failed"]) == (2, 1)


def test_a_gwp_recomputation_that_overflows_keeps_the_published_value(
    client: TestClient, huge: None
) -> None:
    published = co2e_from_gases("AR5", co2=1.0, ch4=None, n2o=HUGE_N2O, other=None)
    assert math.isfinite(published)
    factor = client.get("/v1/factors/synthetic-huge/absurd-values/gases", params={"gwp": "AR4"})
    assert factor.status_code == 200, factor.text
    body = factor.json()
    assert body["co2e"] == published
    assert body["gwp_set"] == "AR5"
    assert body["gwp_conversion"]["status"] == "not_possible"
    assert "finite" in body["gwp_conversion"]["detail"]
    resolved = client.post(
        RESOLVE,
        params={"gwp": "AR4"},
        json={"items": [{"activity_id": "huge-gases", "region": "CN", "year": 2024}]},
    )
    assert resolved.status_code == 200, resolved.text
    (item,) = resolved.json()["items"]
    assert item["factor"]["co2e"] == published
    estimate = client.post(ESTIMATE, params={"gwp": "AR4"}, json=line("huge-gases", 1, "kg"))
    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["co2e_kg"] == pytest.approx(published / 1000)
