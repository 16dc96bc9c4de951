"""Release signing keys, signed release statements, signed snapshot manifests, signed audit
checkpoints; PostgreSQL refuses TRUNCATE of the factor, version and audit tables.

Row triggers do not fire on TRUNCATE, so before this migration `TRUNCATE audit_event` emptied
the append-only log. (SQLite has no TRUNCATE: its `DELETE FROM t` without WHERE fires the row
triggers that already refuse it.) Releases published before this migration get their
statement signed on first request (app/signing/statements.py).

Revision ID: 20261205_0301
Revises: 20261204_0204
Create Date: 2026-12-05 03:01:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261205_0301"
down_revision: str | None = "20261204_0204"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_TRUNCATE_TABLES = ("audit_event", "factor", "dataset_version")


def upgrade() -> None:
    op.create_table(
        "release_signing_key",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_release_signing_key")),
    )
    op.create_table(
        "release_statement",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_version.id"],
            name=op.f("fk_release_statement_version_id_dataset_version"),
        ),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_release_statement")),
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoint")),
    )
    op.create_table(
        "snapshot_signature",
        sa.Column("snapshot_id", sa.String(length=32), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
            name=op.f("fk_snapshot_signature_snapshot_id_snapshot"),
        ),
        sa.PrimaryKeyConstraint("snapshot_id", name=op.f("pk_snapshot_signature")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION efdb_refuse_truncate() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '% may not be truncated: released data and the audit log '
                    'are append-only', TG_TABLE_NAME;
            END
            $$ LANGUAGE plpgsql
            """
        )
        for table in NO_TRUNCATE_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION efdb_refuse_truncate()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in NO_TRUNCATE_TABLES:
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION efdb_refuse_truncate()")
    op.drop_table("snapshot_signature")
    op.drop_table("audit_checkpoint")
    op.drop_table("release_statement")
    op.drop_table("release_signing_key")
