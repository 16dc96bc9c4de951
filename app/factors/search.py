"""Text search over factor names, Chinese and English, on both databases.

`q` is split on whitespace; every term must occur (case-insensitively) in the Chinese name,
the English name or the activity id. The indexes below find the factors that hold each term
as a substring; with `match=term` (the default) each term must then also match as a term
(`app.reference.terms.TermRule`: Chinese outside the longer, distinct terms of the activity
vocabulary, so 烟煤 does not find 无烟煤; other text at a word start, so coal does not find
charcoal), a condition evaluated on the candidates only (`TextSearch.refine_condition`).
`match=substring` keeps the substrings, ranking the term matches first.

- SQLite: terms of 3+ characters go through the FTS5 table `factor_fts` (trigram tokenizer,
  migration 20261125_0003; filled at publish since 20261125_0004), which answers substring
  queries from its index; shorter terms
  (电力 is 2 characters, below any trigram) fall back to LIKE.
- PostgreSQL: ILIKE on the names and activity id joined by spaces, the expression the
  pg_trgm GIN index of the same migration is built on; it serves terms of 3+ characters
  (shorter terms have no trigram and scan). Terms hold no whitespace, so a term cannot match
  across two of the joined texts.

Activity labels (`activity` reference table: names and synonyms of each `activity_id`) widen
every term at query time: a term also matches the factors of the activities whose id, names or
keywords hold it. The MEE's official names say 电力, never 电网; the activity
`electricity-grid-mix` has 电网 among its keywords, so 电网 finds them. The labels are looked
up first (one query over the small table, LIKE on its lowercased `search_text`, which any
length of term serves, 电网's two characters included), then each term's condition on factors
is "own text holds it OR activity_id IN (the ids found)": a plain list the activity index
answers, next to the text index.

Results rank exact activity matches first (see `TextSearch.rank`), then by id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.factors.models import Factor
from app.reference.models import Activity, ActivityLabel
from app.reference.terms import MATCH_SUBSTRING, MATCH_TERM, TermRule, term_rule

MAX_TERMS = 8
TRIGRAM = 3
# A term the text indexes can serve: three word characters in a row (pg_trgm ignores the
# rest; FTS5's trigram tokenizer needs three characters too).
_INDEXABLE = re.compile(r"\w{3}")


def indexable(term: str) -> bool:
    return _INDEXABLE.search(term) is not None


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


def own_text_condition(q: str, dialect: str) -> ColumnElement[bool]:
    """Every term of `q` in a name or the activity id of the factor itself."""
    terms = text_terms(q)
    if not terms:
        return Factor.id.is_(None)
    if dialect == "postgresql":
        return and_(*(_own_term_postgresql(term) for term in terms))
    if dialect != "sqlite":
        return and_(*(_like_any(term) for term in terms))
    indexed = [term for term in terms if len(term) >= TRIGRAM]
    conditions = [_like_any(term) for term in terms if len(term) < TRIGRAM]
    if indexed:
        conditions.append(_fts_match(indexed))
    return and_(*conditions)


def _own_term_postgresql(term: str) -> ColumnElement[bool]:
    return _search_text.ilike(f"%{_escape_like(term.lower())}%", escape="\\")


def _fts_match(terms: list[str]) -> ColumnElement[bool]:
    match = " AND ".join(_fts_phrase(term) for term in terms)
    return Factor.id.in_(
        select(factor_fts.c.rowid).where(factor_fts.c.factor_fts.op("MATCH")(match))
    )


def _own_term(term: str, dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return _own_term_postgresql(term)
    if dialect == "sqlite" and len(term) >= TRIGRAM:
        return _fts_match([term])
    return _like_any(term)


@dataclass(frozen=True)
class TextSearch:
    """A text query with its activity labels looked up: what `q` finds and how it ranks.

    `labelled[i]` holds the activity ids whose labels hold term i; `named` those whose name
    or a keyword is the whole of `q`.
    """

    q: str
    dialect: str
    terms: tuple[str, ...]
    labelled: tuple[frozenset[str], ...]
    named: frozenset[str]
    # One per term: how it matches as a term. With `match=term` they filter; with
    # `match=substring` they only rank term matches above the other substrings.
    rules: tuple[TermRule, ...] = ()
    match: str = MATCH_TERM

    @property
    def widened(self) -> bool:
        return any(self.labelled)

    @property
    def refined(self) -> bool:
        """Whether a term matches as a term fewer texts than as a substring."""
        return any(rule.refines for rule in self.rules)

    @property
    def filters_terms(self) -> bool:
        return self.match == MATCH_TERM and self.refined

    def condition(self) -> ColumnElement[bool]:
        """Every term in the factor's own text, or in its activity's labels."""
        if not self.widened and not self.filters_terms:  # the plain search, statement unchanged
            return own_text_condition(self.q, self.dialect)
        parts = [
            or_(_own_term(term, self.dialect), Factor.activity_id.in_(sorted(ids)))
            if ids
            else _own_term(term, self.dialect)
            for term, ids in zip(self.terms, self.labelled, strict=True)
        ]
        refined = self.refine_condition()
        return and_(*parts, *([refined] if refined is not None else []))

    def refine_condition(self) -> ColumnElement[bool] | None:
        """What term matching (`match=term`) asks beyond the substring conditions: each term
        at a word start, or outside its distinct terms, in the factor's own text (or found
        through its activity's labels, which were matched the same way). Evaluated on the
        candidates the text indexes found, never to find them."""
        if self.match != MATCH_TERM:
            return None
        parts = [
            or_(rule.condition(_search_text), Factor.activity_id.in_(sorted(ids)))
            if ids
            else rule.condition(_search_text)
            for rule, ids in zip(self.rules, self.labelled, strict=True)
            if rule.refines
        ]
        return and_(*parts) if parts else None

    def own_condition(self) -> ColumnElement[bool]:
        """Every term in the factor's own text, matched as a term (word starts, distinct terms)."""
        plain = own_text_condition(self.q, self.dialect)
        refined = [rule.condition(_search_text) for rule in self.rules if rule.refines]
        return and_(plain, *refined) if refined else plain

    def short_terms(self) -> list[str]:
        """Terms no text index can serve (fewer than three word characters)."""
        return [term for term in self.terms if not indexable(term)]

    def short_condition(self) -> ColumnElement[bool] | None:
        """The part of `condition()` no text index serves: the short terms' conditions."""
        parts = [
            or_(_own_term(term, self.dialect), Factor.activity_id.in_(sorted(ids)))
            if ids
            else _own_term(term, self.dialect)
            for term, ids in zip(self.terms, self.labelled, strict=True)
            if not indexable(term)
        ]
        return and_(*parts) if parts else None

    def indexed_condition(self) -> ColumnElement[bool] | None:
        """The part of `condition()` that text and activity indexes answer: the conditions of
        the indexable terms (each widened by its activity labels), or None if none is."""
        pairs = [
            (term, ids)
            for term, ids in zip(self.terms, self.labelled, strict=True)
            if indexable(term)
        ]
        plain = [term for term, ids in pairs if not ids]
        parts = [
            or_(_own_term(term, self.dialect), Factor.activity_id.in_(sorted(ids)))
            for term, ids in pairs
            if ids
        ]
        if plain and self.dialect == "sqlite":
            # One FTS5 query for all of them: the index intersects the terms itself, instead
            # of listing every row that holds a common one.
            parts.append(_fts_match(plain))
        else:
            parts.extend(_own_term(term, self.dialect) for term in plain)
        return and_(*parts) if parts else None

    def rank(self) -> ColumnElement[Any]:
        """0: the activity id is `q` (spaces read as hyphens); 1: a name is exactly `q`;
        2: the activity id or a name starts with `q`; 3: any other match in the factor's own
        text (with `match=substring`: a match of the terms, as `match=term` reads them); 4:
        with `match=substring`, a match in its own text that is only a substring (烟煤 in
        无烟煤); 5: found through its activity's labels, a name or keyword of which is `q`;
        6: found through its activity's labels otherwise."""
        text = " ".join(self.q.split())
        lowered = text.lower()
        slug = re.sub(r"[\s_]+", "-", lowered)
        whens: list[tuple[ColumnElement[bool], int]] = [
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
        ]
        if not self.widened and not self.refined:  # the plain text search, ranks unchanged
            return case(*whens, else_=3)
        whens.append((self.own_condition(), 3))
        if self.match == MATCH_SUBSTRING and self.refined:
            whens.append((own_text_condition(self.q, self.dialect), 4))
        if not self.widened:
            return case(*whens, else_=4)
        if self.named:
            whens.append((Factor.activity_id.in_(sorted(self.named)), 5))
        return case(*whens, else_=6)


