"""The factor record: the uploadable fields of contract §1, and the wire shape around them."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Literal, NamedTuple, get_args

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
# What an uncertainty interval is, as its publisher declares it: a confidence interval of a
# stated level, the central range of a distribution between two percentiles (its coverage is
# the level: 2.5th-97.5th is 0.95), or the lowest and highest values found (no probability).
UncertaintyKind = Literal["confidence_interval", "percentile_range", "min_max"]
KINDS_WITH_LEVEL = frozenset({"confidence_interval", "percentile_range"})
Ch4Origin = Literal["fossil", "non_fossil"]

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
        # The detail rides in the context so that it keeps its translation (a Message).
        raise PydanticCustomError(exc.code, "{detail}", {"detail": exc.detail}) from exc


Finite = Annotated[float, AfterValidator(_finite)]
Pedigree = Annotated[int, Field(ge=1, le=5)]
Year = Annotated[int, Field(ge=MIN_YEAR, le=MAX_YEAR)]


class FactorFields(BaseModel):
    """Exactly the uploadable fields, in contract order. The content hash is over these."""

    model_config = ConfigDict(extra="forbid", from_attributes=True, str_strip_whitespace=True)

    factor_code: Annotated[
        str,
        Field(
            pattern=FACTOR_CODE_PATTERN,
            description="The publisher's stable key for the factor within the dataset (≤ 128 of "
            "`A-Za-z0-9._:-`); identity across versions is dataset + factor_code",
        ),
    ]
    activity_id: Annotated[
        str,
        Field(
            pattern=ACTIVITY_ID_PATTERN,
            max_length=128,
            description="Shared activity vocabulary slug (GET /v1/activities), e.g. "
            "`electricity-grid-mix`",
        ),
    ]
    name_zh: str | None = Field(None, description="Name in Chinese (this or name_en is required)")
    name_en: str | None = Field(None, description="Name in English (this or name_zh is required)")
    description: str | None = Field(None, description="Free-text description of the factor")
    category: Annotated[str, Field(max_length=255)] | None = Field(
        None, description="Hierarchical category path, `/`-separated, e.g. `energy/electricity`"
    )
    product_code_scheme: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="Product classification of `product_code`, e.g. `HS2022`, `CPC2.1`"
    )
    product_code: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="Product code in `product_code_scheme`, e.g. `7208`"
    )
    region: Annotated[
        str,
        Field(
            pattern=REGION_PATTERN,
            description="Where the factor applies: ISO 3166-1 alpha-2 (`CN`), ISO 3166-2 "
            "(`CN-GD`), `GLO`, or a grouping such as `CN-GRID-NORTH` (GET /v1/locations)",
        ),
    ]
    reference_year: Annotated[
        Year, Field(description=f"Year the data represents ({MIN_YEAR}–{MAX_YEAR})")
    ]
    valid_from: date | None = Field(
        None, description="Start of the validity window, YYYY-MM-DD, if narrower than the year"
    )
    valid_to: date | None = Field(
        None, description="End of the validity window, YYYY-MM-DD, if narrower than the year"
    )
    unit: Annotated[
        str,
        AfterValidator(_canonical_unit),
        Field(
            description="The declared unit the factor is per, in its canonical spelling "
            "(GET /v1/units), e.g. `kWh`, `t`, `t*km`, `m3`"
        ),
    ]
    co2e: Annotated[Finite, Field(description="kg CO2e per declared `unit` (≥ 0)")]
    co2: Finite | None = Field(None, description="kg CO2 per declared `unit`")
    ch4: Finite | None = Field(None, description="kg CH4 per declared `unit`")
    n2o: Finite | None = Field(None, description="kg N2O per declared `unit`")
    other_ghg_co2e: Finite | None = Field(
        None, description="HFCs, PFCs, SF6 and NF3, already in kg CO2e per declared `unit`"
    )
    biogenic_co2: Finite | None = Field(
        None, description="kg biogenic CO2 per declared `unit`, reported apart (not in co2e)"
    )
    ch4_origin: Ch4Origin | None = Field(
        None,
        description="Origin of the factor's CH4: `fossil` or `non_fossil`, as the publisher "
        "declares it. Used when co2e is recomputed in AR6, whose GWP100 differs by origin "
        "(IPCC AR6 WG1 Ch. 7 Table 7.15); AR4 and AR5 have one CH4 value. Empty: the default "
        "rule applies (fuel combustion categories are fossil; see `gwp_conversion`)",
    )
    gwp_set: GwpSetName | None = Field(
        None,
        description="GWP100 set used to compute co2e from the gases (required when co2, ch4 or "
        "n2o is given)",
    )
    boundary: Annotated[Boundary, Field(description="Life-cycle boundary of the factor")]
    method: Annotated[str, Field(max_length=255)] | None = Field(
        None, description="Accounting standard, e.g. `ISO 14067:2018`, `IPCC 2006`"
    )
    uncertainty_low: Finite | None = Field(
        None,
        description="Lower bound of the uncertainty interval, kg CO2e per declared `unit`; "
        "what the interval is (and its confidence) is only what `uncertainty_kind` and "
        "`uncertainty_confidence_level` declare",
    )
    uncertainty_high: Finite | None = Field(
        None,
        description="Upper bound of the uncertainty interval, kg CO2e per declared `unit` "
        "(see `uncertainty_low`)",
    )
    uncertainty_distribution: UncertaintyDistribution | None = Field(
        None, description="Shape of the uncertainty distribution"
    )
    uncertainty_kind: UncertaintyKind | None = Field(
        None,
        description="What the interval is, as the publisher declares it: `confidence_interval` "
        "(with its `uncertainty_confidence_level`), `percentile_range` (between two "
        "percentiles; the level is their coverage, 0.95 for 2.5th-97.5th) or `min_max` (lowest "
        "and highest values, no probability). Null: not declared, and then no confidence is "
        "claimed and estimates do not propagate the interval",
    )
    uncertainty_confidence_level: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        None,
        description="The interval's declared confidence level or coverage as a fraction, e.g. "
        "0.95; only with `uncertainty_kind` `confidence_interval` or `percentile_range`. Null: "
        "none declared",
    )
    dq_reliability: Pedigree | None = Field(
        None, description="Pedigree score for reliability, 1 (best) to 5"
    )
    dq_completeness: Pedigree | None = Field(
        None, description="Pedigree score for completeness, 1 (best) to 5"
    )
    dq_temporal: Pedigree | None = Field(
        None, description="Pedigree score for temporal correlation, 1 (best) to 5"
    )
    dq_geographical: Pedigree | None = Field(
        None, description="Pedigree score for geographical correlation, 1 (best) to 5"
    )
    dq_technological: Pedigree | None = Field(
        None, description="Pedigree score for technological correlation, 1 (best) to 5"
    )
    source_title: Annotated[
        str, Field(min_length=1, description="Title of the document the number comes from")
    ]
    source_publisher: str | None = Field(None, description="Who published the source document")
    source_year: Year | None = Field(None, description="Year the source document was published")
    source_url: HttpUrlText | None = Field(None, description="http(s) URL of the source document")
    source_doi: str | None = Field(None, description="DOI of the source document, e.g. `10.…`")
    source_locator: str | None = Field(
        None, description="Where in the source: table, page or sheet"
    )
    notes: str | None = Field(None, description="Free-text notes")

    @field_validator("co2e")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if value < 0:
            raise PydanticCustomError("negative_co2e", "co2e must be ≥ 0")
        return value


# pydantic-core's own constraints that accept exactly the values these validators accept, for
# code that validates whole columns of cells at once (`app.publishing.batch_records`) and
# cannot afford a Python call per cell; it turns -0.0 into 0.0 itself, as `_finite` does.
NATIVE_CONSTRAINTS: dict[object, dict[str, object]] = {
    _finite: {"allow_inf_nan": False},
    FactorFields._non_negative.__func__: {"ge": 0},  # type: ignore[attr-defined]
}

UPLOADABLE_FIELDS: tuple[str, ...] = tuple(FactorFields.model_fields)


class FactorRow(NamedTuple):
    """A record's values once validated, as a tuple: what an upload's fast path builds for a
    row that passed the very checks of `FactorFields` (app.publishing.batch_records), at a
    fraction of a model's cost. Read it as the model: the same attributes, the same values."""

    factor_code: str
    activity_id: str
    name_zh: str | None
    name_en: str | None
    description: str | None
    category: str | None
    product_code_scheme: str | None
    product_code: str | None
    region: str
    reference_year: int
    valid_from: date | None
    valid_to: date | None
    unit: str
    co2e: float
    co2: float | None
    ch4: float | None
    n2o: float | None
    other_ghg_co2e: float | None
    biogenic_co2: float | None
    ch4_origin: Ch4Origin | None
    gwp_set: GwpSetName | None
    boundary: Boundary
    method: str | None
    uncertainty_low: float | None
    uncertainty_high: float | None
    uncertainty_distribution: UncertaintyDistribution | None
    uncertainty_kind: UncertaintyKind | None
    uncertainty_confidence_level: float | None
    dq_reliability: int | None
    dq_completeness: int | None
    dq_temporal: int | None
    dq_geographical: int | None
    dq_technological: int | None
    source_title: str
    source_publisher: str | None
    source_year: int | None
    source_url: str | None
    source_doi: str | None
    source_locator: str | None
    notes: str | None


