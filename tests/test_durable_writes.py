"""Nothing is acknowledged before it is stored: every write commits before its answer is sent.

Against a real uvicorn server (a TestClient waits for the whole ASGI call, so it cannot see a
commit that runs after the response). Data is synthetic.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from fastapi import FastAPI
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.datasets import publishers
from app.datasets.version_models import DatasetVersion
from app.main import create_app
from tests.live_server import loopback_client, serve_in_thread
from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
from tests.upload_files import csv_bytes, synthetic_row

# Back-to-back upload → submit → publish → read sequences (issue 13 asks for 200).
SEQUENCES = 200


@dataclass
class Live:
    url: str
    app: FastAPI
    writer: dict[str, str]
    reviewer: dict[str, str]
    admin: dict[str, str]


def _token(url: str, issued: auth_service.IssuedClient) -> dict[str, str]:
    with OAuth2Client(issued.client_id, issued.client_secret) as oauth:
        token = oauth.fetch_token(f"{url}/oauth/token", grant_type="client_credentials")
    return {"Authorization": f"Bearer {token['access_token']}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No write budget: a test here writes hundreds of times a minute as one client, past the
    default budget, which is not what these tests are about (tests/test_rate_limits.py is)."""
    return settings.model_copy(update={"rate_writes_per_minute": 0})


@pytest.fixture
def live(db: Engine, settings: Settings) -> Iterator[Live]:
    """A real server with a synthetic publisher's writer client and a national reviewer."""
    with make_sessionmaker(db).begin() as session:
        publishers.create_publisher(
            session, slug=PUBLISHER, name_zh="合成发布机构", name_en="Synthetic", actor="test"
        )
        writer = auth_service.create_client(
            session, publisher=PUBLISHER, scopes=["datasets:write"], name="w", actor="test"
        )
        reviewer = auth_service.create_client(
            session, publisher=None, scopes=["datasets:review"], name="r", actor="test"
        )
        admin = auth_service.create_client(
            session, publisher=None, scopes=["admin"], name="a", actor="test"
        )
    app = create_app(settings)
    try:
        with serve_in_thread(app) as url:
            yield Live(url, app, _token(url, writer), _token(url, reviewer), _token(url, admin))
    finally:
        app.state.engine.dispose()


def _upload(http: httpx.Client, live: Live, version: str, rows: int = 3) -> httpx.Response:
    content = csv_bytes(
        [
            synthetic_row(i, co2e=500.0 + i, co2=None, ch4=None, n2o=None, gwp_set=None)
            for i in range(rows)
        ]
    )
    return http.post(
        VERSIONS,
        headers=live.writer,
        data={"version": version},
        files={"file": ("factors.csv", content, "text/csv")},
    )


def _stored_versions(db: Engine) -> list[str]:
    with Session(db) as session:
        return list(session.scalars(select(DatasetVersion.version)))


def _slow_commits(app: FastAPI, seconds: float) -> None:
    """Every commit of the app's sessions waits before it happens (a busy disk, a slow replica
    acknowledgement): an answer sent before the commit would now be seen before the data."""

    def wait(_session: Session) -> None:
        time.sleep(seconds)

    event.listen(app.state.sessionmaker, "before_commit", wait)


def test_an_acknowledged_upload_is_already_visible_to_another_connection(
    live: Live, db: Engine
) -> None:
    with loopback_client(base_url=live.url, timeout=30) as http:
        assert http.post("/v1/datasets", json=DATASET_BODY, headers=live.writer).status_code == 201
        _slow_commits(live.app, 0.5)
        response = _upload(http, live, "1.0.0")
        # Read at once, from a connection of our own: the 201 promised the data is stored.
        seen = _stored_versions(db)
    assert response.status_code == 201, response.text
    assert seen == ["1.0.0"]


