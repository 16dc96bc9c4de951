"""The factor record: the uploadable fields of contract §1, and the wire shape around them."""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from app.factors.units import UnitError, parse_declared_unit

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
VersionStatus = Literal["draft", "submitted", "published", "deprecated", "withdrawn", "rejected"]

FACTOR_CODE_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
ACTIVITY_ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
# ISO 3166-1 alpha-2, ISO 3166-2 subdivision, or GLO.
REGION_PATTERN = r"^(?:GLO|[A-Z]{2}(?:-[A-Z0-9]{1,3})?)$"
MIN_YEAR, MAX_YEAR = 1900, 2100


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise PydanticCustomError(
            "not_finite", "must be a finite number, not {value}", {"value": value}
        )
    return value


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
    source_url: str | None = None
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
    license_id: str
    license_url: str | None
    attribution: str
    dqr: float | None
