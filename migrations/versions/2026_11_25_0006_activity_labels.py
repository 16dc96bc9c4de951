"""Activity labels: names and synonyms of the shared `activity_id` vocabulary, with sources.

- `activity`: one row per `activity_id` (`electricity-grid-mix`, the IPCC fuels' and the
  DESNZ activities, …) with `name_zh`, `name_en`, optional descriptions, `keywords_zh` and
  `keywords_en` (synonyms such as 电网, grid), `source`/`locator` (where the wording comes
  from, or that efdb coined it) and `search_text` (derived by the loader: what `q` matches).
  Text search over factors reads it: a factor whose activity's labels hold the text is found
  even when its own names do not (the MEE's official names say 电力, not 电网).

Rows are loaded by `app.reference.loader.load_reference_data` from
`seed_data/reference/activities.csv` (versioned by sha256 and audited), not here. Downgrading
also forgets the table's loaded version, so that an upgrade after it loads the rows again.

Revision ID: 20261125_0006
Revises: 20261125_0005
Create Date: 2026-11-25 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0006"
down_revision: str | None = "20261125_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activity",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name_zh", sa.String(length=255), nullable=False),
        sa.Column("name_en", sa.String(length=255), nullable=False),
        sa.Column("description_zh", sa.String(length=1000), nullable=True),
        sa.Column("description_en", sa.String(length=1000), nullable=True),
        sa.Column("keywords_zh", sa.JSON(), nullable=False),
        sa.Column("keywords_en", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("locator", sa.String(length=500), nullable=True),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity")),
    )


def downgrade() -> None:
    op.drop_table("activity")
    op.execute("DELETE FROM reference_version WHERE name = 'activities'")
