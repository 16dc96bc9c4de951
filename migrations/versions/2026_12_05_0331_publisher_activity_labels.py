"""Publishers' own activity labels: `activity_label`.

An upload may name the new activities of its publisher's namespace (activity ids starting
with the publisher's slug and a hyphen) in the optional columns `activity_name_zh`,
`activity_name_en` and `activity_keywords`. The draft's validation report shows them for
review; publishing the version writes them here, one row per activity (a later release of the
same publisher replaces it), naming the publisher and the release that gave them. Search,
facets and `GET /v1/activities` read them beside the reference table `activity`.

Revision ID: 20261205_0331
Revises: 20261205_0321
Create Date: 2026-12-05 03:31:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261205_0331"
down_revision: str | None = "20261205_0321"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activity_label",
        sa.Column("activity_id", sa.String(length=128), nullable=False),
        sa.Column("publisher_id", sa.Integer(), nullable=False),
        sa.Column("publisher", sa.String(length=64), nullable=False),
        sa.Column("name_zh", sa.String(length=255), nullable=False),
        sa.Column("name_en", sa.String(length=255), nullable=False),
        sa.Column("keywords_zh", sa.JSON(), nullable=False),
        sa.Column("keywords_en", sa.JSON(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("labelled_in", sa.String(length=300), nullable=False),
        sa.Column("upload_file_name", sa.String(length=255), nullable=True),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["publisher.id"],
            name=op.f("fk_activity_label_publisher_id_publisher"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_version.id"],
            name=op.f("fk_activity_label_version_id_dataset_version"),
        ),
        sa.PrimaryKeyConstraint("activity_id", name=op.f("pk_activity_label")),
    )
    op.create_index(
        op.f("ix_activity_label_publisher_id"), "activity_label", ["publisher_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_activity_label_publisher_id"), table_name="activity_label")
    op.drop_table("activity_label")
