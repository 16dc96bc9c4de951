"""The national snapshots page: each release with its manifest, files, sizes, sha256 and
attribution list. `/snapshots.json` is `GET /v1/snapshots` (same items, same cursors);
`/snapshots.csv` has one row per file, with its size and sha256."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from app.core.db import SessionDep
from app.core.errors import InvalidParameter
from app.core.http_cache import SHORT_LIVED
from app.core.pagination import decode_cursor, encode_cursor, next_link, page_response
from app.core.params import DEFAULT_PAGE, Cursor, Limit
from app.exports import service
from app.web.dataset_pages import csv_response
from app.web.i18n import Translator, negotiate
from app.web.templating import PageMeta, Twin, render_page

router = APIRouter()

SNAPSHOTS_SHOWN = 20


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    """The API's snapshot cursor (created_at, id), so either side's `next` works on both."""
    if cursor is None:
        return None
    created_at, snapshot_id = decode_cursor(cursor, {}, 2)
    try:
        return datetime.fromisoformat(str(created_at)), str(snapshot_id)
    except ValueError as exc:
        raise InvalidParameter(
            "The cursor is not one this service issued; start again without `cursor`.",
            errors=[{"loc": ["query", "cursor"], "code": "invalid_cursor", "detail": "malformed"}],
        ) from exc


def _page(
    session: Session, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    snapshots, position = service.list_snapshots(session, after=_after(cursor), limit=limit)
    next_cursor = encode_cursor([position[0].isoformat(), position[1]], {}) if position else None
    return [service.snapshot_resource(snapshot) for snapshot in snapshots], next_cursor


@router.get("/snapshots.json")
def snapshots_json(
    request: Request, session: SessionDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    items, next_cursor = _page(session, cursor, limit)
    return page_response(request, items, next_cursor, cache_control=SHORT_LIVED)


SNAPSHOT_CSV_COLUMNS = ("snapshot_id", "created_at", "row_count", "file", "bytes", "sha256", "url")


@router.get("/snapshots.csv")
def snapshots_csv(
    request: Request, session: SessionDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    """One row per file of each snapshot: what a download script checks its files against."""
    items, _ = _page(session, cursor, limit)
    rows = (
        (
            item["id"],
            item["created_at"].isoformat(),
            item["row_count"],
            entry["name"],
            entry["bytes"],
            entry["sha256"],
            entry["url"],
        )
        for item in items
        for entry in item["files"]
    )
    return csv_response(
        request,
        SNAPSHOT_CSV_COLUMNS,
        rows,
        filename="efdb-snapshots.csv",
        cache_control=SHORT_LIVED,
    )


@router.get("/snapshots")
def snapshots_page(request: Request, session: SessionDep, cursor: Cursor = None) -> Response:
    t = Translator(negotiate(request))
    items, next_cursor = _page(session, cursor, SNAPSHOTS_SHOWN)
    meta = PageMeta(
        title=t("snapshot_title"),
        twins=[
            Twin("application/json", "/snapshots.json", "JSON"),
            Twin("text/csv", "/snapshots.csv", t("snapshot_twin_csv")),
        ],
        api_path="/v1/snapshots",
    )
    context = {"snapshots": items, "next_href": next_link(request, next_cursor)}
    return render_page(request, "snapshots.html", context, meta=meta)
