"""All pages of the web explorer, and what they share: static files and HTML error pages.

Page routes stay out of the OpenAPI document (`include_in_schema=False`): their contract is the
HTML and the `.json` twin, which is the API's own schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from app.web.changes_pages import router as changes_pages
from app.web.citation_check_pages import router as citation_check_pages
from app.web.dataset_pages import router as dataset_pages
from app.web.factor_pages import router as factor_pages
from app.web.i18n import Lang, Translator, negotiate
from app.web.resolve_pages import router as resolve_pages
from app.web.search import router as search_pages
from app.web.snapshot_pages import router as snapshot_pages
from app.web.templating import PageMeta, render_page

STATIC_DIR = Path(__file__).parent / "static"
# Paths that belong to the machine interfaces: their errors stay problem+json.
_API_PREFIXES = ("/v1/", "/oauth/", "/auth/", "/.well-known/", "/healthz", "/readyz", "/metrics")
_MACHINE_SUFFIXES = (".json", ".csv", ".parquet", ".arrow", ".arrows", ".atom")

# One router per page module, each owning its routes, its templates and its labels.
PAGE_ROUTERS: tuple[APIRouter, ...] = (
    dataset_pages,
    resolve_pages,
    snapshot_pages,
    changes_pages,
    citation_check_pages,
    search_pages,
    factor_pages,
)


def is_page_request(request: Request) -> bool:
    """A person's browser asking for a page (not an API client, not a machine twin)."""
    path = request.url.path
    if path.startswith(_API_PREFIXES) or path.endswith(_MACHINE_SUFFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def render_error_page(request: Request, problem: JSONResponse) -> Response | None:
    """The API's problem details, shown as a page in the reader's language."""
    if not is_page_request(request):
        return None
    body: dict[str, Any] = json.loads(bytes(problem.body))
    t = Translator(negotiate(request))
    title = t("not_found_title") if problem.status_code == 404 else t("error_title")
    page = render_page(
        request,
        "error.html",
        {"problem": body},
        meta=PageMeta(title=title),
        status_code=problem.status_code,
        cache_control="no-store",
    )
    for name in ("www-authenticate", "allow", "retry-after"):
        if name in problem.headers:
            page.headers[name] = problem.headers[name]
    return page


def page_language(request: Request) -> Lang | None:
    """A page's problems are in the page's language (`?lang=`, `Accept-Language`, Chinese)."""
    return negotiate(request) if is_page_request(request) else None


def install_web(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.page_error_renderer = render_error_page
    app.state.page_language = page_language
    for page_router in PAGE_ROUTERS:
        app.include_router(page_router, include_in_schema=False)
