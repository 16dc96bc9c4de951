"""IPCC 2006 Guidelines, Vol. 2, Ch. 2, Tables 2.2–2.5: the text of the tables, read into rows.

The IPCC publishes the tables in a PDF only. The provenance register holds their text as
extracted from the IGES PDF (`ipcc_2006/ch2_tables_2.2-2.5.txt`, one `=== PDF page N ===`
section per page, the chapter's page N printed as 2.N); this module reads the default and the
lower and upper limits of CO2, CH4 and N2O of a fuel in each table from that text, so that the
seed's rows are parsed from the publisher's numbers, never typed again. `write_release` makes
the seed's CSV of the `ipcc-tfi/ipcc-2006-stationary-combustion` dataset:

    python -m app.importers.ipcc_2006 ch2_tables_2.2-2.5.txt seed_data/ipcc-tfi/…/1.0.0.csv

The extraction keeps each table row on one line: the fuel, maybe an `r` or `n` flag (revised
since, or new in, the 1996 Guidelines: not part of a number) before a value, then CO2 default,
lower, upper (kg/TJ, thousands separated by a space: "56 100"), CH4 default, lower, upper and
N2O default, lower, upper. Only the fuels the dataset holds are read; each must be found once
per table, with nine numbers, or the reading fails.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from app.reference.loader import REFERENCE_DIR

PAGE = re.compile(r"^=== PDF page (\d+) ===$", re.MULTILINE)
TABLE = re.compile(r"^TABLE (2\.[2-5])\b", re.MULTILINE)
# CO2 values of these fuels are five or six digits printed with a space: "56 100", "101 000".
CO2_VALUE = r"\d{2,3} \d{3}"
SMALL_VALUE = r"\d+(?:\.\s?\d+)?"  # "0.3", "1.5"; the extraction splits one as "1. 5"
FLAG = r"(?:[rn]\s*)?"


@dataclass(frozen=True)
class Table:
    number: str  # "2.3"
    title: str  # as the IPCC titles it
    sector: str  # IPCC category code(s)
    slug: str  # the activity and category suffix
    category: str
    name_en: str
    name_zh: str


TABLES: dict[str, Table] = {
    table.number: table
    for table in (
        Table(
            "2.2",
            "Default emission factors for stationary combustion in the energy industries",
            "1.A.1",
            "energy-industries",
            "energy/stationary-combustion/energy-industries",
            "stationary combustion in the energy industries",
            "能源工业",
        ),
        Table(
            "2.3",
            "Default emission factors for stationary combustion in manufacturing industries "
            "and construction",
            "1.A.2",
            "manufacturing-industries-and-construction",
            "energy/stationary-combustion/manufacturing-industries-and-construction",
            "stationary combustion in manufacturing industries and construction",
            "制造业和建筑业",
        ),
        Table(
            "2.4",
            "Default emission factors for stationary combustion in the "
            "commercial/institutional category",
            "1.A.4.a",
            "commercial-institutional",
            "energy/stationary-combustion/commercial-institutional",
            "stationary combustion in the commercial/institutional category",
            "商业/机构",
        ),
        Table(
            "2.5",
            "Default emission factors for stationary combustion in the residential and "
            "agriculture/forestry/fishing/fishing farms categories",
            "1.A.4.b, 1.A.4.c",
            "residential-agriculture-forestry-fishing",
            "energy/stationary-combustion/residential-agriculture-forestry-fishing",
            "stationary combustion in the residential and agriculture/forestry/fishing/fishing "
            "farms categories",
            "居民和农业/林业/渔业/渔场",
        ),
    )
}


@dataclass(frozen=True)
class Gas:
    default: Decimal
    lower: Decimal
    upper: Decimal


@dataclass(frozen=True)
class TableRow:
    table: str
    page: str  # as printed: "2.18"
    fuel: str  # as printed: "Gas/Diesel Oil"
    co2: Gas
    ch4: Gas
    n2o: Gas


class TableTextError(ValueError):
    pass


def _number(text: str) -> Decimal:
    return Decimal(re.sub(r"\s", "", text))


def _pages(text: str) -> Iterable[tuple[str, str]]:
    """(printed page, its text) for every page section of the file."""
    marks = list(PAGE.finditer(text))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        body = text[mark.end() : following.start() if following else len(text)]
        page = f"2.{mark.group(1)}"
        if page not in body:  # the page's own header prints its number
            raise TableTextError(f"PDF page {mark.group(1)} does not print page {page}")
        yield page, body


def _row_pattern(fuel: str) -> re.Pattern[str]:
    small = rf"{FLAG}({SMALL_VALUE})"
    return re.compile(
        rf"^{re.escape(fuel)}\s+"
        rf"{FLAG}({CO2_VALUE})\s+({CO2_VALUE})\s+({CO2_VALUE})\s+"
        rf"{small}\s+{small}\s+{small}\s+{small}\s+{small}\s+{small}\s*$",
        re.MULTILINE,
    )


def read_tables(text: str, fuels: Sequence[str]) -> list[TableRow]:
    """Each fuel's row in each of Tables 2.2–2.5, in table order then the order of `fuels`."""
    found: dict[tuple[str, str], TableRow] = {}
    for page, body in _pages(text):
        table = TABLE.search(body)
        if table is None:
            continue
        for fuel in fuels:
            matches = _row_pattern(fuel).findall(body)
            if len(matches) > 1:
                raise TableTextError(f"Table {table.group(1)} p. {page}: '{fuel}' twice")
            if not matches:
                continue
            key = (table.group(1), fuel)
            if key in found:
                raise TableTextError(f"Table {key[0]}: '{fuel}' on two pages")
            values = [_number(cell) for cell in matches[0]]
            found[key] = TableRow(
                table=table.group(1),
                page=page,
                fuel=fuel,
                co2=Gas(*values[0:3]),
                ch4=Gas(*values[3:6]),
                n2o=Gas(*values[6:9]),
            )
    missing = [f"Table {t} '{f}'" for t in TABLES for f in fuels if (t, f) not in found]
    if missing:
        raise TableTextError(f"not found: {', '.join(missing)}")
    return [found[(t, f)] for t in TABLES for f in fuels]


