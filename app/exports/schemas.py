"""Wire shapes of snapshots (contract §10)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.schemas import TIMESTAMP


class SnapshotFile(BaseModel):
    """One file of a snapshot."""

    name: str = Field(
        description="factors.parquet, factors.arrow (Arrow IPC file), factors.arrows (Arrow IPC "
        "stream; before export schema 2 a snapshot's factors.arrow is the stream), factors.xlsx "
        "(a workbook with a read-me sheet; snapshots written since XLSX exports) or manifest.json"
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
    published version at one moment, as Parquet, Arrow and XLSX files with a manifest."""

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
        description="factors.parquet, factors.arrow, factors.arrows, factors.xlsx (snapshots "
        "written since XLSX exports) and manifest.json, with sha256 and size"
    )
    changes_cursor: str | None = Field(
        description="The change feed's position this snapshot is consistent with: "
        "`GET /v1/changes?after=` it lists every change made since (null for snapshots "
        "written before the feed existed)"
    )


class ManifestFile(BaseModel):
    """One data file as its snapshot's manifest lists it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="factors.parquet, factors.arrow, factors.arrows or factors.xlsx (snapshots "
        "written since XLSX exports)"
    )
    sha256: str = Field(description="sha256 of the file's bytes")
    bytes: int = Field(description="Size of the file in bytes")


class ManifestColumn(BaseModel):
    """One column of the snapshot's files (export schema)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Column name")
    type: str = Field(description="Its Arrow type, e.g. `double`, `string`")
    nullable: bool = Field(description="Whether it may be null")
    description: str = Field(description="What it holds")
    unit: str | None = Field(None, description="Its unit, for the numeric value columns")


class ManifestDatasetVersion(SnapshotDatasetVersion):
    """One dataset version as a snapshot's manifest lists it."""

    model_config = ConfigDict(extra="forbid")

    release_statement: str | None = Field(
        None,
        description="The release's signed statement (JWS compact, ES256; absent in snapshots "
        "written before releases were signed): `efdb verify` checks it with the JWKS",
    )


class ManifestCheckpoint(BaseModel):
    """The audit checkpoint signed just before the snapshot."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(description="Checkpoint id (GET /v1/audit/checkpoints)")
    event_count: int = Field(description="Number of audit events in the chain when signed")
    head_hash: str = Field(description="Hash of the chain's last event then")
    tree_size: int | None = Field(
        None,
        description="Size of the audit Merkle tree it signs (= event_count); absent or null "
        "in manifests written before the tree existed",
    )
    root_hash: str | None = Field(
        None,
        description="Root of the audit Merkle tree over those events (RFC 9162); with it the "
        "checkpoint can be proven extended later (`efdb verify FILE --jwks JWKS --from URL`)",
    )
    signed_at: datetime = Field(description=f"When it was signed; {TIMESTAMP}")
    kid: str = Field(description="The release key that signed it")
    jws: str = Field(description="The checkpoint as JWS compact (ES256)")


class SnapshotManifest(BaseModel):
    """`manifest.json`: what a snapshot holds, written with its files and never changed."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["efdb-snapshot"] = Field(description="Always `efdb-snapshot`")
    schema_version: int = Field(description="Version of the export schema of its files")
    id: str = Field(description="The snapshot's id: UTC date and sequence, e.g. 2026-11-25.1")
    created_at: datetime = Field(description=f"When it was written; {TIMESTAMP}")
    created_by: str = Field(description="Who wrote it: a client_id, or `cli:<login>`")
    row_count: int = Field(description="Number of factors in it")
    dataset_versions: list[ManifestDatasetVersion] = Field(
        description="The dataset versions it holds, each with its content hash and licence"
    )
    files: list[ManifestFile] = Field(description="Its data files with sha256 and size")
    workbook_max_rows: int | None = Field(
        None,
        description="The most factors a snapshot's workbook (factors.xlsx) is written for: a "
        "snapshot of more has none (absent in manifests written before the bound)",
    )
    packages_max_rows: int | None = Field(
        None,
        description="The most factors a snapshot's openLCA and ILCD packages "
        "(factors.jsonld.zip, factors.ilcd.zip) are assembled for: a snapshot of more has "
        "neither (absent in manifests written before snapshots held packages)",
    )
    licenses: list[SnapshotLicense] = Field(description="The attribution list")
    content_hash_fields: list[str] = Field(
        description="The factor fields a version's content_sha256 is computed over, in order"
    )
    content_hash_recipe: str = Field(description="How to recompute a version's content_sha256")
    columns: list[ManifestColumn] = Field(description="The columns of the data files")
    changes_cursor: str | None = Field(
        None,
        description="The change feed's position this snapshot is consistent with (absent "
        "in snapshots written before the feed existed)",
    )
    audit_checkpoint: ManifestCheckpoint | None = Field(
        None,
        description="The audit checkpoint signed just before the snapshot (absent in snapshots "
        "written before checkpoints were signed)",
    )
