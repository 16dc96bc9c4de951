"""Opaque keyset cursors and the `next` link that carries them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request, Response

from app.core.errors import InvalidParameter
from app.core.http_cache import cached_json
from app.core.problem_text import Message

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _fingerprint(scope: dict[str, Any]) -> str:
    canonical = json.dumps(scope, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(position: list[Any], scope: dict[str, Any]) -> str:
    """Encode the last row's sort key; `scope` (the filters) pins the cursor to its query."""
    payload = json.dumps({"p": position, "s": _fingerprint(scope)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scope: dict[str, Any], arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position = payload["p"]
        fingerprint = payload["s"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidParameter(
            Message("cursor.invalid"),
            errors=[{"loc": ["query", "cursor"], "code": "invalid_cursor", "detail": "unreadable"}],
        ) from exc
    if not isinstance(position, list) or len(position) != arity:
        raise InvalidParameter(
            Message("cursor.invalid"),
            errors=[{"loc": ["query", "cursor"], "code": "invalid_cursor", "detail": "malformed"}],
        )
    if fingerprint != _fingerprint(scope):
        raise InvalidParameter(
            Message("cursor.mismatch"),
            errors=[
                {"loc": ["query", "cursor"], "code": "cursor_mismatch", "detail": "other filters"}
            ],
        )
    return position


def next_link(request: Request, cursor: str | None) -> str | None:
    """Root-relative URL of the next page: the same query with the new cursor."""
    if cursor is None:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    params.append(("cursor", cursor))
    # Quoted: the header that carries it is ASCII and ends at `>`.
    return f"{quote(request.url.path)}?{urlencode(params)}"


def set_link_header(response: Response, next_url: str | None) -> None:
    if next_url is not None:
        response.headers["Link"] = f'<{next_url}>; rel="next"'


def after_id_from_cursor(cursor: str | None, scope: dict[str, Any]) -> int | None:
    """The row id a cursor continues after, for lists ordered by id."""
    if cursor is None:
        return None
    position = decode_cursor(cursor, scope, 1)[0]
    # Row ids are positive 64-bit integers; anything else was not issued here (and a huge
    # number would overflow the database's integer type: a 500 instead of a 422).
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < 2**63:
        raise InvalidParameter(
            Message("cursor.invalid"),
            errors=[{"loc": ["query", "cursor"], "code": "invalid_cursor", "detail": "malformed"}],
        )
    return position


def id_cursor(last_id: int | None, scope: dict[str, Any]) -> str | None:
    return encode_cursor([last_id], scope) if last_id is not None else None


def page_response(
    request: Request, items: list[Any], next_cursor: str | None, *, cache_control: str
) -> Response:
    """A list page: `{"items", "next"}` with its ETag, and the `Link: rel="next"` header."""
    next_url = next_link(request, next_cursor)
    response = cached_json(request, {"items": items, "next": next_url}, cache_control=cache_control)
    set_link_header(response, next_url)
    return response
