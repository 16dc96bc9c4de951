"""Many candidates for one line: the ranking is the same as with few, counted not carried.

A probe answers one row per release and unit (its lowest factor id and how many factors it
has), so a line with thousands of candidates costs their count, not their transfer into the
server's memory; these tests check that the answer (the factor, `alternatives`, `decided_by`)
is what the ranking says. Every factor here is synthetic.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import (
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
    load_iso_locations,
    set_priority,
)

RESOLVE = "/v1/factors:resolve"
MANY = 1500


@pytest.fixture
def crowded(session: Session) -> None:
    """`MANY` factors of one activity in CN 2022 (in kWh and MWh) in a priority-10 dataset,
    and one in a priority-20 dataset."""
    load_iso_locations(session)
    publisher = create_publisher(session, slug="synthetic-crowd")
    crowd = set_priority(session, create_dataset(session, publisher=publisher, slug="crowd"), 10)
    create_version(
        session,
        dataset=crowd,
        factors=[
            factor_fields(
                f"f{n:05d}",
                activity_id="crowded",
                unit="MWh" if n % 3 == 0 else "kWh",
                co2e=float(n + 1) * (1000 if n % 3 == 0 else 1),
            )
            for n in range(MANY)
        ],
    )
    other = set_priority(session, create_dataset(session, publisher=publisher, slug="other"), 20)
    create_version(
        session,
        dataset=other,
        factors=[factor_fields("o1", activity_id="crowded", unit="kWh", co2e=9.0)],
    )
    session.commit()


def resolve(client: TestClient, **line: Any) -> dict[str, Any]:
    response = client.post(
        RESOLVE,
        json={"items": [{"activity_id": "crowded", "region": "CN-GD", "year": 2024, **line}]},
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert "factor" in item, item
    answer: dict[str, Any] = item
    return answer


def test_the_lowest_id_of_the_best_dataset_answers_and_all_are_counted(
    client: TestClient, crowded: None
) -> None:
    item = resolve(client)
    assert item["factor"]["factor_code"] == "f00000"
    assert item["match"]["dataset"] == "synthetic-crowd/crowd"
    assert item["match"]["alternatives"] == MANY  # the other MANY - 1 and the other dataset's
    # No unit was asked for, so no unit decided (kWh and MWh tie): the lowest id did.
    assert item["match"]["decided_by"] == "factor_id"


def test_the_requested_unit_ranks_first_within_a_dataset(client: TestClient, crowded: None) -> None:
    kwh = resolve(client, unit="kWh")
    assert kwh["factor"]["factor_code"] == "f00001"  # the lowest id per kWh
    assert kwh["match"]["decided_by"] == "factor_id"
    mwh = resolve(client, unit="MWh")
    assert mwh["factor"]["factor_code"] == "f00000"
    assert mwh["match"]["unit"]["converted"] is False
    assert mwh["match"]["alternatives"] == MANY
    assert mwh["match"]["decided_by"] == "factor_id"


def test_a_dataset_pinned_has_its_single_candidate(client: TestClient, crowded: None) -> None:
    item = resolve(client, dataset="synthetic-crowd/other")
    assert item["factor"]["factor_code"] == "o1"
    assert item["match"]["alternatives"] == 0
    assert item["match"]["decided_by"] == "only_candidate"


def test_a_thousand_lines_against_the_crowd_answer_alike(client: TestClient, crowded: None) -> None:
    lines = [
        {"activity_id": "crowded", "region": "CN-GD", "year": 2022 + n % 5, "unit": unit}
        for n, unit in enumerate(["kWh", "MWh", "GJ", None] * 250)
    ]
    items = [{k: v for k, v in line.items() if v is not None} for line in lines]
    response = client.post(RESOLVE, json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["failed"] == 0
    codes = {item["factor"]["factor_code"] for item in body["items"]}
    assert codes == {"f00000", "f00001"}
    assert {item["match"]["alternatives"] for item in body["items"]} == {MANY}
