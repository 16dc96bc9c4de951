"""Estimates that say exactly what they mean: positive finite amounts, a batch total only when
every line answered, and "did you mean" for units, GWP sets and region codes. Synthetic
factors (tests/test_estimate.py `catalogue`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.suggest import did_you_mean
from tests.test_estimate import BATCH, ESTIMATE, catalogue  # noqa: F401 (fixture)
from tests.test_factors_api import assert_problem

# Every HTTP test here runs on the synthetic catalogue of tests/test_estimate.py.
pytestmark = pytest.mark.usefixtures("catalogue")

POWER: dict[str, Any] = {"activity_id": "power", "region": "CN", "year": 2022, "unit": "kWh"}


@pytest.mark.parametrize("amount", ["-1000", "0", "-0.0", "1e400"])
def test_an_amount_must_be_positive_and_finite(client: TestClient, amount: str) -> None:
    # As JSON text: 1e400 is a JSON number that no float holds.
    body = json.dumps({**POWER, "amount": 1}).replace('"amount": 1', f'"amount": {amount}')
    response = client.post(ESTIMATE, content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["code"] == "invalid_amount"
    assert problem["errors"][0]["loc"] == ["amount"]
    assert "positive finite" in problem["detail"]


def test_a_bad_amount_fails_its_line_only(client: TestClient) -> None:
    lines = [{**POWER, "amount": 2}, {**POWER, "amount": -1000}, {**POWER, "amount": 4}]
    body = client.post(BATCH, json={"items": lines}).json()
    assert [item.get("error", {}).get("code") for item in body["items"]] == [
        None,
        "invalid_amount",
        None,
    ]
    # 0.5 kg/kWh × (2 + 4) kWh; the failed line leaves the batch without a total.
    assert body["total_co2e_kg"] is None
    assert body["total_co2e_kg_of_resolved"] == 3.0
    assert (body["resolved"], body["failed"]) == (2, 1)


def test_a_batch_whose_lines_all_answer_has_its_total(client: TestClient) -> None:
    lines = [{**POWER, "amount": 2}, {**POWER, "amount": 4}]
    body = client.post(BATCH, json={"items": lines}).json()
    assert body["total_co2e_kg"] == body["total_co2e_kg_of_resolved"] == 3.0
    assert body["failed"] == 0


@pytest.mark.parametrize(
    ("field", "value", "suggested"),
    [
        ("unit", "kwh", "kWh"),
        ("unit", "KWH", "kWh"),
        ("unit", "mwh", "MWh"),
        ("region", "cn", "CN"),
    ],
)
def test_an_unknown_unit_or_region_suggests_the_known_one(
    client: TestClient, field: str, value: str, suggested: str
) -> None:
    problem = assert_problem(client.post(ESTIMATE, json={**POWER, "amount": 1, field: value}), 422)
    assert problem["suggestions"][0] == suggested
    assert f"did you mean '{suggested}'" in problem["detail"]
    assert problem["errors"][0]["suggestions"][0] == suggested
    # The same in a batch line.
    body = client.post(BATCH, json={"items": [{**POWER, "amount": 1, field: value}]}).json()
    assert body["items"][0]["error"]["suggestions"][0] == suggested


def test_an_unknown_gwp_set_suggests_the_known_one(client: TestClient) -> None:
    response = client.post(ESTIMATE, params={"gwp": "ar6"}, json={**POWER, "amount": 1})
    problem = assert_problem(response, 422)
    assert problem["suggestions"] == ["AR6"]
    assert "did you mean 'AR6'" in problem["detail"]
    assert client.get("/v1/factors", params={"gwp": "ar5"}).json()["suggestions"] == ["AR5"]


def test_suggestions_put_a_case_insensitive_match_first() -> None:
    assert did_you_mean("kwh", ["MWh", "kWh", "GWh"])[0] == "kWh"
    assert did_you_mean("ar6", ["AR4", "AR5", "AR6"])[0] == "AR6"
    assert did_you_mean("zzzz", ["AR4", "AR5", "AR6"]) == []
