"""The upload template: every column of the upload format and one documented example row."""

from __future__ import annotations

import csv
import io

from app.factors.schemas import UPLOADABLE_FIELDS
from app.publishing.cells import TEXT_LIMITS
from app.publishing.labels import LABEL_COLUMNS

# The documented maximum of every text field, as the template's example row states it.
LIMITS_NOTE = (
    "Text is stored in Unicode NFC; control, bidirectional and invisible characters are "
    "refused (tabs and line breaks only in description and notes). Maximum characters: "
    + ", ".join(f"{name} {limit}" for name, limit in TEXT_LIMITS.items())
    + "."
)

# A real factor, not a synthetic one: IPCC 2006 Guidelines, Vol. 2, Ch. 2, Table 2.2 (p. 2.16),
# natural gas in the energy industries; co2e computed with AR5 GWP100 (28, 265). The same row
# is in seed_data/ipcc-tfi/ipcc-2006-stationary-combustion/1.0.0.csv.
EXAMPLE_ROW: dict[str, str] = {
    "factor_code": "natural-gas",
    "activity_id": "natural-gas-stationary-combustion-energy-industries",
    "name_zh": "天然气固定源燃烧（能源工业）IPCC缺省排放因子",
    "name_en": "Natural Gas, stationary combustion in the energy industries, IPCC default",
    "description": "Example row: kg of each gas per TJ (net calorific basis). Empty cell = null. "
    "Required columns: factor_code, activity_id, name_zh or name_en, region, reference_year, "
    "unit, co2e, boundary, source_title; gwp_set is required when ch4/n2o are given. "
    "ch4_origin (fossil or non_fossil) is optional: empty means fuel combustion is fossil, "
    "other categories unstated. uncertainty_low and uncertainty_high (kg CO2e per unit) are "
    "optional; with them give only what the source declares: uncertainty_kind "
    "(confidence_interval, percentile_range or min_max) and, for the first two, "
    "uncertainty_confidence_level as a fraction (0.95). Empty uncertainty_kind: no confidence "
    "is claimed and estimates do not propagate the interval (this example's source gives per-gas "
    "ranges, not a CO2e interval, so they are empty). "
    "activity_name_zh, activity_name_en, activity_keywords (optional, empty here: this "
    "activity is in the reference vocabulary) name a new activity of your own namespace, "
    "whose activity_id starts with your publisher slug and a hyphen (cisa-hot-rolled-coil "
    "for cisa): both names, and keywords separated by ';' (a keyword with Chinese characters "
    "is a Chinese one). Every row that gives them gives the same for its activity; they are "
    "reviewed with the version and join the activity vocabulary when it is published. "
    + LIMITS_NOTE,
    "category": "energy/stationary-combustion/energy-industries",
    "region": "GLO",
    "reference_year": "2006",
    "unit": "TJ",
    "co2e": "56154.5",
    "co2": "56100",
    "ch4": "1",
    "n2o": "0.1",
    "gwp_set": "AR5",
    "boundary": "combustion",
    "method": "IPCC 2006",
    "source_title": "2006 IPCC Guidelines for National Greenhouse Gas Inventories, Volume 2: "
    "Energy, Chapter 2: Stationary Combustion",
    "source_publisher": "IPCC (National Greenhouse Gas Inventories Programme; published by "
    "IGES, Japan)",
    "source_year": "2006",
    "source_url": "https://www.ipcc-nggip.iges.or.jp/public/2006gl/pdf/2_Volume2/"
    "V2_2_Ch2_Stationary_Combustion.pdf",
    "source_locator": "Vol. 2, Ch. 2, Table 2.2, p. 2.16",
    "notes": "co2e = 56100 + 28*1 + 265*0.1 (AR5 GWP100)",
}


def template_csv() -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=[*UPLOADABLE_FIELDS, *LABEL_COLUMNS], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerow(EXAMPLE_ROW)
    return buffer.getvalue()
