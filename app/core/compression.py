"""Negotiated compression of answers: zstd, then Brotli, then gzip, as the client offers them
(`Accept-Encoding`), for text answers (JSON, problem+json, CSV, HTML, JavaScript…) of at least
`EFDB_COMPRESS_MIN_BYTES`; never for Parquet and Arrow files, which are compressed already
(their media types are not on the list), nor for a range of a file.

starlette-compress does the work; it adds `Vary: Accept-Encoding` and keeps the ETag (as
Starlette's own GZip middleware does), so a conditional GET still answers 304.
"""

from __future__ import annotations

from starlette.types import ASGIApp
from starlette_compress import CompressMiddleware, add_compress_type

# Text answers this service sends that the library's list (JSON, HTML, CSS, JS…) lacks.
EXTRA_COMPRESSIBLE = ("text/csv", "application/problem+json", "application/prov+json")


def install_compress_types() -> None:
    for media_type in EXTRA_COMPRESSIBLE:
        add_compress_type(media_type)


def compression(app: ASGIApp, *, minimum_size: int) -> CompressMiddleware:
    install_compress_types()
    return CompressMiddleware(app, minimum_size=minimum_size)
