"""The provenance chain's shape: what `GET …/provenance` answers (JSON), and the outline of
its W3C PROV-JSON twin. The route caches the chain as built; the models are the documented
contract, and tests validate real answers against them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.schemas import TIMESTAMP, VersionStatus
from app.versioning.schemas import HistoryEntry


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChainFactor(_Closed):
    """The factor the chain explains: its row and the value it is a number of."""

    id: int = Field(description="Database id of its row")
    uid: str = Field(description="Opaque id of its row in this release")
    factor_code: str = Field(description="The publisher's key for the factor within the dataset")
    activity_id: str = Field(description="Activity vocabulary slug")
    co2e: float = Field(description="kg CO2e per declared `unit`")
    unit: str = Field(description="The declared unit the factor is per")
    region: str = Field(description="Where the factor applies")
    reference_year: int = Field(description="Year the data represents")
    gwp_set: str | None = Field(description="GWP100 set of its co2e")
    boundary: str = Field(description="Life-cycle boundary")


class ChainSource(_Closed):
    """The cited source and where in it the number is."""

    id: int = Field(description="Database id of the source")
    title: str = Field(description="Title of the source document")
    publisher: str = Field(description="Who published the source")
    year: int | None = Field(description="Year of the source")
    url: str | None = Field(description="Where to read it")
    doi: str | None = Field(description="Its DOI, if any")
    locator: str | None = Field(description="Table, page or row in the source")


class ChainVersion(_Closed):
    """The dataset version (release) the factor is read from, and its life so far."""

    dataset: str = Field(description="publisher/dataset")
    version: str = Field(description="MAJOR.MINOR.PATCH")
    status: VersionStatus = Field(description="Its status now")
    content_sha256: str | None = Field(description="Its content hash (contract §6)")
    created_by: str = Field(description="Who uploaded it")
    created_at: datetime = Field(description=f"When it was uploaded; {TIMESTAMP}")
    submitted_by: str | None = Field(description="Who submitted it for review")
    submitted_at: datetime | None = Field(description=f"When; {TIMESTAMP}")
    published_by: str | None = Field(description="Who published it")
    published_at: datetime | None = Field(description=f"When; {TIMESTAMP}")
    withdrawn_by: str | None = Field(description="Who withdrew it")
    withdrawn_at: datetime | None = Field(description=f"When; {TIMESTAMP}")
    withdrawn_reason: str | None = Field(description="Why it was withdrawn")


class ChainUpload(_Closed):
    """The uploaded file the factor's row came from."""

    file_name: str | None = Field(description="Name of the uploaded file")
    file_sha256: str | None = Field(description="sha256 of the uploaded file")
    format: str | None = Field(description="csv, jsonl or parquet")
    row_number: int | None = Field(description="The factor's row in that file")
    uploaded_by: str = Field(description="Who uploaded it")
    uploaded_at: datetime = Field(description=f"When; {TIMESTAMP}")


class ChainAuditEvent(_Closed):
    """An audit event of the version or of its dataset."""

    action: str = Field(description="What happened, e.g. `dataset_version.published`")
    actor: str = Field(description="Who did it")
    occurred_at: datetime = Field(description=f"When; {TIMESTAMP}")
    hash: str = Field(description="The event's hash in the audit chain")
    subject_type: str = Field(description="`dataset_version` or `dataset`")


class ChainActor(_Closed):
    """Who an actor of the chain is."""

    id: str = Field(description="The actor as the audit log names it")
    client: bool = Field(description="Whether it is an OAuth2 client of this service")
    publisher: str | None = Field(description="The client's publisher (none: national)")


class ProvenanceChain(_Closed):
    """Where a factor comes from: source, version, upload, review, audit and history."""

    id: str = Field(description="`publisher/dataset/factor_code@version`")
    factor: ChainFactor = Field(description="The factor")
    source: ChainSource = Field(description="Its cited source")
    publisher: str = Field(description="Publisher slug")
    dataset_version: ChainVersion = Field(description="The release it is read from")
    upload: ChainUpload = Field(description="The upload it came from")
    audit_events: list[ChainAuditEvent] = Field(description="The release's audit events")
    actors: list[ChainActor] = Field(description="Who each actor above is")
    history: list[HistoryEntry] = Field(description="The factor in every readable release")
    dataset_status: str = Field(description="`active` or `deprecated`")
    superseded_by: str | None = Field(description="The dataset that replaces a deprecated one")
    license_id: str = Field(description="SPDX licence id or `LicenseRef-<name>`")
    attribution: str = Field(description="Attribution text to show wherever the data is used")
    license_url: str | None = Field(description="URL of the licence text")


class ProvJsonDocument(BaseModel):
    """The chain as W3C PROV-JSON (`format=prov`): prefixes, then entities, activities,
    agents and their relations, each a map from identifier to attributes."""

    model_config = ConfigDict(extra="allow")

    prefix: dict[str, str] = Field(description="Namespace prefixes (efdb, prov, xsd, …)")
    entity: dict[str, dict[str, Any]] = Field(description="The factor, version, file, source")
    activity: dict[str, dict[str, Any]] = Field(description="Upload, submission, publication")
    agent: dict[str, dict[str, Any]] = Field(description="Clients and people who acted")
