"""Webhooks: subscriptions managed with `webhooks:manage`, events fanned out from the change
outbox and delivered, signed per Standard Webhooks, to a real HTTP receiver that verifies them
with the `standardwebhooks` package. All data here is synthetic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from standardwebhooks import Webhook, WebhookVerificationError

from app.changes import delivery
from app.changes.delivery import RetryPolicy, claim, fan_out, run_once
from app.changes.models import WebhookDelivery, WebhookSubscription
from app.core.audit import append_event
from app.core.db import make_sessionmaker, utcnow
from tests.auth_fixtures import TokenKit
from tests.conftest import run_efdb_in_process
from tests.test_changes import Story
from tests.test_publishing import PUBLISHER

NOW = RetryPolicy(first_delay=timedelta(0), lease=timedelta(seconds=30), timeout_seconds=5)


class Receiver:
    """A small HTTP server that keeps each request it is sent (or is not listening)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        # Set: the first request is kept waiting until `release` is set.
        self.hang_first = threading.Event()
        self.release = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
        self.port = probe.server_address[1]
        probe.server_close()  # down until `up()`: connections are refused

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def up(self) -> None:
        received, receiver = self.received, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                received.append((dict(self.headers.items()), self.rfile.read(length)))
                if receiver.hang_first.is_set() and len(received) == 1:
                    receiver.release.wait(30)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def verified(self, secret: str) -> list[dict[str, Any]]:
        return [Webhook(secret).verify(body, headers) for headers, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiving = Receiver()
    yield receiving
    receiving.down()


@pytest.fixture
def manager(tokens: TokenKit) -> dict[str, str]:
    return tokens.headers(publisher=None, scopes=["webhooks:manage", "factors:read"])


def deliver(client: TestClient, db: Engine, policy: RetryPolicy = NOW) -> int:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with httpx.Client() as http:
        return run_once(make_sessionmaker(db), settings=settings, policy=policy, http=http)


def subscribe(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_receiver_down_then_up_gets_each_event_once_signed(
    client: TestClient, tokens: TokenKit, db: Engine, receiver: Receiver, manager: dict[str, str]
) -> None:
    story = Story(client, tokens)
    story.dataset("steel-products")
    story.release("steel-products", "1.0.0", [1])  # before the subscription: not sent
    hook = subscribe(client, manager, url=receiver.url, datasets=[f"{PUBLISHER}/steel-products"])
    assert hook["secret"].startswith("whsec_")
    assert "secret" not in client.get(f"/v1/webhooks/{hook['id']}", headers=manager).json()
    story.release("steel-products", "1.1.0", [1, 2])

    assert deliver(client, db) == 1  # refused: the receiver is down
    assert receiver.received == []
    receiver.up()
    assert deliver(client, db) == 1
    assert deliver(client, db) == 0  # delivered: never sent again
    (event,) = receiver.verified(hook["secret"])
    assert event["type"] == "release.published"
    assert (event["data"]["dataset"], event["data"]["version"]) == ("steel-products", "1.1.0")
    with pytest.raises(WebhookVerificationError):
        receiver.verified("whsec_" + "A" * 32)

    (delivery,) = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=manager).json()[
        "items"
    ]
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [None, 204]
    assert delivery["attempts"][0]["error"]
    headers = receiver.received[0][0]
    assert headers["webhook-id"] == delivery["message_id"]

    # A replay sends the same event again, with the same id: the receiver can tell.
    replayed = client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/replay", headers=manager
    )
    assert replayed.status_code == 200, replayed.text
    assert deliver(client, db) == 1
    assert [h["webhook-id"] for h, _ in receiver.received] == [delivery["message_id"]] * 2


