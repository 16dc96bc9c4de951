"""Reference data as cited data: GWP100 values, conversion properties, loaded versions.

- `gwp_value` (gwp_set, gas) → GWP100 with its source and locator;
- `conversion_property`: cited quantities that link two dimensions for a material (net
  calorific values: tonnes of coal → TJ), used by `POST /v1/estimate`;
- `reference_version`: the sha256 of the shipped files each reference table was built from;
- `location.locator`, and `location_member` gains its citation (`source`, `locator`,
  `confidence`). `location_member` is rebuilt: nothing wrote to it before this revision.

Rows are loaded by `app.reference.loader.load_reference_data` (`efdb db upgrade`, `efdb seed`,
`efdb serve`) from `seed_data/reference/`, with an audit event per change, not here: a
migration stays static, the data keeps its citations in files a reviewer can read.

Revision ID: 20261125_0005
Revises: 20261125_0004
Create Date: 2026-11-25 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0005"
down_revision: str | None = "20261125_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _location_member(*extra: sa.Column[object]) -> None:
    op.create_table(
        "location_member",
        sa.Column("grouping_code", sa.String(length=32), nullable=False),
        sa.Column("member_code", sa.String(length=32), nullable=False),
        *extra,
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


def upgrade() -> None:
    op.add_column("location", sa.Column("locator", sa.String(length=255), nullable=True))
    op.drop_index(op.f("ix_location_member_member_code"), table_name="location_member")
    op.drop_table("location_member")
    _location_member(
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("locator", sa.String(length=255), nullable=True),
        sa.Column("confidence", sa.String(length=255), nullable=True),
    )
    op.create_table(
        "gwp_value",
        sa.Column("gwp_set", sa.String(length=8), nullable=False),
        sa.Column("gas", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("locator", sa.String(length=500), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.CheckConstraint("gwp_set IN ('AR4', 'AR5', 'AR6')", name=op.f("ck_gwp_value_gwp_set")),
        sa.PrimaryKeyConstraint("gwp_set", "gas", name=op.f("pk_gwp_value")),
    )
    op.create_table(
        "conversion_property",
        sa.Column("code", sa.String(length=96), nullable=False),
        sa.Column("material", sa.String(length=64), nullable=False),
        sa.Column("name_en", sa.String(length=255), nullable=True),
        sa.Column("name_zh", sa.String(length=255), nullable=True),
        sa.Column("quantity", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("activity_ids", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("locator", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_conversion_property")),
    )
    op.create_table(
        "reference_version",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_reference_version")),
    )


def downgrade() -> None:
    op.drop_table("reference_version")
    op.drop_table("conversion_property")
    op.drop_table("gwp_value")
    op.drop_index(op.f("ix_location_member_member_code"), table_name="location_member")
    op.drop_table("location_member")
    _location_member()
    # Plain DROP COLUMN (SQLite >= 3.35): a batch copy of `location` would drop a table that
    # its own rows and `location_member` still reference.
    op.execute("ALTER TABLE location DROP COLUMN locator")
