"""The factor record: the uploadable fields of contract §1, and the wire shape around them."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from app.core.urls import HttpUrlText
from app.datasets.schemas import VersionStatus
from app.datasets.visibility import AsOfValue
from app.reference.schemas import ACTIVITY_ID_PATTERN
from app.reference.units import UnitError, parse_declared_unit

Boundary = Literal[
    "cradle-to-gate",
    "cradle-to-grave",
    "gate-to-gate",
    "combustion",
    "well-to-wheel",
    "well-to-tank",
]
GwpSetName = Literal["AR4", "AR5", "AR6"]
UncertaintyDistribution = Literal["lognormal", "normal", "triangular", "uniform"]

FACTOR_CODE_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
# ISO 3166-1 alpha-2, ISO 3166-2 subdivision, or GLO.
# ISO 3166-1 alpha-2, ISO 3166-2, GLO, or a grouping such as CN-GRID-NORTH; whether the code
# exists is checked against the location table (GET /v1/locations).
REGION_PATTERN = r"^(?:GLO|[A-Z]{2}(?:-[A-Z0-9]{1,3})?|[A-Z]{2}(?:-[A-Z0-9]{1,12}){2,3})$"
MIN_YEAR, MAX_YEAR = 1900, 2100


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise PydanticCustomError(
            "not_finite", "must be a finite number, not {value}", {"value": value}
        )
    # -0.0 equals 0.0 but prints differently: stored as 0.0, so that the content hash (which
    # hashes the printed form) agrees with the diff (which compares values).
    return 0.0 if value == 0 else value


def _canonical_unit(value: str) -> str:
    try:
        return parse_declared_unit(value).canonical
    except UnitError as exc:
        raise PydanticCustomError(exc.code, exc.detail) from exc


Finite = Annotated[float, AfterValidator(_finite)]
Pedigree = Annotated[int, Field(ge=1, le=5)]
Year = Annotated[int, Field(ge=MIN_YEAR, le=MAX_YEAR)]


class FactorFields(BaseModel):
    """Exactly the uploadable fields, in contract order. The content hash is over these."""

    model_config = ConfigDict(extra="forbid", from_attributes=True, str_strip_whitespace=True)

    factor_code: Annotated[str, Field(pattern=FACTOR_CODE_PATTERN)]
    activity_id: Annotated[str, Field(pattern=ACTIVITY_ID_PATTERN, max_length=128)]
    name_zh: str | None = None
    name_en: str | None = None
    description: str | None = None
    category: Annotated[str, Field(max_length=255)] | None = None
    product_code_scheme: Annotated[str, Field(max_length=64)] | None = None
    product_code: Annotated[str, Field(max_length=64)] | None = None
    region: Annotated[str, Field(pattern=REGION_PATTERN)]
    reference_year: Year
    valid_from: date | None = None
    valid_to: date | None = None
    unit: Annotated[str, AfterValidator(_canonical_unit)]
    co2e: Finite
    co2: Finite | None = None
    ch4: Finite | None = None
    n2o: Finite | None = None
    other_ghg_co2e: Finite | None = None
    biogenic_co2: Finite | None = None
    gwp_set: GwpSetName | None = None
    boundary: Boundary
    method: Annotated[str, Field(max_length=255)] | None = None
    uncertainty_low: Finite | None = None
    uncertainty_high: Finite | None = None
    uncertainty_distribution: UncertaintyDistribution | None = None
    dq_reliability: Pedigree | None = None
    dq_completeness: Pedigree | None = None
    dq_temporal: Pedigree | None = None
    dq_geographical: Pedigree | None = None
    dq_technological: Pedigree | None = None
    source_title: Annotated[str, Field(min_length=1)]
    source_publisher: str | None = None
    source_year: Year | None = None
    source_url: HttpUrlText | None = None
    source_doi: str | None = None
    source_locator: str | None = None
    notes: str | None = None

    @field_validator("co2e")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if value < 0:
            raise PydanticCustomError("negative_co2e", "co2e must be ≥ 0")
        return value


UPLOADABLE_FIELDS: tuple[str, ...] = tuple(FactorFields.model_fields)
PEDIGREE_FIELDS = (
    "dq_reliability",
    "dq_completeness",
    "dq_temporal",
    "dq_geographical",
    "dq_technological",
)


class FactorRead(FactorFields):
    """A factor as the API returns it: the record plus where it lives and its license."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: str = Field(description="Public id: {publisher}/{dataset}/{factor_code}@{version}")
    uid: str
    publisher: str
    dataset: str
    version: str
    version_status: VersionStatus
    withdrawn_at: datetime | None = Field(
        None, description="When the version was withdrawn (withdrawn versions only)"
    )
    withdrawn_reason: str | None = Field(
        None, description="Why the version was withdrawn (withdrawn versions only)"
    )
    dataset_status: Literal["active", "deprecated"] = "active"
    superseded_by: str | None = Field(
        None, description="For a deprecated dataset: the publisher/dataset that replaces it"
    )
    license_id: str
    license_url: str | None
    attribution: str
    dqr: float | None


