"""Rate limits (issue 20): budgets a minute for reads, writes and the token endpoint, per client
(a valid bearer token) or per address, refused with 429 problem details and `Retry-After`;
counted in the worker's memory or, with `EFDB_REDIS_URL`, in Redis for every worker.

Most tests run on both stores: `memory` (the library's clock frozen in the middle of a minute,
so that no window ends during a test) and `redis` (the real server at 127.0.0.1:6379, or
`EFDB_TEST_REDIS_URL`; each test its own key prefix, so that parallel runs never share a count,
and each key's window starts at its first request). Without Redis those skip with the reason,
unless `EFDB_REQUIRE_REDIS=1` (CI), where they fail.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import limits.storage.memory
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import app.auth.server as token_server
import app.datasets.generation as generation
import app.factors.router as factor_router
from app.auth.hashing import verify_secret
from app.auth.tokens import TokenVerifier
from app.core import rate_limits
from app.core.config import Settings
from app.core.metrics import Metrics
from app.core.rate_limits import Budget, RateLimiter, budget_of, client_address
from app.main import create_app
from tests.auth_fixtures import TokenKit
from tests.conftest import ServerProcess, _free_port
from tests.factories import create_dataset_with_factors, create_publisher, factor_fields
from tests.live_server import loopback_client
from tests.rate_windows import start_within_one_minute
from tests.test_metrics import samples, value
from tests.test_token_throttle import attempt, guess

REDIS_URL = os.environ.get("EFDB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = os.environ.get("EFDB_REQUIRE_REDIS") == "1"
# A cheap read that every app answers the same way without a database query.
READ = "/.well-known/jwks.json"
# A write every anonymous caller is refused (401) by the route, after its budget is spent.
WRITE = "/v1/datasets"
PROBLEM = "application/problem+json"


_T = TypeVar("_T")


def in_own_thread(work: Callable[[], _T]) -> _T:
    """`work()` on a fresh thread, which has no running event loop: a test worker that ran
    Playwright's sync API before keeps one in its main thread, where `asyncio.run` refuses."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return cast(_T, outcome["value"])


def redis_or_skip() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError as exc:
        reason = f"Redis is not answering at {REDIS_URL} ({exc}); start redis-server"
        if REQUIRE_REDIS:
            pytest.fail(reason + " (EFDB_REQUIRE_REDIS=1)")
        pytest.skip(reason)
    return REDIS_URL


def forget(url: str, prefix: str) -> None:
    """Delete the keys one test wrote (they would expire within two minutes anyway)."""
    with redis.Redis.from_url(url) as connection:
        keys = list(connection.scan_iter(match=f"{prefix}:*"))
        if keys:
            connection.delete(*keys)


class _FrozenClock:
    """`time` for limits' memory storage: the middle of a minute, so that a test's requests
    all fall into one window whatever the wall clock says."""

    @staticmethod
    def time() -> float:
        return 1_800_000_030.0


Store = dict[str, Any]


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> Store:
    """The default store, each worker's memory, on a frozen clock."""
    monkeypatch.setattr(limits.storage.memory, "time", _FrozenClock)
    return {}


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """Where the budgets are counted: in memory, or in Redis under a key prefix of its own."""
    if request.param == "memory":
        monkeypatch.setattr(limits.storage.memory, "time", _FrozenClock)
        yield {}
        return
    url = redis_or_skip()
    prefix = f"efdb-test-{uuid.uuid4().hex}"
    yield {"redis_url": url, "redis_prefix": prefix}
    forget(url, prefix)


@contextmanager
def limited(settings: Settings, store: Store, **budgets: Any) -> Iterator[TestClient]:
    """A client of an app with these budgets (any other unlimited), counted in `store`."""
    update: dict[str, Any] = {"rate_reads_per_minute": 0, "rate_writes_per_minute": 0}
    app = create_app(settings.model_copy(update={**update, **store, **budgets}))
    start_within_one_minute()
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def assert_too_many(response: httpx.Response, detail: str | None = None) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    body = response.json()
    assert body["type"].endswith("/too-many-requests")
    assert (body["title"], body["status"]) == ("Too many requests", 429)
    if detail is not None:
        assert body["detail"] == detail


