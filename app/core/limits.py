"""Request body size caps, per route, enforced while the body streams in (chunked included).

An upload (multipart, `POST /v1/datasets/{p}/{d}/versions`) may be as large as
`EFDB_MAX_UPLOAD_MB`; a batch (resolve, estimate:batch) `EFDB_MAX_BATCH_JSON_KB`; any other body
`EFDB_MAX_JSON_KB`. The cap is known from the path alone, so it applies before anything buffers
or parses the body.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import problem_response, scope_language
from app.core.problem_text import Message as ProblemMessage


class BodyTooLarge(HTTPException):
    """An HTTPException so that FastAPI's body parsing lets it through as a 413."""

    def __init__(self, max_bytes: int) -> None:
        size = f"{max_bytes / 1048576:g} MB" if max_bytes >= 1048576 else f"{max_bytes / 1024:g} KB"
        super().__init__(
            status_code=413,
            detail=ProblemMessage("bounds.body_too_large", size=size),
            headers={"Connection": "close"},
        )


# The routes whose bodies are not small JSON (also what `app.core.bounds` counts as expensive).
UPLOAD_PATH = re.compile(r"^/v1/datasets/[^/]+/[^/]+/versions/?$")
BATCH_PATHS = frozenset({"/v1/factors:resolve", "/v1/estimate:batch", "/v1/citations:verify"})


def body_cap_name(method: str, path: str) -> str:
    """Which cap a request's body falls under: `upload`, `batch` or `json`."""
    if method == "POST" and UPLOAD_PATH.match(path):
        return "upload"
    return "batch" if path in BATCH_PATHS else "json"


def route_body_cap(
    *, upload_bytes: int, batch_bytes: int, json_bytes: int
) -> Callable[[str, str], int]:
    """The body cap of a request, from its method and path."""

    def cap(method: str, path: str) -> int:
        if method == "POST" and UPLOAD_PATH.match(path):
            return upload_bytes
        if path in BATCH_PATHS:
            return batch_bytes
        return json_bytes

    return cap


class BodySizeLimit:
    """Answer 413 as soon as a body is known to exceed the cap, without reading the rest."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        cap_for: Callable[[str, str], int] | None = None,
        on_refuse: Callable[[str, str], None] | None = None,
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.cap_for = cap_for
        # Told (method, path) of each refusal: the metrics count them.
        self.on_refuse = on_refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = (
            self.cap_for(scope["method"], scope["path"])
            if self.cap_for is not None
            else self.default_max_bytes
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._refuse(scope, receive, send, max_bytes)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._refuse(scope, receive, send, max_bytes)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        if self.on_refuse is not None:
            self.on_refuse(scope["method"], scope["path"])
        refusal = BodyTooLarge(max_bytes)
        response = problem_response(
            status=413,
            code="payload-too-large",
            title="Payload too large",
            detail=refusal.detail,
            instance=scope.get("path"),
            lang=scope_language(scope),
            headers=dict(refusal.headers or {}),
        )
        await response(scope, receive, send)
