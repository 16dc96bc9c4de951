"""Database plumbing: declarative base, engine factory, one transaction per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeAlias

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Select, create_engine, event
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from app.core.bounds import (
    BUDGET_KEY,
    GUARD_KEY,
    StatementGuard,
    budget_for_request,
    install_sqlite_deadline,
    install_statement_budget,
    install_statement_guard,
    start_disconnect_watch,
    watches_disconnect,
)
from app.core.replica import REPLICA, USED_KEY, session_database

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A SELECT of any columns (SQLAlchemy 2.1 types Select by its column tuple).
AnySelect: TypeAlias = Select[*tuple[Any, ...]]

# SQLite only auto-increments an INTEGER PRIMARY KEY, so big ids are plain integers there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both databases (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def is_memory_sqlite(database_url: str) -> bool:
    """An in-memory SQLite database: one per connection (SQLAlchemy keeps a single one)."""
    url = make_url(database_url)
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        if not is_memory_sqlite(database_url):
            # A pool as large as PostgreSQL's: SQLAlchemy's default keeps 5 connections and
            # closes every overflow one on return, so 6+ concurrent requests opened a
            # connection (and parsed the whole schema, PRAGMAs included) per request.
            kwargs.setdefault("pool_size", 10)
            kwargs.setdefault("max_overflow", 10)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        install_sqlite_deadline(engine)
        install_statement_guard(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # No pre-ping (a round trip per request); stale connections are recycled instead, and a
    # connection the server dropped fails one request, which the client may retry.
    kwargs.setdefault("pool_recycle", 1800)
    engine = create_engine(url, **kwargs)
    install_statement_guard(engine)
    return engine


def take_write_lock(session: Session) -> None:
    """SQLite: make the session's transaction a write transaction now (`BEGIN IMMEDIATE`).

    SQLite has one writer at a time. The driver opens a transaction only at the first write,
    so the reads before it run each on its own snapshot; `BEGIN IMMEDIATE` waits (up to the
    busy timeout) for the other writer to finish and then holds the write lock, so every read
    that follows sees the latest commit and nothing else writes until this transaction ends.
    Already in a transaction means one that has written, which holds that lock already.

    PostgreSQL: nothing here; callers lock the rows they are about to change
    (`SELECT ... FOR UPDATE`), which is finer than the whole database.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection
    if raw is not None and not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False, autoflush=False)
    install_statement_budget(factory)
    return factory


def _finish(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: commit on success, roll back on any error.

    The commit runs before the response is sent (`SessionDep` declares `scope="function"`), so
    no answer ever acknowledges a write that is not yet durable and visible to the next
    request, and a commit that fails becomes the error response instead of a lost write.

    An async generator, so that opening the session costs no trip to the thread pool (it does
    no I/O until the endpoint's first query); the commit or rollback at the end, which does,
    runs in the pool.
    """
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    read_factory: sessionmaker[Session] | None = getattr(
        request.app.state, "read_sessionmaker", None
    )
    if read_factory is not None and session_database(request.scope) == REPLICA:
        # A read the replica serves (app/core/replica.py).
        factory = read_factory
    session = factory()
    # The request's database time budget, applied when its transaction begins (app/core/bounds.py).
    session.info[BUDGET_KEY] = budget_for_request(request)
    # A search or batch whose client goes away stops its statement (app/core/bounds.py).
    watch = None
    if watches_disconnect(request):
        guard = session.info[GUARD_KEY] = request.state.statement_guard = StatementGuard()
        watch = start_disconnect_watch(request, guard)
    try:
        yield session
    except BaseException:
        if watch is not None:
            watch.cancel()
        await run_in_threadpool(_finish, session, commit=False)
        raise
    if watch is not None:
        watch.cancel()
    if not session.in_transaction():
        # The endpoint committed already (or never touched the database): nothing to do that
        # needs a trip to the thread pool.
        session.close()
        return
    await run_in_threadpool(_finish, session, commit=True)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def request_sessionmaker(request: Request) -> sessionmaker[Session]:
    """Sessions on the database the request's own session reads (the replica's when it serves
    the request), for work that outlives that session, as a response streamed after it."""
    read_factory: sessionmaker[Session] | None = getattr(
        request.app.state, "read_sessionmaker", None
    )
    if read_factory is not None and request.scope.get("state", {}).get(USED_KEY) == REPLICA:
        return read_factory
    primary: sessionmaker[Session] = request.app.state.sessionmaker
    return primary
