"""Test databases: every test runs on SQLite and on PostgreSQL, schema built by the migrations,
except those marked `dialect_neutral` (what they check is decided above the database: token
claims, headers, the language of a problem, what a browser renders), which run on SQLite only.

PostgreSQL is reached at EFDB_TEST_POSTGRES_URL (default: the local server at 127.0.0.1:5432).
Without it the PostgreSQL half skips with the reason, unless EFDB_REQUIRE_POSTGRES=1 (CI),
where it fails.

Every test commits for real: the app's request sessions, `make_sessionmaker(db)`, `db.begin()`,
a CLI run in-process and an `efdb serve` child process all see the same committed database, so
no test needs to ask for real commits (there is no per-test outer transaction to opt out of).
Each test gets its database empty (reference data only) or, when it asks for `seeded`, with
the seed published; the seed is loaded once per backend and copied (a seeded SQLite template
file; on PostgreSQL the seeded rows kept in schema `efdb_test_seed`). After a test the shared
PostgreSQL database is emptied with DELETE, triggers off, in a few milliseconds.

`make test` runs the suite on pytest-xdist workers; each worker has its own databases.
A fixture that keeps a server up across tests (tests/browser) uses a database of its own.
"""

from __future__ import annotations

import contextlib
import io
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
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.cli import main as cli_main
from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_sessionmaker
from app.core.migrations import upgrade_to_head
from app.main import create_app, release_connections
from app.models import Base
from app.publishing.seed import load_seed
from app.reference.loader import load_reference_data
from app.reference.models import REFERENCE_TABLES
from app.signing.keys import generate_pem as generate_release_pem
from app.signing.keys import write_key
from tests import route_analysis
from tests.forked_efdb import ForkedEfdb
from tests.live_server import loopback_client, share_the_default_tls_context

POSTGRES_ADMIN_URL = os.environ.get(
    "EFDB_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("EFDB_REQUIRE_POSTGRES") == "1"
BACKENDS = [b.strip() for b in os.environ.get("EFDB_TEST_BACKENDS", "sqlite,postgresql").split(",")]

# scrypt's N for the suite's clients (production: 2**14).
TEST_SECRET_HASH_COST = 16

route_analysis.install()
share_the_default_tls_context()

# Auth fixtures: real clients and tokens (`tokens`, `writer_token`, `reviewer_token`, ...).
pytest_plugins = ["tests.auth_fixtures"]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Within each backend's run of tests (pytest groups them so that each backend's session
    database is set up once), the slow tests go first: on pytest-xdist workers a 30-second
    test that comes last keeps one worker busy while the other has nothing left to do.

    A test marked `dialect_neutral` (what it checks happens above the database, as metrics
    summed across server workers) runs on the first backend only; one marked `postgresql_only`
    (a streaming replica) on PostgreSQL only.
    """
    backends = {backend: rank for rank, backend in enumerate(BACKENDS)}

    def backend_rank(item: pytest.Item) -> int:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("migrated_database") if callspec is not None else None
        return backends.get(backend, -1) if isinstance(backend, str) else -1

    postgresql = backends.get("postgresql", -2)
    repeated = [
        item
        for item in items
        if (item.get_closest_marker("dialect_neutral") is not None and backend_rank(item) > 0)
        or (
            item.get_closest_marker("postgresql_only") is not None
            and backend_rank(item) not in (-1, postgresql)
        )
    ]
    if repeated:
        config.hook.pytest_deselected(items=repeated)
        items[:] = [item for item in items if item not in repeated]

    positions = {id(item): position for position, item in enumerate(items)}
    # Backends stay in pytest's order (the grouping is already contiguous); only the slow
    # tests of each group move to its front.
    first: dict[int, int] = {}
    for item in items:
        first.setdefault(backend_rank(item), positions[id(item)])
    items.sort(
        key=lambda item: (
            first[backend_rank(item)],
            item.get_closest_marker("slow") is None,
            positions[id(item)],
        )
    )


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    route_analysis.forget_apps()


def _postgres_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            # A commit waits for its WAL flush only to survive a crash of PostgreSQL itself,
            # which no test causes (the kill tests kill efdb, not the database); not waiting
            # makes each commit ~10 ms cheaper on this disk.
            connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
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


# The tables the tests write (reference tables are loaded once by the migration fixture).
CLEANED_TABLES = [t.name for t in Base.metadata.sorted_tables if t.name not in REFERENCE_TABLES]
# PostgreSQL refuses TRUNCATE of these (a statement trigger).
NO_TRUNCATE_TABLES = ("audit_event", "factor", "dataset_version")
# PostgreSQL: a copy of the seeded tables, in this schema of the shared test database.
SEED_SCHEMA = "efdb_test_seed"
# SQLite: migrated template -> seeded template; and the per-test copies made from the latter.
_SEEDED_TEMPLATES: dict[str, str] = {}
_SEEDED_COPIES: set[str] = set()


def _load_seed(url: str) -> None:
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        load_seed(session, Settings().seed_dir)
    engine.dispose()


def _snapshot_seed(url: str) -> None:
    """Seed the shared PostgreSQL database once, copy its rows aside, and empty it again."""
    _load_seed(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{SEED_SCHEMA}"'))
        for table in CLEANED_TABLES:
            connection.execute(
                text(f'CREATE TABLE "{SEED_SCHEMA}"."{table}" AS SELECT * FROM "{table}"')
            )
    empty_shared_database(engine)
    engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per backend (and per xdist worker), migrated to head once per session.

    On SQLite it is a template file that each test copies (a second template, seeded, serves
    the tests that ask for `seeded`). On PostgreSQL it is the database the tests share, emptied
    after each test by `empty_shared_database`.
    """
    if request.param == "sqlite":
        directory = tmp_path_factory.mktemp("sqlite")
        url = f"sqlite:///{directory / 'template.sqlite3'}"
        _migrate(url)
        shutil.copyfile(directory / "template.sqlite3", directory / "seeded.sqlite3")
        seeded_url = f"sqlite:///{directory / 'seeded.sqlite3'}"
        _load_seed(seeded_url)
        _SEEDED_TEMPLATES[url] = seeded_url
        yield url
        _dispose_shared_engines(_sqlite_working_url(url))
    else:
        generator = _postgres_database("efdb_test")
        url = next(generator)
        _migrate(url)
        _snapshot_seed(url)
        yield url
        _dispose_shared_engines(url)
        next(generator, None)


