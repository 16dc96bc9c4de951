"""Four eyes on every state change: withdraw and deprecate, like publish and reject, need a
reviewer who is not of the dataset's publisher. Data is synthetic."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.auth.hashing import hash_secret
from app.auth.models import Client
from app.core.models import AuditEvent
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import DatasetVersion
from tests.auth_fixtures import Credentials, TokenKit, bearer
from tests.test_publishing import PUBLISHER, VERSIONS, create_dataset, publish, upload
from tests.upload_files import csv_bytes, synthetic_row

DATASET = f"/v1/datasets/{PUBLISHER}/steel-products"


def _reviewer_of(tokens: TokenKit, db: Engine, publisher: str) -> dict[str, str]:
    """A reviewer client bound to `publisher`. The CLI never makes one (review belongs to
    national clients); built directly, to show the rule holds in the service too."""
    tokens.ensure_publisher(publisher)
    client_id, secret = f"synthetic-reviewer-of-{publisher}", "synthetic-secret-for-a-reviewer"
    with Session(db) as session, session.begin():
        owner = session.execute(select(Publisher).where(Publisher.slug == publisher)).scalar_one()
        session.add(
            Client(
                client_id=client_id,
                secret_hash=hash_secret(secret),
                scopes=["datasets:review"],
                publisher_id=owner.id,
            )
        )
    credentials = Credentials(client_id, secret, ["datasets:review"], publisher)
    return bearer(tokens.fetch(credentials)["access_token"])


@pytest.fixture
def released(client: TestClient, tokens: TokenKit) -> None:
    """synthetic-pub/steel-products 1.0.0, published by a national reviewer."""
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    assert upload(client, writer, csv_bytes([synthetic_row(1)])).status_code == 201
    assert client.post(f"{VERSIONS}/1.0.0/submit", headers=writer).status_code == 200
    assert publish(client, tokens.reviewer(), "1.0.0").status_code == 200


def _state(db: Engine) -> tuple[str, str, int]:
    with Session(db) as session:
        version = session.execute(select(DatasetVersion.status)).scalar_one()
        dataset = session.execute(select(Dataset.status)).scalar_one()
        events = len(list(session.scalars(select(AuditEvent.id))))
    return version, dataset, events


@pytest.mark.usefixtures("released")
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"{VERSIONS}/1.0.0/withdraw", {"reason": "Synthetic: wrong unit."}),
        (f"{DATASET}/deprecate", {"reason": "Synthetic: replaced."}),
    ],
    ids=["withdraw", "deprecate"],
)
def test_a_reviewer_of_the_datasets_publisher_cannot_withdraw_or_deprecate_it(
    client: TestClient, tokens: TokenKit, db: Engine, path: str, body: dict[str, str]
) -> None:
    before = _state(db)
    refused = client.post(path, json=body, headers=_reviewer_of(tokens, db, PUBLISHER))
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "cannot review" in refused.json()["detail"]
    assert f"'{PUBLISHER}'" in refused.json()["detail"]
    assert _state(db) == before  # nothing changed, nothing audited

    # A reviewer of another publisher may (and a national one, as before).
    allowed = client.post(path, json=body, headers=_reviewer_of(tokens, db, "synthetic-other"))
    assert allowed.status_code == 200, allowed.text
    assert _state(db) != before
