"""The shapes of the version read API's answers that are not a catalog type: a factor's
history and a diff between two versions. The routes stream or cache these as built; the
models are the documented contract, and tests validate real answers against them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.schemas import TIMESTAMP, VersionStatus
from app.factors.schemas import FactorFields


class HistoryEntry(BaseModel):
    """The factor as one released version has it."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="The release, MAJOR.MINOR.PATCH")
    version_status: VersionStatus = Field(
        description="published, deprecated (a newer release replaced it) or withdrawn"
    )
    published_at: datetime | None = Field(description=f"When it was published; {TIMESTAMP}")
    withdrawn_at: datetime | None = Field(description=f"When it was withdrawn; {TIMESTAMP}")
    withdrawn_reason: str | None = Field(description="Why it was withdrawn")
    withdrawn: bool = Field(description="Whether this release was withdrawn")
    uid: str = Field(description="Opaque id of the factor's row in this release")
    co2e: float = Field(description="kg CO2e per declared `unit`")
    unit: str = Field(description="The declared unit the factor is per")
    region: str = Field(description="Where the factor applies")
    reference_year: int = Field(description="Year the data represents")
    gwp_set: str | None = Field(description="GWP100 set of its co2e")
    co2: float | None = Field(description="kg CO2 per declared `unit`")
    ch4: float | None = Field(description="kg CH4 per declared `unit`")
    n2o: float | None = Field(description="kg N2O per declared `unit`")


class FactorHistory(BaseModel):
    """A factor in every released version of its dataset that the caller may read."""

    model_config = ConfigDict(extra="forbid")

    items: list[HistoryEntry] = Field(description="One entry per release, newest first")


class FieldChange(BaseModel):
    """One field's value before and after."""

    model_config = ConfigDict(extra="forbid")

    before: Any = Field(description="Its value in the older version (null: not set)")
    after: Any = Field(description="Its value in this version (null: not set)")


class ChangedFactor(BaseModel):
    """A factor in both versions whose uploadable fields differ."""

    model_config = ConfigDict(extra="forbid")

    factor_code: str = Field(description="The factor's key within the dataset")
    fields: dict[str, FieldChange] = Field(
        description="Each changed uploadable field, by name, before → after"
    )


class DiffSummary(BaseModel):
    """How many factors were added, removed and changed."""

    model_config = ConfigDict(extra="forbid")

    added: int = Field(description="Number of factor codes only in this version")
    removed: int = Field(description="Number of factor codes only in the older version")
    changed: int = Field(description="Number of factors whose fields changed")


class VersionDiff(BaseModel):
    """What changed from one version to another; applied to the older version, it gives this
    one."""

    model_config = ConfigDict(extra="forbid")

    from_: str = Field(alias="from", description="The older version")
    to: str = Field(description="This version")
    changed: list[ChangedFactor] = Field(description="Changed factors, in factor_code order")
    removed: list[str] = Field(description="Factor codes only in the older version")
    added: list[str] = Field(description="Factor codes only in this version")
    added_factors: list[FactorFields] = Field(
        description="The added factors' uploadable fields (unset ones left out)"
    )
    summary: DiffSummary = Field(description="The counts")
