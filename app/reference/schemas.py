"""API shapes of the reference data: locations, GWP100 values, units, conversion properties."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# An activity of the activity vocabulary (GET /v1/activities): lowercase words joined by "-".
ACTIVITY_ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
LocationKind = Literal["global", "country", "subdivision", "grouping"]


class LocationRead(BaseModel):
    code: str
    kind: LocationKind
    parent_code: str | None
    name_zh: str | None
    name_en: str | None
    source: str = Field(description="Where the location comes from (ISO 3166 via pycountry, …)")
    locator: str | None


class Membership(BaseModel):
    code: str
    kind: LocationKind | None
    name_zh: str | None
    name_en: str | None
    source: str = Field(description="Who defines the membership")
    locator: str | None
    confidence: str | None = Field(
        None, description="Set when the membership was not read in its source (say why)"
    )


class LocationDetail(LocationRead):
    ancestors: list[LocationRead] = Field(description="Parent, grandparent, … up to GLO")
    groupings: list[Membership] = Field(
        description="Groupings this location is a member of (e.g. its regional grid)"
    )
    members: list[Membership] = Field(description="For a grouping: its members")
    children: int = Field(description="How many locations have this one as parent")
    fallback_chain: list[str] = Field(
        description="The region chain POST /v1/factors:resolve walks from here"
    )
    reference_version: str | None = Field(description="sha256 of the loaded location data")


class GwpValueRead(BaseModel):
    gwp_set: Literal["AR4", "AR5", "AR6"]
    gas: str
    value: float = Field(description="GWP100")
    source: str
    locator: str
    note: str | None


class GwpSetRead(BaseModel):
    gwp_set: Literal["AR4", "AR5", "AR6"]
    source: str = Field(description="Citation of the CH4 and N2O values co2e checks use")
    gases: int


class GwpList(BaseModel):
    items: list[GwpValueRead]
    sets: list[GwpSetRead]
    reference_version: str | None
    next: str | None


class UnitRead(BaseModel):
    unit: str = Field(description="Canonical spelling, as factors are stored")
    dimension: str
    pint: str = Field(description="How the unit library reads it")
    base: dict[str, Any] = Field(
        description="One of this unit in the first unit of its dimension (kWh for energy, …)"
    )


class UnitList(BaseModel):
    items: list[UnitRead]
    engine: str
    next: str | None


class ConversionPropertyRead(BaseModel):
    code: str
    material: str
    name_en: str | None
    name_zh: str | None
    quantity: str
    value: float
    unit: str
    low: float | None
    high: float | None
    activity_ids: list[str]
    source: str
    locator: str


class ConversionPropertyList(BaseModel):
    items: list[ConversionPropertyRead]
    reference_version: str | None
    next: str | None


class ReferenceVersionRead(BaseModel):
    name: str
    sha256: str
    row_count: int
    files: dict[str, str]
    loaded_at: datetime


class ActivityRead(BaseModel):
    id: str = Field(description="The activity_id factors carry")
    name_zh: str
    name_en: str
    description_zh: str | None
    description_en: str | None
    keywords_zh: list[str] = Field(description="Synonyms a search for the activity may use")
    keywords_en: list[str]
    source: str = Field(
        description="Where the wording comes from (an official document's terms), or that "
        "efdb coined it"
    )
    locator: str | None


class ActivityDetail(ActivityRead):
    reference_version: str | None = Field(description="sha256 of the loaded activity labels")