def test_a_rolled_back_change_sends_nothing_and_filters_hold(
    client: TestClient, tokens: TokenKit, db: Engine, receiver: Receiver, manager: dict[str, str]
) -> None:
    story = Story(client, tokens)
    story.dataset("steel-products")
    story.dataset("cement")
    receiver.up()
    hook = subscribe(
        client,
        manager,
        url=receiver.url,
        events=["release.withdrawn"],
        datasets=[f"{PUBLISHER}/steel-products"],
    )
    with make_sessionmaker(db)() as session:
        append_event(
            session,
            actor="synthetic-test",
            action="dataset.deprecated",
            subject_type="dataset",
            subject_id=f"{PUBLISHER}/steel-products",
            payload={"superseded_by": None, "reason": "synthetic: rolled back"},
        )
        session.rollback()
    story.release("steel-products", "1.0.0", [1])  # not a withdrawal: not wanted
    story.release("cement", "1.0.0", [1])
    story.withdraw("cement", "1.0.0", "synthetic")  # another dataset: not wanted
    story.withdraw("steel-products", "1.0.0", "synthetic: wrong unit")
    while deliver(client, db):
        pass
    (event,) = receiver.verified(hook["secret"])
    assert (event["type"], event["data"]["reason"]) == (
        "release.withdrawn",
        "synthetic: wrong unit",
    )


def test_rotation_signs_with_both_secrets_and_a_day_of_failures_marks_failing(
    client: TestClient, tokens: TokenKit, db: Engine, receiver: Receiver, manager: dict[str, str]
) -> None:
    story = Story(client, tokens)
    story.dataset("steel-products")
    hook = subscribe(client, manager, url=receiver.url)
    rotated = client.post(f"/v1/webhooks/{hook['id']}/secret:rotate", headers=manager)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != hook["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    story.release("steel-products", "1.0.0", [1])
    receiver.up()
    assert deliver(client, db) == 1
    assert receiver.verified(new_secret) == receiver.verified(hook["secret"])

    receiver.down()
    story.release("steel-products", "1.1.0", [1, 2])
    give_up = RetryPolicy(first_delay=timedelta(0), give_up_after=timedelta(0))
    assert deliver(client, db, give_up) == 1
    assert client.get(f"/v1/webhooks/{hook['id']}", headers=manager).json()["status"] == "failing"
    statuses = [
        d["status"]
        for d in client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=manager).json()[
            "items"
        ]
    ]
    assert statuses == ["failed", "delivered"]


def test_only_https_or_local_http_and_only_the_owner(
    client: TestClient, tokens: TokenKit, manager: dict[str, str], db: Engine
) -> None:
    refused = client.post("/v1/webhooks", json={"url": "http://example.com/x"}, headers=manager)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body", "url"]
    bad = client.post(
        "/v1/webhooks",
        json={"url": "https://example.com/x", "datasets": ["nobody/nothing"]},
        headers=manager,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["body", "datasets", "0"]
    assert client.post("/v1/webhooks", json={"url": "https://example.com/x"}).status_code == 401
    reader = tokens.reader()
    assert (
        client.post("/v1/webhooks", json={"url": "https://example.com/x"}, headers=reader)
    ).status_code == 403
    hook = subscribe(client, manager, url="https://example.com/x")
    other = tokens.headers(publisher=None, scopes=["webhooks:manage"])
    assert client.get(f"/v1/webhooks/{hook['id']}", headers=other).status_code == 404
    assert client.get("/v1/webhooks", headers=other).json() == {"items": []}
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=manager).status_code == 204
    assert client.get("/v1/webhooks", headers=manager).json() == {"items": []}
    with make_sessionmaker(db)() as session:
        stored = session.execute(select(WebhookSubscription)).scalar_one()
    # Stored encrypted: the secret is nowhere in the row.
    assert hook["secret"] not in json.dumps(
        {c.name: str(getattr(stored, c.name)) for c in WebhookSubscription.__table__.columns}
    )


def test_efdb_worker_once_delivers(
    client: TestClient,
    tokens: TokenKit,
    receiver: Receiver,
    manager: dict[str, str],
    settings: Any,
    tmp_path: Path,
) -> None:
    story = Story(client, tokens)
    story.dataset("steel-products")
    hook = subscribe(client, manager, url=receiver.url)
    story.release("steel-products", "1.0.0", [1])
    receiver.up()
    env = {
        "EFDB_DATABASE_URL": settings.database_url,
        "EFDB_ENVIRONMENT": "test",
        "EFDB_SIGNING_KEY": str(settings.signing_key),
        "EFDB_GENERATED_SIGNING_KEY": str(settings.generated_signing_key),
    }
    done = run_efdb_in_process("worker", "--once", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"attempted": 1}
    (event,) = receiver.verified(hook["secret"])
    assert event["data"]["version"] == "1.0.0"


