"""Dataset, version, release-diff and publisher pages, with their `.json` and `.csv` twins.

Every page calls the service functions the JSON API calls, as the anonymous reader (so a
registered dataset never shows), and each `.json` twin answers exactly what the API answers
for the same thing:

| page | `.json` twin = |
|---|---|
| `/datasets/{p}/{d}` | `GET /v1/datasets/{p}/{d}` (and `…/versions.json` = `…/versions`) |
| `/datasets/{p}/{d}/versions/{v}` | `GET /v1/datasets/{p}/{d}/versions/{v}` (and `…/factors`) |
| `/datasets/{p}/{d}/diff/{a}...{b}` | `GET /v1/datasets/{p}/{d}/versions/{b}/diff?from={a}` |
| `/publishers/{p}` | `GET /v1/datasets?publisher={p}` (404 for an unknown publisher) |

Each twin calls the API's own route function in-process (as the anonymous reader), so its body
and its `ETag`, `Cache-Control` and `Content-Type` are the API's and cannot drift from them.

Downloads link the API's own export URLs. The export API serves every released version of a
dataset the reader may see, including those whose license forbids redistribution (the file
carries the license; see README "Per-version exports"), so those buttons are links. What the
license does exclude is the national snapshot: that button is disabled, with the reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.db import SessionDep
from app.core.errors import InvalidParameter
from app.core.formula import neutralise
from app.core.http_cache import (
    IMMUTABLE,
    PINNED_RELEASE,
    PRIVATE,
    SHORT_LIVED,
    cached_json,
    etag_matches,
)
from app.core.pagination import next_link, page_response
from app.core.params import DEFAULT_PAGE, Cursor, DatasetSlug, Limit, PublisherSlug
from app.core.principal import ANONYMOUS
from app.core.problem_text import Message
from app.core.text import content_disposition
from app.datasets import service as datasets
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.exports.models import Snapshot, snapshot_version
from app.factors import service as factor_service
from app.factors.models import Factor
from app.versioning import versions
from app.versioning.diff import diff_response, release_diff, released_pair, version_diff
from app.web.factor_pages import factor_path
from app.web.i18n import Translator, negotiate
from app.web.params import declared_params_only
from app.web.templating import PageMeta, Twin, query_string, render_page

router = APIRouter(dependencies=[Depends(declared_params_only)])

VIEWER = ANONYMOUS
# A diff page lists at most this many factors of each kind; the twins hold them all.
DIFF_ROWS_SHOWN = 200
# Factors listed on a version page at a time (the API's page size).
VERSION_FACTORS_SHOWN = 100
DATASETS_SHOWN = 100
EXPORT_FORMATS: tuple[tuple[str, str, str], ...] = (
    ("parquet", "Parquet", "application/vnd.apache.parquet"),
    ("arrow", "Arrow IPC file", "application/vnd.apache.arrow.file"),
    ("arrows", "Arrow IPC stream", "application/vnd.apache.arrow.stream"),
    ("csv", "CSV", "text/csv"),
    ("csv?bom=1", "CSV (Excel, UTF-8 BOM)", "text/csv"),
    ("xlsx", "Excel (XLSX)", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("jsonld.zip", "openLCA JSON-LD", "application/zip"),
    ("ilcd.zip", "ILCD", "application/zip"),
)
_CSV_MEDIA_TYPE = "text/csv; charset=utf-8; header=present"


# --------------------------------------------------------------------------- shared helpers


def _cell(value: Any) -> Any:
    """A CSV cell: text that a spreadsheet would run as a formula is prefixed with `'`, by the
    API's CSV exports' own rule."""
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, list | tuple):
        return neutralise("; ".join(str(v) for v in value))
    return value


def csv_response(
    request: Request,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    filename: str,
    cache_control: str,
) -> Response:
    """A small CSV table (UTF-8, header row) with a strong ETag like every JSON answer."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    body = buffer.getvalue().encode("utf-8")
    headers = {
        "ETag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        "Cache-Control": cache_control,
        "Content-Disposition": content_disposition("inline", filename),
    }
    if etag_matches(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=_CSV_MEDIA_TYPE, headers=headers)


def dataset_path(publisher: str, dataset: str) -> str:
    return f"/datasets/{publisher}/{dataset}"


