"""Bulk exports: per-version files and national snapshots, served as immutable files.

Every file is served with its sha256 as a strong ETag, `If-None-Match` → 304, byte ranges
(`Range`, `If-Range`) for HTTP readers such as DuckDB's `read_parquet('http://…')`, and HEAD.
With an object store (`EFDB_EXPORT_STORE_URL`) a GET that passed the checks is answered with a
307 redirect to a signed URL of the file, valid `EFDB_EXPORT_SIGNED_URL_SECONDS`; the store
sends the bytes (and the ranges). Handlers are plain `def`, so FastAPI runs them (and the
encoding they may trigger) in its thread pool, never on the event loop.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from app.auth.dependencies import AdminDep
from app.auth.viewer import ViewerDep
from app.core.config import Settings
from app.core.db import SessionDep
from app.core.http_cache import IMMUTABLE, PRIVATE, SHORT_LIVED, cached_json, etag_matches
from app.core.metrics import timed
from app.core.pagination import page_response
from app.core.params import (
    DEFAULT_PAGE,
    Cursor,
    DatasetSlug,
    Limit,
    PublisherSlug,
    VersionPath,
    only_query_params,
)
from app.core.replica import reads_primary
from app.core.schemas import Page
from app.core.urls import header_url
from app.datasets import usage
from app.exports import service
from app.exports.schemas import SnapshotManifest, SnapshotRead
from app.exports.store import ExportStore, attachment
from app.signing.router import JOSE_RESPONSES, jose_response
from app.signing.runtime import ReleaseKeysDep

router = APIRouter(tags=["exports"])

SnapshotId = Annotated[
    str,
    Path(
        pattern=rf"^(?:{service.LATEST}|{service.SNAPSHOT_ID_PATTERN.strip('^$')})$",
        description="Snapshot id (e.g. 2026-11-25.1), or `latest`",
        examples=["latest"],
    ),
]
NO_QUERY = [Depends(only_query_params(()))]


class ExportFileResponse(FileResponse):
    # Larger reads than Starlette's 64 KiB: fewer thread hops per megabyte served.
    chunk_size = 1 << 20


def serve_file(
    request: Request,
    served: service.ServedFile,
    *,
    cache_control: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """A finished file: strong ETag (its sha256), 304, ranges and HEAD (by FileResponse); from
    an object store, a redirect to a signed URL (`_signed_redirect`)."""
    common = {"ETag": served.etag, "Cache-Control": cache_control, **(headers or {})}
    # Only a URL that passes the metadata check, ASCII-encoded: a stored value that does not
    # is left out rather than written into (and breaking) the header.
    license_link = header_url(served.license_url)
    if license_link is not None:
        common["Link"] = f'<{license_link}>; rel="license"'
    if etag_matches(request, served.etag):
        return Response(status_code=304, headers=common)
    settings = _settings(request)
    export_store = _store(request)
    if export_store.redirects:
        return _signed_redirect(request, export_store, served, settings, common)
    if settings.x_accel_redirect_prefix:
        return _accel_redirect(served, settings, common)
    path = export_store.local_path(served.location)
    assert path is not None  # a store that does not redirect keeps its files here
    stat = os.stat(path)
    return ExportFileResponse(
        path,
        media_type=served.media_type,
        filename=served.filename,
        headers=common,
        stat_result=stat,
    )


def _accel_redirect(
    served: service.ServedFile, settings: Settings, headers: dict[str, str]
) -> Response:
    """Hand the transfer to the front server (nginx `X-Accel-Redirect`): the checks above
    are done, the file is named by its place in the export store, and nginx sends its bytes
    (ranges, HEAD) under the headers given here (deploy/nginx.conf passes the ETag, Link and
    Content-Location on)."""
    relative = served.location
    assert settings.x_accel_redirect_prefix is not None
    response = Response(
        status_code=200,
        media_type=served.media_type,
        headers={
            **headers,
            "Content-Disposition": attachment(served.filename),
            "X-Accel-Redirect": settings.x_accel_redirect_prefix + quote(relative),
        },
    )
    # No body of its own: nginx answers with the file's length, not this one's.
    del response.headers["content-length"]
    return response


def redirect_cache_control(served: service.ServedFile, seconds: int) -> str:
    """How long a redirect to a signed URL may be kept: a registered dataset's never (the URL
    is a credential for one reader), a public file's for a quarter of the URL's life, at most a
    minute, so that whoever is handed it from a cache still has most of its life to fetch."""
    if served.private:
        return PRIVATE
    return f"public, max-age={min(seconds // 4, 60)}"


def _signed_redirect(
    request: Request,
    export_store: ExportStore,
    served: service.ServedFile,
    settings: Settings,
    headers: dict[str, str],
) -> Response:
    """The file in an object store: a 307 to a URL signed for this very method (GET or HEAD),
    which the store answers with the file's size, type, download name and caching (kept with
    the object, app/exports/object_store.py) and its byte ranges.

    HEAD is redirected too, so that what a reader learns from HEAD (length, the store's ETag)
    and what its ranged GETs then return come from one server: DuckDB's httpfs refuses a file
    whose GET ETag is not its HEAD's. The redirect carries no ETag of its own: a cache that
    kept it could otherwise revalidate it (304) into a URL whose signature has expired."""
    seconds = settings.export_signed_url_seconds
    method: Literal["GET", "HEAD"] = "HEAD" if request.method == "HEAD" else "GET"
    url = export_store.signed_url(served.location, seconds=seconds, method=method)
    redirect = {name: value for name, value in headers.items() if name != "ETag"}
    redirect["Cache-Control"] = redirect_cache_control(served, seconds)
    return RedirectResponse(url, status_code=307, headers=redirect)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _store(request: Request) -> ExportStore:
    export_store: ExportStore = request.app.state.export_store
    return export_store


def _file_responses(media_type: str, what: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"content": {media_type: {}}, "description": what},
        206: {"description": "The requested byte range (`Range` header)"},
        304: {"description": "Not modified (`If-None-Match` matched the ETag)"},
        307: {
            "description": "With an object store: the file is at this signed URL (`Location`), "
            "valid for a short time; HTTP clients follow it (`curl -L`)"
        },
    }


Endpoint = Callable[..., Response]


def file_route(
    path: str,
    *,
    summary: str,
    responses: dict[int | str, dict[str, Any]],
    query: tuple[str, ...] = (),
) -> Callable[[Endpoint], Endpoint]:
    """GET and HEAD of one file (HEAD gives its size and ETag, as HTTP readers ask first);
    `query`: the query parameters it accepts (any other is refused)."""

    def register(endpoint: Endpoint) -> Endpoint:
        common: dict[str, Any] = {
            "response_class": Response,
            "dependencies": [Depends(only_query_params(query))] if query else NO_QUERY,
        }
        what = inspect.cleandoc(endpoint.__doc__ or "")
        router.head(
            path,
            summary=f"{summary} (headers only)",
            description="The headers a GET would send (`Content-Length`, `ETag`, "
            f"`Accept-Ranges`), without the body. The GET: {what}",
            **common,
        )(endpoint)
        return router.get(path, summary=summary, responses=responses, **common)(endpoint)

    return register


# --------------------------------------------------------------------------- per version

VERSION_EXPORT = "/v1/datasets/{publisher}/{dataset}/versions/{version}/export"


def _version_export(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: str,
    dataset: str,
    version: str,
    fmt: service.ExportFormat,
    keys: ReleaseKeysDep,
) -> Response:
    served = service.version_export(
        session,
        export_store=_store(request),
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        version=version,
        fmt=fmt,
        keys=keys,
    )
    # A registered dataset's file must not sit in shared caches.
    response = serve_file(request, served, cache_control=PRIVATE if served.private else IMMUTABLE)
    # A redirect to the file counts as the download it starts.
    if served.private and request.method == "GET" and response.status_code in (200, 307):
        usage.meter(session, viewer, [(publisher, dataset, served.rows)])
    return response


@file_route(
    VERSION_EXPORT + ".parquet",
    summary="A released version as Parquet",
    responses=_file_responses(service.MEDIA_TYPES["parquet"], "Parquet (zstd), export schema"),
)
@reads_primary  # made and recorded on first request
def version_parquet(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    keys: ReleaseKeysDep,
) -> Response:
    """One version's factors as a Parquet file (zstd) in the export schema, with the licence and
    content hash in its key-value metadata; readable as the version is (404 otherwise). Sent
    with its sha256 as a strong ETag (304 on `If-None-Match`), byte ranges, and cached as
    immutable (`private` for a `registered` dataset)."""
    return _version_export(request, session, viewer, publisher, dataset, version, "parquet", keys)


@file_route(
    VERSION_EXPORT + ".arrow",
    summary="A released version as an Arrow IPC file",
    responses=_file_responses(service.MEDIA_TYPES["arrow"], "Arrow IPC file, zstd buffers"),
)
@reads_primary  # made and recorded on first request
def version_arrow(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    keys: ReleaseKeysDep,
) -> Response:
    """One version's factors as an Arrow IPC file (zstd buffers) in the export schema, for
    random access: `pyarrow.ipc.open_file`, `pyarrow.feather.read_table`, `polars.read_ipc`;
    readable as the version is (404 otherwise). Sent with its sha256 as a strong ETag (304 on
    `If-None-Match`), byte ranges, and cached as immutable (`private` for a `registered`
    dataset)."""
    return _version_export(request, session, viewer, publisher, dataset, version, "arrow", keys)


@file_route(
    VERSION_EXPORT + ".arrows",
    summary="A released version as an Arrow IPC stream",
    responses=_file_responses(service.MEDIA_TYPES["arrows"], "Arrow IPC stream, zstd buffers"),
)
@reads_primary  # made and recorded on first request
def version_arrows(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    keys: ReleaseKeysDep,
) -> Response:
    """One version's factors as an Arrow IPC stream (zstd buffers) in the export schema, to
    read batch by batch as it arrives (`pyarrow.ipc.open_stream`); readable as the version is
    (404 otherwise). Sent with its sha256 as a strong ETag (304 on `If-None-Match`), byte
    ranges, and cached as immutable (`private` for a `registered` dataset)."""
    return _version_export(request, session, viewer, publisher, dataset, version, "arrows", keys)


@file_route(
    VERSION_EXPORT + ".csv",
    summary="A released version as CSV",
    responses=_file_responses(
        service.MEDIA_TYPES["csv"], "UTF-8 CSV; text starting with = + - @ is prefixed with '"
    ),
    query=("bom",),
)
@reads_primary  # made and recorded on first request
def version_csv(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    keys: ReleaseKeysDep,
    bom: Annotated[
        bool,
        Query(
            description="Start the file with the UTF-8 byte order mark, for Excel on Windows "
            "(which otherwise reads a CSV in the system code page); a file of its own, with "
            "its own sha256 and ETag"
        ),
    ] = False,
) -> Response:
    """One version's factors as UTF-8 CSV with a header row (text starting with = + - @ is
    prefixed with ' so spreadsheets do not run it); readable as the version is (404 otherwise).
    `?bom=1`: the same rows after a UTF-8 byte order mark. Sent with its sha256 as a strong
    ETag (304 on `If-None-Match`), byte ranges, and cached as immutable (`private` for a
    `registered` dataset)."""
    fmt: service.ExportFormat = "bom.csv" if bom else "csv"
    return _version_export(request, session, viewer, publisher, dataset, version, fmt, keys)


@file_route(
    VERSION_EXPORT + ".xlsx",
    summary="A released version as an Excel workbook (XLSX)",
    responses=_file_responses(
        service.MEDIA_TYPES["xlsx"],
        "XLSX: a `factors` sheet in the export schema and a `read me` sheet",
    ),
)
@reads_primary  # made and recorded on first request
def version_xlsx(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    keys: ReleaseKeysDep,
) -> Response:
    """One version's factors as an Excel workbook: a `factors` sheet with the export schema's
    columns (numbers as numbers, exactly as published; dates as dates; text as text, never a
    formula) and a `read me` sheet with the licence, attribution, version, content hash, its
    signed release statement and how to verify them; readable as the version is (404
    otherwise). Sent with its sha256 as a strong ETag (304 on `If-None-Match`), byte ranges,
    and cached as immutable (`private` for a `registered` dataset)."""
    return _version_export(request, session, viewer, publisher, dataset, version, "xlsx", keys)


@file_route(
    VERSION_EXPORT + ".jsonld.zip",
    summary="A released version as an openLCA JSON-LD package (zip)",
    responses=_file_responses(
        service.MEDIA_TYPES["jsonld.zip"],
        "openLCA JSON-LD (olca-schema 2): one process per factor, with its flows, units, "
        "locations, sources and pedigree data quality",
    ),
)
@reads_primary  # made and recorded on first request
def version_olca(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    keys: ReleaseKeysDep,
) -> Response:
    """One version's factors as an openLCA JSON-LD zip, written with `olca-schema`, that
    openLCA 2 imports as it is (Import → File → the zip): each factor a process (LCI result)
    with one reference product of 1 declared unit, CO2, CH4 and N2O (and biogenic CO2) as
    emissions to air in kg, the published CO2e as the process parameter `co2e`, its location,
    source, pedigree scores as the data-quality entry, validity, licence and attribution in
    the documentation (mapping: README). Readable as the version is (404 otherwise); sha256 as
    a strong ETag (304 on `If-None-Match`), byte ranges, cached as immutable (`private` for a
    `registered` dataset)."""
    return _version_export(
        request, session, viewer, publisher, dataset, version, "jsonld.zip", keys
    )


@file_route(
    VERSION_EXPORT + ".ilcd.zip",
    summary="A released version as ILCD process data sets (zip)",
    responses=_file_responses(
        service.MEDIA_TYPES["ilcd.zip"],
        "ILCD 1.1 XML: process, flow, flow property, unit group, contact and source data sets",
    ),
)
@reads_primary  # made and recorded on first request
def version_ilcd(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    keys: ReleaseKeysDep,
) -> Response:
    """One version's factors as an ILCD archive (`ILCD/processes/…`, `flows/`,
    `flowproperties/`, `unitgroups/`, `contacts/`, `sources/`), each XML file valid against
    the ILCD 1.1 schemas: a process data set (LCI result) per factor with its reference
    product flow and the CO2, CH4 and N2O emissions to air, the publisher as owner, the cited
    source, the published CO2e, licence and attribution (mapping: README). Readable as the
    version is (404 otherwise); sha256 as a strong ETag (304 on `If-None-Match`), byte ranges,
    cached as immutable (`private` for a `registered` dataset)."""
    return _version_export(request, session, viewer, publisher, dataset, version, "ilcd.zip", keys)


# --------------------------------------------------------------------------- snapshots


@router.get(
    "/v1/snapshots",
    response_model=Page[SnapshotRead],
    summary="List national snapshots, newest first",
    dependencies=[Depends(only_query_params(("limit", "cursor")))],
)
def list_snapshots(
    request: Request, session: SessionDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    """National snapshots, newest first, a page of at most `limit`; no token needed. Each
    lists the dataset versions it holds, their licences and its files with sha256 and size."""
    items, next_cursor = service.snapshots_page(session, cursor=cursor, limit=limit)
    return page_response(request, items, next_cursor, cache_control=SHORT_LIVED)


@router.post(
    "/v1/snapshots",
    response_model=SnapshotRead,
    status_code=201,
    summary="Write a national snapshot of every redistributable dataset's latest release",
    dependencies=NO_QUERY,
)
@timed("snapshot_duration")
def create_snapshot(
    request: Request, session: SessionDep, principal: AdminDep, keys: ReleaseKeysDep
) -> Response:
    """Write a national snapshot (`admin`): the latest published release of every public,
    redistributable dataset, as Parquet, Arrow, XLSX (up to `EFDB_SNAPSHOT_XLSX_MAX_ROWS`
    factors), openLCA JSON-LD and ILCD (up to `EFDB_SNAPSHOT_PACKAGES_MAX_ROWS`) and a
    manifest, recorded in the audit log; 201 with the snapshot and its `Location`. 409 when
    there is no such dataset to include."""
    settings = _settings(request)
    snapshot = service.create_snapshot(
        session,
        export_store=_store(request),
        actor=principal.client_id,
        keys=keys,
        xlsx_max_rows=settings.snapshot_xlsx_max_rows,
        packages_max_rows=settings.snapshot_packages_max_rows,
    )
    # Committed inside `timed`: a snapshot whose commit fails is timed as an error, not `ok`.
    session.commit()
    return JSONResponse(
        jsonable_encoder(service.snapshot_resource(snapshot)),
        status_code=201,
        headers={"Location": f"/v1/snapshots/{snapshot.id}"},
    )


@router.get(
    "/v1/snapshots/{snapshot_id}",
    response_model=SnapshotRead,
    summary="One snapshot (`latest`: the newest)",
    dependencies=NO_QUERY,
)
def get_snapshot(request: Request, session: SessionDep, snapshot_id: SnapshotId) -> Response:
    """One snapshot by id, or `latest` for the newest (then `Content-Location` names its id):
    the dataset versions included, licences, row count and files. No token needed; 404 for
    an unknown id. A snapshot never changes, so its own URL is cached as immutable."""
    snapshot = service.get_snapshot(session, snapshot_id)
    latest = snapshot_id == service.LATEST
    return cached_json(
        request,
        service.snapshot_resource(snapshot),
        cache_control=SHORT_LIVED if latest else IMMUTABLE,
        headers={"Content-Location": f"/v1/snapshots/{snapshot.id}"} if latest else None,
    )


def _snapshot_file(
    request: Request, session: SessionDep, snapshot_id: str, name: service.SnapshotFileName
) -> Response:
    snapshot, served = service.snapshot_file(
        session, export_store=_store(request), snapshot_id=snapshot_id, name=name
    )
    if snapshot_id == service.LATEST:
        # "latest" moves when a new snapshot is written; the id's own URL never does.
        return serve_file(
            request,
            served,
            cache_control=SHORT_LIVED,
            headers={"Content-Location": f"/v1/snapshots/{snapshot.id}/{name}"},
        )
    return serve_file(request, served, cache_control=IMMUTABLE)


@file_route(
    "/v1/snapshots/{snapshot_id}/factors.parquet",
    summary="A snapshot's factors as Parquet",
    responses=_file_responses(service.MEDIA_TYPES["parquet"], "Parquet (zstd), export schema"),
)
def snapshot_parquet(request: Request, session: SessionDep, snapshot_id: SnapshotId) -> Response:
    """A snapshot's factors as one Parquet file (zstd, export schema) with the attribution list
    in its key-value metadata. No token needed; sha256 as a strong ETag, byte ranges; immutable
    under the snapshot's id, short-lived under `latest`."""
    return _snapshot_file(request, session, snapshot_id, "factors.parquet")


