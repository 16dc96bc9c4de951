"""China MEE/NBS electricity CO2 emission factors and MEE/NBS/NEA electricity carbon-footprint
factors, as the table `cn_mee_electricity_factors_2021-2024.csv` lists them (one row per
factor, citing its announcement; see seed_data/README.md for its provenance).

The mapping:

- Columns read: `data_year` → `reference_year`; `factor_type` (which table of which
  announcement) → the activity, the code and the boundary; `level` and `region_zh` → `region`
  (national → CN; the seven regional grids → `CN-GRID-…`; a province → its ISO 3166-2 code;
  for a carbon-footprint row `region_zh` names the generation type or grid part, and the
  region is CN); `value` → `co2e` (and `co2` for the kg CO2 factors); `unit` `kgCO2/kWh` or
  `kgCO2e/kWh` → kWh; `announcement` → `source_title`, `source_year` (the year it was issued)
  and `source_url` (the mee.gov.cn address it names, if any); `source` and `transcription` →
  `source_locator` and `notes`.
- `factor_code`: `{kind}-{region or type}-{year}`, e.g. `co2-average-CN-BJ-2022`,
  `footprint-wind-CN-2024`: the same factor of the same year has the same code in every
  release, and a release for a later announcement adds the new year's codes.
- An unknown region, type or unit is passed on as the file gives it, so the upload report
  names the row and column (`region_zh`, `unit`) the service cannot place.
- `through_year`: only the rows of that data year and earlier (the seed releases one
  version per announcement year from the one table).
"""

from __future__ import annotations

import csv
import io
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
    refuse_gwp,
)

_COLUMNS = ("data_year", "factor_type", "level", "region_zh", "value", "unit", "announcement")
# Provincial-level divisions (GB/T 2260 short names) → ISO 3166-2:CN.
PROVINCES = {
    "北京": "CN-BJ", "天津": "CN-TJ", "河北": "CN-HE", "山西": "CN-SX", "内蒙古": "CN-NM",
    "辽宁": "CN-LN", "吉林": "CN-JL", "黑龙江": "CN-HL", "上海": "CN-SH", "江苏": "CN-JS",
    "浙江": "CN-ZJ", "安徽": "CN-AH", "福建": "CN-FJ", "江西": "CN-JX", "山东": "CN-SD",
    "河南": "CN-HA", "湖北": "CN-HB", "湖南": "CN-HN", "广东": "CN-GD", "广西": "CN-GX",
    "海南": "CN-HI", "重庆": "CN-CQ", "四川": "CN-SC", "贵州": "CN-GZ", "云南": "CN-YN",
    "西藏": "CN-XZ", "陕西": "CN-SN", "甘肃": "CN-GS", "青海": "CN-QH", "宁夏": "CN-NX",
    "新疆": "CN-XJ",
}  # fmt: skip
# The regional grids of the announcements' regional tables (seed_data/reference/locations.csv).
GRIDS = {
    "华北": "CN-GRID-NORTH", "东北": "CN-GRID-NORTHEAST", "华东": "CN-GRID-EAST",
    "华中": "CN-GRID-CENTRAL", "西北": "CN-GRID-NORTHWEST", "南方": "CN-GRID-SOUTH",
    "西南": "CN-GRID-SOUTHWEST",
}  # fmt: skip
# Carbon-footprint rows: region_zh names a generation type or a part of the grid.
_FOOTPRINT_PARTS = {
    "全国": ("average", "全国电力平均碳足迹因子", "national average electricity"),
    "燃煤发电": ("coal", "燃煤发电碳足迹因子", "coal-fired generation"),
    "燃气发电": ("gas", "燃气发电碳足迹因子", "gas-fired generation"),
    "水力发电": ("hydro", "水力发电碳足迹因子", "hydropower generation"),
    "核能发电": ("nuclear", "核能发电碳足迹因子", "nuclear generation"),
    "风力发电": ("wind", "风力发电碳足迹因子", "wind generation"),
    "光伏发电": ("solar-pv", "光伏发电碳足迹因子", "solar photovoltaic generation"),
    "光热发电": ("solar-thermal", "光热发电碳足迹因子", "solar thermal generation"),
    "生物质发电": ("biomass", "生物质发电碳足迹因子", "biomass generation"),
    "输配电（不含线损）": (
        "td-excl-losses",
        "输配电碳足迹因子（不含线损）",
        "transmission and distribution, without line losses",
    ),
    "输配电（含线损）": (
        "td-incl-losses",
        "输配电碳足迹因子（含线损）",
        "transmission and distribution, with line losses",
    ),
}
_UNITS = {"kgCO2/kWh": "kWh", "kgCO2e/kWh": "kWh"}
_URL = re.compile(r"mee\.gov\.cn/[^\s);；，,]+")


