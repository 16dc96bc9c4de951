"""Bounded cost per request: database time budgets, body caps, load shedding (issue 22).

A slow statement is injected through a test-only route that uses the real request session, so
the budget, the cancellation and the answer are the service's own; what is asserted is the
answer and what the database holds, never a duration.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core.bounds import RequestKind, is_expensive, request_kind
from app.core.config import Settings
from app.core.db import SessionDep
from app.datasets.models import Publisher
from app.main import create_app
from tests.auth_fixtures import TokenKit
from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
from tests.upload_files import synthetic_row

# Runs for tens of seconds at least: far past any budget below.
SLOW_SQL = {
    "postgresql": "SELECT pg_sleep(30)",
    "sqlite": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c LIMIT 30000) "
    "SELECT sum(efdb_test_sleep_ms(1)) FROM c",
}
# About a second: past a 200 ms budget, well within a minute's. Both take wall time, not CPU
# time, so they last as long on a fast machine as on a slow one (a counting query once
# finished inside 200 ms on a fast one).
MEDIUM_SQL = {
    "postgresql": "SELECT pg_sleep(1)",
    "sqlite": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c LIMIT 1000) "
    "SELECT sum(efdb_test_sleep_ms(1)) FROM c",
}


def run_timed_sql(session: Session, backend: str, statements: dict[str, str]) -> None:
    """Runs the backend's statement; on SQLite, first gives the connection the sleep function
    it calls (one row = one call, so the progress handler still runs between rows)."""
    if backend == "sqlite":
        raw = session.connection().connection.dbapi_connection
        assert raw is not None
        raw.create_function("efdb_test_sleep_ms", 1, _sleep_ms)
    session.execute(text(statements[backend]))


def _sleep_ms(milliseconds: int) -> int:
    time.sleep(milliseconds / 1000)
    return 0


def bounded_app(settings: Settings, backend: str, **limits: Any) -> FastAPI:
    app = create_app(settings.model_copy(update=limits))

    @app.get("/test-only/slow")
    def slow_read(session: SessionDep) -> dict[str, str]:
        run_timed_sql(session, backend, SLOW_SQL)
        return {"status": "finished"}

    @app.post("/test-only/slow-write")
    def slow_write(session: SessionDep) -> dict[str, str]:
        session.add(Publisher(slug="written-then-slow", name_en="Synthetic"))
        session.flush()
        run_timed_sql(session, backend, SLOW_SQL)
        return {"status": "finished"}

    @app.get("/test-only/medium")
    def medium_read(session: SessionDep) -> dict[str, str]:
        run_timed_sql(session, backend, MEDIUM_SQL)
        return {"status": "finished"}

    @app.post("/test-only/medium-write")
    def medium_write(session: SessionDep) -> dict[str, str]:
        session.add(Publisher(slug="written-after-medium", name_en="Synthetic"))
        run_timed_sql(session, backend, MEDIUM_SQL)
        return {"status": "finished"}

    return app


@pytest.fixture
def bounded(db: Engine, settings: Settings, backend: str) -> Iterator[TestClient]:
    app = bounded_app(settings, backend, db_timeout_read_ms=200, db_timeout_write_ms=200)
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def assert_busy_problem(response: Any, code: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["type"].endswith(code)
    assert body["status"] == 503


def test_a_read_past_its_budget_is_stopped_and_cheap_reads_still_answer(
    bounded: TestClient,
) -> None:
    assert_busy_problem(bounded.get("/test-only/slow"), "query-time-exceeded")
    # The connection the cancelled statement ran on serves the next requests normally.
    for _ in range(3):
        assert bounded.get("/healthz").status_code == 200
        located = bounded.get("/v1/locations/CN")
        assert located.status_code == 200, located.text
        assert located.json()["code"] == "CN"


def test_a_write_past_its_budget_is_stopped_and_leaves_nothing(
    bounded: TestClient, db: Engine
) -> None:
    assert_busy_problem(bounded.post("/test-only/slow-write"), "query-time-exceeded")
    with db.connect() as connection:
        written = connection.execute(
            text("SELECT count(*) FROM publisher WHERE slug = 'written-then-slow'")
        ).scalar_one()
    assert written == 0


def test_each_kind_of_request_has_its_own_budget(
    db: Engine, settings: Settings, backend: str
) -> None:
    """The same second of database work is past a read's budget but within a write's."""
    app = bounded_app(settings, backend, db_timeout_read_ms=200, db_timeout_write_ms=60_000)
    with TestClient(app) as client:
        assert_busy_problem(client.get("/test-only/medium"), "query-time-exceeded")
        written = client.post("/test-only/medium-write")
        assert written.status_code == 200, written.text
    app.state.engine.dispose()
    with db.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM publisher WHERE slug = 'written-after-medium'")
        ).scalar_one()
    assert count == 1


@pytest.mark.parametrize(
    ("method", "path", "kind", "expensive"),
    [
        ("GET", "/v1/factors", RequestKind.SEARCH, True),
        ("GET", "/", RequestKind.SEARCH, True),
        ("GET", "/.json", RequestKind.SEARCH, True),
        ("GET", "/v1/factors/p/d/code", RequestKind.READ, False),
        ("GET", "/v1/locations/CN", RequestKind.READ, False),
        ("GET", "/healthz", RequestKind.READ, False),
        ("POST", "/v1/factors:resolve", RequestKind.BATCH, True),
        ("POST", "/v1/estimate:batch", RequestKind.BATCH, True),
        ("POST", "/v1/citations:verify", RequestKind.BATCH, True),
        ("GET", "/resolve.json", RequestKind.BATCH, True),
        ("POST", "/v1/datasets/p/d/versions", RequestKind.WRITE, True),
        ("POST", "/v1/snapshots", RequestKind.EXPORT, True),
        ("GET", "/v1/datasets/p/d/versions/1.0.0/export.parquet", RequestKind.EXPORT, False),
        ("GET", "/v1/snapshots/7/factors.arrow", RequestKind.EXPORT, False),
        ("GET", "/v1/snapshots/7/factors.arrows", RequestKind.EXPORT, False),
        ("GET", "/v1/snapshots/7/manifest.json", RequestKind.READ, False),
        ("POST", "/v1/datasets", RequestKind.WRITE, False),
        ("POST", "/oauth/token", RequestKind.WRITE, False),
    ],
)
def test_requests_are_classified_by_method_and_path(
    method: str, path: str, kind: RequestKind, expensive: bool
) -> None:
    assert request_kind(method, path) is kind
    assert is_expensive(method, path) is expensive


RESOLVE_LINE = {"activity_id": "electricity-grid", "region": "CN", "year": 2022}


def test_oversized_json_bodies_are_refused_before_parsing(client: TestClient) -> None:
    """A batch route takes 1000 lines but not megabytes; other JSON routes take far less."""
    thousand = {"items": [RESOLVE_LINE] * 1000}
    answered = client.post("/v1/factors:resolve", json=thousand)
    assert answered.status_code == 200, answered.text
    assert len(answered.json()["items"]) == 1000

    padding = " " * (2 * 1024 * 1024)
    huge = b'{"items": [' + padding.encode() + b"]}"
    for path in ("/v1/factors:resolve", "/v1/estimate", "/v1/datasets", "/oauth/token"):
        refused = client.post(path, content=huge, headers={"content-type": "application/json"})
        assert refused.status_code == 413, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("payload-too-large")
    # A dataset description is text, not a batch: 300 KB is past its route's cap.
    big_dataset = {"slug": "x", "description": "x" * 300 * 1024}
    refused = client.post("/v1/datasets", json=big_dataset)
    assert refused.status_code == 413, refused.text


def test_expensive_requests_past_the_bound_are_shed_and_cheap_ones_answer(
    db: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()

    def held_resolve(*_args: Any, **_kwargs: Any) -> list[Any]:
        entered.set()
        release.wait(timeout=60)
        return []

    monkeypatch.setattr("app.factors.answers.resolve_items", held_resolve)
    app = create_app(settings.model_copy(update={"max_expensive_requests": 1}))
    first: dict[str, Any] = {}
    with TestClient(app) as client:

        def first_resolve() -> None:
            first["response"] = client.post("/v1/factors:resolve", json={"items": [RESOLVE_LINE]})

        worker = threading.Thread(target=first_resolve)
        worker.start()
        try:
            assert entered.wait(timeout=60), "the first resolve never reached the database"
            shed = client.post("/v1/factors:resolve", json={"items": [RESOLVE_LINE]})
            assert_busy_problem(shed, "overloaded")
            assert_busy_problem(client.get("/v1/factors", params={"q": "电网"}), "overloaded")
            assert client.get("/healthz").status_code == 200
            assert client.get("/v1/locations/CN").status_code == 200
        finally:
            release.set()
            worker.join(timeout=60)
        assert first["response"].status_code == 200, first["response"].text
        # The slot is free again once the held request has answered.
        again = client.post("/v1/factors:resolve", json={"items": [RESOLVE_LINE]})
        assert again.status_code == 200, again.text
    app.state.engine.dispose()


def inflating_parquet(rows: int, cell_bytes: int, *, dictionary: bool) -> bytes:
    """A small file whose rows decode to rows x cell_bytes: every row's source_locator is one
    long repeated string (zstd-compressed, or dictionary-encoded). Synthetic rows."""
    columns: dict[str, pa.Array] = {}
    for name, value in synthetic_row(0).items():
        if isinstance(value, str):
            columns[name] = pa.DictionaryArray.from_arrays(
                pa.array([0] * rows, type=pa.int8()), pa.array([value])
            )
        else:
            columns[name] = pa.array([value] * rows)
    columns["source_locator"] = pa.DictionaryArray.from_arrays(
        pa.array([0] * rows, type=pa.int8()), pa.array(["synthetic " + "x" * cell_bytes])
    )
    table = pa.table(columns)
    if not dictionary:
        table = table.set_column(
            table.schema.get_field_index("source_locator"),
            "source_locator",
            table["source_locator"].cast(pa.string()),
        )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=dictionary)
    return sink.getvalue()


@pytest.fixture
def writer(client: TestClient, tokens: TokenKit) -> dict[str, str]:
    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201
    return headers


def stored_versions(db: Engine) -> tuple[int, int]:
    with db.connect() as connection:
        return (
            connection.execute(text("SELECT count(*) FROM dataset_version")).scalar_one(),
            # A draft's rows are in factor_draft until its submit.
            connection.execute(
                text("SELECT (SELECT count(*) FROM factor) + (SELECT count(*) FROM factor_draft)")
            ).scalar_one(),
        )


@pytest.mark.parametrize(
    ("rows", "cell_bytes", "dictionary", "code"),
    [
        # ~600 MB decoded from a file of a few KB: past the default 512 MB.
        (150_000, 4096, True, "uncompressed_too_large"),
        # 2000 rows of 100 KB each, compressed: rows no factor needs.
        (2_000, 100_000, False, "rows_too_large"),
        (2_000, 100_000, True, "rows_too_large"),
    ],
)
def test_a_parquet_decompression_bomb_is_refused_from_its_metadata(
    client: TestClient,
    db: Engine,
    writer: dict[str, str],
    rows: int,
    cell_bytes: int,
    dictionary: bool,
    code: str,
) -> None:
    content = inflating_parquet(rows, cell_bytes, dictionary=dictionary)
    assert len(content) < 2 * 1024 * 1024
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("bomb.parquet", content, "application/octet-stream")},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["code"] for e in response.json()["errors"]] == [code]
    assert stored_versions(db) == (0, 0)


def test_a_parquet_upload_past_the_configured_decoded_size_is_refused(
    client: TestClient, db: Engine, writer: dict[str, str], settings: Settings
) -> None:
    content = inflating_parquet(1_000, 10_000, dictionary=False)  # ~10 MB decoded
    client.app.state.settings = settings.model_copy(update={"max_upload_uncompressed_mb": 4})  # type: ignore[attr-defined]
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("big.parquet", content, "application/octet-stream")},
    )
    assert response.status_code == 422, response.text
    assert [e["code"] for e in response.json()["errors"]] == ["uncompressed_too_large"]
    assert stored_versions(db) == (0, 0)
    # Within the bound, the same kind of file is read as usual.
    client.app.state.settings = settings  # type: ignore[attr-defined]
    rows = [synthetic_row(i) for i in range(20)]
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink, compression="zstd")
    accepted = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("ok.parquet", sink.getvalue(), "application/octet-stream")},
    )
    assert accepted.status_code == 201, accepted.text
    assert stored_versions(db) == (1, 20)