@file_route(
    "/v1/snapshots/{snapshot_id}/factors.arrow",
    summary="A snapshot's factors as an Arrow IPC file",
    responses=_file_responses(service.MEDIA_TYPES["arrow"], "Arrow IPC file, zstd buffers"),
)
def snapshot_arrow(request: Request, session: SessionDep, snapshot_id: SnapshotId) -> Response:
    """A snapshot's factors as an Arrow IPC file (zstd buffers, export schema), for random
    access (`pyarrow.ipc.open_file`, `pyarrow.feather.read_table`, `polars.read_ipc`). No token
    needed; sha256 as a strong ETag, byte ranges; immutable under the snapshot's id,
    short-lived under `latest`. A snapshot written before export schema 2 has no Arrow file
    (404 saying so): its stream is at `factors.arrows`."""
    return _snapshot_file(request, session, snapshot_id, "factors.arrow")


@file_route(
    "/v1/snapshots/{snapshot_id}/factors.arrows",
    summary="A snapshot's factors as an Arrow IPC stream",
    responses=_file_responses(service.MEDIA_TYPES["arrows"], "Arrow IPC stream, zstd buffers"),
)
def snapshot_arrows(request: Request, session: SessionDep, snapshot_id: SnapshotId) -> Response:
    """A snapshot's factors as an Arrow IPC stream (zstd buffers, export schema), to read batch
    by batch (`pyarrow.ipc.open_stream`). No token needed; sha256 as a strong ETag, byte
    ranges; immutable under the snapshot's id, short-lived under `latest`."""
    return _snapshot_file(request, session, snapshot_id, "factors.arrows")


