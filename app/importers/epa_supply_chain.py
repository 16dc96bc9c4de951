"""US EPA "Supply Chain Greenhouse Gas Emission Factors for US Industries and Commodities"
(USEEIO-based), the CO2e file by NAICS-6:
`SupplyChainGHGEmissionFactors_v1.2_NAICS_CO2e_USD2021.csv` and
`SupplyChainGHGEmissionFactors_v1.3.0_NAICS_CO2e_USD2022.csv`.

The mapping (README "Importers" says the same in prose):

- One row, one factor: 1,016 NAICS 2017 six-digit commodities. Columns read: the NAICS code
  (`NAICS Code 2017` in v1.2, `2017 NAICS Code` in v1.3.0) → `factor_code` `naics-{code}`,
  `product_code` (scheme `NAICS2017`) and the category path; the NAICS title → `name_en` and
  the category's last step; `GHG` must be `All GHGs`; `Unit` (`kg CO2e/2021 USD, purchaser
  price`) → `unit` `USD_2021` (or `USD_2022`), the edition and its price year;
  `Supply Chain Emission Factors with Margins` (SEF+MEF) → `co2e`; `… without Margins` (SEF),
  `Margins of …` (MEF) and `Reference USEEIO Code` → `notes`.
- Why the with-margins total: EPA's factors are per dollar at **purchaser** price (the unit
  says so), and a purchaser price includes the trade and transport margins; the margins
  factor (MEF) is the emissions of those margins, so SEF+MEF is the factor for a purchase
  valued at what was paid. Both parts are kept in `notes`.
- `category`: `naics-2017/{2-digit}/{3-digit}/{4-digit}/{5-digit}/{code} {title}`: the NAICS
  hierarchy by code prefix (the file names only the six-digit titles).
- `activity_id`: `epa-useeio-naics-{code}` (one per commodity, the same in every edition).
- `boundary` `cradle-to-gate` (supply-chain emissions up to the purchase); `region` `US`.
- Per edition, from what EPA states for it (the unit's price year tells the edition apart):
  v1.2 (2021 USD): `gwp_set` AR4 ("100 yr global warming potentials from the 4th IPCC
  Assessment report", data.gov metadata), `reference_year` 2019 ("The Factors are based on GHG
  data representing 2019"), DOI 10.23719/1528686. v1.3.0 (2022 USD): `gwp_set` AR5, DOI
  10.23719/1531143; the files here do not state the year of its GHG data, so `reference_year`
  is the price year, 2022, and the factor's notes say it is a price year.
- The by-gas file (`…_byGHG_…`) is not read: the upload path takes one file per version.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.core.problem_text import Message
from app.importers.base import (
    GwpChoice,
    ImportedRow,
    ImportFileError,
    SkippedRow,
    SourceCell,
    refuse_gwp,
    refuse_through_year,
)


@dataclass(frozen=True)
class _Edition:
    version: str
    gwp_set: str
    gwp_words: str
    reference_year: int
    year_note: str
    doi: str


# What EPA states for each edition, keyed by the price year of its unit.
_EDITIONS = {
    2021: _Edition(
        version="v1.2",
        gwp_set="AR4",
        gwp_words="100-year GWPs from the IPCC Fourth Assessment Report (AR4)",
        reference_year=2019,
        year_note="reference_year 2019: EPA states the factors are based on GHG data "
        "representing 2019 (data.gov metadata of v1.2).",
        doi="10.23719/1528686",
    ),
    2022: _Edition(
        version="v1.3.0",
        gwp_set="AR5",
        gwp_words="100-year GWPs from the IPCC Fifth Assessment Report (AR5)",
        reference_year=2022,
        year_note="reference_year 2022 is the price year of the dollar (2022 USD), not a "
        "data year: the publisher's files here do not state the year of the GHG data.",
        doi="10.23719/1531143",
    ),
}
_CODE_COLUMNS = ("NAICS Code 2017", "2017 NAICS Code")
_TITLE_COLUMNS = ("NAICS Title 2017", "2017 NAICS Title")
WITH_MARGINS = "Supply Chain Emission Factors with Margins"
WITHOUT_MARGINS = "Supply Chain Emission Factors without Margins"
MARGINS = "Margins of Supply Chain Emission Factors"
_COLUMNS = ("GHG", "Unit", WITHOUT_MARGINS, MARGINS, WITH_MARGINS, "Reference USEEIO Code")
_UNIT = re.compile(r"^kg CO2e/(\d{4}) USD, purchaser price$")


class EpaSupplyChainImporter:
    name = "epa-supply-chain"
    title = "US EPA Supply Chain GHG Emission Factors by NAICS-6, CO2e file (.csv)"
    extensions = (".csv",)

    def read(
        self, data: bytes, *, through_year: int | None = None, gwp: GwpChoice | None = None
    ) -> Iterator[ImportedRow | SkippedRow]:
        refuse_through_year(self.name, through_year)
        refuse_gwp(self.name, gwp)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                "not_utf8", Message("importer.not_utf8", reason=exc.reason)
            ) from exc
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        code_column = next((c for c in _CODE_COLUMNS if c in header), None)
        title_column = next((c for c in _TITLE_COLUMNS if c in header), None)
        missing = [
            *([] if code_column else [_CODE_COLUMNS[0]]),
            *([] if title_column else [_TITLE_COLUMNS[0]]),
            *(name for name in _COLUMNS if name not in header),
        ]
        if missing or code_column is None or title_column is None:
            raise ImportFileError(
                "missing_column",
                Message("importer.missing_columns", columns=", ".join(missing)),
                SourceCell(None, 1, missing[0] if missing else None),
            )
        for row_number, cells in enumerate(reader, start=2):
            yield self._row(row_number, cells, code_column, title_column)

    def _row(
        self, row: int, cells: dict[str, Any], code_column: str, title_column: str
    ) -> ImportedRow | SkippedRow:
        def get(name: str) -> str:
            return str(cells.get(name) or "").strip()

        unit_text = get("Unit")
        unit_match = _UNIT.match(unit_text)
        edition = _EDITIONS.get(int(unit_match.group(1))) if unit_match else None
        if edition is None or unit_match is None:
            return SkippedRow(
                SourceCell(None, row, "Unit"),
                "unit_not_representable",
                Message("importer.unit_not_representable", unit=unit_text),
            )
        if get("GHG") != "All GHGs":
            return SkippedRow(
                SourceCell(None, row, "GHG"),
                "unknown_ghg_unit",
                Message("importer.unknown_ghg_unit", ghg_unit=get("GHG")),
            )
        price_year = int(unit_match.group(1))
        code, title = get(code_column), get(title_column)
        raw = get(WITH_MARGINS)
        try:
            value: Any = float(raw)
        except ValueError:
            value = raw  # the upload path reports the cell as not a number
        path = [code[:n] for n in (2, 3, 4, 5) if len(code) > n]
        leaf = f"{code} {title}".replace("/", "-")
        record: dict[str, Any] = {
            "factor_code": f"naics-{code}",
            "activity_id": f"epa-useeio-naics-{code}",
            "name_en": f"{title} (NAICS {code}), supply-chain emissions per {price_year} US "
            "dollar, purchaser price",
            "category": "/".join(["naics-2017", *path, leaf])[:255],
            "product_code_scheme": "NAICS2017",
            "product_code": code,
            "region": "US",
            "reference_year": edition.reference_year,
            "unit": f"USD_{price_year}",
            "co2e": value,
            "gwp_set": edition.gwp_set,
            "boundary": "cradle-to-gate",
            "method": "USEEIO environmentally-extended input-output model",
            "source_title": "Supply Chain Greenhouse Gas Emission Factors for US Industries "
            f"and Commodities {edition.version} by NAICS-6",
            "source_publisher": "U.S. EPA Office of Research and Development (ORD)",
            "source_doi": edition.doi,
            "source_url": f"https://doi.org/{edition.doi}",
            "source_locator": f"CO2e file, row {row}, column '{WITH_MARGINS}'",
            "notes": f"kg CO2e per {price_year} USD, purchaser price, all GHGs "
            f"({edition.gwp_words}). co2e is EPA's '{WITH_MARGINS}' (SEF+MEF); without "
            f"margins (SEF) {get(WITHOUT_MARGINS)}, margins (MEF) {get(MARGINS)}. USEEIO "
            f"commodity {get('Reference USEEIO Code')}. {edition.year_note}",
        }
        field_cells = {
            "factor_code": code_column,
            "activity_id": code_column,
            "product_code": code_column,
            "category": code_column,
            "name_en": title_column,
            "unit": "Unit",
            "co2e": WITH_MARGINS,
            "reference_year": "Unit",
        }
        return ImportedRow(
            row=row,
            values=record,
            cells={k: SourceCell(None, row, v) for k, v in field_cells.items()},
        )
