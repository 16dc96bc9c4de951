"""`POST /v1/citations:verify`: a label issuer checks a footprint's factor citations in one
call. All data here is synthetic."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.auth_fixtures import TokenKit
from tests.test_changes import Story
from tests.test_publishing import PUBLISHER
from tests.upload_files import synthetic_row

OLD, NEW = "steel-products", "steel-products-2025"
# Factor 1 corrected in 1.1.0: CO2 200 instead of 101 (co2e = co2 + 28·1.0 + 265·0.1).
CORRECTED = synthetic_row(1, co2=200.0, co2e=200.0 + 28 + 26.5)
ORIGINAL_VALUE = synthetic_row(1)["co2e"]


def cite(code: int | str, version: str, dataset: str = OLD, **extra: Any) -> dict[str, Any]:
    name = f"synthetic-{code:05d}" if isinstance(code, int) else code
    return {"id": f"{PUBLISHER}/{dataset}/{name}@{version}", **extra}


@pytest.fixture
def history(client: TestClient, tokens: TokenKit) -> dict[str, Any]:
    story = Story(client, tokens)
    story.dataset(OLD)
    story.dataset(NEW)
    story.dataset("members-only", access="registered", redistribution=False)
    first = story.release(OLD, "1.0.0", [1, 2])
    second = story.release(OLD, "1.1.0", [CORRECTED, 2, 3])
    story.release(OLD, "1.2.0", [CORRECTED, 2, 3, 4])
    story.withdraw(OLD, "1.2.0", "synthetic: wrong unit")
    successor = story.release(NEW, "1.0.0", [CORRECTED, 2])
    story.release("members-only", "1.0.0", [1])
    story.deprecate(OLD, f"{PUBLISHER}/{NEW}", "synthetic: new method")
    return {"1.0.0": first, "1.1.0": second, "successor": successor}


def verify(
    client: TestClient, citations: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    response = client.post("/v1/citations:verify", json={"citations": citations}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    assert [item["index"] for item in items] == list(range(len(citations)))
    return items


def test_superseded_withdrawn_and_current_citations_are_reported_as_such(
    client: TestClient, history: dict[str, Any]
) -> None:
    first_hash = history["1.0.0"]["content_sha256"]
    superseded, withdrawn, current, changed, wrong_hash = verify(
        client,
        [
            cite(1, "1.0.0", content_sha256=first_hash, value=ORIGINAL_VALUE),
            cite(4, "1.2.0"),
            cite(2, "1.0.0", dataset=NEW, value=synthetic_row(2)["co2e"]),
            cite(1, "1.1.0", value=ORIGINAL_VALUE),
            cite(1, "1.1.0", content_sha256=first_hash),
        ],
    )
    assert superseded["found"] is True
    assert (superseded["value"], superseded["value_matches"]) == (ORIGINAL_VALUE, True)
    assert (superseded["content_sha256"], superseded["content_sha256_matches"]) == (
        first_hash,
        True,
    )
    assert superseded["release_status"] == "superseded"
    assert superseded["superseded_at"] is not None
    assert superseded["current_version"] == "1.1.0"  # 1.2.0 was withdrawn
    assert (superseded["dataset_status"], superseded["superseded_by"]) == (
        "deprecated",
        f"{PUBLISHER}/{NEW}",
    )
    assert superseded["deprecation_reason"] == "synthetic: new method"
    # The dataset is deprecated: its replacement is the successor's current factor.
    assert superseded["replaced_by"] == {
        "id": f"{PUBLISHER}/{NEW}/synthetic-00001@1.0.0",
        "value": CORRECTED["co2e"],
        "unit": "t",
        "content_sha256": history["successor"]["content_sha256"],
    }

    assert (withdrawn["found"], withdrawn["release_status"]) == (True, "withdrawn")
    assert withdrawn["withdrawn_reason"] == "synthetic: wrong unit"
    assert withdrawn["withdrawn_at"] is not None
    # Factor 4 is in no current release and the successor lacks it: nothing replaces it.
    assert withdrawn["replaced_by"] is None

    assert (current["found"], current["release_status"], current["dataset_status"]) == (
        True,
        "published",
        "active",
    )
    assert (current["value_matches"], current["replaced_by"]) == (True, None)

    assert (changed["found"], changed["release_status"]) == (True, "published")
    assert (changed["value"], changed["value_matches"]) == (CORRECTED["co2e"], False)
    assert changed["content_sha256_matches"] is None
    assert (wrong_hash["content_sha256_matches"], wrong_hash["value_matches"]) == (False, None)


def test_a_superseded_release_of_an_active_dataset_points_at_the_current_factor(
    client: TestClient, tokens: TokenKit
) -> None:
    story = Story(client, tokens)
    story.dataset(OLD)
    story.release(OLD, "1.0.0", [1])
    current = story.release(OLD, "1.1.0", [CORRECTED])
    (answer,) = verify(client, [cite(1, "1.0.0")])
    assert (answer["release_status"], answer["dataset_status"]) == ("superseded", "active")
    assert answer["replaced_by"] == {
        "id": f"{PUBLISHER}/{OLD}/synthetic-00001@1.1.0",
        "value": CORRECTED["co2e"],
        "unit": "t",
        "content_sha256": current["content_sha256"],
    }


def test_what_is_not_found_and_what_a_reader_may_not_see(
    client: TestClient, history: dict[str, Any], tokens: TokenKit
) -> None:
    citations = [
        cite("no-such-code", "1.1.0"),
        cite(1, "9.9.9"),
        {"id": "nobody/nothing/x@1.0.0"},
        cite(1, "1.0.0", dataset="members-only"),
    ]
    no_factor, no_release, no_dataset, registered = verify(client, citations)
    assert [a["found"] for a in (no_factor, no_release, no_dataset, registered)] == [False] * 4
    assert [a["not_found"] for a in (no_factor, no_release, no_dataset, registered)] == [
        "factor",
        "release",
        "dataset",
        "dataset",  # registered: not disclosed without factors:read and a grant
    ]
    assert registered["dataset_status"] is None
    assert no_release["current_version"] == "1.1.0"
    assert verify(client, citations, headers=tokens.reader())[3]["found"] is False  # no grant
    seen = verify(client, citations, headers=tokens.reader(f"{PUBLISHER}/members-only"))[3]
    assert (seen["found"], seen["release_status"]) == (True, "published")


@pytest.mark.parametrize(
    ("citations", "loc"),
    [
        ([cite(1, "1.0.0"), cite(1, "1.0.0"), {"id": "not a citation"}], ["citations", "2", "id"]),
        ([cite(1, "1.0")], ["citations", "0", "id"]),
        ([cite(1, "1.0.0", content_sha256="XYZ")], ["citations", "0", "content_sha256"]),
        ([cite(1, "1.0.0"), cite(1, "1.0.0", valeu=1)], ["citations", "1", "valeu"]),
        ([{"content_sha256": None}], ["citations", "0", "id"]),
        ([cite(1, "1.0.0", value="much")], ["citations", "0", "value"]),
        ([cite(1, "1.0.0")] * 1001, ["citations", "1000"]),
        ([], ["citations"]),
    ],
    ids=[
        "bad-id",
        "short-version",
        "bad-hash",
        "unknown-field",
        "no-id",
        "text-value",
        "1001",
        "0",
    ],
)
def test_malformed_or_too_many_citations_are_problems_naming_the_index(
    client: TestClient, citations: list[dict[str, Any]], loc: list[str]
) -> None:
    response = client.post("/v1/citations:verify", json={"citations": citations})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["body", *loc]


def test_a_thousand_citations_are_answered_in_order(
    client: TestClient, history: dict[str, Any]
) -> None:
    citations = [cite(1 + i % 4, "1.2.0" if i % 2 else "1.1.0") for i in range(1000)]
    items = verify(client, citations)
    assert [item["id"] for item in items] == [c["id"] for c in citations]
    assert {item["release_status"] for item in items} == {"published", "withdrawn"}
