"""`GET /metrics`: Prometheus text, read with Prometheus's own parser (issues 20 and 22).

Each bound is made to refuse something (a statement past its budget, a shed request, an
oversized body, token guessing and a lockout), then the counters are read back through
`/metrics`. Requests are counted by route template, never by raw path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from app.changes.delivery import fan_out
from app.core.config import Settings
from app.core.db import make_sessionmaker
from tests.auth_fixtures import TokenKit
from tests.conftest import ServerProcess
from tests.live_server import loopback_client
from tests.rate_windows import start_within_one_minute
from tests.test_bounds import RESOLVE_LINE, bounded_app
from tests.test_changes import Story
from tests.test_publishing import PUBLISHER, upload
from tests.test_token_throttle import attempt
from tests.upload_files import csv_bytes, synthetic_row


def samples(client: TestClient, headers: dict[str, str]) -> dict[tuple[str, frozenset[Any]], float]:
    """Every sample of `/metrics`, keyed by name and labels."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[tuple[str, frozenset[Any]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def metered(db: Engine, settings: Settings, backend: str) -> Iterator[TestClient]:
    app = bounded_app(
        settings,
        backend,
        db_timeout_read_ms=200,
        db_timeout_search_ms=200,
        max_expensive_requests=1,
        token_attempts_per_client=3,
        token_lockout_failures=2,
    )
    start_within_one_minute()
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def test_each_bound_is_counted_and_read_back_with_the_prometheus_parser(
    metered: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = TokenKit(metered, metered.app.state.engine)  # type: ignore[attr-defined]
    admin = kit.admin()
    before = samples(metered, admin)

    # A statement past its read budget.
    assert metered.get("/test-only/slow").status_code == 503
    # Two lookups of different factors: one series for their route template.
    for code in ("no-such-code-1", "no-such-code-2"):
        assert metered.get(f"/v1/factors/synthetic/none/{code}").status_code == 404
    # A path no route matches: one bounded label, whatever the path.
    assert metered.get("/v1/no-such-route/at-all").status_code == 404
    # A body past the batch cap.
    huge = b'{"items": [' + b" " * (2 * 1024 * 1024) + b"]}"
    refused = metered.post(
        "/v1/factors:resolve", content=huge, headers={"content-type": "application/json"}
    )
    assert refused.status_code == 413
    # Guessing: a known client's secret fails twice (locked), then the rate refuses.
    victim = kit.credentials(publisher="synthetic-pub", scopes=["datasets:write"])
    assert attempt(metered, victim.client_id, "wrong").status_code == 401
    assert attempt(metered, victim.client_id, "wrong").status_code == 401
    assert attempt(metered, victim.client_id, victim.client_secret).status_code == 429
    # A second expensive request while one is held: shed.
    entered, release = threading.Event(), threading.Event()

    def held(*_args: Any, **_kwargs: Any) -> list[Any]:
        entered.set()
        release.wait(timeout=60)
        return []

    monkeypatch.setattr("app.factors.answers.resolve_items", held)
    first: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: first.update(
            r=metered.post("/v1/factors:resolve", json={"items": [RESOLVE_LINE]})
        )
    )
    worker.start()
    try:
        assert entered.wait(timeout=60)
        assert metered.get("/v1/factors", params={"q": "电网"}).status_code == 503
    finally:
        release.set()
        worker.join(timeout=60)
    assert first["r"].status_code == 200

    after = samples(metered, admin)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("efdb_statement_timeouts_total", kind="read") == 1
    assert grew("efdb_load_shed_total", kind="search") == 1
    assert grew("efdb_body_too_large_total", cap="batch") == 1
    assert grew("efdb_token_lockouts_total") == 1
    assert grew("efdb_token_refusals_total", reason="locked") == 1
    lookup = {"method": "GET", "route": "/v1/factors/{publisher}/{dataset}/{factor_code}"}
    assert grew("efdb_http_requests_total", status="4xx", **lookup) == 2
    assert grew("efdb_http_request_duration_seconds_count", status="4xx", **lookup) == 2
    assert grew("efdb_http_requests_total", method="GET", route="/test-only/slow", status="5xx")
    # Refused before routing, still counted under the route they were for.
    shed = {"method": "GET", "route": "/v1/factors", "status": "5xx"}
    assert grew("efdb_http_requests_total", **shed) == 1
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "4xx"}
    assert grew("efdb_http_requests_total", **unmatched) == 1
    routes = {dict(labels).get("route") for _name, labels in after}
    assert not any(route and "no-such-code" in route for route in routes)

    # The per-client rate: a fourth guess for one client id within the minute.
    for _ in range(3):
        assert attempt(metered, "unknown-client", "guess").status_code == 401
    assert attempt(metered, "unknown-client", "guess").status_code == 429
    assert value(samples(metered, admin), "efdb_token_refusals_total", reason="rate") >= 1


