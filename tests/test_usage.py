"""Usage metering of registered data: each read of a registered dataset's factors counts one
request and the rows it served, per client, dataset and day, in the database; the dataset's
publisher and the administrators read it at `GET /v1/datasets/{p}/{d}/usage`. Public data and
anonymous reads are never metered.

Every record here is a synthetic test fixture, not a real emission factor.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.datasets.usage import DatasetUsage
from tests.auth_fixtures import TokenKit, bearer
from tests.factories import create_dataset_with_factors, create_publisher, factor_fields

MEMBERS = "/v1/datasets/synth-a/members"


@pytest.fixture
def members_only(session: Session) -> None:
    """synth-a/open is public; synth-a/members (three factors) is registered."""
    publisher = create_publisher(session, slug="synth-a")
    create_dataset_with_factors(
        session,
        publisher=publisher,
        dataset="open",
        factors=[factor_fields("open-1", activity_id="synthetic-grid", region="CN")],
    )
    create_dataset_with_factors(
        session,
        publisher=publisher,
        dataset="members",
        access="registered",
        factors=[
            factor_fields("secret-1", activity_id="synthetic-grid", region="CN-GD"),
            factor_fields("secret-2", activity_id="synthetic-heat", region="CN-GD"),
            factor_fields("secret-3", activity_id="synthetic-cold", region="CN-GD"),
        ],
    )
    session.commit()


def read_everything(client: TestClient, headers: dict[str, str]) -> tuple[int, int]:
    """Reads of synth-a/members through each metered path; (requests, rows) they served."""
    requests = rows = 0
    page = client.get("/v1/factors", params={"dataset": "synth-a/members"}, headers=headers)
    assert page.status_code == 200, page.text
    requests, rows = requests + 1, rows + len(page.json()["items"])
    assert client.get("/v1/factors/synth-a/members/secret-1", headers=headers).status_code == 200
    requests, rows = requests + 1, rows + 1
    listed = client.get(f"{MEMBERS}/versions/1.0.0/factors", params={"limit": 2}, headers=headers)
    assert listed.status_code == 200, listed.text
    requests, rows = requests + 1, rows + len(listed.json()["items"])
    lines = [
        {"activity_id": activity, "region": "CN-GD", "year": 2022}
        for activity in ("synthetic-grid", "synthetic-heat", "synthetic-nothing")
    ]
    resolved = client.post("/v1/factors:resolve", json={"items": lines}, headers=headers)
    assert resolved.status_code == 200, resolved.text
    requests, rows = requests + 1, rows + resolved.json()["resolved"]
    export = client.get(f"{MEMBERS}/versions/1.0.0/export.csv", headers=headers)
    assert export.status_code == 200, export.text
    requests, rows = requests + 1, rows + 3
    history = client.get("/v1/factors/synth-a/members/secret-2/history", headers=headers)
    assert history.status_code == 200, history.text
    requests, rows = requests + 1, rows + len(history.json()["items"])
    provenance = client.get("/v1/factors/synth-a/members/secret-3/provenance", headers=headers)
    assert provenance.status_code == 200, provenance.text
    requests, rows = requests + 1, rows + 1
    diff = client.get(f"{MEMBERS}/versions/1.0.0/diff", params={"from": "1.0.0"}, headers=headers)
    assert diff.status_code == 200, diff.text
    requests += 1  # a diff counts the request, not rows
    # Not metered: a conditional GET answered 304, and public data.
    diff_again = client.get(
        f"{MEMBERS}/versions/1.0.0/diff",
        params={"from": "1.0.0"},
        headers={**headers, "If-None-Match": diff.headers["etag"]},
    )
    assert diff_again.status_code == 304
    etag = export.headers["etag"]
    again = client.get(
        f"{MEMBERS}/versions/1.0.0/export.csv", headers={**headers, "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert client.get("/v1/factors/synth-a/open/open-1", headers=headers).status_code == 200
    return requests, rows


def test_reads_are_metered_per_client_and_shown_to_the_publisher(
    client: TestClient, tokens: TokenKit, members_only: None, db: Engine
) -> None:
    reader = tokens.credentials(publisher=None, scopes=["factors:read"])
    headers = bearer(tokens.fetch(reader)["access_token"])
    tokens.grant(reader.client_id, "synth-a/members")
    requests, rows = read_everything(client, headers)
    assert (requests, rows) == (8, 3 + 1 + 2 + 2 + 3 + 1 + 1)
    twice = read_everything(client, headers)

    owner = tokens.writer("synth-a")
    answer = client.get(f"{MEMBERS}/usage", headers=owner)
    assert answer.status_code == 200, answer.text
    today = utcnow().date().isoformat()
    assert answer.json() == {
        "dataset": "synth-a/members",
        "items": [
            {
                "day": today,
                "client_id": reader.client_id,
                "requests": requests + twice[0],
                "rows": rows + twice[1],
            }
        ],
    }
    assert client.get(f"{MEMBERS}/usage", headers=tokens.admin()).json() == answer.json()
    later = client.get(f"{MEMBERS}/usage", params={"since": "2999-01-01"}, headers=owner)
    assert later.json()["items"] == []
    # One row a client, dataset and day; public data never metered.
    with Session(db) as session:
        assert session.scalar(select(func.count()).select_from(DatasetUsage)) == 1


def test_usage_is_the_publishers_and_the_administrators_only(
    client: TestClient, tokens: TokenKit, members_only: None
) -> None:
    for outsider in (tokens.writer("synth-b"), tokens.reader("synth-a/members"), tokens.reviewer()):
        assert client.get(f"{MEMBERS}/usage", headers=outsider).status_code == 404
    assert client.get(f"{MEMBERS}/usage").status_code == 401


def test_anonymous_and_public_reads_are_not_metered(
    client: TestClient, tokens: TokenKit, members_only: None
) -> None:
    assert client.get("/v1/factors/synth-a/open/open-1").status_code == 200
    assert client.get("/v1/factors/synth-a/members/secret-1").status_code == 404
    ungranted = tokens.reader()
    assert client.get("/v1/factors/synth-a/members/secret-1", headers=ungranted).status_code == 404
    body: dict[str, Any] = client.get(f"{MEMBERS}/usage", headers=tokens.admin()).json()
    assert body["items"] == []
