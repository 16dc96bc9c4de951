"""Wire shapes of datasets and their versions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from app.factors.schemas import VersionStatus


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
    superseded_by: str | None
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