@pytest.mark.dialect_neutral
def test_reads_past_their_budget_answer_429_problem_details_with_retry_after(
    settings: Settings, store: Store
) -> None:
    with limited(settings, store, rate_reads_per_minute=3) as client:
        for _ in range(3):
            assert client.get(READ).status_code == 200
        refused = client.get(READ)
        assert_too_many(
            refused,
            "This address has used its 3 reads a minute; retry after the delay given, or "
            "authenticate to read on your client's own budget.",
        )
        assert refused.json()["instance"] == READ
        in_chinese = client.get(READ, headers={"Accept-Language": "zh-CN"})
        assert_too_many(
            in_chinese,
            "此地址已用完每分钟 3 次的读取配额；请在给定的等待时间后重试，"
            "或使用令牌以按客户端计算配额。",
        )
        assert in_chinese.headers["content-language"] == "zh-CN"
        # Probes spend nothing: a load balancer never takes a healthy worker out for a 429.
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200


@pytest.mark.dialect_neutral
def test_reads_writes_and_token_requests_each_spend_their_own_budget(
    settings: Settings, store: Store
) -> None:
    with limited(
        settings,
        store,
        rate_reads_per_minute=2,
        rate_writes_per_minute=2,
        token_attempts_per_ip=3,
    ) as client:
        for _ in range(2):
            assert client.post(WRITE, json={}).status_code == 401  # spent, then refused by auth
        assert_too_many(
            client.post(WRITE, json={}),
            "This address has used its 2 writes a minute; retry after the delay given.",
        )
        # Reads, and the token endpoint, still have their budgets.
        for _ in range(2):
            assert client.get(READ).status_code == 200
        for _ in range(3):
            assert attempt(client, "no-such-client", "guess").status_code == 401
        assert_too_many(attempt(client, "no-such-client", "guess"))
        assert_too_many(client.get(READ))
        # The read-only batches are reads, not writes.
        assert_too_many(client.post("/v1/factors:resolve", json={"items": []}))


@pytest.mark.dialect_neutral
def test_a_valid_token_spends_its_clients_budget_and_anything_else_its_addresses(
    settings: Settings, store: Store, db: Engine
) -> None:
    with limited(settings, store, rate_reads_per_minute=2) as client:
        kit = TokenKit(client, db)
        first, second, admin = kit.reader(), kit.reader(), kit.admin()
        for _ in range(2):
            assert client.get(READ).status_code == 200
        assert_too_many(client.get(READ))
        # The same address, but a client's own budget.
        for _ in range(2):
            assert client.get(READ, headers=first).status_code == 200
        assert_too_many(
            client.get(READ, headers=first),
            "This client has used its 2 reads a minute; retry after the delay given (batches "
            "answer up to 1000 lines in one request).",
        )
        assert client.get(READ, headers=second).status_code == 200
        # A token that does not verify names nobody: the address's budget (spent) is charged.
        forged = {"Authorization": "Bearer " + first["Authorization"].split()[1][:-4] + "AAAA"}
        assert_too_many(client.get(READ, headers=forged))
        found = samples(client, admin)
    assert value(found, "efdb_rate_limited_total", budget="read", by="address") == 2
    assert value(found, "efdb_rate_limited_total", budget="read", by="client") == 1
    assert value(found, "efdb_rate_limit_storage_errors_total") == 0


@pytest.mark.dialect_neutral
def test_guessing_at_the_token_endpoint_is_limited_on_either_store(
    settings: Settings, store: Store, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token endpoint's per-client and per-address budgets (tests/test_token_throttle.py
    runs the same guesses on the default store), counted before any secret is hashed."""
    hashed: list[str] = []
    real = verify_secret

    def counted(secret: str, stored: str | None) -> bool:
        hashed.append(secret)
        return real(secret, stored)

    monkeypatch.setattr(token_server, "verify_secret", counted)
    with limited(settings, store, token_attempts_per_client=3, token_attempts_per_ip=5) as client:
        guess(client, db, hashed)


@pytest.mark.dialect_neutral
def test_a_token_is_verified_once_per_request(
    settings: Settings, memory: Store, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rate limits find the client of a token before the route runs; the route's
    authentication uses that verification rather than checking the signature again."""
    verified: list[str] = []
    real = TokenVerifier.verify

    def counted(self: TokenVerifier, token: str) -> Any:
        verified.append(token)
        return real(self, token)

    monkeypatch.setattr(TokenVerifier, "verify", counted)
    with limited(settings, memory, rate_reads_per_minute=100) as client:
        headers = TokenKit(client, db).reader()
        assert client.get("/v1/factors", headers=headers).status_code == 200
        assert len(verified) == 1
        # A bad token: verified once too, and refused by the route with the verifier's reason.
        bad = {"Authorization": "Bearer not.a-token"}
        refused = client.get("/v1/factors", headers=bad)
        assert refused.status_code == 401
        assert len(verified) == 2


