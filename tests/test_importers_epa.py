"""US EPA files uploaded with their `source_format`: the Supply Chain GHG Emission Factors
CO2e files by NAICS-6 (v1.2, 2021 USD; v1.3.0, 2022 USD). The files are small ones made from
EPA's real lines (tests/importer_files.py); each expectation is read from those lines."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.importers import IMPORTERS, ImportedRow
from tests.auth_fixtures import TokenKit
from tests.conftest import run_efdb_in_process
from tests.importer_files import (
    EPA_HUB_2023,
    EPA_HUB_2024,
    EPA_SC_V12,
    EPA_SC_V13,
    small_csv,
    small_hub,
)

DATASET = {
    "title_en": "US EPA supply chain GHG emission factors (test copy)",
    "description": "EPA supply-chain factor rows imported in a test.",
    "access": "public",
    "license_id": "LicenseRef-US-Government-Work",
    "license_url": "https://pasteur.epa.gov/license/sciencehub-license.html",
    "attribution": "U.S. EPA Office of Research and Development.",
    "redistribution": True,
    "commercial_use": True,
}
# A few commodities from several NAICS sectors (farming, mining, manufacturing, services).
CODES = {"111110", "211120", "324110", "331110", "481111", "541511"}
WITH_MARGINS = "Supply Chain Emission Factors with Margins"


def _selected(row: list[str]) -> bool:
    return row[0] in CODES


def _upload(
    client: TestClient, writer: dict[str, str], versions: str, version: str, content: bytes
) -> Any:
    return client.post(
        versions,
        headers=writer,
        data={"version": version, "source_format": "epa-supply-chain"},
        files={"file": ("factors.csv", content, "text/csv")},
    )


def _publish(
    client: TestClient, tokens: TokenKit, writer: dict[str, str], versions: str, version: str
) -> None:
    submitted = client.post(f"{versions}/{version}/submit", headers=writer)
    assert submitted.status_code == 200, submitted.text
    published = client.post(
        f"{versions}/{version}/publish",
        headers=tokens.reviewer(),
        json={"content_sha256": submitted.json()["content_sha256"]},
    )
    assert published.status_code == 200, published.text


def test_two_editions_are_imported_per_price_year_dollar_and_their_diff_pairs_the_codes(
    client: TestClient, tokens: TokenKit, seeded: None
) -> None:
    writer = tokens.writer("epa-us")
    created = client.post("/v1/datasets", json={**DATASET, "slug": "sc-test"}, headers=writer)
    assert created.status_code == 201, created.text
    versions = f"/v1/datasets/{created.json()['id']}/versions"
    old, old_rows = small_csv(EPA_SC_V12, _selected)
    new, new_rows = small_csv(EPA_SC_V13, _selected)
    assert len(old_rows) == len(new_rows) == len(CODES) + 1

    response = _upload(client, writer, versions, "1.2.0", old)
    assert response.status_code == 201, response.text
    assert response.json()["file_sha256"] == hashlib.sha256(old).hexdigest()
    assert response.json()["row_count"] == len(CODES)
    _publish(client, tokens, writer, versions, "1.2.0")
    response = _upload(client, writer, versions, "1.3.0", new)
    assert response.status_code == 201, response.text
    _publish(client, tokens, writer, versions, "1.3.0")

    header = old_rows[0]
    (refinery,) = [r for r in old_rows[1:] if r[0] == "324110"]
    factor = client.get("/v1/factors/epa-us/sc-test/naics-324110?version=1.2.0").json()
    assert factor["co2e"] == float(refinery[header.index(WITH_MARGINS)])
    assert factor["unit"] == "USD_2021"
    assert factor["gwp_set"] == "AR4"
    assert factor["reference_year"] == 2019  # "based on GHG data representing 2019"
    assert factor["region"] == "US"
    assert factor["boundary"] == "cradle-to-gate"
    assert (factor["product_code_scheme"], factor["product_code"]) == ("NAICS2017", "324110")
    assert factor["category"] == f"naics-2017/32/324/3241/32411/324110 {refinery[1]}"
    assert f"without margins (SEF) {refinery[4]}, margins (MEF) {refinery[5]}" in factor["notes"]

    (refinery_2022,) = [r for r in new_rows[1:] if r[0] == "324110"]
    latest = client.get("/v1/factors/epa-us/sc-test/naics-324110").json()
    assert latest["co2e"] == float(refinery_2022[new_rows[0].index(WITH_MARGINS)])
    assert (latest["unit"], latest["gwp_set"]) == ("USD_2022", "AR5")
    # v1.3.0's files do not say which year its GHG data represent: the price year, said so.
    assert latest["reference_year"] == 2022
    assert "price year" in latest["notes"]

    diff = client.get("/v1/datasets/epa-us/sc-test/versions/1.3.0/diff?from=1.2.0").json()
    assert diff["summary"]["added"] == diff["summary"]["removed"] == 0
    assert {c["factor_code"] for c in diff["changed"]} == {f"naics-{code}" for code in CODES}


@pytest.mark.dialect_neutral
def test_a_dollar_of_one_price_year_is_never_converted_into_another() -> None:
    from app.reference.units import UnitError, conversion_multiplier, parse_declared_unit

    assert parse_declared_unit("USD_2022").dimension == "money (USD, 2022 prices)"
    with pytest.raises(UnitError) as refused:
        conversion_multiplier("USD_2021", "USD_2022")
    assert refused.value.code == "price_year_conversion"
    assert "price-index" in refused.value.detail


@pytest.mark.dialect_neutral
def test_every_commodity_of_both_editions_is_read_with_the_same_codes() -> None:
    importer = IMPORTERS["epa-supply-chain"]
    codes = []
    for path in (EPA_SC_V12, EPA_SC_V13):
        rows = [r for r in importer.read(path.read_bytes()) if isinstance(r, ImportedRow)]
        lines = path.read_bytes().count(b"\n")
        assert len(rows) == lines - 1  # one factor per line after the header
        codes.append({r.values["factor_code"] for r in rows})
    assert codes[0] == codes[1]


def test_import_epa_supply_chain_from_the_command_line(
    client: TestClient, tokens: TokenKit, seeded: None, database_url: str, tmp_path: Path
) -> None:
    writer = tokens.writer("epa-us")
    created = client.post("/v1/datasets", json={**DATASET, "slug": "sc-cli"}, headers=writer)
    assert created.status_code == 201, created.text
    content, rows = small_csv(EPA_SC_V13, _selected)
    path = tmp_path / EPA_SC_V13.name
    path.write_bytes(content)
    result = run_efdb_in_process(
        "import",
        "epa-supply-chain",
        str(path),
        "--dataset",
        "epa-us/sc-cli",
        "--version",
        "1.3.0",
        env={"EFDB_DATABASE_URL": database_url},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert (printed["status"], printed["row_count"]) == ("draft", len(rows) - 1)
    assert printed["file_sha256"] == hashlib.sha256(content).hexdigest()


def _cell(rows: list[list[Any]], name: str, column: int, after: str = "Table 1") -> tuple[int, Any]:
    """(1-based row, value) of the first row named `name` with a number in `column`, after
    the `after` cell (the Natural Gas category row has none)."""
    start = next(i for i, r in enumerate(rows) if len(r) > 1 and r[1] == after)
    (number, row) = next(
        (n, r)
        for n, r in enumerate(rows[start:], start + 1)
        if r[2] == name and isinstance(r[column], float)
    )
    return number, row[column]


def test_the_epa_hub_tables_1_and_2_are_imported_per_gas_and_pair_across_editions(
    client: TestClient, tokens: TokenKit, seeded: None
) -> None:
    writer = tokens.writer("epa-us")
    created = client.post("/v1/datasets", json={**DATASET, "slug": "hub-test"}, headers=writer)
    assert created.status_code == 201, created.text
    versions = f"/v1/datasets/{created.json()['id']}/versions"
    editions = {"2023.0.0": small_hub(EPA_HUB_2023), "2024.0.0": small_hub(EPA_HUB_2024)}
    for version, (content, _) in editions.items():
        response = client.post(
            versions,
            headers=writer,
            data={"version": version, "source_format": "epa-hub"},
            files={"file": ("hub.xlsx", content, "application/octet-stream")},
        )
        assert response.status_code == 201, response.text
        assert response.json()["file_sha256"] == hashlib.sha256(content).hexdigest()
        _publish(client, tokens, writer, versions, version)

    rows = editions["2024.0.0"][1]
    gwp = {r[2]: r[3] for r in rows[:12] if len(r) > 3 and r[2] in ("CH4", "N2O")}
    row, co2 = _cell(rows, "Natural Gas", 4)
    _, ch4_g = _cell(rows, "Natural Gas", 5)
    _, n2o_g = _cell(rows, "Natural Gas", 6)
    gas = client.get("/v1/factors/epa-us/hub-test/table-1-natural-gas-per-mmbtu").json()
    assert (gas["co2"], gas["ch4"], gas["n2o"]) == (co2, ch4_g / 1000, n2o_g / 1000)
    assert (gas["gwp_set"], gas["unit"]) == ("AR5", "mmBtu")
    assert gas["co2e"] == pytest.approx(co2 + gwp["CH4"] * ch4_g / 1000 + gwp["N2O"] * n2o_g / 1000)
    assert gas["activity_id"] == "natural-gas-combustion-gross-cv"
    provenance = client.get(
        "/v1/factors/epa-us/hub-test/table-1-natural-gas-per-mmbtu/provenance"
    ).json()
    assert provenance["upload"]["row_number"] == row

    # Biomass: its CO2 is biogenic, apart from co2e.
    _, wood_co2 = _cell(rows, "Wood and Wood Residuals", 7)
    wood = client.get(
        "/v1/factors/epa-us/hub-test/table-1-wood-and-wood-residuals-per-short-ton"
    ).json()
    assert (wood["biogenic_co2"], wood["co2"], wood["unit"]) == (wood_co2, None, "short_ton")
    # Table 2: CO2 per US gallon.
    _, diesel = _cell(rows, "Diesel Fuel", 3, after="Table 2")
    mobile = client.get("/v1/factors/epa-us/hub-test/table-2-diesel-fuel-per-gallon").json()
    assert (mobile["co2"], mobile["co2e"], mobile["unit"]) == (diesel, diesel, "gal")

    # 2023 names the coal "Anthracite Coal", 2024 "Anthracite": one code, so the diff pairs
    # them; the GWP set changed (AR4 → AR5), so co2e of every fuel with CH4 or N2O changed.
    old = client.get(
        "/v1/factors/epa-us/hub-test/table-1-anthracite-per-short-ton?version=2023.0.0"
    ).json()
    assert old["gwp_set"] == "AR4"
    diff = client.get("/v1/datasets/epa-us/hub-test/versions/2024.0.0/diff?from=2023.0.0").json()
    assert diff["summary"]["added"] == diff["summary"]["removed"] == 0
    assert "table-1-anthracite-per-short-ton" in {c["factor_code"] for c in diff["changed"]}


@pytest.mark.dialect_neutral
def test_ton_is_refused_as_ambiguous_and_short_ton_is_the_us_ton() -> None:
    from app.reference.units import (
        UnitError,
        conversion_multiplier,
        parse_amount_unit,
        parse_declared_unit,
    )

    for read in (parse_declared_unit, parse_amount_unit):
        with pytest.raises(UnitError) as refused:
            read("ton")
        assert refused.value.code == "ambiguous_unit"
    assert parse_declared_unit("short_ton").canonical == "short_ton"
    assert parse_declared_unit("t").canonical == "t"
    assert conversion_multiplier("short_ton", "kg") == pytest.approx(907.18474)
    assert parse_declared_unit("gallon").canonical == "gal"
    with pytest.raises(UnitError):
        conversion_multiplier("scf", "m3")  # a standard cubic foot is not a geometric one


def test_import_epa_hub_from_the_command_line(
    client: TestClient, tokens: TokenKit, seeded: None, database_url: str, tmp_path: Path
) -> None:
    writer = tokens.writer("epa-us")
    created = client.post("/v1/datasets", json={**DATASET, "slug": "hub-cli"}, headers=writer)
    assert created.status_code == 201, created.text
    content, _ = small_hub(EPA_HUB_2023)
    path = tmp_path / EPA_HUB_2023.name
    path.write_bytes(content)
    result = run_efdb_in_process(
        *("import", "epa-hub", str(path), "--dataset", "epa-us/hub-cli", "--version", "2023.0.0"),
        env={"EFDB_DATABASE_URL": database_url},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    expected = IMPORTERS["epa-hub"].read(content)
    assert printed["row_count"] == sum(1 for item in expected if isinstance(item, ImportedRow))
    assert printed["file_sha256"] == hashlib.sha256(content).hexdigest()
