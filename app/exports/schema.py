"""The one Arrow schema of every export: per-version files and national snapshots.

Types are chosen for the readers researchers use (pyarrow, DuckDB, polars, R arrow):
low-cardinality text is dictionary-encoded, numbers per unit are float64, the reference year
is int16, pedigree scores int8, dates date32 and the release time a UTC timestamp. Every
field carries a description (and, for quantities, its unit) in its field metadata; the file
carries the license and attribution list, the content hashes and, for a snapshot, its id in
its key-value metadata (keys prefixed ``efdb:``, values UTF-8 text or JSON).

Anyone holding only a file can recompute each version's ``content_sha256`` (contract §6)
from it: the ``efdb:content_hash_fields`` are the hashed columns, integer columns hash as
integers, float64 columns as floats and date32 columns as ``YYYY-MM-DD``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa

from app.factors.schemas import UPLOADABLE_FIELDS

# Bumped when a column is added, removed or retyped; cached per-version files of an older
# schema version are written again on their next request.
# 2: `ch4_origin` added; `.arrow` files are the Arrow IPC file format (1: an IPC stream).
# 3: `uncertainty_kind` and `uncertainty_confidence_level` added (what the interval is, as
# declared; the interval is no longer described as a 95 % one).
SCHEMA_VERSION = 3

DICT = pa.dictionary(pa.int32(), pa.string())
TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")

Role = Literal["release", "factor", "derived", "license"]


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    nullable: bool
    role: Role
    description: str
    unit: str | None = None

    def field(self) -> pa.Field:
        metadata = {"description": self.description, "efdb:role": self.role}
        if self.unit is not None:
            metadata["unit"] = self.unit
        return pa.field(self.name, self.type, nullable=self.nullable, metadata=metadata)


PER_UNIT_KG_CO2E = "kg CO2e per declared `unit`"
PER_UNIT_KG = "kg of the gas per declared `unit`"
PEDIGREE = "pedigree score, 1 (best) to 5"

COLUMNS: tuple[Column, ...] = (
    Column("publisher", DICT, False, "release", "Publisher slug."),
    Column("dataset", DICT, False, "release", "Dataset slug within the publisher."),
    Column("version", DICT, False, "release", "Dataset version (MAJOR.MINOR.PATCH)."),
    Column(
        "published_at", TIMESTAMP_UTC, False, "release", "When the version was published (UTC)."
    ),
    # The uploadable fields of contract §1, in contract order: the content hash covers these.
    Column("factor_code", pa.string(), False, "factor", "Publisher's stable key in the dataset."),
    Column("activity_id", DICT, False, "factor", "Shared activity vocabulary id."),
    Column("name_zh", pa.string(), True, "factor", "Chinese name."),
    Column("name_en", pa.string(), True, "factor", "English name."),
    Column("description", pa.string(), True, "factor", "Description."),
    Column("category", DICT, True, "factor", "Hierarchical category path, '/'-separated."),
    Column("product_code_scheme", DICT, True, "factor", "Product classification, e.g. HS2022."),
    Column("product_code", pa.string(), True, "factor", "Product code in that scheme."),
    Column("region", DICT, False, "factor", "ISO 3166-1 alpha-2, ISO 3166-2 or GLO."),
    Column("reference_year", pa.int16(), False, "factor", "Year the data represents.", "year"),
    Column("valid_from", pa.date32(), True, "factor", "Start of the validity window."),
    Column("valid_to", pa.date32(), True, "factor", "End of the validity window."),
    Column("unit", DICT, False, "factor", "Declared unit the factor is per (e.g. kWh, t, TJ)."),
    Column("co2e", pa.float64(), False, "factor", "Emission factor, GWP100.", PER_UNIT_KG_CO2E),
    Column("co2", pa.float64(), True, "factor", "Carbon dioxide.", PER_UNIT_KG),
    Column("ch4", pa.float64(), True, "factor", "Methane.", PER_UNIT_KG),
    Column("n2o", pa.float64(), True, "factor", "Nitrous oxide.", PER_UNIT_KG),
    Column(
        "other_ghg_co2e",
        pa.float64(),
        True,
        "factor",
        "HFCs, PFCs, SF6, NF3, already as CO2e.",
        PER_UNIT_KG_CO2E,
    ),
    Column(
        "biogenic_co2",
        pa.float64(),
        True,
        "factor",
        "Biogenic CO2, reported separately and not in co2e.",
        "kg CO2 per declared `unit`",
    ),
    Column(
        "ch4_origin",
        DICT,
        True,
        "factor",
        "Origin of the CH4 as declared: fossil or non_fossil (null: not declared).",
    ),
    Column("gwp_set", DICT, True, "factor", "GWP100 set used for co2e: AR4, AR5 or AR6."),
    Column("boundary", DICT, False, "factor", "Life-cycle boundary."),
    Column("method", DICT, True, "factor", "Accounting standard or method."),
    Column(
        "uncertainty_low",
        pa.float64(),
        True,
        "factor",
        "Uncertainty interval, low (what it is: uncertainty_kind).",
        PER_UNIT_KG_CO2E,
    ),
    Column(
        "uncertainty_high",
        pa.float64(),
        True,
        "factor",
        "Uncertainty interval, high (what it is: uncertainty_kind).",
        PER_UNIT_KG_CO2E,
    ),
    Column("uncertainty_distribution", DICT, True, "factor", "Distribution of the uncertainty."),
    Column(
        "uncertainty_kind",
        DICT,
        True,
        "factor",
        "What the interval is, as declared: confidence_interval, percentile_range or min_max "
        "(null: not declared, no confidence claimed).",
    ),
    Column(
        "uncertainty_confidence_level",
        pa.float64(),
        True,
        "factor",
        "Declared confidence level or coverage of the interval, e.g. 0.95 (null: none declared).",
        "fraction",
    ),
    Column("dq_reliability", pa.int8(), True, "factor", "Pedigree: reliability.", PEDIGREE),
    Column("dq_completeness", pa.int8(), True, "factor", "Pedigree: completeness.", PEDIGREE),
    Column("dq_temporal", pa.int8(), True, "factor", "Pedigree: temporal correlation.", PEDIGREE),
    Column(
        "dq_geographical",
        pa.int8(),
        True,
        "factor",
        "Pedigree: geographical correlation.",
        PEDIGREE,
    ),
    Column(
        "dq_technological",
        pa.int8(),
        True,
        "factor",
        "Pedigree: technological correlation.",
        PEDIGREE,
    ),
    Column("source_title", DICT, False, "factor", "The document the number comes from."),
    Column("source_publisher", DICT, True, "factor", "Publisher of the source document."),
    Column("source_year", pa.int16(), True, "factor", "Year of the source document.", "year"),
    Column("source_url", DICT, True, "factor", "URL of the source document."),
    Column("source_doi", DICT, True, "factor", "DOI of the source document."),
    Column("source_locator", pa.string(), True, "factor", "Table, page or sheet in the source."),
    Column("notes", pa.string(), True, "factor", "Notes."),
    # Derived by the service, not hashed.
    Column("dqr", pa.float64(), True, "derived", "Mean of the pedigree scores given.", PEDIGREE),
    Column("uid", pa.string(), False, "derived", "Opaque id of this row."),
    # The dataset's license, repeated per row (dictionary-encoded, so nearly free).
    Column("license_id", DICT, False, "license", "SPDX license id or LicenseRef-…"),
    Column("license_url", DICT, True, "license", "License text."),
    Column("attribution", DICT, False, "license", "Attribution required by the license."),
)

COLUMN_NAMES: tuple[str, ...] = tuple(column.name for column in COLUMNS)
CONTENT_HASH_FIELDS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role == "factor")
if CONTENT_HASH_FIELDS != UPLOADABLE_FIELDS:  # a new uploadable field needs a column here
    raise RuntimeError("the export schema must carry exactly the uploadable fields, in order")

# Columns constant over one dataset version: filled per batch, not read per row.
RELEASE_COLUMNS = ("publisher", "dataset", "version", "published_at")
LICENSE_COLUMNS = ("license_id", "license_url", "attribution")
CONSTANT_COLUMNS = RELEASE_COLUMNS + LICENSE_COLUMNS
# Columns read from the database, in this order.
ROW_COLUMNS: tuple[str, ...] = tuple(n for n in COLUMN_NAMES if n not in CONSTANT_COLUMNS)

CONTENT_HASH_RECIPE = (
    "content_sha256 of a version = sha256 over its rows sorted by factor_code, each as JSON of "
    "the efdb:content_hash_fields with nulls omitted, keys sorted, separators ',' and ':', "
    "UTF-8 unescaped, integer columns as integers, float64 columns as floats in shortest "
    "round-trip form, date32 columns as YYYY-MM-DD; joined with '\\n', no trailing newline."
)

EXPORT_SCHEMA = pa.schema([column.field() for column in COLUMNS])


def storage_type(column: Column) -> pa.DataType:
    """The plain type a column is built with before dictionary encoding."""
    return pa.string() if pa.types.is_dictionary(column.type) else column.type


@dataclass(frozen=True)
class ReleaseInfo:
    """One dataset version in an export, with the license it is distributed under."""

    version_id: int
    publisher: str
    dataset: str
    version: str
    published_at: datetime
    content_sha256: str
    row_count: int
    license_id: str
    license_url: str | None
    attribution: str
    redistribution: bool
    commercial_use: bool
    access: str

    @property
    def key(self) -> str:
        return f"{self.publisher}/{self.dataset}@{self.version}"

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "publisher": self.publisher,
            "dataset": self.dataset,
            "version": self.version,
            "published_at": self.published_at.isoformat(),
            "content_sha256": self.content_sha256,
            "row_count": self.row_count,
            "license_id": self.license_id,
            "license_url": self.license_url,
            "attribution": self.attribution,
            "redistribution": self.redistribution,
            "commercial_use": self.commercial_use,
        }


def attribution_list(releases: Sequence[ReleaseInfo]) -> list[dict[str, Any]]:
    """One entry per distinct (license, attribution), naming the dataset versions under it."""
    grouped: dict[tuple[str, str | None, str], list[str]] = {}
    for release in releases:
        key = (release.license_id, release.license_url, release.attribution)
        grouped.setdefault(key, []).append(release.key)
    return [
        {"license_id": lid, "license_url": url, "attribution": text, "datasets": keys}
        for (lid, url, text), keys in grouped.items()
    ]


def file_metadata(
    releases: Sequence[ReleaseInfo],
    *,
    export: Literal["version", "snapshot"],
    snapshot_id: str | None = None,
    created_at: datetime | None = None,
) -> dict[str, str]:
    """Key-value metadata of an export file (deterministic for a given input)."""

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    metadata = {
        "efdb:schema_version": str(SCHEMA_VERSION),
        "efdb:export": export,
        "efdb:dataset_versions": dumps([r.manifest_entry() for r in releases]),
        "efdb:licenses": dumps(attribution_list(releases)),
        "efdb:attribution": "\n".join(
            f"{r.key}: {r.attribution} ({r.license_id})" for r in releases
        ),
        "efdb:content_hash_fields": dumps(list(CONTENT_HASH_FIELDS)),
        "efdb:content_hash_recipe": CONTENT_HASH_RECIPE,
    }
    if snapshot_id is not None:
        metadata["efdb:snapshot_id"] = snapshot_id
    if created_at is not None:
        metadata["efdb:created_at"] = created_at.isoformat()
    return metadata


def schema_with_metadata(metadata: dict[str, str]) -> pa.Schema:
    return EXPORT_SCHEMA.with_metadata(metadata)
