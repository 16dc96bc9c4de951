"""Text that is safe to store and to show: NFC, no invisible or control characters.

A name that renders one way and sorts, searches or compares another (a right-to-left override,
a zero-width space, a NUL that PostgreSQL cannot store) is refused where it enters, with the
character named, rather than cleaned silently.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache
from urllib.parse import quote

# Invisible characters outside the Cf (format) category that render as nothing.
INVISIBLE_LETTERS = "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"
# Line breaks allowed in multi-line text (descriptions, notes).
MULTILINE_BREAKS = "\t\n\r"


# Planes 0-3 and 14 hold every Cc, Cf, Cs, Zl and Zp character (the others are unassigned
# or private use); scanning only them keeps the first use fast.
_SCANNED = (range(0, 0x40000), range(0xE0000, 0xF0000))
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@lru_cache(maxsize=2)
def _forbidden(multiline: bool) -> re.Pattern[str]:
    """Controls (Cc), format characters (Cf: bidi controls, zero-width characters, the BOM),
    surrogates (Cs), line and paragraph separators (Zl, Zp) and invisible fillers."""
    ranges: list[tuple[int, int]] = []
    for code in itertools.chain.from_iterable(_SCANNED):
        char = chr(code)
        if unicodedata.category(char) not in _REFUSED_CATEGORIES and (
            char not in INVISIBLE_LETTERS
        ):
            continue
        if multiline and char in MULTILINE_BREAKS:
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    body = "".join(
        re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
        for low, high in ranges
    )
    return re.compile(f"[{body}]")


def forbidden_pattern(*, multiline: bool) -> re.Pattern[str]:
    """What `forbidden_character` looks for, to test many texts joined in one scan."""
    return _forbidden(multiline)


def forbidden_character(text: str, *, multiline: bool = False) -> str | None:
    """The first character that may not appear in stored text, described, or None."""
    found = _forbidden(multiline).search(text)
    if found is None:
        return None
    char = found.group()
    name = unicodedata.name(char, "") or {"Cc": "control character", "Cs": "surrogate"}.get(
        unicodedata.category(char), "invisible character"
    )
    return f"U+{ord(char):04X} {name}".strip() + f" at character {found.start() + 1}"


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


_UNSAFE_IN_NAME = re.compile(r"[<>:\"'`|?*;%&$#{}\[\]\\/]")
MAX_FILE_NAME = 200


def safe_file_name(raw: str | None) -> str | None:
    """The base name of an uploaded file, for display and provenance only: no directories,
    no controls or invisible characters, no characters that mean something to a shell, a
    header or a page, no leading dot, at most MAX_FILE_NAME characters (extension kept)."""
    if raw is None:
        return None
    base = re.split(r"[\\/]", raw)[-1]
    base = _forbidden(False).sub("", nfc(base))
    base = _UNSAFE_IN_NAME.sub("_", base).strip().lstrip(".").strip()
    if len(base) > MAX_FILE_NAME:
        stem, dot, extension = base.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            base = stem[: MAX_FILE_NAME - len(extension) - 1] + "." + extension
        else:
            base = base[:MAX_FILE_NAME]
    return base or "upload"


def escaped(raw: str, limit: int = 1024) -> str:
    """A printable ASCII rendering of any text (backslash escapes), cut at `limit` characters,
    for recording what a client sent without storing its bytes as they are."""
    text = raw.encode("unicode_escape", errors="backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "..."


def content_disposition(disposition: str, filename: str) -> str:
    """A Content-Disposition header value that no file name can break out of: an ASCII
    `filename` with anything else replaced, and the exact name as RFC 8187 `filename*`."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "download"
    if plain == filename:
        return f'{disposition}; filename="{plain}"'
    return f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"