class GwpConversionRead(BaseModel):
    requested: GwpSetName
    status: Literal["recomputed", "unchanged", "not_possible"]
    detail: str
    gwp_source: str
    original_gwp_set: GwpSetName | None
    original_co2e: float


class FactorWithGwp(FactorRead):
    """A factor as search, lookup, resolve and estimate return it: with `?gwp=`, co2e is in the
    requested set where the gases allow, and `gwp_conversion` says what was done."""

    gwp_conversion: GwpConversionRead | None = None


# --- Batch resolution and estimates (contract §3, §10) ----------------------------------------

MAX_BATCH = 1000
BOUNDARIES: tuple[str, ...] = get_args(Boundary)


class ResolveItem(BaseModel):
    """One line to resolve. Values are checked per line: a bad line gets its own error."""

    model_config = ConfigDict(extra="forbid")

    activity_id: Annotated[str, Field(max_length=128, description="Shared activity slug")]
    region: Annotated[
        str,
        Field(max_length=32, description="ISO 3166-1 alpha-2, ISO 3166-2 or GLO; falls back up"),
    ]
    year: Annotated[
        int, Field(description="Year of the activity; earlier reference years fall back")
    ]
    unit: Annotated[
        str | None,
        Field(max_length=64, description="Unit the caller measures in; converted if compatible"),
    ] = None
    dataset: Annotated[
        str | None, Field(max_length=129, description="Only this dataset: slug or publisher/slug")
    ] = None
    publisher: Annotated[str | None, Field(max_length=64, description="Only this publisher")] = None
    version: Annotated[
        str | None, Field(max_length=32, description="Pin a release (needs the dataset)")
    ] = None
    as_of: Annotated[
        AsOfValue | None,
        Field(
            description="Answer as published at the end of this date (UTC), or at this RFC 3339 "
            "timestamp (with its offset)"
        ),
    ] = None
    boundary: Annotated[
        str | None,
        Field(
            max_length=32,
            description="Only this boundary",
            json_schema_extra={"enum": list(BOUNDARIES)},
        ),
    ] = None


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[ResolveItem], Field(min_length=1, max_length=MAX_BATCH)]


class EstimateItem(BaseModel):
    """An activity amount to turn into kg CO2e: by activity (resolved) or by factor id."""

    model_config = ConfigDict(extra="forbid")

    activity_id: Annotated[str | None, Field(max_length=128)] = None
    factor: Annotated[
        str | None,
        Field(
            max_length=300,
            description="A factor id {publisher}/{dataset}/{factor_code}[@{version}] instead of "
            "activity_id/region/year",
        ),
    ] = None
    region: Annotated[str | None, Field(max_length=32)] = None
    year: int | None = None
    amount: Annotated[float, Field(description="Activity amount, in `unit`")]
    unit: Annotated[str, Field(max_length=64, description="Unit of the amount, e.g. MWh, t, L")]
    dataset: Annotated[str | None, Field(max_length=129)] = None
    publisher: Annotated[str | None, Field(max_length=64)] = None
    version: Annotated[str | None, Field(max_length=32)] = None
    as_of: AsOfValue | None = None
    boundary: Annotated[
        str | None, Field(max_length=32, json_schema_extra={"enum": list(BOUNDARIES)})
    ] = None


class EstimateBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[EstimateItem], Field(min_length=1, max_length=MAX_BATCH)]


class ItemError(BaseModel):
    code: str
    detail: str
    loc: list[str] | None = None


class PassedOver(BaseModel):
    region: str
    year: int
    unit: str


class UnitMatch(BaseModel):
    requested: str | None
    factor_unit: str
    dimension: str | None = None
    converted: bool = False
    multiplier: float | None = Field(
        None, description="Factor units per requested unit (MWh requested, kWh factor: 1000)"
    )
    co2e_per_requested_unit: float | None = None
    passed_over: PassedOver | None = Field(
        None,
        description="A nearer factor (region or year) that was skipped because its unit has "
        "another dimension",
    )