# --------------------------------------------------------------------------- the seed's CSV


def _ar5_gwp100(reference_dir: Path) -> dict[str, Decimal]:
    """AR5 GWP100 of CH4 and N2O (without climate-carbon feedback) from the reference table,
    with which the seed's release 1.0.0 computed co2e."""
    with (reference_dir / "gwp100.csv").open(newline="", encoding="utf-8") as handle:
        values = {
            row["gas"].lower(): Decimal(row["value"])
            for row in csv.DictReader(handle)
            if row["gwp_set"] == "AR5" and row["gas"] in ("CH4", "N2O")
        }
    return values


SOURCE_TITLE = (
    "2006 IPCC Guidelines for National Greenhouse Gas Inventories, Volume 2: Energy, "
    "Chapter 2: Stationary Combustion"
)


def _plain(value: Decimal) -> str:
    """A decimal as the CSV writes it: no exponent, no trailing zeros (56154.5, 0.03)."""
    text = format(value.normalize(), "f")
    return text


def _differences(rows: Sequence[TableRow], fuel: str) -> str:
    """How Tables 2.3–2.5 differ from Table 2.2 for one fuel, read from the tables."""
    by_table = {row.table: row for row in rows if row.fuel == fuel}
    energy = by_table["2.2"]
    parts = []
    for number in ("2.3", "2.4", "2.5"):
        other = by_table[number]
        gases = [
            name
            for name, a, b in (
                ("CO2", energy.co2, other.co2),
                ("CH4", energy.ch4, other.ch4),
                ("N2O", energy.n2o, other.n2o),
            )
            if a != b
        ]
        if gases:
            changed = "; ".join(
                f"{name} {_plain(getattr(other, name.lower()).default)} kg/TJ" for name in gases
            )
            parts.append(f"Table {number} differs in {', '.join(gases)} ({changed})")
        else:
            parts.append(f"Table {number} gives the same defaults")
    return (
        f"For this fuel, {'; '.join(parts)}; each table is a factor of its own in this "
        "dataset (from release 1.1.0)."
    )


