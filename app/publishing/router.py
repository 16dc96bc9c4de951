"""Publishing: upload a draft, submit it, and let a national reviewer publish or reject it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse

from app.auth.dependencies import Principal, ReviewerDep, WriterDep
from app.core.clock import ClockDep
from app.core.db import SessionDep
from app.core.errors import InvalidParameter, NotFound, headers_language
from app.core.http_cache import PRIVATE, cached_json
from app.core.metrics import timed
from app.core.params import DatasetSlug, PublisherSlug, VersionPath, only_query_params
from app.core.problem_text import Message, localize
from app.datasets import service as dataset_service
from app.datasets.models import Dataset
from app.datasets.schemas import DatasetCreate, DatasetRead, DeprecateBody, VersionRead
from app.datasets.version_models import DatasetVersion
from app.publishing import workflow
from app.publishing.drafts import upload_draft
from app.publishing.review import review_queue
from app.publishing.schemas import PublishBody, ReasonBody, ReviewQueue, UploadResult
from app.publishing.template import template_csv
from app.signing.runtime import ReleaseKeysDep
from app.versioning import versions

router = APIRouter(prefix="/v1/datasets/{publisher}/{dataset}/versions", tags=["publishing"])
template_router = APIRouter(tags=["publishing"])
review_router = APIRouter(tags=["publishing"])
# Writes to the catalog, under its URLs (app/main.py includes it after the catalog's reads).
dataset_router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

VersionForm = Annotated[str, Form(max_length=32, description="MAJOR.MINOR.PATCH, e.g. 1.0.0")]


def _own_dataset(
    session: SessionDep, principal: Principal, publisher: str, dataset: str
) -> Dataset:
    """A publisher's client writes only its own datasets; others get 404, not a hint."""
    if principal.publisher != publisher:
        raise NotFound(Message("not_found.dataset_writable", dataset=f"{publisher}/{dataset}"))
    return dataset_service.dataset_for_write(session, publisher=publisher, dataset=dataset)


def _version_response(
    session: SessionDep, principal: Principal, publisher: str, dataset: str, version: str
) -> JSONResponse:
    payload, _ = versions.get_version(
        session,
        viewer=principal.as_viewer(),
        publisher=publisher,
        dataset=dataset,
        version=version,
    )
    return JSONResponse(VersionRead.model_validate(payload).model_dump(mode="json"))


@router.post(
    "",
    status_code=201,
    response_model=UploadResult,
    summary="Upload a file as a draft version (CSV, Parquet, JSON Lines or XLSX)",
    responses={
        200: {"model": UploadResult, "description": "The same file was already this draft"},
        413: {"description": "File over the size cap"},
        422: {"description": "Validation report: nothing was stored"},
    },
)
@timed("upload_duration")
def upload_version(
    request: Request,
    session: SessionDep,
    principal: WriterDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionForm,
    file: Annotated[UploadFile, File(description="The factors, in the upload format")],
    clock: ClockDep,
    release_notes: Annotated[
        str | None,
        Form(max_length=20000, description="The publisher's notes on this release"),
    ] = None,
    source_format: Annotated[
        str | None,
        Form(
            max_length=32,
            description="The file is the publisher's own file in this source format, read by "
            "the service's importer for it: `desnz-flat` (UK DESNZ GHG conversion factors flat "
            "file, .xls or .xlsx), `mee-electricity` (China MEE electricity factor table, "
            ".csv), `epa-supply-chain` (US EPA Supply Chain GHG Emission Factors CO2e file by "
            "NAICS-6, .csv), `epa-hub` (US EPA GHG Emission Factors Hub workbook, .xlsx) or "
            "`nga` (Australian National Greenhouse Accounts Factors workbook, .xlsx), "
            "`olca-jsonld` (an openLCA JSON-LD zip: processes emitting CO2, CH4, N2O to air; "
            "needs `gwp_set`). Its bytes are what is hashed and kept; problems name its sheet, "
            "row and column (an openLCA zip's: `process` and `exchange`). Empty: the file is "
            "in the upload format",
        ),
    ] = None,
    through_year: Annotated[
        int | None,
        Form(
            ge=1900,
            le=2100,
            description="With a `source_format` whose file holds several data years "
            "(`mee-electricity`): import only the rows of this data year and earlier",
        ),
    ] = None,
    gwp_set: Annotated[
        str | None,
        Form(
            max_length=8,
            description="With a `source_format` whose file gives gases without their CO2e "
            "(`olca-jsonld`): the GWP100 set of the reference table (`GET /v1/gwp`) CO2e is "
            "computed in, recorded on each factor whose CO2e used it",
        ),
    ] = None,
) -> JSONResponse:
    """Upload one file (CSV, Parquet, JSON Lines or XLSX, by its extension) as the draft `version`
    of one of your publisher's datasets (`datasets:write`); it creates the draft, or replaces
    a draft of that version. 201 with the draft and its validation report (warnings only);
    200 when the same file (same sha256) already is that draft. A file with any error stores
    nothing: 422 problem details whose `errors` give row, column, code and detail (and, for an
    XLSX workbook, the sheet read: `factors`, or else the first) (also when
    `version` is not newer than the latest release); 413 over the size cap; 409 when that
    version exists and is no longer a draft.

    With `source_format`, the file is the publisher's own (a DESNZ flat-file workbook, the
    MEE electricity table): the service's importer maps it onto the upload format, and the
    same checks apply; each problem names the publisher file's `sheet`, `row` and `column`
    (and the upload `field` it became), and the rows the importer leaves out are warnings
    saying why."""
    target = _own_dataset(session, principal, publisher, dataset)
    outcome = upload_draft(
        session,
        dataset=target,
        dataset_label=f"{publisher}/{dataset}",
        version=version,
        release_notes=release_notes,
        file_name=file.filename,
        stream=file.file,
        actor=principal.client_id,
        max_rows=request.app.state.settings.max_upload_rows,
        max_decoded_bytes=request.app.state.settings.max_upload_uncompressed_mb * 1024 * 1024,
        now=clock(),
        source_format=source_format,
        through_year=through_year,
        gwp_set=gwp_set,
    )
    draft: DatasetVersion = outcome.version
    # Committed here, inside `timed`, so an upload whose commit fails counts as an error, not
    # as `ok` with its rows stored (get_session's commit would run after the metrics).
    session.commit()
    request.app.state.metrics.upload_rows.inc(draft.row_count if outcome.created else 0)
    # The report's warnings in the client's language, as problem details are.
    lang = headers_language(request.headers)
    body = UploadResult(
        version=draft.version,
        status="draft",
        row_count=draft.row_count,
        file_name=draft.upload_file_name,
        file_sha256=draft.upload_file_sha256 or "",
        report=localize(outcome.report.as_dict(), lang),
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=201 if outcome.created else 200,
        headers={"Content-Language": "zh-CN" if lang == "zh" else "en", "Vary": "Accept-Language"},
    )


