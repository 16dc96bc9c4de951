"""The explorer's language choice (`app.web.i18n.negotiate`): `?lang=` first, then the
supported language the reader weights highest in `Accept-Language` (RFC 9110 §12.5.4), then
Chinese."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from app.web.i18n import negotiate


def request(accept_language: str | None = None, query: str = "") -> Request:
    headers = [] if accept_language is None else [(b"accept-language", accept_language.encode())]
    return Request(
        {"type": "http", "method": "GET", "query_string": query.encode(), "headers": headers}
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh;q=0.3, en;q=0.9", "en"),  # the higher weight wins, not the first listed
        ("en;q=0.2, zh-CN", "zh"),  # no q means 1
        ("en-GB;q=0.5, fr, zh-TW;q=0.8", "zh"),  # unsupported languages are skipped
        ("zh-CN;q=0.9, en-US;q=0.9", "zh"),  # equal weights: the first listed
        ("en-US;q=0.9, zh;q=0.9", "en"),
        ("en;q=0, zh;q=0.1", "zh"),  # q=0 means "not acceptable"
        ("zh;q=0, en;q=0", "zh"),  # nothing acceptable: the default
        ("fr, de;q=0.5", "zh"),
        ("", "zh"),
        ("en;q=oops, zh;q=0.4", "zh"),  # a malformed weight drops that entry
    ],
)
def test_accept_language_picks_the_highest_weighted_supported_language(
    header: str, expected: str
) -> None:
    assert negotiate(request(header)) == expected


def test_the_url_wins_over_the_header() -> None:
    assert negotiate(request("zh;q=1", "lang=en")) == "en"
    assert negotiate(request("en", "lang=zh")) == "zh"
    assert negotiate(request("en", "lang=fr")) == "en"  # an unsupported ?lang= is ignored
    assert negotiate(request()) == "zh"
