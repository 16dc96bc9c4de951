"""A publisher uploads its own file (DESNZ flat-file workbook, MEE electricity table) with a
`source_format`: the service's importer maps it, the upload path checks and stores it, and
the report names the publisher file's sheet, row and column.

The files are the publishers' real ones (seed_data/, byte for byte) or small workbooks made
from their real rows (tests/importer_files.py)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.importers import IMPORTERS, ImportedRow, SkippedRow
from tests.auth_fixtures import TokenKit
from tests.importer_files import (
    DESNZ_2022,
    DESNZ_2024,
    DESNZ_2025,
    MEE_TABLE,
    SHEET,
    level,
    small_desnz,
)

DATASET = {
    "title_zh": "英国政府温室气体报告换算因子（测试）",
    "title_en": "UK GHG conversion factors (test copy)",
    "description": "DESNZ flat-file rows imported in a test.",
    "access": "public",
    "license_id": "OGL-UK-3.0",
    "license_url": "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/",
    "attribution": "Contains public sector information licensed under the Open Government "
    "Licence v3.0.",
    "redistribution": True,
    "commercial_use": True,
}


def _dataset(client: TestClient, writer: dict[str, str], slug: str) -> str:
    response = client.post("/v1/datasets", json={**DATASET, "slug": slug}, headers=writer)
    assert response.status_code == 201, response.text
    return f"/v1/datasets/{response.json()['id']}/versions"


def _upload(
    client: TestClient,
    writer: dict[str, str],
    versions: str,
    content: bytes,
    name: str,
    source_format: str | None,
    **form: Any,
) -> Any:
    data = {"version": "1.0.0", **form}
    if source_format is not None:
        data["source_format"] = source_format
    return client.post(
        versions,
        headers=writer,
        data=data,
        files={"file": (name, content, "application/octet-stream")},
    )


def _publish(client: TestClient, tokens: TokenKit, writer: dict[str, str], versions: str) -> None:
    submitted = client.post(f"{versions}/1.0.0/submit", headers=writer)
    assert submitted.status_code == 200, submitted.text
    reviewer = tokens.reviewer()
    published = client.post(
        f"{versions}/1.0.0/publish",
        headers=reviewer,
        json={"content_sha256": submitted.json()["content_sha256"]},
    )
    assert published.status_code == 200, published.text


def test_a_desnz_workbook_is_imported_with_its_own_cells_and_bytes(
    client: TestClient, tokens: TokenKit, seeded: None
) -> None:
    content, rows = small_desnz(
        DESNZ_2025, lambda r: level(r, "Fuels", "SECR kWh pass & delivery vehs", "Hotel stay")
    )
    writer = tokens.writer("desnz-uk")
    versions = _dataset(client, writer, "flat-file-test")
    response = _upload(client, writer, versions, content, "flat.xlsx", "desnz-flat")
    assert response.status_code == 201, response.text
    body = response.json()
    # The publisher's file is what is hashed and kept.
    assert body["file_sha256"] == hashlib.sha256(content).hexdigest()
    # The SECR rows (kWh per unit, not kg CO2e) are left out, each named at its sheet row.
    secr = [w for w in body["report"]["warnings"] if w["code"] == "not_an_emission_factor"]
    assert secr
    for warning in secr:
        assert warning["sheet"] == SHEET
        assert rows[warning["row"] - 1][2] == "SECR kWh pass & delivery vehs"
    _publish(client, tokens, writer, versions)

    # Natural gas per kWh (Gross CV): the factor is the group's rows, each gas from its row.
    gas = {
        r[8].removesuffix(" per unit"): (number, r[9])
        for number, r in enumerate(rows, start=1)
        if r[2:9][:3] == ["Fuels", "Gaseous fuels", "Natural gas"] and r[7] == "kWh (Gross CV)"
    }
    factor = client.get(
        "/v1/factors/desnz-uk/flat-file-test/scope-1-fuels-gaseous-fuels-natural-gas-kwh-gross-cv"
    )
    assert factor.status_code == 200, factor.text
    found = factor.json()
    assert found["co2e"] == gas["kg CO2e"][1]
    assert found["co2"] == gas["kg CO2e of CO2"][1]
    assert (found["ch4"], found["n2o"]) == (None, None)  # kg CO2e of a gas is not kg of gas
    assert f"kg CO2e of CH4: {gas['kg CO2e of CH4'][1]:g}" in found["notes"]
    assert found["gwp_set"] == "AR5"
    assert found["unit"] == "kWh"
    assert found["activity_id"] == "natural-gas-combustion-gross-cv"
    assert found["category"] == "desnz/Fuels/Gaseous fuels/Natural gas"
    assert found["reference_year"] == 2025
    assert found["region"] == "GB"
    provenance = client.get(
        "/v1/factors/desnz-uk/flat-file-test/"
        "scope-1-fuels-gaseous-fuels-natural-gas-kwh-gross-cv/provenance"
    ).json()
    assert provenance["upload"]["row_number"] == gas["kg CO2e"][0]
    assert provenance["upload"]["file_sha256"] == hashlib.sha256(content).hexdigest()

    # A hotel night abroad is in that country, per room night.
    france = client.get(
        "/v1/factors?dataset=desnz-uk/flat-file-test&region=FR&unit=room_night"
    ).json()["items"]
    assert [f["category"] for f in france] == ["desnz/Hotel stay/Hotel stay/France"]


def test_a_problem_names_the_publisher_files_sheet_row_and_column(
    client: TestClient, tokens: TokenKit, seeded: None
) -> None:
    butane_total = ["Fuels", "Gaseous fuels", "Butane"]

    def negative(row: list[Any]) -> list[Any]:
        if row[2:5] == butane_total and row[7] == "litres" and row[8] == "kg CO2e":
            row[9] = -row[9]
        return row

    content, rows = small_desnz(DESNZ_2025, lambda r: level(r, "Fuels"), change=negative)
    writer = tokens.writer("desnz-uk")
    versions = _dataset(client, writer, "flat-file-bad")
    response = _upload(client, writer, versions, content, "flat.xlsx", "desnz-flat")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    (error,) = response.json()["errors"]
    assert error["sheet"] == SHEET
    assert error["column"] == "GHG Conversion Factor 2025"
    assert error["field"] == "co2e"
    assert error["code"] == "negative_co2e"
    changed = rows[error["row"] - 1]
    assert changed[2:5] == butane_total
    assert changed[7:9] == ["litres", "kg CO2e"]
    assert client.get(f"{versions}/1.0.0", headers=writer).status_code == 404


def test_the_mee_table_is_imported_up_to_an_announcement_year(
    client: TestClient, tokens: TokenKit, seeded: None
) -> None:
    content = MEE_TABLE.read_bytes()
    writer = tokens.writer("mee-cn")
    versions = _dataset(client, writer, "electricity-test")
    response = _upload(
        client, writer, versions, content, MEE_TABLE.name, "mee-electricity", through_year="2021"
    )
    assert response.status_code == 201, response.text
    table = [line.split(",") for line in content.decode().splitlines()[1:]]
    assert response.json()["row_count"] == sum(1 for cells in table if cells[0] == "2021")
    _publish(client, tokens, writer, versions)
    beijing = client.get("/v1/factors/mee-cn/electricity-test/co2-average-CN-BJ-2021").json()
    (cells,) = [c for c in table if c[0] == "2021" and c[3] == "北京" and c[1] == "CO2 average"]
    assert beijing["co2e"] == float(cells[4])
    assert beijing["region"] == "CN-BJ"
    assert beijing["activity_id"] == "electricity-grid-mix"
    north = client.get("/v1/factors/mee-cn/electricity-test/co2-average-CN-GRID-NORTH-2021")
    assert north.status_code == 200


def test_an_unknown_region_in_the_mee_table_is_reported_at_its_row_and_column(
    client: TestClient, tokens: TokenKit, seeded: None
) -> None:
    lines = MEE_TABLE.read_bytes().decode().splitlines(keepends=True)
    changed = [lines[0], *lines[1:4], lines[4].replace(",华东,", ",火星,", 1)]
    assert changed[-1] != lines[4]
    writer = tokens.writer("mee-cn")
    versions = _dataset(client, writer, "electricity-bad")
    response = _upload(
        client, writer, versions, "".join(changed).encode(), "t.csv", "mee-electricity"
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert {e["row"] for e in errors} == {5}
    (error,) = [e for e in errors if e["field"] == "region"]
    assert (error["row"], error["column"]) == (5, "region_zh")
    assert "sheet" not in error


@pytest.mark.parametrize(
    ("source_format", "name", "code"),
    [("no-such-format", "t.csv", "unknown_source_format"), ("desnz-flat", "t.csv", None)],
)
def test_a_file_not_of_its_source_format_is_refused(
    client: TestClient, tokens: TokenKit, seeded: None, source_format: str, name: str, code: str
) -> None:
    writer = tokens.writer("mee-cn")
    versions = _dataset(client, writer, "electricity-refused")
    response = _upload(client, writer, versions, MEE_TABLE.read_bytes(), name, source_format)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert errors[0]["code"] == (code or "unsupported_format")


def _workbook_without_the_expected_sheet() -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.title = "Something else"  # type: ignore[union-attr]
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("source_format", "sheet"),
    [("desnz-flat", "Factors by Category"), ("epa-hub", "Emission Factors Hub")],
)
def test_a_workbook_importer_names_the_sheet_it_needs_and_refuses_a_data_year(
    client: TestClient, tokens: TokenKit, seeded: None, source_format: str, sheet: str
) -> None:
    writer = tokens.writer("desnz-uk")
    versions = _dataset(client, writer, "workbook-refused")
    content = _workbook_without_the_expected_sheet()
    missing = _upload(client, writer, versions, content, "book.xlsx", source_format)
    assert missing.status_code == 422, missing.text
    (error,) = missing.json()["errors"]
    assert error["code"] == "unreadable_workbook"
    assert sheet in error["detail"]
    # through_year picks a data year of a file holding several (MEE's); a workbook holds one.
    per_year = _upload(
        client, writer, versions, content, "book.xlsx", source_format, through_year="2021"
    )
    assert per_year.status_code == 422, per_year.text
    assert per_year.json()["errors"][0]["code"] == "not_applicable"


@pytest.mark.dialect_neutral
def test_desnz_codes_pair_the_same_factor_across_editions() -> None:
    """Diffs between editions pair factors by code: the codes come from DESNZ's own
    category words, which stay the same from one edition to the next."""

    def codes(path: Any) -> dict[str, dict[str, Any]]:
        items = IMPORTERS["desnz-flat"].read(path.read_bytes())
        return {i.values["factor_code"]: i.values for i in items if isinstance(i, ImportedRow)}

    old, new, oldest = codes(DESNZ_2024), codes(DESNZ_2025), codes(DESNZ_2022)
    kept = set(old) & set(new)
    assert len(kept) >= 0.95 * len(new)
    assert len(set(oldest) & set(new)) >= 0.9 * len(oldest)
    electricity = "scope-2-uk-electricity-electricity-generated-electricity-uk-kwh-kwh"
    assert old[electricity]["activity_id"] == new[electricity]["activity_id"]
    assert new[electricity]["activity_id"] == "electricity-grid-mix"
    assert old[electricity]["co2e"] != new[electricity]["co2e"]  # a new year, a new value


@pytest.mark.dialect_neutral
def test_rows_without_a_unit_the_registry_holds_are_left_out_with_the_reason() -> None:
    items = list(IMPORTERS["desnz-flat"].read(DESNZ_2025.read_bytes()))
    skipped = [i for i in items if isinstance(i, SkippedRow) and i.code == "unit_not_representable"]
    assert skipped
    assert all("per FTE Working Hour" in s.detail for s in skipped)
    assert all(s.cell.sheet == SHEET and s.cell.column == "UOM" for s in skipped)


def test_the_rows_left_out_are_said_in_the_readers_language(
    client: TestClient, tokens: TokenKit, seeded: None
) -> None:
    content, _ = small_desnz(
        DESNZ_2025, lambda r: level(r, "Fuels", "SECR kWh pass & delivery vehs")
    )
    writer = tokens.writer("desnz-uk")
    versions = _dataset(client, writer, "flat-file-zh")
    response = client.post(
        versions,
        headers={**writer, "Accept-Language": "zh-CN"},
        data={"version": "1.0.0", "source_format": "desnz-flat"},
        files={"file": ("flat.xlsx", content, "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    (first, *_) = [
        w for w in response.json()["report"]["warnings"] if w["code"] == "not_an_emission_factor"
    ]
    assert first["detail"].endswith("未导入")
    assert "SECR kWh pass & delivery vehs" in first["detail"]


@pytest.mark.dialect_neutral
@pytest.mark.parametrize(
    ("written", "canonical", "dimension"),
    [
        ("passenger.km", "passenger*km", "passenger transport"),
        ("room_night", "room_night", "accommodation"),
        ("miles", "mi", "distance"),
        ("megalitre", "ML", "volume"),
    ],
)
def test_the_units_desnz_uses_are_declared_units(
    written: str, canonical: str, dimension: str
) -> None:
    from app.reference.units import UnitError, conversion_multiplier, parse_declared_unit

    declared = parse_declared_unit(written)
    assert (declared.canonical, declared.dimension) == (canonical, dimension)
    # A passenger-km or a room night is its own kind: never converted into another.
    if dimension in ("passenger transport", "accommodation"):
        with pytest.raises(UnitError):
            conversion_multiplier(canonical, "km")


def test_a_workbook_that_would_unpack_past_the_decoded_size_cap_is_refused_unread(
    client: TestClient, tokens: TokenKit, seeded: None, settings: Any
) -> None:
    """An .xlsx is a zip: its directory says how much it unpacks to, before anything is."""
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * (3 * 1024 * 1024))
    client.app.state.settings = settings.model_copy(  # type: ignore[attr-defined]
        update={"max_upload_uncompressed_mb": 2}
    )
    writer = tokens.writer("desnz-uk")
    versions = _dataset(client, writer, "flat-file-bomb")
    response = _upload(client, writer, versions, packed.getvalue(), "flat.xlsx", "desnz-flat")
    assert response.status_code == 422, response.text
    assert [e["code"] for e in response.json()["errors"]] == ["uncompressed_too_large"]
