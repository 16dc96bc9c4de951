"""UK DESNZ (formerly BEIS) "Greenhouse gas reporting: conversion factors", flat file format.

The mapping (README "Importers" says the same in prose):

- Sheet `Factors by Category`; its header row is the row that holds `UOM` (row 5 in 2022,
  row 6 from 2023 on, when an `ID` column was added in front). Columns read: `Scope`,
  `Level 1`…`Level 4`, `Column Text`, `UOM`, `GHG/Unit`, `GHG Conversion Factor YYYY`
  (YYYY is the edition and becomes `reference_year` and `source_year`).
- One factor is the rows that share Scope, Levels 1–4, Column Text and UOM; their `GHG/Unit`
  says what each value is: `kg CO2e` → `co2e`; `kg CO2e of CO2 [per unit]` → `co2` (kg CO2e
  of CO2 is kg of CO2); `kg CO2e of CH4` and `kg CO2e of N2O` are **kg CO2e of each gas**, not
  kg of gas, so they stay in `notes` as DESNZ gives them and `ch4`/`n2o` are left empty (they
  are never turned into kg of gas). `gwp_set` is AR5, the GWP100 set DESNZ states for its
  conversion factors. The factor's row is its `kg CO2e` row.
- `factor_code`: the words of Scope, Levels 1–4, Column Text and UOM as a slug, so that the
  same factor of two editions has the same code (Level 1 names DESNZ changed in 2023 are
  read under their newer name; a code over 128 characters ends in a hash of the whole key).
- `activity_id`: `desnz-uk-` and the slug of Levels 1–4 and Column Text, with
  `-gross-cv` or `-net-cv` for a kWh (Gross CV) or kWh (Net CV) factor (the unit library
  cannot tell them apart, the activity does); UK grid electricity and natural gas use the
  shared ids of the curated seed (`electricity-grid-mix`, `natural-gas-combustion-gross-cv`,
  `natural-gas-combustion-net-cv`).
- `category`: `desnz/` and Levels 1–4 as DESNZ names them, `/`-separated.
- `unit`: tonnes → t, litres → L, million litres → ML, cubic metres → m3, miles → mi,
  tonne.km → t*km, passenger.km → passenger*km, Room per night → room_night, kWh (Gross CV)
  and kWh (Net CV) → kWh (the basis is in the activity id and the name).
- `boundary` by Level 1 (see `_BOUNDARIES`); `region` GB, except Hotel stay, whose Level 3
  names the country.
- Left out, each with a warning naming its row: rows without a value; the SECR kWh sheets
  (their `GHG/Unit` is kWh per unit, an energy conversion, not an emission factor); the
  homeworking factors per FTE working hour (no such unit in the registry); a group without a
  `kg CO2e` row (except Outside of scopes, whose CO2 is biogenic: `co2e` 0 and
  `biogenic_co2` the value, as the upload format keeps biogenic CO2 apart).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pycountry

from app.core.problem_text import Message
from app.importers.base import (
    GwpChoice,
    ImportedRow,
    ImportFileError,
    SkippedRow,
    SourceCell,
    read_sheet,
    refuse_gwp,
    refuse_through_year,
    slug,
)

SHEET = "Factors by Category"
GWP_SET = "AR5"
_KEY_COLUMNS = ("Scope", "Level 1", "Level 2", "Level 3", "Level 4", "Column Text", "UOM")
_VALUE_COLUMN = re.compile(r"^GHG Conversion Factor (\d{4})$")
# Level 1 names of the 2022 edition that DESNZ renamed in 2023: read under the newer name so
# that the factor codes of both editions agree.
_LEVEL1_RENAMED = {
    "WTT- pass vehs & travel (land)": "WTT- pass vehs & travel- land",
    "WTT- business travel (air)": "WTT- business travel- air",
    "WTT- business travel (sea)": "WTT- business travel- sea",
    "WTT- UK & overseas elec": "WTT- UK electricity",
    "Passenger and delivery vehicles- kWh factors": "SECR kWh pass & delivery vehs",
}
_UNITS = {
    "tonnes": "t",
    "kg": "kg",
    "litres": "L",
    "million litres": "ML",
    "cubic metres": "m3",
    "km": "km",
    "miles": "mi",
    "tonne.km": "t*km",
    "passenger.km": "passenger*km",
    "Room per night": "room_night",
    "kWh": "kWh",
    "kWh (Gross CV)": "kWh",
    "kWh (Net CV)": "kWh",
    "GJ": "GJ",
}
_CV_BASIS = {"kWh (Gross CV)": "gross-cv", "kWh (Net CV)": "net-cv"}
# What each Level 1 covers, as the upload format's boundary. Direct emissions of burning a
# fuel (stationary or in a vehicle) and of generating electricity or heat: combustion;
# upstream fuel supply (WTT sheets): well-to-tank; the production of a material:
# cradle-to-gate; the emissions of one service or process (waste treatment, water, a hotel
# night, refrigerant leaks, working from home): gate-to-gate.
_BOUNDARIES = {
    "Fuels": "combustion",
    "Bioenergy": "combustion",
    "Passenger vehicles": "combustion",
    "Delivery vehicles": "combustion",
    "Business travel- land": "combustion",
    "Business travel- air": "combustion",
    "Business travel- sea": "combustion",
    "Freighting goods": "combustion",
    "Managed assets- vehicles": "combustion",
    "UK electricity": "combustion",
    "Overseas electricity": "combustion",
    "UK electricity for EVs": "combustion",
    "Heat and steam": "combustion",
    "Managed assets- electricity": "combustion",
    "Transmission and distribution": "combustion",
    "UK electricity T&D for EVs": "combustion",
    "Outside of scopes": "combustion",
    "Material use": "cradle-to-gate",
    "Waste disposal": "gate-to-gate",
    "Water supply": "gate-to-gate",
    "Water treatment": "gate-to-gate",
    "Hotel stay": "gate-to-gate",
    "Homeworking": "gate-to-gate",
    "Refrigerant & other": "gate-to-gate",
}
# Activities the curated seed already names (seed_data/reference/activities.csv).
_SHARED_ACTIVITIES = {
    ("UK electricity", "Electricity generated", "Electricity: UK", "kWh", "", "kWh"): (
        "electricity-grid-mix"
    ),
    ("Fuels", "Gaseous fuels", "Natural gas", "", "", "kWh (Gross CV)"): (
        "natural-gas-combustion-gross-cv"
    ),
    ("Fuels", "Gaseous fuels", "Natural gas", "", "", "kWh (Net CV)"): (
        "natural-gas-combustion-net-cv"
    ),
}
_COUNTRY_NAMES = {
    "UK": "GB",
    "UK (London)": "GB",
    "Korea": "KR",
    "Hong Kong, China": "HK",
    "Macau, China": "MO",
    "Taiwan, China": "TW",
    "Turkey": "TR",
    "Vietnam": "VN",
    "Russian Federation": "RU",
    "Czech Republic": "CZ",
}
_PUBLICATION_PAGE = (
    "https://www.gov.uk/government/publications/greenhouse-gas-reporting-conversion-factors-{year}"
)
MAX_CODE = 128


@dataclass
class _Group:
    key: tuple[str, ...]
    sheet_rows: list[tuple[int, str, Any]] = field(default_factory=list)  # (row, GHG/Unit, value)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _bounded(text: str, whole_key: str) -> str:
    if len(text) <= MAX_CODE:
        return text
    digest = hashlib.sha256(whole_key.encode()).hexdigest()[:10]
    return f"{text[: MAX_CODE - 11].rstrip('-')}-{digest}"


def _country(name: str) -> str | None:
    if name in _COUNTRY_NAMES:
        return _COUNTRY_NAMES[name]
    try:
        return str(pycountry.countries.lookup(name).alpha_2)
    except LookupError:
        return None


def _gas(ghg_unit: str) -> str | None:
    """Which field a `GHG/Unit` cell's value is: co2e, co2, ch4/n2o (kg CO2e of the gas)."""
    text = ghg_unit.removesuffix(" per unit").strip()
    return {
        "kg CO2e": "co2e",
        "kg CO2e of CO2": "co2",
        "kg CO2e of CH4": "ch4_co2e",
        "kg CO2e of N2O": "n2o_co2e",
    }.get(text)


