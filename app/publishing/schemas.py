"""Wire shapes of the write path: uploads, the life-cycle transitions and the review queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.schemas import VersionStatus


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Annotated[str, Field(min_length=1, max_length=4000)]


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
    version: str
    status: VersionStatus
    row_count: int
    file_name: str | None
    file_sha256: str
    report: dict[str, object]


class ReviewChanges(BaseModel):
    added: int
    removed: int
    changed: int


class ReviewItem(BaseModel):
    """One submitted version in the reviewer's queue."""

    dataset: str
    version: str
    status: VersionStatus
    submitted_at: datetime | None
    submitted_by: str | None
    row_count: int
    content_sha256: str = Field(description="What `POST …/publish` must name")
    current_release: str | None = Field(description="The release it would supersede")
    changes: ReviewChanges | None = Field(description="Against `current_release`")
    error_count: int | None
    warning_count: int | None
    can_review: bool = Field(description="False for a reviewer of the same publisher")
    links: dict[str, str | None]


class ReviewQueue(BaseModel):
    items: list[ReviewItem]
    next: str | None