@pytest.fixture
def one_factor(session: Session) -> None:
    """synth-rate/open, public, one factor: grid-1."""
    create_dataset_with_factors(
        session,
        publisher=create_publisher(session, slug="synth-rate"),
        dataset="open",
        factors=[factor_fields("grid-1")],
    )
    session.commit()


@pytest.mark.dialect_neutral
def test_lookups_by_code_on_the_short_path_spend_the_read_budget(
    settings: Settings, memory: Store, one_factor: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with limited(settings, memory, rate_reads_per_minute=2) as client:
        reader = client.app.state.lookup_reader  # type: ignore[attr-defined]
        answered: list[str] = []
        real: Callable[..., Any] = reader.answer if reader.inline else reader.answer_async
        name = "answer" if reader.inline else "answer_async"

        def counted(*args: Any) -> Any:
            answered.append(args[2])
            return real(*args)

        monkeypatch.setattr(reader, name, counted)
        for _ in range(2):
            assert client.get("/v1/factors/synth-rate/open/grid-1").status_code == 200
        assert answered == ["grid-1", "grid-1"]  # by the short path, below the rate limits
        assert_too_many(client.get("/v1/factors/synth-rate/open/grid-1"))
        assert len(answered) == 2


@pytest.mark.dialect_neutral
def test_kept_search_pages_on_the_short_path_spend_the_read_budget(
    settings: Settings, memory: Store, one_factor: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The route reads the generation through this; the short path on its own connection.
    by_route: list[int | None] = []
    real = generation.committed_generation

    def counted(engine: Engine) -> int | None:
        by_route.append(real(engine))
        return by_route[-1]

    monkeypatch.setattr(factor_router, "committed_generation", counted)
    with limited(settings, memory, rate_reads_per_minute=3) as client:
        pages = [client.get("/v1/factors", params={"publisher": "synth-rate"}) for _ in range(3)]
        assert [page.status_code for page in pages] == [200] * 3
        assert pages[2].content == pages[0].content
        assert len(by_route) == 1  # made by the route, then kept and served below it
        assert_too_many(client.get("/v1/factors", params={"publisher": "synth-rate"}))
        assert len(by_route) == 1


@pytest.mark.dialect_neutral
def test_when_redis_does_not_answer_each_worker_keeps_counting_on_its_own(
    settings: Settings, db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail-open on the shared store only: no request is refused because Redis is down, and
    the budgets still hold, counted in the worker's memory; logged once and counted."""
    nobody = f"redis://127.0.0.1:{_free_port()}/0"
    app = create_app(
        settings.model_copy(
            update={"rate_reads_per_minute": 2, "redis_url": nobody, "redis_prefix": "unused"}
        )
    )
    with caplog.at_level(logging.WARNING, logger="efdb.rate_limits"), TestClient(app) as client:
        for _ in range(2):
            assert client.get(READ).status_code == 200
        assert_too_many(client.get(READ))
        found = samples(client, TokenKit(client, db).admin())
    app.state.engine.dispose()
    assert value(found, "efdb_rate_limit_storage_errors_total") >= 1
    warnings = [r.getMessage() for r in caplog.records if "did not answer" in r.getMessage()]
    assert len(warnings) == 1, warnings


def test_after_an_outage_the_budgets_are_shared_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = redis_or_skip()
    prefix = f"efdb-test-{uuid.uuid4().hex}"
    settings = Settings(
        database_url="sqlite://", rate_reads_per_minute=5, redis_url=url, redis_prefix=prefix
    )
    limiter = RateLimiter(settings, Metrics())
    monkeypatch.setattr(rate_limits, "_REDIS_RETRY_SECONDS", 0.0)  # ask Redis again at once
    real = limiter._shared_counter
    outage = [redis.ConnectionError("Redis went away")]

    def flaky() -> Any:
        if outage:
            raise outage.pop()
        return real()

    monkeypatch.setattr(limiter, "_shared_counter", flaky)

    async def two_reads() -> list[Any]:
        return [await limiter.spend(Budget.READ, "address", "198.51.100.7") for _ in range(2)]

    try:
        with caplog.at_level(logging.INFO, logger="efdb.rate_limits"):
            assert in_own_thread(lambda: asyncio.run(two_reads())) == [None, None]
        with redis.Redis.from_url(url) as connection:
            assert list(connection.scan_iter(match=f"{prefix}:*")), "the second read went to Redis"
    finally:
        forget(url, prefix)
    said = [record.getMessage() for record in caplog.records]
    assert any("did not answer" in line for line in said), said
    assert any("answers again" in line for line in said), said


def test_counting_in_memory_starts_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's memory store starts a thread 10 ms after each burst of hits, and every
    start stalls the event loop until the OS runs it; the worker's store sweeps on the loop."""
    limiter = RateLimiter(Settings(database_url="sqlite://", rate_reads_per_minute=5))
    started: list[threading.Thread] = []

    async def burst() -> list[bool]:
        answers = []
        for _ in range(7):
            answers.append(await limiter.spend(Budget.READ, "address", "198.51.100.7") is None)
            await asyncio.sleep(0.011)
        return answers

    def counted() -> list[bool]:
        # Patched once this thread runs: from here on no thread may start.
        monkeypatch.setattr(threading.Thread, "start", lambda thread: started.append(thread))
        return asyncio.run(burst())

    assert in_own_thread(counted) == [True] * 5 + [False] * 2
    assert started == []


@pytest.mark.parametrize(
    ("method", "path", "budget"),
    [
        ("GET", "/v1/factors/p/d/code", Budget.READ),
        ("HEAD", "/v1/factors", Budget.READ),
        ("GET", "/", Budget.READ),
        ("POST", "/v1/factors:resolve", Budget.READ),
        ("POST", "/v1/estimate", Budget.READ),
        ("POST", "/resolve", Budget.READ),
        ("POST", "/citations", Budget.READ),
        ("POST", "/v1/datasets", Budget.WRITE),
        ("DELETE", "/v1/webhooks/3", Budget.WRITE),
        ("POST", "/v1/snapshots", Budget.WRITE),
        ("POST", "/oauth/token", None),  # the token endpoint counts its own
        ("POST", "/auth/token", None),
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/static/efdb.css", None),
    ],
)
def test_which_budget_a_request_spends(method: str, path: str, budget: Budget | None) -> None:
    assert budget_of(method, path) == budget


@pytest.mark.parametrize(
    ("peer", "counted_as"),
    [
        ("203.0.113.9", "203.0.113.9"),
        # One IPv6 host holds a whole /64: its addresses share one budget.
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::2", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("testclient", "testclient"),
    ],
)
def test_the_address_a_request_is_counted_under(peer: str, counted_as: str) -> None:
    assert client_address({"client": (peer, 1234)}) == counted_as


@pytest.mark.slow
@pytest.mark.dialect_neutral
def test_two_server_workers_share_one_budget_through_redis(
    database_url: str, db: Engine, tmp_path: Path
) -> None:
    """`efdb serve --workers 2` with `EFDB_REDIS_URL`: whichever worker takes a request, the
    address has one budget. Counted per worker, both workers would let through their own
    budget (more than `budget` in all, as soon as each took a request)."""
    url = redis_or_skip()
    prefix = f"efdb-test-{uuid.uuid4().hex}"
    budget, asked = 5, 30
    server = ServerProcess(
        tmp_path,
        {
            "EFDB_DATABASE_URL": database_url,
            "EFDB_REDIS_URL": url,
            "EFDB_REDIS_PREFIX": prefix,
            "EFDB_RATE_READS_PER_MINUTE": str(budget),
        },
        args=("--workers", "2", "--no-worker"),
    )
    server.start()
    start_within_one_minute()
    try:
        statuses = []
        for _ in range(asked):
            # A new connection each time, so that the kernel hands them to both workers.
            with loopback_client() as http:
                statuses.append(http.get(f"{server.base}{READ}").status_code)
    finally:
        server.stop()
        forget(url, prefix)
    assert statuses.count(200) == budget, statuses
    assert statuses.count(429) == asked - budget, statuses