if FactorRow._fields != UPLOADABLE_FIELDS:  # a field added to one and not the other
    raise RuntimeError("FactorRow must have the fields of FactorFields, in their order")

# A validated factor record, either way it was built.
FactorValues = FactorFields | FactorRow
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
    uid: str = Field(description="Opaque id of this row (32 hex digits), unique per version")
    publisher: str = Field(description="Publisher slug")
    dataset: str = Field(description="Dataset slug")
    version: str = Field(description="The release the row belongs to, MAJOR.MINOR.PATCH")
    version_status: VersionStatus = Field(
        description="Status of that release; `withdrawn` rows stay readable, flagged"
    )
    withdrawn_at: datetime | None = Field(
        None, description="When the version was withdrawn (withdrawn versions only)"
    )
    withdrawn_reason: str | None = Field(
        None, description="Why the version was withdrawn (withdrawn versions only)"
    )
    dataset_status: Literal["active", "deprecated"] = Field(
        "active", description="Whether the dataset is current or deprecated by its publisher"
    )
    superseded_by: str | None = Field(
        None, description="For a deprecated dataset: the publisher/dataset that replaces it"
    )
    license_id: str = Field(
        description="The dataset's licence: SPDX id (e.g. `CC-BY-4.0`) or `LicenseRef-<name>`"
    )
    license_url: str | None = Field(description="URL of the licence text")
    attribution: str = Field(description="Attribution text to show wherever the factor is used")
    dqr: float | None = Field(
        description="Data quality rating: mean of the pedigree scores given (1 best, 5 worst); "
        "null when none is given"
    )


