"""Client lockout: a client whose secret keeps failing at the token endpoint is locked a while.

- `client.failed_attempts`: failed authentications since `failed_since` (reset by a success
  or when the window has passed).
- `client.locked_until`: until then the token endpoint refuses the client with 429, before
  any password hash is computed. Locks are audited (`client.locked`).

Revision ID: 20261203_0105
Revises: 20261203_0103
Create Date: 2026-12-03 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261203_0105"
down_revision: str | None = "20261203_0103"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("client") as batch:
        batch.add_column(
            sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("failed_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("failed_since")
        batch.drop_column("failed_attempts")