def version_api(publisher: str, dataset: str, version: str) -> str:
    return f"/v1/datasets/{publisher}/{dataset}/versions/{version}"


@dataclass(frozen=True)
class Download:
    """One download button: a link, or disabled with the reason in words."""

    label: str
    href: str | None
    media_type: str | None
    reason: str | None = None
    note: str | None = None


def snapshot_holding(session: Session, *, publisher: str, dataset: str, version: str) -> str | None:
    """The newest national snapshot that includes this release (one the page has already
    found the reader may see), if any: one query."""
    found = session.execute(
        select(Snapshot.id)
        .join(snapshot_version, snapshot_version.c.snapshot_id == Snapshot.id)
        .join(DatasetVersion, DatasetVersion.id == snapshot_version.c.version_id)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .where(
            Publisher.slug == publisher, Dataset.slug == dataset, DatasetVersion.version == version
        )
        .order_by(Snapshot.created_at.desc(), Snapshot.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return found


def downloads(
    t: Translator,
    dataset: dict[str, Any],
    version: dict[str, Any],
    *,
    snapshot_id: str | None,
) -> list[Download]:
    """The export buttons of one released version, following what the export API does."""
    base = version_api(dataset["publisher"], dataset["slug"], version["version"]) + "/export"
    # Every file carries its licence and attribution; the reminder says what they ask.
    note = t("dataset_download_attribute", license=dataset["license_id"])
    if not dataset["redistribution"]:
        note = t("dataset_download_own_use", license=dataset["license_id"])
    buttons = [
        Download(t("dataset_download_as", format=label), f"{base}.{fmt}", media, note=note)
        for fmt, label, media in EXPORT_FORMATS
    ]
    label = t("dataset_download_snapshot")
    if not dataset["redistribution"]:
        reason = t("dataset_snapshot_no_redistribution", license=dataset["license_id"])
        buttons.append(Download(label, None, None, reason=reason))
    elif version["status"] == "withdrawn":
        buttons.append(Download(label, None, None, reason=t("dataset_snapshot_withdrawn")))
    elif snapshot_id is None:
        buttons.append(Download(label, None, None, reason=t("dataset_snapshot_not_yet")))
    else:
        buttons.append(
            Download(
                t("dataset_download_snapshot_id", id=snapshot_id),
                f"/v1/snapshots/{snapshot_id}/factors.parquet",
                "application/vnd.apache.parquet",
                note=t("dataset_snapshot_includes"),
            )
        )
    return buttons


def factor_names(
    session: Session, version_id: int, codes: Sequence[str]
) -> dict[str, tuple[str | None, str | None]]:
    """Chinese and English names of some factors of one release (those a page lists)."""
    if not codes:
        return {}
    rows = session.execute(
        select(Factor.factor_code, Factor.name_zh, Factor.name_en).where(
            Factor.version_id == version_id, Factor.factor_code.in_(list(codes))
        )
    )
    return {code: (name_zh, name_en) for code, name_zh, name_en in rows}


def _released(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in versions if v["status"] in RELEASED_STATUSES]


def _previous(versions: list[dict[str, Any]]) -> dict[str, str]:
    """Each released version's predecessor among the released ones (newest first in input)."""
    released = _released(versions)
    return {newer["version"]: older["version"] for newer, older in pairwise(released)}


# --------------------------------------------------------------------------- machine twins


@router.get("/datasets/{publisher}/{dataset}.json")
def dataset_json(
    request: Request, session: SessionDep, publisher: PublisherSlug, dataset: DatasetSlug
) -> Response:
    payload = datasets.get_dataset(session, viewer=VIEWER, publisher=publisher, dataset=dataset)
    return cached_json(request, payload, cache_control=SHORT_LIVED)


@router.get("/datasets/{publisher}/{dataset}/versions.json")
def versions_json(
    request: Request, session: SessionDep, publisher: PublisherSlug, dataset: DatasetSlug
) -> Response:
    items = datasets.list_versions(session, viewer=VIEWER, publisher=publisher, dataset=dataset)
    return cached_json(request, {"items": items, "next": None}, cache_control=SHORT_LIVED)


VERSION_CSV_COLUMNS = (
    "dataset",
    "version",
    "status",
    "published_at",
    "row_count",
    "content_sha256",
    "supersedes",
    "withdrawn_at",
    "withdrawn_reason",
    "release_notes",
    "license_id",
)


@router.get("/datasets/{publisher}/{dataset}/versions.csv")
def versions_csv(
    request: Request, session: SessionDep, publisher: PublisherSlug, dataset: DatasetSlug
) -> Response:
    items = datasets.list_versions(session, viewer=VIEWER, publisher=publisher, dataset=dataset)
    rows = (
        [
            item[name].isoformat() if hasattr(item[name], "isoformat") else item[name]
            for name in VERSION_CSV_COLUMNS
        ]
        for item in items
    )
    return csv_response(
        request,
        VERSION_CSV_COLUMNS,
        rows,
        filename=f"{publisher}_{dataset}_versions.csv",
        cache_control=SHORT_LIVED,
    )


@router.get("/datasets/{publisher}/{dataset}/versions/{version}.json")
def version_json(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: str,
) -> Response:
    payload, found = versions.get_version(
        session, viewer=VIEWER, publisher=publisher, dataset=dataset, version=version
    )
    released = found.status in RELEASED_STATUSES
    return cached_json(request, payload, cache_control=PINNED_RELEASE if released else PRIVATE)


@router.get("/datasets/{publisher}/{dataset}/versions/{version}/factors.json")
def version_factors_json(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: str,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    # 404 for an unknown or hidden version rather than an empty page.
    _, found = datasets.get_version(
        session, viewer=VIEWER, publisher=publisher, dataset=dataset, version=version
    )
    released = found.status in RELEASED_STATUSES
    items, next_cursor = factor_service.version_factors_page(
        session,
        viewer=datasets.reading_viewer(VIEWER, publisher),
        publisher=publisher,
        dataset=dataset,
        version=version,
        cursor=cursor,
        limit=limit,
        unreleased_id=None if released else found.id,
        draft=found.status == "draft",
    )
    return page_response(
        request, items, next_cursor, cache_control=PINNED_RELEASE if released else PRIVATE
    )


def parse_diff_spec(spec: str) -> tuple[str, str]:
    """`1.0.0...1.1.0` → ("1.0.0", "1.1.0")."""
    older, dots, newer = spec.partition("...")
    if not dots or not older or not newer or len(spec) > 80:
        raise InvalidParameter(
            Message("web.not_a_version_range", spec=spec),
            errors=[{"loc": ["path", "range"], "code": "invalid_range", "detail": spec}],
        )
    return older, newer


def _diff(session: Session, publisher: str, dataset: str, spec: str) -> dict[str, Any]:
    older, newer = parse_diff_spec(spec)
    return version_diff(
        session,
        viewer=VIEWER,
        publisher=publisher,
        dataset=dataset,
        from_version=older,
        to_version=newer,
    )


@router.get("/datasets/{publisher}/{dataset}/diff/{spec}.json")
def diff_json(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    spec: str,
) -> Response:
    """The API's streamed diff, with its ETag from the two releases' content hashes."""
    older, newer = parse_diff_spec(spec)
    return diff_response(
        request,
        session,
        viewer=VIEWER,
        publisher=publisher,
        dataset=dataset,
        from_version=older,
        to_version=newer,
    )


DIFF_CSV_COLUMNS = ("change", "factor_code", "field", "before", "after")


def diff_rows(payload: dict[str, Any]) -> Iterable[tuple[Any, ...]]:
    """One row per added or removed factor and one per changed field."""
    for code in payload["added"]:
        yield ("added", code, None, None, None)
    for code in payload["removed"]:
        yield ("removed", code, None, None, None)
    for change in payload["changed"]:
        for name, values in change["fields"].items():
            before, after = values["before"], values["after"]
            yield (
                "changed",
                change["factor_code"],
                name,
                before.isoformat() if hasattr(before, "isoformat") else before,
                after.isoformat() if hasattr(after, "isoformat") else after,
            )


@router.get("/datasets/{publisher}/{dataset}/diff/{spec}.csv")
def diff_csv(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    spec: str,
) -> Response:
    payload = _diff(session, publisher, dataset, spec)
    return csv_response(
        request,
        DIFF_CSV_COLUMNS,
        diff_rows(payload),
        filename=f"{publisher}_{dataset}_diff_{payload['from']}_{payload['to']}.csv",
        cache_control=IMMUTABLE,
    )


@router.get("/publishers/{publisher}.json")
def publisher_json(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    # 404 for an unknown publisher, where the API's list is empty; then the API's list itself
    # (its `next` link continues on this URL: the cursor is the same on both).
    datasets.publisher_by_slug(session, publisher)
    items, next_cursor = datasets.datasets_page(
        session, viewer=VIEWER, publisher=publisher, cursor=cursor, limit=limit
    )
    return page_response(request, items, next_cursor, cache_control=SHORT_LIVED)


PUBLISHER_CSV_COLUMNS = (
    "id",
    "title_zh",
    "title_en",
    "status",
    "latest_version",
    "license_id",
    "redistribution",
    "commercial_use",
    "sector_scheme",
    "sector_code",
)


@router.get("/publishers/{publisher}.csv")
def publisher_csv(request: Request, session: SessionDep, publisher: PublisherSlug) -> Response:
    datasets.publisher_by_slug(session, publisher)
    items, _ = datasets.list_datasets(
        session, viewer=VIEWER, publisher=publisher, after_id=None, limit=1000
    )
    return csv_response(
        request,
        PUBLISHER_CSV_COLUMNS,
        ([item[name] for name in PUBLISHER_CSV_COLUMNS] for item in items),
        filename=f"{publisher}_datasets.csv",
        cache_control=SHORT_LIVED,
    )


# --------------------------------------------------------------------------- pages


@router.get("/datasets/{publisher}/{dataset}/diff")
def diff_form(
    request: Request,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    from_version: Annotated[str, Query(alias="from", max_length=32)],
    to_version: Annotated[str, Query(alias="to", max_length=32)],
) -> Response:
    """The version-picker form (a GET form, no script) lands on the diff's own URL."""
    lang = request.query_params.get("lang")
    versions = f"{quote(from_version, safe='')}...{quote(to_version, safe='')}"
    target = f"{dataset_path(publisher, dataset)}/diff/{versions}"
    return RedirectResponse(target + query_string(lang=lang), status_code=303)


@router.get("/datasets/{publisher}/{dataset}/diff/{spec}")
def diff_page(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    spec: str,
) -> Response:
    t = Translator(negotiate(request))
    older, newer = parse_diff_spec(spec)
    # Both releases found once (404 unless both are released): the diff, the factors' names
    # and the versions' own lines all read them.
    old, new = released_pair(
        session,
        viewer=VIEWER,
        publisher=publisher,
        dataset=dataset,
        from_version=older,
        to_version=newer,
    )
    payload = release_diff(session, old=old, new=new)
    info = datasets.get_dataset(session, viewer=VIEWER, publisher=publisher, dataset=dataset)
    listed = datasets.list_versions(session, viewer=VIEWER, publisher=publisher, dataset=dataset)
    versions = {v["version"]: v for v in listed if v["version"] in (older, newer)}
    shown = DIFF_ROWS_SHOWN
    names = {
        **factor_names(session, old.id, payload["removed"][:shown]),
        **factor_names(
            session,
            new.id,
            [*payload["added"][:shown], *(c["factor_code"] for c in payload["changed"][:shown])],
        ),
    }
    base = f"{dataset_path(publisher, dataset)}/diff/{older}...{newer}"
    meta = PageMeta(
        title=t("diff_title", id=info["id"], older=older, newer=newer),
        twins=[
            Twin("application/json", f"{base}.json", "JSON"),
            Twin("text/csv", f"{base}.csv", "CSV"),
        ],
        api_path=f"{version_api(publisher, dataset, newer)}/diff?from={older}",
    )
    context = {
        "dataset": info,
        "diff": payload,
        "older": versions[older],
        "newer": versions[newer],
        "shown": shown,
        "names": names,
        "base": base,
        "reverse_href": f"{dataset_path(publisher, dataset)}/diff/{newer}...{older}",
        "factor_href": factor_path,
    }
    # The diff itself never changes, but the page shows each release's status, which may.
    return render_page(request, "diff.html", context, meta=meta)


@router.get("/datasets/{publisher}/{dataset}/versions/{version}")
def version_page(
    request: Request,
    session: SessionDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: str,
    cursor: Cursor = None,
) -> Response:
    t = Translator(negotiate(request))
    info = datasets.get_dataset(session, viewer=VIEWER, publisher=publisher, dataset=dataset)
    payload, _ = datasets.get_version(
        session, viewer=VIEWER, publisher=publisher, dataset=dataset, version=version
    )
    all_versions = datasets.list_versions(
        session, viewer=VIEWER, publisher=publisher, dataset=dataset
    )
    previous = _previous(all_versions).get(version)
    # The factors of this release, a page at a time, with the API's own cursors.
    items, next_cursor = factor_service.version_factors_page(
        session,
        viewer=VIEWER,
        publisher=publisher,
        dataset=dataset,
        version=version,
        cursor=cursor,
        limit=VERSION_FACTORS_SHOWN,
    )
    api = version_api(publisher, dataset, version)
    meta = PageMeta(
        title=t(
            "dataset_version_title",
            title=t.pick(info["title_zh"], info["title_en"]),
            version=version,
        ),
        twins=[
            Twin(
                "application/json",
                f"{dataset_path(publisher, dataset)}/versions/{version}.json",
                "JSON",
            ),
            Twin(
                "application/json",
                f"{dataset_path(publisher, dataset)}/versions/{version}/factors.json",
                t("dataset_version_twin_factors"),
            ),
            Twin("text/csv", f"{api}/export.csv", t("dataset_version_twin_csv")),
        ],
        api_path=api,
    )
    context = {
        "dataset": info,
        "version": payload,
        "previous": previous,
        "factors": items,
        "next_href": next_link(request, next_cursor),
        "factors_api": f"{api}/factors",
        "downloads": downloads(
            t,
            info,
            payload,
            snapshot_id=snapshot_holding(
                session, publisher=publisher, dataset=dataset, version=version
            ),
        ),
        "factor_href": factor_path,
    }
    return render_page(request, "version.html", context, meta=meta)


@router.get("/datasets/{publisher}/{dataset}")
def dataset_page(
    request: Request, session: SessionDep, publisher: PublisherSlug, dataset: DatasetSlug
) -> Response:
    t = Translator(negotiate(request))
    info = datasets.get_dataset(session, viewer=VIEWER, publisher=publisher, dataset=dataset)
    owner = datasets.publisher_by_slug(session, publisher)
    versions = datasets.list_versions(session, viewer=VIEWER, publisher=publisher, dataset=dataset)
    latest = next((v for v in versions if v["version"] == info["latest_version"]), None)
    buttons: list[Download] = []
    if latest is not None:
        holding = snapshot_holding(
            session, publisher=publisher, dataset=dataset, version=latest["version"]
        )
        buttons = downloads(t, info, latest, snapshot_id=holding)
    path = dataset_path(publisher, dataset)
    released = _released(versions)
    meta = PageMeta(
        title=t.pick(info["title_zh"], info["title_en"]) or info["id"],
        twins=[
            Twin("application/json", f"{path}.json", "JSON"),
            Twin("application/json", f"{path}/versions.json", t("dataset_twin_versions_json")),
            Twin("text/csv", f"{path}/versions.csv", t("dataset_twin_versions_csv")),
        ],
        api_path=f"/v1/datasets/{publisher}/{dataset}",
    )
    context = {
        "dataset": info,
        "publisher": owner,
        "versions": versions,
        "latest": latest,
        "previous": _previous(versions),
        "released": released,
        "downloads": buttons,
        "path": path,
    }
    return render_page(request, "dataset.html", context, meta=meta)


@router.get("/publishers/{publisher}")
def publisher_page(
    request: Request, session: SessionDep, publisher: PublisherSlug, cursor: Cursor = None
) -> Response:
    t = Translator(negotiate(request))
    owner = datasets.publisher_by_slug(session, publisher)
    items, next_cursor = datasets.datasets_page(
        session, viewer=VIEWER, publisher=publisher, cursor=cursor, limit=DATASETS_SHOWN
    )
    meta = PageMeta(
        title=t.pick(owner.name_zh, owner.name_en) or owner.slug,
        twins=[
            Twin("application/json", f"/publishers/{publisher}.json", "JSON"),
            Twin("text/csv", f"/publishers/{publisher}.csv", "CSV"),
        ],
        api_path=f"/v1/datasets?publisher={publisher}",
    )
    context = {
        "publisher": owner,
        "datasets": items,
        "next_href": next_link(request, next_cursor),
    }
    return render_page(request, "publisher.html", context, meta=meta)
