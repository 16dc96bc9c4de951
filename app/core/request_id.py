"""`X-Request-ID`: every answer carries one, and every log line written while a request is
handled names it.

A client's own id is kept when it is 1–128 characters of `A-Z a-z 0-9 . _ ~ : / + = -` (so it
can go into a log line or a header as it is); otherwise (absent, too long, anything else) the
service makes one (32 hex digits). The id is in a context variable for the request's task;
`RequestIdFilter` puts it on log records as `request_id` (`-` outside a request); the log
configuration itself is in `app.core.logs`.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._~:/+=-]{1,128}")
NO_REQUEST = "-"
current_request_id: ContextVar[str] = ContextVar("efdb_request_id", default=NO_REQUEST)


def accepted_request_id(value: str | None) -> str | None:
    """The client's id if it is one the service repeats, else None."""
    if value is not None and _VALID.fullmatch(value):
        return value
    return None


class RequestID:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name.lower() == b"x-request-id"
            ),
            None,
        )
        request_id = accepted_request_id(given) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = current_request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (the handled request's, or `-`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True
