"""Facet counts per pair of values, kept at publish: a search filtered on one factor column
(region, year, category, unit or boundary) answers its facets from stored counts.

`release_facet_pair_count` holds, for each released version, how many of its factors hold a
value of one facet (`filter_facet`/`filter_value`: region, year, category, unit, boundary)
and a value of another (`facet`/`value`, activity_id included). Publish writes them beside
`release_facet_count` (released rows never change); this migration fills them for the
versions already released, from each version's distinct combinations of the six columns.
At 100k synthetic factors the explorer's facets for `category=…` took 0.8 s on SQLite and
0.47 s on PostgreSQL; from these rows a few milliseconds (bench/facets.py).

Revision ID: 20261207_0511
Revises: 20261206_0472
Create Date: 2026-12-07 05:11:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0511"
down_revision: str | None = "20261206_0472"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RELEASED = "('published', 'deprecated', 'withdrawn')"
FACETS = {
    "region": "region",
    "year": "reference_year",
    "category": "category",
    "unit": "unit",
    "boundary": "boundary",
    "activity_id": "activity_id",
}
FILTERS = ("region", "year", "category", "unit", "boundary")


def upgrade() -> None:
    op.create_table(
        "release_facet_pair_count",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("filter_facet", sa.String(length=32), nullable=False),
        sa.Column("filter_value", sa.String(length=255), nullable=False),
        sa.Column("facet", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_version.id"],
            name=op.f("fk_release_facet_pair_count_version_id_dataset_version"),
        ),
        sa.PrimaryKeyConstraint(
            "version_id",
            "filter_facet",
            "filter_value",
            "facet",
            "value",
            name=op.f("pk_release_facet_pair_count"),
        ),
    )
    columns = ", ".join(FACETS.values())
    combinations = (
        f"SELECT version_id, {columns}, count(*) AS n FROM factor "
        f"WHERE version_id IN (SELECT id FROM dataset_version WHERE status IN {RELEASED}) "
        f"GROUP BY version_id, {columns}"
    )
    pairs = [
        f"SELECT version_id, '{first}', CAST({FACETS[first]} AS VARCHAR(255)), '{second}', "
        f"CAST({column} AS VARCHAR(255)), sum(n) FROM combinations "
        f"WHERE {FACETS[first]} IS NOT NULL AND {column} IS NOT NULL "
        f"GROUP BY version_id, {FACETS[first]}, {column}"
        for first in FILTERS
        for second, column in FACETS.items()
        if second != first
    ]
    op.execute(
        "INSERT INTO release_facet_pair_count "
        "(version_id, filter_facet, filter_value, facet, value, count) "
        f"WITH combinations AS MATERIALIZED ({combinations}) " + " UNION ALL ".join(pairs)
    )


def downgrade() -> None:
    op.drop_table("release_facet_pair_count")