@file_route(
    "/v1/snapshots/{snapshot_id}/factors.xlsx",
    summary="A snapshot's factors as an Excel workbook (XLSX)",
    responses=_file_responses(
        service.MEDIA_TYPES["xlsx"],
        "XLSX: `factors` sheets in the export schema and a `read me` sheet",
    ),
)
def snapshot_xlsx(request: Request, session: SessionDep, snapshot_id: SnapshotId) -> Response:
    """A snapshot's factors as an Excel workbook: a `factors` sheet with the export schema's
    columns (continued on `factors 2`, … past 1,048,576 rows) and a `read me` sheet with the
    dataset versions, their content hashes, licences and attribution, and how to verify them.
    No token needed; sha256 as a strong ETag, byte ranges; immutable under the snapshot's id,
    short-lived under `latest`. 404 for a snapshot of more factors than its manifest's
    `workbook_max_rows` (`EFDB_SNAPSHOT_XLSX_MAX_ROWS` when written), and for one written
    before snapshots held a workbook."""
    return _snapshot_file(request, session, snapshot_id, "factors.xlsx")


@file_route(
    "/v1/snapshots/{snapshot_id}/factors.jsonld.zip",
    summary="A snapshot's factors as an openLCA JSON-LD package",
    responses=_file_responses(
        service.MEDIA_TYPES["jsonld.zip"], "openLCA JSON-LD (olca-schema 2) zip"
    ),
)
def snapshot_jsonld(request: Request, session: SessionDep, snapshot_id: SnapshotId) -> Response:
    """A snapshot's factors as one openLCA JSON-LD package: its releases' `export.jsonld.zip`
    merged (one process per factor; the shared unit groups, flows, locations and sources
    once each). In the signed manifest with its sha256. No token needed; sha256 as a strong
    ETag, byte ranges; immutable under the snapshot's id, short-lived under `latest`. 404 for
    a snapshot written before snapshots held packages."""
    return _snapshot_file(request, session, snapshot_id, "factors.jsonld.zip")


