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

import httpx
import pytest
import uvicorn
from fastapi import FastAPI


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
    assert httpx.get(f"{url}/readyz").status_code == 200
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
