"""The terms of the activity vocabulary: how a search term matches a text as a term.

Chinese has no spaces, so a substring search for 烟煤 (bituminous coal) also finds 无烟煤
(anthracite). The activity vocabulary (the reference table `activity` and the publishers'
`activity_label`: names and keywords in both languages) is the list of terms that tells them
apart; `TermRule` says how one term matches, in Python and in SQL alike (factor search, the
activity listing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# What a term of `q` matches (`GET /v1/factors?match=`): a term (the default) or any substring.
MATCH_TERM, MATCH_SUBSTRING = "term", "substring"
MATCH_MODES = (MATCH_TERM, MATCH_SUBSTRING)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def is_cjk(term: str) -> bool:
    """A term with a Chinese character is matched as a Chinese term, any other at word starts."""
    return _CJK.search(term) is not None


def word_start_pattern(term: str) -> str:
    """A regular expression that PostgreSQL (ARE, `~`) and Python (SQLite's REGEXP, which
    SQLAlchemy implements with `re`) read alike: `term` at the start of the text or after a
    character that is not a letter, digit or underscore, case-insensitively."""
    return r"(?i)(^|\W)" + re.escape(term)


@dataclass(frozen=True)
class TermRule:
    """How one term of `q` matches a text when terms are asked for (`match=term`).

    - A term without Chinese characters (English, codes) matches at a word start: `coal`
      finds "Coal", "brown coal" and "sub-bituminous coal", never "charcoal".
    - A Chinese term matches where it occurs, except inside a *distinct term*: a longer term
      of the activity vocabulary (a keyword of the reference or of a publisher's labels) that
      holds it, of an activity that the term itself does not name. 烟煤 names the bituminous
      coal activity; 无烟煤 (anthracite) is a keyword of an activity that 烟煤 does not name,
      so 烟煤 inside 无烟煤 is not the term 烟煤. Only a term that is itself a name or keyword
      of the vocabulary has distinct terms: of any other, the vocabulary knows nothing, and
      it matches as a substring.
    """

    term: str  # lowercased
    word_start: bool = False
    distinct: tuple[str, ...] = ()  # lowercased, longest first

    @property
    def refines(self) -> bool:
        """Whether it finds fewer texts than the plain substring match."""
        return self.word_start or bool(self.distinct)

    def matches(self, text: str) -> bool:
        """Whether `text` holds the term, as the SQL of `condition` decides it."""
        if self.word_start:
            return re.search(word_start_pattern(self.term), text) is not None
        lowered = text.lower()
        for word in self.distinct:
            lowered = lowered.replace(word, " ")
        return self.term in lowered

    def condition(self, text: ColumnElement[str]) -> ColumnElement[bool]:
        """The refinement in SQL, on a text that already holds the term as a substring."""
        if self.word_start:
            return text.regexp_match(word_start_pattern(self.term))
        lowered: ColumnElement[str] = func.lower(text)
        for word in self.distinct:
            lowered = func.replace(lowered, word, " ")
        return lowered.like(f"%{_escape_like(self.term)}%", escape="\\")

    def explain(self) -> str:
        if self.word_start:
            return f"'{self.term}' at the start of a word"
        if self.distinct:
            listed = ", ".join(self.distinct)
            return f"'{self.term}', not inside the distinct terms {listed}"
        return f"'{self.term}' anywhere"


def term_rule(term: str, vocabulary: Iterable[Any]) -> TermRule:
    """How `term` (lowercased) matches as a term, given the vocabulary rows that hold it
    (each with `search_text`, whose lines after the id are its names and keywords, and
    `keywords_zh`)."""
    if not is_cjk(term):
        return TermRule(term, word_start=True)
    rows = list(vocabulary)
    named_by_term = [row for row in rows if term in row.search_text.split("\n")[1:]]
    if not named_by_term:
        return TermRule(term)  # not a term of the vocabulary: nothing known, a substring
    distinct = {
        keyword.lower()
        for row in rows
        if row not in named_by_term
        for keyword in row.keywords_zh or ()
        if term in keyword.lower() and keyword.lower() != term
    }
    return TermRule(term, distinct=tuple(sorted(distinct, key=lambda w: (-len(w), w))))
