"""Locations for region fallback, dataset priority for resolution, and text search over names.

- `location` (ISO 3166 countries and subdivisions, GLO, groupings) and `location_member`:
  the region hierarchy that `POST /v1/factors:resolve` falls back along. Rows are loaded by
  `app.reference.locations.load_locations` (from `efdb seed` / `efdb serve`), not here.
- `dataset.priority`: preference among datasets that answer equally well (lower first).
- Text search over factor names, Chinese and English:
  - SQLite: an external-content FTS5 table `factor_fts` with the `trigram` tokenizer (so
    Chinese, which has no spaces, is searchable), kept in step with `factor` by triggers.
  - PostgreSQL: one `pg_trgm` GIN index over name_zh, name_en and activity_id joined by
    spaces, which serves `ILIKE '%term%'` on that same expression.
  Neither is declared in the models; `app.core.migrations.include_object` hides them from
  the models-versus-migrations comparison.

Revision ID: 20261125_0003
Revises: 20261125_0002
Create Date: 2026-11-25 16:00:00
"""

import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0003"
down_revision: str | None = "20261125_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FTS_COLUMNS = "name_zh, name_en, activity_id"

SQLITE_UP = [
    f"""
    CREATE VIRTUAL TABLE factor_fts USING fts5(
        {FTS_COLUMNS}, content='factor', content_rowid='id', tokenize='trigram'
    )
    """,
    "INSERT INTO factor_fts(factor_fts) VALUES ('rebuild')",
    f"""
    CREATE TRIGGER factor_fts_after_insert AFTER INSERT ON factor BEGIN
        INSERT INTO factor_fts(rowid, {FTS_COLUMNS})
        VALUES (new.id, new.name_zh, new.name_en, new.activity_id);
    END
    """,
    f"""
    CREATE TRIGGER factor_fts_after_delete AFTER DELETE ON factor BEGIN
        INSERT INTO factor_fts(factor_fts, rowid, {FTS_COLUMNS})
        VALUES ('delete', old.id, old.name_zh, old.name_en, old.activity_id);
    END
    """,
    # Released rows never change (0002's triggers); a draft's rows may.
    f"""
    CREATE TRIGGER factor_fts_after_update AFTER UPDATE OF {FTS_COLUMNS} ON factor BEGIN
        INSERT INTO factor_fts(factor_fts, rowid, {FTS_COLUMNS})
        VALUES ('delete', old.id, old.name_zh, old.name_en, old.activity_id);
        INSERT INTO factor_fts(rowid, {FTS_COLUMNS})
        VALUES (new.id, new.name_zh, new.name_en, new.activity_id);
    END
    """,
]
SQLITE_DOWN = [
    "DROP TRIGGER factor_fts_after_update",
    "DROP TRIGGER factor_fts_after_delete",
    "DROP TRIGGER factor_fts_after_insert",
    "DROP TABLE factor_fts",
]

# One trigram index over the three searched texts (not one per column): a third of the write
# cost on every upload, and every search term is one indexed ILIKE. The expression must match
# `app.factors.search.SEARCH_TEXT_SQL` exactly for the planner to use the index.
SEARCH_TEXT_SQL = "(coalesce(name_zh, '') || ' ' || coalesce(name_en, '') || ' ' || activity_id)"
POSTGRES_UP = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    f"CREATE INDEX ix_factor_search_text_trgm ON factor USING gin ({SEARCH_TEXT_SQL} gin_trgm_ops)",
]
# The extension stays: other objects may use it, and dropping it needs more rights.
POSTGRES_DOWN = ["DROP INDEX ix_factor_search_text_trgm"]


def upgrade() -> None:
    op.create_table(
        "location",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent_code", sa.String(length=32), nullable=True),
        sa.Column("name_zh", sa.String(length=255), nullable=True),
        sa.Column("name_en", sa.String(length=255), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.CheckConstraint(
            "kind IN ('global', 'country', 'subdivision', 'grouping')",
            name=op.f("ck_location_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_code"], ["location.code"], name=op.f("fk_location_parent_code_location")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_location")),
    )
    op.create_index(op.f("ix_location_parent_code"), "location", ["parent_code"])
    op.create_table(
        "location_member",
        sa.Column("grouping_code", sa.String(length=32), nullable=False),
        sa.Column("member_code", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["grouping_code"],
            ["location.code"],
            name=op.f("fk_location_member_grouping_code_location"),
        ),
        sa.ForeignKeyConstraint(
            ["member_code"], ["location.code"], name=op.f("fk_location_member_member_code_location")
        ),
        sa.PrimaryKeyConstraint("grouping_code", "member_code", name=op.f("pk_location_member")),
    )
    op.create_index(op.f("ix_location_member_member_code"), "location_member", ["member_code"])
    op.add_column("dataset", sa.Column("priority", sa.Integer(), nullable=True))

    if op.get_bind().dialect.name == "postgresql":
        statements = POSTGRES_UP
    else:
        if sqlite3.sqlite_version_info < (3, 34, 0):
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} lacks the FTS5 trigram tokenizer; "
                "efdb needs SQLite 3.34 or newer"
            )
        statements = SQLITE_UP
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    statements = POSTGRES_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN
    for statement in statements:
        op.execute(statement)
    # Native ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no table rebuild under the triggers.
    op.drop_column("dataset", "priority")
    op.drop_index(op.f("ix_location_member_member_code"), table_name="location_member")
    op.drop_table("location_member")
    op.drop_index(op.f("ix_location_parent_code"), table_name="location")
    op.drop_table("location")