def test_a_commit_that_fails_is_an_error_and_stores_nothing(live: Live, db: Engine) -> None:
    failing = threading.Event()

    def fail(_session: Session) -> None:
        if failing.is_set():
            raise RuntimeError("synthetic fault injected at commit")

    event.listen(live.app.state.sessionmaker, "before_commit", fail)
    with loopback_client(base_url=live.url, timeout=30) as http:
        assert http.post("/v1/datasets", json=DATASET_BODY, headers=live.writer).status_code == 201
        failing.set()
        response = _upload(http, live, "1.0.0")
        failing.clear()
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "synthetic fault" not in response.text  # no internals leak into the answer
    # Nor do the metrics count it as an upload that stored its rows.
    metrics = live.app.state.metrics
    assert _sample(metrics.upload_duration, "_count", outcome="error") == 1
    assert _sample(metrics.upload_duration, "_count", outcome="ok") == 0
    assert _sample(metrics.upload_rows, "_total") == 0
    assert _stored_versions(db) == []
    with Session(db) as session:
        assert session.scalar(select(func.count()).select_from(DatasetVersion)) == 0


def _sample(metric: Any, suffix: str, **labels: str) -> float:
    """A metric's sample in this app's own registry (0 when it has none yet)."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix) and sample.labels == labels:
                return float(sample.value)
    return 0.0


def _sequence(http: httpx.Client, live: Live, index: int) -> list[tuple[str, int]]:
    version = f"1.{index}.0"
    answers: list[tuple[str, int]] = []
    upload = _upload(http, live, version, rows=2)
    answers.append(("upload", upload.status_code))
    submitted = http.post(f"{VERSIONS}/{version}/submit", headers=live.writer)
    answers.append(("submit", submitted.status_code))
    body: dict[str, Any] = {}
    if submitted.status_code == 200 and submitted.json().get("content_sha256"):
        body = {"content_sha256": submitted.json()["content_sha256"]}
    published = http.post(f"{VERSIONS}/{version}/publish", headers=live.reviewer, json=body)
    answers.append(("publish", published.status_code))
    read = http.get(f"/v1/factors/{PUBLISHER}/steel-products/synthetic-00001?version={version}")
    answers.append(("read", read.status_code))
    return answers


@pytest.mark.slow
def test_back_to_back_write_sequences_never_see_a_missing_write(live: Live, db: Engine) -> None:
    expected = [("upload", 201), ("submit", 200), ("publish", 200), ("read", 200)]
    failures: list[tuple[int, list[tuple[str, int]]]] = []
    with loopback_client(base_url=live.url, timeout=60) as http:
        assert http.post("/v1/datasets", json=DATASET_BODY, headers=live.writer).status_code == 201
        for index in range(SEQUENCES):
            answers = _sequence(http, live, index)
            if answers != expected:
                failures.append((index, answers))
    assert failures == []
    assert len(_stored_versions(db)) == SEQUENCES


def test_review_publish_and_snapshot_answers_are_already_stored(live: Live) -> None:
    """Each answer is followed at once by the request that depends on it, with every commit
    slowed: the review queue lists what submit acknowledged, publish takes the hash the queue
    showed, and a snapshot's files download as soon as its creation is answered."""
    with loopback_client(base_url=live.url, timeout=30) as http:
        assert http.post("/v1/datasets", json=DATASET_BODY, headers=live.writer).status_code == 201
        _slow_commits(live.app, 0.3)
        assert _upload(http, live, "1.0.0").status_code == 201
        submitted = http.post(f"{VERSIONS}/1.0.0/submit", headers=live.writer)
        assert submitted.status_code == 200, submitted.text
        queue = http.get("/v1/review", headers=live.reviewer)
        assert queue.status_code == 200, queue.text
        (waiting,) = queue.json()["items"]
        assert waiting["content_sha256"] == submitted.json()["content_sha256"]
        published = http.post(
            f"{VERSIONS}/1.0.0/publish",
            headers=live.reviewer,
            json={"content_sha256": waiting["content_sha256"]},
        )
        assert published.status_code == 200, published.text
        assert http.get("/v1/review", headers=live.reviewer).json()["items"] == []
        snapshot = http.post("/v1/snapshots", headers=live.admin)
        assert snapshot.status_code == 201, snapshot.text
        for entry in snapshot.json()["files"]:
            download = http.get(f"/v1/snapshots/{snapshot.json()['id']}/{entry['name']}")
            assert download.status_code == 200, (entry["name"], download.text[:300])
            assert hashlib.sha256(download.content).hexdigest() == entry["sha256"]
