"""Small files made from the publishers' real ones (copied byte for byte into seed_data/),
for the importer tests: the same sheets, header rows and cells, fewer factor rows."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openpyxl
from python_calamine import CalamineWorkbook

SEED = Path(__file__).resolve().parents[1] / "seed_data"
DESNZ_DIR = SEED / "desnz-uk" / "ghg-conversion-factors"
DESNZ_2024 = DESNZ_DIR / "ghg-conversion-factors-2024-flat-format-v1_1.xlsx"
DESNZ_2025 = DESNZ_DIR / "ghg-conversion-factors-2025-flat-format.xlsx"
DESNZ_2022 = DESNZ_DIR / "ghg-conversion-factors-2022-flat-format-v3_0.xls"
MEE_TABLE = SEED / "mee-cn" / "cn-electricity-factors" / "cn_mee_electricity_factors_2021-2024.csv"
SHEET = "Factors by Category"
HEADER_ROWS = 6  # rows 1-6 of the 2023+ flat files: title, sheet name, note, header


def sheet_rows(path: Path) -> list[list[Any]]:
    return (
        CalamineWorkbook.from_path(str(path))
        .get_sheet_by_name(SHEET)
        .to_python(skip_empty_area=False)
    )


def small_desnz(
    path: Path,
    keep: Callable[[list[Any]], bool],
    *,
    change: Callable[[list[Any]], list[Any]] | None = None,
) -> tuple[bytes, list[list[Any]]]:
    """A flat-file workbook with the real header rows and the real rows `keep` selects (each
    optionally changed): its bytes, and the rows as written (row n of the sheet is [n-1])."""
    rows = sheet_rows(path)
    written = [*rows[:HEADER_ROWS], *(r for r in rows[HEADER_ROWS:] if keep(r))]
    if change is not None:
        written = [*written[:HEADER_ROWS], *(change(list(r)) for r in written[HEADER_ROWS:])]
    book = openpyxl.Workbook()
    front = book.active
    assert front is not None
    front.title = "Front page"
    sheet = book.create_sheet(SHEET)
    for row in written:
        sheet.append([None if cell == "" else cell for cell in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue(), written


def level(row: Sequence[Any], *names: str) -> bool:
    """A 2023+ flat-file row whose Level 1 is one of `names`."""
    return len(row) > 2 and row[2] in names


EPA_SUPPLY_CHAIN_DIR = SEED / "epa-us" / "supply-chain-ghg-emission-factors"
EPA_SC_V12 = EPA_SUPPLY_CHAIN_DIR / "SupplyChainGHGEmissionFactors_v1.2_NAICS_CO2e_USD2021.csv"
EPA_SC_V13 = EPA_SUPPLY_CHAIN_DIR / "SupplyChainGHGEmissionFactors_v1.3.0_NAICS_CO2e_USD2022.csv"


def small_csv(path: Path, keep: Callable[[list[str]], bool]) -> tuple[bytes, list[list[str]]]:
    """A CSV with the real header line and the real lines `keep` selects, byte for byte (line
    endings and quoting as the publisher wrote them): its bytes, and the rows as parsed."""
    import csv

    lines = path.read_bytes().splitlines(keepends=True)
    parsed = list(csv.reader(line.decode("utf-8-sig") for line in lines))
    kept = [0, *(i for i in range(1, len(lines)) if keep(parsed[i]))]
    return b"".join(lines[i] for i in kept), [parsed[i] for i in kept]


EPA_HUB_DIR = SEED / "epa-us" / "ghg-emission-factors-hub"
EPA_HUB_2023 = EPA_HUB_DIR / "ghg-emission-factors-hub-2023.xlsx"
EPA_HUB_2024 = EPA_HUB_DIR / "ghg-emission-factors-hub-2024.xlsx"
EPA_HUB_SHEET = "Emission Factors Hub"


def small_hub(path: Path) -> tuple[bytes, list[list[Any]]]:
    """An EPA Hub workbook with the real rows of its sheet up to Table 3 (the GWP table and
    Tables 1 and 2), as written: its bytes, and the rows (row n of the sheet is [n-1])."""
    rows = (
        CalamineWorkbook.from_path(str(path))
        .get_sheet_by_name(EPA_HUB_SHEET)
        .to_python(skip_empty_area=False)
    )
    end = next(i for i, r in enumerate(rows) if len(r) > 1 and r[1] == "Table 3")
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = EPA_HUB_SHEET
    for row in rows[:end]:
        sheet.append([None if cell == "" else cell for cell in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue(), rows[:end]
