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
