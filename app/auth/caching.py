"""Responses to requests with credentials must not land in shared caches.

RFC 9111 §3.5 lets a shared cache (CDN, proxy) store a response to a request that carried
`Authorization` when the response says `Cache-Control: public`. Routes mark releases `public`
because anonymous readers see the same bytes; but with a token a reader may see a registered
dataset, which a CDN would then hand to everyone. So whenever the request carried
`Authorization`, `public` becomes `private` (other directives kept) and `Vary: Authorization`
is added. Anonymous responses are untouched.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def privatize(cache_control: str) -> str:
    directives = [part.strip() for part in cache_control.split(",") if part.strip()]
    kept = [d for d in directives if d.lower() not in {"public", "private"}]
    return ", ".join(["private", *kept])


class PrivateWhenAuthorized:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or b"authorization" not in dict(scope["headers"]):
            await self.app(scope, receive, send)
            return

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                cache_control = headers.get("cache-control")
                if cache_control and "public" in cache_control.lower():
                    headers["cache-control"] = privatize(cache_control)
                headers.add_vary_header("Authorization")
            await send(message)

        await self.app(scope, receive, send_private)