def _transition_target(
    session: SessionDep, publisher: str, dataset: str, version: str
) -> tuple[DatasetVersion, str]:
    # Locked: a change of a version's status is checked and made one at a time per dataset.
    target = dataset_service.dataset_for_write(
        session, publisher=publisher, dataset=dataset, lock=True
    )
    label = f"{publisher}/{dataset} {version}"
    return dataset_service.version_for_write(
        session, dataset=target, label=label, version=version
    ), label


@router.post("/{version}/submit", response_model=VersionRead, summary="Submit a draft for review")
def submit_version(
    session: SessionDep,
    principal: WriterDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    clock: ClockDep,
) -> JSONResponse:
    """Submit a draft of your publisher's dataset for review (`datasets:write`): it is frozen
    and its `content_sha256` fixed, which the reviewer's publish must name. 409 when it is not
    a draft."""
    _own_dataset(session, principal, publisher, dataset)
    target, label = _transition_target(session, publisher, dataset, version)
    workflow.submit(session, version=target, label=label, actor=principal.client_id, now=clock())
    return _version_response(session, principal, publisher, dataset, version)


@router.post(
    "/{version}/publish",
    response_model=VersionRead,
    summary="Publish a submitted version (national reviewer; not of the same publisher)",
    responses={
        403: {"description": "The reviewer is of the dataset's publisher"},
        409: {
            "description": "Not submitted (published or rejected meanwhile), not newer than "
            "the latest release, or not the content reviewed"
        },
    },
)
def publish_version(
    session: SessionDep,
    principal: ReviewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    body: PublishBody,
    clock: ClockDep,
    keys: ReleaseKeysDep,
) -> JSONResponse:
    """Publish a submitted version (`datasets:review`), naming the `content_sha256` you
    reviewed: it becomes immutable, the dataset's latest release, and the release it replaces
    becomes `deprecated`. 403 for a reviewer of the same publisher; 409 when it is not
    submitted, not newer than the latest release, or not the content reviewed."""
    target, label = _transition_target(session, publisher, dataset, version)
    workflow.approve(
        session,
        version=target,
        label=label,
        reviewer=principal.client_id,
        reviewer_publisher=principal.publisher,
        owner_publisher=publisher,
        reviewed_sha256=body.content_sha256,
        now=clock(),
        keys=keys,
    )
    return _version_response(session, principal, publisher, dataset, version)


@router.post("/{version}/reject", response_model=VersionRead, summary="Reject a submitted version")
def reject_version(
    session: SessionDep,
    principal: ReviewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    body: ReasonBody,
    clock: ClockDep,
) -> JSONResponse:
    """Reject a submitted version with a reason (`datasets:review`); it stays readable by its
    publisher as `rejected`. 403 for a reviewer of the same publisher; 409 when it is not
    submitted."""
    target, label = _transition_target(session, publisher, dataset, version)
    workflow.reject(
        session,
        version=target,
        label=label,
        reviewer=principal.client_id,
        reviewer_publisher=principal.publisher,
        owner_publisher=publisher,
        reason=body.reason,
        now=clock(),
    )
    return _version_response(session, principal, publisher, dataset, version)


