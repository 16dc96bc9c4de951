"""API shapes of the reference data: locations, GWP100 values, units, conversion properties."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# An activity of the activity vocabulary (GET /v1/activities): lowercase words joined by "-".
ACTIVITY_ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
LocationKind = Literal["global", "country", "subdivision", "grouping"]


_LOCATOR = "Where in the source: table, page or section"
_REFERENCE_VERSION = "sha256 of the reference data loaded (GET /v1/reference)"


class LocationRead(BaseModel):
    """A place a factor can be for: `GLO`, a country, a subdivision, or a grouping such as a
    regional grid."""

    code: str = Field(
        description="`GLO`, ISO 3166-1 alpha-2 (`CN`), ISO 3166-2 (`CN-GD`) or a grouping code "
        "(`CN-GRID-NORTH`)"
    )
    kind: LocationKind = Field(description="global, country, subdivision or grouping")
    parent_code: str | None = Field(description="The enclosing location (null for GLO)")
    name_zh: str | None = Field(description="Name in Chinese")
    name_en: str | None = Field(description="Name in English")
    source: str = Field(description="Where the location comes from (ISO 3166 via pycountry, …)")
    locator: str | None = Field(description=_LOCATOR)


class Membership(BaseModel):
    """A grouping a location belongs to, or a member of a grouping, with who says so."""

    code: str = Field(description="The other location's code")
    kind: LocationKind | None = Field(description="Its kind (null: not in the location table)")
    name_zh: str | None = Field(description="Its name in Chinese")
    name_en: str | None = Field(description="Its name in English")
    source: str = Field(description="Who defines the membership")
    locator: str | None = Field(description=_LOCATOR)
    confidence: str | None = Field(
        None, description="Set when the membership was not read in its source (say why)"
    )


class LocationDetail(LocationRead):
    """A location with its place in the hierarchy and the fallback chain resolution walks."""

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
    """One gas's 100-year global warming potential in one IPCC assessment report."""

    gwp_set: Literal["AR4", "AR5", "AR6"] = Field(description="The IPCC assessment report")
    gas: str = Field(description="The gas, e.g. `CO2`, `CH4`, `CH4-fossil`, `N2O`, `SF6`")
    value: float = Field(description="GWP100: kg CO2e per kg of the gas")
    source: str = Field(description="The document the value comes from")
    locator: str = Field(description="Where in the source: table or page")
    note: str | None = Field(description="Remarks on the value, if any")


class GwpSetRead(BaseModel):
    """One GWP100 set (IPCC assessment report) and its citation."""

    gwp_set: Literal["AR4", "AR5", "AR6"] = Field(description="The IPCC assessment report")
    source: str = Field(description="Citation of the CH4 and N2O values co2e checks use")
    gases: int = Field(description="How many gases the set has values for")


class GwpList(BaseModel):
    """GWP100 values, with the sets they belong to."""

    items: list[GwpValueRead] = Field(description="The values matching the filters")
    sets: list[GwpSetRead] = Field(description="Every GWP100 set loaded")
    reference_version: str | None = Field(description=_REFERENCE_VERSION)
    next: str | None = Field(description="Always null: the list is one page")


class UnitRead(BaseModel):
    """A unit a factor may be declared per."""

    unit: str = Field(description="Canonical spelling, as factors are stored")
    dimension: str = Field(
        description="What it measures: `energy`, `mass`, `volume`, `distance`, `area`, `count`, …"
    )
    pint: str = Field(description="How the unit library reads it")
    base: dict[str, Any] = Field(
        description="One of this unit in the first unit of its dimension (kWh for energy, …)"
    )
    definition: str | None = Field(
        default=None,
        description="Where a document, not SI or the unit library, fixes the unit's size: "
        "the size and the document (`kgce`: GB/T 2589-2020)",
    )


class UnitList(BaseModel):
    """Every unit a factor may be declared per."""

    items: list[UnitRead] = Field(description="The units")
    engine: str = Field(description="The unit library and its version, e.g. `pint 0.25.3`")
    next: str | None = Field(description="Always null: the list is one page")


class ConversionPropertyRead(BaseModel):
    """A cited quantity that links two dimensions for one material (e.g. a net calorific value
    of 25.8 TJ/Gg), used by estimates to convert an amount into the factor's unit."""

    code: str = Field(description="The property's code, e.g. `ncv/natural-gas`")
    material: str = Field(description="The material it is a property of, e.g. `natural-gas`")
    name_en: str | None = Field(description="Name in English")
    name_zh: str | None = Field(description="Name in Chinese")
    quantity: str = Field(description="The quantity, e.g. `net_calorific_value`")
    value: float = Field(description="Its value, in `unit`")
    unit: str = Field(description="Unit of `value`, e.g. `TJ/Gg`")
    low: float | None = Field(description="Lower bound of the cited range, in `unit`")
    high: float | None = Field(description="Upper bound of the cited range, in `unit`")
    activity_ids: list[str] = Field(description="The activities it applies to")
    source: str = Field(description="The document the value comes from")
    locator: str = Field(description="Where in the source: table or page")


class ConversionPropertyList(BaseModel):
    """Conversion properties matching the filters."""

    items: list[ConversionPropertyRead] = Field(description="The properties")
    reference_version: str | None = Field(description=_REFERENCE_VERSION)
    next: str | None = Field(description="Always null: the list is one page")


class ReferenceVersionRead(BaseModel):
    """Which version of one reference table is loaded."""

    name: str = Field(
        description="The table: `locations`, `gwp`, `conversion_properties` or `activities`"
    )
    sha256: str = Field(description="sha256 over the files it was built from (its version)")
    row_count: int = Field(description="Rows loaded")
    files: dict[str, str] = Field(description="Each source file's path and its sha256")
    loaded_at: datetime = Field(
        description="When it was loaded: RFC 3339 timestamp in UTC, e.g. 2026-12-03T14:05:00+00:00"
    )


class ActivityRead(BaseModel):
    """An activity of the shared vocabulary that factors name by `activity_id`."""

    id: str = Field(description="The activity_id factors carry")
    name_zh: str = Field(description="Name in Chinese")
    name_en: str = Field(description="Name in English")
    description_zh: str | None = Field(description="Description in Chinese")
    description_en: str | None = Field(description="Description in English")
    keywords_zh: list[str] = Field(description="Synonyms a search for the activity may use")
    keywords_en: list[str] = Field(description="English synonyms a search may use")
    source: str = Field(
        description="Where the wording comes from (an official document's terms), or that "
        "efdb coined it"
    )
    locator: str | None = Field(description=_LOCATOR)
    publisher: str | None = Field(
        default=None,
        description="The publisher whose upload gave these labels to an activity of its own "
        "namespace (`{publisher}-…`); null for efdb's reference vocabulary",
    )
    labelled_in: str | None = Field(
        default=None,
        description="The release (`publisher/dataset@version`) whose upload gave the "
        "publisher's labels; null for the reference vocabulary",
    )


class ActivityDetail(ActivityRead):
    """One activity of the shared vocabulary, with the version of the labels loaded."""

    reference_version: str | None = Field(
        description="sha256 of the loaded activity labels (null for a publisher's labels)"
    )
