"""Initial schema: publishers, clients, datasets, versions, factors, sources, snapshots, audit.

Revision ID: 20261125_0001
Revises:
Create Date: 2026-11-25 13:32:55.788793
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_event_hash")),
    )
    op.create_index(op.f("ix_audit_event_action"), "audit_event", ["action"])
    op.create_index(op.f("ix_audit_event_subject_id"), "audit_event", ["subject_id"])

    op.create_table(
        "publisher",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name_zh", sa.String(length=255), nullable=True),
        sa.Column("name_en", sa.String(length=255), nullable=True),
        sa.Column("sectors", sa.JSON(), nullable=False),
        sa.Column("contact_email", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f("ck_publisher_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publisher")),
        sa.UniqueConstraint("slug", name=op.f("uq_publisher_slug")),
    )
    op.create_table(
        "snapshot",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshot")),
    )
    op.create_table(
        "source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("publisher", sa.Text(), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("doi", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source")),
        sa.UniqueConstraint("key_sha256", name=op.f("uq_source_key_sha256")),
    )
    op.create_table(
        "client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("publisher_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["publisher_id"], ["publisher.id"], name=op.f("fk_client_publisher_id_publisher")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client")),
        sa.UniqueConstraint("client_id", name=op.f("uq_client_client_id")),
    )
    op.create_index(op.f("ix_client_publisher_id"), "client", ["publisher_id"])

    op.create_table(
        "dataset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publisher_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("title_zh", sa.String(length=255), nullable=True),
        sa.Column("title_en", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("sector_scheme", sa.String(length=64), nullable=True),
        sa.Column("sector_code", sa.String(length=64), nullable=True),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("license_id", sa.String(length=128), nullable=False),
        sa.Column("license_url", sa.String(length=512), nullable=True),
        sa.Column("attribution", sa.Text(), nullable=False),
        sa.Column("redistribution", sa.Boolean(), nullable=False),
        sa.Column("commercial_use", sa.Boolean(), nullable=False),
        sa.Column("contact", sa.String(length=255), nullable=True),
        sa.Column("methodology_url", sa.String(length=512), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("superseded_by_id", sa.Integer(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("access IN ('public', 'registered')", name=op.f("ck_dataset_access")),
        sa.CheckConstraint("status IN ('active', 'deprecated')", name=op.f("ck_dataset_status")),
        sa.ForeignKeyConstraint(
            ["publisher_id"], ["publisher.id"], name=op.f("fk_dataset_publisher_id_publisher")
        ),
        sa.ForeignKeyConstraint(
            ["superseded_by_id"], ["dataset.id"], name=op.f("fk_dataset_superseded_by_id_dataset")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset")),
        sa.UniqueConstraint("publisher_id", "slug", name=op.f("uq_dataset_publisher_id_slug")),
    )
    op.create_index(op.f("ix_dataset_publisher_id"), "dataset", ["publisher_id"])

    op.create_table(
        "dataset_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("minor", sa.Integer(), nullable=False),
        sa.Column("patch", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("release_notes", sa.Text(), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("upload_file_name", sa.String(length=255), nullable=True),
        sa.Column("upload_file_sha256", sa.String(length=64), nullable=True),
        sa.Column("upload_format", sa.String(length=16), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.String(length=128), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by", sa.String(length=128), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("rejected_by", sa.String(length=128), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_reason", sa.Text(), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=128), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_reason", sa.Text(), nullable=True),
        sa.Column("deprecated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'submitted', 'published', 'deprecated', 'withdrawn', 'rejected')",
            name=op.f("ck_dataset_version_status"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["dataset.id"], name=op.f("fk_dataset_version_dataset_id_dataset")
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"],
            ["dataset_version.id"],
            name=op.f("fk_dataset_version_supersedes_id_dataset_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_version")),
        sa.UniqueConstraint(
            "dataset_id", "version", name=op.f("uq_dataset_version_dataset_id_version")
        ),
    )
    op.create_index(
        "ix_dataset_version_dataset_status", "dataset_version", ["dataset_id", "status"]
    )

    op.create_table(
        "factor",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
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
        sa.Column("gwp_set", sa.String(length=8), nullable=True),
        sa.Column("boundary", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=255), nullable=True),
        sa.Column("uncertainty_low", sa.Double(), nullable=True),
        sa.Column("uncertainty_high", sa.Double(), nullable=True),
        sa.Column("uncertainty_distribution", sa.String(length=16), nullable=True),
        sa.Column("dq_reliability", sa.SmallInteger(), nullable=True),
        sa.Column("dq_completeness", sa.SmallInteger(), nullable=True),
        sa.Column("dq_temporal", sa.SmallInteger(), nullable=True),
        sa.Column("dq_geographical", sa.SmallInteger(), nullable=True),
        sa.Column("dq_technological", sa.SmallInteger(), nullable=True),
        sa.Column("dqr", sa.Double(), nullable=True),
        sa.Column("source_locator", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["dataset.id"], name=op.f("fk_factor_dataset_id_dataset")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["source.id"], name=op.f("fk_factor_source_id_source")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_version.id"],
            name=op.f("fk_factor_version_id_dataset_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_factor")),
        sa.UniqueConstraint("uid", name=op.f("uq_factor_uid")),
        sa.UniqueConstraint(
            "version_id", "factor_code", name=op.f("uq_factor_version_id_factor_code")
        ),
    )
    op.create_index(
        "ix_factor_activity_region_year", "factor", ["activity_id", "region", "reference_year"]
    )
    op.create_index(op.f("ix_factor_boundary"), "factor", ["boundary"])
    op.create_index(op.f("ix_factor_category"), "factor", ["category"])
    op.create_index("ix_factor_dataset_code", "factor", ["dataset_id", "factor_code"])
    op.create_index("ix_factor_region_year", "factor", ["region", "reference_year"])
    op.create_index(op.f("ix_factor_source_id"), "factor", ["source_id"])
    op.create_index(op.f("ix_factor_unit"), "factor", ["unit"])
    op.create_index("ix_factor_version_id", "factor", ["version_id", "id"])

    op.create_table(
        "snapshot_version",
        sa.Column("snapshot_id", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshot.id"], name=op.f("fk_snapshot_version_snapshot_id_snapshot")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_version.id"],
            name=op.f("fk_snapshot_version_version_id_dataset_version"),
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "version_id", name=op.f("pk_snapshot_version")),
    )


def downgrade() -> None:
    op.drop_table("snapshot_version")
    op.drop_index("ix_factor_version_id", table_name="factor")
    op.drop_index(op.f("ix_factor_unit"), table_name="factor")
    op.drop_index(op.f("ix_factor_source_id"), table_name="factor")
    op.drop_index("ix_factor_region_year", table_name="factor")
    op.drop_index("ix_factor_dataset_code", table_name="factor")
    op.drop_index(op.f("ix_factor_category"), table_name="factor")
    op.drop_index(op.f("ix_factor_boundary"), table_name="factor")
    op.drop_index("ix_factor_activity_region_year", table_name="factor")

    op.drop_table("factor")
    op.drop_index("ix_dataset_version_dataset_status", table_name="dataset_version")

    op.drop_table("dataset_version")
    op.drop_index(op.f("ix_dataset_publisher_id"), table_name="dataset")

    op.drop_table("dataset")
    op.drop_index(op.f("ix_client_publisher_id"), table_name="client")

    op.drop_table("client")
    op.drop_table("source")
    op.drop_table("snapshot")
    op.drop_table("publisher")
    op.drop_index(op.f("ix_audit_event_subject_id"), table_name="audit_event")
    op.drop_index(op.f("ix_audit_event_action"), table_name="audit_event")

    op.drop_table("audit_event")
