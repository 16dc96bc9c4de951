"""US EPA "GHG Emission Factors Hub" workbook (`ghg-emission-factors-hub-YYYY.xlsx`), Tables 1
and 2.

The mapping (README "Importers" says the same in prose):

- Sheet `Emission Factors Hub`, the one sheet. The edition year is the year of its `Last
  Modified:` cell (2023, 2024) and becomes `reference_year` and `source_year` (the Hub states
  no data year). The GWP set is read from the GWP table at the top: the `Source:` cell names
  the IPCC report (Fourth → AR4, Fifth → AR5) and the `CH4` and `N2O` cells give the values.
- Table 1 "Stationary Combustion" (from the `Table 1` cell to `Table 2`): under the
  `Fuel Type` header, rows with a name only are the fuel category (`Coal and Coke`, `Natural
  Gas`, …); the rows whose first numbers say `mmBtu per …` are the unit rows (short ton, scf,
  gallon). Each fuel gives up to two factors: per mmBtu (HHV), from `CO2 Factor` (kg CO2),
  `CH4 Factor` and `N2O Factor` (g → kg: `ch4`, `n2o` in kg of gas); and per physical unit
  (short ton → `short_ton`, scf → `scf`, gallon → `gal`), from the second group of three
  columns. `Heat Content (HHV)` goes into `notes`.
- Table 2 "Mobile Combustion CO2": `Fuel Type`, `kg CO2 per unit` → `co2`, `Unit` → `unit`.
  CO2 only.
- `co2e` is **computed by efdb**, not given by EPA (the Hub says its factors "have not been
  converted to CO2e"): co2 + GWP(CH4)·ch4 + GWP(N2O)·n2o with the GWP values the workbook
  gives, which are the service's AR4 (2023) and AR5 (2024) GWP100; `gwp_set` is that set.
- Biomass fuels (Table 1 categories `Biomass Fuels - …`, and the same fuels in Table 2): their
  CO2 is biogenic, so it is `biogenic_co2`, reported apart, and `co2e` counts CH4 and N2O only
  (as the DESNZ outside-of-scopes rows).
- `factor_code`: `table-1-{fuel}-per-mmbtu`, `table-1-{fuel}-per-{unit}`,
  `table-2-{fuel}-per-{unit}`; 2023 coal names (`Anthracite Coal`, …) are read under their
  2024 names (`Anthracite`, …) so that both editions pair. `activity_id`:
  `epa-us-{fuel}-stationary-combustion-hhv` (per mmBtu), `epa-us-{fuel}-stationary-combustion`,
  `epa-us-{fuel}-mobile-combustion`; natural gas per mmBtu HHV is the shared
  `natural-gas-combustion-gross-cv` (HHV is the gross calorific value).
- `category`: `epa-hub/stationary-combustion/{category}` or `epa-hub/mobile-combustion`;
  `boundary` `combustion` (EPA: "combustion emissions only"); `region` `US`.
- Not read: Tables 3–5 (CH4 and N2O by vehicle type and model year, per mile: no vehicle
  vocabulary yet), Table 6 (eGRID subregions, which the location registry cannot name
  yet), Tables 7–12.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

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

SHEET = "Emission Factors Hub"
_LAST_MODIFIED = re.compile(r"Last Modified:.*?(20\d\d)")
_REPORTS = {"Fourth Assessment": "AR4", "Fifth Assessment": "AR5", "Sixth Assessment": "AR6"}
# 2023 names of Table 1 fuels that the 2024 edition shortened: read under the newer name.
_RENAMED = {
    "Anthracite Coal": "Anthracite",
    "Bituminous Coal": "Bituminous",
    "Sub-bituminous Coal": "Sub-bituminous",
    "Lignite Coal": "Lignite",
}
_UNITS = {"short ton": "short_ton", "scf": "scf", "gallon": "gal"}
_PUBLICATION_PAGE = "https://www.epa.gov/climateleadership/ghg-emission-factors-hub"


def _text(value: object) -> str:
    return "" if value is None else " ".join(str(value).split())


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _clean(value: float) -> float:
    return float(f"{value:.12g}")


class EpaHubImporter:
    name = "epa-hub"
    title = "US EPA GHG Emission Factors Hub workbook (.xlsx), Tables 1 and 2"
    extensions = (".xlsx",)

    def read(
        self, data: bytes, *, through_year: int | None = None, gwp: GwpChoice | None = None
    ) -> Iterator[ImportedRow | SkippedRow]:
        refuse_through_year(self.name, through_year)
        refuse_gwp(self.name, gwp)
        rows = read_sheet(data, SHEET)
        texts = [[_text(c) for c in r] for r in rows]
        year = next(
            (int(m.group(1)) for r in texts[:10] for c in r if (m := _LAST_MODIFIED.search(c))),
            None,
        )
        tables = {
            r[1]: i for i, r in enumerate(texts) if len(r) > 1 and re.fullmatch(r"Table \d+", r[1])
        }
        stated = self._gwp(rows, texts, tables.get("Table 1", 0))
        if year is None or stated is None or "Table 1" not in tables or "Table 2" not in tables:
            raise ImportFileError(
                "no_header",
                Message("importer.no_header", sheet=SHEET),
            )
        gwp_set, gwp_values = stated
        context = _Context(year, gwp_set, gwp_values)
        biomass: set[str] = set()
        yield from self._table1(rows, texts, tables["Table 1"], tables["Table 2"], context, biomass)
        end = tables.get("Table 3", len(rows))
        yield from self._table2(rows, texts, tables["Table 2"], end, context, biomass)

    @staticmethod
    def _gwp(
        rows: list[list[Any]], texts: list[list[str]], before: int
    ) -> tuple[str, dict[str, float]] | None:
        values: dict[str, float] = {}
        gwp_set = None
        for index in range(before):
            for column, text in enumerate(texts[index]):
                if text in ("CH4", "N2O") and column + 1 < len(rows[index]):
                    number = _number(rows[index][column + 1])
                    if number is not None:
                        values[text] = number
                for words, name in _REPORTS.items():
                    if text.startswith("Source:") and words in text:
                        gwp_set = name
        if gwp_set is None or set(values) != {"CH4", "N2O"}:
            return None
        return gwp_set, values

    def _table1(
        self,
        rows: list[list[Any]],
        texts: list[list[str]],
        start: int,
        end: int,
        context: _Context,
        biomass: set[str],
    ) -> Iterator[ImportedRow | SkippedRow]:
        header = next(
            (i for i in range(start, end) if "Fuel Type" in texts[i]),
            None,
        )
        if header is None:
            raise ImportFileError("no_header", Message("importer.no_header", sheet=SHEET))
        name_col = texts[header].index("Fuel Type")
        category = ""
        unit_text = ""
        for index in range(header + 1, end):
            cells = texts[index] + [""] * 10
            name = cells[name_col]
            if name in ("Source:", "Notes:"):
                break
            numbers = [_number(c) for c in (list(rows[index]) + [None] * 10)[name_col + 1 :]]
            heat_unit = cells[name_col + 1]
            if heat_unit.startswith("mmBtu per "):
                unit_text = heat_unit.removeprefix("mmBtu per ")
                continue
            if name and all(n is None for n in numbers[:7]):
                category = name
                continue
            if not name or numbers[1] is None:
                continue
            fuel = _RENAMED.get(name, name)
            is_biomass = category.startswith("Biomass Fuels")
            if is_biomass:
                biomass.add(fuel)
            heat = numbers[0]
            common: dict[str, Any] = {
                "fuel": fuel,
                "category": "/".join(
                    ["epa-hub", "stationary-combustion", category.replace("/", "-")]
                ),
                "row": index + 1,
                "biomass": is_biomass,
                "table": "Table 1 Stationary Combustion",
                "heat_note": (
                    f"Heat content (HHV) {heat:g} mmBtu per {unit_text}."
                    if heat is not None
                    else ""
                ),
            }
            yield self._factor(
                context,
                code=f"table-1-{slug(fuel)}-per-mmbtu",
                activity=(
                    "natural-gas-combustion-gross-cv"
                    if fuel == "Natural Gas"
                    else f"epa-us-{slug(fuel)}-stationary-combustion-hhv"
                ),
                unit="mmBtu",
                unit_words="mmBtu (HHV)",
                gases=(numbers[1], numbers[2], numbers[3]),
                columns=("CO2 Factor (kg CO2 per mmBtu)", "CH4 Factor", "N2O Factor"),
                **common,
            )
            if numbers[4] is not None and unit_text in _UNITS:
                yield self._factor(
                    context,
                    code=f"table-1-{slug(fuel)}-per-{slug(unit_text)}",
                    activity=f"epa-us-{slug(fuel)}-stationary-combustion",
                    unit=_UNITS[unit_text],
                    unit_words=unit_text,
                    gases=(numbers[4], numbers[5], numbers[6]),
                    columns=(
                        f"CO2 Factor (kg CO2 per {unit_text})",
                        f"CH4 Factor (g CH4 per {unit_text})",
                        f"N2O Factor (g N2O per {unit_text})",
                    ),
                    **common,
                )
            elif numbers[4] is not None:
                yield SkippedRow(
                    SourceCell(SHEET, index + 1, "CO2 Factor"),
                    "unit_not_representable",
                    Message("importer.unit_not_representable", unit=unit_text),
                )

    def _table2(
        self,
        rows: list[list[Any]],
        texts: list[list[str]],
        start: int,
        end: int,
        context: _Context,
        biomass: set[str],
    ) -> Iterator[ImportedRow | SkippedRow]:
        header = next((i for i in range(start, end) if "Fuel Type" in texts[i]), None)
        if header is None:
            raise ImportFileError("no_header", Message("importer.no_header", sheet=SHEET))
        name_col = texts[header].index("Fuel Type")
        for index in range(header + 1, end):
            cells = texts[index] + [""] * 4
            name = cells[name_col]
            if name in ("Source:", "Notes:") or not name:
                break
            co2 = _number((list(rows[index]) + [None] * 4)[name_col + 1])
            unit_text = cells[name_col + 2]
            if co2 is None:
                continue
            if unit_text not in _UNITS:
                yield SkippedRow(
                    SourceCell(SHEET, index + 1, "Unit"),
                    "unit_not_representable",
                    Message("importer.unit_not_representable", unit=unit_text),
                )
                continue
            yield self._factor(
                context,
                fuel=name,
                code=f"table-2-{slug(name)}-per-{slug(unit_text)}",
                activity=f"epa-us-{slug(name)}-mobile-combustion",
                category="epa-hub/mobile-combustion",
                row=index + 1,
                biomass=name in biomass,
                table="Table 2 Mobile Combustion CO2",
                heat_note="",
                unit=_UNITS[unit_text],
                unit_words=unit_text,
                gases=(co2, None, None),
                columns=("kg CO2 per unit", "", ""),
            )

    @staticmethod
    def _factor(
        context: _Context,
        *,
        fuel: str,
        code: str,
        activity: str,
        category: str,
        row: int,
        biomass: bool,
        table: str,
        heat_note: str,
        unit: str,
        unit_words: str,
        gases: tuple[float | None, float | None, float | None],
        columns: tuple[str, str, str],
    ) -> ImportedRow:
        co2, ch4_g, n2o_g = gases
        ch4 = _clean(ch4_g / 1000) if ch4_g is not None else None
        n2o = _clean(n2o_g / 1000) if n2o_g is not None else None
        fossil_co2 = None if biomass else co2
        co2e = _clean(
            (fossil_co2 or 0.0)
            + context.gwp["CH4"] * (ch4 or 0.0)
            + context.gwp["N2O"] * (n2o or 0.0)
        )
        gwp_words = (
            f"{context.gwp_set} GWP100 as the workbook gives them (CH4 {context.gwp['CH4']:g}, "
            f"N2O {context.gwp['N2O']:g})"
        )
        notes = [
            f"EPA {table}, {fuel}, per {unit_words}.",
            f"co2e computed by efdb from the gases with {gwp_words}; EPA gives the gases only.",
        ]
        if ch4 is not None:
            notes.append("CH4 and N2O converted from g to kg of gas.")
        if biomass:
            notes.append("Biomass fuel: its CO2 is biogenic, kept as biogenic_co2 and not in co2e.")
        if heat_note:
            notes.append(heat_note)
        record: dict[str, Any] = {
            "factor_code": code,
            "activity_id": activity,
            "name_en": f"{fuel}, {'stationary' if table.startswith('Table 1') else 'mobile'} "
            f"combustion, per {unit_words}",
            "category": category[:255],
            "region": "US",
            "reference_year": context.year,
            "unit": unit,
            "co2e": co2e,
            "gwp_set": context.gwp_set,
            "boundary": "combustion",
            "method": "40 CFR Part 98 (as cited by the EPA GHG Emission Factors Hub)",
            "source_title": f"GHG Emission Factors Hub {context.year}",
            "source_publisher": "U.S. Environmental Protection Agency, Center for Corporate "
            "Climate Leadership",
            "source_year": context.year,
            "source_url": _PUBLICATION_PAGE,
            "source_locator": f"Sheet '{SHEET}', {table}, row {row}",
            "notes": " ".join(notes),
        }
        cells = {"co2e": SourceCell(SHEET, row, columns[0])}
        if biomass:
            record["biogenic_co2"] = co2
            cells["biogenic_co2"] = SourceCell(SHEET, row, columns[0])
        else:
            record["co2"] = co2
            cells["co2"] = SourceCell(SHEET, row, columns[0])
        if ch4 is not None:
            record["ch4"] = ch4
            cells["ch4"] = SourceCell(SHEET, row, columns[1])
        if n2o is not None:
            record["n2o"] = n2o
            cells["n2o"] = SourceCell(SHEET, row, columns[2])
        return ImportedRow(row=row, values=record, sheet=SHEET, cells=cells)


class _Context:
    def __init__(self, year: int, gwp_set: str, gwp: dict[str, float]) -> None:
        self.year = year
        self.gwp_set = gwp_set
        self.gwp = gwp
