"""Rendering pages: one Jinja2 environment, the reader's language, caching and machine twins.

Every page is rendered through `render_page`, which gives templates the translator `t`, the
language switch links, the `<link rel="alternate">` twins and the copyable API snippets, and
answers conditional GETs with 304 the way the JSON API does.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from app.core.http_cache import SHORT_LIVED, etag_matches
from app.core.urls import safe_href
from app.web.i18n import LANGUAGES, Lang, Translator, negotiate

TEMPLATES_DIR = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True
# A metadata URL as an `href` only when it passes the metadata URL check (a stored
# `javascript:` or relative value is shown as text by the `{% if … | http_href %}` guard).
templates.env.filters["http_href"] = safe_href


@dataclass(frozen=True)
class Twin:
    """A machine-readable twin of a page: the same data the page shows, in the API's schema."""

    media_type: str
    href: str
    label: str


@dataclass
class PageMeta:
    """What every page tells the layout besides its own content."""

    title: str
    twins: list[Twin] = field(default_factory=list)
    # The API call that returns this page's data (path and query), for the curl/Python snippets.
    api_path: str | None = None
    canonical: str | None = None
    # For an API call that is a POST (resolve, estimate): the JSON body the snippets send.
    api_body: Any = None


def query_string(**params: object) -> str:
    """A query string of the non-empty parameters, in a stable order (filter state in the URL)."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((name, str(v)) for v in values if v not in (None, ""))
    return ("?" + urlencode(pairs)) if pairs else ""


def with_lang(request: Request, lang: Lang) -> str:
    """This page's URL in another language: the same path and filters, `lang` replaced."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    params.append(("lang", lang))
    return f"{request.url.path}?{urlencode(params)}"


def public_url(request: Request) -> str:
    """The service's configured public origin (`EFDB_PUBLIC_BASE_URL` or the issuer), for
    absolute URLs in pages: a page may be cached and served to others, so nothing in it comes
    from the request's `Host` header."""
    base: str = request.app.state.settings.public_url
    return base


def api_snippets(request: Request, api_path: str, body: Any = None) -> dict[str, str]:
    """Copyable commands that fetch this page's data from the API, pinned like the page."""
    url = public_url(request) + api_path
    if body is not None:
        document = json.dumps(body, ensure_ascii=False)
        return {
            "curl": f"curl -s -X POST {shlex.quote(url)} -H 'Content-Type: application/json' "
            f"-d {shlex.quote(document)}",
            "python": f"import httpx\n\ndata = httpx.post({json.dumps(url)}, "
            f"json={json.dumps(body, ensure_ascii=False, indent=None)}).json()",
        }
    return {
        "curl": f"curl -s {shlex.quote(url)}",
        "python": f"import httpx\n\ndata = httpx.get({json.dumps(url)}).json()",
    }


def _number(value: float | int | None, digits: int = 6) -> str:
    """Numbers as the API gives them, without float noise or scientific notation for humans."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    text = f"{value:.{digits}g}"
    if "e" in text:
        return repr(value)
    return text


def _when(value: datetime | date | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def _exact(value: float | int | None) -> str:
    """A number exactly as the API sends it (shortest round-trip form), never rounded, without
    an exponent: for the figures a reader copies into a calculation."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{3,}")


def _text_lang(text: str | None) -> str | None:
    """The language of a piece of data text when it is plainly one: `zh-CN` for Chinese
    without English words, `en` for Latin text without Chinese; None for mixed or empty text
    (it then inherits the page's). Lets pages mark data in the other language (WCAG 3.1.2)."""
    if not text:
        return None
    chinese, latin = bool(_CJK.search(text)), bool(_LATIN_WORD.search(text))
    if chinese and not latin:
        return "zh-CN"
    if latin and not chinese:
        return "en"
    return None


templates.env.filters["number"] = _number
templates.env.filters["text_lang"] = _text_lang
templates.env.filters["exact"] = _exact
templates.env.filters["when"] = _when


def render_page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    meta: PageMeta,
    status_code: int = 200,
    cache_control: str = SHORT_LIVED,
    lang: Lang | None = None,
) -> Response:
    """The page in the reader's language, with a strong ETag over its bytes."""
    lang = lang or negotiate(request)
    t = Translator(lang)
    other: Lang = next(code for code in LANGUAGES if code != lang)
    body = templates.get_template(template).render(
        {
            **context,
            "request": request,
            "lang": lang,
            "t": t,
            "meta": meta,
            "switch_href": with_lang(request, other),
            "switch_lang": other,
            "snippets": (
                api_snippets(request, meta.api_path, meta.api_body) if meta.api_path else None
            ),
        }
    )
    encoded = body.encode("utf-8")
    headers = {
        "ETag": '"' + hashlib.sha256(encoded).hexdigest()[:32] + '"',
        "Cache-Control": cache_control,
        "Content-Language": lang,
    }
    if "lang" not in request.query_params:
        headers["Vary"] = "Accept-Language"
    if status_code == 200 and etag_matches(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return HTMLResponse(encoded, status_code=status_code, headers=headers)
