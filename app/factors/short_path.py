"""What the short paths below every middleware share (lookups by code, app/factors/lookup.py;
kept search pages, app/factors/page_cache.py): connections of their own, statements compiled
once and run on the DBAPI cursor, and answering the way the route would.

A short path's logic is a generator free of I/O (`Steps`): it yields each statement it needs
with its parameters and is sent the row, so that the blocking driver (SQLite, on the event loop)
and the asynchronous one (PostgreSQL, psycopg's async connections) run the same logic.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect, Engine
from starlette.responses import Response
from starlette.types import Scope

from app.core.bounds import bound_raw_statement
from app.core.db import AnySelect, is_memory_sqlite, make_engine
from app.core.http_cache import etag_header_matches
from app.core.replica import PRIMARY, REPLICA, mark_used, wants_replica

# The short path's connections and threads (it holds a connection for one statement or two).
POOL_SIZE = 5
POOL_OVERFLOW = 10

Result = TypeVar("Result")
# Yields (statement, parameters), is sent the statement's first row as a dict of its labels
# (None: no row), returns its result.
Steps = Generator[tuple[AnySelect, dict[str, Any]], "dict[str, Any] | None", Result]


class _RawStatement:
    """A statement compiled once for a dialect and run on a DBAPI cursor, its row turned into
    the values SQLAlchemy would give (each column's own result processor): the engine's
    per-execution machinery costs more than the statement on this path."""

    def __init__(self, statement: AnySelect, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        # The constants (LIMIT, the concatenated "/"); the request fills in the rest.
        self.defaults = dict(compiled.construct_params(_check=False))
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.dialect = dialect
        self.columns = compiled._result_columns
        self.keys = tuple(column.keyname for column in self.columns)
        self.processors: tuple[Callable[[Any], Any] | None, ...] | None = None

    def params(self, values: dict[str, Any]) -> Any:
        params = {**self.defaults, **values}
        return params if self.order is None else [params[k] for k in self.order]

    def first(self, cursor: Any, values: dict[str, Any]) -> dict[str, Any] | None:
        cursor.execute(self.sql, self.params(values))
        return self.row(cursor, cursor.fetchone())

    async def first_async(self, cursor: Any, values: dict[str, Any]) -> dict[str, Any] | None:
        await cursor.execute(self.sql, self.params(values))
        return self.row(cursor, await cursor.fetchone())

    def row(self, cursor: Any, row: Any) -> dict[str, Any] | None:
        if row is None:
            return None
        if self.processors is None:
            # As SQLAlchemy picks them: by the column's type and the driver's type code.
            self.processors = tuple(
                column.type._cached_result_processor(self.dialect, described[1])
                for column, described in zip(self.columns, cursor.description, strict=True)
            )
        return {
            key: value if process is None else process(value)
            for key, value, process in zip(self.keys, row, self.processors, strict=True)
        }


class _AsyncConnections:
    """PostgreSQL connections for one event loop (psycopg's asynchronous ones belong to the
    loop that opened them), at most `size` at a time, kept open between requests."""

    def __init__(self, conninfo: str, options: str, size: int) -> None:
        self.conninfo = conninfo
        self.options = options
        self.idle: list[Any] = []
        self.slots = asyncio.Semaphore(size)

    async def fetch(
        self, statement: _RawStatement, values: dict[str, Any]
    ) -> dict[str, Any] | None:
        async with self.slots:
            connection = self.idle.pop() if self.idle else await self._connect()
            try:
                async with connection.cursor() as cursor:
                    row = await statement.first_async(cursor, values)
            except BaseException:
                await connection.close()
                raise
            self.idle.append(connection)
            return row

    async def _connect(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, options=self.options
        )

    def close(self) -> None:
        for connection in self.idle:
            # Synchronous and immediate: the loop they belong to may be gone.
            connection.pgconn.finish()
        self.idle.clear()


class ShortPathReader:
    """A short path's database side: connections of its own in autocommit (its statements
    need no BEGIN and COMMIT around them, a round trip each on PostgreSQL), each statement
    compiled once.

    SQLite: a pooled connection, used on the event loop (`run`). PostgreSQL: psycopg's
    asynchronous connections, awaited on the event loop (`run_async`); the blocking engine
    is kept for its dialect (how the statements compile, how rows convert) and for `run`.
    The read budget bounds each statement as it bounds the route's: on PostgreSQL set once
    per connection (`statement_timeout`; these connections serve nothing else), on SQLite by
    the connection's deadline handler (`app.core.bounds.bound_raw_statement`).
    """

    def __init__(self, engine: Engine, read_budget_ms: int) -> None:
        """`engine`: the application's; this reader opens an engine of its own on the same
        database (closed by `close`, which the application calls when its engine is
        disposed: `app.main.release_connections`)."""
        self.budget_ms = read_budget_ms
        # An in-memory SQLite database cannot be opened a second time: the route answers.
        self.enabled = not is_memory_sqlite(engine.url.render_as_string(hide_password=False))
        options: dict[str, Any] = {
            "pool_size": POOL_SIZE,
            "max_overflow": POOL_OVERFLOW,
            "isolation_level": "AUTOCOMMIT",
        }
        if engine.dialect.name == "postgresql":
            options["connect_args"] = {"options": f"-c statement_timeout={int(read_budget_ms)}"}
        if not self.enabled:
            options = {}
        self.engine = make_engine(engine.url.render_as_string(hide_password=False), **options)
        # PostgreSQL: asynchronous connections on the event loop itself, so that a request
        # waits for the database without a hand-off to a thread and back.
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._options = f"-c statement_timeout={int(read_budget_ms)}"
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncConnections] = (
            weakref.WeakKeyDictionary()
        )
        # SQLite answers in the process, from its page cache, in tens of microseconds: less
        # than handing the request to a thread and back (and no network wait to overlap), so
        # the statements run where the request is, bounded by the same read budget.
        self.inline = engine.dialect.name == "sqlite"
        self._compiled: dict[int, _RawStatement] = {}

    def close(self) -> None:
        self.engine.dispose()
        for connections in list(self._loops.values()):
            connections.close()

    def _raw(self, statement: AnySelect) -> _RawStatement:
        raw = self._compiled.get(id(statement))
        if raw is None:
            # The statements are module-level singletons: id() is stable.
            raw = self._compiled[id(statement)] = _RawStatement(statement, self.engine.dialect)
        return raw

    def run(self, steps: Steps[Result]) -> Result:
        """`steps` on one pooled connection, on the calling thread."""
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            end = bound_raw_statement(connection.info, self.budget_ms)
            try:
                return drive(steps, lambda query, values: self._raw(query).first(cursor, values))
            finally:
                end()
                cursor.close()
        finally:
            connection.close()

    async def run_async(self, steps: Steps[Result]) -> Result:
        """`steps` on this event loop's asynchronous connections (PostgreSQL)."""
        loop = asyncio.get_running_loop()
        connections = self._loops.get(loop)
        if connections is None:
            connections = self._loops[loop] = _AsyncConnections(
                self._conninfo, self._options, POOL_SIZE + POOL_OVERFLOW
            )
        try:
            statement, values = next(steps)
            while True:
                row = await connections.fetch(self._raw(statement), values)
                statement, values = steps.send(row)
        except StopIteration as done:
            result: Result = done.value
            return result

    async def run_here(self, steps: Steps[Result]) -> Result:
        """`run` or `run_async`, whichever this database is read with."""
        return self.run(steps) if self.inline else await self.run_async(steps)


