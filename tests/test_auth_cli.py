"""`efdb publisher create`, `efdb client create`, `efdb client revoke`, run by `app.cli.main`
in this process (tests/test_cli.py starts the real process).

The secret printed by the CLI is used at the token endpoint, so the round trip is the one an
administrator and an integrator go through.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.auth.hashing import verify_secret
from app.auth.models import Client
from app.core.audit import verify_chain
from app.core.models import AuditEvent
from app.datasets.models import Publisher
from tests.conftest import run_efdb_in_process

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_env(database_url: str, db: Engine) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env["EFDB_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return env


@pytest.fixture
def efdb(cli_env: dict[str, str], tmp_path: Path) -> Any:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_efdb_in_process(*args, env=cli_env, cwd=tmp_path)

    return run


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fails(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("efdb: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fragment in result.stderr, result.stderr
    assert not result.stdout


def token_response(client: TestClient, client_id: str, secret: str) -> Any:
    return client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )


def test_create_publisher_client_use_and_revoke(
    efdb: Any, client: TestClient, session: Session
) -> None:
    publisher = ok(
        efdb(
            "publisher", "create", "cisa",
            "--name-zh", "中国钢铁工业协会",
            "--name-en", "China Iron and Steel Association",
            "--sector", "C31", "--sector", "C32",
            "--email", "data@example.org",
        )
    )  # fmt: skip
    assert publisher == {
        "slug": "cisa",
        "name_zh": "中国钢铁工业协会",
        "name_en": "China Iron and Steel Association",
        "sectors": ["C31", "C32"],
        "contact_email": "data@example.org",
        "status": "active",
    }

    created = ok(
        efdb(
            "client", "create", "--publisher", "cisa",
            "--scope", "datasets:write", "--scope", "factors:read", "--name", "cisa uploader",
        )
    )  # fmt: skip
    assert created.keys() >= {"client_id", "client_secret", "scopes", "publisher"}
    assert created["client_id"].startswith("efdb_")
    assert created["scopes"] == ["datasets:write", "factors:read"]
    assert created["publisher"] == "cisa"

    # Stored hashed, never in clear.
    row = session.execute(
        select(Client).where(Client.client_id == created["client_id"])
    ).scalar_one()
    assert created["client_secret"] not in row.secret_hash
    assert verify_secret(created["client_secret"], row.secret_hash)
    session.rollback()

    issued = token_response(client, created["client_id"], created["client_secret"])
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert (
        client.get("/v1/datasets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )

    revoked = ok(efdb("client", "revoke", created["client_id"]))
    assert revoked["client_id"] == created["client_id"]
    assert revoked["revoked_at"]
    refused = token_response(client, created["client_id"], created["client_secret"])
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    response = client.get("/v1/datasets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401

    events = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    actions = [(event.action, event.subject_id) for event in events]
    assert actions == [
        ("publisher.created", "cisa"),
        ("client.created", created["client_id"]),
        ("client.revoked", created["client_id"]),
    ]
    assert all(event.actor.startswith("cli") for event in events)
    assert all(created["client_secret"] not in json.dumps(e.payload) for e in events)
    assert verify_chain(session).ok
    assert ok(efdb("audit", "verify"))["events"] == 3


def test_national_client(efdb: Any, client: TestClient) -> None:
    created = ok(
        efdb("client", "create", "--admin", "--scope", "datasets:review", "--scope", "admin")
    )
    assert created["publisher"] is None
    assert created["scopes"] == ["admin", "datasets:review"]
    issued = token_response(client, created["client_id"], created["client_secret"])
    assert issued.status_code == 200
    assert issued.json()["scope"] == "admin datasets:review"


def test_failures_are_one_line_and_change_nothing(efdb: Any, session: Session) -> None:
    # The service's rules are tested in test_auth_tokens; here, that the CLI reports them.
    fails(efdb("publisher", "create", "Bad_Slug", "--name-zh", "名", "--name-en", "n"), "slug")
    fails(efdb("client", "create", "--publisher", "ghost", "--scope", "factors:read"), "ghost")
    ok(efdb("publisher", "create", "cisa", "--name-zh", "中钢协", "--name-en", "CISA"))
    fails(efdb("client", "create", "--publisher", "cisa", "--scope", "factors:write"), "unknown")
    fails(efdb("client", "create", "--publisher", "cisa", "--scope", "admin"), "admin")
    fails(efdb("client", "revoke", "efdb_nobody"), "efdb_nobody")
    created = ok(efdb("client", "create", "--publisher", "cisa", "--scope", "factors:read"))
    ok(efdb("client", "revoke", created["client_id"]))
    fails(efdb("client", "revoke", created["client_id"]), "already revoked")

    assert session.execute(select(Publisher.slug)).scalars().all() == ["cisa"]
    assert len(session.execute(select(Client)).scalars().all()) == 1
    actions = session.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars().all()
    assert actions == ["publisher.created", "client.created", "client.revoked"]


def test_help_explains_who_gets_which_scope(efdb: Any) -> None:
    result = efdb("client", "create", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "datasets:review and admin go only to --admin clients" in text


def _publisher(efdb: Any, slug: str) -> None:
    ok(efdb("publisher", "create", slug, "--name-zh", f"{slug} 协会", "--name-en", slug.upper()))


def test_publisher_list(efdb: Any) -> None:
    assert ok(efdb("publisher", "list")) == []
    _publisher(efdb, "cisa")
    _publisher(efdb, "cbmf")
    listed = ok(efdb("publisher", "list"))
    assert [p["slug"] for p in listed] == ["cbmf", "cisa"]
    assert listed[1]["name_zh"] == "cisa 协会"
    assert {p["status"] for p in listed} == {"active"}
    assert all(p["created_at"] for p in listed)


def test_client_list_never_shows_a_secret(efdb: Any) -> None:
    _publisher(efdb, "cisa")
    _publisher(efdb, "cbmf")
    cisa = ok(efdb("client", "create", "--publisher", "cisa", "--scope", "datasets:write"))
    cbmf = ok(efdb("client", "create", "--publisher", "cbmf", "--scope", "factors:read"))
    national = ok(efdb("client", "create", "--admin", "--scope", "admin", "--name", "ops"))
    ok(efdb("client", "revoke", cbmf["client_id"]))

    result = efdb("client", "list")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [c["client_id"] for c in listed] == [cisa["client_id"], national["client_id"]]
    for issued in (cisa, cbmf, national):
        assert issued["client_secret"] not in result.stdout
    assert all("secret" not in key for entry in listed for key in entry)
    assert listed[0]["publisher"] == "cisa"
    assert listed[0]["scopes"] == ["datasets:write"]
    assert listed[1] == {**listed[1], "publisher": None, "name": "ops", "scopes": ["admin"]}

    everyone = ok(efdb("client", "list", "--include-revoked"))
    assert len(everyone) == 3
    (revoked,) = [c for c in everyone if c["client_id"] == cbmf["client_id"]]
    assert revoked["revoked_at"]
    only_cbmf = ok(efdb("client", "list", "--publisher", "cbmf", "--include-revoked"))
    assert [c["client_id"] for c in only_cbmf] == [cbmf["client_id"]]


def test_a_suspended_publishers_clients_cannot_write(
    efdb: Any, client: TestClient, session: Session
) -> None:
    from tests.test_publishing import DATASET_BODY

    _publisher(efdb, "cisa")
    writer = ok(
        efdb("client", "create", "--publisher", "cisa", "--scope", "datasets:write",
             "--scope", "factors:read")
    )  # fmt: skip
    token = token_response(client, writer["client_id"], writer["client_secret"]).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    created = client.post("/v1/datasets", json=DATASET_BODY, headers=headers)
    assert created.status_code == 201, created.text

    suspended = ok(efdb("publisher", "suspend", "cisa", "--reason", "licence dispute"))
    assert suspended == {"slug": "cisa", "status": "suspended"}
    # The token it holds stops working at once, and no new one is issued.
    refused = client.post("/v1/datasets", json={**DATASET_BODY, "slug": "steel-2"}, headers=headers)
    assert refused.status_code == 401
    assert token_response(client, writer["client_id"], writer["client_secret"]).status_code == 401
    listed = ok(efdb("client", "list", "--publisher", "cisa"))
    assert listed[0]["publisher_suspended"] is True
    assert ok(efdb("publisher", "list"))[0]["status"] == "suspended"
    fails(efdb("publisher", "suspend", "cisa"), "already suspended")

    ok(efdb("publisher", "resume", "cisa"))
    again = token_response(client, writer["client_id"], writer["client_secret"])
    assert again.status_code == 200
    resumed = {"Authorization": f"Bearer {again.json()['access_token']}"}
    allowed = client.post("/v1/datasets", json={**DATASET_BODY, "slug": "steel-2"}, headers=resumed)
    assert allowed.status_code == 201, allowed.text

    events = (
        session.execute(
            select(AuditEvent).where(AuditEvent.subject_type == "publisher").order_by(AuditEvent.id)
        )
        .scalars()
        .all()
    )
    assert [(e.action, e.subject_id) for e in events] == [
        ("publisher.created", "cisa"),
        ("publisher.suspended", "cisa"),
        ("publisher.resumed", "cisa"),
    ]
    assert events[1].payload == {"reason": "licence dispute"}
    assert events[1].actor.startswith("cli")
    assert verify_chain(session).ok


def test_suspending_an_unknown_publisher_fails(efdb: Any) -> None:
    fails(efdb("publisher", "suspend", "ghost"), "no publisher 'ghost'")
