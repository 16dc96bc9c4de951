"""Wire shapes of datasets and their versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.urls import HttpUrlText

TIMESTAMP = "RFC 3339 timestamp in UTC, e.g. 2026-12-03T14:05:00+00:00"
VersionStatus = Literal["draft", "submitted", "published", "deprecated", "withdrawn", "rejected"]


class LicenseFields(BaseModel):
    license_id: str = Field(
        description="SPDX licence id (e.g. `CC-BY-4.0`, `CC0-1.0`) or `LicenseRef-<name>`"
    )
    license_url: str | None = Field(description="URL of the licence text")
    attribution: str = Field(description="Attribution text to show wherever the data is used")
    redistribution: bool = Field(
        description="Whether the data may be redistributed: only such datasets go into "
        "national snapshots"
    )
    commercial_use: bool = Field(description="Whether commercial use is allowed")


class DatasetRead(LicenseFields):
    """A publisher's named collection of factors, released as versions."""

    id: str = Field(description="publisher/dataset, e.g. `mee-cn/cn-electricity-co2`")
    publisher: str = Field(description="Publisher slug")
    slug: str = Field(description="Dataset slug, unique within its publisher")
    title_zh: str | None = Field(description="Title in Chinese")
    title_en: str | None = Field(description="Title in English")
    description: str | None = Field(description="What the dataset covers")
    sector_scheme: str | None = Field(
        description="Sector classification of `sector_code`, e.g. `GB/T 4754-2017`, `ISIC4`"
    )
    sector_code: str | None = Field(description="Sector code in `sector_scheme`, e.g. `C31`")
    access: Literal["public", "registered"] = Field(
        description="public: readable without a token; registered: by its publisher's clients, "
        "the national roles and the clients granted it (with `factors:read`)"
    )
    contact: str | None = Field(description="Who to contact about the data")
    methodology_url: str | None = Field(description="URL of the methodology document")
    coverage_zh: str | None = Field(
        None,
        description="In Chinese, plain words: what the dataset covers (activities, places, "
        "years, how many factors); from the publisher's documents (`about_sources`)",
    )
    coverage_en: str | None = Field(None, description="In English: what the dataset covers")
    method_zh: str | None = Field(
        None, description="In Chinese: how the publisher made the factors (method summary)"
    )
    method_en: str | None = Field(
        None, description="In English: how the publisher made the factors (method summary)"
    )
    limits_zh: str | None = Field(
        None,
        description="In Chinese: what the data should not be used for and what was left out",
    )
    limits_en: str | None = Field(
        None,
        description="In English: what the data should not be used for and what was left out",
    )
    license_plain_zh: str | None = Field(
        None,
        description="In Chinese: the licence in plain words (what a user may do, the "
        "attribution to give); `license_id` and `license_url` are the terms themselves",
    )
    license_plain_en: str | None = Field(None, description="In English: the licence in plain words")
    about_sources: str | None = Field(
        None,
        description="Which publisher documents the coverage, method, limits and licence text "
        "is written from",
    )
    status: Literal["active", "deprecated"] = Field(
        description="deprecated: its publisher retired it; its releases stay readable"
    )
    superseded_by: str | None = Field(
        description="For a deprecated dataset: the publisher/dataset that replaces it"
    )
    deprecated_at: datetime | None = Field(
        None, description=f"When it was deprecated (null: active); {TIMESTAMP}"
    )
    deprecation_reason: str | None = Field(None, description="Why it was deprecated")
    latest_version: str | None = Field(
        description="Its latest published release, MAJOR.MINOR.PATCH (null: none yet)"
    )
    created_at: datetime = Field(description=f"When the dataset was created; {TIMESTAMP}")


