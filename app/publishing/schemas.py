"""Wire shapes of the write path: uploads, the life-cycle transitions and the review queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.schemas import TIMESTAMP, VersionStatus


class ReasonBody(BaseModel):
    """Why a reviewer rejects or withdraws a version; it is kept with the version and in the
    audit log."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Annotated[
        str, Field(min_length=1, max_length=4000, description="The reason, 1–4000 characters")
    ]


class PublishBody(BaseModel):
    """What the reviewer read: the submitted version's `content_sha256`."""

    model_config = ConfigDict(extra="forbid")

    content_sha256: Annotated[
        str,
        Field(
            pattern=r"^[0-9a-f]{64}$",
            description="The submitted version's content_sha256, as the reviewer read it",
        ),
    ]


class UploadResult(BaseModel):
    """The draft an upload created (or replaced), with its validation report."""

    version: str = Field(description="The draft's version, MAJOR.MINOR.PATCH")
    status: VersionStatus = Field(description="Always `draft`")
    row_count: int = Field(description="Number of factors stored")
    file_name: str | None = Field(description="The uploaded file's name, made safe")
    file_sha256: str = Field(description="sha256 of the uploaded file's bytes, hex")
    report: dict[str, object] = Field(
        description="Validation report: `errors` (empty on success) and `warnings`, each with "
        "`row` (1-based, the CSV header is row 1), `column`, `code` and `detail` (a publisher's "
        "own file read with `source_format`: also `sheet` and the upload `field`, with `row` "
        "and `column` the publisher file's own), and `error_count`, `warning_count`"
    )


class ReviewChanges(BaseModel):
    """What the submission changes against the current release (counts of factors)."""

    added: int = Field(description="Factors only in the submission")
    removed: int = Field(description="Factors only in the current release")
    changed: int = Field(description="Factors in both whose values differ")


class ReviewItem(BaseModel):
    """One submitted version in the reviewer's queue."""

    dataset: str = Field(description="publisher/dataset")
    version: str = Field(description="The submitted version, MAJOR.MINOR.PATCH")
    status: VersionStatus = Field(description="Always `submitted`")
    submitted_at: datetime | None = Field(description=f"When it was submitted; {TIMESTAMP}")
    submitted_by: str | None = Field(description="client_id that submitted it")
    row_count: int = Field(description="Number of factors")
    content_sha256: str = Field(description="What `POST …/publish` must name")
    current_release: str | None = Field(description="The release it would supersede")
    changes: ReviewChanges | None = Field(description="Against `current_release`")
    error_count: int | None = Field(
        description="Errors in its upload's validation report (null: no report kept)"
    )
    warning_count: int | None = Field(
        description="Warnings in its upload's validation report (null: no report kept)"
    )
    activity_labels: list[str] = Field(
        default_factory=list,
        description="The activities its upload names (`activity_name_zh`, `activity_name_en`, "
        "`activity_keywords`): publishing adds their labels, listed in the version's "
        "`report.activity_labels`, to the activity vocabulary",
    )
    can_review: bool = Field(description="False for a reviewer of the same publisher")
    links: dict[str, str | None] = Field(
        description="Root-relative URLs: `version`, `factors`, `diff` (against the current "
        "release; null without one), `publish`, `reject`"
    )


class ReviewQueue(BaseModel):
    """Every submitted version waiting for a reviewer, oldest submission first, in one page."""

    items: list[ReviewItem] = Field(description="The submissions, oldest first")
    next: str | None = Field(description="Always null: the queue is one page")
