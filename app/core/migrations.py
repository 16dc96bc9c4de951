"""Run and inspect Alembic migrations from code (CLI, readiness probe, tests)."""

from __future__ import annotations

from functools import cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from app.core.config import shipped_path


def alembic_config(database_url: str) -> Config:
    config = Config(str(shipped_path("alembic.ini")))
    config.set_main_option("script_location", str(shipped_path("migrations")))
    # ConfigParser interpolation would choke on a literal '%' in a password.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(engine: Engine) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@cache
def head_revision() -> str | None:
    """The newest shipped migration. Read once per process: the scripts ship with the code,
    and loading them made ~20,000 objects of cyclic garbage at every readiness probe."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


# Search structures the models cannot declare: SQLite's FTS5 table (and its shadow tables)
# and PostgreSQL's pg_trgm GIN indexes (migration 20261125_0003).
def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic `include_object` hook: leave the text-search structures out of comparisons."""
    if name is None:
        return True
    if type_ == "table" and name.startswith("factor_fts"):
        return False
    return not (type_ == "index" and name.endswith("_trgm"))
