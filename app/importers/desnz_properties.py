"""DESNZ fuel properties (density, gross and net calorific value) as cited conversion properties.

The UK Government conversion factors' full and condensed sets have a sheet 'Fuel properties':
per fuel, net and gross CV in GJ/tonne (columns D, E) and density in kg/m3 (column F), then the
same figures in other units (litres/tonne, kWh/kg, kWh/litre: derived and rounded, not read).
This module turns those cells into rows of `seed_data/reference/conversion_properties.csv`, so
that an amount in litres or tonnes of a fuel can be estimated against its per-kWh factor:

- the density belongs to each of the fuel's activities (per litre or tonne, per kWh gross CV,
  per kWh net CV): it converts volume and mass only;
- the gross CV belongs only to the activity whose factors are per kWh (Gross CV), and the net CV
  only to the one per kWh (Net CV), so an amount is never turned into energy on the other basis
  (the per-litre/per-tonne activity gets neither: "kWh" alone does not say which basis).

A fuel's activities are those the `desnz-flat` importer gives the same fuel (sheet 'Factors by
Category', Level 1 'Fuels', Level 3 equal to the property sheet's name ignoring case) in the
flat file of the same edition. Fuels of the sheet without such factors are left out.

    python -m app.importers.desnz_properties FULL_SET.xlsx FLAT_FILE.xlsx CONVERSION_PROPERTIES.csv

rewrites the DESNZ rows of the CSV (codes `desnz-YYYY/…`) and keeps every other row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.importers.base import ImportedRow, read_sheet, slug
from app.importers.desnz import DesnzFlatImporter

SHEET = "Fuel properties"
HEADER = ["", "", "Year", "Net CV", "Gross CV", "Density"]
UNITS = ["", "", "", "GJ/tonne", "GJ/tonne", "kg/m3"]
COLUMNS = {"net_calorific_value": 3, "gross_calorific_value": 4, "density": 5}
LETTERS = {3: "D", 4: "E", 5: "F"}
UNIT_OF = {"net_calorific_value": "GJ/t", "gross_calorific_value": "GJ/t", "density": "kg/m3"}
QUANTITY_EN = {
    "net_calorific_value": "net calorific value",
    "gross_calorific_value": "gross calorific value",
    "density": "density",
}
QUANTITY_ZH = {
    "net_calorific_value": "低位发热量",
    "gross_calorific_value": "高位发热量",
    "density": "密度",
}
CODE_PART = {"net_calorific_value": "net-cv", "gross_calorific_value": "gross-cv"}
# efdb's Chinese names of the fuels (translations, not a publisher's wording).
FUEL_ZH = {
    "aviation spirit": "航空汽油",
    "aviation turbine fuel": "航空涡轮燃料",
    "burning oil": "燃烧用油（煤油）",
    "butane": "丁烷",
    "coal (domestic)": "煤（家用）",
    "coal (electricity generation)": "煤（发电）",
    "coal (electricity generation - home produced coal only)": "煤（发电，仅英国本土产煤）",
    "coal (industrial)": "煤（工业）",
    "coking coal": "炼焦煤",
    "diesel (100% mineral diesel)": "柴油（100%矿物柴油）",
    "diesel (average biofuel blend)": "柴油（平均生物燃料掺混）",
    "fuel oil": "燃料油",
    "gas oil": "瓦斯油",
    "lubricants": "润滑油",
    "lpg": "液化石油气",
    "naphtha": "石脑油",
    "natural gas": "天然气",
    "natural gas (100% mineral blend)": "天然气（100%矿物）",
    "other petroleum gas": "其他石油气",
    "petroleum coke": "石油焦",
    "petrol (100% mineral petrol)": "汽油（100%矿物汽油）",
    "petrol (average biofuel blend)": "汽油（平均生物燃料掺混）",
    "propane": "丙烷",
    "waste oils": "废油",
    "cng": "压缩天然气",
    "lng": "液化天然气",
}


class FuelPropertiesError(ValueError):
    pass


@dataclass(frozen=True)
class FuelActivities:
    base: tuple[str, ...]  # per litre, tonne or cubic metre
    gross: tuple[str, ...]  # per kWh (Gross CV)
    net: tuple[str, ...]  # per kWh (Net CV)


def fuel_activities(flat_file: bytes) -> dict[str, FuelActivities]:
    """The activities of each fuel of the flat file's Level 1 'Fuels', by its name casefolded."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for item in DesnzFlatImporter().read(flat_file):
        if not isinstance(item, ImportedRow):
            continue
        parts = str(item.values["category"]).split("/")
        if parts[:2] != ["desnz", "Fuels"] or len(parts) < 4:
            continue
        activity = str(item.values["activity_id"])
        kind = (
            "gross"
            if activity.endswith("-gross-cv")
            else "net"
            if activity.endswith("-net-cv")
            else "base"
        )
        found[parts[3].casefold()][kind].add(activity)
    return {
        fuel: FuelActivities(
            base=tuple(sorted(kinds["base"])),
            gross=tuple(sorted(kinds["gross"])),
            net=tuple(sorted(kinds["net"])),
        )
        for fuel, kinds in found.items()
    }


