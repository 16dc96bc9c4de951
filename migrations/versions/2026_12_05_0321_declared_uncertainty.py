"""What a factor's uncertainty interval is, as its publisher declares it.

`uncertainty_low` / `uncertainty_high` were described as a 95 % interval whatever the source
said. Two nullable columns hold what the publisher declared: `uncertainty_kind`
(`confidence_interval`, `percentile_range` or `min_max`) and `uncertainty_confidence_level`
(e.g. 0.95; only for the first two). Null for every existing row: nothing was declared, so no
released content hash changes and no interval is claimed to be more than a range.

Revision ID: 20261205_0321
Revises: 20261205_0311
Create Date: 2026-12-05 03:21:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261205_0321"
down_revision: str | None = "20261205_0311"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("factor", sa.Column("uncertainty_kind", sa.String(length=24), nullable=True))
    op.add_column("factor", sa.Column("uncertainty_confidence_level", sa.Double(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN in place (SQLite ≥ 3.35): a batch copy of `factor` would break
    # the triggers that name it.
    op.drop_column("factor", "uncertainty_confidence_level")
    op.drop_column("factor", "uncertainty_kind")