class DesnzFlatImporter:
    name = "desnz-flat"
    title = "UK DESNZ GHG conversion factors, flat file (.xls or .xlsx)"
    extensions = (".xlsx", ".xls")

    def read(
        self, data: bytes, *, through_year: int | None = None, gwp: GwpChoice | None = None
    ) -> Iterator[ImportedRow | SkippedRow]:
        refuse_through_year(self.name, through_year)
        refuse_gwp(self.name, gwp)
        rows = read_sheet(data, SHEET)
        header_index = next(
            (i for i, r in enumerate(rows[:20]) if "UOM" in [_text(c) for c in r]), None
        )
        if header_index is None:
            raise ImportFileError("no_header", Message("importer.no_header", sheet=SHEET))
        header = [_text(c) for c in rows[header_index]]
        columns = {name: i for i, name in enumerate(header) if name}
        value_columns = [(n, m) for n in header if (m := _VALUE_COLUMN.match(n))]
        missing = [n for n in (*_KEY_COLUMNS, "GHG/Unit") if n not in columns]
        if missing or len(value_columns) != 1:
            raise ImportFileError(
                "missing_column",
                Message(
                    "importer.missing_columns",
                    columns=", ".join(
                        [*missing, *([] if value_columns else ["GHG Conversion Factor YYYY"])]
                    ),
                ),
                SourceCell(SHEET, header_index + 1, None),
            )
        value_column, match = value_columns[0]
        year = int(match.group(1))
        groups: dict[tuple[str, ...], _Group] = {}
        for index in range(header_index + 1, len(rows)):
            cells = list(rows[index]) + [""] * len(header)
            scope = _text(cells[columns["Scope"]])
            if not scope or scope == "END":
                continue
            key = tuple(_text(cells[columns[name]]) for name in _KEY_COLUMNS)
            ghg_unit = _text(cells[columns["GHG/Unit"]])
            raw = cells[columns[value_column]]
            groups.setdefault(key, _Group(key)).sheet_rows.append((index + 1, ghg_unit, raw))
        for group in groups.values():
            yield from self._factor(group, year, value_column, SHEET)

    def _factor(
        self, group: _Group, year: int, value_column: str, sheet: str
    ) -> Iterator[ImportedRow | SkippedRow]:
        scope, level1, level2, level3, level4, column_text, uom = group.key
        level1 = _LEVEL1_RENAMED.get(level1, level1)
        first_row = group.sheet_rows[0][0]
        where = SourceCell(sheet, first_row, value_column)
        if level1.startswith("SECR kWh"):
            yield SkippedRow(
                where,
                "not_an_emission_factor",
                Message("importer.secr_kwh", level1=level1),
            )
            return
        if uom not in _UNITS:
            yield SkippedRow(
                SourceCell(sheet, first_row, "UOM"),
                "unit_not_representable",
                Message("importer.unit_not_representable", unit=uom),
            )
            return
        boundary = "well-to-tank" if level1.startswith("WTT") else _BOUNDARIES.get(level1)
        if boundary is None:
            yield SkippedRow(
                SourceCell(sheet, first_row, "Level 1"),
                "unknown_category",
                Message("importer.unknown_category", level1=level1),
            )
            return
        values: dict[str, tuple[int, Any]] = {}
        for row, ghg_unit, raw in group.sheet_rows:
            gas = _gas(ghg_unit)
            if gas is None:
                yield SkippedRow(
                    SourceCell(sheet, row, "GHG/Unit"),
                    "unknown_ghg_unit",
                    Message("importer.unknown_ghg_unit", ghg_unit=ghg_unit),
                )
                continue
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                if _text(raw):
                    yield SkippedRow(
                        SourceCell(sheet, row, value_column),
                        "not_a_number",
                        Message("importer.not_a_number", value=_text(raw)),
                    )
                continue  # DESNZ leaves a cell empty where it gives no factor
            values[gas] = (row, float(raw))
        region = "GB"
        if level1 == "Hotel stay":
            country = _country(level3)
            if country is None:
                yield SkippedRow(
                    SourceCell(sheet, first_row, "Level 3"),
                    "unknown_country",
                    Message("importer.unknown_country", country=level3),
                )
                return
            region = country
        levels = [level for level in (level1, level2, level3, level4) if level]
        path_words = [*levels, column_text] if column_text else levels
        whole_key = "|".join((scope, *path_words, uom))
        code = _bounded(slug(" ".join((scope, *path_words, uom))), whole_key)
        basis = _CV_BASIS.get(uom)
        activity = _SHARED_ACTIVITIES.get((level1, level2, level3, level4, column_text, uom))
        if activity is None:
            activity_slug = slug(" ".join(path_words)) + (f"-{basis}" if basis else "")
            activity = _bounded(f"desnz-uk-{activity_slug}", whole_key)
        name = " – ".join(path_words) + f", per {uom}"
        locator_rows = ", ".join(str(row) for row, _, _ in group.sheet_rows)
        gas_note = [
            f"kg CO2e of {gas.split('_')[0].upper()}: {values[gas][1]:g}"
            for gas in ("ch4_co2e", "n2o_co2e")
            if gas in values
        ]
        notes = [f"DESNZ {scope}; {uom}."]
        if gas_note:
            notes.append(
                "The workbook gives CH4 and N2O as kg CO2e of each gas (AR5 GWP100), not kg of "
                "gas; they are kept here as given and ch4/n2o are left empty: "
                + "; ".join(gas_note)
                + "."
            )
        record: dict[str, Any] = {
            "factor_code": code,
            "activity_id": activity,
            "name_en": name,
            "category": "/".join(["desnz", *(level.replace("/", "-") for level in levels)])[:255],
            "region": region,
            "reference_year": year,
            "unit": _UNITS[uom],
            "boundary": boundary,
            "method": "UK Government GHG Conversion Factors for Company Reporting, "
            f"{year} methodology",
            "source_title": f"Greenhouse gas reporting: conversion factors {year} (flat file)",
            "source_publisher": "Department for Energy Security and Net Zero (DESNZ)"
            if year >= 2023
            else "Department for Business, Energy & Industrial Strategy (BEIS)",
            "source_year": year,
            "source_url": _PUBLICATION_PAGE.format(year=year),
            "source_locator": f"Flat file, sheet '{sheet}', rows {locator_rows}",
        }
        cells: dict[str, SourceCell] = {}
        if "co2e" in values:
            row, value = values["co2e"]
            record["co2e"] = value
            record["gwp_set"] = GWP_SET
            cells["co2e"] = SourceCell(sheet, row, value_column)
            if "co2" in values:
                record["co2"] = values["co2"][1]
                cells["co2"] = SourceCell(sheet, values["co2"][0], value_column)
            factor_row = row
        elif level1 == "Outside of scopes" and "co2" in values:
            row, value = values["co2"]
            record["co2e"] = 0.0
            record["biogenic_co2"] = value
            cells["biogenic_co2"] = SourceCell(sheet, row, value_column)
            notes.append(
                "Outside of scopes: biogenic CO2 of the biofuel part, which DESNZ reports apart "
                "from the scopes; kept as biogenic_co2, not in co2e."
            )
            factor_row = row
        else:
            if values or group.sheet_rows:
                yield SkippedRow(
                    where,
                    "no_total",
                    Message("importer.no_total"),
                )
            return
        record["notes"] = " ".join(notes)
        for name_ in ("unit", "factor_code", "activity_id", "name_en"):
            cells.setdefault(
                name_, SourceCell(sheet, factor_row, "UOM" if name_ == "unit" else None)
            )
        cells["region"] = SourceCell(
            sheet, factor_row, "Level 3" if level1 == "Hotel stay" else None
        )
        yield ImportedRow(row=factor_row, values=record, sheet=sheet, cells=cells)
