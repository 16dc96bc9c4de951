"""Per-dataset grants: which clients may read which registered dataset.

Revision ID: 20261206_0471
Revises: 20261206_0461
Create Date: 2026-12-06 05:11:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261206_0471"
down_revision: str | None = "20261206_0461"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("granted_by", sa.String(length=255), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["client.client_id"],
            name=op.f("fk_dataset_grant_client_id_client"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_dataset_grant_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_grant")),
        sa.UniqueConstraint(
            "client_id", "dataset_id", name=op.f("uq_dataset_grant_client_id_dataset_id")
        ),
    )
    op.create_index(
        op.f("ix_dataset_grant_dataset_id"), "dataset_grant", ["dataset_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_dataset_grant_dataset_id"), table_name="dataset_grant")
    op.drop_table("dataset_grant")
