"""SQLite: index factor names for text search when a version is published, not per inserted row.

Text search only ever reads released versions, and released rows never change (0002). So the
FTS5 trigram index needs no row triggers: publishing adds the version's rows in one statement
(`app.factors.search.index_released_factors`), and drafts, which are inserted, replaced and
deleted, never reach it. Measured on SQLite, the per-row trigger was about 60 % of the insert
time of an upload. PostgreSQL keeps its GIN index, which the database maintains itself.

Revision ID: 20261125_0004
Revises: 20261125_0003
Create Date: 2026-11-25 15:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261125_0004"
down_revision: str | None = "20261125_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FTS_COLUMNS = "name_zh, name_en, activity_id"
RELEASED = "('published', 'deprecated', 'withdrawn')"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in (
        "factor_fts_after_update",
        "factor_fts_after_delete",
        "factor_fts_after_insert",
    ):
        op.execute(f"DROP TRIGGER {trigger}")
    # Rebuild from released rows only: drafts indexed by the old triggers leave the index.
    op.execute("INSERT INTO factor_fts(factor_fts) VALUES ('delete-all')")
    op.execute(
        f"INSERT INTO factor_fts(rowid, {FTS_COLUMNS}) SELECT factor.id, factor.name_zh, "
        "factor.name_en, factor.activity_id FROM factor JOIN dataset_version "
        f"ON dataset_version.id = factor.version_id WHERE dataset_version.status IN {RELEASED}"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        f"""
        CREATE TRIGGER factor_fts_after_insert AFTER INSERT ON factor BEGIN
            INSERT INTO factor_fts(rowid, {FTS_COLUMNS})
            VALUES (new.id, new.name_zh, new.name_en, new.activity_id);
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER factor_fts_after_delete AFTER DELETE ON factor BEGIN
            INSERT INTO factor_fts(factor_fts, rowid, {FTS_COLUMNS})
            VALUES ('delete', old.id, old.name_zh, old.name_en, old.activity_id);
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER factor_fts_after_update AFTER UPDATE OF {FTS_COLUMNS} ON factor BEGIN
            INSERT INTO factor_fts(factor_fts, rowid, {FTS_COLUMNS})
            VALUES ('delete', old.id, old.name_zh, old.name_en, old.activity_id);
            INSERT INTO factor_fts(rowid, {FTS_COLUMNS})
            VALUES (new.id, new.name_zh, new.name_en, new.activity_id);
        END
        """
    )
    op.execute("INSERT INTO factor_fts(factor_fts) VALUES ('rebuild')")
