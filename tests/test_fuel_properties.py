"""DESNZ fuel properties (sheet 'Fuel properties' of the 2025 full set): densities and gross and
net calorific values as cited conversion properties, so that litres of a fuel are estimated
against its per-kWh or per-tonne factor, and a kWh is never taken on the other CV basis.

The workbook is in the provenance register (not shipped in seed_data/): the test comparing the
rows with its cells reads it from EFDB_SOURCE_REGISTER (default /work/shared/data/sources) and
is skipped where it is absent."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from python_calamine import CalamineWorkbook
from sqlalchemy import Engine

from app.core.db import make_sessionmaker
from app.importers.desnz_properties import rewrite
from app.publishing.seed import load_seed
from tests.importer_files import DESNZ_2025, DESNZ_DIR, level, small_desnz

SEED = Path(__file__).resolve().parents[1] / "seed_data"
PROPERTIES = SEED / "reference" / "conversion_properties.csv"
REGISTER = Path(os.environ.get("EFDB_SOURCE_REGISTER", "/work/shared/data/sources"))
FULL_SET_2025 = REGISTER / "uk_desnz" / "ghg-conversion-factors-2025-full-set.xlsx"
needs_register = pytest.mark.skipif(
    not FULL_SET_2025.exists(),
    reason=f"the provenance register's DESNZ 2025 full set is not at {FULL_SET_2025}",
)
COLUMN = {"D": 3, "E": 4, "F": 5}
DIESEL = "desnz-uk-fuels-liquid-fuels-diesel-average-biofuel-blend"


def _desnz_rows() -> list[dict[str, str]]:
    with PROPERTIES.open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row["code"].startswith("desnz-")]


@needs_register
def test_each_property_is_its_cell_of_the_fuel_properties_sheet() -> None:
    sheet = (
        CalamineWorkbook.from_path(str(FULL_SET_2025))
        .get_sheet_by_name("Fuel properties")
        .to_python(skip_empty_area=False)
    )
    rows = _desnz_rows()
    assert len(rows) == 73  # 26 fuels: net and gross CV each, and 21 densities
    for row in rows:
        # "sheet 'Fuel properties', row 25 'Diesel (average biofuel blend)', column F …"
        number = int(row["locator"].split(", row ")[1].split(" ")[0])
        letter = row["locator"].split(", column ")[1][0]
        cells = sheet[number - 1]
        assert str(cells[1]).strip() in row["locator"]
        assert float(row["value"]) == cells[COLUMN[letter]], row["code"]
        assert cells[2] == 2025.0
        assert (sheet[12][COLUMN[letter]], sheet[13][COLUMN[letter]]) == {
            "D": ("Net CV", "GJ/tonne"),
            "E": ("Gross CV", "GJ/tonne"),
            "F": ("Density", "kg/m3"),
        }[letter]
    # And no number was typed: the rows are what the reader makes of the sheet.
    assert rewrite(PROPERTIES, FULL_SET_2025, DESNZ_2025) == PROPERTIES.read_text(encoding="utf-8")


def test_a_calorific_value_converts_only_on_its_own_basis() -> None:
    rows = {row["code"]: row for row in _desnz_rows()}
    gross = rows["desnz-2025/gross-cv/diesel-average-biofuel-blend"]
    net = rows["desnz-2025/net-cv/diesel-average-biofuel-blend"]
    density = rows["desnz-2025/density/diesel-average-biofuel-blend"]
    assert gross["activity_ids"].split() == [f"{DIESEL}-gross-cv"]
    assert net["activity_ids"].split() == [f"{DIESEL}-net-cv"]
    assert set(density["activity_ids"].split()) == {
        DIESEL,
        f"{DIESEL}-gross-cv",
        f"{DIESEL}-net-cv",
    }
    for row in rows.values():
        ids = row["activity_ids"].split()
        if row["quantity"] == "gross_calorific_value":
            assert all(i.endswith("gross-cv") for i in ids), row["code"]
        if row["quantity"] == "net_calorific_value":
            assert all(i.endswith("net-cv") for i in ids), row["code"]


@pytest.fixture
def diesel(seeded: None, db: Engine, tmp_path: Path) -> None:
    """The core seed, and DESNZ 2025's diesel (average biofuel blend) factors: the real rows of
    the shipped flat file, in a small workbook, loaded by the seed's importer path."""
    seed = tmp_path / "seed"
    shutil.copytree(SEED / "reference", seed / "reference")
    publishers = json.loads((SEED / "publishers.json").read_text(encoding="utf-8"))
    (seed / "publishers.json").write_text(
        json.dumps([p for p in publishers if p["slug"] == "desnz-uk"]), encoding="utf-8"
    )
    content, _ = small_desnz(
        DESNZ_2025,
        lambda r: level(r, "Fuels") and r[4] == "Diesel (average biofuel blend)",
    )
    folder = seed / "desnz-uk" / "diesel-2025"
    folder.mkdir(parents=True)
    (folder / "diesel.xlsx").write_bytes(content)
    spec = json.loads((DESNZ_DIR / "dataset.json").read_text(encoding="utf-8"))
    spec.pop("scope", None)
    spec.update(
        slug="diesel-2025",
        versions=[{"version": "2025.1.0", "file": "diesel.xlsx", "source_format": "desnz-flat"}],
    )
    (folder / "dataset.json").write_text(json.dumps(spec), encoding="utf-8")
    with make_sessionmaker(db).begin() as session:
        assert load_seed(session, seed).factors == 4  # per litre, tonne, kWh gross, kWh net