def _notes(row: TableRow, rows: Sequence[TableRow], gwp: dict[str, Decimal]) -> str:
    co2e = _co2e(row, gwp)
    table = TABLES[row.table]
    text = (
        f"Fuel as printed in Table {row.table}: '{row.fuel}'. Net calorific basis (per TJ "
        f"NCV). Table {row.table} as printed: CO2 default {_plain(row.co2.default)} kg/TJ, "
        f"95% range {_plain(row.co2.lower)}-{_plain(row.co2.upper)} kg/TJ; CH4 default "
        f"{_plain(row.ch4.default)} kg/TJ, range {_plain(row.ch4.lower)}-{_plain(row.ch4.upper)}; "
        f"N2O default {_plain(row.n2o.default)} kg/TJ, range {_plain(row.n2o.lower)}-"
        f"{_plain(row.n2o.upper)}. Ranges are per gas and are not a CO2e interval, so "
        f"uncertainty_low/high are left empty. co2e = {_plain(row.co2.default)} + "
        f"{_plain(gwp['ch4'])}*{_plain(row.ch4.default)} + {_plain(gwp['n2o'])}*"
        f"{_plain(row.n2o.default)} = {_plain(co2e)} (AR5 "
        "GWP100 without climate-carbon feedback; computed by efdb, not printed by the IPCC)."
    )
    if row.table == "2.2":
        return f"{text} Energy industries only. {_differences(rows, row.fuel)}"
    return (
        f"{text} Table {row.table}, '{table.title}' (IPCC category {table.sector}) only: "
        "Table 2.2 (energy industries) and the other tables of Tables 2.3-2.5 are factors of "
        "their own."
    )


def _co2e(row: TableRow, gwp: dict[str, Decimal]) -> Decimal:
    return row.co2.default + gwp["ch4"] * row.ch4.default + gwp["n2o"] * row.n2o.default


def release_rows(
    text: str,
    previous: Sequence[dict[str, str]],
    name_zh: dict[str, str],
    gwp: dict[str, Decimal],
) -> list[dict[str, str]]:
    """The rows of a release: one per fuel of `previous` (the released Table 2.2 rows, whose
    codes and wording stay) and table. `name_zh` gives each fuel's Chinese name."""
    fuel_of = {
        row["factor_code"]: re.search(r"Table 2\.2: '([^']+)'", row["notes"]) for row in previous
    }
    fuels = []
    for code, match in fuel_of.items():
        if match is None:
            raise TableTextError(f"{code}: notes do not name the fuel as printed in Table 2.2")
        fuels.append(match.group(1))
    rows = read_tables(text, fuels)
    out: list[dict[str, str]] = []
    for row in rows:
        template = next(p for p, fuel in zip(previous, fuels, strict=True) if fuel == row.fuel)
        table = TABLES[row.table]
        code = template["factor_code"]
        fuel_zh = name_zh[code]
        record = dict(template)
        record.update(
            {
                "factor_code": code if row.table == "2.2" else f"{code}-{table.slug}",
                "activity_id": f"{code}-stationary-combustion-{table.slug}",
                "name_zh": f"{fuel_zh}固定源燃烧（{table.name_zh}）IPCC缺省排放因子",
                "name_en": f"{row.fuel}, {table.name_en}, IPCC default",
                "description": f"IPCC 2006 default emission factors for {table.name_en} (kg of "
                "gas per TJ on a net calorific basis); co2e computed by efdb with AR5 GWP100.",
                "category": table.category,
                "co2e": _plain(_co2e(row, gwp)),
                "co2": _plain(row.co2.default),
                "ch4": _plain(row.ch4.default),
                "n2o": _plain(row.n2o.default),
                "gwp_set": "AR5",
                "boundary": "combustion",
                "source_title": SOURCE_TITLE,
                "source_locator": f"Vol. 2, Ch. 2, Table {row.table}, p. {row.page}",
                "notes": _notes(row, rows, gwp),
            }
        )
        out.append(record)
    return out


def write_release(source: Path, previous_csv: Path, reference_dir: Path = REFERENCE_DIR) -> str:
    """The CSV text of the release built from `source` and the released `previous_csv`."""
    with previous_csv.open(newline="", encoding="utf-8") as handle:
        previous = list(csv.DictReader(handle))
    # The released Chinese names, without the sector: "无烟煤固定源燃烧（能源工业）…" → 无烟煤.
    name_zh = {row["factor_code"]: row["name_zh"].split("固定源燃烧")[0] for row in previous}
    # 1.0.0 wrote 柴油（瓦斯油/柴油）, which repeats itself; the activity label says 瓦斯油/柴油.
    name_zh = {
        code: "瓦斯油/柴油" if name == "柴油（瓦斯油/柴油）" else name
        for code, name in name_zh.items()
    }
    rows = release_rows(
        source.read_text(encoding="utf-8"), previous, name_zh, _ar5_gwp100(reference_dir)
    )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(previous[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


if __name__ == "__main__":  # pragma: no cover - a tool for whoever rebuilds the seed's CSV
    sys.stdout.write(write_release(Path(sys.argv[1]), Path(sys.argv[2])))
