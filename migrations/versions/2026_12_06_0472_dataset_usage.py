"""Usage metering of registered data: requests and rows per client, dataset and day.

Revision ID: 20261206_0472
Revises: 20261206_0471
Create Date: 2026-12-06 05:12:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261206_0472"
down_revision: str | None = "20261206_0471"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_usage",
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_dataset_usage_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "dataset_id", "day", name=op.f("pk_dataset_usage")),
    )
    op.create_index(
        op.f("ix_dataset_usage_dataset_id"), "dataset_usage", ["dataset_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_dataset_usage_dataset_id"), table_name="dataset_usage")
    op.drop_table("dataset_usage")
