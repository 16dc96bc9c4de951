""" "Did you mean": the known values closest to one that was refused.

A value that differs only in case comes first (`kwh` → `kWh`, `ar6` → `AR6`, `cn` → `CN`),
then the closest spellings (difflib's ratio ≥ 0.75, compared case-insensitively).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from app.core.problem_text import Message

MAX_SUGGESTIONS = 3
CUTOFF = 0.75


def did_you_mean(value: str, candidates: Iterable[str]) -> list[str]:
    """Up to three known values a person who typed `value` probably meant."""
    known = list(dict.fromkeys(candidates))
    wanted = value.strip().casefold()
    if not wanted:
        return []
    found = [candidate for candidate in known if candidate.casefold() == wanted]
    by_folded: dict[str, str] = {}
    for candidate in known:
        by_folded.setdefault(candidate.casefold(), candidate)
    close = difflib.get_close_matches(wanted, list(by_folded), n=MAX_SUGGESTIONS, cutoff=CUTOFF)
    for folded in close:
        if by_folded[folded] not in found:
            found.append(by_folded[folded])
    return found[:MAX_SUGGESTIONS]


def suggestion_text(suggestions: Iterable[str]) -> str:
    """`; did you mean 'kWh'?` for a detail, or nothing without a suggestion."""
    quoted = [f"'{suggestion}'" for suggestion in suggestions]
    if not quoted:
        return ""
    return f"; did you mean {' or '.join(quoted)}?"


def suggestion_message(detail: str, suggestions: Iterable[str]) -> str:
    """`detail` followed by the "did you mean" of `suggestions`, as a problem `Message` (in
    both languages; its English is `detail + suggestion_text(suggestions)`)."""
    quoted = [f"'{suggestion}'" for suggestion in suggestions][:MAX_SUGGESTIONS]
    if not quoted:
        return detail
    names = ("one", "two", "three")
    params = dict(zip(("a", "b", "c"), quoted, strict=False))
    return Message(f"suggest.{names[len(quoted) - 1]}", detail=detail, **params)