def _sqlite_working_url(template_url: str) -> str:
    """Where this worker's SQLite tests find their database: one path, a fresh copy of a
    template for each test, so that the engines over it can outlive the test."""
    template = Path(make_url(template_url).database or "")
    return f"sqlite:///{template.with_name('test.sqlite3')}"


@pytest.fixture
def database_url(migrated_database: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database for this test alone: empty, or seeded when the test asks for
    `seeded` (on SQLite a copy of the seeded template; see `seeded` for PostgreSQL)."""
    if not migrated_database.startswith("sqlite"):
        yield migrated_database
        return
    source = migrated_database
    if "seeded" in request.fixturenames:
        source = _SEEDED_TEMPLATES[migrated_database]
    url = _sqlite_working_url(migrated_database)
    path = Path(make_url(url).database or "")
    # The previous test's engines are closed (below); a server it started is stopped.
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(make_url(source).database or "", path)
    if source != migrated_database:
        _SEEDED_COPIES.add(url)
    else:
        _SEEDED_COPIES.discard(url)
    yield url
    # Closed before the next test's copy replaces the file; compiled statements stay.
    for engine in _SHARED_ENGINES.get(url, {}).values():
        engine.dispose()


_SEQUENCES: dict[str, list[tuple[str, str, str]]] = {}


def _sequences(connection: Connection) -> list[tuple[str, str, str]]:
    """(table, column, sequence) of the cleaned tables' id sequences, looked up once."""
    key = str(connection.engine.url)
    if key not in _SEQUENCES:
        rows = connection.execute(
            text(
                "SELECT table_name, column_name, seq FROM ("
                " SELECT table_name, column_name,"
                "  pg_get_serial_sequence(quote_ident(table_name), column_name) AS seq"
                " FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = ANY(:tables)"
                ") AS c WHERE seq IS NOT NULL"
            ),
            {"tables": CLEANED_TABLES},
        )
        _SEQUENCES[key] = [(row[0], row[1], row[2]) for row in rows]
    return _SEQUENCES[key]


def empty_shared_database(engine: Engine) -> None:
    """Give the shared PostgreSQL database back empty, as the next test expects it (with its
    reference data, which only the reference loader writes), ids starting again at 1.

    DELETE with triggers off (`session_replication_role = replica`: neither the immutability
    triggers nor the foreign-key checks fire) costs a few ms on the small tables a test
    leaves; TRUNCATE costs 100-250 ms, most of the old suite's PostgreSQL time.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        if not _superuser(connection):  # only a superuser may turn triggers off
            # The tables' owner may turn their triggers off (TRUNCATE of the factor, version
            # and audit tables is refused by a trigger, migration 20261205_0301).
            tables = ", ".join(f'"{table}"' for table in CLEANED_TABLES)
            guarded = [f'"{table}"' for table in NO_TRUNCATE_TABLES]
            for table in guarded:
                connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            for table in guarded:
                connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
            return
        statements = ["SET LOCAL session_replication_role = replica"]
        statements += [f'DELETE FROM "{table}"' for table in reversed(CLEANED_TABLES)]
        statements += [
            f"SELECT setval('{sequence}', 1, false)" for _, _, sequence in _sequences(connection)
        ]
        connection.exec_driver_sql("; ".join(statements))


def _superuser(connection: Connection) -> bool:
    return bool(connection.exec_driver_sql("SHOW is_superuser").scalar_one() == "on")


def _restore_seed(engine: Engine) -> bool:
    """Copy the seeded rows back from SEED_SCHEMA (ids and audit chain as `load_seed` made
    them), in milliseconds instead of a seed load; False if this role may not do that."""
    with engine.begin() as connection:
        if not _superuser(connection):
            return False
        statements = ["SET LOCAL session_replication_role = replica"]
        statements += [
            f'INSERT INTO "{table}" SELECT * FROM "{SEED_SCHEMA}"."{table}"'
            for table in CLEANED_TABLES
        ]
        statements += [
            f"SELECT setval('{sequence}', COALESCE((SELECT MAX(\"{column}\") FROM "
            f'"{table}"), 0) + 1, false)'
            for table, column, sequence in _sequences(connection)
        ]
        connection.exec_driver_sql("; ".join(statements))
    return True


def _is_empty(engine: Engine) -> bool:
    union = " UNION ALL ".join(f'SELECT 1 FROM "{table}"' for table in CLEANED_TABLES)
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT NOT EXISTS ({union})")).scalar_one() is True


# The engines over each worker's test database, kept across tests: the tests' own (`engine`)
# and the applications' (`app`). A fresh engine per test compiled every statement again
# (SQLAlchemy keeps compiled statements per engine: 5 % of the suite's CPU) and, on
# PostgreSQL, opened new server backends, which read the catalogue again (~8 ms of CPU per
# test between server and client). SQLite's are closed after each test (`database_url`).
_SHARED_ENGINES: dict[str, dict[str, Engine]] = {}


def _shared_engine(url: str, role: str, **options: int) -> Engine:
    engines = _SHARED_ENGINES.setdefault(url, {})
    if role not in engines:
        engines[role] = make_engine(url, **options)
    return engines[role]


def _dispose_shared_engines(url: str) -> None:
    for engine in _SHARED_ENGINES.pop(url, {}).values():
        engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    if database_url.startswith("sqlite"):
        yield _shared_engine(database_url, "tests")
        return
    engine = _shared_engine(database_url, "tests", pool_size=2, max_overflow=8)
    yield engine
    empty_shared_database(engine)


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The migrated database of this test (an alias that reads well in test signatures)."""
    return engine


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    with make_sessionmaker(db)() as session:
        yield session


@pytest.fixture
def release_key_file(tmp_path: Path) -> Path:
    """This test's release signing key (ES256: generated in a millisecond)."""
    path = tmp_path / "keys" / "release-signing-key.pem"
    write_key(path, generate_release_pem(), replace=False)
    return path


@pytest.fixture
def settings(
    database_url: str, tmp_path: Path, signing_key_file: Path, release_key_file: Path
) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        export_dir=tmp_path / "exports",
        signing_key=signing_key_file,
        generated_signing_key=tmp_path / "var" / "signing-key.pem",
        release_signing_key=release_key_file,
        # A cheap scrypt for the clients the suite creates (production refuses it;
        # tests/test_auth_tokens.py pins the production parameters).
        secret_hash_cost=TEST_SECRET_HASH_COST,
        # A snapshot's openLCA and ILCD packages cost a second or two per snapshot of the
        # seed: only the tests about them ask for them (tests/test_exports.py, …).
        snapshot_packages_max_rows=0,
    )


