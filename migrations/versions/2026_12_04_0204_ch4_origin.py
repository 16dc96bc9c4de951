"""The origin of a factor's CH4 (fossil / non-fossil), as its publisher declares it.

AR6 gives fossil and non-fossil methane different GWP100 values (WG1 Ch. 7 Table 7.15), so a
recomputation in AR6 needs to know which one a factor's CH4 is. The column holds only what an
upload declared; it is null for every existing row (the default rule applies at read time), so
no released content hash changes.

Revision ID: 20261204_0204
Revises: 20261204_0203
Create Date: 2026-12-04 02:04:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_0204"
down_revision: str | None = "20261204_0203"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("factor", sa.Column("ch4_origin", sa.String(length=16), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN in place (SQLite ≥ 3.35): a batch copy of `factor` would break
    # the triggers that name it.
    op.drop_column("factor", "ch4_origin")