class GwpValueApplied(BaseModel):
    """One gas's GWP100 value as a recomputation applied it."""

    gas: Literal["CH4", "N2O"] = Field(description="The gas of the factor's breakdown")
    gwp100: float = Field(description="The GWP100 value applied, from the reference table")
    gwp_table_gas: str = Field(
        description="The row of the reference table (GET /v1/gwp): `CH4-fossil` or "
        "`CH4-non-fossil` where the set distinguishes them (AR6), else the gas itself"
    )
    ch4_origin: Ch4Origin | None = Field(
        description="For CH4: the origin used (null: not declared and no default)"
    )
    ch4_origin_basis: str | None = Field(
        description="For CH4: `declared by the publisher`, or the default rule that gave it"
    )
    source: str = Field(description="Citation of the value")
    why: str = Field(description="Why this value, for a person")


class GwpConversionRead(BaseModel):
    """What asking for the factor's co2e in another GWP100 set (`?gwp=`) did to it."""

    requested: GwpSetName = Field(description="The GWP100 set asked for")
    status: Literal["recomputed", "unchanged", "not_possible"] = Field(
        description="recomputed: co2e (and its uncertainty bounds) recomputed from the gases; "
        "unchanged: already in that set, or CO2 only; not_possible: no gas breakdown to "
        "recompute from, so co2e is as published"
    )
    detail: str = Field(description="How co2e was computed, or why it could not be, for a person")
    gwp_source: str = Field(description="Citation of the requested set's GWP100 values")
    original_gwp_set: GwpSetName | None = Field(
        description="The set the factor was published in (null: not stated)"
    )
    original_co2e: float = Field(description="co2e as published, kg CO2e per declared unit")
    values_applied: list[GwpValueApplied] = Field(
        default_factory=list,
        description="When recomputed: the GWP100 value applied to each gas the factor itemises "
        "(CH4, N2O) and why that one",
    )


