"""URLs in metadata (a licence, a methodology, a factor's source): one check for every entry
point, and the only ways such a URL reaches a page's `href` or a response header.

A URL is accepted when it is an absolute `http` or `https` URL with a host, at most
`MAX_URL_LENGTH` characters, without whitespace, control, format (invisible) or separator
characters, without the characters that end a quoted attribute or a `Link` header target
(`<`, `>`, `"`, backslash, backtick), and without user information before the host
(`https://trusted.example@elsewhere.example/` reads as one host and goes to another).
Everything else (`javascript:`, `data:`, `file:`, relative paths, `//host/path`) is refused.

The stored value is never trusted on the way out: `safe_href` and `header_url` check it
again, so a URL written into the database by other means is shown as text, never as a link,
and never breaks a header.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated
from urllib.parse import quote, urlsplit

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from app.core.problem_text import Message

MAX_URL_LENGTH = 2000
SCHEMES = frozenset({"http", "https"})
_UNSAFE = frozenset('<>"\\`')


def url_problem(value: str) -> str | None:
    """Why `value` is not an acceptable metadata URL, or None when it is."""
    if len(value) > MAX_URL_LENGTH:
        return Message("url.too_long", length=len(value), limit=MAX_URL_LENGTH)
    for char in value:
        if char.isspace() or unicodedata.category(char)[0] in "CZ":
            return Message(
                "url.bad_character",
                code=f"{ord(char):04X}",
                name=unicodedata.name(char, "a control character"),
            )
        if char in _UNSAFE:
            return Message("url.must_encode", char=repr(char))
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return Message("url.not_a_url", error=str(exc))
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = (
            Message("url.scheme_not", scheme=parts.scheme)
            if parts.scheme
            else Message("url.no_scheme")
        )
        return Message("url.scheme", shown=shown)
    if not value[len(scheme) + 1 :].startswith("//") or not parts.hostname:
        return Message("url.no_host", scheme=scheme)
    if "@" in parts.netloc:
        return Message("url.credentials")
    if port == 0:
        return Message("url.port_zero")
    return None


def check_url(value: str) -> str:
    """`value` if it is an acceptable metadata URL; ValueError saying why not otherwise."""
    problem = url_problem(value)
    if problem is not None:
        raise ValueError(f"'{_shown(value)}' {problem}")
    return value


def _validated(value: str) -> str:
    problem = url_problem(value)
    if problem is not None:
        raise PydanticCustomError(
            "invalid_url", "'{value}' {problem}", {"value": _shown(value), "problem": problem}
        )
    return value


# A metadata URL field of a request body or an upload row (error type `invalid_url`).
HttpUrlText = Annotated[str, AfterValidator(_validated)]


def safe_href(value: object) -> str | None:
    """`value` as a link target, or None when it is not an acceptable URL (shown as text)."""
    if not isinstance(value, str) or url_problem(value) is not None:
        return None
    return value


def header_url(value: object) -> str | None:
    """`value` ready for a header such as `Link: <…>`, or None when it is not an acceptable
    URL: accepted, then any non-ASCII character percent-encoded (headers are ASCII)."""
    href = safe_href(value)
    if href is None:
        return None
    return quote(href, safe="".join(chr(c) for c in range(0x21, 0x7F)))


def _shown(value: str, limit: int = 80) -> str:
    """A refused value as an error message may repeat it: escaped, and cut short."""
    escaped = value.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"