def text_search(session: Session, q: str, match: str = MATCH_TERM) -> TextSearch:
    """Look `q`'s terms up in the activity labels (one query over each of the small tables:
    the reference vocabulary `activity` and the publishers' `activity_label`), and build
    each term's rule from them (`TermRule`)."""
    dialect = session.get_bind().dialect.name
    terms = tuple(text_terms(q))
    lowered = [term.lower() for term in terms]
    if not terms:
        return TextSearch(q, dialect, terms, (), frozenset(), match=match)
    rows = [
        *session.execute(
            select(Activity.id, Activity.search_text, Activity.keywords_zh).where(
                or_(*(_activity_term(Activity.search_text, term) for term in lowered))
            )
        ),
        *session.execute(
            select(
                ActivityLabel.activity_id.label("id"),
                ActivityLabel.search_text,
                ActivityLabel.keywords_zh,
            ).where(or_(*(_activity_term(ActivityLabel.search_text, term) for term in lowered)))
        ),
    ]
    rules = tuple(term_rule(term, rows) for term in lowered)
    labelled = tuple(
        frozenset(
            row.id
            for row in rows
            if term in row.search_text and (match != MATCH_TERM or rule.matches(row.search_text))
        )
        for term, rule in zip(lowered, rules, strict=True)
    )
    whole = " ".join(q.split()).lower()
    # The first line of `search_text` is the id (rank 0 compares ids): names and keywords follow.
    named = frozenset(row.id for row in rows if whole in row.search_text.split("\n")[1:])
    return TextSearch(q, dialect, terms, labelled, named, rules, match)


def _activity_term(column: InstrumentedAttribute[str], lowered_term: str) -> ColumnElement[bool]:
    # Both sides lowercased in Python: LIKE then agrees with `in` on either database.
    return column.like(f"%{_escape_like(lowered_term)}%", escape="\\")


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