class FactorWithGwp(FactorRead):
    """A factor as search, lookup, resolve and estimate return it: with `?gwp=`, co2e is in the
    requested set where the gases allow, and `gwp_conversion` says what was done."""

    gwp_conversion: GwpConversionRead | None = Field(
        None, description="Only with `?gwp=`: how co2e was put into the requested set"
    )


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
    """Lines to resolve to their best factor, answered in the same order."""

    model_config = ConfigDict(extra="forbid")

    items: Annotated[
        list[ResolveItem],
        Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} lines"),
    ]


class EstimateItem(BaseModel):
    """An activity amount to turn into kg CO2e: by activity (resolved) or by factor id."""

    model_config = ConfigDict(extra="forbid")

    activity_id: Annotated[
        str | None,
        Field(max_length=128, description="Shared activity slug, resolved like a resolve line"),
    ] = None
    factor: Annotated[
        str | None,
        Field(
            max_length=300,
            description="A factor id {publisher}/{dataset}/{factor_code}[@{version}] instead of "
            "activity_id/region/year",
        ),
    ] = None
    region: Annotated[
        str | None,
        Field(
            max_length=32,
            description="With activity_id: ISO 3166-1 alpha-2, ISO 3166-2 or GLO; falls back up",
        ),
    ] = None
    year: int | None = Field(
        None, description="With activity_id: year of the activity; earlier years fall back"
    )
    amount: Annotated[
        float,
        Field(
            description="Activity amount, in `unit`: a positive finite number. Zero and negative "
            "amounts are a line error (`invalid_amount`): an estimate is of an activity that "
            "took place, and a sign would turn emissions into removals the factor does not state"
        ),
    ]
    unit: Annotated[str, Field(max_length=64, description="Unit of the amount, e.g. MWh, t, L")]
    dataset: Annotated[
        str | None,
        Field(max_length=129, description="Only this dataset: slug or publisher/slug"),
    ] = None
    publisher: Annotated[str | None, Field(max_length=64, description="Only this publisher")] = None
    version: Annotated[
        str | None, Field(max_length=32, description="Pin a release (needs the dataset)")
    ] = None
    as_of: AsOfValue | None = Field(
        None,
        description="Answer as published at the end of this date (UTC), or at this RFC 3339 "
        "timestamp (with its offset)",
    )
    boundary: Annotated[
        str | None,
        Field(
            max_length=32,
            description="Only this boundary",
            json_schema_extra={"enum": list(BOUNDARIES)},
        ),
    ] = None


class EstimateBatchRequest(BaseModel):
    """Activity amounts to estimate, answered in the same order."""

    model_config = ConfigDict(extra="forbid")

    items: Annotated[
        list[EstimateItem],
        Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} lines"),
    ]


class ItemError(BaseModel):
    """Why one line of a batch got no answer; the other lines are answered."""

    code: str = Field(description="Machine-readable reason, e.g. `no_match`, `unknown_unit`")
    detail: str = Field(description="What was wrong, for a person")
    loc: list[str] | None = Field(None, description='The line\'s field at fault, e.g. `["unit"]`')
    suggestions: list[str] | None = Field(
        None,
        description="Known values close to a refused unit or region code (case-insensitive match "
        "first, e.g. `kwh` → `kWh`, `cn` → `CN`); also named in `detail`",
    )


class PassedOver(BaseModel):
    """The nearer factor skipped because its unit has another dimension."""

    region: str = Field(description="Its region")
    year: int = Field(description="Its reference year")
    unit: str = Field(description="Its declared unit")


class UnitMatch(BaseModel):
    """How the requested unit relates to the factor's unit."""

    requested: str | None = Field(
        description="The requested unit, canonical spelling (null: none was asked for)"
    )
    factor_unit: str = Field(description="The unit the factor is per")
    dimension: str | None = Field(
        None, description="Dimension of the requested unit, e.g. `energy`, `mass`"
    )
    converted: bool = Field(
        False, description="True when the factor is per another unit than the one requested"
    )
    multiplier: float | None = Field(
        None, description="Factor units per requested unit (MWh requested, kWh factor: 1000)"
    )
    co2e_per_requested_unit: float | None = Field(
        None,
        description="kg CO2e per requested unit (co2e × multiplier); null when no unit was "
        "requested or the units have different dimensions",
    )
    passed_over: PassedOver | None = Field(
        None,
        description="A nearer factor (region or year) that was skipped because its unit has "
        "another dimension",
    )


