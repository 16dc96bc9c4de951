"""The catalogue's generation: a number the database raises whenever what a reader may see of
the released data changes, so that answers made from released rows can be kept until it does.

Released factor rows never change (the database refuses); what changes around them is the
state of releases, datasets and publishers: a release published, withdrawn or deprecated, a
dataset superseded, its licence, access or slug edited. Triggers of migration 20261207_0511 on
`dataset_version` (a released status entered or left, a withdrawal's fields), `dataset` and
`publisher` (any update or delete) raise `catalog_generation.generation` in the transaction
that makes the change, so it becomes visible with the change itself, to every worker. Draft
uploads do not touch it (a draft is inserted unreleased), so they never wait on its row.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.db import Base


class CatalogGeneration(Base):
    """One row (`id` 1): the generation of the released catalogue (see the module)."""

    __tablename__ = "catalog_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger)


# The generation's one read (the search page's short path runs it too: app/factors/page_cache.py).
GENERATION = select(CatalogGeneration.generation).where(CatalogGeneration.id == 1)


def catalog_generation(session: Session) -> int | None:
    """The current generation (None if the row is missing: then nothing may be kept)."""
    return session.execute(GENERATION).scalar_one_or_none()


def committed_generation(engine: Engine) -> int | None:
    """The generation as last committed, read outside any transaction: one round trip (no
    BEGIN, no statement budget, no COMMIT) on a pooled connection, for a request that may be
    answered from what it keeps without touching its session."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return connection.execute(GENERATION).scalar_one_or_none()
