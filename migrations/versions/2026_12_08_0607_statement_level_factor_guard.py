"""PostgreSQL: the guard of released factors checks each statement's rows once, not each row.

Migration 20261125_0002 refused any INSERT, UPDATE or DELETE touching a factor of a released
version with a row-level trigger: one PL/pgSQL call and one query on `dataset_version` per
row, which a draft's upload (a million rows through COPY) paid a million times. The same
rule now runs once per statement, after it, on the statement's transition tables (the rows
it inserted, the rows it deleted, both images of the rows it updated): the distinct versions
they belong to are looked up once, and any released one aborts the statement with the same
error, so that no row of it is written. What is refused is unchanged: every INSERT into,
UPDATE of and DELETE from a released version's factors, and moving factors into one.

SQLite has no statement-level triggers: its row-level ones stay (an upload there goes
through executemany, whose per-row cost the trigger adds little to).

Revision ID: 20261208_0607
Revises: 20261207_0511
Create Date: 2026-12-08 06:07:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261208_0607"
down_revision: str | None = "20261207_0511"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RELEASED = "('published', 'deprecated', 'withdrawn')"


def _released_among(rows: str) -> str:
    """The first released version among the versions of a transition table's rows."""
    return (
        f"SELECT id FROM dataset_version WHERE status IN {RELEASED} "
        f"AND id IN (SELECT DISTINCT version_id FROM {rows}) ORDER BY id LIMIT 1"
    )


POSTGRES_UP = [
    "DROP TRIGGER factor_immutable_when_released ON factor",
    "DROP FUNCTION efdb_guard_released_factor()",
    # One function for the three triggers: each names its transition tables old_rows and
    # new_rows, and PL/pgSQL plans a branch's query only when the branch runs.
    f"""
    CREATE FUNCTION efdb_guard_released_factor_rows() RETURNS trigger AS $$
    DECLARE
        target_version integer;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            target_version := ({_released_among("new_rows")});
        ELSE
            target_version := ({_released_among("old_rows")});
        END IF;
        IF target_version IS NOT NULL THEN
            RAISE EXCEPTION
                'factors of a released dataset version are immutable (% on version %)',
                TG_OP, target_version USING ERRCODE = 'raise_exception';
        END IF;
        IF TG_OP = 'UPDATE' THEN
            target_version := ({_released_among("new_rows")});
            IF target_version IS NOT NULL THEN
                RAISE EXCEPTION 'factors of a released dataset version are immutable (% into %)',
                    'UPDATE moving factors', target_version USING ERRCODE = 'raise_exception';
            END IF;
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER factor_immutable_when_released_insert
    AFTER INSERT ON factor REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION efdb_guard_released_factor_rows()
    """,
    """
    CREATE TRIGGER factor_immutable_when_released_update
    AFTER UPDATE ON factor REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION efdb_guard_released_factor_rows()
    """,
    """
    CREATE TRIGGER factor_immutable_when_released_delete
    AFTER DELETE ON factor REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION efdb_guard_released_factor_rows()
    """,
]

POSTGRES_DOWN = [
    "DROP TRIGGER factor_immutable_when_released_delete ON factor",
    "DROP TRIGGER factor_immutable_when_released_update ON factor",
    "DROP TRIGGER factor_immutable_when_released_insert ON factor",
    "DROP FUNCTION efdb_guard_released_factor_rows()",
    f"""
    CREATE FUNCTION efdb_guard_released_factor() RETURNS trigger AS $$
    DECLARE
        target_version integer;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            target_version := NEW.version_id;
        ELSE
            target_version := OLD.version_id;
        END IF;
        IF EXISTS (SELECT 1 FROM dataset_version
                   WHERE id = target_version AND status IN {RELEASED}) THEN
            RAISE EXCEPTION 'factors of a released dataset version are immutable (% on version %)',
                TG_OP, target_version USING ERRCODE = 'raise_exception';
        END IF;
        IF TG_OP = 'UPDATE' AND NEW.version_id <> OLD.version_id AND EXISTS (
            SELECT 1 FROM dataset_version WHERE id = NEW.version_id AND status IN {RELEASED}) THEN
            RAISE EXCEPTION 'factors cannot be moved into a released dataset version';
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER factor_immutable_when_released
    BEFORE INSERT OR UPDATE OR DELETE ON factor
    FOR EACH ROW EXECUTE FUNCTION efdb_guard_released_factor()
    """,
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_DOWN:
            op.execute(statement)
