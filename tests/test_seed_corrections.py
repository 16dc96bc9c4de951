"""Releases that correct and extend the curated seed datasets, checked against the publishers'
text and cells: IPCC 2006 Vol. 2 Tables 2.3–2.5 (`ipcc-tfi/…` 1.1.0) and the DESNZ 2024 rows'
gwp_set and net-CV co2 (`desnz-uk/uk-ghg-conversion-factors-2024` 1.0.1).

Those releases say `"scope": "full"` (the core seed, which the rest of the suite pins, stops
before them), so the fixture here loads them on top of the core seed, as `efdb seed` does.
Comparisons with files of the provenance register (not shipped in seed_data/) read them from
EFDB_SOURCE_REGISTER (default /work/shared/data/sources) and are skipped where it is absent."""

from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from python_calamine import CalamineWorkbook
from sqlalchemy import Engine

from app.core.db import make_sessionmaker
from app.importers.ipcc_2006 import write_release
from app.publishing.seed import load_seed

SEED = Path(__file__).resolve().parents[1] / "seed_data"
IPCC = SEED / "ipcc-tfi" / "ipcc-2006-stationary-combustion"
DESNZ = SEED / "desnz-uk" / "uk-ghg-conversion-factors-2024"
DESNZ_FLAT_2024 = (
    SEED
    / "desnz-uk"
    / "ghg-conversion-factors"
    / "ghg-conversion-factors-2024-flat-format-v1_1.xlsx"
)
REGISTER = Path(os.environ.get("EFDB_SOURCE_REGISTER", "/work/shared/data/sources"))
IPCC_TEXT = REGISTER / "ipcc_2006" / "ch2_tables_2.2-2.5.txt"
DESNZ_CONDENSED_2024 = REGISTER / "uk_desnz" / "ghg-conversion-factors-2024-condensed-set-v1_1.xlsx"
needs_register = pytest.mark.skipif(
    not IPCC_TEXT.exists() or not DESNZ_CONDENSED_2024.exists(),
    reason=f"the provenance register's files are not at {REGISTER} (EFDB_SOURCE_REGISTER)",
)
IPCC_NAME = "ipcc-tfi/ipcc-2006-stationary-combustion"
DESNZ_NAME = "desnz-uk/uk-ghg-conversion-factors-2024"


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def corrected(seeded: None, db: Engine, tmp_path: Path) -> None:
    """The core seed, then the curated datasets' later releases, loaded by `load_seed`."""
    seed = tmp_path / "seed"
    shutil.copytree(SEED / "reference", seed / "reference")
    shutil.copy(SEED / "publishers.json", seed / "publishers.json")
    for folder in (IPCC, DESNZ):
        shutil.copytree(folder, seed / folder.parent.name / folder.name)
    with make_sessionmaker(db).begin() as session:
        result = load_seed(session, seed, scope="full")
    assert (result.versions, result.factors) == (2, 44 + 3)


def _get(client: TestClient, url: str, **params: Any) -> Any:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- IPCC 2006 Tables 2.2–2.5 ---------------------------------------------------------------


@needs_register
def test_the_release_is_the_tables_text_read_again() -> None:
    """1.1.0.csv is what the reader makes of the tables' text: no number was typed."""
    assert write_release(IPCC_TEXT, IPCC / "1.0.0.csv") == (IPCC / "1.1.0.csv").read_text(
        encoding="utf-8"
    )


def _printed(value: str) -> str:
    """A pattern of a number as the PDF prints it: 94600 → "94 600", 1.5 → "1. 5" or "1.5"."""
    whole, _, fraction = value.partition(".")
    if len(whole) > 3:
        whole = f"{whole[:-3]} {whole[-3:]}"
    text = re.escape(whole) + (rf"\.\s?{fraction}" if fraction else "")
    return text


@needs_register
def test_every_seeded_number_is_printed_in_its_table_on_its_page() -> None:
    """Independent of the reader: each row's nine numbers (its gases and, from its notes, their
    ranges) appear in that order on the fuel's line of the page its locator names."""
    text = IPCC_TEXT.read_text(encoding="utf-8")
    pages = dict(re.findall(r"=== PDF page (\d+) ===\n(.*?)(?==== PDF page|\Z)", text, re.S))
    rows = _csv(IPCC / "1.1.0.csv")
    assert len(rows) == 44
    for row in rows:
        table, page = _groups(r"Table (2\.\d), p\. 2\.(\d+)$", row["source_locator"])
        assert f"TABLE {table}" in pages[page]
        (fuel,) = _groups(rf"in Table {table}: '([^']+)'", row["notes"])
        ranges = _groups(
            r"95% range (\S+)-(\S+) kg/TJ; CH4 default \S+ kg/TJ, range (\S+)-(\S+); "
            r"N2O default \S+ kg/TJ, range (\S+)-(\S+)\.",
            row["notes"],
        )
        numbers = [row["co2"], *ranges[0:2], row["ch4"], *ranges[2:4], row["n2o"], *ranges[4:6]]
        line = r"\s+(?:[rn]\s*)?".join(_printed(n) for n in numbers)
        printed = rf"^{re.escape(fuel)}\s+(?:[rn]\s*)?{line}\s*$"
        assert re.search(printed, pages[page], re.M), row["factor_code"]


def _groups(pattern: str, text: str) -> tuple[str, ...]:
    found = re.search(pattern, text)
    assert found is not None, (pattern, text)
    return found.groups()


