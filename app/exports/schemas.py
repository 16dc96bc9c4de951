"""Wire shapes of snapshots (contract §10)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class SnapshotFile(BaseModel):
    name: str = Field(description="factors.parquet, factors.arrow or manifest.json")
    sha256: str = Field(description="sha256 of the file's bytes; also its ETag")
    bytes: int
    url: str
    media_type: str


class SnapshotDatasetVersion(BaseModel):
    publisher: str
    dataset: str
    version: str
    published_at: datetime
    content_sha256: str = Field(description="Recomputable from the file (contract §6)")
    row_count: int
    license_id: str
    license_url: str | None
    attribution: str
    redistribution: bool
    commercial_use: bool


class SnapshotLicense(BaseModel):
    license_id: str
    license_url: str | None
    attribution: str
    datasets: list[str] = Field(description="`publisher/dataset@version` under this license")


class SnapshotRead(BaseModel):
    id: str = Field(description="UTC date and sequence, e.g. 2026-11-25.1")
    created_at: datetime
    created_by: str
    row_count: int
    schema_version: int
    dataset_versions: list[SnapshotDatasetVersion]
    licenses: list[SnapshotLicense]
    files: list[SnapshotFile]