class VersionRead(BaseModel):
    """One version (release) of a dataset and where it is in its life cycle:
    draft → submitted → published → deprecated or withdrawn (or rejected)."""

    dataset: str = Field(description="publisher/dataset")
    version: str = Field(description="Semantic version MAJOR.MINOR.PATCH, e.g. 1.2.0")
    status: VersionStatus = Field(
        description="draft, submitted, published, deprecated (a newer release replaced it), "
        "withdrawn (readable by exact version, flagged) or rejected"
    )
    release_notes: str | None = Field(description="The publisher's notes on this release")
    row_count: int = Field(description="Number of factors")
    content_sha256: str | None = Field(
        description="sha256 (64 hex digits) over the canonical serialization of its factors "
        "(README, content hash); set at submission and fixed at publication"
    )
    file_name: str | None = Field(description="Name of the uploaded file")
    file_sha256: str | None = Field(description="sha256 of the uploaded file's bytes")
    created_by: str = Field(description="client_id of the client that uploaded it")
    created_at: datetime = Field(description=f"When it was uploaded; {TIMESTAMP}")
    submitted_by: str | None = Field(description="client_id that submitted it for review")
    submitted_at: datetime | None = Field(description=f"When it was submitted; {TIMESTAMP}")
    published_by: str | None = Field(description="client_id of the reviewer who published it")
    published_at: datetime | None = Field(description=f"When it was published; {TIMESTAMP}")
    supersedes: str | None = Field(description="The previous release it replaces, if any")
    withdrawn_at: datetime | None = Field(description=f"When it was withdrawn; {TIMESTAMP}")
    withdrawn_reason: str | None = Field(description="Why it was withdrawn")
    license_id: str = Field(description="The dataset's licence: SPDX id or `LicenseRef-<name>`")
    attribution: str = Field(description="Attribution text to show wherever the data is used")
    report: dict[str, Any] | None = Field(
        default=None,
        description="The upload's validation report (draft and submitted versions, to their "
        "publisher and reviewers)",
    )


SPDX_OR_REF = r"^(?:LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9][A-Za-z0-9.+-]*)$"


class DatasetCreate(BaseModel):
    """A new dataset of the caller's own publisher. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    slug: Annotated[
        str,
        Field(
            pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
            description="Dataset slug, unique within the publisher: lowercase letters, digits "
            "and `-`, e.g. `steel-products`",
        ),
    ]
    title_zh: Annotated[str, Field(max_length=255)] | None = Field(
        None, description="Title in Chinese (this or title_en is required)"
    )
    title_en: Annotated[str, Field(max_length=255)] | None = Field(
        None, description="Title in English (this or title_zh is required)"
    )
    description: str | None = Field(None, description="What the dataset covers")
    sector_scheme: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="Sector classification, e.g. `GB/T 4754-2017`, `ISIC4`"
    )
    sector_code: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="Sector code in `sector_scheme`, e.g. `C31`"
    )
    access: Literal["public", "registered"] = Field(
        "public",
        description="public: readable without a token; registered: by its publisher's clients, "
        "the national roles and the clients granted it (with `factors:read`)",
    )
    license_id: Annotated[
        str,
        Field(
            pattern=SPDX_OR_REF,
            max_length=128,
            description="SPDX licence id (e.g. `CC-BY-4.0`) or `LicenseRef-<name>`",
        ),
    ]
    license_url: Annotated[HttpUrlText, Field(max_length=512)] | None = Field(
        None, description="http(s) URL of the licence text"
    )
    attribution: Annotated[str, Field(min_length=1, description="Attribution text users must show")]
    redistribution: bool = Field(
        description="Whether the data may be redistributed (in national snapshots)"
    )
    commercial_use: bool = Field(description="Whether commercial use is allowed")
    contact: Annotated[str, Field(max_length=255)] | None = Field(
        None, description="Who to contact about the data"
    )
    methodology_url: Annotated[HttpUrlText, Field(max_length=512)] | None = Field(
        None, description="http(s) URL of the methodology document"
    )
    coverage_zh: Annotated[str, Field(max_length=8000)] | None = Field(
        None,
        description="In Chinese, plain words: what the dataset covers (activities, places, "
        "years, how many factors); from the publisher's documents (`about_sources`)",
    )
    coverage_en: Annotated[str, Field(max_length=8000)] | None = Field(
        None, description="In English: what the dataset covers"
    )
    method_zh: Annotated[str, Field(max_length=8000)] | None = Field(
        None, description="In Chinese: how the publisher made the factors (method summary)"
    )
    method_en: Annotated[str, Field(max_length=8000)] | None = Field(
        None, description="In English: how the publisher made the factors (method summary)"
    )
    limits_zh: Annotated[str, Field(max_length=8000)] | None = Field(
        None,
        description="In Chinese: what the data should not be used for and what was left out",
    )
    limits_en: Annotated[str, Field(max_length=8000)] | None = Field(
        None,
        description="In English: what the data should not be used for and what was left out",
    )
    license_plain_zh: Annotated[str, Field(max_length=8000)] | None = Field(
        None,
        description="In Chinese: the licence in plain words (what a user may do, the "
        "attribution to give); `license_id` and `license_url` are the terms themselves",
    )
    license_plain_en: Annotated[str, Field(max_length=8000)] | None = Field(
        None, description="In English: the licence in plain words"
    )
    about_sources: Annotated[str, Field(max_length=8000)] | None = Field(
        None,
        description="Which publisher documents the coverage, method, limits and licence text "
        "is written from",
    )

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
    reason: Annotated[
        str, Field(min_length=1, max_length=4000, description="Why, for its users (1–4000 chars)")
    ]