def _number(cell: Any) -> float | None:
    if cell in ("", None):
        return None
    if isinstance(cell, bool) or not isinstance(cell, int | float):
        raise FuelPropertiesError(f"'{cell}' is not a number")
    return float(cell)


def property_rows(full_set: bytes, flat_file: bytes, *, file_name: str) -> list[dict[str, str]]:
    """The conversion-property rows of the sheet's fuels that have factors in the flat file."""
    rows = read_sheet(full_set, SHEET)
    activities = fuel_activities(flat_file)
    sha256 = hashlib.sha256(full_set).hexdigest()
    year: int | None = None
    out: list[dict[str, str]] = []
    header_seen = False
    for number, row in enumerate(rows, start=1):
        cells = [*row, *[""] * 11][:11]
        if [str(c).strip() for c in cells[:6]] == HEADER:
            units = [str(c).strip() for c in rows[number][:6]]  # the row below: the units
            if units != UNITS:
                raise FuelPropertiesError(f"row {number + 1}: units {units}, not {UNITS}")
            header_seen = True
            continue
        name = str(cells[1]).strip()
        fuel = activities.get(name.casefold())
        if not header_seen or not name or fuel is None:
            continue
        row_year = _number(cells[2])
        if row_year is None:
            raise FuelPropertiesError(f"row {number}: no year")
        year = year or int(row_year)
        if int(row_year) != year:
            raise FuelPropertiesError(f"row {number}: year {row_year}, not {year}")
        for quantity, column in COLUMNS.items():
            value = _number(cells[column])
            if value is None or value == 0:
                continue  # DESNZ gives no density for solid fuels
            attached = (
                (*fuel.base, *fuel.gross, *fuel.net)
                if quantity == "density"
                else fuel.gross
                if quantity == "gross_calorific_value"
                else fuel.net
            )
            if not attached:
                continue
            material = slug(name)
            code_part = CODE_PART.get(quantity, quantity)
            out.append(
                {
                    "code": f"desnz-{year}/{code_part}/{material}",
                    "material": material,
                    "name_en": f"{name}, {QUANTITY_EN[quantity]} (UK, DESNZ {year})",
                    "name_zh": f"{FUEL_ZH[name.casefold()]}{QUANTITY_ZH[quantity]}"
                    f"（英国 DESNZ {year}）",
                    "quantity": quantity,
                    "value": repr(value),
                    "unit": UNIT_OF[quantity],
                    "low": "",
                    "high": "",
                    "activity_ids": " ".join(attached),
                    "source": f"DESNZ, Greenhouse gas reporting: conversion factors {year}, "
                    f"full set ({file_name}, sha256 {sha256}), sheet '{SHEET}'; Open Government "
                    "Licence v3.0",
                    "locator": f"sheet '{SHEET}', row {number} '{name}', column "
                    f"{LETTERS[column]} '{HEADER[column]}' ({UNITS[column]})",
                }
            )
    if not out:
        raise FuelPropertiesError(f"no fuel of sheet '{SHEET}' has factors in the flat file")
    return out


def rewrite(csv_path: Path, full_set: Path, flat_file: Path) -> str:
    """`csv_path`'s text with its DESNZ rows replaced by those `full_set` gives."""
    with csv_path.open(newline="", encoding="utf-8") as handle:
        existing = list(csv.DictReader(handle))
    kept = [row for row in existing if not row["code"].startswith("desnz-")]
    rows = property_rows(full_set.read_bytes(), flat_file.read_bytes(), file_name=full_set.name)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(existing[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows([*kept, *rows])
    return buffer.getvalue()


if __name__ == "__main__":  # pragma: no cover - a tool for whoever rebuilds the reference CSV
    target = Path(sys.argv[3])
    target.write_text(rewrite(target, Path(sys.argv[1]), Path(sys.argv[2])), encoding="utf-8")
