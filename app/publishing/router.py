"""Publishing: upload a draft, submit it, and let a national reviewer publish or reject it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse

from app.auth.dependencies import Principal, ReviewerDep, WriterDep
from app.core.clock import ClockDep
from app.core.db import SessionDep
from app.core.errors import InvalidParameter, NotFound
from app.core.http_cache import PRIVATE, cached_json
from app.core.params import DatasetSlug, PublisherSlug, only_query_params
from app.datasets import service as dataset_service
from app.datasets.models import Dataset
from app.datasets.schemas import DatasetCreate, DatasetRead, DeprecateBody, VersionRead
from app.datasets.version_models import DatasetVersion
from app.publishing import workflow
from app.publishing.drafts import upload_draft
from app.publishing.review import review_queue
from app.publishing.schemas import PublishBody, ReasonBody, ReviewQueue, UploadResult
from app.publishing.template import template_csv
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
        raise NotFound(f"No dataset {publisher}/{dataset} that this client may write.")
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
    summary="Upload a file as a draft version (CSV, Parquet or JSON Lines)",
    responses={
        200: {"model": UploadResult, "description": "The same file was already this draft"},
        413: {"description": "File over the size cap"},
        422: {"description": "Validation report: nothing was stored"},
    },
)
def upload_version(
    request: Request,
    session: SessionDep,
    principal: WriterDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionForm,
    file: Annotated[UploadFile, File(description="The factors, in the upload format")],
    clock: ClockDep,
    release_notes: Annotated[str | None, Form(max_length=20000)] = None,
) -> JSONResponse:
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
    )
    draft: DatasetVersion = outcome.version
    body = UploadResult(
        version=draft.version,
        status="draft",
        row_count=draft.row_count,
        file_name=draft.upload_file_name,
        file_sha256=draft.upload_file_sha256 or "",
        report=outcome.report.as_dict(),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if outcome.created else 200)


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
    version: str,
    clock: ClockDep,
) -> JSONResponse:
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
    version: str,
    body: PublishBody,
    clock: ClockDep,
) -> JSONResponse:
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
    )
    return _version_response(session, principal, publisher, dataset, version)


@router.post("/{version}/reject", response_model=VersionRead, summary="Reject a submitted version")
def reject_version(
    session: SessionDep,
    principal: ReviewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: str,
    body: ReasonBody,
    clock: ClockDep,
) -> JSONResponse:
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
    version: str,
    body: ReasonBody,
    clock: ClockDep,
) -> JSONResponse:
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
    )
    return _version_response(session, principal, publisher, dataset, version)


@router.delete("/{version}", status_code=204, summary="Delete a draft")
def delete_draft(
    session: SessionDep,
    principal: WriterDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: str,
    clock: ClockDep,
) -> None:
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
    if principal.publisher is None:
        raise InvalidParameter(
            "Only a publisher's client creates datasets; this client belongs to no publisher."
        )
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
