"""The openLCA JSON-LD export, read back with olca-schema's own reader (`ZipReader`).

Every process is checked against the JSON API's factor: its reference product (1 unit of the
declared unit, in a unit group that converts between the declared units), every gas amount
(exact), the CO2e parameter, the location code, the source, the pedigree entry, the validity
and the licence and attribution in its documentation.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import olca_schema as olca
import pytest
from fastapi.testclient import TestClient
from olca_schema.zipio import ZipReader
from sqlalchemy.orm import Session

from app.exports.olca import process_id
from app.reference.units import conversion_multiplier
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.test_exports import IMMUTABLE, SEED_VERSIONS, Headers, api_factors, version_url
from tests.test_exports_xlsx import rich_factors

GAS_FLOWS = {
    "co2": "Carbon dioxide",
    "ch4": "Methane",
    "n2o": "Dinitrogen monoxide",
    "biogenic_co2": "Carbon dioxide, biogenic",
}
PEDIGREE = (
    "dq_reliability",
    "dq_completeness",
    "dq_temporal",
    "dq_geographical",
    "dq_technological",
)


@pytest.fixture
def rich_dataset(session: Session) -> tuple[str, str, str]:
    publisher = create_publisher(session, slug="synth-olca")
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
            dq_temporal=1,
            category="energy/electricity",
        ),
    ]
    create_version(session, dataset=dataset, factors=factors)
    session.commit()
    return "synth-olca", "rich", "1.0.0"


def download(client: TestClient, base: str, tmp_path: Path, **kwargs: Any) -> Path:
    response = client.get(base + "/export.jsonld.zip", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    path = tmp_path / "export.jsonld.zip"
    path.write_bytes(response.content)
    return path


def assert_processes_match(path: Path, api: list[dict[str, Any]]) -> None:
    with zipfile.ZipFile(path) as archive:
        assert "olca-schema.json" in archive.namelist()
    with ZipReader(str(path)) as reader:
        assert len(reader.ids_of(olca.Process)) == len(api)
        for factor in api:
            key = (factor["publisher"], factor["dataset"], factor["factor_code"], factor["version"])
            process = reader.read_process(process_id(*key))
            assert process is not None, key
            where = factor["factor_code"]
            assert process.process_type == olca.ProcessType.LCI_RESULT
            assert process.name == (factor["name_en"] or factor["name_zh"] or factor["factor_code"])
            assert process.location is not None
            location = reader.read_location(process.location.id)
            assert location is not None
            assert location.code == factor["region"], where

            exchanges = process.exchanges or []
            (reference,) = [e for e in exchanges if e.is_quantitative_reference]
            assert reference.amount == 1.0
            assert reference.is_input is False
            assert reference.unit is not None
            assert reference.unit.name == factor["unit"], where
            assert reference.flow is not None
            product = reader.read_flow(reference.flow.id)
            assert product is not None
            assert product.flow_type == olca.FlowType.PRODUCT_FLOW
            assert reference.flow_property is not None
            prop = reader.read_flow_property(reference.flow_property.id)
            assert prop is not None
            assert prop.unit_group is not None
            group = reader.read_unit_group(prop.unit_group.id)
            assert group is not None
            units = {u.name: u for u in group.units or []}
            (ref_unit,) = [u for u in units.values() if u.is_ref_unit]
            assert units[factor["unit"]].conversion_factor == conversion_multiplier(
                factor["unit"], ref_unit.name or ""
            )

            gases = {}
            for exchange in exchanges:
                if exchange.is_quantitative_reference:
                    continue
                assert exchange.flow is not None
                flow = reader.read_flow(exchange.flow.id)
                assert flow is not None
                assert flow.flow_type == olca.FlowType.ELEMENTARY_FLOW
                assert flow.category == "Elementary flows/Emission to air/unspecified"
                assert exchange.unit is not None
                assert exchange.unit.name == "kg"
                assert exchange.is_input is False
                gases[flow.name] = exchange.amount
            expected = {GAS_FLOWS[f]: factor[f] for f in GAS_FLOWS if factor[f] is not None}
            assert gases == expected, where

            parameters = {p.name: p.value for p in process.parameters or []}
            assert parameters["co2e"] == factor["co2e"], where
            for name in ("other_ghg_co2e", "uncertainty_low", "uncertainty_high"):
                assert parameters.get(name) == factor[name], (where, name)

            scores = [factor[name] for name in PEDIGREE]
            if any(score is not None for score in scores):
                text = ";".join("n.a." if s is None else str(s) for s in scores)
                assert process.dq_entry == f"({text})", where
                assert process.dq_system is not None
                system = reader.read_dq_system(process.dq_system.id)
                assert system is not None
                assert len(system.indicators or []) == 5
            else:
                assert process.dq_entry is None

            doc = process.process_documentation
            assert doc is not None
            year = factor["reference_year"]
            assert doc.valid_from == (factor["valid_from"] or f"{year}-01-01"), where
            assert doc.valid_until == (factor["valid_to"] or f"{year}-12-31"), where
            assert factor["license_id"] in (doc.restrictions_description or "")
            assert factor["attribution"] in (doc.restrictions_description or "")
            assert f"@{factor['version']}" in (doc.project_description or "")
            (source_ref,) = doc.sources or []
            source = reader.read_source(source_ref.id)
            assert source is not None
            assert source.name == factor["source_title"]
            assert source.year == factor["source_year"]
            assert source.url == factor["source_url"]


@pytest.mark.parametrize(("publisher", "dataset", "version"), SEED_VERSIONS)
def test_seed_versions_as_openlca_packages(
    client: TestClient, seeded: None, tmp_path: Path, publisher: str, dataset: str, version: str
) -> None:
    base = version_url(publisher, dataset, version)
    path = download(client, base, tmp_path)
    assert_processes_match(path, api_factors(client, publisher, dataset, version))


def test_every_gas_unit_and_score_of_a_rich_version(
    client: TestClient, rich_dataset: tuple[str, str, str], tmp_path: Path
) -> None:
    base = version_url(*rich_dataset)
    path = download(client, base, tmp_path)
    api = api_factors(client, *rich_dataset)
    assert_processes_match(path, api)
    with ZipReader(str(path)) as reader:
        # One location per region, one product flow per factor, the gases once each.
        codes = {location.code for location in reader.read_each(olca.Location)}
        assert codes == {factor["region"] for factor in api}
        flows = list(reader.read_each(olca.Flow))
        assert len([f for f in flows if f.flow_type == olca.FlowType.PRODUCT_FLOW]) == len(api)
        assert sorted(
            f.name or "" for f in flows if f.flow_type == olca.FlowType.ELEMENTARY_FLOW
        ) == [
            "Carbon dioxide",
            "Carbon dioxide, biogenic",
            "Dinitrogen monoxide",
            "Methane",
        ]
        process = reader.read_process(process_id("synth-olca", "rich", "syn-gases", "1.0.0"))
        assert process is not None
        assert process.category == "efdb/synth-olca/rich/energy/electricity"
        assert process.dq_entry == "(2;n.a.;1;n.a.;n.a.)"


def test_the_package_is_served_like_every_export(
    client: TestClient, rich_dataset: tuple[str, str, str]
) -> None:
    url = version_url(*rich_dataset) + "/export.jsonld.zip"
    first = client.get(url)
    assert first.headers["cache-control"] == IMMUTABLE
    assert "synth-olca_rich_1.0.0.jsonld.zip" in first.headers["content-disposition"]
    second = client.get(url)
    assert second.content == first.content  # written once, then served as that file
    not_modified = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304


def test_a_registered_dataset_package_needs_a_granted_reader(
    client: TestClient, session: Session, reader_token: Headers, tmp_path: Path
) -> None:
    publisher = create_publisher(session, slug="synth-oreg")
    dataset = create_dataset(session, publisher=publisher, slug="members", access="registered")
    create_version(session, dataset=dataset, factors=[factor_fields("r-1")])
    session.commit()
    base = version_url("synth-oreg", "members", "1.0.0")
    assert client.get(base + "/export.jsonld.zip").status_code == 404
    # A reader without a grant for it is told it does not exist, as anyone else is.
    assert client.get(base + "/export.jsonld.zip", headers=reader_token()).status_code == 404
    headers = reader_token("synth-oreg/members")
    path = download(client, base, tmp_path, headers=headers)
    assert (
        client.get(base + "/export.jsonld.zip", headers=headers)
        .headers["cache-control"]
        .startswith("private")
    )
    assert_processes_match(
        path, api_factors(client, "synth-oreg", "members", "1.0.0", headers=headers)
    )


def test_the_readme_recipe_lists_every_process(
    client: TestClient, seeded: None, tmp_path: Path
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    (recipe,) = [b for b in blocks if "ZipReader" in b]
    publisher, dataset, version = "mee-cn", "cn-electricity-co2", "1.0.0"
    download(client, version_url(publisher, dataset, version), tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", recipe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    api = api_factors(client, publisher, dataset, version)
    assert len(lines) == len(api)
    for factor in api:
        expected = f"| {factor['region']} | {factor['co2e']} kg CO2e per 1.0 {factor['unit']} |"
        assert any(expected in line for line in lines), expected
