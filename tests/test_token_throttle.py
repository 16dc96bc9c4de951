"""The token endpoint refuses guessing cheaply: rates (here in the worker's memory; shared
through Redis in tests/test_rate_limits.py) and a database lockout, both checked before any
secret is hashed (issue 22)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

import app.auth.server as token_server
from app.auth.hashing import verify_secret
from app.core.config import Settings
from app.main import create_app
from tests.auth_fixtures import BASE_URL, Credentials, TokenKit
from tests.rate_windows import start_within_one_minute

TOKEN_URL = BASE_URL + "/oauth/token"


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every secret the token endpoint hashes, in order."""
    seen: list[str] = []
    real = verify_secret

    def counted(secret: str, stored: str | None) -> bool:
        seen.append(secret)
        return real(secret, stored)

    monkeypatch.setattr(token_server, "verify_secret", counted)
    return seen


@contextmanager
def throttled_client(settings: Settings, **limits: Any) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update=limits))
    start_within_one_minute()
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def attempt(client: TestClient, client_id: str, secret: str) -> Any:
    return client.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


def assert_too_many(response: Any) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["status"] == 429


def test_a_client_that_keeps_failing_is_locked_audited_and_refused_before_hashing(
    db: Engine, settings: Settings, hashes: list[str]
) -> None:
    with throttled_client(settings, token_lockout_failures=3) as client:
        lock_and_unlock(client, db, hashes)


def lock_and_unlock(client: TestClient, db: Engine, hashes: list[str]) -> None:
    kit = TokenKit(client, db)
    victim: Credentials = kit.credentials(publisher="synthetic-pub", scopes=["datasets:write"])
    for _ in range(3):
        assert attempt(client, victim.client_id, "wrong-secret").status_code == 401
    assert len(hashes) == 3

    refused = attempt(client, victim.client_id, victim.client_secret)
    assert_too_many(refused)
    assert len(hashes) == 3, "a locked client's secret must not be hashed"

    with db.connect() as connection:
        locked_until = connection.execute(
            text("SELECT locked_until FROM client WHERE client_id = :c"), {"c": victim.client_id}
        ).scalar_one()
        events = connection.execute(
            text(
                "SELECT actor, payload FROM audit_event WHERE action = 'client.locked' "
                "AND subject_id = :c"
            ),
            {"c": victim.client_id},
        ).all()
    assert locked_until is not None
    assert len(events) == 1

    admin = kit.admin()
    audit = client.get("/v1/audit", params={"limit": 1000}, headers=admin)
    assert audit.status_code == 200, audit.text
    locks = [e for e in audit.json()["items"] if e["action"] == "client.locked"]
    assert [e["subject_id"] for e in locks] == [victim.client_id]
    assert locks[0]["payload"]["failures"] == 3

    # Once the lock has passed, the right secret works again and the count starts afresh.
    with db.begin() as connection:
        connection.execute(
            text("UPDATE client SET locked_until = :past WHERE client_id = :c"),
            {"past": "2000-01-01 00:00:00+00:00", "c": victim.client_id},
        )
    issued = attempt(client, victim.client_id, victim.client_secret)
    assert issued.status_code == 200, issued.text
    with db.connect() as connection:
        failures = connection.execute(
            text("SELECT failed_attempts FROM client WHERE client_id = :c"),
            {"c": victim.client_id},
        ).scalar_one()
    assert failures == 0


def test_guessing_is_rate_limited_per_client_id_and_per_address(
    db: Engine, settings: Settings, hashes: list[str]
) -> None:
    with throttled_client(settings, token_attempts_per_client=3, token_attempts_per_ip=5) as client:
        guess(client, db, hashes)


def guess(client: TestClient, db: Engine, hashes: list[str]) -> None:
    for _ in range(3):
        assert attempt(client, "no-such-client", "guess").status_code == 401
    assert_too_many(attempt(client, "no-such-client", "guess"))
    assert len(hashes) == 3
    # Another client id from the same address: the address's own bound comes next.
    assert attempt(client, "another-unknown", "guess").status_code == 401
    assert_too_many(attempt(client, "a-third-unknown", "guess"))
    assert len(hashes) == 4
    # Unknown ids are never stored, so nothing about them is locked or audited.
    with db.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM audit_event WHERE action = 'client.locked'")
            ).scalar_one()
            == 0
        )


def attempt_in(client: TestClient, client_id: str, secret: str, language: str) -> Any:
    return client.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        headers={"Accept-Language": language},
    )


def test_the_429s_answer_in_the_clients_language(db: Engine, settings: Settings) -> None:
    """Both refusals (too many attempts; a locked client) are in Chinese when asked, with the
    same type and title as in English."""
    with throttled_client(settings, token_attempts_per_client=2) as client:
        for _ in range(2):
            assert attempt(client, "no-such-client", "guess").status_code == 401
        en = attempt_in(client, "no-such-client", "guess", "en")
        zh = attempt_in(client, "no-such-client", "guess", "zh-CN")
        for response in (en, zh):
            assert_too_many(response)
        assert zh.headers["content-language"] == "zh-CN"
        assert (en.json()["type"], en.json()["title"]) == (zh.json()["type"], zh.json()["title"])
        assert en.json()["detail"] == (
            "Too many token requests from this address or for this client; retry later."
        )
        assert zh.json()["detail"] == "来自此地址或针对此客户端的令牌请求过多；请稍后重试。"

    with throttled_client(settings, token_lockout_failures=2) as client:
        victim = TokenKit(client, db).credentials(
            publisher="synthetic-pub", scopes=["datasets:write"]
        )
        for _ in range(2):
            assert attempt(client, victim.client_id, "wrong-secret").status_code == 401
        locked = attempt_in(client, victim.client_id, victim.client_secret, "zh-CN")
        assert_too_many(locked)
        assert locked.json()["detail"] == "此客户端因多次认证失败已被锁定；请稍后重试。"