@file_route(
    "/v1/snapshots/{snapshot_id}/factors.ilcd.zip",
    summary="A snapshot's factors as an ILCD archive",
    responses=_file_responses(
        service.MEDIA_TYPES["ilcd.zip"], "ILCD 1.1 process, flow and source data sets (zip)"
    ),
)
def snapshot_ilcd(request: Request, session: SessionDep, snapshot_id: SnapshotId) -> Response:
    """A snapshot's factors as one ILCD archive: its releases' `export.ilcd.zip` merged (each
    data set a file named by its UUID, valid against its ILCD schema; the shared flows, unit
    groups, contacts and sources once each). In the signed manifest with its sha256. No token
    needed; sha256 as a strong ETag, byte ranges; immutable under the snapshot's id,
    short-lived under `latest`. 404 for a snapshot written before snapshots held packages."""
    return _snapshot_file(request, session, snapshot_id, "factors.ilcd.zip")


@file_route(
    "/v1/snapshots/{snapshot_id}/manifest.json",
    summary="A snapshot's manifest: versions, hashes, row counts, licenses, files",
    responses={
        **_file_responses(service.MEDIA_TYPES["json"], "The manifest"),
        200: {"model": SnapshotManifest, "description": "The manifest"},
    },
)
def snapshot_manifest(request: Request, session: SessionDep, snapshot_id: SnapshotId) -> Response:
    """A snapshot's manifest as written with its files: the dataset versions with their content
    hashes and row counts, the attribution list, the export schema's columns, and each data
    file's sha256 and size. No token needed; sha256 as a strong ETag, byte ranges; immutable
    under the snapshot's id, short-lived under `latest`."""
    return _snapshot_file(request, session, snapshot_id, "manifest.json")


@router.get(
    "/v1/snapshots/{snapshot_id}/manifest.json.jws",
    summary="A snapshot's signed manifest (JWS)",
    response_class=Response,
    responses=JOSE_RESPONSES,
    dependencies=NO_QUERY,
)
def snapshot_manifest_signature(
    request: Request, session: SessionDep, snapshot_id: SnapshotId
) -> Response:
    """The snapshot's `manifest.json` signed by the release key: JWS compact whose payload is
    exactly the manifest's bytes (so it also proves each data file's sha256 and each version's
    signed statement listed there). No token needed; immutable under the snapshot's id,
    short-lived under `latest`. 404 for a snapshot written before snapshots were signed.
    `efdb verify FOLDER --jwks jwks.json` checks a downloaded snapshot offline."""
    snapshot, token = service.manifest_signature(session, snapshot_id)
    if snapshot_id == service.LATEST:
        response = jose_response(request, token, cache_control=SHORT_LIVED)
        response.headers["Content-Location"] = f"/v1/snapshots/{snapshot.id}/manifest.json.jws"
        return response
    return jose_response(request, token, cache_control=IMMUTABLE)
