"""Synthetic upload files (CSV, JSON Lines, Parquet) for the publishing tests.

Every row is labelled synthetic: these are test fixtures, never real emission factors.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SYNTHETIC_SOURCE = "Synthetic upload fixture (not a real factor)"
COLUMNS = [
    "factor_code",
    "activity_id",
    "name_zh",
    "name_en",
    "region",
    "reference_year",
    "unit",
    "co2e",
    "co2",
    "ch4",
    "n2o",
    "gwp_set",
    "boundary",
    "source_title",
    "source_locator",
]


def synthetic_row(index: int, **overrides: Any) -> dict[str, Any]:
    co2 = 100.0 + index
    row: dict[str, Any] = {
        "factor_code": f"synthetic-{index:05d}",
        "activity_id": "synthetic-activity",
        "name_zh": f"合成因子 {index}",
        "name_en": f"Synthetic factor {index}",
        "region": "CN",
        "reference_year": 2023,
        "unit": "t",
        "co2e": co2 + 28 * 1.0 + 265 * 0.1,
        "co2": co2,
        "ch4": 1.0,
        "n2o": 0.1,
        "gwp_set": "AR5",
        "boundary": "cradle-to-gate",
        "source_title": SYNTHETIC_SOURCE,
        "source_locator": f"row {index}",
    }
    row.update(overrides)
    return row


def csv_bytes(rows: list[dict[str, Any]], columns: list[str] | None = None) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=columns or list(rows[0] if rows else COLUMNS), lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()