def _kind(factor_type: str) -> tuple[str, str, str, str] | None:
    """(code prefix, activity_id, zh name stem, en name stem) of a factor_type."""
    text = re.sub(r"\s*\(表\d+\)\s*$", "", factor_type).strip()
    return {
        "CO2 average": (
            "co2-average",
            "electricity-grid-mix",
            "电力平均二氧化碳排放因子",
            "average electricity CO2 emission factor",
        ),
        "CO2 average excl. market-traded non-fossil": (
            "co2-average-excl-market-non-fossil",
            "mee-cn-electricity-excl-market-non-fossil",
            "电力平均二氧化碳排放因子（不包括市场化交易的非化石能源电量）",
            "average electricity CO2 emission factor excluding market-traded non-fossil power",
        ),
        "CO2 fossil-fuel power": (
            "co2-fossil-power",
            "mee-cn-electricity-fossil-fuel-power",
            "化石能源电力二氧化碳排放因子",
            "fossil-fuel electricity CO2 emission factor",
        ),
    }.get(text) or (
        ("footprint", "mee-cn-electricity-carbon-footprint", "", "")
        if text.startswith("carbon footprint")
        else None
    )


def _issued_year(announcement: str) -> int | None:
    after_title = announcement.split("》", 1)[-1]
    found = re.search(r"(20\d\d)", after_title)
    return int(found.group(1)) if found else None


class MeeElectricityImporter:
    name = "mee-electricity"
    title = "China MEE/NBS electricity CO2 and carbon-footprint factors table (.csv)"
    extensions = (".csv",)

    def read(
        self, data: bytes, *, through_year: int | None = None, gwp: GwpChoice | None = None
    ) -> Iterator[ImportedRow | SkippedRow]:
        refuse_gwp(self.name, gwp)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                "not_utf8", Message("importer.not_utf8", reason=exc.reason)
            ) from exc
        reader = csv.DictReader(io.StringIO(text))
        missing = [name for name in _COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise ImportFileError(
                "missing_column",
                Message("importer.missing_columns", columns=", ".join(missing)),
                SourceCell(None, 1, missing[0]),
            )
        for row_number, cells in enumerate(reader, start=2):
            year_text = (cells.get("data_year") or "").strip()
            if through_year is not None and year_text.isdigit() and int(year_text) > through_year:
                continue
            yield self._row(row_number, cells)

    def _row(self, row: int, cells: dict[str, Any]) -> ImportedRow | SkippedRow:
        def get(name: str) -> str:
            return str(cells.get(name) or "").strip()

        factor_type, level, place = get("factor_type"), get("level"), get("region_zh")
        kind = _kind(factor_type)
        if kind is None:
            return SkippedRow(
                SourceCell(None, row, "factor_type"),
                "unknown_factor_type",
                Message("importer.unknown_factor_type", factor_type=factor_type),
            )
        prefix, activity, name_zh, name_en = kind
        year: Any = int(get("data_year")) if get("data_year").isdigit() else get("data_year")
        region: str
        if prefix == "footprint":
            part = _FOOTPRINT_PARTS.get(place)
            region = "CN"
            if part is None:
                return SkippedRow(
                    SourceCell(None, row, "region_zh"),
                    "unknown_footprint_part",
                    Message("importer.unknown_footprint_part", part=place),
                )
            key, name_zh, name_en = part
            code = f"footprint-{key}-CN-{year}"
            activity = (
                "mee-cn-electricity-carbon-footprint"
                if key == "average"
                else f"mee-cn-electricity-carbon-footprint-{key}"
            )
            zh = f"{year}年{name_zh}"
            en = f"China {name_en}: electricity carbon footprint factor {year}"
            boundary = "cradle-to-gate"
        else:
            if level == "national":
                region, place_en = "CN", "national"
            elif level == "regional":
                region = GRIDS.get(place, place)
                place_en = f"regional grid {place} ({region})"
            else:
                region = PROVINCES.get(place, place)
                place_en = f"province {place} ({region})"
            code = f"{prefix}-{region}-{year}"
            zh = f"{year}年{'全国' if level == 'national' else place}{name_zh}"
            en = f"{year} {name_en}, {place_en}"
            boundary = "combustion"
        raw_value = get("value")
        try:
            value: Any = float(raw_value)
        except ValueError:
            value = raw_value
        unit = _UNITS.get(get("unit"), get("unit"))
        announcement = get("announcement")
        title = announcement.split("(", 1)[0].strip() or announcement
        record: dict[str, Any] = {
            "factor_code": code,
            "activity_id": activity,
            "name_zh": zh,
            "name_en": en,
            "category": "energy/electricity",
            "region": region,
            "reference_year": year,
            "unit": unit,
            "co2e": value,
            "boundary": boundary,
            "source_title": title,
            "source_publisher": "生态环境部 国家统计局"
            + (" 国家能源局" if prefix == "footprint" else ""),
            "source_year": _issued_year(announcement),
            "source_locator": f"{factor_type}, {place}; read from {get('source')}"[:1000],
            "notes": f"Announcement as cited: {announcement}. Transcription: "
            f"{get('transcription') or 'not stated'}. Unit as published: {get('unit')}.",
        }
        if get("unit") == "kgCO2/kWh":
            record["co2"] = value  # a CO2-only factor: kg CO2 is its kg CO2e
        found = _URL.search(announcement)
        if found:
            record["source_url"] = f"https://www.{found.group(0)}"
        field_cells = {
            "co2e": "value",
            "co2": "value",
            "region": "region_zh",
            "unit": "unit",
            "reference_year": "data_year",
            "factor_code": "factor_type",
            "activity_id": "factor_type",
            "source_title": "announcement",
            "source_year": "announcement",
            "source_url": "announcement",
        }
        return ImportedRow(
            row=row,
            values=record,
            cells={k: SourceCell(None, row, v) for k, v in field_cells.items()},
        )
