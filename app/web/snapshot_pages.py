"""The national snapshots page: each release with its manifest, files, sizes, sha256 and
attribution list. `/snapshots.json` is `GET /v1/snapshots`, its route function called
in-process (same items, same cursors, same headers); `/snapshots.csv` has one row per file,
with its size and sha256. All three read the export service's `snapshots_page`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from app.core.db import SessionDep
from app.core.http_cache import SHORT_LIVED
from app.core.pagination import next_link, page_response
from app.core.params import DEFAULT_PAGE, Cursor, Limit
from app.exports import service as export_service
from app.web.dataset_pages import csv_response
from app.web.i18n import Translator, negotiate
from app.web.params import declared_params_only
from app.web.templating import PageMeta, Twin, render_page

router = APIRouter(dependencies=[Depends(declared_params_only)])

SNAPSHOTS_SHOWN = 20


@router.get("/snapshots.json")
def snapshots_json(
    request: Request, session: SessionDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    items, next_cursor = export_service.snapshots_page(session, cursor=cursor, limit=limit)
    return page_response(request, items, next_cursor, cache_control=SHORT_LIVED)


SNAPSHOT_CSV_COLUMNS = ("snapshot_id", "created_at", "row_count", "file", "bytes", "sha256", "url")


@router.get("/snapshots.csv")
def snapshots_csv(
    request: Request, session: SessionDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    """One row per file of each snapshot: what a download script checks its files against."""
    items, _ = export_service.snapshots_page(session, cursor=cursor, limit=limit)
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
    items, next_cursor = export_service.snapshots_page(
        session, cursor=cursor, limit=SNAPSHOTS_SHOWN
    )
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
