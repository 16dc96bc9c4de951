"""An app served by a real uvicorn in a thread of the test process.

Unlike Starlette's TestClient, which returns only once the whole ASGI call has finished, a real
server sends the response's bytes as soon as they are written: what a client sees here is what a
client of `efdb serve` sees, including anything that still runs after the answer went out.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

# httpx builds a verifying TLS context (certifi's bundle parsed, ~20 ms of CPU) for every new
# client, module-level `httpx.get` included; polling loops paid it every tenth of a second while
# the server they waited for started on the same cores. The servers here speak plain HTTP on
# loopback, so one context serves every client the tests make for them.
LOOPBACK_TLS = httpx.create_ssl_context()


def share_the_default_tls_context() -> None:
    """Every client the test process makes with httpx's defaults (`httpx.get`, authlib's
    OAuth2Client, the webhook worker run in process…) gets one verifying context, made once,
    with the very settings httpx would make it with."""
    transports: Any = httpx._transports.default
    made = transports.create_ssl_context
    if getattr(made, "efdb_shared", False):
        return
    default = made(verify=True, cert=None, trust_env=True)

    def create(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is True and cert is None and trust_env:
            return default
        return made(verify=verify, cert=cert, trust_env=trust_env)

    create.efdb_shared = True  # type: ignore[attr-defined]
    transports.create_ssl_context = create


def loopback_client(**options: Any) -> httpx.Client:
    """An httpx client for the tests' own servers (plain HTTP on loopback)."""
    return httpx.Client(verify=LOOPBACK_TLS, **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own handlers
        pass


@contextmanager
def serve_in_thread(app: FastAPI, *, timeout: float = 30, port: int | None = None) -> Iterator[str]:
    """Serve `app` on `port` (default: a free loopback port); yields its base URL, stops the
    server on exit."""
    port = port or free_port()
    server = _ThreadedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the live server did not start")
        time.sleep(0.05)
    with loopback_client() as http:
        assert http.get(f"{url}/readyz").status_code == 200
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
