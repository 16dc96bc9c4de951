"""A sector association publishes: dataset, upload, report, fix, submit, review, publish."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.auth.hashing import hash_secret
from app.auth.models import Client
from app.datasets.models import Publisher
from app.datasets.version_models import DatasetVersion
from app.factors.models import Factor, FactorDraft
from app.versioning.content_hash import content_sha256
from tests.auth_fixtures import Credentials, TokenKit, bearer
from tests.upload_files import csv_bytes, jsonl_bytes, parquet_bytes, synthetic_row

PUBLISHER = "synthetic-pub"
DATASET_BODY: dict[str, Any] = {
    "slug": "steel-products",
    "title_zh": "合成钢铁产品",
    "title_en": "Synthetic steel products",
    "description": "Synthetic test dataset (not real factors).",
    "sector_scheme": "GB/T 4754-2017",
    "sector_code": "C31",
    "access": "public",
    "license_id": "CC-BY-4.0",
    "license_url": "https://creativecommons.org/licenses/by/4.0/",
    "attribution": "Synthetic test data",
    "redistribution": True,
    "commercial_use": True,
}
VERSIONS = f"/v1/datasets/{PUBLISHER}/steel-products/versions"


def create_dataset(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/v1/datasets", json=DATASET_BODY, headers=headers)
    assert response.status_code == 201, response.text


def publish(
    client: TestClient, reviewer: dict[str, str], version: str, *, versions: str = VERSIONS
) -> Any:
    """Publish as a reviewer does: read the submitted version, then name its content hash."""
    seen = client.get(f"{versions}/{version}", headers=reviewer)
    assert seen.status_code == 200, seen.text
    return client.post(
        f"{versions}/{version}/publish",
        headers=reviewer,
        json={"content_sha256": seen.json()["content_sha256"]},
    )


def upload(
    client: TestClient,
    headers: dict[str, str],
    content: bytes,
    *,
    version: str = "1.0.0",
    name: str = "factors.csv",
) -> Any:
    return client.post(
        VERSIONS,
        headers=headers,
        data={"version": version, "release_notes": "synthetic"},
        files={"file": (name, content, "application/octet-stream")},
    )


def test_the_whole_publishing_flow(client: TestClient, tokens: TokenKit) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    rows = [synthetic_row(i) for i in range(3)]

    bad = upload(client, writer, csv_bytes([*rows[:2], synthetic_row(2, unit="kwhh")]))
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"] == [
        {"row": 4, "column": "unit", "code": "unknown_unit", "detail": "'kwhh' is not a unit"}
    ]
    assert client.get(VERSIONS, headers=writer).json()["items"] == []

    good = upload(client, writer, csv_bytes(rows))
    assert good.status_code == 201, good.text
    draft = good.json()
    assert draft["status"] == "draft"
    assert draft["row_count"] == 3
    assert draft["report"]["errors"] == []
    # Drafts are not public.
    assert client.get(f"{VERSIONS}/1.0.0").status_code == 404
    assert client.get(f"{VERSIONS}/1.0.0", headers=writer).json()["status"] == "draft"

    submitted = client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "submitted"

    # A writer cannot publish its own submission.
    reviewed = {"content_sha256": submitted.json()["content_sha256"]}
    assert (
        client.post(f"{VERSIONS}/1.0.0/publish", headers=writer, json=reviewed).status_code == 403
    )
    published = publish(client, tokens.reviewer(), "1.0.0")
    assert published.status_code == 200, published.text
    version = published.json()
    assert version["status"] == "published"
    assert len(version["content_sha256"]) == 64

    factors = client.get(f"{VERSIONS}/1.0.0/factors").json()["items"]
    assert [f["factor_code"] for f in factors] == [r["factor_code"] for r in rows]
    assert all(f["license_id"] == "CC-BY-4.0" for f in factors)
    assert content_sha256(factors) == version["content_sha256"]
    lookup = client.get(f"/v1/factors/{PUBLISHER}/steel-products/synthetic-00001")
    assert lookup.json()["co2e"] == pytest.approx(101 + 28 + 26.5)


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("factors.csv", csv_bytes),
        ("factors.jsonl", jsonl_bytes),
        ("factors.parquet", parquet_bytes),
    ],
)
def test_every_upload_format_gives_the_same_content_hash(
    client: TestClient, tokens: TokenKit, name: str, encode: Any
) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    rows = [synthetic_row(i, name_zh=f"合成因子「{i}」", valid_from="2023-01-01") for i in range(5)]
    response = upload(client, writer, encode(rows), name=name)
    assert response.status_code == 201, response.text
    client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    published = publish(client, tokens.reviewer(), "1.0.0").json()
    reference = [{**row, "reference_year": int(row["reference_year"])} for row in rows]
    assert published["content_sha256"] == content_sha256(reference)


def test_same_file_twice_is_idempotent_and_a_new_file_replaces_the_draft(
    client: TestClient, tokens: TokenKit, db: Engine
) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    content = csv_bytes([synthetic_row(i) for i in range(4)])
    first = upload(client, writer, content)
    again = upload(client, writer, content)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["file_sha256"] == first.json()["file_sha256"]
    replaced = upload(client, writer, csv_bytes([synthetic_row(9)]))
    assert replaced.status_code == 201
    assert replaced.json()["row_count"] == 1
    with Session(db) as session:
        # The draft's rows, wherever they are (in factor_draft until its submit).
        assert session.execute(select(func.count()).select_from(Factor)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(FactorDraft)).scalar_one() == 1
        assert session.execute(select(func.count()).select_from(DatasetVersion)).scalar_one() == 1


def test_version_numbers_only_go_up_and_bumps_follow_the_diff(
    client: TestClient, tokens: TokenKit
) -> None:
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    create_dataset(client, writer)
    rows = [synthetic_row(i) for i in range(3)]
    upload(client, writer, csv_bytes(rows))
    client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    publish(client, reviewer, "1.0.0")

    for stale in ("1.0.0", "0.9.0"):
        refused = upload(client, writer, csv_bytes(rows), version=stale)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["code"] == "version_not_newer"

    # Removing a factor is a MAJOR change: a PATCH number is accepted with a warning.
    patch = upload(client, writer, csv_bytes(rows[:2]), version="1.0.1")
    assert patch.status_code == 201
    (warning,) = [
        w for w in patch.json()["report"]["warnings"] if w["code"] == "version_bump_too_small"
    ]
    assert "1 removed" in warning["detail"]
    assert "MAJOR" in warning["detail"]

    client.post(f"{VERSIONS}/1.0.1/submit", headers=writer)
    assert publish(client, reviewer, "1.0.1").status_code == 200
    old = client.get(f"{VERSIONS}/1.0.0").json()
    new = client.get(f"{VERSIONS}/1.0.1").json()
    assert old["status"] == "deprecated"
    assert new["supersedes"] == "1.0.0"


def test_reject_and_withdraw_need_a_reason_and_keep_the_record(
    client: TestClient, tokens: TokenKit
) -> None:
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    create_dataset(client, writer)
    upload(client, writer, csv_bytes([synthetic_row(1)]))
    client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    assert client.post(f"{VERSIONS}/1.0.0/reject", headers=reviewer, json={}).status_code == 422
    rejected = client.post(
        f"{VERSIONS}/1.0.0/reject", headers=reviewer, json={"reason": "synthetic: sources missing"}
    )
    assert rejected.json()["status"] == "rejected"

    upload(client, writer, csv_bytes([synthetic_row(1)]), version="1.1.0")
    client.post(f"{VERSIONS}/1.1.0/submit", headers=writer)
    publish(client, reviewer, "1.1.0")
    withdrawn = client.post(
        f"{VERSIONS}/1.1.0/withdraw", headers=reviewer, json={"reason": "synthetic: wrong unit"}
    )
    assert withdrawn.status_code == 200
    body = client.get(f"{VERSIONS}/1.1.0").json()
    assert (body["status"], body["withdrawn_reason"]) == ("withdrawn", "synthetic: wrong unit")
    lookup = client.get(f"/v1/factors/{PUBLISHER}/steel-products/synthetic-00001")
    assert lookup.status_code == 404  # nothing else is released: no latest to fall back to
    pinned = client.get(
        f"/v1/factors/{PUBLISHER}/steel-products/synthetic-00001", params={"version": "1.1.0"}
    )
    assert pinned.json()["version_status"] == "withdrawn"


def test_a_draft_can_be_deleted_by_its_publisher(client: TestClient, tokens: TokenKit) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    upload(client, writer, csv_bytes([synthetic_row(1)]))
    assert client.delete(f"{VERSIONS}/1.0.0", headers=writer).status_code == 204
    assert client.get(f"{VERSIONS}/1.0.0", headers=writer).status_code == 404


def test_template_has_every_column_and_a_valid_cited_example(
    client: TestClient, tokens: TokenKit
) -> None:
    response = client.get("/v1/upload-template.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    header = response.text.splitlines()[0].split(",")
    assert header[:2] == ["factor_code", "activity_id"]
    assert "source_locator" in header
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    uploaded = upload(client, writer, response.content, name="template.csv")
    assert uploaded.status_code == 201, uploaded.text


# --- Security: each test fails if the hole opens -------------------------------------------


def test_publishers_cannot_touch_each_others_datasets(client: TestClient, tokens: TokenKit) -> None:
    owner, other = tokens.writer(PUBLISHER), tokens.writer("synthetic-other")
    create_dataset(client, owner)
    upload(client, owner, csv_bytes([synthetic_row(1)]))
    assert upload(client, other, csv_bytes([synthetic_row(1)]), version="2.0.0").status_code == 404
    assert client.post(f"{VERSIONS}/1.0.0/submit", headers=other).status_code == 404
    missing = client.post(f"{VERSIONS}/9.9.9/submit", headers=owner)
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"No version {PUBLISHER}/steel-products 9.9.9."
    assert client.delete(f"{VERSIONS}/1.0.0", headers=other).status_code == 404
    assert (
        client.post(f"{VERSIONS}/1.0.0/withdraw", headers=other, json={"reason": "x"}).status_code
        == 403
    )
    # A's dataset body naming B is refused, never written into B.
    sneaky = {**DATASET_BODY, "slug": "sneaky", "publisher": PUBLISHER}
    assert client.post("/v1/datasets", json=sneaky, headers=other).status_code == 422


def test_a_write_token_cannot_publish_and_anonymous_cannot_write(
    client: TestClient, tokens: TokenKit
) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    upload(client, writer, csv_bytes([synthetic_row(1)]))
    client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    seen = client.get(f"{VERSIONS}/1.0.0", headers=writer).json()["content_sha256"]
    denied = client.post(f"{VERSIONS}/1.0.0/publish", headers=writer, json={"content_sha256": seen})
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    assert client.post("/v1/datasets", json=DATASET_BODY).status_code == 401
    assert upload(client, {}, csv_bytes([synthetic_row(1)]), version="1.1.0").status_code == 401


def test_a_reviewer_of_the_same_publisher_cannot_publish_its_submission(
    client: TestClient, tokens: TokenKit, db: Engine
) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    upload(client, writer, csv_bytes([synthetic_row(1)]))
    client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    # The CLI never gives a publisher's client the review scope; build one directly to prove
    # the rule holds in the service too.
    secret = "synthetic-secret-for-a-policy-breaking-client"
    with Session(db) as session, session.begin():
        publisher = session.execute(
            select(Publisher).where(Publisher.slug == PUBLISHER)
        ).scalar_one()
        session.add(
            Client(
                client_id="synthetic-same-publisher-reviewer",
                secret_hash=hash_secret(secret),
                scopes=["datasets:review"],
                publisher_id=publisher.id,
            )
        )
    credentials = Credentials(
        "synthetic-same-publisher-reviewer", secret, ["datasets:review"], PUBLISHER
    )
    token = bearer(tokens.fetch(credentials)["access_token"])
    refused = publish(client, token, "1.0.0")
    assert refused.status_code == 403
    assert "cannot review" in refused.json()["detail"]


@pytest.mark.parametrize(
    "field",
    [
        {"status": "published"},
        {"publisher": "other"},
        {"content_sha256": "0" * 64},
        {"id": 5},
        {"created_at": "2020-01-01T00:00:00Z"},
    ],
)
def test_unknown_fields_are_refused(
    client: TestClient, tokens: TokenKit, field: dict[str, Any]
) -> None:
    response = client.post(
        "/v1/datasets", json={**DATASET_BODY, **field}, headers=tokens.writer(PUBLISHER)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "extra_forbidden"


@pytest.mark.parametrize(
    "body",
    [
        b'{"slug": "x", "redistribution": NaN}',
        b'{"slug": "x", "redistribution": Infinity}',
        b'{"slug": "x", "slug": "y"}',
    ],
)
def test_json_with_nan_infinity_or_duplicate_keys_is_refused(
    client: TestClient, tokens: TokenKit, body: bytes
) -> None:
    headers = {**tokens.writer(PUBLISHER), "content-type": "application/json"}
    response = client.post("/v1/datasets", content=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "invalid_json"


def test_clients_in_the_database_hold_only_hashes(
    client: TestClient, tokens: TokenKit, db: Engine
) -> None:
    tokens.writer(PUBLISHER)
    with Session(db) as session:
        for stored in session.execute(select(Client)).scalars():
            assert stored.secret_hash.startswith("scrypt$")


def test_the_audit_log_records_every_step_and_verifies(
    client: TestClient, tokens: TokenKit, db: Engine
) -> None:
    writer, reviewer, admin = tokens.writer(PUBLISHER), tokens.reviewer(), tokens.admin()
    create_dataset(client, writer)
    upload(client, writer, csv_bytes([synthetic_row(1)]))
    client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    publish(client, reviewer, "1.0.0")
    assert client.get("/v1/audit", headers=writer).status_code == 403

    events, url = [], "/v1/audit?limit=2"
    while url:
        page = client.get(url, headers=admin)
        assert page.status_code == 200, page.text
        events += page.json()["items"]
        url = page.json()["next"]
    actions = [e["action"] for e in events]
    for step in ("dataset.created", "version.uploaded", "version.submitted", "version.published"):
        assert step in actions
    assert actions.index("version.uploaded") < actions.index("version.published")
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    assert client.get("/v1/audit/verify", headers=admin).json() == {
        "ok": True,
        "events": len(events),
        "first_bad_event": None,
        "reason": None,
    }

    published = next(e for e in events if e["action"] == "version.published")
    with db.begin() as connection:  # someone with DDL rights gets past the trigger
        if db.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            connection.execute(text("DROP TRIGGER audit_event_no_update"))
        connection.execute(
            text("UPDATE audit_event SET payload = '{}' WHERE id = :id"), {"id": published["id"]}
        )
    verdict = client.get("/v1/audit/verify", headers=admin).json()
    assert (verdict["ok"], verdict["first_bad_event"]) == (False, published["id"])


def _pages(client: TestClient, headers: dict[str, str], url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url is not None:
        page = client.get(next_url, headers=headers)
        assert page.status_code == 200, page.text
        items.extend(page.json()["items"])
        next_url = page.json()["next"]
    return items


def test_a_drafts_factors_read_the_same_before_and_after_its_submit_moves_them(
    client: TestClient, tokens: TokenKit, db: Engine
) -> None:
    """A draft's rows are in factor_draft, its submission's in factor: its pages list the
    same factors, in upload order, page by page either way."""
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    rows = [synthetic_row(i) for i in (3, 1, 4, 0, 5, 9, 2)]  # upload order is not code order
    assert upload(client, writer, csv_bytes(rows)).status_code == 201
    url = f"{VERSIONS}/1.0.0/factors?limit=2"
    as_draft = _pages(client, writer, url)
    assert [f["factor_code"] for f in as_draft] == [r["factor_code"] for r in rows]
    assert {f["version_status"] for f in as_draft} == {"draft"}
    with Session(db) as session:
        assert session.execute(select(func.count()).select_from(FactorDraft)).scalar_one() == 7
    assert client.post(f"{VERSIONS}/1.0.0/submit", headers=writer).status_code == 200
    as_submitted = _pages(client, writer, url)
    assert as_submitted == [{**f, "version_status": "submitted"} for f in as_draft]
    with Session(db) as session:
        assert session.execute(select(func.count()).select_from(FactorDraft)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(Factor)).scalar_one() == 7