class RegionStep(BaseModel):
    """One step of the region fallback chain that was tried."""

    region: str = Field(description="The location code tried")
    kind: Literal["global", "country", "subdivision", "grouping"] | None = Field(
        description="The location's kind; null when the region is not in the location table"
    )
    relation: Literal["requested", "member_of", "parent"] = Field(
        description="requested: the line's region; member_of: a grouping (e.g. a regional "
        "grid) that `of` belongs to; parent: the parent of `of`"
    )
    of: str | None = Field(description="The region this step was reached from (null: the first)")
    outcome: Literal["matched", "no_factor", "other_unit_only"] = Field(
        description="What this step found: the answer, nothing, or factors only in a unit of "
        "another dimension"
    )


class DeprecatedMatch(BaseModel):
    """A deprecated dataset that had a factor for the line."""

    outcome: Literal["passed_over", "used"] = Field(
        description="passed_over: a current dataset's factor answered instead; used: no "
        "other dataset had one"
    )
    dataset: str = Field(description="The deprecated dataset, publisher/dataset")
    version: str = Field(description="The release of it that had the factor")
    superseded_by: str | None = Field(description="Its successor, if it names one")
    region_distance: int = Field(description="Where in the region chain its factor was")
    year: int = Field(description="Its factor's reference year")


class Match(BaseModel):
    """Why this factor answered the line: the region and year fallbacks taken, the ranking
    decision and the unit conversion."""

    type: Literal["exact", "fallback"] = Field(
        description="exact: the requested region and year; fallback: another region or year"
    )
    region: str = Field(description="The factor's region")
    requested_region: str = Field(description="The line's region")
    region_fallback: bool = Field(description="True when the factor's region is not the line's")
    region_distance: int = Field(description="Steps up the region chain (0: the region itself)")
    region_chain: list[str] = Field(description="The fallback chain, from the location table")
    region_known: bool = Field(description="False: the region is not in the location table")
    region_steps: list[RegionStep] = Field(
        default_factory=list,
        description="Each step of the chain tried, up to the one that answered, with how it "
        "was reached (GET /v1/locations/{code} shows the same hierarchy)",
    )
    year: int = Field(description="The factor's reference year")
    requested_year: int = Field(description="The line's year")
    year_fallback: bool = Field(description="True when the reference year is an earlier one")
    year_distance: int = Field(description="Years between the requested and reference year")
    dataset: str = Field(description="The answering dataset, publisher/dataset")
    dataset_priority: int | None = Field(
        description="The dataset's priority in ranking (lower first; null: unset, ranks last)"
    )
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
    """One line's answer: `factor` and `match`, or `error`."""

    factor: FactorWithGwp | None = None
    match: Match | None = None
    error: ItemError | None = None


class GwpEntryRead(BaseModel):
    """One GWP100 value with its citation."""

    gwp_set: GwpSetName = Field(description="IPCC assessment report the value is from")
    gas: str = Field(description="The gas, e.g. `CO2`, `CH4`, `N2O`")
    value: float = Field(description="GWP100: kg CO2e per kg of the gas")
    source: str = Field(description="The document the value comes from")
    locator: str = Field(description="Where in the source: table or page")
    note: str | None = Field(None, description="Remarks on the value, if any")


class GwpInfo(BaseModel):
    """Only with `?gwp=`: the GWP100 set the answers' co2e is in, with its values."""

    requested: GwpSetName = Field(description="The GWP100 set asked for")
    source: str = Field(description="Citation of the set's values")
    values: dict[str, float] = Field(
        description='GWP100 of each gas in the set, kg CO2e per kg, e.g. `{"CH4": 27.9}`'
    )
    entries: list[GwpEntryRead] = Field(
        default_factory=list,
        description="The set's GWP100 values for CO2, CH4 and N2O, each with its citation; in "
        "AR6 also `CH4-fossil` and `CH4-non-fossil` (Table 7.15), applied by each factor's CH4 "
        "origin (its `gwp_conversion.values_applied` says which)",
    )


class ResolveResponse(BaseModel):
    """The batch's answers, in request order, with how factors were ranked."""

    items: list[ResolvedItem] = Field(description="One answer per line, in request order")
    resolved: int = Field(description="How many lines got a factor")
    failed: int = Field(description="How many lines got an error")
    ranking: list[str] = Field(
        description="The rules that pick one factor among candidates, in the order applied"
    )
    gwp: GwpInfo | None = None


