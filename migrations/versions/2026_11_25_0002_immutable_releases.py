"""Database-enforced immutability: released factors and versions never change; audit is append-only.

The service refuses these changes too; the triggers make the promise hold for anyone with
SQL access short of dropping them (which itself needs a migration or DDL rights).

Revision ID: 20261125_0002
Revises: 20261125_0001
Create Date: 2026-11-25 14:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261125_0002"
down_revision: str | None = "20261125_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RELEASED = "('published', 'deprecated', 'withdrawn')"

POSTGRES_UP = [
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
    f"""
    CREATE FUNCTION efdb_guard_released_version() RETURNS trigger AS $$
    BEGIN
        IF OLD.status IN {RELEASED} THEN
            IF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION
                    'a released dataset version is immutable and cannot be deleted (version %)',
                    OLD.id;
            END IF;
            IF NEW.status NOT IN {RELEASED}
               OR NEW.dataset_id <> OLD.dataset_id
               OR NEW.version <> OLD.version
               OR NEW.row_count <> OLD.row_count
               OR NEW.content_sha256 IS DISTINCT FROM OLD.content_sha256
               OR NEW.published_at IS DISTINCT FROM OLD.published_at
               OR NEW.published_by IS DISTINCT FROM OLD.published_by THEN
                RAISE EXCEPTION 'a released dataset version is immutable (version %)', OLD.id;
            END IF;
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER dataset_version_immutable_when_released
    BEFORE UPDATE OR DELETE ON dataset_version
    FOR EACH ROW EXECUTE FUNCTION efdb_guard_released_version()
    """,
    """
    CREATE FUNCTION efdb_audit_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only';
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION efdb_audit_append_only()
    """,
]

POSTGRES_DOWN = [
    "DROP TRIGGER audit_event_append_only ON audit_event",
    "DROP FUNCTION efdb_audit_append_only()",
    "DROP TRIGGER dataset_version_immutable_when_released ON dataset_version",
    "DROP FUNCTION efdb_guard_released_version()",
    "DROP TRIGGER factor_immutable_when_released ON factor",
    "DROP FUNCTION efdb_guard_released_factor()",
]

_FACTOR_RELEASED = "(SELECT status FROM dataset_version WHERE id = {row}.version_id) IN " + RELEASED

SQLITE_UP = [
    f"""
    CREATE TRIGGER factor_immutable_insert BEFORE INSERT ON factor
    WHEN {_FACTOR_RELEASED.format(row="NEW")}
    BEGIN SELECT RAISE(ABORT, 'factors of a released dataset version are immutable'); END
    """,
    f"""
    CREATE TRIGGER factor_immutable_update BEFORE UPDATE ON factor
    WHEN {_FACTOR_RELEASED.format(row="OLD")} OR {_FACTOR_RELEASED.format(row="NEW")}
    BEGIN SELECT RAISE(ABORT, 'factors of a released dataset version are immutable'); END
    """,
    f"""
    CREATE TRIGGER factor_immutable_delete BEFORE DELETE ON factor
    WHEN {_FACTOR_RELEASED.format(row="OLD")}
    BEGIN SELECT RAISE(ABORT, 'factors of a released dataset version are immutable'); END
    """,
    f"""
    CREATE TRIGGER dataset_version_immutable_update BEFORE UPDATE ON dataset_version
    WHEN OLD.status IN {RELEASED} AND (
        NEW.status NOT IN {RELEASED}
        OR NEW.dataset_id IS NOT OLD.dataset_id
        OR NEW.version IS NOT OLD.version
        OR NEW.row_count IS NOT OLD.row_count
        OR NEW.content_sha256 IS NOT OLD.content_sha256
        OR NEW.published_at IS NOT OLD.published_at
        OR NEW.published_by IS NOT OLD.published_by)
    BEGIN SELECT RAISE(ABORT, 'a released dataset version is immutable'); END
    """,
    f"""
    CREATE TRIGGER dataset_version_immutable_delete BEFORE DELETE ON dataset_version
    WHEN OLD.status IN {RELEASED}
    BEGIN SELECT RAISE(ABORT, 'a released dataset version is immutable and cannot be deleted'); END
    """,
    """
    CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
    """,
    """
    CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
    """,
]

SQLITE_DOWN = [
    f"DROP TRIGGER {name}"
    for name in (
        "audit_event_no_delete",
        "audit_event_no_update",
        "dataset_version_immutable_delete",
        "dataset_version_immutable_update",
        "factor_immutable_delete",
        "factor_immutable_update",
        "factor_immutable_insert",
    )
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _run(POSTGRES_UP)
    else:
        _run(SQLITE_UP)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _run(POSTGRES_DOWN)
    else:
        _run(SQLITE_DOWN)
