"""Wire shapes of snapshots (contract §10)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.datasets.schemas import TIMESTAMP


class SnapshotFile(BaseModel):
    """One file of a snapshot."""

    name: str = Field(
        description="factors.parquet, factors.arrow (Arrow IPC file), factors.arrows (Arrow IPC "
        "stream; before export schema 2 a snapshot's factors.arrow is the stream) or manifest.json"
    )
    sha256: str = Field(description="sha256 of the file's bytes; also its ETag")
    bytes: int = Field(description="Size of the file in bytes")
    url: str = Field(description="Root-relative URL to download it")
    media_type: str = Field(description="Its media type, e.g. `application/vnd.apache.parquet`")


class SnapshotDatasetVersion(BaseModel):
    """One dataset version included in a snapshot, with its licence."""

    publisher: str = Field(description="Publisher slug")
    dataset: str = Field(description="Dataset slug")
    version: str = Field(description="The release included, MAJOR.MINOR.PATCH")
    published_at: datetime = Field(description=f"When it was published; {TIMESTAMP}")
    content_sha256: str = Field(description="Recomputable from the file (contract §6)")
    row_count: int = Field(description="Number of its factors in the snapshot")
    license_id: str = Field(description="SPDX licence id or `LicenseRef-<name>`")
    license_url: str | None = Field(description="URL of the licence text")
    attribution: str = Field(description="Attribution text to show wherever the data is used")
    redistribution: bool = Field(description="May be redistributed (always true in a snapshot)")
    commercial_use: bool = Field(description="Whether commercial use is allowed")
    release_statement: str | None = Field(
        default=None,
        description="The version's signed release statement (JWS compact, as served at "
        "`…/versions/{v}/release.jws`); absent in snapshots written before signing",
    )


class SnapshotLicense(BaseModel):
    """One licence of a snapshot's data and the dataset versions under it: the attribution
    list."""

    license_id: str = Field(description="SPDX licence id or `LicenseRef-<name>`")
    license_url: str | None = Field(description="URL of the licence text")
    attribution: str = Field(description="Attribution text to show wherever the data is used")
    datasets: list[str] = Field(description="`publisher/dataset@version` under this license")


class SnapshotRead(BaseModel):
    """An immutable national bulk release: each public, redistributable dataset's latest
    published version at one moment, as Parquet and Arrow files with a manifest."""

    id: str = Field(description="UTC date and sequence, e.g. 2026-11-25.1")
    created_at: datetime = Field(description=f"When it was written; {TIMESTAMP}")
    created_by: str = Field(description="Who wrote it: a client_id, or `cli:<login>`")
    row_count: int = Field(description="Number of factors in it")
    schema_version: int = Field(description="Version of the export schema of its files")
    dataset_versions: list[SnapshotDatasetVersion] = Field(
        description="The dataset versions it holds"
    )
    licenses: list[SnapshotLicense] = Field(
        description="The attribution list: each licence and the versions under it"
    )
    files: list[SnapshotFile] = Field(
        description="factors.parquet, factors.arrow, factors.arrows and manifest.json, with "
        "sha256 and size"
    )