class RegionStep(BaseModel):
    region: str
    kind: Literal["global", "country", "subdivision", "grouping"] | None = Field(
        description="The location's kind; null when the region is not in the location table"
    )
    relation: Literal["requested", "member_of", "parent"] = Field(
        description="requested: the line's region; member_of: a grouping (e.g. a regional "
        "grid) that `of` belongs to; parent: the parent of `of`"
    )
    of: str | None
    outcome: Literal["matched", "no_factor", "other_unit_only"] = Field(
        description="What this step found: the answer, nothing, or factors only in a unit of "
        "another dimension"
    )


class DeprecatedMatch(BaseModel):
    outcome: Literal["passed_over", "used"]
    dataset: str = Field(description="The deprecated dataset, publisher/dataset")
    version: str
    superseded_by: str | None = Field(description="Its successor, if it names one")
    region_distance: int = Field(description="Where in the region chain its factor was")
    year: int = Field(description="Its factor's reference year")


class Match(BaseModel):
    type: Literal["exact", "fallback"]
    region: str
    requested_region: str
    region_fallback: bool
    region_distance: int = Field(description="Steps up the region chain (0: the region itself)")
    region_chain: list[str] = Field(description="The fallback chain, from the location table")
    region_known: bool = Field(description="False: the region is not in the location table")
    region_steps: list[RegionStep] = Field(
        default_factory=list,
        description="Each step of the chain tried, up to the one that answered, with how it "
        "was reached (GET /v1/locations/{code} shows the same hierarchy)",
    )
    year: int
    requested_year: int
    year_fallback: bool
    year_distance: int = Field(description="Years between the requested and reference year")
    dataset: str
    dataset_priority: int | None
    alternatives: int = Field(
        description="Other factors of the same region and year that could have answered"
    )
    decided_by: Literal[
        "only_candidate", "dataset_priority", "newest_published", "exact_unit", "factor_id"
    ] = Field(description="What set the chosen factor above those alternatives")
    deprecated: DeprecatedMatch | None = Field(
        default=None,
        description="A deprecated dataset that had a factor for the line: passed over for a "
        "current dataset's, or used for lack of any other (null: none was involved)",
    )
    unit: UnitMatch


class ResolvedItem(BaseModel):
    factor: FactorWithGwp | None = None
    match: Match | None = None
    error: ItemError | None = None


class GwpEntryRead(BaseModel):
    gwp_set: GwpSetName
    gas: str
    value: float
    source: str
    locator: str
    note: str | None = None


class GwpInfo(BaseModel):
    requested: GwpSetName
    source: str
    values: dict[str, float]
    entries: list[GwpEntryRead] = Field(
        default_factory=list, description="The GWP100 values used, each with its citation"
    )


class ResolveResponse(BaseModel):
    items: list[ResolvedItem]
    resolved: int
    failed: int
    ranking: list[str]
    gwp: GwpInfo | None = None


class PropertyApplied(BaseModel):
    code: str
    material: str
    name_en: str | None = None
    name_zh: str | None = None
    quantity: str
    value: float
    unit: str
    low: float | None = None
    high: float | None = None
    activity_ids: list[str]
    source: str
    locator: str
    applied: Literal["multiplied", "divided"]


class Conversion(BaseModel):
    amount: float
    unit: str
    factor_unit: str
    multiplier: float
    amount_in_factor_unit: float
    property: str | None = Field(
        None,
        description="Code of the cited conversion property used to cross dimensions (e.g. "
        "ncv/other-bituminous-coal for t → TJ); null for a same-dimension conversion",
    )
    properties: list[PropertyApplied] = Field(
        default_factory=list,
        description="Every conversion property applied, in order, with value and citation",
    )


class EstimateResult(BaseModel):
    co2e_kg: float
    factor: FactorWithGwp
    match: Match | None = None
    conversion: Conversion
    gases_kg: dict[str, float | None]
    uncertainty_kg: list[float] | None


class EstimateBatchItem(BaseModel):
    result: EstimateResult | None = None
    error: ItemError | None = None


class EstimateBatchResponse(BaseModel):
    items: list[EstimateBatchItem]
    total_co2e_kg: float
    resolved: int
    failed: int
    gwp: GwpInfo | None = None
