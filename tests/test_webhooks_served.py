"""Webhooks delivered by `efdb serve` itself, run as an operator runs it: the delivery worker on
a thread of the server process (or not, with `--no-worker`), a real receiver verifying the
signatures with the `standardwebhooks` package, and a clean stop on SIGTERM. Every client,
subscription and change goes over HTTP; all data is synthetic."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from app.changes.delivery import RetryPolicy, claim
from app.changes.models import WebhookAttempt, WebhookDelivery
from app.core.db import make_sessionmaker, utcnow
from app.core.models import ChangeOutbox
from app.signing.jws import verify
from tests.conftest import ServerProcess, run_efdb_in_process
from tests.test_publishing import DATASET_BODY, PUBLISHER
from tests.test_publishing_server import efdb, token
from tests.test_webhooks import Receiver
from tests.upload_files import csv_bytes, synthetic_row

pytestmark = pytest.mark.slow

# The receiver that never answers is given up on after this (the default is 10 s).
RECEIVER_TIMEOUT = 2

VERSIONS = f"/v1/datasets/{PUBLISHER}/{DATASET_BODY['slug']}/versions"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiving = Receiver()
    receiving.up()
    yield receiving
    receiving.down()


@pytest.fixture
def serve(database_url: str, db: Engine, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `efdb serve ARGS` on this test's database (once per test); `db` gives the shared
    PostgreSQL database back empty afterwards."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        process = ServerProcess(tmp_path, {"EFDB_DATABASE_URL": database_url, **(env or {})}, args)
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.stop()


class Operator:
    """An administrator's clients against a running server: a publisher's writer, a national
    reviewer, and a tool holding `webhooks:manage`."""

    def __init__(self, base: str, database_url: str, cwd: Path) -> None:
        self.base = base

        def create(*args: str) -> dict[str, object]:
            return efdb("client", "create", *args, database_url=database_url, cwd=cwd)

        efdb(
            "publisher",
            "create",
            PUBLISHER,
            "--name-zh",
            "合成行业协会",
            "--name-en",
            "Synthetic association",
            database_url=database_url,
            cwd=cwd,
        )
        self.writer = token(base, create("--publisher", PUBLISHER, "--scope", "datasets:write"))
        self.reviewer = token(base, create("--admin", "--scope", "datasets:review"))
        self.manager = token(base, create("--admin", "--scope", "webhooks:manage"))
        created = httpx.post(f"{base}/v1/datasets", json=DATASET_BODY, headers=self.writer)
        assert created.status_code == 201, created.text

    def subscribe(self, url: str) -> dict[str, Any]:
        created = httpx.post(
            f"{self.base}/v1/webhooks",
            json={"url": url, "datasets": [f"{PUBLISHER}/{DATASET_BODY['slug']}"]},
            headers=self.manager,
        )
        assert created.status_code == 201, created.text
        hook: dict[str, Any] = created.json()
        return hook

    def publish(self, version: str) -> dict[str, Any]:
        """Upload, submit and publish a synthetic release of the dataset."""
        base = self.base
        files = {"file": ("f.csv", csv_bytes([synthetic_row(i) for i in range(3)]), "text/csv")}
        uploaded = httpx.post(
            f"{base}{VERSIONS}", data={"version": version}, files=files, headers=self.writer
        )
        assert uploaded.status_code == 201, uploaded.text
        submitted = httpx.post(f"{base}{VERSIONS}/{version}/submit", headers=self.writer)
        assert submitted.status_code == 200, submitted.text
        seen = httpx.get(f"{base}{VERSIONS}/{version}", headers=self.reviewer).json()
        published = httpx.post(
            f"{base}{VERSIONS}/{version}/publish",
            headers=self.reviewer,
            json={"content_sha256": seen["content_sha256"]},
        )
        assert published.status_code == 200, published.text
        body: dict[str, Any] = published.json()
        return body

    def deliveries(self, hook: dict[str, Any]) -> list[dict[str, Any]]:
        listed = httpx.get(f"{self.base}/v1/webhooks/{hook['id']}/deliveries", headers=self.manager)
        assert listed.status_code == 200, listed.text
        items: list[dict[str, Any]] = listed.json()["items"]
        return items


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_efdb_serve_delivers_signed_events_from_its_own_thread(
    serve: Callable[..., ServerProcess],
    receiver: Receiver,
    database_url: str,
    tmp_path: Path,
) -> None:
    server = serve()
    operator = Operator(server.base, database_url, tmp_path)
    hook = operator.subscribe(receiver.url)
    published = operator.publish("1.0.0")

    # Read back at once from the real server, as a tool does after the publish answer: the
    # change is in the feed and the release's statement is signed, both with its hash.
    feed = httpx.get(f"{server.base}/v1/changes", params={"publisher": PUBLISHER})
    assert feed.status_code == 200, feed.text
    (change,) = feed.json()["items"]
    assert (change["type"], change["version"]) == ("release.published", "1.0.0")
    assert change["content_sha256"] == published["content_sha256"]
    statement = httpx.get(f"{server.base}{VERSIONS}/1.0.0/release.jws")
    assert statement.status_code == 200, statement.text
    signed = verify(statement.text, httpx.get(f"{server.base}/.well-known/jwks.json").json())
    assert signed.json()["content_sha256"] == published["content_sha256"]

    # No `efdb worker` runs anywhere: only the server's thread can send it.
    assert wait_for(lambda: bool(receiver.received)), server.log.read_text(errors="replace")
    (event,) = receiver.verified(hook["secret"])
    assert event["type"] == "release.published"
    assert (event["data"]["dataset"], event["data"]["version"]) == ("steel-products", "1.0.0")
    assert event["data"]["content_sha256"] == published["content_sha256"]
    headers, _ = receiver.received[0]
    assert wait_for(lambda: operator.deliveries(hook)[0]["status"] == "delivered", 10)
    (delivery,) = operator.deliveries(hook)
    assert headers["webhook-id"] == delivery["message_id"]
    assert [a["status_code"] for a in delivery["attempts"]] == [204]


def test_efdb_serve_no_worker_delivers_nothing_until_efdb_worker_runs(
    serve: Callable[..., ServerProcess],
    receiver: Receiver,
    database_url: str,
    db: Engine,
    tmp_path: Path,
) -> None:
    server = serve("--no-worker")
    operator = Operator(server.base, database_url, tmp_path)
    hook = operator.subscribe(receiver.url)
    operator.publish("1.0.0")

    # Three times the worker's idle poll: a worker thread would have sent it by now.
    time.sleep(3)
    assert receiver.received == []
    # The change waits in the outbox; nothing has even been fanned out into a delivery, so
    # nothing is listed as sent (or as anything else) yet.
    with make_sessionmaker(db)() as session:
        last = session.execute(select(ChangeOutbox).order_by(ChangeOutbox.id.desc())).scalar()
        assert last is not None
        assert last.change_type == "release.published"
    assert operator.deliveries(hook) == []

    # Another process delivers it: same database, same directory (the generated webhook key).
    done = run_efdb_in_process(
        "worker", "--once", env={"EFDB_DATABASE_URL": database_url}, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"attempted": 1}
    (event,) = receiver.verified(hook["secret"])
    assert event["data"]["version"] == "1.0.0"
    (delivery,) = operator.deliveries(hook)
    assert delivery["status"] == "delivered"


def test_sigterm_lets_the_worker_thread_finish_its_delivery_and_stop(
    serve: Callable[..., ServerProcess],
    receiver: Receiver,
    database_url: str,
    db: Engine,
    tmp_path: Path,
) -> None:
    receiver.hang_first.set()  # the first request waits until `receiver.release`
    server = serve()
    operator = Operator(server.base, database_url, tmp_path)
    hook = operator.subscribe(receiver.url)
    operator.publish("1.0.0")
    assert wait_for(lambda: bool(receiver.received)), server.log.read_text(errors="replace")

    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)  # mid-delivery: the receiver has not answered
    time.sleep(1)
    receiver.release.set()
    # Killed by SIGTERM once stopped, as uvicorn leaves it (what a supervisor expects).
    assert server.process.wait(timeout=30) == -signal.SIGTERM

    # The thread finished the request it had started and wrote its outcome before the process
    # ended: nothing is left leased to a dead worker.
    with make_sessionmaker(db)() as session:
        (delivery,) = session.execute(select(WebhookDelivery)).scalars().all()
        assert (delivery.status, delivery.attempts, delivery.locked_until) == (
            "delivered",
            1,
            None,
        )
    assert len(receiver.verified(hook["secret"])) == 1
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log


def test_sigterm_with_a_receiver_that_never_answers_leaves_the_delivery_to_another_worker(
    serve: Callable[..., ServerProcess],
    receiver: Receiver,
    database_url: str,
    db: Engine,
    tmp_path: Path,
) -> None:
    receiver.hang_first.set()  # the first request is never answered in time
    server = serve(
        env={
            "EFDB_WEBHOOK_TIMEOUT_SECONDS": str(RECEIVER_TIMEOUT),
            "EFDB_WEBHOOK_RETRY_FIRST_SECONDS": "1",
        }
    )
    operator = Operator(server.base, database_url, tmp_path)
    hook = operator.subscribe(receiver.url)
    operator.publish("1.0.0")
    assert wait_for(lambda: bool(receiver.received)), server.log.read_text(errors="replace")

    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    # The thread waits for its request's timeout (EFDB_WEBHOOK_TIMEOUT_SECONDS), records the
    # failure, then stops.
    assert server.process.wait(timeout=30) == -signal.SIGTERM
    with make_sessionmaker(db)() as session:
        (delivery,) = session.execute(select(WebhookDelivery)).scalars().all()
    assert (delivery.status, delivery.attempts, delivery.locked_until) == ("pending", 1, None)
    assert "Timeout" in (delivery.last_error or "")

    # Not leased to the stopped server: another worker sends it once its back-off is over.
    time.sleep(max(0.0, (delivery.next_attempt_at - utcnow()).total_seconds()) + 0.5)
    done = run_efdb_in_process(
        "worker", "--once", env={"EFDB_DATABASE_URL": database_url}, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"attempted": 1}
    events = receiver.verified(hook["secret"])
    assert len(events) == 2
    assert events[0] == events[1]
    assert {h["webhook-id"] for h, _ in receiver.received} == {delivery.message_id}
    with make_sessionmaker(db)() as session:
        attempts = session.execute(
            select(WebhookAttempt.status_code).order_by(WebhookAttempt.id)
        ).scalars()
        assert list(attempts) == [None, 204]
        delivered = session.get(WebhookDelivery, delivery.id)
        assert delivered is not None
        assert delivered.status == "delivered"


def test_a_second_sigterm_ends_at_once_and_the_lease_runs_out(
    serve: Callable[..., ServerProcess],
    receiver: Receiver,
    database_url: str,
    db: Engine,
    tmp_path: Path,
) -> None:
    receiver.hang_first.set()
    server = serve()
    operator = Operator(server.base, database_url, tmp_path)
    operator.subscribe(receiver.url)
    operator.publish("1.0.0")
    assert wait_for(lambda: bool(receiver.received)), server.log.read_text(errors="replace")

    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    # uvicorn has shut down; the thread is still waiting for the receiver.
    assert wait_for(lambda: "Finished server process" in server.log.read_text(errors="replace"))
    time.sleep(0.5)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == -signal.SIGTERM
    assert time.monotonic() - started < 5  # not the 10 s the request could still take

    sessions = make_sessionmaker(db)
    with sessions() as session:
        (delivery,) = session.execute(select(WebhookDelivery)).scalars().all()
        assert (delivery.status, delivery.attempts) == ("pending", 0)
        lease = delivery.locked_until
        assert lease is not None
        policy = RetryPolicy()
        assert lease <= utcnow() + policy.lease  # leased to the dead thread, for a while only
        assert claim(session, now=utcnow(), policy=policy) == []
        session.rollback()
        # Once the lease has run out, another worker claims it (tests/test_webhooks.py sends
        # it again after a killed `efdb worker`).
        assert claim(session, now=lease + timedelta(seconds=1), policy=policy) == [delivery.id]
        session.rollback()
