"""A factor's history across releases, field-level diffs between releases, and provenance."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.auth_fixtures import TokenKit, decode_unverified
from tests.test_publishing import (
    DATASET_BODY,
    PUBLISHER,
    VERSIONS,
    create_dataset,
    publish,
    upload,
)
from tests.upload_files import csv_bytes, synthetic_row

FACTORS = f"/v1/factors/{PUBLISHER}/steel-products"


def _release(
    client: TestClient, writer: dict[str, str], reviewer: dict[str, str], version: str, body: bytes
) -> dict[str, Any]:
    response = upload(client, writer, body, version=version)
    assert response.status_code == 201, response.text
    assert client.post(f"{VERSIONS}/{version}/submit", headers=writer).status_code == 200
    published = publish(client, reviewer, version)
    assert published.status_code == 200, published.text
    return dict(published.json())


def _client_id(headers: dict[str, str]) -> str:
    _, claims = decode_unverified(headers["Authorization"].removeprefix("Bearer "))
    return str(claims.get("client_id") or claims["sub"])


@pytest.fixture
def releases(client: TestClient, tokens: TokenKit) -> dict[str, Any]:
    """1.0.0: three factors; 1.1.0: one value corrected, one added; 2.0.0: one removed, then
    withdrawn."""
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    create_dataset(client, writer)
    first = [synthetic_row(i) for i in range(3)]
    second = [first[0], synthetic_row(1, co2=96.0, co2e=150.5), first[2], synthetic_row(3)]
    third = [second[0], second[1], second[3]]
    files = {"1.0.0": csv_bytes(first), "1.1.0": csv_bytes(second), "2.0.0": csv_bytes(third)}
    for version, body in files.items():
        _release(client, writer, reviewer, version, body)
    withdrawn = client.post(
        f"{VERSIONS}/2.0.0/withdraw", headers=reviewer, json={"reason": "synthetic: mistake"}
    )
    assert withdrawn.status_code == 200, withdrawn.text
    return {"files": files, "writer": writer, "reviewer": reviewer, "rows": second}


def test_history_lists_every_release_newest_first(
    client: TestClient, releases: dict[str, Any]
) -> None:
    response = client.get(f"{FACTORS}/synthetic-00001/history")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(i["version"], i["version_status"], i["withdrawn"]) for i in items] == [
        ("2.0.0", "withdrawn", True),
        ("1.1.0", "published", False),
        ("1.0.0", "deprecated", False),  # superseded by 1.1.0
    ]
    assert [i["co2e"] for i in items] == pytest.approx([150.5, 150.5, 101 + 28 + 26.5])
    assert items[0]["withdrawn_reason"] == "synthetic: mistake"
    assert items[0]["withdrawn_at"] is not None
    assert items[1]["withdrawn_at"] is None
    assert {(i["unit"], i["region"], i["reference_year"], i["gwp_set"]) for i in items} == {
        ("t", "CN", 2023, "AR5")
    }
    assert len({i["uid"] for i in items}) == 3

    removed = client.get(f"{FACTORS}/synthetic-00002/history").json()["items"]
    assert [i["version"] for i in removed] == ["1.1.0", "1.0.0"]
    added = client.get(f"{FACTORS}/synthetic-00003/history").json()["items"]
    assert [i["version"] for i in added] == ["2.0.0", "1.1.0"]
    assert client.get(f"{FACTORS}/synthetic-09999/history").status_code == 404
    unknown = client.get(f"/v1/factors/{PUBLISHER}/no-such/synthetic-00001/history")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


def test_diff_between_releases(client: TestClient, releases: dict[str, Any]) -> None:
    response = client.get(f"{VERSIONS}/1.1.0/diff", params={"from": "1.0.0"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    body = response.json()
    assert (body["from"], body["to"]) == ("1.0.0", "1.1.0")
    assert body["summary"] == {"added": 1, "removed": 0, "changed": 1}
    assert body["added"] == ["synthetic-00003"]
    assert body["removed"] == []
    [changed] = body["changed"]
    assert changed["factor_code"] == "synthetic-00001"
    assert set(changed["fields"]) == {"co2", "co2e"}
    assert changed["fields"]["co2e"]["before"] == pytest.approx(101 + 28 + 26.5)
    assert changed["fields"]["co2e"]["after"] == pytest.approx(150.5)
    again = client.get(
        f"{VERSIONS}/1.1.0/diff",
        params={"from": "1.0.0"},
        headers={"If-None-Match": response.headers["etag"]},
    )
    assert again.status_code == 304

    # The withdrawn release still diffs: it stays on the record.
    later = client.get(f"{VERSIONS}/2.0.0/diff", params={"from": "1.1.0"}).json()
    assert later["summary"] == {"added": 0, "removed": 1, "changed": 0}
    assert later["removed"] == ["synthetic-00002"]
    assert later["changed"] == []
    assert later["added"] == []

    backwards = client.get(f"{VERSIONS}/1.0.0/diff", params={"from": "1.1.0"}).json()
    assert backwards["removed"] == ["synthetic-00003"]
    assert backwards["changed"][0]["fields"]["co2e"]["after"] == pytest.approx(155.5)


def test_diff_needs_two_releases(client: TestClient, releases: dict[str, Any]) -> None:
    writer = releases["writer"]
    assert upload(client, writer, csv_bytes([synthetic_row(7)]), version="2.1.0").status_code == 201
    for path, params, headers in [
        (f"{VERSIONS}/9.9.9/diff", {"from": "1.0.0"}, {}),
        (f"{VERSIONS}/1.1.0/diff", {"from": "9.9.9"}, {}),
        # A draft is not released, and may still change: not even for its own publisher.
        (f"{VERSIONS}/2.1.0/diff", {"from": "1.0.0"}, writer),
        (f"{VERSIONS}/1.0.0/diff", {"from": "2.1.0"}, writer),
        (f"/v1/datasets/{PUBLISHER}/no-such/versions/1.1.0/diff", {"from": "1.0.0"}, {}),
    ]:
        response = client.get(path, params=params, headers=headers)
        assert response.status_code == 404, (path, params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert client.get(f"{VERSIONS}/1.1.0/diff").status_code == 422  # `from` is required


def test_provenance_chain(client: TestClient, releases: dict[str, Any]) -> None:
    response = client.get(f"{FACTORS}/synthetic-00003/provenance", params={"version": "1.1.0"})
    assert response.status_code == 200, response.text
    body = response.json()
    upload_file = releases["files"]["1.1.0"]
    assert body["upload"]["file_sha256"] == hashlib.sha256(upload_file).hexdigest()
    assert body["upload"]["file_name"] == "factors.csv"
    assert body["upload"]["format"] == "csv"
    # Data row 4 of the file (the header is row 1).
    assert body["upload"]["row_number"] == 5
    assert body["upload"]["uploaded_by"] == _client_id(releases["writer"])
    version = body["dataset_version"]
    assert version["version"] == "1.1.0"
    assert version["status"] == "published"
    assert version["published_by"] == _client_id(releases["reviewer"])
    assert version["submitted_by"] == version["created_by"] == _client_id(releases["writer"])
    assert version["content_sha256"] == client.get(f"{VERSIONS}/1.1.0").json()["content_sha256"]
    assert body["source"]["title"] == releases["rows"][3]["source_title"]
    assert body["source"]["locator"] == "row 3"
    assert body["factor"]["uid"]
    actions = [event["action"] for event in body["audit_events"]]
    # The dataset's creation, then this release's own events.
    assert actions[:4] == [
        "dataset.created",
        "version.uploaded",
        "version.submitted",
        "version.published",
    ]
    assert all(len(event["hash"]) == 64 for event in body["audit_events"])
    assert [h["version"] for h in body["history"]] == ["2.0.0", "1.1.0"]
    assert body["license_id"] == DATASET_BODY["license_id"]
    assert body["attribution"] == DATASET_BODY["attribution"]
    assert body["license_url"] == DATASET_BODY["license_url"]

    # Without a pin: the release that answers "latest" (2.0.0 is withdrawn).
    latest = client.get(f"{FACTORS}/synthetic-00003/provenance").json()
    assert latest["dataset_version"]["version"] == "1.1.0"
    withdrawn = client.get(
        f"{FACTORS}/synthetic-00003/provenance", params={"version": "2.0.0"}
    ).json()["dataset_version"]
    assert (withdrawn["status"], withdrawn["withdrawn_reason"]) == (
        "withdrawn",
        "synthetic: mistake",
    )
    assert withdrawn["withdrawn_by"] == _client_id(releases["reviewer"])

    for params in ({"version": "9.9.9"}, {"version": "1.0.0"}):  # 00003 is new in 1.1.0
        missing = client.get(f"{FACTORS}/synthetic-00003/provenance", params=params)
        assert missing.status_code == 404
    assert client.get(f"{FACTORS}/synthetic-09999/provenance").status_code == 404


def test_unreleased_versions_are_not_in_history_or_provenance(
    client: TestClient, tokens: TokenKit
) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    assert upload(client, writer, csv_bytes([synthetic_row(1)])).status_code == 201
    client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    for suffix in ("history", "provenance"):
        response = client.get(f"{FACTORS}/synthetic-00001/{suffix}", headers=writer)
        assert response.status_code == 404, response.text
    pinned = client.get(
        f"{FACTORS}/synthetic-00001/provenance", params={"version": "1.0.0"}, headers=writer
    )
    assert pinned.status_code == 404


def test_a_registered_dataset_is_hidden_from_anonymous_readers(
    client: TestClient, tokens: TokenKit
) -> None:
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    response = client.post(
        "/v1/datasets", json={**DATASET_BODY, "access": "registered"}, headers=writer
    )
    assert response.status_code == 201, response.text
    reader = tokens.reader(f"{PUBLISHER}/{DATASET_BODY['slug']}")
    _release(client, writer, reviewer, "1.0.0", csv_bytes([synthetic_row(i) for i in range(2)]))
    _release(client, writer, reviewer, "1.1.0", csv_bytes([synthetic_row(i) for i in range(3)]))
    paths = [
        (f"{FACTORS}/synthetic-00001/history", {}),
        (f"{FACTORS}/synthetic-00001/provenance", {}),
        (f"{VERSIONS}/1.1.0/diff", {"from": "1.0.0"}),
    ]
    for path, params in paths:
        assert client.get(path, params=params).status_code == 404, path
        seen = client.get(path, params=params, headers=reader)
        assert seen.status_code == 200, (path, seen.text)
    diff = client.get(f"{VERSIONS}/1.1.0/diff", params={"from": "1.0.0"}, headers=reader).json()
    assert diff["added"] == ["synthetic-00002"]
