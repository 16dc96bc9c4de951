"""Export store: recorded per-version export files and the database's instance id.

- `export_file`: one row per per-version export file (version, format, export schema
  version) with the file's place in the store, its sha256 and size. Files are named by their
  sha256, written once and never replaced; this row is what says a file is in use (a file no
  row names is a crashed run's leftover).
- `database_instance`: one row, written on first start, naming this database; the export
  store holds a marker file under that id, checked by `/readyz`.

Revision ID: 20261203_0102
Revises: 20261125_0006
Create Date: 2026-12-03 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261203_0102"
down_revision: str | None = "20261125_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "export_file",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_version.id"],
            name=op.f("fk_export_file_version_id_dataset_version"),
        ),
        sa.PrimaryKeyConstraint(
            "version_id", "format", "schema_version", name=op.f("pk_export_file")
        ),
    )
    op.create_table(
        "database_instance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_database_instance")),
        sa.UniqueConstraint("instance_id", name=op.f("uq_database_instance_instance_id")),
    )


def downgrade() -> None:
    op.drop_table("database_instance")
    op.drop_table("export_file")