class PropertyApplied(BaseModel):
    """A cited conversion property used to cross dimensions, e.g. a net calorific value."""

    code: str = Field(description="The property's code, e.g. `ncv/other-bituminous-coal`")
    material: str = Field(description="The material it is a property of")
    name_en: str | None = Field(None, description="Name in English")
    name_zh: str | None = Field(None, description="Name in Chinese")
    quantity: str = Field(description="The quantity, e.g. `net_calorific_value`")
    value: float = Field(description="Its value, in `unit`")
    unit: str = Field(description="Unit of `value`, e.g. `TJ/Gg`")
    low: float | None = Field(None, description="Lower bound of the cited range, in `unit`")
    high: float | None = Field(None, description="Upper bound of the cited range, in `unit`")
    activity_ids: list[str] = Field(description="The activities it applies to")
    source: str = Field(description="The document the value comes from")
    locator: str = Field(description="Where in the source: table or page")
    applied: Literal["multiplied", "divided"] = Field(
        description="Whether the amount was multiplied or divided by the value"
    )


class Conversion(BaseModel):
    """How the amount was converted to the factor's unit."""

    amount: float = Field(description="The amount given")
    unit: str = Field(description="Its unit, canonical spelling")
    factor_unit: str = Field(description="The unit the factor is per")
    multiplier: float = Field(description="Factor units per given unit")
    amount_in_factor_unit: float = Field(description="amount × multiplier, in `factor_unit`")
    property: str | None = Field(
        None,
        description="Code of the cited conversion property used to cross dimensions (e.g. "
        "ncv/other-bituminous-coal for t → TJ); null for a same-dimension conversion",
    )
    properties: list[PropertyApplied] = Field(
        default_factory=list,
        description="Every conversion property applied, in order, with value and citation",
    )


class EstimateUncertainty(BaseModel):
    """The propagated interval and what it is: only a declared interval is propagated."""

    interval_kg: list[float] | None = Field(
        description="The same as `uncertainty_kg`: [low, high] kg CO2e, or null"
    )
    kind: UncertaintyKind | None = Field(
        description="The factor's declared `uncertainty_kind` (null when nothing propagated)"
    )
    confidence_level: float | None = Field(
        description="The factor's declared confidence level, e.g. 0.95 (null: none declared, "
        "or nothing propagated)"
    )
    note: str = Field(description="How the interval was obtained, or why there is none")


class EstimateResult(BaseModel):
    """An activity amount's emissions, with the factor used and how it was applied."""

    co2e_kg: float = Field(description="Emissions in kg CO2e: amount in factor unit × co2e")
    factor: FactorWithGwp
    match: Match | None = Field(
        None, description="How the factor was resolved (null when given by factor id)"
    )
    conversion: Conversion
    gases_kg: dict[str, float | None] = Field(
        description="kg of each gas (`co2`, `ch4`, `n2o`, `other_ghg_co2e` in kg CO2e, "
        "`biogenic_co2`) for the amount; null where the factor gives none"
    )
    uncertainty_kg: list[float] | None = Field(
        description="[low, high] in kg CO2e for the amount: the factor's interval scaled by "
        "the amount, only when its publisher declared what it is (`uncertainty_kind`); null "
        "when the factor has none or its interval is undeclared (`uncertainty.note` says which)"
    )
    uncertainty: EstimateUncertainty = Field(
        description="What `uncertainty_kg` is (declared kind and confidence level), or why "
        "there is none"
    )


class EstimateBatchItem(BaseModel):
    """One line's answer: `result`, or `error`."""

    result: EstimateResult | None = None
    error: ItemError | None = None


class EstimateBatchResponse(BaseModel):
    """The batch's estimates, in request order, with their total."""

    items: list[EstimateBatchItem] = Field(description="One answer per line, in request order")
    total_co2e_kg: float | None = Field(
        description="Sum of every line's co2e_kg, kg CO2e; null when any line failed (`failed` "
        "> 0): a total that leaves lines out is not the batch's total"
    )
    total_co2e_kg_of_resolved: float = Field(
        description="Sum of the co2e_kg of the lines that got an estimate (`resolved` of them), "
        "kg CO2e; equal to `total_co2e_kg` when no line failed"
    )
    resolved: int = Field(description="How many lines got an estimate")
    failed: int = Field(description="How many lines got an error")
    gwp: GwpInfo | None = None
