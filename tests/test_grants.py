"""Per-dataset grants: a registered dataset is read by its publisher's clients, the national
roles and the clients granted it; every other reader gets 404 on every read path, as if the
dataset did not exist. Granted by `efdb grant add` (run by `app.cli.main` in this process) or
by the publisher at `PUT /v1/datasets/{p}/{d}/grants/{client_id}`.

Every record here is a synthetic test fixture, not a real emission factor.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.changes.delivery import _viewer as delivery_viewer
from app.core.models import AuditEvent
from app.datasets.models import Dataset
from tests.auth_fixtures import TokenKit, bearer
from tests.conftest import run_efdb_in_process
from tests.factories import create_dataset_with_factors, create_publisher, factor_fields

MEMBERS = "/v1/datasets/synth-a/members"


@pytest.fixture
def members_only(session: Session) -> None:
    """synth-a/open is public; synth-a/members is registered (both synthetic)."""
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
        ],
    )
    session.commit()


def reads(client: TestClient, headers: dict[str, str]) -> dict[str, int]:
    """The status of each read path of synth-a/members for this reader (search: whether the
    dataset's factors are in the answer, 200 or 404)."""
    statuses: dict[str, int] = {}
    found = client.get("/v1/factors", params={"dataset": "synth-a/members"}, headers=headers)
    assert found.status_code == 200, found.text
    statuses["search"] = 200 if found.json()["items"] else 404
    resolved = client.post(
        "/v1/factors:resolve",
        json={"items": [{"activity_id": "synthetic-grid", "region": "CN-GD", "year": 2022}]},
        headers=headers,
    )
    assert resolved.status_code == 200, resolved.text
    chosen = resolved.json()["items"][0].get("factor") or {}
    statuses["resolve"] = 200 if chosen.get("dataset") == "members" else 404
    paths = {
        "dataset": MEMBERS,
        "versions": f"{MEMBERS}/versions",
        "version": f"{MEMBERS}/versions/1.0.0",
        "version factors": f"{MEMBERS}/versions/1.0.0/factors",
        "export": f"{MEMBERS}/versions/1.0.0/export.csv",
        "lookup": "/v1/factors/synth-a/members/secret-1",
        "history": "/v1/factors/synth-a/members/secret-1/history",
        "provenance": "/v1/factors/synth-a/members/secret-1/provenance",
    }
    for name, path in paths.items():
        statuses[name] = client.get(path, headers=headers).status_code
    return statuses


def every(status: int) -> dict[str, int]:
    names = ("search", "resolve", "dataset", "versions", "version", "version factors")
    return dict.fromkeys((*names, "export", "lookup", "history", "provenance"), status)


def test_a_grant_opens_every_read_path_and_its_removal_closes_them(
    client: TestClient, tokens: TokenKit, members_only: None
) -> None:
    reader = tokens.credentials(publisher=None, scopes=["factors:read"])
    headers = bearer(tokens.fetch(reader)["access_token"])
    assert reads(client, headers) == every(404)
    assert reads(client, {}) == every(404)

    owner = tokens.writer("synth-a")
    granted = client.put(f"{MEMBERS}/grants/{reader.client_id}", headers=owner)
    assert granted.status_code == 201, granted.text
    assert granted.json()["dataset"] == "synth-a/members"
    assert client.put(f"{MEMBERS}/grants/{reader.client_id}", headers=owner).status_code == 200
    # The same token: grants are read with every request, not baked into the token.
    assert reads(client, headers) == every(200)
    listed = client.get(f"{MEMBERS}/grants", headers=owner).json()["items"]
    assert [g["client_id"] for g in listed] == [reader.client_id]

    assert client.delete(f"{MEMBERS}/grants/{reader.client_id}", headers=owner).status_code == 204
    assert reads(client, headers) == every(404)
    assert client.get(f"{MEMBERS}/grants", headers=owner).json()["items"] == []


def test_the_publisher_and_national_roles_read_without_a_grant(
    client: TestClient, tokens: TokenKit, members_only: None
) -> None:
    assert reads(client, tokens.writer("synth-a")) == every(200)
    assert reads(client, tokens.reviewer()) == every(200)
    assert reads(client, tokens.admin()) == every(200)
    # Another publisher's client is a reader like any other: no grant, no dataset.
    assert reads(client, tokens.writer("synth-b")) == every(404)


def test_only_the_publisher_or_an_administrator_manages_grants(
    client: TestClient, tokens: TokenKit, members_only: None, db: Engine
) -> None:
    reader = tokens.credentials(publisher=None, scopes=["factors:read"])
    grant = f"{MEMBERS}/grants/{reader.client_id}"
    for outsider in (tokens.writer("synth-b"), tokens.reader(), tokens.reviewer()):
        assert client.put(grant, headers=outsider).status_code == 404
        assert client.get(f"{MEMBERS}/grants", headers=outsider).status_code == 404
    assert client.put(grant).status_code == 401
    assert client.put(grant, headers=tokens.admin()).status_code == 201
    public = client.put(
        f"/v1/datasets/synth-a/open/grants/{reader.client_id}", headers=tokens.admin()
    )
    assert public.status_code == 409
    unknown = client.put(f"{MEMBERS}/grants/efdb_nobody", headers=tokens.writer("synth-a"))
    assert unknown.status_code == 404
    assert client.delete(f"{MEMBERS}/grants/efdb_nobody", headers=tokens.admin()).status_code == 404
    with Session(db) as session:
        actions = session.execute(
            select(AuditEvent.action, AuditEvent.subject_id, AuditEvent.payload).where(
                AuditEvent.action.like("dataset.grant%")
            )
        ).all()
    assert [tuple(a) for a in actions] == [
        ("dataset.grant_added", "synth-a/members", {"client_id": reader.client_id})
    ]


@pytest.fixture
def efdb(database_url: str, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env["EFDB_DATABASE_URL"] = database_url

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_efdb_in_process(*args, env=env, cwd=tmp_path)

    return run


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_efdb_grant_add_list_remove(
    client: TestClient,
    tokens: TokenKit,
    members_only: None,
    efdb: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    reader = tokens.credentials(publisher=None, scopes=["factors:read"])
    headers = bearer(tokens.fetch(reader)["access_token"])
    lookup = "/v1/factors/synth-a/members/secret-1"
    assert client.get(lookup, headers=headers).status_code == 404

    added = ok(efdb("grant", "add", "--dataset", "synth-a/members", "--client", reader.client_id))
    assert (added["dataset"], added["client_id"]) == ("synth-a/members", reader.client_id)
    assert client.get(lookup, headers=headers).status_code == 200
    listed = ok(efdb("grant", "list", "--dataset", "synth-a/members"))
    assert [(g["dataset"], g["client_id"]) for g in listed] == [
        ("synth-a/members", reader.client_id)
    ]
    assert ok(efdb("grant", "list")) == listed

    ok(efdb("grant", "remove", "--dataset", "synth-a/members", "--client", reader.client_id))
    assert client.get(lookup, headers=headers).status_code == 404
    assert ok(efdb("grant", "list")) == []

    refused = efdb("grant", "add", "--dataset", "synth-a/open", "--client", reader.client_id)
    assert refused.returncode == 1
    assert "public" in refused.stderr
    missing = efdb("grant", "remove", "--dataset", "synth-a/members", "--client", reader.client_id)
    assert missing.returncode == 1
    assert "no grant" in missing.stderr
    bad = efdb("grant", "add", "--dataset", "members", "--client", reader.client_id)
    assert bad.returncode == 1
    assert "PUBLISHER/DATASET" in bad.stderr


def test_webhook_deliveries_read_as_the_subscribing_client_does(
    tokens: TokenKit, members_only: None, session: Session
) -> None:
    """The delivery worker's reader for a subscription: its publisher reads its own registered
    datasets, another client only with a grant, a revoked one as anonymous callers do."""
    members = session.execute(select(Dataset.id).where(Dataset.slug == "members")).scalar_one()
    own = tokens.credentials(publisher="synth-a", scopes=["webhooks:manage", "factors:read"])
    other = tokens.credentials(publisher=None, scopes=["webhooks:manage", "factors:read"])

    def may_read(client_id: str) -> bool:
        with Session(session.get_bind()) as fresh:
            viewer = delivery_viewer(fresh, client_id)
        return viewer.may_read(access="registered", publisher="synth-a", dataset_id=members)

    assert may_read(own.client_id)
    assert not may_read(other.client_id)
    tokens.grant(other.client_id, "synth-a/members")
    assert may_read(other.client_id)
    assert not may_read("efdb_nobody")
