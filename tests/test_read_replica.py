"""Reads from a PostgreSQL streaming replica (`EFDB_READ_DATABASE_URL`, app/core/replica.py),
against a live one: `deploy/start-replica.sh` makes it (port 5433, streaming from the primary
at 5432), and `.ci/run` starts it and sets EFDB_REQUIRE_REPLICA=1. Without it these tests skip
and say why (or fail, when it is required).

That the replica answers is shown by what it answers, not by the service's word alone: with
its replay paused, a write on the primary is not on it, so an anonymous read that still shows
the old state came from the replica, and one that shows the write came from the primary.

Every record here is a synthetic test fixture, not a real emission factor.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import SessionDep
from app.core.http_cache import SHORT_LIVED
from app.core.replica import COOKIE, HEADER, PRIMARY, REPLICA, ReadRouting, choose_database
from app.factors.page_cache import SearchPageCache, make_page
from app.main import create_app
from tests.auth_fixtures import TokenKit
from tests.conftest import POSTGRES_ADMIN_URL
from tests.factories import (
    create_dataset_with_factors,
    create_publisher,
    create_version,
    factor_fields,
)
from tests.live_server import loopback_client, serve_in_thread

pytestmark = pytest.mark.postgresql_only

REPLICA_PORT = int(os.environ.get("EFDB_TEST_REPLICA_PORT", "5433"))
REQUIRE_REPLICA = os.environ.get("EFDB_REQUIRE_REPLICA") == "1"
LOOKUP = "/v1/factors/synth-replica/open/grid-1"
SEARCH = "/v1/factors"
SEARCH_PARAMS = {"dataset": "synth-replica/open"}
WITHDRAW = "/v1/datasets/synth-replica/open/versions/1.1.0/withdraw"
# How long replay may take to reach a write on a busy machine (it is usually milliseconds).
REPLAY_TIMEOUT_S = 60


class Replica:
    """The live replica: the test database on it (`url`, `engine`), and both servers'
    administration databases (the test database may not have been replayed yet)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.primary = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.admin = create_engine(
            make_url(POSTGRES_ADMIN_URL).set(port=REPLICA_PORT),
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 5},
        )

    def _scalar(self, sql: str, **params: Any) -> Any:
        with self.admin.connect() as connection:
            return connection.execute(text(sql), params).scalar_one()

    def caught_up(self) -> None:
        """Wait until the replica has replayed everything committed on the primary so far.

        A synchronous commit (the test databases commit asynchronously) flushes the WAL up to
        it, so the primary's insert position read before it is on its way; `pg_current_wal_lsn`
        alone would not do, as at rest it may point past the last whole record."""
        with self.primary.begin() as connection:
            connection.execute(text("SET LOCAL synchronous_commit = on"))
            connection.execute(text("SELECT txid_current()"))
            target = connection.execute(text("SELECT pg_current_wal_insert_lsn()::text"))
            lsn = target.scalar_one()
        deadline = time.monotonic() + REPLAY_TIMEOUT_S
        while not self._scalar(
            "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), CAST(:lsn AS pg_lsn)) >= 0", lsn=lsn
        ):
            if time.monotonic() > deadline:
                pytest.fail(f"the replica did not replay up to {lsn} in {REPLAY_TIMEOUT_S} s")
            time.sleep(0.05)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Replay stopped: what the primary commits meanwhile is not on the replica."""
        self._scalar("SELECT pg_wal_replay_pause()::text")
        try:
            deadline = time.monotonic() + REPLAY_TIMEOUT_S
            while self._scalar("SELECT pg_get_wal_replay_pause_state()") != "paused":
                assert time.monotonic() < deadline, "replay did not pause"
                time.sleep(0.02)
            yield
        finally:
            self._scalar("SELECT pg_wal_replay_resume()::text")

    def dispose(self) -> None:
        self.engine.dispose()
        self.primary.dispose()
        self.admin.dispose()


@pytest.fixture
def replica(database_url: str) -> Iterator[Replica]:
    url = make_url(database_url).set(port=REPLICA_PORT).render_as_string(hide_password=False)
    live = Replica(url)
    try:
        in_recovery = live._scalar("SELECT pg_is_in_recovery()")
    except OperationalError as exc:
        live.dispose()
        reason = (
            f"no PostgreSQL replica at 127.0.0.1:{REPLICA_PORT} ({exc.orig}); "
            "start one with `deploy/start-replica.sh`"
        )
        if REQUIRE_REPLICA:
            pytest.fail(reason)
        pytest.skip(reason)
    if not in_recovery:
        live.dispose()
        pytest.fail(f"the PostgreSQL at port {REPLICA_PORT} is not a replica (not in recovery)")
    live.caught_up()  # the test database made on the primary is on the replica too
    yield live
    live.dispose()


@pytest.fixture
def settings(settings: Settings, replica: Replica) -> Settings:
    # A long read-your-writes window: what is checked is the rule, not the clock.
    return settings.model_copy(
        update={"read_database_url": replica.url, "read_your_writes_seconds": 3600}
    )


@pytest.fixture
def datasets(session: Session, replica: Replica) -> None:
    """synth-replica/open: releases 1.0.0 (grid-1 0.5) and 1.1.0 (grid-1 0.6), on both."""
    publisher = create_publisher(session, slug="synth-replica")
    dataset = create_dataset_with_factors(
        session, publisher=publisher, dataset="open", factors=[factor_fields("grid-1", co2e=0.5)]
    )
    create_version(
        session, dataset=dataset, version="1.1.0", factors=[factor_fields("grid-1", co2e=0.6)]
    )
    session.commit()
    replica.caught_up()


def _get(client: TestClient, path: str, **kwargs: Any) -> Any:
    answer = client.get(path, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer


def _co2e(answer: Any) -> list[float]:
    body = answer.json()
    return [item["co2e"] for item in body["items"]] if "items" in body else [body["co2e"]]


def test_reads_come_from_the_replica_and_a_writer_reads_its_own_write(
    app: FastAPI, client: TestClient, tokens: TokenKit, datasets: None, replica: Replica
) -> None:
    stranger = TestClient(app)
    # Asked twice each: the lookup's and the search page's kept answers serve the second.
    for _ in range(2):
        lookup = _get(stranger, LOOKUP)
        search = _get(stranger, SEARCH, params=SEARCH_PARAMS)
        page = _get(stranger, "/datasets/synth-replica/open")
        assert [lookup.headers[HEADER], search.headers[HEADER], page.headers[HEADER]] == [
            REPLICA
        ] * 3
    assert _co2e(lookup) == _co2e(search) == [0.6]
    reviewer = tokens.reviewer()

    with replica.paused():
        withdrawn = client.post(
            WITHDRAW, headers=reviewer, json={"reason": "synthetic: wrong value"}
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.headers[HEADER] == PRIMARY
        assert COOKIE in withdrawn.cookies

        # The writer (its read-your-writes cookie) reads its write at once, from the primary,
        # and so does a request with a token.
        for answer in (
            _get(client, LOOKUP),
            _get(client, SEARCH, params=SEARCH_PARAMS),
            _get(stranger, LOOKUP, headers=reviewer),
        ):
            assert answer.headers[HEADER] == PRIMARY
            assert _co2e(answer) == [0.5]
        # Anyone else reads the replica, which has not replayed the withdrawal: the old
        # answers, made afresh from its state, not the primary's kept ones.
        for answer in (_get(stranger, LOOKUP), _get(stranger, SEARCH, params=SEARCH_PARAMS)):
            assert answer.headers[HEADER] == REPLICA
            assert _co2e(answer) == [0.6]

    replica.caught_up()
    for answer in (_get(stranger, LOOKUP), _get(stranger, SEARCH, params=SEARCH_PARAMS)):
        assert answer.headers[HEADER] == REPLICA
        assert _co2e(answer) == [0.5]


def test_against_a_real_server_a_writer_reads_its_write_in_the_next_request(
    app: FastAPI, tokens: TokenKit, datasets: None, replica: Replica
) -> None:
    """Over real HTTP, the request right after a write's answer: the writer (the cookie its
    client kept) reads the write from the primary while the replica, replay paused, still has
    the old release, which a reader without the cookie gets."""
    reviewer = tokens.reviewer()
    with (
        serve_in_thread(app) as url,
        replica.paused(),
        loopback_client(base_url=url) as writer,
        loopback_client(base_url=url) as stranger,
    ):
        withdrawn = writer.post(
            WITHDRAW, headers=reviewer, json={"reason": "synthetic: wrong value"}
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert COOKIE in writer.cookies
        # No header: the cookie alone sends the writer's reads to the primary.
        mine = writer.get(LOOKUP)
        assert (mine.status_code, mine.headers[HEADER]) == (200, PRIMARY)
        assert _co2e(mine) == [0.5]
        theirs = stranger.get(LOOKUP)
        assert (theirs.status_code, theirs.headers[HEADER]) == (200, REPLICA)
        assert _co2e(theirs) == [0.6]


def test_the_replica_refuses_writes(replica: Replica, datasets: None) -> None:
    with pytest.raises(DBAPIError, match="read-only transaction"), replica.engine.begin() as c:
        c.execute(text("UPDATE catalog_generation SET generation = generation + 1"))


def test_a_read_that_writes_is_answered_by_the_primary(
    app: FastAPI, client: TestClient, replica: Replica, datasets: None
) -> None:
    """A GET route that writes and is not marked `reads_primary`: refused on the replica
    before anything is sent, it is answered again from the primary."""

    def touch_generation(session: SessionDep) -> dict[str, int]:
        session.execute(text("UPDATE catalog_generation SET generation = generation + 1"))
        return {
            "generation": session.execute(
                text("SELECT generation FROM catalog_generation")
            ).scalar_one()
        }

    app.add_api_route("/test-only/touch", touch_generation, methods=["GET"])
    before = _get(client, "/test-only/touch")
    assert before.headers[HEADER] == PRIMARY
    after = _get(TestClient(app), "/test-only/touch")
    assert after.headers[HEADER] == PRIMARY
    assert after.json()["generation"] == before.json()["generation"] + 1
    retries = app.state.metrics._own.get_sample_value(
        "efdb_replica_retries_total", {"reason": "wrote"}
    )
    assert retries == 2


def test_a_read_cancelled_by_a_recovery_conflict_is_answered_by_the_primary(
    app: FastAPI, client: TestClient, replica: Replica
) -> None:
    """What PostgreSQL answers a standby's query whose rows replay had to remove (provoking
    one takes minutes of `max_standby_streaming_delay`, so the route raises it itself)."""

    def conflicted(session: SessionDep) -> dict[str, int]:
        port = session.execute(text("SELECT inet_server_port()")).scalar_one()
        if port == REPLICA_PORT:
            raise OperationalError(
                "SELECT ...",
                None,
                psycopg.errors.SerializationFailure(
                    "canceling statement due to conflict with recovery"
                ),
            )
        return {"port": port}

    app.add_api_route("/test-only/conflicted", conflicted, methods=["GET"])
    answer = _get(client, "/test-only/conflicted")
    assert answer.headers[HEADER] == PRIMARY
    assert answer.json()["port"] != REPLICA_PORT


def test_readiness_and_metrics_report_the_replica_and_its_lag(
    client: TestClient, settings: Settings, tokens: TokenKit
) -> None:
    ready = _get(client, "/readyz").json()
    assert ready["replica"] == "ok"
    assert ready["replica_lag_bytes"] >= 0
    assert "replica_replayed_at" in ready
    scraped = _get(client, "/metrics", headers=tokens.admin()).text
    lag = re.search(r"^efdb_replica_lag_bytes (\S+)$", scraped, re.MULTILINE)
    assert lag is not None
    assert float(lag.group(1)) >= 0
    assert 'efdb_db_pool_size{engine="replica"}' in scraped
    # A replica that does not answer: the reads it serves would fail, so the worker is not ready.
    nowhere = settings.model_copy(
        update={"read_database_url": "postgresql+psycopg://root@127.0.0.1:1/efdb"}
    )
    unready = create_app(nowhere)
    try:
        answer = TestClient(unready).get("/readyz")
    finally:
        unready.state.engine.dispose()
    assert answer.status_code == 503
    assert answer.json()["replica"] == "unreachable"
    assert answer.json()["database"] == "ok"


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", [], REPLICA),
        ("HEAD", [], REPLICA),
        ("POST", [], PRIMARY),
        ("GET", [(b"authorization", b"Bearer x")], PRIMARY),
        ("GET", [(b"cookie", f"lang=zh; {COOKIE}=1000".encode())], PRIMARY),
        ("GET", [(b"cookie", f"{COOKIE}=999".encode())], REPLICA),  # the window is over
        ("GET", [(b"cookie", f"{COOKIE}=soon".encode())], REPLICA),  # not a time: ignored
    ],
)
def test_which_database_a_request_reads(
    method: str, headers: list[tuple[bytes, bytes]], expected: str
) -> None:
    scope = {"type": "http", "method": method, "headers": headers}
    assert choose_database(scope, now=999.5) == expected


def test_a_kept_search_page_is_never_replaced_by_an_older_one() -> None:
    """A worker reading from the primary and a lagging replica asks the page cache at two
    generations; the newer page stays for the replica to catch up with, and neither database
    is ever served the other's page."""
    cache = SearchPageCache(4)
    newer = make_page(8, b"[8]", cache_control=SHORT_LIVED, next_url=None)
    older = make_page(7, b"[7]", cache_control=SHORT_LIVED, next_url=None)
    cache.put("/v1/factors?", newer)
    assert cache.get("/v1/factors?", 7) is None  # the replica, behind: made afresh...
    cache.put("/v1/factors?", older)  # ...and not kept over the newer page
    assert cache.get("/v1/factors?", 8) == newer
    assert cache.get("/v1/factors?", 9) is None  # a newer generation: the page is dropped
    cache.put("/v1/factors?", older)
    assert cache.get("/v1/factors?", 7) == older


@pytest.mark.parametrize(
    ("method", "path", "status", "cookie"),
    [
        ("POST", "/v1/datasets", 201, True),
        ("DELETE", "/v1/webhooks/1", 204, True),
        ("POST", "/v1/datasets", 409, False),  # refused: nothing written to read back
        ("POST", "/v1/factors:resolve", 200, False),  # a read-only query sent as POST
        ("GET", "/v1/factors", 200, False),
    ],
)
def test_which_answers_set_the_read_your_writes_cookie(
    method: str, path: str, status: int, cookie: bool
) -> None:
    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = TestClient(ReadRouting(answer, read_your_writes_seconds=5))
    response = client.request(method, path)
    assert (COOKIE in response.cookies) is cookie


def test_a_read_replica_needs_a_postgresql_primary(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="EFDB_READ_DATABASE_URL"):
        Settings(
            database_url=f"sqlite:///{tmp_path / 'efdb.sqlite3'}",
            read_database_url="postgresql+psycopg://root@127.0.0.1:5433/efdb",
        )