@pytest.fixture
def app(db: Engine, database_url: str, settings: Settings) -> Iterator[FastAPI]:
    if settings.database_url != database_url:  # a test's settings name another database
        application = create_app(settings)
        yield application
        application.state.engine.dispose()
        return
    # An engine of the application's own (the production pool), kept for the next test's.
    application = create_app(settings, engine=_shared_engine(database_url, "app"))
    yield application
    release_connections(application)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def seeded(db: Engine, database_url: str, settings: Settings) -> None:
    """The real, cited seed datasets, published (by `load_seed`, once per backend: SQLite
    tests get a copy of a seeded template, PostgreSQL tests get its rows copied back)."""
    if database_url in _SEEDED_COPIES:
        return
    if db.dialect.name == "postgresql" and _is_empty(db) and _restore_seed(db):
        return
    # Something was written before the seed (or a test asked for `seeded` late): load it.
    with make_sessionmaker(db).begin() as session:
        load_seed(session, settings.seed_dir)


@pytest.fixture
def backend(database_url: str) -> str:
    return make_url(database_url).get_backend_name()


def run_efdb_in_process(
    *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`efdb ARGS` run by `app.cli.main` in this process, as a child process would see it: the
    `EFDB_*` variables of `env` only, `cwd` as working directory, stdout and stderr captured.

    Seconds faster than a child process (no interpreter start, no imports); the few true
    end-to-end tests (`served`, `ServerProcess`, a failing `python -m app.cli`) still start one.
    """
    saved_environ = dict(os.environ)
    saved_cwd = Path.cwd()
    stdout, stderr = io.StringIO(), io.StringIO()
    for name in [name for name in os.environ if name.startswith("EFDB_")]:
        del os.environ[name]
    os.environ.update({k: v for k, v in env.items() if k.startswith("EFDB_")})
    # The curated seed only, unless a test asks for the full one (test speed: the full seed
    # imports DESNZ 2022-2025 and takes tens of seconds; tests/test_seed_full.py runs it once).
    os.environ.setdefault("EFDB_SEED_SCOPE", "core")
    if os.environ.get("EFDB_ENVIRONMENT") != "production":  # which refuses it
        # The suite's cheap scrypt for the clients a command creates (see `settings`).
        os.environ.setdefault("EFDB_SECRET_HASH_COST", str(TEST_SECRET_HASH_COST))
    get_settings.cache_clear()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = cli_main(list(args))
            except SystemExit as exit_:  # argparse: --help (0), a usage error (2)
                code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)
        get_settings.cache_clear()
    return subprocess.CompletedProcess(
        ["efdb", *args], code, stdout=stdout.getvalue(), stderr=stderr.getvalue()
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`efdb serve` in a process of its own, as an operator runs it; its log goes to a file.

    The process is forked from an interpreter that has imported efdb (`tests.forked_efdb`)
    unless `fresh_interpreter` (or `--workers`) asks for `python -m app.cli`."""

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        *,
        fresh_interpreter: bool = False,
    ) -> None:
        """`fresh_interpreter`: start `python -m app.cli` (its imports included) rather than
        fork it from an interpreter that has imported efdb (`tests.forked_efdb`)."""
        self.cwd = cwd
        # uvicorn's worker processes are spawned interpreters, which a forked server cannot start.
        self.fresh_interpreter = fresh_interpreter or "--workers" in args
        self.args = args
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
        self.env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        self.env["EFDB_SEED_SCOPE"] = "core"  # as in run_efdb_in_process
        self.env.update(env or {})
        if self.env.get("EFDB_ENVIRONMENT") != "production":
            self.env.setdefault("EFDB_SECRET_HASH_COST", str(TEST_SECRET_HASH_COST))  # `settings`
        self.log = cwd / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | ForkedEfdb | None = None

    def start(self, timeout: float = 120) -> str:
        argv = ["serve", "--port", str(self.port), *self.args]
        if self.fresh_interpreter:
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "app.cli", *argv],
                    cwd=self.cwd,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        else:
            self.process = ForkedEfdb(argv, env=self.env, cwd=self.cwd, log=self.log)
        deadline = time.monotonic() + timeout
        with loopback_client(timeout=1) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"efdb serve exited: {self.log.read_text(errors='replace')}")
                try:
                    if http.get(f"{self.base}/readyz").status_code == 200:
                        return self.base
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
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


@pytest.fixture(scope="session")
def served_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory `served` runs in: its `var/efdb.sqlite3`, and where the README's CLI
    commands run to reach the same database."""
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="session")
def served(served_dir: Path) -> Iterator[str]:
    """`efdb serve` exactly as the README runs it: no configuration, a fresh directory.

    One per test worker: its first start (migrate, load the seed) is the README's Quick start,
    which every test using it checks from its own angle; none of them needs it fresh. (A
    snapshot one test creates is only ever read back by its id.)
    """
    server = ServerProcess(served_dir, fresh_interpreter=True)
    try:
        yield server.start()
    finally:
        server.stop()
