"""`olca-jsonld`: an openLCA JSON-LD zip imported as a draft (HTTP upload with its
`source_format`, and `efdb import olca-jsonld` in process), its problems placed at a process
and an exchange, its cost judged from the zip's directory, and the round trip of a released
version through efdb's own `export.jsonld.zip`.

Every zip here is small and synthetic (written with olca-schema's ZipWriter); no figure is
claimed real."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import olca_schema as olca
import pytest
from fastapi.testclient import TestClient
from olca_schema import zipio
from sqlalchemy.orm import Session

from app.exports.olca import process_id
from app.importers import (
    IMPORTERS,
    GwpChoice,
    ImportedRow,
    ImportFileError,
    SkippedRow,
    olca_jsonld,
)
from app.importers.olca_jsonld import ROUND_TRIP_FIELDS, gas_of_flow, round_trip_sha256
from app.publishing.source_formats import read_source_rows
from app.publishing.upload_formats import UploadFileError
from app.publishing.upload_limits import UploadLimits
from app.reference.gwp import shipped_gwp_table
from tests.auth_fixtures import TokenKit
from tests.conftest import run_efdb_in_process
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.test_exports import api_factors, version_url
from tests.test_importers import DATASET

AR5 = GwpChoice("AR5", shipped_gwp_table())
IMPORTER = IMPORTERS["olca-jsonld"]
AIR = "Elementary flows/Emission to air/unspecified"
SYNTHETIC = "Synthetic openLCA package (efdb test suite; not a real inventory)"


# --- A small openLCA package, as another tool would write it -----------------------------------


def _kg_property() -> tuple[olca.UnitGroup, olca.FlowProperty]:
    group = olca.UnitGroup(
        id="ug-mass",
        name="Units of mass",
        units=[
            olca.Unit(id="u-kg", name="kg", conversion_factor=1.0, is_ref_unit=True),
            olca.Unit(id="u-g", name="g", conversion_factor=0.001),
        ],
    )
    prop = olca.FlowProperty(id="fp-mass", name="Mass", unit_group=group.to_ref())
    return group, prop


def _gas(uid: str, name: str, cas: str, category: str = AIR) -> olca.Flow:
    return olca.Flow(
        id=uid,
        name=name,
        cas=cas,
        category=category,
        flow_type=olca.FlowType.ELEMENTARY_FLOW,
    )


def _exchange(
    internal_id: int, flow: olca.Flow, prop: olca.FlowProperty, unit: str, amount: float, **kw: Any
) -> olca.Exchange:
    return olca.Exchange(
        internal_id=internal_id,
        flow=flow.to_ref(),
        flow_property=prop.to_ref(),
        unit=olca.Ref(id=f"u-{unit}", name=unit),
        amount=amount,
        is_input=kw.pop("is_input", False),
        **kw,
    )


def package(change: Callable[[list[Any]], None] | None = None) -> bytes:
    """Two processes with emissions (one per 2 kg of steel, gases in g; one per kWh, CO2 only)
    and one without any: the entities `change` may alter before they are written."""
    group, mass = _kg_property()
    energy_group = olca.UnitGroup(
        id="ug-energy",
        name="Units of energy",
        units=[olca.Unit(id="u-kWh", name="kWh", conversion_factor=1.0, is_ref_unit=True)],
    )
    energy = olca.FlowProperty(id="fp-energy", name="Energy", unit_group=energy_group.to_ref())
    co2 = _gas("f-co2", "Carbon dioxide, fossil", "000124-38-9")
    ch4 = _gas("f-ch4", "Methane, fossil", "000074-82-8")
    n2o = _gas("f-n2o", "Dinitrogen monoxide", "010024-97-2")
    bio = _gas("f-bio", "Carbon dioxide, non-fossil", "000124-38-9")
    water = _gas(
        "f-co2-water", "Carbon dioxide", "000124-38-9", "Elementary flows/Emission to water"
    )
    steel = olca.Flow(
        id="f-steel", name="Steel, hot rolled coil", flow_type=olca.FlowType.PRODUCT_FLOW
    )
    power = olca.Flow(
        id="f-power", name="Electricity, medium voltage", flow_type=olca.FlowType.PRODUCT_FLOW
    )
    location = olca.Location(id="loc-cn", name="China", code="CN")
    source = olca.Source(id="src-1", name=SYNTHETIC, year=2024, url="https://example.org/lci")
    doc = olca.ProcessDocumentation(
        valid_from="2022-01-01", valid_until="2022-12-31", publication=source.to_ref()
    )
    steel_process = olca.Process(
        id="p-steel",
        name="steel production, hot rolled coil",
        category="C:Manufacturing/24:Basic metals",
        process_type=olca.ProcessType.LCI_RESULT,
        location=location.to_ref(),
        process_documentation=doc,
        dq_entry="(2;1;n.a.;3;4)",
        exchanges=[
            _exchange(1, steel, mass, "kg", 2.0, is_quantitative_reference=True),
            _exchange(2, co2, mass, "g", 3600.0),
            _exchange(3, ch4, mass, "g", 8.0),
            _exchange(4, n2o, mass, "kg", 0.0002),
            _exchange(5, bio, mass, "kg", 0.5),
            _exchange(6, water, mass, "kg", 99.0),  # not to air: not read
        ],
    )
    power_process = olca.Process(
        id="p-power",
        name="electricity, medium voltage",
        process_type=olca.ProcessType.UNIT_PROCESS,
        location=location.to_ref(),
        process_documentation=olca.ProcessDocumentation(
            valid_from="2023-01-01", valid_until="2023-06-30", publication=source.to_ref()
        ),
        exchanges=[
            _exchange(1, power, energy, "kWh", 1.0, is_quantitative_reference=True),
            _exchange(2, co2, mass, "kg", 0.58),
            _exchange(3, co2, mass, "kg", 0.5, is_input=True),  # an input: not an emission
        ],
    )
    empty_process = olca.Process(
        id="p-none",
        name="transport, no emissions given",
        process_type=olca.ProcessType.LCI_RESULT,
        location=location.to_ref(),
        process_documentation=doc,
        exchanges=[_exchange(1, steel, mass, "kg", 1.0, is_quantitative_reference=True)],
    )
    entities: list[Any] = [
        group, mass, energy_group, energy, co2, ch4, n2o, bio, water, steel, power, location,
        source, steel_process, power_process, empty_process,
    ]  # fmt: skip
    if change is not None:
        change(entities)
    buffer = io.BytesIO()
    path = Path(f"/tmp/efdb-olca-test-{id(buffer)}.zip")
    try:
        with zipio.ZipWriter(str(path)) as writer:
            for entity in entities:
                writer.write(entity)
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def _by_id(entities: list[Any], uid: str) -> Any:
    (found,) = [e for e in entities if e.id == uid]
    return found


def _rows(data: bytes, gwp: GwpChoice = AR5) -> list[ImportedRow | SkippedRow]:
    return list(IMPORTER.read(data, gwp=gwp))


# --- The mapping, without a database -----------------------------------------------------------


@pytest.mark.dialect_neutral
def test_gases_to_air_per_unit_of_reference_product_with_co2e_in_the_chosen_set() -> None:
    steel, power, skipped = _rows(package())
    assert isinstance(steel, ImportedRow)
    assert isinstance(power, ImportedRow)
    values = steel.values
    # Per 1 kg: the reference exchange is 2 kg; grams are converted to kilograms.
    assert values["co2"] == pytest.approx(1.8)
    assert values["ch4"] == pytest.approx(0.004)
    assert values["n2o"] == pytest.approx(0.0001)
    assert values["biogenic_co2"] == pytest.approx(0.25)
    table = shipped_gwp_table()
    expected = 1.8 + table.value("AR5", "CH4") * 0.004 + table.value("AR5", "N2O") * 0.0001
    assert values["co2e"] == pytest.approx(expected, rel=1e-12)
    assert values["gwp_set"] == "AR5"
    assert values["unit"] == "kg"
    assert values["region"] == "CN"
    assert values["reference_year"] == 2022
    assert "valid_from" not in values  # exactly the reference year: no narrower window
    assert values["boundary"] == "cradle-to-gate"
    assert values["factor_code"] == "p-steel"
    assert values["activity_id"] == "steel-hot-rolled-coil"
    assert values["source_title"] == SYNTHETIC
    assert (values["dq_reliability"], values["dq_completeness"]) == (2, 1)
    assert "dq_temporal" not in values
    assert steel.cell("co2").exchange == 2
    assert steel.cell("region").column == "location"

    # CO2 only: CO2e is the CO2 in any set, so no set is recorded; an input is not read.
    assert power.values["co2e"] == power.values["co2"] == 0.58
    assert "gwp_set" not in power.values
    assert power.values["boundary"] == "gate-to-gate"
    assert power.values["valid_from"].isoformat() == "2023-01-01"

    assert isinstance(skipped, SkippedRow)
    assert (skipped.code, skipped.cell.process) == ("no_greenhouse_gas", "p-none")


@pytest.mark.dialect_neutral
def test_the_gwp_set_changes_co2e_and_is_needed() -> None:
    ar4 = _rows(package(), GwpChoice("AR4", shipped_gwp_table()))[0]
    ar5 = _rows(package())[0]
    assert isinstance(ar4, ImportedRow)
    assert isinstance(ar5, ImportedRow)
    assert ar4.values["co2e"] != ar5.values["co2e"]
    assert ar4.values["gwp_set"] == "AR4"
    with pytest.raises(ImportFileError) as missing:
        list(IMPORTER.read(package()))
    assert missing.value.code == "missing_gwp_set"
    with pytest.raises(ImportFileError) as unknown:
        list(IMPORTER.read(package(), gwp=GwpChoice("AR9", shipped_gwp_table())))
    assert unknown.value.code == "unknown_gwp_set"


@pytest.mark.dialect_neutral
@pytest.mark.parametrize(
    ("name", "cas", "category", "field"),
    [
        ("Carbon dioxide", "124-38-9", AIR, "co2"),
        ("Carbon dioxide, biogenic", "000124-38-9", "air/low population density", "biogenic_co2"),
        ("Carbon dioxide, in air", "124-38-9", "Resource/in air", None),
        ("Methane, non-fossil", None, AIR, "ch4"),
        ("Nitrous oxide", None, AIR, "n2o"),
        ("Dinitrogen monoxide", "10024-97-2", "Emission to water", None),
        ("Sulfur hexafluoride", "2551-62-4", AIR, None),
    ],
)
def test_which_elementary_flows_are_read(
    name: str, cas: str | None, category: str, field: str | None
) -> None:
    found = gas_of_flow(_gas("x", name, cas or "", category))
    assert (found.field if found else None) == field


@pytest.mark.dialect_neutral
def test_a_zip_past_the_bounds_is_refused_from_its_directory_before_anything_is_unpacked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the zip reached the reader")

    monkeypatch.setattr(olca_jsonld, "ZipReader", never)
    monkeypatch.setattr(olca_jsonld, "MAX_JSONLD_ENTRIES", 5)
    with pytest.raises(ImportFileError) as many:
        _rows(package())
    assert many.value.code == "too_many_entries"

    # One entry declaring more than an entry may unpack to (a few KB of zeros, deflated).
    monkeypatch.setattr(olca_jsonld, "MAX_JSONLD_ENTRIES", 500_000)
    monkeypatch.setattr(olca_jsonld, "MAX_JSONLD_ENTRY_BYTES", 1024 * 1024)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("processes/bomb.json", b"0" * (2 * 1024 * 1024))
    bomb = buffer.getvalue()
    assert len(bomb) < 10_000
    with pytest.raises(ImportFileError) as large:
        _rows(bomb)
    assert large.value.code == "entry_too_large"

    # All entries together: the upload's decoded-size cap, as for every zip.
    with pytest.raises(UploadFileError) as total:
        read_source_rows(
            IMPORTER,
            "bomb.zip",
            io.BytesIO(bomb),
            gwp=AR5,
            limits=UploadLimits(max_decoded_bytes=1024 * 1024),
        )
    assert total.value.problems[0].code == "uncompressed_too_large"


# --- The upload path, both backends -----------------------------------------------------------


def _versions(client: TestClient, writer: dict[str, str], slug: str) -> str:
    body = {**DATASET, "slug": slug, "title_en": "openLCA import (test)"}
    created = client.post("/v1/datasets", json=body, headers=writer)
    assert created.status_code == 201, created.text
    return f"/v1/datasets/{created.json()['id']}/versions"


def _upload(
    client: TestClient,
    writer: dict[str, str],
    versions: str,
    content: bytes,
    *,
    version: str = "1.0.0",
    **form: str,
) -> Any:
    return client.post(
        versions,
        headers=writer,
        data={"version": version, "source_format": "olca-jsonld", "gwp_set": "AR5", **form},
        files={"file": ("package.zip", content, "application/zip")},
    )


def test_an_openlca_package_is_uploaded_as_a_draft_of_its_own_bytes(
    client: TestClient, tokens: TokenKit
) -> None:
    writer = tokens.writer("synth-olca-in")
    versions = _versions(client, writer, "lci")
    content = package()
    uploaded = _upload(client, writer, versions, content)
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert body["row_count"] == 2
    (warning,) = [w for w in body["report"]["warnings"] if w["code"] == "no_greenhouse_gas"]
    assert (warning["row"], warning["process"]) == (3, "p-none")
    import hashlib

    assert body["file_sha256"] == hashlib.sha256(content).hexdigest()
    draft = client.get(f"{versions}/1.0.0/factors", headers=writer)
    assert draft.status_code == 200, draft.text
    factors = {f["factor_code"]: f for f in draft.json()["items"]}
    assert factors["p-steel"]["gwp_set"] == "AR5"
    assert factors["p-steel"]["source_title"] == SYNTHETIC


def test_a_problem_names_the_process_and_the_exchange(client: TestClient, tokens: TokenKit) -> None:
    writer = tokens.writer("synth-olca-in")
    versions = _versions(client, writer, "lci-bad")

    def unknown_place(entities: list[Any]) -> None:
        _by_id(entities, "loc-cn").code = "RoW"  # openLCA's "rest of world": not a registry code
        _by_id(entities, "p-power").location = olca.Ref(id="loc-zz", name="CN-ZZ")
        reference = _by_id(entities, "p-power").exchanges[0]
        reference.unit = olca.Ref(id="u-x", name="kwhh")

    refused = _upload(client, writer, versions, package(unknown_place))
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    region = [e for e in errors if e["code"] == "unknown_region"]
    assert {(e["row"], e["process"], e["column"], e["field"]) for e in region} == {
        (1, "p-steel", "location", "region"),
        (2, "p-power", "location", "region"),
    }
    assert {e["detail"].split("'")[1] for e in region} == {"RoW", "CN-ZZ"}
    assert all("exchange" not in e for e in region)
    (unit,) = [e for e in errors if e["field"] == "unit"]
    assert (unit["row"], unit["process"], unit["exchange"], unit["column"]) == (
        2,
        "p-power",
        1,
        "unit",
    )
    assert client.get(f"{versions}/1.0.0", headers=writer).status_code == 404

    # Without a GWP set; a GWP set for a format that states its CO2e.
    no_set = client.post(
        versions,
        headers=writer,
        data={"version": "1.0.0", "source_format": "olca-jsonld"},
        files={"file": ("package.zip", package(), "application/zip")},
    )
    assert no_set.status_code == 422
    assert no_set.json()["errors"][0]["code"] == "missing_gwp_set"
    plain = client.post(
        versions,
        headers=writer,
        data={"version": "1.0.0", "gwp_set": "AR5"},
        files={"file": ("f.csv", b"factor_code\n", "text/csv")},
    )
    assert plain.status_code == 422
    assert plain.json()["errors"][0]["loc"] == ["body", "gwp_set"]


def test_efdb_import_olca_jsonld_in_process(
    client: TestClient, tokens: TokenKit, database_url: str, tmp_path: Path
) -> None:
    writer = tokens.writer("synth-olca-in")
    _versions(client, writer, "lci-cli")
    path = tmp_path / "package.zip"
    path.write_bytes(package())
    args = ("import", "olca-jsonld", str(path), "--dataset", "synth-olca-in/lci-cli")
    env = {"EFDB_DATABASE_URL": database_url}
    result = run_efdb_in_process(
        *args, "--version", "1.0.0", "--gwp-set", "AR5", env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert (printed["status"], printed["row_count"]) == ("draft", 2)
    assert printed["warning_count"] >= 1  # the process without gases (and new activities)

    def negative(entities: list[Any]) -> None:
        _by_id(entities, "p-power").exchanges[1].amount = -0.58

    path.write_bytes(package(negative))
    failed = run_efdb_in_process(
        *args, "--version", "1.0.1", "--gwp-set", "AR5", env=env, cwd=tmp_path
    )
    assert failed.returncode == 1
    assert "[row 2, process p-power, exchange 2, column amount, field co2e]" in failed.stderr
    missing = run_efdb_in_process(*args, "--version", "1.0.1", env=env, cwd=tmp_path)
    assert missing.returncode == 2  # argparse: --gwp-set is required
    assert "--gwp-set" in missing.stderr


# --- Round trip: a release exported as JSON-LD and imported into another dataset -------------


def _rich_release(session: Session) -> tuple[str, str, str]:
    publisher = create_publisher(session, slug="synth-olca-rt")
    dataset = create_dataset(session, publisher=publisher, slug="origin")
    factors = [
        factor_fields(
            "rt-gases",
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
            source_url="https://example.org/synthetic",
        ),
        factor_fields(
            "rt-co2",
            unit="t",
            region="CN-GD",
            reference_year=2021,
            co2=2.5,
            co2e=2.5,
            uncertainty_low=2.0,
            uncertainty_high=3.0,
            boundary="combustion",
        ),
        factor_fields(
            "rt-other",
            unit="t*km",
            co2=0.1,
            ch4=0.0001,
            other_ghg_co2e=0.002,
            gwp_set="AR5",
            co2e=0.1 + 28 * 0.0001 + 0.002,
            boundary="well-to-wheel",
            category=None,
        ),
        factor_fields("rt-total-only", unit="kWh", co2e=0.5, region="GLO"),
    ]
    create_version(session, dataset=dataset, factors=factors)
    session.commit()
    return "synth-olca-rt", "origin", "1.0.0"


def test_a_release_survives_the_json_ld_round_trip(
    client: TestClient,
    session: Session,
    tokens: TokenKit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    origin = _rich_release(session)
    exported = client.get(version_url(*origin) + "/export.jsonld.zip")
    assert exported.status_code == 200, exported.text
    writer = tokens.writer("synth-olca-rt")
    versions = _versions(client, writer, "copy")
    uploaded = _upload(client, writer, versions, exported.content)
    assert uploaded.status_code == 201, uploaded.text
    submitted = client.post(f"{versions}/1.0.0/submit", headers=writer)
    assert submitted.status_code == 200, submitted.text
    published = client.post(
        f"{versions}/1.0.0/publish",
        headers=tokens.reviewer(),
        json={"content_sha256": submitted.json()["content_sha256"]},
    )
    assert published.status_code == 200, published.text

    before = api_factors(client, *origin)
    after = api_factors(client, "synth-olca-rt", "copy", "1.0.0")
    assert round_trip_sha256(after) == round_trip_sha256(before)
    assert [{k: f[k] for k in ROUND_TRIP_FIELDS} for f in after] == [
        {k: f[k] for k in ROUND_TRIP_FIELDS} for f in before
    ]

    # The README's recipe says the same from the two saved factor lists, with the same fields.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (recipe,) = [
        b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "copy.json" in b
    ]
    namespace: dict[str, Any] = {}
    (tmp_path / "origin.json").write_text(json.dumps(before), encoding="utf-8")
    (tmp_path / "copy.json").write_text(json.dumps(after), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    exec(recipe, namespace)
    assert tuple(namespace["FIELDS"]) == ROUND_TRIP_FIELDS
    assert namespace["round_trip_sha256"]("copy.json") == round_trip_sha256(after)


def _tampered(exported: bytes, change: Callable[[olca.Process, zipio.ZipReader], Any]) -> bytes:
    """The export with one process altered, rewritten with olca-schema's writer."""
    source = Path(f"/tmp/efdb-olca-rt-{id(exported)}.zip")
    target = source.with_suffix(".out.zip")
    source.write_bytes(exported)
    try:
        with zipio.ZipReader(str(source)) as reader, zipio.ZipWriter(str(target)) as writer:
            for kind in (olca.UnitGroup, olca.FlowProperty, olca.Flow, olca.Location, olca.Source,
                         olca.DQSystem):  # fmt: skip
                for entity in reader.read_each(kind):
                    writer.write(entity)
            for process in reader.read_each(olca.Process):
                if process.id == process_id("synth-olca-rt", "origin", "rt-gases", "1.0.0"):
                    extra = change(process, reader)
                    if extra is not None:
                        writer.write(extra)
                writer.write(process)
        return target.read_bytes()
    finally:
        source.unlink(missing_ok=True)
        target.unlink(missing_ok=True)


