"""Test databases: every test runs on SQLite and on PostgreSQL, schema built by the migrations.

PostgreSQL is reached at EFDB_TEST_POSTGRES_URL (default: the local server at 127.0.0.1:5432).
Without it the PostgreSQL half skips with the reason, unless EFDB_REQUIRE_POSTGRES=1 (CI),
where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker
from app.core.migrations import upgrade_to_head
from app.datasets.seed import load_seed
from app.main import create_app
from app.models import Base
from app.reference.loader import load_reference_data
from app.reference.models import REFERENCE_TABLES

POSTGRES_ADMIN_URL = os.environ.get(
    "EFDB_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("EFDB_REQUIRE_POSTGRES") == "1"
BACKENDS = [b.strip() for b in os.environ.get("EFDB_TEST_BACKENDS", "sqlite,postgresql").split(",")]

# Auth fixtures: real clients and tokens (`tokens`, `writer_token`, `reviewer_token`, ...).
pytest_plugins = ["tests.auth_fixtures"]


def _postgres_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        reason = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc.orig}"
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _migrate(url: str) -> None:
    """Migrate to head and load the reference data, as `efdb db upgrade` does.

    Without the audit event `efdb db upgrade` records: each test's audit chain starts empty,
    as in a database before any reference load (tests/test_reference_data.py checks the event).
    """
    engine = make_engine(url)
    upgrade_to_head(engine)
    with make_sessionmaker(engine).begin() as session:
        load_reference_data(session, audit=False)
    engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per backend, migrated to head once per session.

    On SQLite it is a template file that each test copies; on PostgreSQL it is the database
    the tests share, emptied with TRUNCATE after each test (TRUNCATE does not fire the row
    triggers that keep published factors immutable).
    """
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'template.sqlite3'}"
        _migrate(url)
        yield url
    else:
        generator = _postgres_database("efdb_test")
        url = next(generator)
        _migrate(url)
        yield url
        next(generator, None)


@pytest.fixture
def database_url(migrated_database: str, tmp_path: Path) -> str:
    """A migrated, empty database for this test alone."""
    if not migrated_database.startswith("sqlite"):
        return migrated_database
    template = Path(make_url(migrated_database).database or "")
    copy = tmp_path / "efdb.sqlite3"
    shutil.copyfile(template, copy)
    return f"sqlite:///{copy}"


def empty_shared_database(engine: Engine) -> None:
    """Give the shared PostgreSQL database back empty, as the next test expects it (with its
    reference data, which only the reference loader writes)."""
    if engine.dialect.name == "postgresql":
        tables = ", ".join(
            t.name for t in Base.metadata.sorted_tables if t.name not in REFERENCE_TABLES
        )
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    empty_shared_database(engine)
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The migrated database of this test (an alias that reads well in test signatures)."""
    return engine


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    with make_sessionmaker(db)() as session:
        yield session


@pytest.fixture
def settings(database_url: str, tmp_path: Path, signing_key_file: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        export_dir=tmp_path / "exports",
        signing_key=signing_key_file,
        generated_signing_key=tmp_path / "var" / "signing-key.pem",
    )


@pytest.fixture
def app(db: Engine, settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def seeded(db: Engine, settings: Settings) -> None:
    """The real, cited seed datasets, published."""
    with make_sessionmaker(db).begin() as session:
        load_seed(session, settings.seed_dir)


@pytest.fixture
def backend(database_url: str) -> str:
    return make_url(database_url).get_backend_name()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`efdb serve` in a child process, as an operator runs it; its log goes to a file."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
        self.env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        self.env.update(env or {})
        self.log = cwd / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> str:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"efdb serve exited: {self.log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return self.base
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"efdb serve was not ready in {timeout:g} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no rollback from the process itself."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`efdb serve` exactly as the README runs it: no configuration, a fresh directory."""
    server = ServerProcess(tmp_path)
    try:
        yield server.start()
    finally:
        server.stop()