@router.post(
    "/{version}/withdraw",
    response_model=VersionRead,
    summary="Withdraw a published version (it stays readable by exact version, flagged; "
    "national reviewer, not of the same publisher)",
    responses={
        403: {"description": "The reviewer is of the dataset's publisher"},
        409: {"description": "Not a current or deprecated release (withdrawn meanwhile)"},
    },
)
def withdraw_version(
    session: SessionDep,
    principal: ReviewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    body: ReasonBody,
    clock: ClockDep,
    keys: ReleaseKeysDep,
) -> JSONResponse:
    """Withdraw a published or deprecated version with a reason (`datasets:review`): it stays
    readable by exact version, flagged, and no longer answers "latest"; withdrawing the
    current release makes the previous one current again. 409 for any other status."""
    target, label = _transition_target(session, publisher, dataset, version)
    workflow.withdraw(
        session,
        version=target,
        label=label,
        reviewer=principal.client_id,
        reviewer_publisher=principal.publisher,
        owner_publisher=publisher,
        reason=body.reason,
        now=clock(),
        keys=keys,
    )
    return _version_response(session, principal, publisher, dataset, version)


@router.delete("/{version}", status_code=204, summary="Delete a draft")
def delete_draft(
    session: SessionDep,
    principal: WriterDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    clock: ClockDep,
) -> None:
    """Delete a draft of your publisher's dataset (`datasets:write`) and its factors; 204 with
    no body. 409 when the version is not a draft."""
    _own_dataset(session, principal, publisher, dataset)
    target, label = _transition_target(session, publisher, dataset, version)
    workflow.delete_draft(
        session, version=target, label=label, actor=principal.client_id, now=clock()
    )


class TemplateCSV(PlainTextResponse):
    media_type = "text/csv; charset=utf-8"


@template_router.get(
    "/v1/upload-template.csv",
    response_class=TemplateCSV,
    summary="The upload format: every column, with one documented example row",
    responses={200: {"description": "CSV: the header row and one documented example row"}},
)
def upload_template() -> TemplateCSV:
    """A CSV file with the header row of every upload column and one documented example row,
    to fill in and upload as a draft; no token needed. The same header row on a sheet named
    `factors` (or the workbook's first sheet) makes an XLSX upload: open this file in a
    spreadsheet, fill it in and save it as `.xlsx`, with values only (no formulas)."""
    return TemplateCSV(
        template_csv(),
        headers={"Content-Disposition": 'attachment; filename="efdb-upload-template.csv"'},
    )


@review_router.get(
    "/v1/review",
    response_model=ReviewQueue,
    summary="Submitted versions waiting for a reviewer, oldest first (national reviewer)",
    dependencies=[Depends(only_query_params(()))],
)
def list_review_queue(request: Request, session: SessionDep, principal: ReviewerDep) -> Response:
    """Every submitted version waiting for review, oldest submission first (`datasets:review`):
    its counts against the current release, its report's counts, the `content_sha256` a
    publish must name, whether you may review it, and links to read it."""
    items = review_queue(session, viewer=principal.as_viewer())
    return cached_json(request, {"items": items, "next": None}, cache_control=PRIVATE)


@dataset_router.post(
    "",
    status_code=201,
    response_model=DatasetRead,
    summary="Create a dataset of the caller's own publisher",
)
def create_dataset(
    session: SessionDep, principal: WriterDep, clock: ClockDep, body: DatasetCreate
) -> JSONResponse:
    """Create a dataset of your client's own publisher (`datasets:write`), with its licence
    terms; 201 with the dataset and its `Location`. 409 when the slug is taken; 422 for a
    client that belongs to no publisher, or an invalid body."""
    if principal.publisher is None:
        raise InvalidParameter(Message("auth.no_publisher"))
    publisher = dataset_service.publisher_by_slug(session, principal.publisher)
    created = dataset_service.create_dataset(
        session,
        publisher=publisher,
        fields=body.model_dump(),
        actor=principal.client_id,
        now=clock(),
    )
    return JSONResponse(
        DatasetRead.model_validate(created).model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/datasets/{created['id']}"},
    )


@dataset_router.post(
    "/{publisher}/{dataset}/deprecate",
    response_model=DatasetRead,
    summary="Deprecate a dataset and name the dataset that supersedes it (national reviewer)",
    responses={
        403: {"description": "The reviewer is of the dataset's publisher"},
        409: {"description": "Already deprecated, or the successor chain would loop"},
    },
)
def deprecate_dataset(
    session: SessionDep,
    principal: ReviewerDep,
    clock: ClockDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    body: DeprecateBody,
) -> JSONResponse:
    """Deprecate a dataset (`datasets:review`), with a reason and optionally the dataset that
    replaces it: its releases stay readable, and resolution prefers other datasets. 404 for an
    unknown dataset or successor; 409 when already deprecated, when a public dataset would
    point to a successor anonymous readers cannot see, or when the successor chain would
    loop."""
    deprecated = dataset_service.deprecate_dataset(
        session,
        publisher=publisher,
        dataset=dataset,
        superseded_by=body.superseded_by,
        reason=body.reason,
        actor=principal.client_id,
        actor_publisher=principal.publisher,
        now=clock(),
    )
    return JSONResponse(DatasetRead.model_validate(deprecated).model_dump(mode="json"))
