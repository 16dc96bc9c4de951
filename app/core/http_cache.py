"""Strong ETags and conditional GET for JSON representations."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

from fastapi import Request, Response

# What can never change: export files, snapshots, a diff between two releases.
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_LIVED = "public, max-age=60"
# A pinned release: its numbers never change, but the response also states the release's
# status, and a withdrawal or a deprecation must reach the tools that cached it. Caches keep it
# for five minutes, then revalidate with the strong ETag (a 304 while nothing changed).
PINNED_RELEASE = "public, max-age=300, must-revalidate"
# Drafts and anything seen only with a token.
PRIVATE = "private, no-store"


def etag_matches(request: Request, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 §13.1.2): W/"x" matches "x"."""
    return etag_header_matches(request.headers.get("if-none-match"), etag)


def etag_header_matches(header: str | None, etag: str) -> bool:
    """`etag_matches` on the If-None-Match header's value (None: no header)."""
    if not header:
        return False
    candidates = {part.strip().removeprefix("W/") for part in header.split(",")}
    return "*" in candidates or etag in candidates


def cached_json(
    request: Request,
    payload: Any,
    *,
    cache_control: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """JSON with a strong ETag over its exact bytes; 304 when the client already has them."""
    body = json_bytes(payload)
    return json_answer(
        request, body, strong_etag(body), cache_control=cache_control, headers=headers
    )


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def json_answer(
    request: Request,
    body: bytes,
    etag: str,
    *,
    cache_control: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """JSON bytes already made, with their strong ETag; 304 when the client already has them."""
    all_headers = {"ETag": etag, "Cache-Control": cache_control, **(headers or {})}
    if etag_matches(request, etag):
        return Response(status_code=304, headers=all_headers)
    return Response(body, media_type="application/json", headers=all_headers)


def _encode_other(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_bytes(payload: Any) -> bytes:
    """The stdlib's C encoder: several times faster than FastAPI's generic jsonable_encoder
    on pages of factors. Floats keep Python's shortest round-trip form; NaN is refused."""
    return json.dumps(
        payload,
        default=_encode_other,
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    ).encode("utf-8")
