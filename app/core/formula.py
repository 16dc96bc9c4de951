"""The CSV formula guard: text cells a spreadsheet would run as a formula (OWASP CSV
injection) are refused on upload and neutralised in every CSV the service writes."""

from __future__ import annotations

# What a spreadsheet would run as a formula (OWASP CSV injection), with the full-width forms
# that spreadsheets in Chinese and Japanese locales also take; such text cells get a "'".
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# The first character of any text `looks_like_formula` finds: a prefix, or a space before one.
FORMULA_FIRST_CHARACTERS = frozenset((*FORMULA_PREFIXES, " ", "\u3000"))


def neutralise(text: str) -> str:
    """Prefix text a spreadsheet would evaluate as a formula with an apostrophe."""
    return "'" + text if looks_like_formula(text) else text


def looks_like_formula(text: str) -> bool:
    """Starts (after any spaces) like something a spreadsheet would evaluate."""
    return text.lstrip(" \u3000").startswith(FORMULA_PREFIXES)
