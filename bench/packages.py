"""A snapshot's openLCA and ILCD packages: assembled from its releases' packages, against
written from its rows.

N synthetic factors (default 20,000, every column filled, labelled synthetic) in R releases
(default 4), each release's export Parquet file written by the service's writer. Timed:

1. each release's own `export.jsonld.zip` and `export.ilcd.zip` (`write_olca`, `write_ilcd`:
   what `efdb exports prepare` or a first download pays once per release);
2. the snapshot's packages assembled from those (`merge_packages`): what a snapshot pays;
3. the baseline: the same writers over all N rows at once (what writing the snapshot's
   packages from its rows would cost).

    python -m bench.packages [--factors 20000] [--releases 4]

Prints rows a second of each, the ratio assembled/written, and the files' sizes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from app.exports.bundle import merge_packages
from app.exports.ilcd import write_ilcd
from app.exports.olca import write_olca
from app.exports.schema import EXPORT_SCHEMA
from app.exports.writer import WrittenFile, write_parquet

SYNTHETIC = "Synthetic benchmark factor (efdb bench; not a real figure)"


def _row(index: int, release: int) -> dict[str, Any]:
    return {
        "publisher": "synth-bench",
        "dataset": f"release-{release}",
        "version": "1.0.0",
        "published_at": datetime(2026, 1, 1, tzinfo=UTC),
        "factor_code": f"f-{index}",
        "activity_id": f"synthetic-activity-{index % 50}",
        "name_zh": f"合成因子 {index}",
        "name_en": f"Synthetic factor {index}",
        "description": SYNTHETIC,
        "category": "synthetic/bench",
        "product_code_scheme": "HS2022",
        "product_code": "7208",
        "region": ("CN", "CN-GD", "GLO")[index % 3],
        "reference_year": 2022,
        "valid_from": date(2022, 1, 1),
        "valid_to": date(2022, 12, 31),
        "unit": ("kWh", "t", "t*km", "m3")[index % 4],
        "co2e": 1.0 + index / 1000 + 28 * 0.001 + 265 * 0.0001,
        "co2": 1.0 + index / 1000,
        "ch4": 0.001,
        "n2o": 0.0001,
        "other_ghg_co2e": None,
        "biogenic_co2": 0.5,
        "ch4_origin": None,
        "gwp_set": "AR5",
        "boundary": "cradle-to-gate",
        "method": "Synthetic",
        "uncertainty_low": 0.5,
        "uncertainty_high": 3.0,
        "uncertainty_distribution": "lognormal",
        "uncertainty_kind": "confidence_interval",
        "uncertainty_confidence_level": 0.95,
        "dq_reliability": 2,
        "dq_completeness": 2,
        "dq_temporal": 1,
        "dq_geographical": 3,
        "dq_technological": 2,
        "source_title": f"{SYNTHETIC} source {index % 20}",
        "source_publisher": "efdb bench",
        "source_year": 2024,
        "source_url": "https://example.org/synthetic",
        "source_doi": None,
        "source_locator": f"row {index}",
        "notes": SYNTHETIC,
        "dqr": 2.0,
        "uid": f"00000000-0000-0000-0000-{index:012d}",
        "license_id": "CC-BY-4.0",
        "license_url": "https://creativecommons.org/licenses/by/4.0/",
        "attribution": "Synthetic benchmark data",
    }


def _parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    batch = pa.RecordBatch.from_pylist(rows, schema=EXPORT_SCHEMA)
    write_parquet(path, [iter([batch])], metadata={})


def _timed(what: Callable[[], WrittenFile]) -> tuple[float, WrittenFile]:
    start = time.perf_counter()
    done = what()
    return time.perf_counter() - start, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--factors", type=int, default=20_000)
    parser.add_argument("--releases", type=int, default=4)
    args = parser.parse_args()
    n, releases = args.factors, args.releases
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows = [_row(i, i % releases) for i in range(n)]
        _parquet(tmp / "all.parquet", rows)
        parts = []
        for release in range(releases):
            part = tmp / f"release-{release}.parquet"
            _parquet(part, [r for r in rows if r["dataset"] == f"release-{release}"])
            parts.append(part)
        for fmt, writer in (("jsonld.zip", write_olca), ("ilcd.zip", write_ilcd)):
            own = 0.0
            packages = []
            for index, part in enumerate(parts):
                package = tmp / f"release-{index}.{fmt}"
                seconds, _ = _timed(partial(writer, package, part))
                own += seconds
                packages.append(package)
            merged_seconds, merged = _timed(partial(merge_packages, tmp / f"snap.{fmt}", packages))
            whole_seconds, whole_file = _timed(
                partial(writer, tmp / f"whole.{fmt}", tmp / "all.parquet")
            )
            ratio = whole_seconds / merged_seconds
            print(
                f"{fmt}: releases' own packages {n / own:,.0f} rows/s ({own:.1f} s, once per "
                f"release); snapshot assembled {n / merged_seconds:,.0f} rows/s "
                f"({merged_seconds:.1f} s, {merged.bytes / 1e6:.1f} MB); written from the rows "
                f"{n / whole_seconds:,.0f} rows/s ({whole_seconds:.1f} s, "
                f"{whole_file.bytes / 1e6:.1f} MB); assembled/written {ratio:.1f}x"
            )


if __name__ == "__main__":
    main()
