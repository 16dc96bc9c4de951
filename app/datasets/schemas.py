"""Wire shapes of datasets and their versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.urls import HttpUrlText

VersionStatus = Literal["draft", "submitted", "published", "deprecated", "withdrawn", "rejected"]


class LicenseFields(BaseModel):
    license_id: str
    license_url: str | None
    attribution: str
    redistribution: bool
    commercial_use: bool


class DatasetRead(LicenseFields):
    id: str
    publisher: str
    slug: str
    title_zh: str | None
    title_en: str | None
    description: str | None
    sector_scheme: str | None
    sector_code: str | None
    access: Literal["public", "registered"]
    contact: str | None
    methodology_url: str | None
    status: Literal["active", "deprecated"]
    superseded_by: str | None = Field(
        description="For a deprecated dataset: the publisher/dataset that replaces it"
    )
    deprecated_at: datetime | None = None
    deprecation_reason: str | None = None
    latest_version: str | None
    created_at: datetime


class VersionRead(BaseModel):
    dataset: str
    version: str
    status: VersionStatus
    release_notes: str | None
    row_count: int
    content_sha256: str | None
    file_name: str | None
    file_sha256: str | None
    created_by: str
    created_at: datetime
    submitted_by: str | None
    submitted_at: datetime | None
    published_by: str | None
    published_at: datetime | None
    supersedes: str | None
    withdrawn_at: datetime | None
    withdrawn_reason: str | None
    license_id: str
    attribution: str
    report: dict[str, Any] | None = Field(
        default=None,
        description="The upload's validation report (draft and submitted versions, to their "
        "publisher and reviewers)",
    )


SPDX_OR_REF = r"^(?:LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9][A-Za-z0-9.+-]*)$"


class DatasetCreate(BaseModel):
    """A new dataset of the caller's own publisher. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
    title_zh: Annotated[str, Field(max_length=255)] | None = None
    title_en: Annotated[str, Field(max_length=255)] | None = None
    description: str | None = None
    sector_scheme: Annotated[str, Field(max_length=64)] | None = None
    sector_code: Annotated[str, Field(max_length=64)] | None = None
    access: Literal["public", "registered"] = "public"
    license_id: Annotated[str, Field(pattern=SPDX_OR_REF, max_length=128)]
    license_url: Annotated[HttpUrlText, Field(max_length=512)] | None = None
    attribution: Annotated[str, Field(min_length=1)]
    redistribution: bool
    commercial_use: bool
    contact: Annotated[str, Field(max_length=255)] | None = None
    methodology_url: Annotated[HttpUrlText, Field(max_length=512)] | None = None

    @model_validator(mode="after")
    def _a_title(self) -> DatasetCreate:
        if not self.title_zh and not self.title_en:
            raise ValueError("give title_zh or title_en")
        return self


DATASET_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}/[a-z0-9][a-z0-9-]{0,63}$"


class DeprecateBody(BaseModel):
    """Deprecate a dataset: which dataset replaces it (if any) and why."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    superseded_by: Annotated[
        str | None,
        Field(pattern=DATASET_ID_PATTERN, description="publisher/dataset that replaces it"),
    ] = None
    reason: Annotated[str, Field(min_length=1, max_length=4000)]
