"""Where a draft's rows live: `factor_draft` while it is a draft, `factor` from its submit on.

An upload writes its rows into `factor_draft` (no read index, no foreign key, no trigger: see
migration 20261209_0912), whose unique `(version_id, factor_code)` finds a duplicate code as
the rows are written. Submit moves them into `factor` in upload order, where every index,
key and guard applies, before the content hash is computed; from then on every read path
finds them where it finds a release's.
"""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from app.factors.models import Factor, FactorDraft

# Moved in statements of this many rows: each one well within a write request's statement
# budget (about 7 s per 100,000 rows into `factor` as migrated, 2 cores at load 7-8).
MOVE_CHUNK = 100_000

_FACTOR = Factor.metadata.tables["factor"]
_MOVED = [
    name
    for name in FactorDraft.__table__.columns.keys()  # noqa: SIM118 (a ColumnCollection)
    if name != "position"
]


def is_duplicate_code(exc: BaseException) -> bool:
    """`exc` is the unique `(version_id, factor_code)` of `factor_draft` refusing a row (an
    IntegrityError from SQLite's executemany, psycopg's UniqueViolation from a COPY)."""
    text = str(exc)
    return "uq_factor_draft_version_id_factor_code" in text or (
        "UNIQUE constraint failed: factor_draft.version_id, factor_draft.factor_code" in text
    )


def stored_codes(session: Session, version_id: int) -> dict[str, int]:
    """The codes of a draft's stored rows, each with its row number in the file."""
    rows = session.execute(
        select(FactorDraft.factor_code, FactorDraft.row_number).where(
            FactorDraft.version_id == version_id
        )
    )
    # Every stored row has its row number (`store_factors` takes them with one).
    return {code: row_number for code, row_number in rows if row_number is not None}


def delete_rows(session: Session, version_id: int) -> None:
    """A draft's rows, wherever they are (a replaced or deleted draft)."""
    session.execute(delete(FactorDraft).where(FactorDraft.version_id == version_id))
    session.execute(delete(Factor).where(Factor.version_id == version_id))


def move_into_factors(session: Session, version_id: int) -> int:
    """Move a draft's rows into `factor` in their upload order (ids follow it), in statements
    of at most MOVE_CHUNK rows; returns how many moved."""
    last = session.execute(
        select(func.max(FactorDraft.position)).where(FactorDraft.version_id == version_id)
    ).scalar_one()
    for start in range(0, last or 0, MOVE_CHUNK):
        rows = (
            select(*(FactorDraft.__table__.c[name] for name in _MOVED))
            .where(
                FactorDraft.version_id == version_id,
                FactorDraft.position > start,
                FactorDraft.position <= start + MOVE_CHUNK,
            )
            .order_by(FactorDraft.position)
        )
        session.execute(insert(_FACTOR).from_select(_MOVED, rows))
    session.execute(delete(FactorDraft).where(FactorDraft.version_id == version_id))
    return last or 0  # positions run 1, 2, … N


def row_count(session: Session, version_id: int) -> int:
    """How many rows a version holds, wherever they are (a draft's in `factor_draft`)."""
    return sum(
        session.execute(
            select(func.count()).select_from(table).where(table.version_id == version_id)
        ).scalar_one()
        for table in (FactorDraft, Factor)
    )
