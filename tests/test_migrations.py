"""The migrations are the schema: they build it on both databases and agree with the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from app.core.db import make_engine
from app.core.migrations import (
    alembic_config,
    current_revision,
    head_revision,
    include_object,
    upgrade_to_head,
)
from app.models import Base
from tests.conftest import _postgres_database


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include_object}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_database_is_at_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()


def test_the_readiness_probe_reads_the_migration_scripts_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    head_revision.cache_clear()
    loads: list[object] = []
    load = ScriptDirectory.from_config

    def counted(config: object) -> ScriptDirectory:
        loads.append(config)
        return load(config)  # type: ignore[arg-type]

    monkeypatch.setattr(ScriptDirectory, "from_config", counted)
    for _ in range(3):
        assert client.get("/readyz").json()["head"] == head_revision()
    assert len(loads) == 1


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    else:
        yield from _postgres_database("efdb_migrations")


def test_migrations_are_reversible(fresh_url: str) -> None:
    engine = make_engine(fresh_url)
    try:
        upgrade_to_head(engine)
        assert "factor" in inspect(engine).get_table_names()
        config = alembic_config(fresh_url)
        command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade_to_head(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
