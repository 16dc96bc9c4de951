"""Rate limits: budgets a minute for reads, writes and the token endpoint, per client or address.

Each request spends one unit of a budget (`Budget`):

- `read`: `GET`/`HEAD`/`OPTIONS`, and the read-only batches and forms (resolve, estimate,
  citation checks), `EFDB_RATE_READS_PER_MINUTE`;
- `write`: every other method, `EFDB_RATE_WRITES_PER_MINUTE`;
- `token`: `/oauth/token` (and PACT's `/auth/token`), checked by the token endpoint itself
  (app/auth/throttle.py) before any secret is hashed: `EFDB_TOKEN_ATTEMPTS_PER_IP` per address
  and `EFDB_TOKEN_ATTEMPTS_PER_CLIENT` per client id named in the request.

A request with a valid bearer token spends its client's budget; any other its address's (the
peer, or the client that uvicorn's proxy-headers handling read from `X-Forwarded-For` when the
peer is a trusted proxy, `FORWARDED_ALLOW_IPS`; an IPv6 address counts as its /64, which one
host holds whole). `0` means unlimited. Past the budget: `429` problem+json with
`Retry-After`. Liveness and readiness probes and the static assets spend nothing.

Counting is the `limits` library's sliding window counter (two counters per key and window,
weighted: about the last 60 s). Storage: in each worker's memory by default (so `N` workers
admit up to `N` times a budget), or in Redis with `EFDB_REDIS_URL`, one budget for every
worker on every machine that names the same Redis and `EFDB_REDIS_PREFIX`.

Redis unreachable (or failing) at request time: the check falls back to the worker's own
memory counters, the same budgets counted per worker, for `_REDIS_RETRY_SECONDS`, then Redis
is tried again. So an outage never refuses a request for being unable to count it (fail-open
on the shared store) and never leaves a budget unenforced (each worker still enforces it);
the worker logs a warning when it falls back (and a line when Redis answers again), and counts
each failed check in `efdb_rate_limit_storage_errors_total`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv6Address, IPv6Network
from typing import Literal

from fastapi.responses import JSONResponse
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.strategies import SlidingWindowCounterRateLimiter as SharedCounter
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter as LocalCounter
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.bounds import RequestKind, request_kind
from app.core.config import Settings
from app.core.errors import problem_response, scope_language
from app.core.metrics import Metrics
from app.core.problem_text import Lang, Message

log = logging.getLogger("efdb.rate_limits")

# A Redis that does not answer within this is treated as down (a LAN round trip is < 1 ms).
_REDIS_TIMEOUT_SECONDS = 0.25
# After a failed check, this worker counts in its own memory this long before asking Redis
# again: one request in that time pays the timeout, not every request.
_REDIS_RETRY_SECONDS = 5.0
# How often the worker's memory store forgets expired counters (see `_WorkerMemory`).
_SWEEP_SECONDS = 10.0
# Paths that spend no budget: probes an orchestrator or load balancer polls (a 429 there would
# take a healthy worker out of rotation), and immutable static assets of pages.
_FREE_PATHS = frozenset({"/healthz", "/readyz"})
_FREE_PREFIXES = ("/static/", "/docs-assets/")
# The token endpoint counts its own attempts (app/auth/throttle.py), with the client id the
# form names, which only it reads.
TOKEN_PATHS = frozenset({"/oauth/token", "/auth/token"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Forms that only read: the web explorer's citation check (the API's is a batch).
_READ_FORMS = frozenset({"/citations"})

By = Literal["client", "address"]


class Budget(StrEnum):
    READ = "read"
    WRITE = "write"
    TOKEN = "token"


def budget_of(method: str, path: str) -> Budget | None:
    """The budget a request spends, or None (probes, static assets, the token endpoint)."""
    if path in _FREE_PATHS or path in TOKEN_PATHS or path.startswith(_FREE_PREFIXES):
        return None
    if method in _READ_METHODS or path in _READ_FORMS:
        return Budget.READ
    if request_kind(method, path) is RequestKind.BATCH:
        return Budget.READ
    return Budget.WRITE


def client_address(scope: Scope) -> str:
    """Who is asking when no client is known: the address (an IPv6 one as its /64)."""
    client = scope.get("client")
    host = client[0] if client else "unknown"
    if ":" in host:
        try:
            address = IPv6Address(host)
        except ValueError:
            return host
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(IPv6Network((address, 64), strict=False))
    return host


@dataclass(frozen=True)
class Refusal:
    """A request past its budget: which one, whose, and how long until one unit is free."""

    budget: Budget
    by: By
    wait_seconds: float


def too_many(detail: str, wait_seconds: float, instance: str, lang: Lang = "en") -> JSONResponse:
    """429 problem details with `Retry-After`, the detail in the client's language."""
    return problem_response(
        status=429,
        code="too-many-requests",
        title="Too many requests",
        detail=detail,
        instance=instance,
        headers={"Retry-After": str(min(60, max(1, math.ceil(wait_seconds))))},
        lang=lang,
    )


class _WorkerMemory(MemoryStorage):
    """limits' memory storage, swept of expired counters every `_SWEEP_SECONDS` on the event
    loop instead of by a thread the library starts 10 ms after each burst of hits.

    Under load that was one thread start every 10 ms, and each start blocks the event loop until
    the OS first runs the new thread: on a busy 2-core machine the lookup benchmark lost three
    quarters of its throughput to it. A counter past its expiry is ignored when it is read
    anyway; the sweep only frees the memory of keys nobody asks about again.
    """

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = time.monotonic() + _SWEEP_SECONDS

    # Replaces the library's private scheduling hook (`MemoryStorage.__schedule_expiry`, called
    # by every `incr`); tests/test_rate_limits.py checks that hits start no thread.
    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_SECONDS
            getattr(self, "_MemoryStorage__expire_events")()  # noqa: B009