def test_each_sector_table_is_a_factor_of_its_own(client: TestClient, corrected: None) -> None:
    diff = _get(client, f"/v1/datasets/{IPCC_NAME}/versions/1.1.0/diff", **{"from": "1.0.0"})
    assert (diff["summary"]["added"], diff["summary"]["removed"]) == (33, 0)
    # The 11 Table 2.2 rows change in their notes only (and 瓦斯油/柴油's name), not in value.
    assert diff["summary"]["changed"] == 11
    for change in diff["changed"]:
        assert {"co2e", "co2", "ch4", "n2o"}.isdisjoint(change["fields"]), change
    coal = {
        table: _get(client, f"/v1/factors/{IPCC_NAME}/anthracite{suffix}")
        for table, suffix in (
            ("2.2", ""),
            ("2.3", "-manufacturing-industries-and-construction"),
            ("2.4", "-commercial-institutional"),
            ("2.5", "-residential-agriculture-forestry-fishing"),
        )
    }
    # Table 2.2 1, 2.3 and 2.4 10, 2.5 300 kg CH4/TJ; CO2 98 300 and N2O 1.5 in every table.
    assert {t: f["ch4"] for t, f in coal.items()} == {"2.2": 1, "2.3": 10, "2.4": 10, "2.5": 300}
    assert {(f["co2"], f["n2o"]) for f in coal.values()} == {(98300, 1.5)}
    assert coal["2.5"]["co2e"] == 98300 + 28 * 300 + 265 * 1.5
    assert coal["2.5"]["category"] == (
        "energy/stationary-combustion/residential-agriculture-forestry-fishing"
    )
    assert coal["2.4"]["source_locator"] == "Vol. 2, Ch. 2, Table 2.4, p. 2.20"
    energy = coal["2.2"]["notes"]
    assert "CH4 and N2O" not in energy
    assert "Table 2.3 differs in CH4 (CH4 10 kg/TJ)" in energy


def test_a_household_burning_coal_gets_the_residential_methane(
    client: TestClient, corrected: None
) -> None:
    """An estimate in tonnes of a household's coal: its activity has the IPCC NCV (Table 1.2,
    25.8 TJ/Gg) and the Table 2.5 factor (CH4 300 kg/TJ), not the energy industries' 1."""
    response = client.post(
        "/v1/estimate",
        json={
            "activity_id": "other-bituminous-coal-stationary-combustion-"
            "residential-agriculture-forestry-fishing",
            "region": "CN",
            "year": 2024,
            "amount": 1000,
            "unit": "t",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["factor"]["ch4"] == 300
    assert body["gases_kg"]["ch4"] == pytest.approx(25.8 * 300)
    assert [p["code"] for p in body["conversion"]["properties"]] == ["ncv/other-bituminous-coal"]


# --- DESNZ 2024 curated rows ---------------------------------------------------------------


def _flat_cell(rows: list[list[Any]], uom: str, ghg: str) -> float:
    [value] = [
        row[9]
        for row in rows
        if row[1:5] == ["Scope 1", "Fuels", "Gaseous fuels", "Natural gas"]
        and (row[7], row[8]) == (uom, ghg)
    ]
    return float(value)


def test_the_desnz_rows_get_their_gwp_set_and_the_net_cv_co2(
    client: TestClient, corrected: None
) -> None:
    diff = _get(client, f"/v1/datasets/{DESNZ_NAME}/versions/1.0.1/diff", **{"from": "1.0.0"})
    assert diff["summary"] == {**diff["summary"], "added": 0, "removed": 0, "changed": 3}
    factors = {
        f["factor_code"]: f
        for f in _get(client, "/v1/factors", dataset=DESNZ_NAME, version="1.0.1")["items"]
    }
    assert {f["gwp_set"] for f in factors.values()} == {"AR5"}
    # The shipped 2024 flat file (the same edition as the condensed set the rows cite).
    sheet = CalamineWorkbook.from_path(str(DESNZ_FLAT_2024)).get_sheet_by_name(
        "Factors by Category"
    )
    rows = sheet.to_python(skip_empty_area=False)
    net = factors["natural-gas-kwh-net-cv"]
    assert net["co2"] == _flat_cell(rows, "kWh (Net CV)", "kg CO2e of CO2 per unit") == 0.20223
    assert net["co2e"] == _flat_cell(rows, "kWh (Net CV)", "kg CO2e")
    gross = factors["natural-gas-kwh-gross-cv"]
    assert gross["co2"] == _flat_cell(rows, "kWh (Gross CV)", "kg CO2e of CO2 per unit")
    # ch4 and n2o stay empty: DESNZ gives kg CO2e of each gas, never divided by a GWP.
    assert {(f["ch4"], f["n2o"]) for f in factors.values()} == {(None, None)}


@needs_register
def test_the_desnz_rows_are_the_condensed_sets_cells() -> None:
    """The cited sheet and row: 'Fuels' rows 41 (net CV) and 42 (gross CV), 'UK electricity'
    row 25, columns kg CO2e and kg CO2e of CO2 per unit."""
    book = CalamineWorkbook.from_path(str(DESNZ_CONDENSED_2024))
    fuels = book.get_sheet_by_name("Fuels").to_python(skip_empty_area=False)
    grid = book.get_sheet_by_name("UK electricity").to_python(skip_empty_area=False)
    cells = {
        "natural-gas-kwh-net-cv": (fuels[40][2], fuels[40][3], fuels[40][4]),
        "natural-gas-kwh-gross-cv": (fuels[41][2], fuels[41][3], fuels[41][4]),
        "uk-electricity-generated": (grid[24][2], grid[24][4], grid[24][5]),
    }
    assert fuels[38][1] == "Natural gas"
    for row in _csv(DESNZ / "1.0.1.csv"):
        unit, co2e, co2 = cells[row["factor_code"]]
        assert (float(row["co2e"]), float(row["co2"])) == (co2e, co2), row["factor_code"]
        assert row["unit"] == "kWh"
        assert str(unit).startswith("kWh")
        assert row["gwp_set"] == "AR5"
