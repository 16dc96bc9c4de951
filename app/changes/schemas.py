"""API shapes of the change feed and the citation check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ChangeType = Literal[
    "release.published", "release.withdrawn", "dataset.deprecated", "reference.reloaded"
]


class ReferenceTableChange(BaseModel):
    """One reference table (locations, units, GWP sets, …) as a reload changed it."""

    version: str | None = Field(description="sha256 of the table's shipped files now loaded")
    previous_version: str | None = Field(description="The version it replaced; null if none")
    rows: int | None = Field(description="Rows of the table after the reload")


class ChangeRead(BaseModel):
    """One public change, told from the audit event that recorded it."""

    type: ChangeType = Field(
        description="`release.published` (a new release is current), `release.withdrawn` "
        "(with `reason`), `dataset.deprecated` (with `superseded_by`), `reference.reloaded` "
        "(units, GWP sets, locations… changed: see `reference`)"
    )
    occurred_at: str = Field(description="When it happened: RFC 3339 timestamp in UTC")
    audit_event_id: int = Field(description="The audit event that recorded it (`GET /v1/audit`)")
    audit_hash: str = Field(description="That event's hash in the audit chain, hex sha256")
    cursor: str = Field(
        description="Opaque position just after this change: `?after=` it to read what followed"
    )
    publisher: str | None = Field(description="Publisher slug; null for reference data")
    dataset: str | None = Field(description="Dataset slug; null for reference data")
    dataset_access: str | None = Field(description="`public` or `registered`; null for reference")
    redistribution: bool | None = Field(
        description="Whether the dataset may enter public snapshots; null for reference data"
    )
    version: str | None = Field(description="The release published or withdrawn")
    content_sha256: str | None = Field(description="That release's content hash")
    row_count: int | None = Field(description="Factors in the published release")
    supersedes: str | None = Field(description="The release a published one replaced, if any")
    diff: str | None = Field(
        description="Root-relative URL of the diff from `supersedes` to `version`, if any"
    )
    reason: str | None = Field(description="Why it was withdrawn or deprecated")
    superseded_by: str | None = Field(
        description="The deprecated dataset's successor (`publisher/dataset`), if named"
    )
    current_version: str | None = Field(
        description='The dataset\'s release answering "latest" right after this change; null '
        "when none is (every release withdrawn), and for deprecations and reference data"
    )
    current_content_sha256: str | None = Field(description="That release's content hash")
    reference: dict[str, ReferenceTableChange] | None = Field(
        description="For `reference.reloaded`: each reloaded table, by name"
    )


class ChangesPageRead(BaseModel):
    """Changes in the audit chain's order, oldest first."""

    items: list[ChangeRead] = Field(description="The changes of this page (at most `limit`)")
    next: str | None = Field(
        description="Root-relative URL of the next page while more changes exist now; null "
        "when this page reached the newest (poll again later with `cursor`)"
    )
    cursor: str = Field(
        description="Opaque position after the last event this page covered: `?after=` it to "
        "continue, now or later; never skips or repeats a change"
    )
