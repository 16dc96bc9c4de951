"""A dataset's page in plain words: `dataset.coverage_*`, `method_*`, `limits_*`,
`license_plain_*` and `about_sources`.

What a dataset covers, how it was made, what it should not be used for and what its licence
lets a user do, each in Chinese and English, written from the publisher's own documents;
`about_sources` says which document each part is from. Dataset-level text: no factor row and
no release's content hash reads it.

Revision ID: 20261206_0461
Revises: 20261206_0431
Create Date: 2026-12-06 04:06:01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261206_0461"
down_revision: str | None = "20261206_0431"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "coverage_zh",
    "coverage_en",
    "method_zh",
    "method_en",
    "limits_zh",
    "limits_en",
    "license_plain_zh",
    "license_plain_en",
    "about_sources",
)


# Plain ADD/DROP COLUMN (SQLite 3.35+ has both): a batch copy of the table would drop the
# dataset table's triggers (the licence-immutability trigger among them).
def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("dataset", sa.Column(name, sa.Text(), nullable=True))


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.drop_column("dataset", name)
