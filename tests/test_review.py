"""The national reviewer reads what it approves: a submission's factors, report and diff,
the queue of submissions, and a publish that names the content hash it read."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.datasets.version_models import DatasetVersion
from app.versioning.content_hash import content_sha256
from tests.auth_fixtures import TokenKit
from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS, create_dataset, publish, upload
from tests.test_version_scenario import Clock, clock  # noqa: F401 (fixture)
from tests.upload_files import csv_bytes, synthetic_row

PRIVATE = "private, no-store"


def _submission(client: TestClient, tokens: TokenKit) -> dict[str, Any]:
    """Synthetic 1.0.0 released (three rows); 1.1.0 submitted: one renamed, one added."""
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    create_dataset(client, writer)
    rows = [synthetic_row(i) for i in range(3)]
    assert upload(client, writer, csv_bytes(rows)).status_code == 201
    client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    assert publish(client, reviewer, "1.0.0").status_code == 200
    rows[1] = synthetic_row(1, name_en="Synthetic factor one, renamed")
    rows.append(synthetic_row(3, name_en="=formula-like synthetic name"))
    uploaded = upload(client, writer, csv_bytes(rows), version="1.1.0")
    assert uploaded.status_code == 201, uploaded.text
    submitted = client.post(f"{VERSIONS}/1.1.0/submit", headers=writer)
    assert submitted.status_code == 200, submitted.text
    return {"writer": writer, "reviewer": reviewer, "rows": rows, "upload": uploaded.json()}


def test_a_reviewer_and_the_publisher_read_a_submission_and_nobody_else(
    client: TestClient, tokens: TokenKit
) -> None:
    setup = _submission(client, tokens)
    for headers in (setup["reviewer"], setup["writer"]):
        version = client.get(f"{VERSIONS}/1.1.0", headers=headers)
        assert version.status_code == 200, version.text
        assert version.headers["cache-control"] == PRIVATE
        body = version.json()
        assert body["status"] == "submitted"
        assert body["report"] == setup["upload"]["report"]
        codes = {w["code"] for w in body["report"]["warnings"]}
        assert "formula_like_cell" in codes

        page = client.get(f"{VERSIONS}/1.1.0/factors", headers=headers)
        assert page.status_code == 200, page.text
        assert page.headers["cache-control"] == PRIVATE
        factors = page.json()["items"]
        assert [f["factor_code"] for f in factors] == [r["factor_code"] for r in setup["rows"]]
        assert {f["version_status"] for f in factors} == {"submitted"}
        # The hash a reviewer is shown is the hash of the factors it reads.
        assert content_sha256(factors) == body["content_sha256"]

        diff = client.get(f"{VERSIONS}/1.1.0/diff", params={"from": "1.0.0"}, headers=headers)
        assert diff.status_code == 200, diff.text
        assert diff.headers["cache-control"] == PRIVATE
        assert diff.json()["summary"] == {"added": 1, "removed": 0, "changed": 1}
        assert diff.json()["changed"][0]["fields"]["name_en"]["after"].endswith("renamed")

    other = tokens.writer("other-synthetic-pub")
    # The publisher's own read-only client does not review or submit: not for it either.
    own_reader = tokens.headers(publisher=PUBLISHER, scopes=["factors:read"])
    for headers in ({}, tokens.reader(), other, own_reader):
        for path, params in (
            (f"{VERSIONS}/1.1.0", {}),
            (f"{VERSIONS}/1.1.0/factors", {}),
            (f"{VERSIONS}/1.1.0/diff", {"from": "1.0.0"}),
        ):
            hidden = client.get(path, params=params, headers=headers)
            assert hidden.status_code == 404, (path, headers, hidden.text)
    # Nor does the submission leak into search or lookups: the release is still 1.0.0.
    found = client.get("/v1/factors", params={"dataset": f"{PUBLISHER}/steel-products"})
    assert {f["version"] for f in found.json()["items"]} == {"1.0.0"}


def test_a_reviewer_reads_a_submission_of_a_registered_dataset(
    client: TestClient, tokens: TokenKit
) -> None:
    writer = tokens.writer(PUBLISHER)
    response = client.post(
        "/v1/datasets", json={**DATASET_BODY, "access": "registered"}, headers=writer
    )
    assert response.status_code == 201
    upload(client, writer, csv_bytes([synthetic_row(1)]))
    client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    # A review-only client: no `factors:read`, yet it must read what it is asked to approve.
    reviewer = tokens.headers(publisher=None, scopes=["datasets:review"])
    assert client.get(f"{VERSIONS}/1.0.0/factors", headers=reviewer).json()["items"]
    assert publish(client, reviewer, "1.0.0").status_code == 200
    # And, released, it stays readable to that reviewer (not to anonymous callers).
    assert client.get(f"{VERSIONS}/1.0.0/factors", headers=reviewer).json()["items"]
    assert client.get(f"{VERSIONS}/1.0.0/factors").status_code == 404


def test_the_queue_lists_submissions_oldest_first_with_their_counts(
    client: TestClient,
    tokens: TokenKit,
    clock: Clock,  # noqa: F811
) -> None:
    clock.set("2026-12-01T09:00")
    setup = _submission(client, tokens)
    writer, reviewer = setup["writer"], setup["reviewer"]
    # A second dataset, uploaded earlier, submitted later: the queue goes by submission.
    second = {**DATASET_BODY, "slug": "steel-products-b"}
    assert client.post("/v1/datasets", json=second, headers=writer).status_code == 201
    versions_b = f"/v1/datasets/{PUBLISHER}/steel-products-b/versions"
    client.post(
        versions_b,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("b.csv", csv_bytes([synthetic_row(9)]), "text/csv")},
    )
    clock.set("2026-12-02T09:00")
    assert client.post(f"{versions_b}/1.0.0/submit", headers=writer).status_code == 200

    queue = client.get("/v1/review", headers=reviewer)
    assert queue.status_code == 200, queue.text
    assert queue.headers["cache-control"] == PRIVATE
    first, later = queue.json()["items"]
    assert (first["dataset"], first["version"]) == (f"{PUBLISHER}/steel-products", "1.1.0")
    assert later["dataset"] == f"{PUBLISHER}/steel-products-b"
    assert first["row_count"] == 4
    assert first["current_release"] == "1.0.0"
    assert first["changes"] == {"added": 1, "removed": 0, "changed": 1}
    assert first["error_count"] == 0
    assert first["warning_count"] == setup["upload"]["report"]["warning_count"] > 0
    assert (
        first["content_sha256"]
        == client.get(f"{VERSIONS}/1.1.0", headers=reviewer).json()["content_sha256"]
    )
    assert first["links"]["diff"] == f"{VERSIONS}/1.1.0/diff?from=1.0.0"
    assert client.get(first["links"]["diff"], headers=reviewer).status_code == 200
    assert later["current_release"] is None
    assert later["changes"] is None

    assert client.get("/v1/review", headers=writer).status_code == 403
    assert client.get("/v1/review").status_code == 401
    # Once published it leaves the queue.
    assert publish(client, reviewer, "1.1.0").status_code == 200
    remaining = client.get("/v1/review", headers=reviewer).json()["items"]
    assert [item["dataset"] for item in remaining] == [f"{PUBLISHER}/steel-products-b"]


def test_publish_names_the_hash_it_reviewed_and_a_mismatch_changes_nothing(
    client: TestClient, tokens: TokenKit
) -> None:
    setup = _submission(client, tokens)
    reviewer = setup["reviewer"]
    read = client.get(f"{VERSIONS}/1.1.0", headers=reviewer).json()["content_sha256"]
    wrong = "0" * 64

    refused = client.post(
        f"{VERSIONS}/1.1.0/publish", headers=reviewer, json={"content_sha256": wrong}
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert (problem["content_sha256"], problem["reviewed_sha256"]) == (read, wrong)
    assert read in problem["detail"]
    assert wrong in problem["detail"]
    assert client.get(f"{VERSIONS}/1.1.0", headers=reviewer).json()["status"] == "submitted"
    assert client.get(f"{VERSIONS}/1.0.0").json()["status"] == "published"

    for body in (None, {}, {"content_sha256": "not-a-hash"}):
        unnamed = client.post(f"{VERSIONS}/1.1.0/publish", headers=reviewer, json=body)
        assert unnamed.status_code == 422, body

    published = client.post(
        f"{VERSIONS}/1.1.0/publish", headers=reviewer, json={"content_sha256": read}
    )
    assert published.status_code == 200, published.text
    assert published.json()["content_sha256"] == read
    released = client.get(f"{VERSIONS}/1.1.0/factors").json()["items"]
    assert content_sha256(released) == read


def test_a_submission_from_before_submit_fixed_its_hash_still_shows_one(
    client: TestClient, tokens: TokenKit, db: Engine
) -> None:
    setup = _submission(client, tokens)
    reviewer = setup["reviewer"]
    fixed = client.get(f"{VERSIONS}/1.1.0", headers=reviewer).json()["content_sha256"]
    # As a version submitted before this release of the service left it: no hash stored.
    with Session(db) as session, session.begin():
        session.execute(
            update(DatasetVersion)
            .where(DatasetVersion.version == "1.1.0")
            .values(content_sha256=None)
        )
    shown = client.get(f"{VERSIONS}/1.1.0", headers=reviewer).json()["content_sha256"]
    assert shown == fixed
    (queued,) = client.get("/v1/review", headers=reviewer).json()["items"]
    assert queued["content_sha256"] == fixed
    assert publish(client, reviewer, "1.1.0").json()["content_sha256"] == fixed
