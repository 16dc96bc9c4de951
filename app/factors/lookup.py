"""Lookup by code, the read clients make most, on a short path: answered below the
middlewares without FastAPI's routing and dependencies (`LookupShortPath`), by one prepared
statement on connections of its own (`LookupReader`), and the answer's bytes and ETag kept per
release (`LookupCache`).

A released factor never changes (the database refuses, see the workflow guards), nor does the
source it cites; what can change around it is its release's and its dataset's state: the
release withdrawn or deprecated, a newer one published, the dataset deprecated or superseded,
its licence or attribution edited. A lookup whose answer is kept therefore reads that state
from the database (`_state_statement`, a few primary-key and index probes) and serves the kept
bytes only when the state is exactly the one they were made in, so a withdrawal is seen by
the very next request, on every worker. A lookup the short path cannot answer (not found, not
readable, a token, `as_of`, `gwp`, a malformed version) goes to the route, which says why
with the same problem details as before; the route itself uses `lookup_answer` (the kept
answers, its session, metering) when it can.

The access check comes first, on the state read with the request: a kept answer is never
served to a reader who may not read its dataset (`Viewer.may_read`, the twin of the SQL
`readable`), and registered reads are metered as before.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, bindparam, literal_column, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.db import AnySelect
from app.core.http_cache import PINNED_RELEASE, SHORT_LIVED, json_bytes, strong_etag
from app.core.params import SLUG_PATTERN
from app.core.principal import ANONYMOUS, Viewer
from app.datasets import usage
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, RESOLVABLE_STATUSES, DatasetVersion
from app.datasets.visibility import SEMVER_PATTERN, newest_first
from app.factors.models import Factor
from app.factors.schemas import FACTOR_CODE_PATTERN
from app.factors.service import Successor, SuccessorPublisher, factor_select, release_state_columns
from app.factors.short_path import (
    Fetch,
    RouteTemplate,
    ShortPathReader,
    Steps,
    anonymous_get,
    answered_by,
    chosen_reader,
    drive,
    header,
    json_response,
)

# What an answer depends on besides the (immutable) factor and source rows: the release it is
# in and every mutable field of the answer, in the order of `factor_select`'s columns.
_STATE_COLUMNS = (Factor.version_id.label("release_id"), *release_state_columns())
_STATE_KEYS = tuple(column.key for column in _STATE_COLUMNS)
# Who may read it (`Viewer.may_read`).
_ACCESS_KEYS = ("lookup_access", "lookup_dataset_id")
_EXTRA_KEYS = ("lookup_release_id", *_ACCESS_KEYS)


def _current_release() -> Any:
    """The dataset's current release (the highest published or deprecated version), probed
    through the version index rather than ranked over every release of every dataset."""
    return (
        select(DatasetVersion.id)
        .where(
            DatasetVersion.dataset_id == Dataset.id,
            _status_in(RESOLVABLE_STATUSES),
        )
        .order_by(*newest_first())
        .limit(1)
        .correlate(Dataset)
        .scalar_subquery()
    )


def _status_in(statuses: tuple[str, ...]) -> ColumnElement[bool]:
    """`status IN (...)` with the constants in the SQL text: an expanding parameter would be
    rewritten into the statement at every execution."""
    return DatasetVersion.status.in_([literal_column(f"'{status}'") for status in statuses])


def _release_condition(query: AnySelect, pinned: bool) -> AnySelect:
    if pinned:
        return query.where(
            DatasetVersion.version == bindparam("version"),
            _status_in(RELEASED_STATUSES),
        )
    return query.where(DatasetVersion.id == _current_release())


@cache
def _answer_statement(pinned: bool) -> AnySelect:
    """Every column of the answer (exactly `factor_select`'s), its release and its access.

    Built once with bind parameters: SQLAlchemy then reuses the statement's cache key and
    compiled form, and PostgreSQL's driver prepares it after a few executions.
    """
    query = (
        factor_select()
        .add_columns(
            Factor.version_id.label("lookup_release_id"),
            Dataset.access.label("lookup_access"),
            Dataset.id.label("lookup_dataset_id"),
        )
        .where(
            Publisher.slug == bindparam("publisher"),
            Dataset.slug == bindparam("dataset"),
            Factor.factor_code == bindparam("factor_code"),
        )
    )
    return _release_condition(query, pinned)


@cache
def _state_statement(pinned: bool) -> AnySelect:
    """The state a kept answer must match, and its access; no factor row is read."""
    query = (
        select(
            DatasetVersion.id.label("release_id"),
            *_STATE_COLUMNS[1:],
            Dataset.access.label("lookup_access"),
            Dataset.id.label("lookup_dataset_id"),
        )
        .select_from(Dataset)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .join(DatasetVersion, DatasetVersion.dataset_id == Dataset.id)
        .outerjoin(Successor, Successor.id == Dataset.superseded_by_id)
        .outerjoin(SuccessorPublisher, SuccessorPublisher.id == Successor.publisher_id)
        .where(Publisher.slug == bindparam("publisher"), Dataset.slug == bindparam("dataset"))
    )
    return _release_condition(query, pinned)


@dataclass(frozen=True)
class Answer:
    body: bytes
    etag: str
    state: tuple[Any, ...]


class LookupCache:
    """The answers of recent lookups, least recently used out first; `entries` 0 keeps none.

    Keyed by the request (publisher, dataset, code, pinned version or None); each holds the
    state it was made in, which every lookup compares with the database's.
    """

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._answers: OrderedDict[tuple[str, str, str, str | None], Answer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str, str | None]) -> Answer | None:
        if not self.entries:
            return None
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
            return answer

    def put(self, key: tuple[str, str, str, str | None], answer: Answer) -> None:
        if not self.entries:
            return
        with self._lock:
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self.entries:
                self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)


def _readable(viewer: Viewer, row: dict[str, Any], publisher: str) -> bool:
    return viewer.may_read(
        access=row["lookup_access"], publisher=publisher, dataset_id=row["lookup_dataset_id"]
    )


def lookup_answer(
    session: Session,
    cache: LookupCache,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    factor_code: str,
    version: str | None,
) -> Answer | None:
    """The answer's bytes for a readable factor in the current (or the pinned) release, or
    None when the general path must answer (nothing found, not readable, bad version); a
    registered read is metered in `session`."""
    # Core execution on the session's connection (its transaction and statement budget):
    # the ORM layer adds nothing to a plain select.
    connection = session.connection()

    def fetch(statement: AnySelect, params: dict[str, Any]) -> dict[str, Any] | None:
        row = connection.execute(statement, params).first()
        return None if row is None else row._asdict()

    found = find_answer(
        fetch,
        cache,
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        factor_code=factor_code,
        version=version,
    )
    if found is None:
        return None
    answer, access = found
    if viewer.client_id is not None and access == "registered":
        # What `usage.meter_factors` does for the one factor served (it meters registered
        # datasets only, which this dataset is).
        usage.meter(session, viewer, [(publisher, dataset, 1)])
    return answer


def find_answer(
    fetch: Fetch,
    cache: LookupCache,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    factor_code: str,
    version: str | None,
) -> tuple[Answer, str] | None:
    """`lookup_answer`'s answer and its dataset's access, unmetered; one statement either way
    (the state when an answer is kept, else the answer's row)."""
    return drive(_answer_steps(cache, viewer, publisher, dataset, factor_code, version), fetch)


def _answer_steps(
    cache: LookupCache,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    factor_code: str,
    version: str | None,
) -> Steps[tuple[Answer, str] | None]:
    """`find_answer`'s logic, free of I/O: it yields each statement it needs (with its
    parameters) and is sent the row, so that a blocking and an asynchronous driver share it."""
    if version is not None and SEMVER_PATTERN.match(version) is None:
        return None
    pinned = version is not None
    params = {"publisher": publisher, "dataset": dataset, "factor_code": factor_code}
    if version is not None:
        params["version"] = version
    key = (publisher, dataset, factor_code, version)
    kept = cache.get(key)
    if kept is not None:
        state = yield _state_statement(pinned), params
        if state is None or not _readable(viewer, state, publisher):
            return None
        if tuple(state[name] for name in _STATE_KEYS) == kept.state:
            return kept, state["lookup_access"]
    row = yield _answer_statement(pinned), params
    if row is None or not _readable(viewer, row, publisher):
        return None
    access = row["lookup_access"]
    answer = _made_answer(row)
    cache.put(key, answer)
    return answer, access


def _made_answer(payload: dict[str, Any]) -> Answer:
    state = (payload["lookup_release_id"], *(payload[key] for key in _STATE_KEYS[1:]))
    for extra in _EXTRA_KEYS:
        del payload[extra]
    # The rest exactly as `app.factors.service.factor_payload` makes it.
    del payload["row_id"]
    payload["id"] = (
        f"{payload['publisher']}/{payload['dataset']}/{payload['factor_code']}@{payload['version']}"
    )
    body = json_bytes(payload)
    return Answer(body, strong_etag(body), state)


# --------------------------------------------------------------------------- the short path


class LookupReader(ShortPathReader):
    """The short path's database side (`ShortPathReader`) with the lookup's two statements."""

    def __init__(self, engine: Engine, cache: LookupCache, read_budget_ms: int) -> None:
        super().__init__(engine, read_budget_ms)
        self.cache = cache

    async def answer_async(
        self, publisher: str, dataset: str, factor_code: str, version: str | None
    ) -> Answer | None:
        """`answer` on this event loop's asynchronous connections (PostgreSQL)."""
        found = await self.run_async(
            _answer_steps(self.cache, ANONYMOUS, publisher, dataset, factor_code, version)
        )
        return None if found is None else found[0]

    def answer(
        self, publisher: str, dataset: str, factor_code: str, version: str | None
    ) -> Answer | None:
        """`find_answer` for an anonymous reader (nothing to meter)."""
        found = self.run(
            _answer_steps(self.cache, ANONYMOUS, publisher, dataset, factor_code, version)
        )
        return None if found is None else found[0]


ROUTE_TEMPLATE = "/v1/factors/{publisher}/{dataset}/{factor_code}"
_LOOKUP_PATH = re.compile(r"/v1/factors/([^/]+)/([^/]+)/([^/]+)")
_SLUG = re.compile(SLUG_PATTERN)
_CODE = re.compile(FACTOR_CODE_PATTERN)
_VERSION_QUERY = re.compile(rb"version=([0-9.]{5,32})")


_ROUTE = RouteTemplate(ROUTE_TEMPLATE)


class LookupShortPath:
    """ASGI, innermost: an anonymous `GET /v1/factors/{publisher}/{dataset}/{factor_code}`,
    with no query or only `?version=x.y.z`, is answered by `LookupReader` without FastAPI's
    routing, parameter validation and dependencies, which cost more than the lookup itself.

    It accepts only what the route accepts (the same patterns on the same decoded path
    segments) and answers exactly what the route answers (the same bytes, headers and 304s);
    anything else (a token, another parameter, an error, nothing found) goes on to the route,
    which decides as it always did. Every middleware outside this one still applies.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = self._eligible(scope)
        reader = None if matched is None else chosen_reader(scope, LookupReader)
        if matched is None or reader is None:
            await self.app(scope, receive, send)
            return
        try:
            if reader.inline:
                answer = reader.answer(*matched)
            else:
                answer = await reader.answer_async(*matched)
        except Exception:  # the route answers instead, with its own error handling
            answer = None
        if answer is None:
            await self.app(scope, receive, send)
            return
        version = matched[3]
        answered_by(scope, reader, _ROUTE)
        headers = {
            "ETag": answer.etag,
            "Cache-Control": PINNED_RELEASE if version else SHORT_LIVED,
        }
        response = json_response(header(scope, b"if-none-match"), answer.body, answer.etag, headers)
        await response(scope, receive, send)

    @staticmethod
    def _eligible(scope: Scope) -> tuple[str, str, str, str | None] | None:
        if not anonymous_get(scope):
            return None
        path = _LOOKUP_PATH.fullmatch(scope["path"])
        if path is None:
            return None
        publisher, dataset, factor_code = path.groups()
        if not (
            _SLUG.fullmatch(publisher) and _SLUG.fullmatch(dataset) and _CODE.fullmatch(factor_code)
        ):
            return None
        version: str | None = None
        query = scope.get("query_string", b"")
        if query:
            pinned = _VERSION_QUERY.fullmatch(query)
            if pinned is None:
                return None
            version = pinned.group(1).decode()
        return publisher, dataset, factor_code, version
