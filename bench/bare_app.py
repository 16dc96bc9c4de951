"""The baseline of the read-API benchmark: a bare FastAPI app whose endpoints return a constant.

Served by `bench.read_api` exactly like the real app (`python -m uvicorn ... --factory`, one
worker, no access log), so that the ratio of the two throughputs measures what efdb adds on
top of FastAPI, uvicorn and the loopback network, on the same machine at the same moment.

`/const` is a plain `def` endpoint like efdb's own read endpoints (FastAPI runs it in the
thread pool); `/const-async` is an `async def` one, reported for information only.
"""

from __future__ import annotations

from fastapi import FastAPI

CONSTANT = {"status": "ok"}


def create_app() -> FastAPI:
    app = FastAPI(title="efdb-bench-baseline")

    @app.get("/const")
    def constant() -> dict[str, str]:
        return CONSTANT

    @app.get("/const-async")
    async def constant_async() -> dict[str, str]:
        return CONSTANT

    return app