def _co2_amount(process: olca.Process, reader: zipio.ZipReader) -> None:
    (gas,) = [e for e in process.exchanges or [] if (e.description or "").startswith("co2:")]
    gas.amount = (gas.amount or 0) * 1.001


def _unit(process: olca.Process, reader: zipio.ZipReader) -> None:
    (reference,) = [e for e in process.exchanges or [] if e.is_quantitative_reference]
    reference.unit = olca.Ref(id="x", name="GJ")


def _location(process: olca.Process, reader: zipio.ZipReader) -> olca.Location:
    moved = olca.Location(id="efdb-test-cn-gd", name="CN-GD", code="CN-GD")
    process.location = moved.to_ref()
    return moved


@pytest.mark.dialect_neutral
@pytest.mark.parametrize("change", [_co2_amount, _unit, _location])
def test_the_round_trip_hash_sees_one_changed_number_unit_or_location(
    client: TestClient, session: Session, change: Callable[..., Any]
) -> None:
    origin = _rich_release(session)
    exported = client.get(version_url(*origin) + "/export.jsonld.zip").content
    before = api_factors(client, *origin)

    def imported(data: bytes) -> list[dict[str, Any]]:
        rows = [r for r in IMPORTER.read(data, gwp=AR5) if isinstance(r, ImportedRow)]
        return [r.values for r in rows]

    assert round_trip_sha256(imported(exported)) == round_trip_sha256(before)
    assert round_trip_sha256(imported(_tampered(exported, change))) != round_trip_sha256(before)


