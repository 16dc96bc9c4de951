"""The FastAPI application: one router per domain, one error format, one engine."""

from __future__ import annotations

from fastapi import FastAPI

from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_sessionmaker
from app.core.errors import install_error_handlers
from app.datasets.router import router as datasets_router
from app.factors.router import router as factors_router
from app.ops.router import router as ops_router

API_DESCRIPTION = """\
The national background emission-factor database: versioned, cited, licensed emission
factors for product carbon footprints. Every error is RFC 9457 `application/problem+json`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="efdb",
        version="1.0.0",
        description=API_DESCRIPTION,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
    )
    engine = make_engine(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    install_error_handlers(app)
    app.include_router(ops_router)
    app.include_router(factors_router)
    app.include_router(datasets_router)
    return app
