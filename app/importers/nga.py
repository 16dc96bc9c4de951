"""Australian National Greenhouse Accounts (NGA) Factors workbook (DCCEEW), editions 2021–2025.

The mapping (README "Importers" says the same in prose). Tables are found by their title cell
(A1 of each sheet), not by number, because the numbering changes between editions:

- **Scope 2 electricity, location-based, by state or territory**: the sheet whose title says
  "scope 2", "electricity" and not "market-based" or "electricity grids", and whose first header
  reads "State…" (2021 Table 5, 2022 and 2024 Table 1 "…purchased electricity from a grid",
  2023 and 2025 Table 1 "location-based"). Column: the first whose unit cell reads
  "kg CO2-e/kWh" (the scope 2 column; the scope 3 columns come later). One factor per state,
  territory or grid: `co2e` in kg CO2e per kWh, `unit` kWh, `boundary` combustion,
  `activity_id` `electricity-grid-mix`; `region` the ISO 3166-2:AU subdivision (AU for
  "National"). "New South Wales and (the) Australian Capital Territory" is AU-NSW (the note
  says it covers the ACT); the Western Australian grids SWIS and NWIS and the Northern
  Territory's DKIS are AU-WA and AU-NT, each its own code. A "Western Australia -" row whose
  grid name stands in the next row is read with that name.
- **Stationary fuel combustion (scope 1)**: the sheets whose title names solid, gaseous or
  (stationary) liquid fuels and combustion or consumption (transport fuels excepted). The header
  row is the one holding `CO2`, `CH4`, `N2O` (and from 2022 `Combined gases`); the first column
  is the fuel; values are kg CO2e per GJ **per gas**, as NGA gives them. `co2` is the CO2 column
  (kg CO2e of CO2 is kg of CO2); CH4 and N2O stay in `notes` as kg CO2e of each gas and `ch4`/
  `n2o` are left empty (never turned into kg of gas by an assumed GWP). `co2e` is the
  "Combined gases" cell; the 2021 workbook has none, so there it is the sum of the three per-gas
  CO2e cells (the note says so). `gwp_set` AR5: the workbooks' GWP tables (2021 Table 32
  CH4 28, N2O 265; from 2022 "Global Warming Potentials (AR5)"). The energy content factor is
  quoted in the note. `unit` GJ, `region` AU, `boundary` combustion.
- `factor_code`: `scope2-electricity-{region words}` and `scope1-{solid|gaseous|liquid}-{fuel}`,
  the fuel's words as a slug, so that the same factor of two editions has the same code (the
  few fuel names NGA rewrote are read under the newer name, `_FUEL_RENAMED`).
- Left out, each with a warning naming its cell: a value that is not a number (NGA writes
  "NE", not estimated) and a region name this importer does not map.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from python_calamine import CalamineError, CalamineWorkbook

from app.core.problem_text import Message
from app.importers.base import (
    GwpChoice,
    ImportedRow,
    ImportFileError,
    SkippedRow,
    SourceCell,
    refuse_gwp,
    refuse_through_year,
    slug,
)

GWP_SET = "AR5"
PUBLISHER = "Department of Climate Change, Energy, the Environment and Water (DCCEEW)"
SOURCE_URL = (
    "https://www.dcceew.gov.au/climate-change/publications/national-greenhouse-accounts-factors"
)
# NGA's region words → (ISO 3166 code, code words); the key is the lower-case name without
# "the", punctuation and surrounding space.
_REGIONS = {
    "new south wales and australian capital territory": ("AU-NSW", "nsw-act"),
    "victoria": ("AU-VIC", "vic"),
    "queensland": ("AU-QLD", "qld"),
    "south australia": ("AU-SA", "sa"),
    "tasmania": ("AU-TAS", "tas"),
    "northern territory": ("AU-NT", "nt"),
    "national": ("AU", "national"),
}
_GRIDS = {  # a grid named in the row: (ISO 3166-2 code, code words)
    "SWIS": ("AU-WA", "wa-swis"),
    "NWIS": ("AU-WA", "wa-nwis"),
    "DKIS": ("AU-NT", "nt-dkis"),
}
# Fuel names of the 2021 edition that NGA rewrote in 2022, read under the newer name so that
# the codes of both editions pair (the same fuel and the same factors). 2021's "Industrial
# materials and tyres…" was split into three rows in 2022 and is not paired.
_FUEL_RENAMED = {
    "Brown coal": "Brown coal (lignite)",
    "Petroleum based oils (other than petroleum based oil used as fuel), eg lubricants": (
        "Petroleum based oils (other than petroleum based oil used as fuel), e.g. lubricants"
    ),
    "Gasoline (other than for use as fuel in an aircraft)": (
        "Automotive gasoline/petrol (other than for use as fuel in an aircraft)"
    ),
    "Gasoline for use as fuel in an aircraft (avgas)": "Aviation gasoline",
    "Kerosene for use as fuel in an aircraft (aviation turbine fuel)": (
        "Aviation turbine fuel/kerosene"
    ),
    "Liquefied petroleum gas": "Liquefied petroleum gas (LPG)",
}
_KINDS = (("solid", "solid fuels"), ("gaseous", "gaseous fuels"), ("liquid", "liquid fuels"))


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return re.sub(r"\s+", " ", str(value).replace("\u2011", "-")).strip()


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _column_name(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _edition(workbook: CalamineWorkbook, data: bytes) -> int | None:
    """The edition year: the Introduction sheet's year cell ("July 2023", "2024", 2025), or,
    where that sheet is empty (2021, 2022), the year the workbook was last modified as its
    OOXML core properties record it (NGA releases each edition in the year it names)."""
    if "Introduction" in workbook.sheet_names:
        rows = workbook.get_sheet_by_name("Introduction").to_python(skip_empty_area=False)
        for row in rows:
            for cell in row:
                match = re.fullmatch(r"(?:[A-Za-z]+ )?(20\d\d)", _text(cell))
                if match:
                    return int(match.group(1))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            core = archive.read("docProps/core.xml").decode("utf-8", "replace")
    except (KeyError, zipfile.BadZipFile):
        return None
    match = re.search(r"<dcterms:modified[^>]*>(20\d\d)-", core)
    return int(match.group(1)) if match else None


class NgaImporter:
    name = "nga"
    title = "Australian National Greenhouse Accounts Factors workbook (.xlsx)"
    extensions = (".xlsx",)

    def read(
        self, data: bytes, *, through_year: int | None = None, gwp: GwpChoice | None = None
    ) -> Iterator[ImportedRow | SkippedRow]:
        refuse_through_year(self.name, through_year)
        refuse_gwp(self.name, gwp)
        try:
            workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
            sheets = {
                name: workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
                for name in workbook.sheet_names
            }
        except (CalamineError, ValueError, KeyError, OSError) as exc:
            raise ImportFileError(
                "unreadable_workbook", Message("importer.nga_unreadable", reason=str(exc))
            ) from exc
        edition = _edition(workbook, data)
        found = False
        for sheet, rows in sheets.items():
            title = _text(rows[0][0]) if rows and rows[0] else ""
            lowered = title.lower()
            if not lowered.startswith("table"):
                continue
            if (
                "scope 2" in lowered
                and "electricity" in lowered
                and "market-based" not in lowered
                and "electricity grids" not in lowered
                and len(rows) > 1
                and _text(rows[1][0]).lower().startswith("state")
            ):
                found = True
                yield from self._electricity(sheet, rows, title, edition)
                continue
            if "transport" in lowered or not ("combustion" in lowered or "consumption" in lowered):
                continue
            for kind, words in _KINDS:
                if words in lowered and (kind != "liquid" or "stationary" in lowered):
                    found = True
                    yield from self._fuels(sheet, rows, title, kind, edition)
        if not found:
            raise ImportFileError("no_tables", Message("importer.nga_no_tables"))

    def _common(self, sheet: str, title: str, edition: int | None) -> dict[str, Any]:
        year_words = f" {edition}" if edition else ""
        table = title.split(" ", 2)[:2]
        return {
            "gwp_set": GWP_SET,
            "boundary": "combustion",
            "method": f"Australian National Greenhouse Accounts Factors{year_words}",
            "source_title": f"Australian National Greenhouse Accounts Factors{year_words}",
            "source_publisher": PUBLISHER,
            "source_url": SOURCE_URL,
            **({"reference_year": edition, "source_year": edition} if edition else {}),
            "_table": " ".join(table).rstrip(":"),
        }

    def _electricity(
        self, sheet: str, rows: list[list[Any]], title: str, edition: int | None
    ) -> Iterator[ImportedRow | SkippedRow]:
        units = [_text(c) for c in rows[2]] if len(rows) > 2 else []
        column = next((i for i, u in enumerate(units) if "kWh" in u and i > 0), None)
        if column is None:
            raise ImportFileError("no_header", Message("importer.nga_no_tables"))
        heading = _text(rows[1][column])
        base = self._common(sheet, title, edition)
        table = base.pop("_table")
        for index in range(3, len(rows)):
            row = rows[index]
            name = _text(row[0])
            value = _number(row[column]) if len(row) > column else None
            if not name or value is None:
                if name and _text(row[column]):
                    yield SkippedRow(
                        SourceCell(sheet, index + 1, _column_name(column)),
                        "not_a_number",
                        Message("importer.not_a_number", value=_text(row[column])),
                    )
                continue
            if name.endswith("-") and index + 1 < len(rows):
                name = f"{name} {_text(rows[index + 1][0])}"  # the grid named in the next row
            grid = next((g for g in _GRIDS if f"({g})" in name), None)
            key = re.sub(r"[^a-z ]", "", name.lower()).replace(" the ", " ").strip()
            mapped = _GRIDS[grid] if grid else _REGIONS.get(re.sub(r"\s+", " ", key))
            if mapped is None:
                yield SkippedRow(
                    SourceCell(sheet, index + 1, "A"),
                    "unknown_region",
                    Message("importer.nga_unknown_region", region=name),
                )
                continue
            region, words = mapped
            notes = [f"NGA {table}, scope 2 (location-based), {heading} kg CO2-e/kWh."]
            if region == "AU-NSW":
                notes.append("NGA gives one factor for New South Wales and the ACT.")
            record = {
                **base,
                "factor_code": f"scope2-electricity-{words}",
                "activity_id": "electricity-grid-mix",
                "name_en": f"Purchased grid electricity, {name} (scope 2, location-based)",
                "category": "nga/scope-2/electricity",
                "region": region,
                "unit": "kWh",
                "co2e": value,
                "source_locator": f"sheet '{sheet}' ({table}), cell {_column_name(column)}"
                f"{index + 1}",
                "notes": " ".join(notes),
            }
            cell = SourceCell(sheet, index + 1, _column_name(column))
            yield ImportedRow(
                row=index + 1,
                values=record,
                sheet=sheet,
                cells={"co2e": cell, "region": SourceCell(sheet, index + 1, "A")},
            )

    def _fuels(
        self, sheet: str, rows: list[list[Any]], title: str, kind: str, edition: int | None
    ) -> Iterator[ImportedRow | SkippedRow]:
        header = next(
            (i for i, r in enumerate(rows[:10]) if {"CO2", "CH4", "N2O"} <= {_text(c) for c in r}),
            None,
        )
        if header is None:
            raise ImportFileError("no_header", Message("importer.nga_no_tables"))
        names = [_text(c) for c in rows[header]]
        gases = {gas: names.index(gas) for gas in ("CO2", "CH4", "N2O")}
        combined = names.index("Combined gases") if "Combined gases" in names else None
        base = self._common(sheet, title, edition)
        table = base.pop("_table")
        # The energy content factor's unit: the first unit cell of column B above the fuels.
        unit_words = next(
            (
                text
                for i in range(header, 1, -1)
                if (text := _text(rows[i][1] if len(rows[i]) > 1 else ""))
                and not text.lower().startswith("energy")
            ),
            "",
        )
        for index in range(header + 1, len(rows)):
            row = list(rows[index]) + [""] * len(names)
            fuel = _text(row[0])
            if not fuel:
                continue
            values = {gas: _number(row[col]) for gas, col in gases.items()}
            bad = next((g for g, v in values.items() if v is None), None)
            if bad is not None:
                yield SkippedRow(
                    SourceCell(sheet, index + 1, _column_name(gases[bad])),
                    "not_a_number",
                    Message("importer.not_a_number", value=_text(row[gases[bad]])),
                )
                continue
            co2, ch4, n2o = (float(values[g] or 0.0) for g in ("CO2", "CH4", "N2O"))
            total = _number(row[combined]) if combined is not None else None
            notes = [
                f"NGA {table}, scope 1, kg CO2-e/GJ per gas (AR5 GWP100): CO2 {co2:g}, "
                f"CH4 {ch4:g} and N2O {n2o:g} kg CO2-e of each gas, not kg of gas; ch4/n2o are "
                "left empty."
            ]
            cells = {"co2": SourceCell(sheet, index + 1, _column_name(gases["CO2"]))}
            if total is None:
                total = round(co2 + ch4 + n2o, 10)
                notes.append(
                    "co2e is the sum of the three per-gas values (this edition's table has no "
                    "combined column)."
                )
            else:
                cells["co2e"] = SourceCell(sheet, index + 1, _column_name(combined or 0))
            energy = _text(row[1])
            if energy:
                unit_hint = "" if re.search(r"[A-Za-z]", energy) else unit_words
                notes.append(f"Energy content factor: {energy} {unit_hint}".rstrip() + ".")
            fuel_name = _FUEL_RENAMED.get(fuel, fuel)
            record = {
                **base,
                "factor_code": f"scope1-{kind}-{slug(fuel_name)}"[:128],
                "activity_id": f"nga-au-{slug(fuel_name)}-combustion"[:128],
                "name_en": f"{fuel} combustion (stationary energy), per GJ",
                "category": f"nga/scope-1/stationary-energy/{kind}-fuels",
                "region": "AU",
                "unit": "GJ",
                "co2e": total,
                "co2": co2,
                "source_locator": f"sheet '{sheet}' ({table}), row {index + 1}",
                "notes": " ".join(notes),
            }
            yield ImportedRow(row=index + 1, values=record, sheet=sheet, cells=cells)
