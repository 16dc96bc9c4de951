"""Strong ETags and conditional GET for JSON representations."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_LIVED = "public, max-age=60"


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    candidates = {part.strip() for part in header.split(",")}
    return "*" in candidates or etag in candidates


def cached_json(
    request: Request,
    payload: Any,
    *,
    cache_control: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """JSON with a strong ETag over its exact bytes; 304 when the client already has them."""
    response = JSONResponse(jsonable_encoder(payload), headers=headers)
    etag = '"' + hashlib.sha256(response.body).hexdigest()[:32] + '"'
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = cache_control
    if _etag_matches(request, etag):
        return Response(
            status_code=304,
            headers={"ETag": etag, "Cache-Control": cache_control, **(headers or {})},
        )
    return response
