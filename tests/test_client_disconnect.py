"""A search whose client goes away stops its query (issue 22).

Against a real uvicorn server (a TestClient never disconnects): a search is slowed by a test
hook that runs a long statement on the request's own session; the client closes its socket
while that statement runs; the statement is then gone from the database (PostgreSQL:
`pg_stat_activity`; SQLite: the statement reports it was interrupted), the disconnect is
counted in `/metrics`, and the server keeps answering, searches included, on a clean pool.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.factors import service
from app.main import create_app
from tests.live_server import serve_in_thread
from tests.test_bounds import SLOW_SQL, run_timed_sql

SLOW_QUERY = "synthetic-slow-search"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll until `condition` holds; fails (never times a duration) if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.05)


def running_sleeps(db: Engine) -> int:
    with db.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                    "AND query LIKE 'SELECT pg_sleep(30)%' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        )


def disconnects(url: str) -> float:
    body = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "efdb_client_disconnects_total":
                return float(sample.value)
    return 0.0


def test_a_search_whose_client_goes_away_stops_its_query(
    db: Engine, settings: Settings, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = threading.Event()
    outcome: dict[str, Any] = {}
    real_search = service.search_factors_ranked

    def slowed(session: Session, **kwargs: Any) -> Any:
        if kwargs["filters"].q == SLOW_QUERY:
            started.set()
            try:
                run_timed_sql(session, backend, SLOW_SQL)
            except Exception as exc:
                outcome["error"] = exc
                raise
            outcome["finished"] = True
        return real_search(session, **kwargs)

    monkeypatch.setattr(service, "search_factors_ranked", slowed)
    # A budget far past the slow statement: only the disconnect can stop it.
    app = create_app(settings.model_copy(update={"db_timeout_search_ms": 600_000}))
    with serve_in_thread(app) as url:
        address = urlsplit(url)
        client = socket.create_connection((address.hostname, address.port))
        client.sendall(
            f"GET /v1/factors?q={SLOW_QUERY} HTTP/1.1\r\nHost: test\r\n\r\n".encode("ascii")
        )
        assert started.wait(timeout=30), "the search never reached its statement"
        if backend == "postgresql":
            wait_for(lambda: running_sleeps(db) == 1, "the slow statement running")
        client.close()

        wait_for(lambda: "error" in outcome or "finished" in outcome, "the statement ending")
        assert "finished" not in outcome, "the statement ran to its end"
        if backend == "postgresql":
            assert type(outcome["error"].orig).__name__ == "QueryCanceled"
            wait_for(lambda: running_sleeps(db) == 0, "the backend idle again")
        else:
            assert str(outcome["error"].orig) == "interrupted"
        wait_for(lambda: disconnects(url) == 1, "the disconnect counted")

        # The server, and every pooled connection, keep answering.
        for _ in range(12):
            assert httpx.get(f"{url}/healthz").status_code == 200
            searched = httpx.get(f"{url}/v1/factors", params={"q": "电网", "limit": 5})
            assert searched.status_code == 200, searched.text
            assert httpx.get(f"{url}/v1/locations/CN").status_code == 200
    app.state.engine.dispose()
