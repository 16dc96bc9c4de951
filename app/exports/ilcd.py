"""The ILCD export of a Parquet export file: a zip of ILCD 1.1 XML data sets.

Layout, as ILCD archives have it: ``ILCD/processes/<uuid>.xml`` (one per factor),
``ILCD/flows/<uuid>.xml`` (each factor's product flow and the elementary flows of the gases),
``ILCD/flowproperties/<uuid>.xml`` and ``ILCD/unitgroups/<uuid>.xml`` (one per dimension of
the declared units), ``ILCD/contacts/<uuid>.xml`` (the publisher, owner of its data sets) and
``ILCD/sources/<uuid>.xml`` (each cited document). Each file is valid against its ILCD schema
(the tests validate every one with the XSDs shipped by `pyilcd`).

The mapping follows the openLCA one (`app.exports.olca`): a process per factor, of type
`LCI result`; its reference flow is the product output of 1 declared unit, given in the unit
group's reference unit (an ILCD exchange has no unit of its own: 1 MWh is the amount 1000 of a
flow measured in kWh); CO2, CH4, N2O (and biogenic CO2) are elementary outputs to air in kg;
the published CO2e, the GWP set, licence and attribution are in the general comment and the
access restrictions; the pedigree scores in the data sources' use advice. UUIDs are the ones of
the openLCA export (the same process id for the same factor of the same release).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from app.exports.olca import GASES, PEDIGREE, olca_id, process_id
from app.exports.writer import WrittenFile, atomic_path, parquet_batches, written
from app.reference.units import conversion_multiplier, dimension_of_declared, units_of_dimension

COMMON = "http://lca.jrc.it/ILCD/Common"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
NS = {
    "process": "http://lca.jrc.it/ILCD/Process",
    "flow": "http://lca.jrc.it/ILCD/Flow",
    "flowproperty": "http://lca.jrc.it/ILCD/FlowProperty",
    "unitgroup": "http://lca.jrc.it/ILCD/UnitGroup",
    "contact": "http://lca.jrc.it/ILCD/Contact",
    "source": "http://lca.jrc.it/ILCD/Source",
}
FOLDERS = {
    "process": "processes",
    "flow": "flows",
    "flowproperty": "flowproperties",
    "unitgroup": "unitgroups",
    "contact": "contacts",
    "source": "sources",
}
REFERENCE_TYPES = {
    "process": "process data set",
    "flow": "flow data set",
    "flowproperty": "flow property data set",
    "unitgroup": "unit group data set",
    "contact": "contact data set",
    "source": "source data set",
}
DATASET_VERSION = "01.00.000"
AIR_CATEGORIES = ("Emissions", "Emissions to air", "Emissions to air, unspecified")
ILCD_BATCH_ROWS = 4_096
# A deterministic zip: fixed entry times.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)

for _prefix, _namespace in {**NS, "common": COMMON}.items():
    ET.register_namespace(_prefix, _namespace)


def _e(parent: ET.Element, ns: str, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ns}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _lang(parent: ET.Element, ns: str, tag: str, text: str, lang: str = "en") -> ET.Element:
    element = _e(parent, ns, tag, text)
    element.set(XML_LANG, lang)
    return element


def _reference(parent: ET.Element, ns: str, tag: str, kind: str, uuid: str, what: str) -> None:
    element = _e(
        parent,
        ns,
        tag,
        type=REFERENCE_TYPES[kind],
        refObjectId=uuid,
        version=DATASET_VERSION,
        uri=f"../{FOLDERS[kind]}/{uuid}.xml",
    )
    _lang(element, COMMON, "shortDescription", what)


def _number(value: float) -> str:
    return repr(float(value))


def _root(kind: str, tag: str) -> tuple[ET.Element, str]:
    ns = NS[kind]
    root = ET.Element(f"{{{ns}}}{tag}", {"version": "1.1"})
    return root, ns


def _publication(parent: ET.Element, ns: str, owner: tuple[str, str] | None = None) -> None:
    administrative = _e(parent, ns, "administrativeInformation")
    publication = _e(administrative, ns, "publicationAndOwnership")
    _e(publication, COMMON, "dataSetVersion", DATASET_VERSION)
    if owner is not None:
        _reference(publication, COMMON, "referenceToOwnershipOfDataSet", "contact", *owner)


class _Archive:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.seen: set[str] = set()

    def add(self, kind: str, uuid: str, root: ET.Element) -> None:
        if uuid in self.seen:
            return
        self.seen.add(uuid)
        info = zipfile.ZipInfo(f"ILCD/{FOLDERS[kind]}/{uuid}.xml", ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        self.archive.writestr(info, ET.tostring(root, xml_declaration=True, encoding="utf-8"))

    def has(self, uuid: str) -> bool:
        return uuid in self.seen

    # -- shared data sets

    def unit_group(self, dimension: str) -> tuple[str, str]:
        """(flow property uuid, reference unit) of a dimension, both data sets written once."""
        units = units_of_dimension(dimension)
        reference = "kg" if "kg" in units else units[0]
        group_id = olca_id("unit-group", dimension)
        prop_id = olca_id("flow-property", dimension)
        if not self.has(group_id):
            root, ns = _root("unitgroup", "unitGroupDataSet")
            information = _e(root, ns, "unitGroupInformation")
            data = _e(information, ns, "dataSetInformation")
            _e(data, COMMON, "UUID", group_id)
            _lang(data, COMMON, "name", f"Units of {dimension} (efdb)")
            reference_index = units.index(reference)
            quantitative = _e(information, ns, "quantitativeReference")
            _e(quantitative, ns, "referenceToReferenceUnit", str(reference_index))
            _publication(root, ns)
            group = _e(root, ns, "units")
            for index, name in enumerate(units):
                unit = _e(group, ns, "unit", dataSetInternalID=str(index))
                _e(unit, ns, "name", name)
                _e(unit, ns, "meanValue", _number(conversion_multiplier(name, reference)))
            self.add("unitgroup", group_id, root)
        if not self.has(prop_id):
            root, ns = _root("flowproperty", "flowPropertyDataSet")
            information = _e(root, ns, "flowPropertiesInformation")
            data = _e(information, ns, "dataSetInformation")
            _e(data, COMMON, "UUID", prop_id)
            _lang(data, COMMON, "name", dimension.capitalize())
            quantitative = _e(information, ns, "quantitativeReference")
            _reference(
                quantitative,
                ns,
                "referenceToReferenceUnitGroup",
                "unitgroup",
                group_id,
                f"Units of {dimension} (efdb)",
            )
            _publication(root, ns)
            self.add("flowproperty", prop_id, root)
        return prop_id, reference

    def flow(
        self,
        uuid: str,
        name: str,
        *,
        elementary: bool,
        dimension: str,
        categories: tuple[str, ...],
        cas: str | None = None,
        formula: str | None = None,
        name_zh: str | None = None,
    ) -> None:
        if self.has(uuid):
            return
        prop_id, _ = self.unit_group(dimension)
        root, ns = _root("flow", "flowDataSet")
        information = _e(root, ns, "flowInformation")
        data = _e(information, ns, "dataSetInformation")
        _e(data, COMMON, "UUID", uuid)
        names = _e(data, ns, "name")
        _lang(names, ns, "baseName", name)
        if name_zh:
            _lang(names, ns, "baseName", name_zh, "zh")
        classification = _e(data, ns, "classificationInformation")
        if elementary:
            categorization = _e(classification, COMMON, "elementaryFlowCategorization")
            tag = "category"
        else:
            categorization = _e(classification, COMMON, "classification")
            tag = "class"
        for level, category in enumerate(categories):
            _e(categorization, COMMON, tag, category, level=str(level))
        if cas:
            _e(data, ns, "CASNumber", cas)
        if formula:
            _e(data, ns, "sumFormula", formula)
        quantitative = _e(information, ns, "quantitativeReference")
        _e(quantitative, ns, "referenceToReferenceFlowProperty", "0")
        modelling = _e(root, ns, "modellingAndValidation")
        method = _e(modelling, ns, "LCIMethod")
        _e(method, ns, "typeOfDataSet", "Elementary flow" if elementary else "Product flow")
        _publication(root, ns)
        properties = _e(root, ns, "flowProperties")
        prop = _e(properties, ns, "flowProperty", dataSetInternalID="0")
        _reference(prop, ns, "referenceToFlowPropertyDataSet", "flowproperty", prop_id, dimension)
        _e(prop, ns, "meanValue", "1.0")
        self.add("flow", uuid, root)

    def contact(self, publisher: str) -> tuple[str, str]:
        uuid = olca_id("contact", publisher)
        if not self.has(uuid):
            root, ns = _root("contact", "contactDataSet")
            information = _e(root, ns, "contactInformation")
            data = _e(information, ns, "dataSetInformation")
            _e(data, COMMON, "UUID", uuid)
            _lang(data, COMMON, "shortName", publisher)
            _lang(data, COMMON, "name", f"{publisher} (efdb publisher)")
            _publication(root, ns)
            self.add("contact", uuid, root)
        return uuid, publisher

    def source(self, row: dict[str, Any]) -> tuple[str, str]:
        key = "|".join(
            str(row[name] or "")
            for name in ("source_title", "source_publisher", "source_year", "source_url")
        )
        uuid = olca_id("ilcd-source", key)
        if not self.has(uuid):
            root, ns = _root("source", "sourceDataSet")
            information = _e(root, ns, "sourceInformation")
            data = _e(information, ns, "dataSetInformation")
            _e(data, COMMON, "UUID", uuid)
            _lang(data, COMMON, "shortName", row["source_title"][:500])
            citation = "; ".join(
                str(part)
                for part in (
                    row["source_title"],
                    row["source_publisher"],
                    row["source_year"],
                    row["source_url"],
                    row["source_doi"] and f"DOI {row['source_doi']}",
                )
                if part
            )
            _e(data, ns, "sourceCitation", citation)
            _publication(root, ns)
            self.add("source", uuid, root)
        return uuid, row["source_title"][:500]


def _process(archive: _Archive, row: dict[str, Any]) -> None:
    publisher, dataset, version = row["publisher"], row["dataset"], row["version"]
    code = row["factor_code"]
    key = f"{publisher}/{dataset}/{code}@{version}"
    name = row["name_en"] or row["name_zh"] or code
    dimension = dimension_of_declared(row["unit"])
    _, reference_unit = archive.unit_group(dimension)
    product_id = olca_id("flow", "product", key)
    archive.flow(
        product_id,
        name,
        elementary=False,
        dimension=dimension,
        categories=tuple(p for p in ("efdb", publisher, dataset) if p),
        name_zh=row["name_zh"] if row["name_en"] else None,
    )
    owner = archive.contact(publisher)
    source = archive.source(row)
    uuid = process_id(publisher, dataset, code, version)
    root, ns = _root("process", "processDataSet")
    information = _e(root, ns, "processInformation")
    data = _e(information, ns, "dataSetInformation")
    _e(data, COMMON, "UUID", uuid)
    names = _e(data, ns, "name")
    _lang(names, ns, "baseName", name)
    if row["name_en"] and row["name_zh"]:
        _lang(names, ns, "baseName", row["name_zh"], "zh")
    gwp = row["gwp_set"] or "not stated"
    amount = _number(conversion_multiplier(row["unit"], reference_unit))
    comment = [
        f"{row['co2e']!r} kg CO2e per 1 {row['unit']} (GWP100, {gwp}), as published in efdb "
        f"{key} (uid {row['uid']}).",
        f"Reference flow: 1 {row['unit']}, given as {amount} {reference_unit}.",
        f"Boundary: {row['boundary']}." + (f" Method: {row['method']}." if row["method"] else ""),
        *(
            f"{field}: {row[field]!r} kg CO2e per 1 {row['unit']}."
            for field in ("other_ghg_co2e", "uncertainty_low", "uncertainty_high")
            if row[field] is not None
        ),
        row["description"] or "",
        row["notes"] or "",
    ]
    _lang(data, COMMON, "generalComment", "\n".join(line for line in comment if line))
    quantitative = _e(information, ns, "quantitativeReference", type="Reference flow(s)")
    _e(quantitative, ns, "referenceToReferenceFlow", "0")
    time = _e(information, ns, "time")
    _e(time, COMMON, "referenceYear", str(row["reference_year"]))
    valid_to: date | None = row["valid_to"]
    _e(time, COMMON, "dataSetValidUntil", str(valid_to.year if valid_to else row["reference_year"]))
    year = row["reference_year"]
    window = f"Valid from {row['valid_from'] or year} to {valid_to or year}."
    _lang(time, COMMON, "timeRepresentativenessDescription", window)
    geography = _e(information, ns, "geography")
    _e(geography, ns, "locationOfOperationSupplyOrProduction", location=row["region"])

    modelling = _e(root, ns, "modellingAndValidation")
    method = _e(modelling, ns, "LCIMethodAndAllocation")
    _e(method, ns, "typeOfDataSet", "LCI result")
    sources = _e(modelling, ns, "dataSourcesTreatmentAndRepresentativeness")
    _reference(sources, ns, "referenceToDataSource", "source", *source)
    scores = [row[name] for name in PEDIGREE]
    if any(score is not None for score in scores):
        pedigree = ";".join("n.a." if s is None else str(int(s)) for s in scores)
        _lang(
            sources,
            ns,
            "useAdviceForDataSet",
            f"Pedigree (reliability;completeness;temporal;geographical;technological): "
            f"({pedigree}), 1 best, 5 worst.",
        )

    administrative = _e(root, ns, "administrativeInformation")
    publication = _e(administrative, ns, "publicationAndOwnership")
    _e(publication, COMMON, "dataSetVersion", DATASET_VERSION)
    _reference(publication, COMMON, "referenceToOwnershipOfDataSet", "contact", *owner)
    _e(publication, COMMON, "copyright", "true")
    licence = (
        f"Licence: {row['license_id']}"
        + (f" ({row['license_url']})" if row["license_url"] else "")
        + f". Attribution: {row['attribution']}"
    )
    _lang(publication, COMMON, "accessRestrictions", licence)

    exchanges = _e(root, ns, "exchanges")
    exchange = _e(exchanges, ns, "exchange", dataSetInternalID="0")
    _reference(exchange, ns, "referenceToFlowDataSet", "flow", product_id, name)
    _e(exchange, ns, "exchangeDirection", "Output")
    _e(exchange, ns, "meanAmount", amount)
    _e(exchange, ns, "resultingAmount", amount)
    for index, (field, (gas, formula, cas)) in enumerate(GASES.items(), start=1):
        if row[field] is None:
            continue
        flow_id = olca_id("flow", "elementary", gas, "Elementary flows/Emission to air/unspecified")
        archive.flow(
            flow_id,
            gas,
            elementary=True,
            dimension="mass",
            categories=AIR_CATEGORIES,
            cas=cas,
            formula=formula,
        )
        exchange = _e(exchanges, ns, "exchange", dataSetInternalID=str(index))
        _reference(exchange, ns, "referenceToFlowDataSet", "flow", flow_id, gas)
        _e(exchange, ns, "exchangeDirection", "Output")
        _e(exchange, ns, "meanAmount", _number(row[field]))
        _e(exchange, ns, "resultingAmount", _number(row[field]))
    archive.add("process", uuid, root)


def _rows(source: Path) -> Iterator[dict[str, Any]]:
    for batch in parquet_batches(source, ILCD_BATCH_ROWS):
        yield from batch.to_pylist()


def write_ilcd(target: Path, source: Path) -> WrittenFile:
    """The ILCD zip of a Parquet export (deterministic: fixed entry times, rows in order)."""
    with (
        atomic_path(target) as temporary,
        zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        files = _Archive(archive)
        for row in _rows(source):
            _process(files, row)
    return written(target)
