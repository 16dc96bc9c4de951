"""Cross-origin requests (CORS) from browser-based tools.

Reads (`GET`, `HEAD` and the read-only queries `POST /v1/factors:resolve`, `/v1/estimate`,
`/v1/estimate:batch`, `/v1/citations:verify`) are allowed from the origins in
`EFDB_CORS_ORIGINS` (`["*"]`: any origin); everything else (uploads, workflow, webhooks, the
token endpoint) only from the origins in `EFDB_CORS_WRITE_ORIGINS`, which must be named one by
one. Both default to none: no cross-origin access at all.

An allowed preflight (`OPTIONS` with `Access-Control-Request-Method`) answers 204 with the
methods and headers a tool needs (`Authorization` among them: no cookies are ever involved,
so credentials mode is never allowed); a refused one answers 403 problem+json without any
CORS header, so the browser never sends the request. An allowed request's answer carries
`Access-Control-Allow-Origin` and exposes `ETag`, `Link`, `Retry-After`, `X-Request-ID` and
the like; a refused one carries none, so the browser keeps its answer from the page.
Requests from the service's own origin (the web explorer's forms) are not cross-origin.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import problem_response
from app.core.limits import BATCH_PATHS

READ_METHODS = frozenset({"GET", "HEAD"})
READ_ONLY_POSTS = BATCH_PATHS | {"/v1/estimate"}
ALLOW_HEADERS = (
    "Authorization, Content-Type, Accept, Accept-Language, If-None-Match, If-Modified-Since, "
    "X-Request-ID"
)
EXPOSE_HEADERS = (
    "ETag, Link, Location, Retry-After, X-Request-ID, Content-Disposition, Content-Language, "
    "Deprecation, Sunset"
)
READ_METHODS_ALLOWED = "GET, HEAD, POST"
ALL_METHODS_ALLOWED = "GET, HEAD, POST, PUT, PATCH, DELETE"
PREFLIGHT_MAX_AGE = "600"


def is_read(method: str, path: str) -> bool:
    return method in READ_METHODS or (method == "POST" and path in READ_ONLY_POSTS)


class CrossOrigin:
    def __init__(self, app: ASGIApp, *, read_origins: list[str], write_origins: list[str]) -> None:
        self.app = app
        self.any_reader = "*" in read_origins
        self.read_origins = frozenset(read_origins) - {"*"}
        self.write_origins = frozenset(write_origins)

    def _allowed(self, origin: str, method: str, path: str) -> bool:
        if origin in self.write_origins:
            return True
        return is_read(method, path) and (self.any_reader or origin in self.read_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or _same_origin(origin, headers.get("host")):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        requested = headers.get("access-control-request-method")
        if scope["method"] == "OPTIONS" and requested is not None:
            await self._preflight(origin, requested.upper(), path, scope, receive, send)
            return
        if not self._allowed(origin, scope["method"], path):
            await self.app(scope, receive, _vary_origin(send))
            return

        async def send_allowed(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(scope=message)
                answer["Access-Control-Allow-Origin"] = origin
                answer["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                answer.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_allowed)

    async def _preflight(
        self, origin: str, method: str, path: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if not self._allowed(origin, method, path):
            refused = problem_response(
                status=403,
                code="cross-origin-refused",
                title="Cross-origin request refused",
                detail=f"{method} {path} is not allowed from the origin {origin} "
                "(EFDB_CORS_ORIGINS for reads, EFDB_CORS_WRITE_ORIGINS for writes)",
                instance=path,
            )
            refused.headers.add_vary_header("Origin")
            await refused(scope, receive, send)
            return
        methods = ALL_METHODS_ALLOWED if origin in self.write_origins else READ_METHODS_ALLOWED
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-methods", methods.encode()),
                    (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                    (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
                    (b"vary", b"Origin"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _same_origin(origin: str, host: str | None) -> bool:
    """The page making the request was served by this service (same host and port)."""
    _, _, rest = origin.partition("://")
    return host is not None and rest.lower() == host.lower()


def _vary_origin(send: Send) -> Send:
    async def send_varying(message: Message) -> None:
        if message["type"] == "http.response.start":
            MutableHeaders(scope=message).add_vary_header("Origin")
        await send(message)

    return send_varying