Fetch = Callable[[AnySelect, dict[str, Any]], "dict[str, Any] | None"]


def drive(steps: Steps[Result], fetch: Fetch) -> Result:
    """`steps` with a blocking `fetch`."""
    try:
        wanted = next(steps)
        while True:
            wanted = steps.send(fetch(*wanted))
    except StopIteration as done:
        result: Result = done.value
        return result


@dataclass(frozen=True)
class RouteTemplate:
    """What `scope["route"]` holds for the metrics (`app.core.metrics.route_template`)."""

    path: str


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def anonymous_get(scope: Scope) -> bool:
    """An HTTP GET without a token: the only requests the short paths answer."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return False
    return all(name != b"authorization" for name, _ in scope["headers"])


def json_response(
    if_none_match: str | None, body: bytes, etag: str, headers: Mapping[str, str]
) -> Response:
    """A kept JSON answer as the routes send it: 304 when If-None-Match matches its ETag
    (`headers` carries the ETag and the rest either way)."""
    if etag_header_matches(if_none_match, etag):
        return Response(status_code=304, headers=dict(headers))
    return Response(body, media_type="application/json", headers=dict(headers))


Reader = TypeVar("Reader", bound=ShortPathReader)


def chosen_reader(scope: Scope, kind: type[Reader]) -> Reader | None:
    """The reader of the database this request reads (`ReadRouting`'s choice: the replica's
    or the primary's), or None when the route must answer (in-memory SQLite). The readers are
    the lookup's (`app.state.lookup_reader`, `read_lookup_reader`): one pool per database."""
    state = scope["app"].state
    reader = state.lookup_reader
    replica = getattr(state, "read_lookup_reader", None)
    if replica is not None and wants_replica(scope):
        reader = replica
    return reader if isinstance(reader, kind) and reader.enabled else None


async def read_or_none(reader: ShortPathReader, steps: Steps[Result]) -> Result | None:
    """`steps` on `reader`; None on any error: the route then answers, with its own error
    handling."""
    try:
        return await reader.run_here(steps)
    except Exception:
        return None


def answered_by(scope: Scope, reader: ShortPathReader, template: RouteTemplate) -> None:
    """What the route's session and routing leave in the scope for the middlewares outside:
    the database that answered (`EFDB-Database`, with a replica) and the route's template."""
    replica = getattr(scope["app"].state, "read_lookup_reader", None)
    if replica is not None:
        mark_used(scope, REPLICA if reader is replica else PRIMARY)
    scope["route"] = template
