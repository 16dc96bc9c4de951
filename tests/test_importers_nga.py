"""The Australian National Greenhouse Accounts Factors workbooks (DCCEEW) read by the `nga`
importer. Their licence is not stated in the workbooks, so they are not shipped in seed_data/:
these tests read the publisher's files from the provenance register (EFDB_NGA_SOURCES,
default /work/shared/data/sources/australia_nga) and are skipped where it is absent. The
uploaded workbooks are small ones made from the real sheets' rows; every expectation is read
from those rows."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from python_calamine import CalamineWorkbook

from app.importers import IMPORTERS, ImportedRow
from tests.auth_fixtures import TokenKit
from tests.conftest import run_efdb_in_process

SOURCES = Path(os.environ.get("EFDB_NGA_SOURCES", "/work/shared/data/sources/australia_nga"))
pytestmark = pytest.mark.skipif(
    not SOURCES.is_dir(), reason=f"the NGA workbooks are not at {SOURCES}"
)


def _book(year: int) -> Path:
    return SOURCES / f"national-greenhouse-account-factors-{year}.xlsx"


def _sheet(year: int, name: str) -> list[list[Any]]:
    book = CalamineWorkbook.from_path(str(_book(year)))
    return book.get_sheet_by_name(name).to_python(skip_empty_area=False)


def small_nga(year: int, sheets: dict[str, int]) -> tuple[bytes, dict[str, list[list[Any]]]]:
    """A workbook with the real Introduction sheet and the first `n` real rows of each named
    sheet: its bytes, and the rows as written (row n of a sheet is [n-1])."""
    written = {"Introduction": _sheet(year, "Introduction")}
    written.update({name: _sheet(year, name)[:n] for name, n in sheets.items()})
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for name, rows in written.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append([None if cell == "" else cell for cell in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue(), written


DATASET = {
    "title_en": "Australian NGA factors (test copy)",
    "description": "NGA rows imported in a test.",
    "access": "public",
    "license_id": "LicenseRef-unconfirmed",
    "attribution": "Commonwealth of Australia (DCCEEW).",
    "redistribution": False,
    "commercial_use": False,
}
# 2024 and 2025 number the tables alike: Table 1 electricity, Table 4 solid fuels, Table 5
# gaseous fuels. 14 rows: every state and the National row; 8 rows: the first four coals.
SHEETS = {"Table 1": 14, "Table 4": 8, "Table 5": 7}


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


def _row(rows: list[list[Any]], name: str) -> tuple[int, list[Any]]:
    return next((n, r) for n, r in enumerate(rows, 1) if str(r[0]).strip() == name)


def test_two_editions_are_imported_by_state_and_per_gas_and_their_diff_pairs_the_codes(
    client: TestClient, tokens: TokenKit, seeded: None
) -> None:
    writer = tokens.writer("epa-us")
    created = client.post("/v1/datasets", json={**DATASET, "slug": "nga-test"}, headers=writer)
    assert created.status_code == 201, created.text
    versions = f"/v1/datasets/{created.json()['id']}/versions"
    editions = {"2024.0.0": small_nga(2024, SHEETS), "2025.0.0": small_nga(2025, SHEETS)}
    for version, (content, _) in editions.items():
        response = client.post(
            versions,
            headers=writer,
            data={"version": version, "source_format": "nga"},
            files={"file": ("nga.xlsx", content, "application/octet-stream")},
        )
        assert response.status_code == 201, response.text
        assert response.json()["file_sha256"] == hashlib.sha256(content).hexdigest()
        _publish(client, tokens, writer, versions, version)

    rows = editions["2025.0.0"][1]
    number, vic = _row(rows["Table 1"], "Victoria")
    factor = client.get("/v1/factors/epa-us/nga-test/scope2-electricity-vic").json()
    assert (factor["co2e"], factor["unit"], factor["region"]) == (vic[1], "kWh", "AU-VIC")
    assert (factor["reference_year"], factor["activity_id"]) == (2025, "electricity-grid-mix")
    provenance = client.get("/v1/factors/epa-us/nga-test/scope2-electricity-vic/provenance")
    assert provenance.json()["upload"]["row_number"] == number
    _, nsw = _row(rows["Table 1"], "New South Wales and Australian Capital Territory")
    nsw_factor = client.get("/v1/factors/epa-us/nga-test/scope2-electricity-nsw-act").json()
    assert (nsw_factor["co2e"], nsw_factor["region"]) == (nsw[1], "AU-NSW")
    # "Western Australia -" names its grid in the next row.
    number, wa = _row(rows["Table 1"], "Western Australia -")
    assert "SWIS" in rows["Table 1"][number][0]
    swis = client.get("/v1/factors/epa-us/nga-test/scope2-electricity-wa-swis").json()
    assert (swis["co2e"], swis["region"]) == (wa[1], "AU-WA")
    _, national = _row(rows["Table 1"], "National")
    au = client.get("/v1/factors/epa-us/nga-test/scope2-electricity-national").json()
    assert (au["co2e"], au["region"]) == (national[1], "AU")

    # Solid fuels: kg CO2e per GJ per gas; CO2 is kg CO2, CH4 and N2O stay CO2e in the notes.
    header = [str(c).strip() for c in rows["Table 4"][3]]
    _, coal = _row(rows["Table 4"], "Bituminous coal")
    fuel = client.get("/v1/factors/epa-us/nga-test/scope1-solid-bituminous-coal").json()
    assert fuel["co2"] == coal[header.index("CO2")]
    assert fuel["co2e"] == coal[header.index("Combined gases")]
    assert (fuel["ch4"], fuel["n2o"], fuel["unit"], fuel["gwp_set"]) == (None, None, "GJ", "AR5")
    assert f"CH4 {coal[header.index('CH4')]:g}" in fuel["notes"]
    _, gas = _row(rows["Table 5"], "Natural gas distributed in a pipeline")
    pipeline = client.get(
        "/v1/factors/epa-us/nga-test/scope1-gaseous-natural-gas-distributed-in-a-pipeline"
    ).json()
    assert (pipeline["co2"], pipeline["co2e"]) == (gas[2], gas[5])

    diff = client.get("/v1/datasets/epa-us/nga-test/versions/2025.0.0/diff?from=2024.0.0").json()
    assert diff["summary"]["added"] == diff["summary"]["removed"] == 0
    changed = {c["factor_code"] for c in diff["changed"]}
    old_rows = editions["2024.0.0"][1]["Table 1"]
    expected = {
        name
        for name, old, new in (
            ("scope2-electricity-vic", _row(old_rows, "Victoria")[1][1], vic[1]),
            ("scope2-electricity-national", _row(old_rows, "National")[1][1], national[1]),
        )
        if old != new
    }
    assert expected  # Victoria and the national factor changed between the editions
    assert expected <= changed


@pytest.mark.dialect_neutral
def test_every_edition_is_read_with_the_values_of_its_own_cells() -> None:
    importer = IMPORTERS["nga"]
    codes = {}
    for year in range(2021, 2026):
        book = CalamineWorkbook.from_path(str(_book(year)))
        rows = [r for r in importer.read(_book(year).read_bytes()) if isinstance(r, ImportedRow)]
        assert {r.values["reference_year"] for r in rows} == {year}
        for row in rows:
            assert row.sheet is not None
            sheet = book.get_sheet_by_name(row.sheet).to_python(skip_empty_area=False)
            for name, cell in row.cells.items():
                if name == "region":
                    continue  # the region's name cell, mapped to an ISO 3166-2 code
                assert cell.column is not None
                column = ord(cell.column) - 65  # A..G
                assert row.values[name] == sheet[cell.row - 1][column], (year, row.values)
        codes[year] = {r.values["factor_code"] for r in rows}
        assert len(codes[year]) == len(rows)
        assert sum(1 for r in rows if r.values["unit"] == "kWh") == 9
    assert codes[2024] <= codes[2025]
    # The fuels NGA renamed in 2022 keep their codes; only 2021's split row and its NT row
    # (from 2022 only DKIS) have no 2022 counterpart.
    unpaired = sorted(codes[2021] - codes[2022])
    assert len(unpaired) == 2
    assert unpaired[0].startswith("scope1-solid-industrial-materials-and-tyres-")
    assert unpaired[1] == "scope2-electricity-nt"
    # 2021 has no combined column: co2e is the sum of the three per-gas cells.
    (brown,) = [
        r
        for r in importer.read(_book(2021).read_bytes())
        if isinstance(r, ImportedRow)
        and r.values["factor_code"] == "scope1-solid-brown-coal-lignite"
    ]
    coal = _sheet(2021, "Table 1")[brown.row - 1]
    assert brown.values["co2e"] == pytest.approx(coal[2] + coal[3] + coal[4])
    assert "sum of the three per-gas values" in brown.values["notes"]


def test_import_nga_from_the_command_line(
    client: TestClient, tokens: TokenKit, seeded: None, database_url: str, tmp_path: Path
) -> None:
    writer = tokens.writer("epa-us")
    created = client.post("/v1/datasets", json={**DATASET, "slug": "nga-cli"}, headers=writer)
    assert created.status_code == 201, created.text
    content, _ = small_nga(2025, SHEETS)
    path = tmp_path / _book(2025).name
    path.write_bytes(content)
    result = run_efdb_in_process(
        *("import", "nga", str(path), "--dataset", "epa-us/nga-cli", "--version", "2025.0.0"),
        env={"EFDB_DATABASE_URL": database_url},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    expected = IMPORTERS["nga"].read(content)
    assert printed["row_count"] == sum(1 for item in expected if isinstance(item, ImportedRow))
    assert printed["file_sha256"] == hashlib.sha256(content).hexdigest()
