"""Deprecating a dataset: a reviewer names its successor; every response from it says so."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.auth_fixtures import TokenKit
from tests.test_publishing import DATASET_BODY, PUBLISHER, publish
from tests.upload_files import csv_bytes, synthetic_row

OLD, NEW = "steel-products", "steel-products-2025"
REASON = "synthetic: replaced by the 2025 method"


def _publish(
    client: TestClient, writer: dict[str, str], reviewer: dict[str, str], slug: str
) -> None:
    versions = f"/v1/datasets/{PUBLISHER}/{slug}/versions"
    uploaded = client.post(
        versions,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("factors.csv", csv_bytes([synthetic_row(1)]), "text/csv")},
    )
    assert uploaded.status_code == 201, uploaded.text
    assert client.post(f"{versions}/1.0.0/submit", headers=writer).status_code == 200
    assert publish(client, reviewer, "1.0.0", versions=versions).status_code == 200


@pytest.fixture
def two_datasets(client: TestClient, tokens: TokenKit) -> dict[str, dict[str, str]]:
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    for slug in (OLD, NEW):
        created = client.post("/v1/datasets", json={**DATASET_BODY, "slug": slug}, headers=writer)
        assert created.status_code == 201, created.text
        _publish(client, writer, reviewer, slug)
    return {"writer": writer, "reviewer": reviewer}


def _deprecate(client: TestClient, headers: dict[str, str], slug: str, body: dict[str, Any]) -> Any:
    return client.post(f"/v1/datasets/{PUBLISHER}/{slug}/deprecate", json=body, headers=headers)


def test_a_deprecated_dataset_names_its_successor_everywhere(
    client: TestClient, tokens: TokenKit, two_datasets: dict[str, dict[str, str]]
) -> None:
    successor = f"{PUBLISHER}/{NEW}"
    response = _deprecate(
        client, two_datasets["reviewer"], OLD, {"superseded_by": successor, "reason": REASON}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["superseded_by"], body["deprecation_reason"]) == (
        "deprecated",
        successor,
        REASON,
    )
    assert body["deprecated_at"] is not None
    assert client.get(f"/v1/datasets/{PUBLISHER}/{OLD}").json()["superseded_by"] == successor
    fresh = client.get(f"/v1/datasets/{PUBLISHER}/{NEW}").json()
    assert (fresh["status"], fresh["superseded_by"]) == ("active", None)

    # Its numbers stay readable (deprecation is advice, not withdrawal), each one flagged.
    factor_path = f"/v1/factors/{PUBLISHER}/{OLD}/synthetic-00001"
    answers = [
        client.get(factor_path).json(),
        client.get(factor_path, params={"version": "1.0.0"}).json(),
        *client.get("/v1/factors", params={"dataset": f"{PUBLISHER}/{OLD}"}).json()["items"],
        *client.get(f"/v1/datasets/{PUBLISHER}/{OLD}/versions/1.0.0/factors").json()["items"],
    ]
    assert len(answers) == 4
    for factor in answers:
        assert (factor["dataset_status"], factor["superseded_by"]) == ("deprecated", successor)
        assert factor["version_status"] == "published"
    chain = client.get(f"{factor_path}/provenance").json()
    assert (chain["dataset_status"], chain["superseded_by"]) == ("deprecated", successor)
    assert chain["audit_events"][-1]["action"] == "dataset.deprecated"
    current = client.get(f"/v1/factors/{PUBLISHER}/{NEW}/synthetic-00001").json()
    assert (current["dataset_status"], current["superseded_by"]) == ("active", None)

    events = client.get("/v1/audit", params={"limit": 1000}, headers=tokens.admin()).json()
    [event] = [e for e in events["items"] if e["action"] == "dataset.deprecated"]
    assert event["subject_id"] == f"{PUBLISHER}/{OLD}"
    assert event["payload"] == {"superseded_by": successor, "reason": REASON}
    assert client.get("/v1/audit/verify", headers=tokens.admin()).json()["ok"] is True

    again = _deprecate(client, two_datasets["reviewer"], OLD, {"reason": REASON})
    assert again.status_code == 409


def test_a_dataset_can_be_deprecated_without_a_successor(
    client: TestClient, two_datasets: dict[str, dict[str, str]]
) -> None:
    response = _deprecate(client, two_datasets["reviewer"], OLD, {"reason": REASON})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["superseded_by"]) == ("deprecated", None)


def test_deprecation_is_for_reviewers_and_checked(
    client: TestClient, tokens: TokenKit, two_datasets: dict[str, dict[str, str]]
) -> None:
    body: dict[str, Any] = {"superseded_by": f"{PUBLISHER}/{NEW}", "reason": REASON}
    assert _deprecate(client, {}, OLD, body).status_code == 401
    assert _deprecate(client, two_datasets["writer"], OLD, body).status_code == 403
    assert _deprecate(client, tokens.reader(), OLD, body).status_code == 403

    reviewer = two_datasets["reviewer"]
    attempts: list[tuple[str, dict[str, Any], int]] = [
        ("no-such", body, 404),
        (OLD, {"superseded_by": f"{PUBLISHER}/no-such", "reason": REASON}, 404),
        (OLD, {"superseded_by": f"{PUBLISHER}/{OLD}", "reason": REASON}, 409),  # itself
        (OLD, {"superseded_by": "not a dataset id", "reason": REASON}, 422),
        (OLD, {"superseded_by": f"{PUBLISHER}/{NEW}"}, 422),  # a reason is required
        (OLD, {**body, "extra": 1}, 422),
    ]
    for slug, payload, status in attempts:
        response = _deprecate(client, reviewer, slug, payload)
        assert response.status_code == status, (slug, payload, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    # Nothing of the refused attempts stuck.
    assert client.get(f"/v1/datasets/{PUBLISHER}/{OLD}").json()["status"] == "active"

    # B superseded by A, then A superseded by B would be a loop.
    backwards = {"superseded_by": f"{PUBLISHER}/{OLD}", "reason": REASON}
    assert _deprecate(client, reviewer, NEW, backwards).status_code == 200
    loop = _deprecate(client, reviewer, OLD, body)
    assert loop.status_code == 409, loop.text
    assert client.get(f"/v1/datasets/{PUBLISHER}/{OLD}").json()["status"] == "active"


def test_a_public_dataset_cannot_point_readers_at_a_registered_successor(
    client: TestClient, tokens: TokenKit, two_datasets: dict[str, dict[str, str]]
) -> None:
    hidden = "steel-products-members"
    body = {**DATASET_BODY, "slug": hidden, "access": "registered"}
    assert client.post("/v1/datasets", json=body, headers=two_datasets["writer"]).status_code == 201
    refused = _deprecate(
        client,
        two_datasets["reviewer"],
        OLD,
        {"superseded_by": f"{PUBLISHER}/{hidden}", "reason": REASON},
    )
    assert refused.status_code == 409, refused.text
    assert "anonymous readers cannot see" in refused.json()["detail"]
    assert client.get(f"/v1/datasets/{PUBLISHER}/{OLD}").json()["status"] == "active"
