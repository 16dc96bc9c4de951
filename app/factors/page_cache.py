"""Search pages kept per worker while the released catalogue stays as it was.

A search page without text is made from released factor rows (which never change) and the
state of their releases, datasets and publishers, which `catalog_generation` follows (raised
by database triggers in the very transaction that changes it: app/datasets/generation.py). A
page made at generation G is served again, byte for byte with its ETag and `Link`, to the next
anonymous request for the same path and query as long as the database still says G: one
primary-key read instead of the search. Any publish, withdrawal, deprecation or dataset edit
moves the generation, and every worker's kept pages stop being served at its next request.

With a read replica (app/core/replica.py) a worker reads from two databases, the replica a
little behind the primary. Each page is still made and served on the generation of the database
the request reads (the search reads the generation from its own session's database, before the
search), so a kept page is exactly what that database would answer now; a page of an older
generation never replaces a newer one, which stays for the replica to catch up with.

Only what depends on nothing else is kept: anonymous readers (public datasets, nothing metered),
no text (`q` also reads the activity labels), no `as_of`, no `gwp` (reference tables).

A kept page is served below every middleware (`SearchPageShortPath`, like the lookup's short
path, app/factors/lookup.py): an anonymous `GET /v1/factors` whose path and query a page is
kept under reads the generation on the short path's own connection (on the event loop: no
thread hand-off, no session) and, if the page is of that generation, is answered with it as the
route would, without FastAPI's routing, validation and dependencies. The route kept that page
for exactly that query, so it accepted it then and answered 200; anything else (nothing kept,
another generation, a token, an error) goes on to the route, which makes and keeps the page.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.pagination import set_link_header
from app.datasets.generation import GENERATION
from app.factors.short_path import (
    RouteTemplate,
    ShortPathReader,
    Steps,
    anonymous_get,
    answered_by,
    chosen_reader,
    header,
    json_response,
    read_or_none,
)


@dataclass(frozen=True)
class KeptPage:
    generation: int
    body: bytes
    etag: str
    cache_control: str
    next_url: str | None


class SearchPageCache:
    """The most recently used `entries` pages (0: none), each with the generation it was made
    at; a page of an older generation is never served."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._pages: OrderedDict[str, KeptPage] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, generation: int) -> KeptPage | None:
        with self._lock:
            page = self._pages.get(key)
            if page is None:
                return None
            if page.generation != generation:
                if page.generation < generation:
                    del self._pages[key]
                # A newer page than the database asked (a replica behind the primary) is
                # kept: that database will catch up with it.
                return None
            self._pages.move_to_end(key)
            return page

    def holds(self, key: str) -> bool:
        """Whether a page of any generation is kept for `key` (no generation read needed to
        know that there is nothing to serve)."""
        return key in self._pages

    def put(self, key: str, page: KeptPage) -> None:
        if not self.entries:
            return
        with self._lock:
            kept = self._pages.get(key)
            if kept is not None and kept.generation > page.generation:
                return  # never an older page for a newer one (generations only go up)
            self._pages[key] = page
            self._pages.move_to_end(key)
            while len(self._pages) > self.entries:
                self._pages.popitem(last=False)


_create_lock = threading.Lock()


def search_page_cache(app: FastAPI) -> SearchPageCache:
    """The app's cache (one per worker), made on first use with `search_cache_entries`."""
    cache: SearchPageCache | None = getattr(app.state, "search_page_cache", None)
    if cache is None:
        with _create_lock:
            cache = getattr(app.state, "search_page_cache", None)
            if cache is None:
                cache = SearchPageCache(app.state.settings.search_cache_entries)
                app.state.search_page_cache = cache
    return cache


def page_key(request: Request) -> str:
    """What the page's bytes depend on in the request: its path and query, as sent (the
    `next` link is root-relative, so the host plays no part)."""
    return scope_page_key(request.scope)


def scope_page_key(scope: Scope) -> str:
    """`page_key` from the ASGI scope (the short path has no `Request`)."""
    return f"{scope['path']}?{scope['query_string'].decode('latin-1')}"


def make_page(
    generation: int, body: bytes, *, cache_control: str, next_url: str | None
) -> KeptPage:
    """A page's bytes with the strong ETag `app.core.http_cache.cached_json` gives them."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return KeptPage(generation, body, etag, cache_control, next_url)


def kept_response(request: Request, page: KeptPage) -> Response:
    """The page as `page_response` answers it: ETag, Cache-Control, Link; 304 on a match."""
    return _kept_response(request.headers.get("if-none-match"), page)


def _kept_response(if_none_match: str | None, page: KeptPage) -> Response:
    headers = {"ETag": page.etag, "Cache-Control": page.cache_control}
    response = json_response(if_none_match, page.body, page.etag, headers)
    set_link_header(response, page.next_url)
    return response


SEARCH_PATH = "/v1/factors"
_ROUTE = RouteTemplate(SEARCH_PATH)


def _generation_steps() -> Steps[int | None]:
    row = yield GENERATION, {}
    return None if row is None else row["generation"]


class SearchPageShortPath:
    """ASGI, innermost: an anonymous `GET /v1/factors` whose page is kept at the generation
    the request's database says now is answered with it here (module docstring); every
    middleware outside this one still applies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        page = None
        if scope["type"] == "http" and scope["path"] == SEARCH_PATH and anonymous_get(scope):
            page = await self._kept(scope)
        if page is None:
            await self.app(scope, receive, send)
            return
        response = _kept_response(header(scope, b"if-none-match"), page)
        await response(scope, receive, send)

    @staticmethod
    async def _kept(scope: Scope) -> KeptPage | None:
        cache = search_page_cache(scope["app"])
        key = scope_page_key(scope)
        if not cache.holds(key):
            return None
        reader = chosen_reader(scope, ShortPathReader)
        if reader is None:
            return None
        generation = await read_or_none(reader, _generation_steps())
        if generation is None:
            return None
        page = cache.get(key, generation)
        if page is not None:
            answered_by(scope, reader, _ROUTE)
        return page