class _SameClient:
    """`httpx.Client(timeout=…)` as the CLI opens it, answered by the test's app."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def __call__(self, **kwargs: Any) -> _SameClient:
        return self

    def __enter__(self) -> TestClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        return None


def test_efdb_import_olca_jsonld_to_a_service_as_the_publishers_client(
    client: TestClient, tokens: TokenKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--to`: token, upload with the source format and the GWP set, submit (the HTTP answers
    from this test's app)."""
    import httpx

    writer = tokens.writer("synth-olca-in")
    versions = _versions(client, writer, "lci-to")
    credentials = tokens.credentials(publisher="synth-olca-in", scopes=["datasets:write"])
    monkeypatch.setattr(httpx, "Client", _SameClient(client))
    path = tmp_path / "package.zip"
    path.write_bytes(package())
    result = run_efdb_in_process(
        "import", "olca-jsonld", str(path), "--dataset", "synth-olca-in/lci-to",
        "--version", "1.0.0", "--gwp-set", "AR4", "--to", "http://testserver",
        "--client-id", credentials.client_id, "--client-secret", credentials.client_secret,
        env={}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert (printed["status"], printed["row_count"]) == ("submitted", 2)
    factors = client.get(f"{versions}/1.0.0/factors", headers=writer).json()["items"]
    assert {f["factor_code"]: f["gwp_set"] for f in factors} == {"p-steel": "AR4", "p-power": None}


@pytest.mark.dialect_neutral
def test_a_broken_or_hostile_process_is_an_error_at_that_process_not_a_crash() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "processes/p-text.json",
            json.dumps(
                {
                    "@type": "Process",
                    "@id": "p-text",
                    "exchanges": [{"amount": "many", "isQuantitativeReference": True}],
                }
            ),
        )
        archive.writestr("processes/p-deep.json", "[" * 200_000 + "]" * 200_000)
        archive.writestr("processes/p-json.json", "{not json")
    rows = [r for r in _rows(buffer.getvalue()) if isinstance(r, ImportedRow)]
    assert [(r.process, r.problem[1] if r.problem else None) for r in rows] == [
        ("p-text", "unreadable_process"),
        ("p-deep", "unreadable_process"),
        ("p-json", "unreadable_process"),
    ]