class RateLimiter:
    """The budgets of one app, counted in this worker's memory or in Redis."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        per_minute: dict[tuple[Budget, By], int] = {
            (Budget.READ, "client"): settings.rate_reads_per_minute,
            (Budget.READ, "address"): settings.rate_reads_per_minute,
            (Budget.WRITE, "client"): settings.rate_writes_per_minute,
            (Budget.WRITE, "address"): settings.rate_writes_per_minute,
            (Budget.TOKEN, "client"): settings.token_attempts_per_client,
            (Budget.TOKEN, "address"): settings.token_attempts_per_ip,
        }
        # 0: unlimited, no item and no counting at all.
        self.items: dict[tuple[Budget, By], RateLimitItem] = {
            key: RateLimitItemPerMinute(amount) for key, amount in per_minute.items() if amount
        }
        self.local = LocalCounter(_WorkerMemory())
        self.redis_url = settings.redis_url
        self.redis_prefix = settings.redis_prefix
        # One Redis client per event loop: redis-py's asyncio connections belong to the loop
        # that opened them (uvicorn runs one per worker; each TestClient block its own).
        self._shared: SharedCounter | None = None
        self._shared_loop: asyncio.AbstractEventLoop | None = None
        self._redis_down_until = 0.0

    def limits(self, budget: Budget) -> bool:
        """Whether any of the budget's limits is set (else nothing needs to be known)."""
        return (budget, "client") in self.items or (budget, "address") in self.items

    async def spend(self, budget: Budget, by: By, identity: str) -> Refusal | None:
        """One unit of `budget` for `identity`; None if it was available, else the refusal."""
        item = self.items.get((budget, by))
        if item is None:
            return None
        key = (str(budget), by, identity)
        if self.redis_url is not None and time.monotonic() >= self._redis_down_until:
            try:
                return await self._spend_shared(item, key, budget, by)
            except Exception as exc:  # any failure of the store: count here instead
                self._redis_failed(exc)
        if self.local.hit(item, *key):
            return None
        return Refusal(budget, by, self.local.get_window_stats(item, *key).reset_time - time.time())

    async def _spend_shared(
        self, item: RateLimitItem, key: tuple[str, ...], budget: Budget, by: By
    ) -> Refusal | None:
        counter = self._shared_counter()
        allowed = await counter.hit(item, *key)
        if self._redis_down_until:
            self._redis_down_until = 0.0
            log.info("rate limits: Redis answers again; the budgets are shared again")
        if allowed:
            return None
        stats = await counter.get_window_stats(item, *key)
        return Refusal(budget, by, stats.reset_time - time.time())

    def _shared_counter(self) -> SharedCounter:
        loop = asyncio.get_running_loop()
        if self._shared is None or self._shared_loop is not loop:
            assert self.redis_url is not None
            # Imported here: redis-py is a quarter of a second of every process start, and
            # only a service with EFDB_REDIS_URL uses it.
            from limits.aio.storage import RedisStorage
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            url = self.redis_url
            storage = RedisStorage(
                # limits' names for redis-py's asyncio client: async+redis://, async+redis+unix://
                ("async+redis+" if url.startswith("unix://") else "async+") + url,
                implementation="redispy",
                key_prefix=self.redis_prefix,
                wrap_exceptions=True,
                socket_timeout=_REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
                # redis-py retries 3 times with back-off by default: seconds per request.
                retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
            )
            self._shared, self._shared_loop = SharedCounter(storage), loop
        return self._shared

    def _redis_failed(self, exc: Exception) -> None:
        if self.metrics is not None:
            self.metrics.rate_limit_storage_errors.inc()
        if not self._redis_down_until:
            log.warning(
                "rate limits: Redis at EFDB_REDIS_URL did not answer (%s: %s); this worker "
                "counts the budgets in its own memory until it does",
                type(exc).__name__,
                exc,
            )
        self._redis_down_until = time.monotonic() + _REDIS_RETRY_SECONDS

    def refused(self, refusal: Refusal) -> None:
        if self.metrics is not None:
            self.metrics.rate_limited.labels(budget=str(refusal.budget), by=refusal.by).inc()


# The client behind a request's bearer token, when it carries a valid one (app/auth/identity.py).
Identify = Callable[[Scope], Awaitable[str | None]]


class RateLimit:
    """ASGI: the request spends a unit of its budget before anything else is done with it.

    Outside the lookup short path (app/factors/lookup.py), so anonymous lookups spend their
    address's read budget like any other read.
    """

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter, identify: Identify) -> None:
        self.app = app
        self.limiter = limiter
        self.identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = budget_of(scope["method"], scope["path"])
        if budget is None or not self.limiter.limits(budget):
            await self.app(scope, receive, send)
            return
        client_id = await self.identify(scope) if _has_authorization(scope) else None
        if client_id is not None:
            refusal = await self.limiter.spend(budget, "client", client_id)
        else:
            refusal = await self.limiter.spend(budget, "address", client_address(scope))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        self.limiter.refused(refusal)
        if client_id is not None:  # the access log names whose budget ran out
            scope.setdefault("state", {})["client_id"] = client_id
        detail = Message(
            f"bounds.rate_{budget}_{refusal.by}",
            limit=self.limiter.items[(budget, refusal.by)].amount,
        )
        response = too_many(detail, refusal.wait_seconds, scope["path"], scope_language(scope))
        await response(scope, receive, send)


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])
