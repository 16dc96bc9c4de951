"""The openLCA JSON-LD export of a Parquet export file (a zip openLCA 2 imports as it is).

Written with the `olca-schema` package (`olca_schema.zipio.ZipWriter`), never by hand. The
mapping, one emission factor to one process, is the one background databases use in openLCA:

- **process** (`LCI_RESULT`, an aggregated inventory per unit of product), named like the
  factor, id: a UUID derived from `publisher/dataset/factor_code@version` (stable across
  exports, different across versions), category `efdb/{publisher}/{dataset}[/category]`;
- **reference product**: one output product flow per factor, amount 1 in the factor's declared
  unit (kWh, t, t*km, m3, …), the unit group and flow property of that unit's dimension
  (energy, mass, volume, …), with the conversion factors between the declared units;
- **elementary flows**: outputs of `Carbon dioxide`, `Methane` and `Dinitrogen monoxide` to
  air (`Elementary flows/Emission to air/unspecified`), in kg, with the factor's `co2`, `ch4`
  and `n2o` per unit (only the gases the factor gives); `biogenic_co2` as `Carbon dioxide,
  biogenic`. They carry efdb's own UUIDs: map them to your nomenclature's (ecoinvent, EF) with
  an openLCA flow mapping;
- **CO2e**: the published total is not a sum openLCA could recompute from these three gases
  (other GHGs, the GWP set and the CH4 origin enter it), so it travels as the process
  parameters `co2e` (kg CO2e per unit, `gwp_set` in its description), `other_ghg_co2e`,
  `uncertainty_low`/`uncertainty_high` where given, and in the description;
- **location**: one per region code (`CN`, `CN-GD`, `GLO`, `CN-GRID-NORTH`);
- **source**: one per cited document (title, year, URL; publisher, DOI and locator in its text
  reference), listed in the process documentation;
- **data quality**: the pedigree scores as the process's `dq_entry` `(r;c;t;g;te)` in a
  five-indicator pedigree `DQSystem` shipped in the zip (`n.a.` where a score is not given);
- **documentation**: `valid_from`/`valid_until` (the validity window, or the reference year),
  time description, the licence, its URL and the attribution in `restrictions_description`
  and `use_advice`, the release (version, publication time, content hash) in
  `project_description`, boundary and method in `inventory_method_description`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import olca_schema as olca
from olca_schema import zipio

from app.exports.writer import WrittenFile, atomic_path, parquet_batches, written
from app.reference.units import conversion_multiplier, dimension_of_declared, units_of_dimension

# The namespace of every UUID efdb derives for openLCA entities.
EFDB_OLCA_NAMESPACE = uuid.UUID("3f0d6b5e-9a3e-5b1c-8f51-6b2f1a3c7e10")
OLCA_BATCH_ROWS = 4_096
AIR = "Elementary flows/Emission to air/unspecified"
MASS = "mass"
# efdb field → (flow name, chemical formula, CAS number) of the elementary flow.
GASES: dict[str, tuple[str, str, str]] = {
    "co2": ("Carbon dioxide", "CO2", "000124-38-9"),
    "ch4": ("Methane", "CH4", "000074-82-8"),
    "n2o": ("Dinitrogen monoxide", "N2O", "010024-97-2"),
    "biogenic_co2": ("Carbon dioxide, biogenic", "CO2", "000124-38-9"),
}
PEDIGREE = (
    "dq_reliability",
    "dq_completeness",
    "dq_temporal",
    "dq_geographical",
    "dq_technological",
)
PEDIGREE_NAMES = (
    "Reliability",
    "Completeness",
    "Temporal correlation",
    "Geographical correlation",
    "Further technological correlation",
)
PARAMETERS = ("co2e", "other_ghg_co2e", "uncertainty_low", "uncertainty_high")


def olca_id(*parts: str) -> str:
    return str(uuid.uuid5(EFDB_OLCA_NAMESPACE, "/".join(parts)))


def process_id(publisher: str, dataset: str, factor_code: str, version: str) -> str:
    """The openLCA process id of one factor of one release."""
    return olca_id("process", f"{publisher}/{dataset}/{factor_code}@{version}")


def _ref(entity: Any) -> olca.Ref:
    reference: olca.Ref = entity.to_ref()
    return reference


def _unit_group(dimension: str) -> tuple[olca.UnitGroup, olca.FlowProperty]:
    units = units_of_dimension(dimension)
    reference = "kg" if dimension == MASS and "kg" in units else units[0]
    group = olca.UnitGroup(
        id=olca_id("unit-group", dimension),
        name=f"Units of {dimension} (efdb)",
        category="efdb",
        units=[
            olca.Unit(
                id=olca_id("unit", dimension, name),
                name=name,
                conversion_factor=conversion_multiplier(name, reference),
                is_ref_unit=name == reference,
            )
            for name in units
        ],
    )
    prop = olca.FlowProperty(
        id=olca_id("flow-property", dimension),
        name=dimension.capitalize(),
        category="efdb",
        flow_property_type=olca.FlowPropertyType.PHYSICAL_QUANTITY,
        unit_group=_ref(group),
    )
    group.default_flow_property = _ref(prop)
    return group, prop


def _pedigree_system() -> olca.DQSystem:
    return olca.DQSystem(
        id=olca_id("dq-system", "pedigree"),
        name="efdb pedigree matrix (1 best, 5 worst)",
        category="efdb",
        has_uncertainties=False,
        indicators=[
            olca.DQIndicator(
                name=name,
                position=position,
                scores=[
                    olca.DQScore(position=score, label=str(score), description=f"score {score}")
                    for score in range(1, 6)
                ],
            )
            for position, name in enumerate(PEDIGREE_NAMES, start=1)
        ],
    )


def _dq_entry(row: dict[str, Any]) -> str | None:
    scores = [row[name] for name in PEDIGREE]
    if all(score is None for score in scores):
        return None
    return "(" + ";".join("n.a." if s is None else str(int(s)) for s in scores) + ")"


def _text(*lines: str | None) -> str:
    return "\n".join(line for line in lines if line)


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


class _Package:
    """The shared entities of the zip, each written once."""

    def __init__(self, writer: zipio.ZipWriter) -> None:
        self.writer = writer
        self.seen: set[str] = set()
        self.properties: dict[str, tuple[olca.UnitGroup, olca.FlowProperty]] = {}
        self.dq_system = _pedigree_system()
        self.add(self.dq_system)

    def add(self, entity: Any) -> Any:
        if entity.id not in self.seen:
            self.seen.add(entity.id)
            self.writer.write(entity)
        return entity

    def dimension(self, dimension: str) -> tuple[olca.UnitGroup, olca.FlowProperty]:
        if dimension not in self.properties:
            group, prop = _unit_group(dimension)
            self.add(group)
            self.add(prop)
            self.properties[dimension] = (group, prop)
        return self.properties[dimension]

    def unit(self, name: str) -> tuple[olca.FlowProperty, olca.Ref]:
        dimension = dimension_of_declared(name)
        group, prop = self.dimension(dimension)
        (unit,) = [u for u in group.units or [] if u.name == name]
        return prop, olca.Ref(id=unit.id, name=unit.name)

    def location(self, code: str) -> olca.Location:
        return self.add(olca.Location(id=olca_id("location", code), name=code, code=code))

    def gas(self, field: str) -> olca.Flow:
        name, formula, cas = GASES[field]
        _, mass = self.dimension(MASS)
        return self.add(
            olca.Flow(
                id=olca_id("flow", "elementary", name, AIR),
                name=name,
                category=AIR,
                flow_type=olca.FlowType.ELEMENTARY_FLOW,
                formula=formula,
                cas=cas,
                flow_properties=[
                    olca.FlowPropertyFactor(
                        flow_property=_ref(mass), conversion_factor=1.0, is_ref_flow_property=True
                    )
                ],
            )
        )

    def source(self, row: dict[str, Any]) -> olca.Source:
        key = json.dumps(
            [row["source_title"], row["source_publisher"], row["source_year"], row["source_url"]],
            ensure_ascii=False,
        )
        return self.add(
            olca.Source(
                id=olca_id("source", key),
                name=row["source_title"],
                category="efdb",
                year=row["source_year"],
                url=row["source_url"],
                text_reference=_text(
                    row["source_publisher"] and f"Publisher: {row['source_publisher']}",
                    row["source_doi"] and f"DOI: {row['source_doi']}",
                ),
            )
        )


def _process(package: _Package, row: dict[str, Any]) -> olca.Process:
    publisher, dataset, version = row["publisher"], row["dataset"], row["version"]
    code = row["factor_code"]
    key = f"{publisher}/{dataset}/{code}@{version}"
    name = row["name_en"] or row["name_zh"] or code
    location = package.location(row["region"])
    prop, unit = package.unit(row["unit"])
    category = "/".join(p for p in ("efdb", publisher, dataset, row["category"]) if p)
    product = package.add(
        olca.Flow(
            id=olca_id("flow", "product", key),
            name=name,
            category=category,
            flow_type=olca.FlowType.PRODUCT_FLOW,
            description=_text(row["name_zh"], row["description"]),
            location=_ref(location),
            flow_properties=[
                olca.FlowPropertyFactor(
                    flow_property=_ref(prop), conversion_factor=1.0, is_ref_flow_property=True
                )
            ],
        )
    )
    exchanges = [
        olca.Exchange(
            internal_id=1,
            flow=_ref(product),
            flow_property=_ref(prop),
            unit=unit,
            amount=1.0,
            is_input=False,
            is_quantitative_reference=True,
        )
    ]
    _, mass = package.dimension(MASS)
    kg = package.unit("kg")[1]
    for field in GASES:
        if row[field] is None:
            continue
        exchanges.append(
            olca.Exchange(
                internal_id=len(exchanges) + 1,
                flow=_ref(package.gas(field)),
                flow_property=_ref(mass),
                unit=kg,
                amount=float(row[field]),
                is_input=False,
                description=f"{field}: kg per 1 {row['unit']} (efdb)",
            )
        )
    gwp = row["gwp_set"] or "not stated"
    parameters = [
        olca.Parameter(
            id=olca_id("parameter", key, field),
            name=field,
            value=float(row[field]),
            is_input_parameter=True,
            parameter_scope=olca.ParameterScope.PROCESS_SCOPE,
            description=f"kg CO2e per 1 {row['unit']}, GWP100 ({gwp}), as published in efdb",
        )
        for field in PARAMETERS
        if row[field] is not None
    ]
    valid_from = row["valid_from"] or date(row["reference_year"], 1, 1)
    valid_to = row["valid_to"] or date(row["reference_year"], 12, 31)
    published_at: datetime = row["published_at"]
    source = package.source(row)
    licence = _text(
        f"Licence: {row['license_id']}",
        row["license_url"] and f"Licence text: {row['license_url']}",
        f"Attribution: {row['attribution']}",
    )
    documentation = olca.ProcessDocumentation(
        valid_from=_day(valid_from),
        valid_until=_day(valid_to),
        time_description=f"Reference year {row['reference_year']}.",
        geography_description=f"Region {row['region']} (ISO 3166 or efdb location code).",
        technology_description=row["description"],
        inventory_method_description=_text(
            f"Boundary: {row['boundary']}.", row["method"] and f"Method: {row['method']}."
        ),
        restrictions_description=licence,
        use_advice=_text(licence, row["notes"]),
        project_description=_text(
            f"efdb release {publisher}/{dataset}@{version}, published "
            f"{published_at.astimezone(UTC).isoformat()}.",
            f"Factor code: {code}. efdb uid: {row['uid']}.",
        ),
        publication=_ref(source),
        sources=[_ref(source)],
        is_copyright_protected=True,
    )
    return olca.Process(
        id=process_id(publisher, dataset, code, version),
        name=name,
        category=category,
        description=_text(
            f"{row['co2e']!r} kg CO2e per 1 {row['unit']} (GWP100, {gwp}; efdb {key}).",
            row["name_zh"],
            row["description"],
        ),
        process_type=olca.ProcessType.LCI_RESULT,
        location=_ref(location),
        exchanges=exchanges,
        last_internal_id=len(exchanges),
        parameters=parameters,
        dq_system=_ref(package.dq_system) if _dq_entry(row) else None,
        dq_entry=_dq_entry(row),
        process_documentation=documentation,
        version=version if version.count(".") == 2 else None,
        tags=[f"efdb:{publisher}/{dataset}", row["activity_id"]],
    )


def _rows(source: Path) -> Iterator[dict[str, Any]]:
    for batch in parquet_batches(source, OLCA_BATCH_ROWS):
        yield from batch.to_pylist()


def write_olca(target: Path, source: Path) -> WrittenFile:
    """The openLCA JSON-LD zip of a Parquet export: processes, flows, units, locations,
    sources and the pedigree system."""
    with atomic_path(target) as temporary, zipio.ZipWriter(str(temporary)) as writer:
        package = _Package(writer)
        for row in _rows(source):
            package.add(_process(package, row))
    return written(target)
