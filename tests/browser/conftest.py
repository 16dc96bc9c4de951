"""Browser tests: Debian's chromium driven by Playwright, against a live `efdb` server.

The browser is the system's (`EFDB_CHROMIUM`, default `/usr/bin/chromium`), handed to
pytest-playwright through `executable_path`; no browser is ever downloaded. Without chromium
these tests skip with the reason, unless EFDB_REQUIRE_BROWSER=1 (CI), where they fail.

Each test module gets one live server, on a database that holds the real seed data (and
whatever the module's own fixtures publish through the service functions). They run on the
first backend only (SQLite, what `make serve` runs): what a browser adds (rendering, fonts,
keyboard, scripts, downloads) does not depend on the database, and every page these tests open
is also requested over HTTP on both backends by tests/test_web_*.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine, make_url

from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker
from app.main import create_app
from app.publishing.seed import load_seed
from tests.conftest import _migrate, _postgres_database
from tests.live_server import free_port, serve_in_thread

CHROMIUM = Path(os.environ.get("EFDB_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("EFDB_REQUIRE_BROWSER") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.dialect_neutral)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch arguments, pointed at the system chromium."""
    if not CHROMIUM.exists():
        reason = (
            f"no chromium at {CHROMIUM} (Debian: apt-get install chromium fonts-wqy-microhei; "
            "or set EFDB_CHROMIUM)"
        )
        if REQUIRE_BROWSER:
            pytest.fail(reason)
        pytest.skip(reason)
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    # Downloads are read back by the tests; the viewport fits a laptop.
    return {
        **browser_context_args,
        "accept_downloads": True,
        "viewport": {"width": 1280, "height": 900},
    }


@dataclass
class Site:
    """A live server and the database behind it."""

    url: str
    engine: Engine
    settings: Settings


@pytest.fixture(scope="module")
def site(
    migrated_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    signing_key_file: Path,
) -> Iterator[Site]:
    """`efdb`'s app served by uvicorn on a free port, over the seeded database of one backend."""
    workdir = tmp_path_factory.mktemp("site")
    if migrated_database.startswith("sqlite"):
        copy = workdir / "efdb.sqlite3"
        shutil.copyfile(make_url(migrated_database).database or "", copy)
        database_url = f"sqlite:///{copy}"
        database = None
    else:
        # Its own database: under pytest-xdist, another module's tests may run on this worker
        # (and empty the shared one) while this module's server is up.
        database = _postgres_database("efdb_site")
        database_url = next(database)
        _migrate(database_url)
    port = free_port()
    settings = Settings(
        environment="test",
        # As an operator would: the pages' absolute links (citations, snippets) name the URL
        # the browser reaches, not the default issuer.
        public_base_url=f"http://127.0.0.1:{port}",
        database_url=database_url,
        export_dir=workdir / "exports",
        signing_key=signing_key_file,
        generated_signing_key=workdir / "var" / "signing-key.pem",
    )
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        load_seed(session, settings.seed_dir)
    app = create_app(settings)
    try:
        with serve_in_thread(app, port=port) as url:
            yield Site(url=url, engine=engine, settings=settings)
    finally:
        app.state.engine.dispose()
        engine.dispose()
        if database is not None:
            next(database, None)
