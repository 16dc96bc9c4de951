"""Draft rows in a table of their own, `factor_draft`, until the draft is submitted.

An upload wrote a draft's rows straight into `factor`, and PostgreSQL kept every read index
(search, resolve, history, the pg_trgm GIN index over the names), three foreign keys and the
released-factor guard up to date row by row: a COPY into `factor` took 9.9× as long as into a
bare table. Nothing reads a draft's rows but its own review pages and the upload's diff with
the last release, so they now go into `factor_draft`: the same columns, a primary key
`(version_id, position)` (the rows in upload order) and the unique `(version_id,
factor_code)` that finds duplicate codes; no other index, no foreign key, no trigger. Submit
moves them into `factor` (`app.publishing.draft_rows.move_into_factors`), where every check
and index applies, before the content hash is computed.

A draft cannot be submitted while rows of it are still in `factor_draft` (a trigger on
`dataset_version` refuses it, on both databases; the workflow triggers already refuse every
other way out of the draft state but deletion): whatever changes its status, its rows are
where its status says, or the change fails loudly.

The rows of drafts already stored move into `factor_draft` here, and back on downgrade.

Revision ID: 20261209_0912
Revises: 20261208_0607
Create Date: 2026-12-09 09:12:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261209_0912"
down_revision: str | None = "20261208_0607"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VALUE_COLUMNS = (
    "factor_code",
    "activity_id",
    "name_zh",
    "name_en",
    "description",
    "category",
    "product_code_scheme",
    "product_code",
    "region",
    "reference_year",
    "valid_from",
    "valid_to",
    "unit",
    "co2e",
    "co2",
    "ch4",
    "n2o",
    "other_ghg_co2e",
    "biogenic_co2",
    "ch4_origin",
    "gwp_set",
    "boundary",
    "method",
    "uncertainty_low",
    "uncertainty_high",
    "uncertainty_distribution",
    "uncertainty_kind",
    "uncertainty_confidence_level",
    "dq_reliability",
    "dq_completeness",
    "dq_temporal",
    "dq_geographical",
    "dq_technological",
    "dqr",
    "source_locator",
    "notes",
)
MOVED = ", ".join(("uid", "version_id", "dataset_id", "source_id", "row_number", *VALUE_COLUMNS))
DRAFTS = "SELECT id FROM dataset_version WHERE status = 'draft'"
LEFT_BEHIND = "EXISTS (SELECT 1 FROM factor_draft WHERE version_id = NEW.id)"
MESSAGE = "a draft is submitted only once its rows moved out of factor_draft"
POSTGRES_GUARD = [
    f"""
    CREATE FUNCTION efdb_draft_rows_moved() RETURNS trigger AS $$
    BEGIN
        IF {LEFT_BEHIND} THEN
            RAISE EXCEPTION '{MESSAGE} (version %)', NEW.id USING ERRCODE = 'raise_exception';
        END IF;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER dataset_version_draft_rows_moved
    BEFORE UPDATE OF status ON dataset_version
    FOR EACH ROW WHEN (OLD.status = 'draft' AND NEW.status = 'submitted')
    EXECUTE FUNCTION efdb_draft_rows_moved()
    """,
]
SQLITE_GUARD = f"""
    CREATE TRIGGER dataset_version_draft_rows_moved
    BEFORE UPDATE OF status ON dataset_version
    WHEN OLD.status = 'draft' AND NEW.status = 'submitted' AND {LEFT_BEHIND}
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END
"""


def upgrade() -> None:
    op.create_table(
        "factor_draft",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=True),
        sa.Column("factor_code", sa.String(length=128), nullable=False),
        sa.Column("activity_id", sa.String(length=128), nullable=False),
        sa.Column("name_zh", sa.Text(), nullable=True),
        sa.Column("name_en", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=255), nullable=True),
        sa.Column("product_code_scheme", sa.String(length=64), nullable=True),
        sa.Column("product_code", sa.String(length=64), nullable=True),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("reference_year", sa.SmallInteger(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("co2e", sa.Double(), nullable=False),
        sa.Column("co2", sa.Double(), nullable=True),
        sa.Column("ch4", sa.Double(), nullable=True),
        sa.Column("n2o", sa.Double(), nullable=True),
        sa.Column("other_ghg_co2e", sa.Double(), nullable=True),
        sa.Column("biogenic_co2", sa.Double(), nullable=True),
        sa.Column("ch4_origin", sa.String(length=16), nullable=True),
        sa.Column("gwp_set", sa.String(length=8), nullable=True),
        sa.Column("boundary", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=255), nullable=True),
        sa.Column("uncertainty_low", sa.Double(), nullable=True),
        sa.Column("uncertainty_high", sa.Double(), nullable=True),
        sa.Column("uncertainty_distribution", sa.String(length=16), nullable=True),
        sa.Column("uncertainty_kind", sa.String(length=24), nullable=True),
        sa.Column("uncertainty_confidence_level", sa.Double(), nullable=True),
        sa.Column("dq_reliability", sa.SmallInteger(), nullable=True),
        sa.Column("dq_completeness", sa.SmallInteger(), nullable=True),
        sa.Column("dq_temporal", sa.SmallInteger(), nullable=True),
        sa.Column("dq_geographical", sa.SmallInteger(), nullable=True),
        sa.Column("dq_technological", sa.SmallInteger(), nullable=True),
        sa.Column("dqr", sa.Double(), nullable=True),
        sa.Column("source_locator", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("version_id", "position", name=op.f("pk_factor_draft")),
        sa.UniqueConstraint(
            "version_id", "factor_code", name=op.f("uq_factor_draft_version_id_factor_code")
        ),
    )
    # The rows of the drafts stored so far, in their upload (id) order.
    op.execute(
        f"INSERT INTO factor_draft (position, {MOVED}) "
        f"SELECT row_number() OVER (PARTITION BY version_id ORDER BY id), {MOVED} "
        f"FROM factor WHERE version_id IN ({DRAFTS})"
    )
    op.execute(f"DELETE FROM factor WHERE version_id IN ({DRAFTS})")
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_GUARD:
            op.execute(statement)
    else:
        op.execute(SQLITE_GUARD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER dataset_version_draft_rows_moved ON dataset_version")
        op.execute("DROP FUNCTION efdb_draft_rows_moved()")
    else:
        op.execute("DROP TRIGGER dataset_version_draft_rows_moved")
    op.execute(
        f"INSERT INTO factor ({MOVED}) SELECT {MOVED} FROM factor_draft "
        "ORDER BY version_id, position"
    )
    op.drop_table("factor_draft")
