"""`as_of` takes an RFC 3339 timestamp as well as a date: two releases published on the same
day are told apart, on search, lookup, resolve and estimate."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.datasets.visibility import parse_as_of
from tests.auth_fixtures import TokenKit
from tests.test_publishing import PUBLISHER, VERSIONS, create_dataset, publish, upload
from tests.test_version_scenario import Clock, clock  # noqa: F401 (fixture)
from tests.upload_files import csv_bytes, synthetic_row

LOOKUP = f"/v1/factors/{PUBLISHER}/steel-products/synthetic-00001"
DAY = "2026-12-03"


@pytest.fixture
def same_day(client: TestClient, tokens: TokenKit, clock: Clock) -> dict[str, Any]:  # noqa: F811
    """Synthetic 1.0.0 published at 10:00 UTC and 1.1.0 (another value) at 14:00 on one day;
    1.1.0 withdrawn at 16:00."""
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    clock.set(f"{DAY}T08:00")
    create_dataset(client, writer)
    co2 = 200.0
    changed = synthetic_row(1, co2=co2, co2e=co2 + 28 * 1.0 + 265 * 0.1)
    for version, row, published in (
        ("1.0.0", synthetic_row(1), "10:00"),
        ("1.1.0", changed, "14:00"),
    ):
        assert upload(client, writer, csv_bytes([row]), version=version).status_code == 201
        assert client.post(f"{VERSIONS}/{version}/submit", headers=writer).status_code == 200
        clock.set(f"{DAY}T{published}")
        assert publish(client, reviewer, version).status_code == 200
    clock.set(f"{DAY}T16:00")
    withdrawn = client.post(
        f"{VERSIONS}/1.1.0/withdraw", headers=reviewer, json={"reason": "synthetic: test"}
    )
    assert withdrawn.status_code == 200, withdrawn.text
    return {"reviewer": reviewer}


# (as_of, the version answering then, or None: nothing released yet)
CASES = [
    (f"{DAY}T09:59:59Z", None),
    (f"{DAY}T10:00:00Z", "1.0.0"),  # published at that very instant: it counts
    (f"{DAY}T13:59:59.999999Z", "1.0.0"),
    (f"{DAY}T21:59:00+08:00", "1.0.0"),  # 13:59 UTC
    (f"{DAY}T14:00:00Z", "1.1.0"),
    (f"{DAY}T15:30:00Z", "1.1.0"),
    (f"{DAY}T16:00:00Z", "1.0.0"),  # withdrawn at that instant: gone
    (DAY, "1.0.0"),  # a date means its end: 1.1.0 was withdrawn by then
    ("2026-12-02", None),
]


def test_lookup_and_search_answer_as_of_an_instant(
    client: TestClient, same_day: dict[str, Any]
) -> None:
    for as_of, expected in CASES:
        found = client.get(LOOKUP, params={"as_of": as_of})
        listed = client.get(
            "/v1/factors", params={"dataset": f"{PUBLISHER}/steel-products", "as_of": as_of}
        )
        assert listed.status_code == 200, (as_of, listed.text)
        versions = [f["version"] for f in listed.json()["items"]]
        if expected is None:
            assert found.status_code == 404, (as_of, found.text)
            assert versions == [], as_of
        else:
            assert found.status_code == 200, (as_of, found.text)
            assert found.json()["version"] == expected, as_of
            assert versions == [expected], as_of
    missing = client.get(LOOKUP, params={"as_of": f"{DAY}T09:30:00Z"}).json()
    assert missing["detail"].endswith(f"was current at {DAY}T09:30:00Z.")
    dated = client.get(LOOKUP, params={"as_of": "2026-12-02"}).json()
    assert dated["detail"].endswith("was current at the end of 2026-12-02.")


def test_resolve_and_estimate_answer_as_of_an_instant(
    client: TestClient, same_day: dict[str, Any]
) -> None:
    line = {"activity_id": "synthetic-activity", "region": "CN", "year": 2023}
    items = [{**line, "as_of": as_of} for as_of, _ in CASES]
    response = client.post("/v1/factors:resolve", json={"items": items})
    assert response.status_code == 200, response.text
    answers = response.json()["items"]
    for (as_of, expected), answer in zip(CASES, answers, strict=True):
        if expected is None:
            assert answer["error"]["code"] == "no_match", as_of
            assert f"as published {'on' if len(as_of) == 10 else 'at'} " in str(answer), as_of
        else:
            assert answer["factor"]["version"] == expected, as_of
    estimate = client.post(
        "/v1/estimate", json={**line, "amount": 2, "unit": "t", "as_of": f"{DAY}T15:00:00Z"}
    )
    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["factor"]["version"] == "1.1.0"


@pytest.mark.parametrize("naive", [f"{DAY}T14:05:00", f"{DAY} 14:05"])
def test_a_timestamp_without_its_offset_is_refused(
    client: TestClient, same_day: dict[str, Any], naive: str
) -> None:
    line = {"activity_id": "synthetic-activity", "region": "CN", "year": 2023, "as_of": naive}
    for response, loc in (
        (client.get(LOOKUP, params={"as_of": naive}), ["query", "as_of"]),
        (client.get("/v1/factors", params={"as_of": naive}), ["query", "as_of"]),
        (
            client.post("/v1/factors:resolve", json={"items": [line]}),
            ["body", "items", "0", "as_of"],
        ),
    ):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        (error,) = response.json()["errors"]
        assert error["loc"] == loc
        assert "offset" in response.json()["detail"] + str(error)


@pytest.mark.parametrize(
    ("given", "before", "label"),
    [
        ("2026-12-03", "2026-12-04T00:00:00+00:00", "2026-12-03"),
        ("2026-12-03T14:05:00Z", "2026-12-03T14:05:00.000001+00:00", "2026-12-03T14:05:00Z"),
        ("2026-12-03T22:05:00+08:00", "2026-12-03T14:05:00.000001+00:00", "2026-12-03T14:05:00Z"),
        ("9999-12-31", "9999-12-31T23:59:59.999999+00:00", "9999-12-31"),
    ],
)
def test_as_of_is_an_exclusive_instant(given: str, before: str, label: str) -> None:
    moment = parse_as_of(given)
    assert moment.before.isoformat() == before
    assert str(moment) == label


@pytest.mark.parametrize(
    "given",
    ["2026-12-03T14:05:00", "yesterday", "2024-02-30", "20261203", "0001-01-01T00:00+01:00"],
)
def test_as_of_refuses_what_is_not_a_moment(given: str) -> None:
    with pytest.raises(ValueError, match=r"offset|date"):
        parse_as_of(given)
