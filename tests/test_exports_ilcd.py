"""The ILCD export: every XML file validated against its ILCD schema (the XSDs pyilcd ships,
with xmlschema), and every process's numbers read back and compared with the JSON API."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pyilcd
import pytest
import xmlschema
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.exports.olca import process_id
from app.reference.units import conversion_multiplier
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.test_exports import IMMUTABLE, SEED_VERSIONS, Headers, api_factors, version_url
from tests.test_exports_xlsx import rich_factors

SCHEMAS = Path(pyilcd.__file__).parent / "schemas"
XSD = {
    "processes": "ILCD_ProcessDataSet.xsd",
    "flows": "ILCD_FlowDataSet.xsd",
    "flowproperties": "ILCD_FlowPropertyDataSet.xsd",
    "unitgroups": "ILCD_UnitGroupDataSet.xsd",
    "contacts": "ILCD_ContactDataSet.xsd",
    "sources": "ILCD_SourceDataSet.xsd",
}
NS = {
    "p": "http://lca.jrc.it/ILCD/Process",
    "f": "http://lca.jrc.it/ILCD/Flow",
    "fp": "http://lca.jrc.it/ILCD/FlowProperty",
    "u": "http://lca.jrc.it/ILCD/UnitGroup",
    "s": "http://lca.jrc.it/ILCD/Source",
    "c": "http://lca.jrc.it/ILCD/Common",
}
GAS_FLOWS = {
    "co2": "Carbon dioxide",
    "ch4": "Methane",
    "n2o": "Dinitrogen monoxide",
    "biogenic_co2": "Carbon dioxide, biogenic",
}


@cache
def schema(folder: str) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMAS / XSD[folder]))


def validated_files(data: bytes) -> dict[str, ET.Element]:
    """Every file of the archive, each valid against its ILCD schema, parsed."""
    files = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            root_folder, folder, file_name = name.split("/")
            assert root_folder == "ILCD"
            content = archive.read(name)
            errors = list(schema(folder).iter_errors(content))
            assert not errors, (name, errors[0].reason, errors[0].path)
            files[f"{folder}/{file_name.removesuffix('.xml')}"] = ET.fromstring(content)
    return files


def text(element: ET.Element, path: str) -> str:
    found = element.find(path, NS)
    assert found is not None, path
    return found.text or ""


def referenced(files: dict[str, ET.Element], reference: ET.Element) -> ET.Element:
    folder = reference.attrib["uri"].split("/")[1]
    return files[f"{folder}/{reference.attrib['refObjectId']}"]


def assert_datasets_match(data: bytes, api: list[dict[str, Any]]) -> None:
    files = validated_files(data)
    assert len([k for k in files if k.startswith("processes/")]) == len(api)
    for factor in api:
        key = (factor["publisher"], factor["dataset"], factor["factor_code"], factor["version"])
        process = files[f"processes/{process_id(*key)}"]
        where = factor["factor_code"]
        info = "p:processInformation/"
        name = factor["name_en"] or factor["name_zh"] or factor["factor_code"]
        assert text(process, info + "p:dataSetInformation/p:name/p:baseName") == name
        location = process.find(info + "p:geography/p:locationOfOperationSupplyOrProduction", NS)
        assert location is not None
        assert location.attrib["location"] == factor["region"], where
        assert text(process, info + "p:time/c:referenceYear") == str(factor["reference_year"])
        assert text(
            process, "p:modellingAndValidation/p:LCIMethodAndAllocation/p:typeOfDataSet"
        ) == ("LCI result")
        comment = text(process, info + "p:dataSetInformation/c:generalComment")
        assert f"{factor['co2e']!r} kg CO2e per 1 {factor['unit']}" in comment, where
        restrictions = text(
            process, "p:administrativeInformation/p:publicationAndOwnership/c:accessRestrictions"
        )
        assert factor["license_id"] in restrictions
        assert factor["attribution"] in restrictions

        exchanges = process.findall("p:exchanges/p:exchange", NS)
        reference_id = text(process, info + "p:quantitativeReference/p:referenceToReferenceFlow")
        (reference,) = [e for e in exchanges if e.attrib["dataSetInternalID"] == reference_id]
        assert text(reference, "p:exchangeDirection") == "Output"
        product = referenced(files, reference.find("p:referenceToFlowDataSet", NS))  # type: ignore[arg-type]
        assert (
            text(product, "f:modellingAndValidation/f:LCIMethod/f:typeOfDataSet") == "Product flow"
        )
        prop = referenced(
            files,
            product.find("f:flowProperties/f:flowProperty/f:referenceToFlowPropertyDataSet", NS),  # type: ignore[arg-type]
        )
        group = referenced(
            files,
            prop.find(  # type: ignore[arg-type]
                "fp:flowPropertiesInformation/fp:quantitativeReference/"
                "fp:referenceToReferenceUnitGroup",
                NS,
            ),
        )
        reference_unit_id = text(
            group, "u:unitGroupInformation/u:quantitativeReference/u:referenceToReferenceUnit"
        )
        units = {
            unit.attrib["dataSetInternalID"]: text(unit, "u:name")
            for unit in group.findall("u:units/u:unit", NS)
        }
        assert factor["unit"] in units.values()
        # 1 declared unit, given in the unit group's reference unit.
        expected = conversion_multiplier(factor["unit"], units[reference_unit_id])
        assert float(text(reference, "p:meanAmount")) == expected, where

        gases = {}
        for exchange in exchanges:
            if exchange is reference:
                continue
            flow = referenced(files, exchange.find("p:referenceToFlowDataSet", NS))  # type: ignore[arg-type]
            assert text(flow, "f:modellingAndValidation/f:LCIMethod/f:typeOfDataSet") == (
                "Elementary flow"
            )
            assert text(exchange, "p:exchangeDirection") == "Output"
            flow_name = text(flow, "f:flowInformation/f:dataSetInformation/f:name/f:baseName")
            gases[flow_name] = float(text(exchange, "p:meanAmount"))
        assert gases == {GAS_FLOWS[f]: factor[f] for f in GAS_FLOWS if factor[f] is not None}

        source = referenced(
            files,
            process.find(  # type: ignore[arg-type]
                "p:modellingAndValidation/p:dataSourcesTreatmentAndRepresentativeness/"
                "p:referenceToDataSource",
                NS,
            ),
        )
        citation = text(source, "s:sourceInformation/s:dataSetInformation/s:sourceCitation")
        assert factor["source_title"] in citation


@pytest.fixture
def rich_dataset(session: Session) -> tuple[str, str, str]:
    publisher = create_publisher(session, slug="synth-ilcd")
    dataset = create_dataset(session, publisher=publisher, slug="rich")
    factors = [
        *rich_factors(),
        factor_fields(
            "syn-gases",
            unit="MWh",
            co2=800.0,
            ch4=0.01,
            n2o=0.005,
            gwp_set="AR5",
            co2e=800.0 + 28 * 0.01 + 265 * 0.005,
            biogenic_co2=12.5,
            dq_reliability=2,
        ),
    ]
    create_version(session, dataset=dataset, factors=factors)
    session.commit()
    return "synth-ilcd", "rich", "1.0.0"


@pytest.mark.parametrize(("publisher", "dataset", "version"), SEED_VERSIONS)
def test_seed_versions_as_ilcd_archives(
    client: TestClient, seeded: None, publisher: str, dataset: str, version: str
) -> None:
    response = client.get(version_url(publisher, dataset, version) + "/export.ilcd.zip")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["cache-control"] == IMMUTABLE
    assert_datasets_match(response.content, api_factors(client, publisher, dataset, version))


def test_every_gas_and_unit_of_a_rich_version(
    client: TestClient, rich_dataset: tuple[str, str, str]
) -> None:
    url = version_url(*rich_dataset) + "/export.ilcd.zip"
    first = client.get(url)
    assert first.status_code == 200
    assert_datasets_match(first.content, api_factors(client, *rich_dataset))
    assert client.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    files = validated_files(first.content)
    process = files[f"processes/{process_id('synth-ilcd', 'rich', 'syn-gases', '1.0.0')}"]
    advice = text(
        process,
        "p:modellingAndValidation/p:dataSourcesTreatmentAndRepresentativeness/"
        "p:useAdviceForDataSet",
    )
    assert "(2;n.a.;n.a.;n.a.;n.a.)" in advice
    # The publisher owns its data sets: one contact.
    assert len([k for k in files if k.startswith("contacts/")]) == 1


def test_a_registered_dataset_archive_needs_a_granted_reader(
    client: TestClient, session: Session, reader_token: Headers
) -> None:
    publisher = create_publisher(session, slug="synth-ireg")
    dataset = create_dataset(session, publisher=publisher, slug="members", access="registered")
    create_version(session, dataset=dataset, factors=[factor_fields("r-1")])
    session.commit()
    url = version_url("synth-ireg", "members", "1.0.0") + "/export.ilcd.zip"
    assert client.get(url).status_code == 404
    # A reader without a grant for it is told it does not exist, as anyone else is.
    assert client.get(url, headers=reader_token()).status_code == 404
    response = client.get(url, headers=reader_token("synth-ireg/members"))
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("private")
    validated_files(response.content)


def test_the_readme_recipe_validates_a_download(
    client: TestClient, seeded: None, tmp_path: Path
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    (recipe,) = [b for b in blocks if "ILCD_ProcessDataSet.xsd" in b]
    url = version_url("mee-cn", "cn-electricity-co2", "1.0.0") + "/export.ilcd.zip"
    data = client.get(url).content
    (tmp_path / "export.ilcd.zip").write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", recipe], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    count = len(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert done.stdout == f"{count} ILCD files valid\n"
    # A file that breaks its schema is caught.
    broken = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(broken, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name.startswith("ILCD/processes/"):
                content = content.replace(b"<process:meanAmount>", b"<process:meanAmount>x", 1)
            target.writestr(name, content)
    (tmp_path / "export.ilcd.zip").write_bytes(broken.getvalue())
    failed = subprocess.run(
        [sys.executable, "-c", recipe], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert failed.returncode != 0
    assert "XMLSchemaValidationError" in failed.stderr