def test_uploads_batches_snapshots_pools_and_the_webhook_backlog_are_measured(
    client: TestClient, tokens: TokenKit, db: Engine
) -> None:
    admin = tokens.admin()
    before = samples(client, admin)
    # Read at scrape time: the pool of the app's engine (both backends' pools keep a size).
    for name in ("size", "checked_out", "checked_in", "overflow", "max_overflow"):
        assert ("efdb_db_pool_" + name, frozenset({("engine", "primary")})) in before, name
    assert value(before, "efdb_db_pool_size", engine="primary") >= 1
    assert value(before, "efdb_webhook_pending_deliveries") == 0

    story = Story(client, tokens)
    story.dataset("steel-products")
    # Refused: nothing redistributable is published yet.
    assert client.post("/v1/snapshots", headers=admin).status_code == 409
    subscribe = client.post(
        "/v1/webhooks",
        json={"url": "https://example.com/hooks"},
        headers=tokens.headers(publisher=None, scopes=["webhooks:manage", "factors:read"]),
    )
    assert subscribe.status_code == 201, subscribe.text
    story.release("steel-products", "1.0.0", [1, 2, 3])  # an upload of 3 rows, published
    writer = tokens.writer(PUBLISHER)
    bad = upload(client, writer, csv_bytes([synthetic_row(4, unit="kwhh")]), version="1.1.0")
    assert bad.status_code == 422
    same = csv_bytes([synthetic_row(i) for i in range(5)])
    assert upload(client, writer, same, version="1.1.0").status_code == 201
    assert upload(client, writer, same, version="1.1.0").status_code == 200  # unchanged
    with make_sessionmaker(db).begin() as session:
        assert fan_out(session) == 1  # the release's event waits to be sent
    assert client.post("/v1/snapshots", headers=admin).status_code == 201
    lines = [RESOLVE_LINE] * 7
    assert client.post("/v1/factors:resolve", json={"items": lines}).status_code == 200
    estimate = {**RESOLVE_LINE, "amount": 1, "unit": "kWh"}
    assert client.post("/v1/estimate:batch", json={"items": [estimate] * 2}).status_code == 200

    after = samples(client, admin)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Rows stored by the two uploads that made a draft; not the refused one, not the repeat.
    assert grew("efdb_upload_rows_total") == 3 + 5
    assert grew("efdb_upload_duration_seconds_count", outcome="ok") == 3
    assert grew("efdb_upload_duration_seconds_count", outcome="refused") == 1
    assert grew("efdb_upload_duration_seconds_sum", outcome="ok") > 0
    assert grew("efdb_snapshot_duration_seconds_count", outcome="ok") == 1
    assert grew("efdb_snapshot_duration_seconds_count", outcome="refused") == 1
    assert grew("efdb_batch_lines_count", kind="resolve") == 1
    assert grew("efdb_batch_lines_sum", kind="resolve") == 7
    assert grew("efdb_batch_lines_bucket", kind="resolve", le="1.0") == 0
    assert grew("efdb_batch_lines_bucket", kind="resolve", le="10.0") == 1
    assert grew("efdb_batch_lines_sum", kind="estimate") == 2
    assert value(after, "efdb_webhook_pending_deliveries") == 1
    assert value(after, "efdb_db_pool_checked_out", engine="primary") >= 1  # the scrape's own


def test_metrics_need_an_admin_token_outside_the_metrics_networks(
    client: TestClient, tokens: TokenKit
) -> None:
    # The test client's address is not loopback: no token, no metrics.
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["content-type"] == "application/problem+json"
    reader = client.get("/metrics", headers=tokens.reader())
    assert reader.status_code == 403, reader.text
    assert client.get("/metrics", headers=tokens.admin()).status_code == 200


@pytest.mark.slow
@pytest.mark.dialect_neutral
def test_several_workers_answer_the_sum_of_their_counts(
    database_url: str, db: Engine, tmp_path: Path
) -> None:
    """README: with `PROMETHEUS_MULTIPROC_DIR`, `/metrics` of `efdb serve --workers 2` answers
    what every worker counted, whichever worker takes the scrape. (`db`: the database is given
    back empty afterwards, export-directory record included, like every server test's.)"""
    shared = tmp_path / "metrics"
    shared.mkdir()
    server = ServerProcess(
        tmp_path,
        {"EFDB_DATABASE_URL": database_url, "PROMETHEUS_MULTIPROC_DIR": str(shared)},
        args=("--workers", "2"),
    )
    server.start()
    try:
        # At least 60 requests, and on until both workers took some: the second one may still
        # be starting when the first answers /readyz.
        asked, deadline = 0, time.monotonic() + 60
        writers: set[str] = set()
        while asked < 60 or len(writers) < 2:
            assert time.monotonic() < deadline, f"one worker took every request: {writers}"
            # A new connection each time, so that the kernel hands them to both workers.
            with loopback_client() as http:
                assert http.get(f"{server.base}/healthz").status_code == 200
            asked += 1
            writers = {path.name.rsplit("_", 1)[-1] for path in shared.glob("counter_*.db")}
        for _ in range(4):  # each scrape may be taken by either worker: each sums both
            body = httpx.get(f"{server.base}/metrics").text
            counted = sum(
                sample.value
                for family in text_string_to_metric_families(body)
                for sample in family.samples
                if sample.name == "efdb_http_requests_total"
                and sample.labels.get("route") == "/healthz"
            )
            assert counted == asked
    finally:
        server.stop()