def test_a_worker_killed_mid_delivery_loses_nothing(
    client: TestClient,
    tokens: TokenKit,
    db: Engine,
    receiver: Receiver,
    manager: dict[str, str],
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    story = Story(client, tokens)
    story.dataset("steel-products")
    hook = subscribe(client, manager, url=receiver.url)
    story.release("steel-products", "1.0.0", [1])
    receiver.hang_first.set()
    receiver.up()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env.update(
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        EFDB_DATABASE_URL=settings.database_url,
        EFDB_ENVIRONMENT="test",
        EFDB_SIGNING_KEY=str(settings.signing_key),
        EFDB_GENERATED_SIGNING_KEY=str(settings.generated_signing_key),
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--lease", "6", "--poll", "0.2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert receiver.received, "the worker never sent the event"
    finally:
        worker.kill()  # SIGKILL mid-delivery: the receiver has not answered yet
        worker.wait()
    receiver.release.set()
    (pending,) = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=manager).json()[
        "items"
    ]
    assert (pending["status"], pending["attempts"]) == ("pending", [])
    assert deliver(client, db) == 0  # still leased to the dead worker
    with make_sessionmaker(db)() as session:
        lease = session.scalars(select(WebhookDelivery.locked_until)).one()
    assert lease is not None
    assert lease <= utcnow() + timedelta(seconds=6)
    # The clock moves past the lease (rather than the test sleeping through it).
    monkeypatch.setattr(delivery, "utcnow", lambda: lease + timedelta(seconds=1))
    assert deliver(client, db) == 1  # the lease ran out: sent again, nothing lost
    (delivered,) = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=manager).json()[
        "items"
    ]
    assert delivered["status"] == "delivered"
    events = receiver.verified(hook["secret"])
    assert len(events) == 2
    assert events[0] == events[1]
    assert {h["webhook-id"] for h, _ in receiver.received} == {delivered["message_id"]}


def test_two_workers_never_claim_the_same_delivery(
    client: TestClient,
    tokens: TokenKit,
    db: Engine,
    manager: dict[str, str],
    backend: str,
) -> None:
    story = Story(client, tokens)
    story.dataset("steel-products")
    subscribe(client, manager, url="https://example.com/hooks")
    story.release("steel-products", "1.0.0", [1])
    sessions = make_sessionmaker(db)
    with sessions.begin() as session:
        assert fan_out(session) == 1
    first, second = sessions(), sessions()
    try:
        now = utcnow()
        claimed = claim(first, now=now, policy=NOW)
        assert len(claimed) == 1
        if backend == "postgresql":
            # Claimed but not yet committed: the row is locked, and the other worker skips it
            # instead of waiting for it.
            assert claim(second, now=now, policy=NOW) == []
            second.rollback()
        first.commit()
        # Committed: leased to the first worker until its lease runs out.
        assert claim(second, now=utcnow(), policy=NOW) == []
        second.rollback()
        later = utcnow() + NOW.lease + timedelta(seconds=1)
        assert claim(second, now=later, policy=NOW) == claimed
        second.rollback()
    finally:
        first.close()
        second.close()


@pytest.mark.dialect_neutral
def test_the_first_retry_waits_the_configured_time_and_each_later_one_twice_as_long(
    settings: Any,
) -> None:
    policy = RetryPolicy.from_settings(
        settings.model_copy(update={"webhook_retry_first_seconds": 2.5})
    )
    assert [policy.delay(attempt) for attempt in (1, 2, 3)] == [
        timedelta(seconds=2.5),
        timedelta(seconds=5),
        timedelta(seconds=10),
    ]
    assert RetryPolicy.from_settings(settings).delay(1) == timedelta(seconds=5)  # the default