def _estimate(client: TestClient, activity_id: str, amount: float, unit: str) -> Any:
    return client.post(
        "/v1/estimate",
        json={
            "activity_id": activity_id,
            "region": "GB",
            "year": 2025,
            "amount": amount,
            "unit": unit,
        },
    )


def test_litres_of_diesel_against_its_per_kwh_and_per_tonne_factors(
    client: TestClient, diesel: None
) -> None:
    props = {row["code"]: float(row["value"]) for row in _desnz_rows()}
    density = props["desnz-2025/density/diesel-average-biofuel-blend"]  # kg/m3
    for basis in ("gross-cv", "net-cv"):
        response = _estimate(client, f"{DIESEL}-{basis}", 1000, "L")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["factor"]["unit"] == "kWh"
        used = [p["code"] for p in body["conversion"]["properties"]]
        assert sorted(used) == sorted(
            [
                "desnz-2025/density/diesel-average-biofuel-blend",
                f"desnz-2025/{basis}/diesel-average-biofuel-blend",
            ]
        )
        # 1000 L = 1 m3 → density kg → × CV (GJ/t) → kWh (1 GJ = 277.7… kWh).
        kwh = density / 1000 * props[f"desnz-2025/{basis}/diesel-average-biofuel-blend"] / 0.0036
        assert body["co2e_kg"] == pytest.approx(kwh * body["factor"]["co2e"], rel=1e-9)
    litres = _estimate(client, DIESEL, 1000, "L").json()
    assert litres["factor"]["unit"] == "L"  # the per-litre factor answers, without a property
    assert litres["conversion"]["properties"] == []
    per_tonne = client.post(
        "/v1/estimate",
        json={
            "factor": f"desnz-uk/diesel-2025/{_code(client, DIESEL, 't')}",
            "amount": 1000,
            "unit": "L",
        },
    )
    assert per_tonne.status_code == 200, per_tonne.text
    assert [p["code"] for p in per_tonne.json()["conversion"]["properties"]] == [
        "desnz-2025/density/diesel-average-biofuel-blend"
    ]
    # kWh against the per-litre/per-tonne activity: which CV basis is not said, so no answer.
    refused = _estimate(client, DIESEL, 1000, "kWh")
    assert refused.status_code == 422, refused.text
    assert "incompatible_unit" in refused.text


def _code(client: TestClient, activity_id: str, unit: str) -> str:
    items = client.get(
        "/v1/factors", params={"activity_id": activity_id, "dataset": "desnz-uk/diesel-2025"}
    ).json()["items"]
    [code] = [f["factor_code"] for f in items if f["unit"] == unit]
    return str(code)


def test_cubic_metres_of_uk_natural_gas_against_the_gross_cv_kwh_factor(
    client: TestClient, seeded: None
) -> None:
    """The curated DESNZ 2024 natural gas per kWh (Gross CV), from metered m3."""
    props = {row["code"]: float(row["value"]) for row in _desnz_rows()}
    response = client.post(
        "/v1/estimate",
        json={
            "factor": "desnz-uk/uk-ghg-conversion-factors-2024/natural-gas-kwh-gross-cv",
            "amount": 1000,
            "unit": "m3",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    kwh = (
        1000
        * props["desnz-2025/density/natural-gas"]
        / 1000
        * props["desnz-2025/gross-cv/natural-gas"]
        / 0.0036
    )
    assert body["co2e_kg"] == pytest.approx(kwh * 0.1829, rel=1e-9)
