"""API shapes of the change feed and the citation check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


MAX_CITATIONS = 1000


class CitationIn(BaseModel):
    """One factor as a footprint or a label cites it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        max_length=300,
        description="`publisher/dataset/factor_code@version`, e.g. "
        "`mee-cn/cn-electricity-co2/national-average-2022@1.0.0`",
    )
    content_sha256: str | None = Field(
        None, description="The cited release's `content_sha256`, as the citation states it"
    )
    value: float | None = Field(
        None, description="The value (kg CO2e per unit) the citing document used"
    )


class CitationsVerifyRequest(BaseModel):
    """Citations to check, answered in the same order."""

    model_config = ConfigDict(extra="forbid")

    citations: list[CitationIn] = Field(
        min_length=1,
        description=f"1 to {MAX_CITATIONS} citations",
        json_schema_extra={"maxItems": MAX_CITATIONS},
    )


class Replacement(BaseModel):
    """The current factor that replaces a cited one."""

    id: str = Field(description="`publisher/dataset/factor_code@version` of the current factor")
    value: float = Field(description="Its value, kg CO2e per `unit`")
    unit: str = Field(description="The unit its value is per")
    content_sha256: str | None = Field(description="Its release's content hash")


class CitationVerdict(BaseModel):
    """What the database says now about one citation."""

    index: int = Field(description="Position of the citation in the request, from 0")
    id: str = Field(description="The citation's id, as sent")
    found: bool = Field(description="Whether that factor exists in that released version")
    not_found: Literal["dataset", "release", "factor"] | None = Field(
        description="What is missing when not found: the dataset (or one you may not read), "
        "the release, or the factor in that release"
    )
    value: float | None = Field(description="The factor's value in the cited release")
    unit: str | None = Field(description="The unit that value is per")
    value_matches: bool | None = Field(
        description="Whether the cited `value` equals it exactly; null when none was cited"
    )
    content_sha256: str | None = Field(description="The cited release's content hash")
    content_sha256_matches: bool | None = Field(
        description="Whether the cited `content_sha256` equals it; null when none was cited"
    )
    release_status: Literal["published", "superseded", "withdrawn"] | None = Field(
        description="`published` (the current release), `superseded` (a newer release is "
        "current) or `withdrawn`; null when the release does not exist"
    )
    withdrawn_reason: str | None = Field(description="Why the release was withdrawn")
    withdrawn_at: str | None = Field(description="When it was withdrawn, RFC 3339 UTC")
    superseded_at: str | None = Field(description="When a newer release superseded it")
    current_version: str | None = Field(
        description='The dataset\'s release answering "latest" now; null when none does'
    )
    dataset_status: Literal["active", "deprecated"] | None = Field(
        description="The dataset's status; null when the dataset was not found"
    )
    superseded_by: str | None = Field(
        description="The deprecated dataset's successor, `publisher/dataset`, if named"
    )
    deprecation_reason: str | None = Field(description="Why the dataset was deprecated")
    deprecated_at: str | None = Field(description="When it was deprecated, RFC 3339 UTC")
    replaced_by: Replacement | None = Field(
        description="The current factor with the same code that replaces the cited one: in "
        "the successor dataset when the dataset is deprecated, otherwise in the dataset's "
        "current release when the cited one is not it; null when the citation is current"
    )


class CitationsVerifyResponse(BaseModel):
    """One verdict per citation, in request order."""

    items: list[CitationVerdict] = Field(description="The verdicts, in the order sent")
