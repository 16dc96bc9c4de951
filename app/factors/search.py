"""Text search over factor names, Chinese and English, on both databases.

`q` is split on whitespace; every term must occur (as a substring, case-insensitively) in
the Chinese name, the English name or the activity id. Chinese has no spaces, so "substring"
is the only sensible unit for it, and it serves English well enough for names this short.

- SQLite: terms of 3+ characters go through the FTS5 table `factor_fts` (trigram tokenizer,
  migration 20261125_0003; filled at publish since 20261125_0004), which answers substring
  queries from its index; shorter terms
  (电力 is 2 characters, below any trigram) fall back to LIKE.
- PostgreSQL: ILIKE on the names and activity id joined by spaces, the expression the
  pg_trgm GIN index of the same migration is built on; it serves terms of 3+ characters
  (shorter terms have no trigram and scan). Terms hold no whitespace, so a term cannot match
  across two of the joined texts.

Results rank exact activity matches first (see `text_rank`), then by id.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from app.factors.models import Factor

MAX_TERMS = 8
TRIGRAM = 3

# Not in the models' metadata: the FTS5 table is created by the migration on SQLite only.
factor_fts = Table("factor_fts", MetaData(), Column("rowid", Integer), Column("factor_fts", Text))


# Exactly the indexed expression of migration 20261125_0003 (literals, not parameters, or
# PostgreSQL would not recognise it as the index's expression).
SEARCH_TEXT_SQL = (
    "(coalesce(factor.name_zh, '') || ' ' || coalesce(factor.name_en, '') || ' ' "
    "|| factor.activity_id)"
)
_search_text = literal_column(SEARCH_TEXT_SQL, Text)


def text_terms(q: str) -> list[str]:
    """The distinct whitespace-separated terms of `q`, at most MAX_TERMS."""
    return list(dict.fromkeys(q.split()))[:MAX_TERMS]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_any(term: str) -> ColumnElement[bool]:
    pattern = f"%{_escape_like(term.lower())}%"
    return or_(
        Factor.name_zh.ilike(pattern, escape="\\"),
        Factor.name_en.ilike(pattern, escape="\\"),
        Factor.activity_id.ilike(pattern, escape="\\"),
    )


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def text_condition(q: str, dialect: str) -> ColumnElement[bool]:
    """Every term of `q` in a name or the activity id."""
    terms = text_terms(q)
    if not terms:
        return Factor.id.is_(None)
    if dialect == "postgresql":
        return and_(
            *(_search_text.ilike(f"%{_escape_like(term.lower())}%", escape="\\") for term in terms)
        )
    if dialect != "sqlite":
        return and_(*(_like_any(term) for term in terms))
    indexed = [term for term in terms if len(term) >= TRIGRAM]
    conditions = [_like_any(term) for term in terms if len(term) < TRIGRAM]
    if indexed:
        match = " AND ".join(_fts_phrase(term) for term in indexed)
        conditions.append(
            Factor.id.in_(
                select(factor_fts.c.rowid).where(factor_fts.c.factor_fts.op("MATCH")(match))
            )
        )
    return and_(*conditions)


def text_rank(q: str) -> ColumnElement[Any]:
    """0: the activity id is `q` (spaces read as hyphens); 1: a name is exactly `q`;
    2: the activity id or a name starts with `q`; 3: any other match."""
    text = " ".join(q.split())
    lowered = text.lower()
    slug = re.sub(r"[\s_]+", "-", lowered)
    return case(
        (Factor.activity_id == slug, 0),
        (or_(Factor.name_zh == text, func.lower(Factor.name_en) == lowered), 1),
        (
            or_(
                Factor.activity_id.startswith(slug, autoescape=True),
                Factor.name_zh.startswith(text, autoescape=True),
                func.lower(Factor.name_en).startswith(lowered, autoescape=True),
            ),
            2,
        ),
        else_=3,
    )


def index_released_factors(session: Session, *, version_id: int) -> None:
    """Add a just-published version's names to SQLite's FTS5 index (migration 20261125_0004).

    Only released rows are searched and they never change, so indexing happens once, here,
    rather than per inserted draft row. PostgreSQL's GIN index needs no such step.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    session.execute(
        text(
            "INSERT INTO factor_fts(rowid, name_zh, name_en, activity_id) "
            "SELECT id, name_zh, name_en, activity_id FROM factor WHERE version_id = :version_id"
        ),
        {"version_id": version_id},
    )
