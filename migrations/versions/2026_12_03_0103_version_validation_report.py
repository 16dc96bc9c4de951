"""A version keeps its upload's validation report, so that a reviewer can read it.

`dataset_version.validation_report` (JSON, nullable: versions uploaded before this revision
and versions loaded directly, such as the seed data, have none): the report the upload
answered with (errors, warnings and their counts).

Revision ID: 20261203_0103
Revises: 20261203_0102
Create Date: 2026-12-03 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261203_0103"
down_revision: str | None = "20261203_0102"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("dataset_version", sa.Column("validation_report", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("dataset_version", "validation_report")
