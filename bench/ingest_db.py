"""Where the database's time goes when a draft's rows are stored: COPY into `factor` as the
migrations build it, then with its parts taken away one by one, as ratios to the same COPY
into a bare table, in one run.

On PostgreSQL, in a fresh `efdb_bench_<random>` database (dropped afterwards): the schema from
the real migrations, one publisher, dataset, draft version and source, and N synthetic rows
(bench/ingest.py's generator, validated by the app's `parse_record`) held in memory as the
upload writes them. Each variant runs in its own transaction, rolled back (so every variant
starts from an empty table; `VACUUM factor` before each clears the rolled-back rows): the
variant's DDL, then a binary `COPY factor (...) FROM STDIN` of the N rows with `write_row`, as
the upload sends them, timed.

    python -m bench.ingest_db [--rows 100000] [--postgres-url URL] [--json PATH]

Variants (each includes the removals of the one before it):
  1. factor as migrated: 13 indexes (one GIN pg_trgm), 3 foreign keys, the released-factor guard
  2. without the released-factor guard triggers
  3. without the pg_trgm GIN index on names (text search)
  4. without the three foreign keys
  5. without the eight secondary B-tree indexes (search, resolve, facets, history)
  6. without the primary key and the two unique constraints: a bare table, the baseline
And where an upload writes now (migration 20261209_0912), in one more transaction:
  7. COPY of the same rows into `factor_draft` as migrated (what an upload does)
  8. then INSERT ... SELECT of them into `factor` as migrated, in upload order (what submit
     does: `app.publishing.draft_rows.move_into_factors`)
Information only: the machine's load changes the absolute figures, not much the ratios.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.core.migrations import upgrade_to_head
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import DatasetVersion
from app.factors.models import Source
from app.factors.validation import data_quality_rating
from app.publishing.draft_rows import _MOVED
from app.publishing.publish import (
    _COPY_COLUMNS,
    _DRAFT_COLUMNS,
    _stored_values,
    column_type_oids,
)
from app.publishing.records import parse_record
from bench.ingest import conninfo, write_csv
from bench.read_api import add_common_arguments, backend_version, postgres_database

GUARD = [
    f"DROP TRIGGER factor_immutable_when_released_{event} ON factor"
    for event in ("insert", "update", "delete")
]
GIN = ["DROP INDEX ix_factor_search_text_trgm"]
FOREIGN_KEYS = [
    f"ALTER TABLE factor DROP CONSTRAINT {name}"
    for name in (
        "fk_factor_dataset_id_dataset",
        "fk_factor_source_id_source",
        "fk_factor_version_id_dataset_version",
    )
]
SECONDARY = [
    f"DROP INDEX {name}"
    for name in (
        "ix_factor_boundary",
        "ix_factor_category",
        "ix_factor_dataset_code",
        "ix_factor_dataset_id_id",
        "ix_factor_region_year",
        "ix_factor_resolve",
        "ix_factor_source_id",
        "ix_factor_unit",
    )
]
KEYS = [
    f"ALTER TABLE factor DROP CONSTRAINT {name}"
    for name in ("uq_factor_uid", "uq_factor_version_id_factor_code", "pk_factor")
]
VARIANTS: list[tuple[str, list[str]]] = [
    ("factor as migrated", []),
    ("- released-factor guard", GUARD),
    ("- pg_trgm GIN index", GUARD + GIN),
    ("- 3 foreign keys", GUARD + GIN + FOREIGN_KEYS),
    ("- 8 secondary B-tree indexes", GUARD + GIN + FOREIGN_KEYS + SECONDARY),
    ("- primary key, 2 unique: bare (baseline)", GUARD + GIN + FOREIGN_KEYS + SECONDARY + KEYS),
]


def _draft(url: str) -> tuple[int, int, int]:
    engine = create_engine(url)
    try:
        upgrade_to_head(engine)
        with Session(engine) as session:
            publisher = Publisher(slug="bench-synthetic", name_en="Synthetic (not real)")
            session.add(publisher)
            session.flush()
            dataset = Dataset(
                publisher_id=publisher.id,
                slug="synthetic-factors",
                license_id="CC0-1.0",
                attribution="Synthetic benchmark data (not real factors)",
                redistribution=True,
                commercial_use=True,
            )
            session.add(dataset)
            session.flush()
            version = DatasetVersion(
                dataset_id=dataset.id,
                version="1.0.0",
                major=1,
                minor=0,
                patch=0,
                status="draft",
                created_by="bench.ingest_db",
            )
            source = Source(key_sha256="0" * 64, title="Synthetic benchmark data")
            session.add_all([version, source])
            session.flush()
            ids = (version.id, dataset.id, source.id)
            session.commit()
        return ids
    finally:
        engine.dispose()


def _rows(path: Path, ids: tuple[int, int, int]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row_number, cells in enumerate(csv.DictReader(handle), start=2):
            record = parse_record(row_number, cells)
            assert not isinstance(record, list), record
            rows.append(
                (
                    *_stored_values(record),
                    uuid.uuid4().hex,
                    *ids,
                    row_number,
                    data_quality_rating(record),
                )
            )
    return rows


def run(url: str, count: int) -> list[dict[str, Any]]:
    ids = _draft(url)
    with tempfile.TemporaryDirectory(prefix="efdb-bench-ingest-db-") as folder:
        path = Path(folder) / "rows.csv"
        write_csv(path, count, seed=20251125)
        rows = _rows(path, ids)
    statement = f"COPY factor ({', '.join(_COPY_COLUMNS)}) FROM STDIN (FORMAT binary)"
    results: list[dict[str, Any]] = []
    for label, ddl in VARIANTS:
        with psycopg.connect(conninfo(url), autocommit=True) as connection:
            connection.execute("VACUUM factor")
        with psycopg.connect(conninfo(url)) as connection:
            for command in ddl:
                connection.execute(command)
            started = time.perf_counter()
            with connection.cursor() as cursor:
                types = column_type_oids(cursor, "factor", _COPY_COLUMNS)
                with cursor.copy(statement) as copy:
                    copy.set_types(types)
                    for row in rows:
                        copy.write_row(row)
            seconds = time.perf_counter() - started
            connection.rollback()
        results.append({"variant": label, "seconds": round(seconds, 3)})
        print(f"  {label:<45}{seconds:8.2f} s", flush=True)
    return results


def run_draft(url: str, count: int) -> list[dict[str, Any]]:
    """The same rows COPied into factor_draft, then moved into factor as submit moves them."""
    ids = _draft(url)
    with tempfile.TemporaryDirectory(prefix="efdb-bench-ingest-db-") as folder:
        path = Path(folder) / "rows.csv"
        write_csv(path, count, seed=20251125)
        rows = _rows(path, ids)
    columns = ", ".join(_MOVED)
    results: list[dict[str, Any]] = []
    with psycopg.connect(conninfo(url), autocommit=True) as connection:
        connection.execute("VACUUM factor")
        connection.execute("VACUUM factor_draft")
    with psycopg.connect(conninfo(url)) as connection:
        started = time.perf_counter()
        statement = f"COPY factor_draft ({', '.join(_DRAFT_COLUMNS)}) FROM STDIN (FORMAT binary)"
        with connection.cursor() as cursor:
            types = column_type_oids(cursor, "factor_draft", _DRAFT_COLUMNS)
            with cursor.copy(statement) as copy:
                copy.set_types(types)
                for position, row in enumerate(rows, start=1):
                    copy.write_row((*row, position))
        results.append(
            {"variant": "COPY into factor_draft", "seconds": time.perf_counter() - started}
        )
        started = time.perf_counter()
        connection.execute(
            f"INSERT INTO factor ({columns}) SELECT {columns} FROM factor_draft "
            "WHERE version_id = %s ORDER BY position",
            (ids[0],),
        )
        results.append(
            {
                "variant": "then INSERT ... SELECT into factor (submit)",
                "seconds": time.perf_counter() - started,
            }
        )
        connection.rollback()
    for result in results:
        result["seconds"] = round(result["seconds"], 3)
        print(f"  {result['variant']:<45}{result['seconds']:8.2f} s", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest_db",
        description="COPY into factor with its indexes, keys and triggers taken away one by one.",
    )
    parser.add_argument("--rows", type=int, default=100_000)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with postgres_database(args.postgres_url) as url:
        print(f"{backend_version(url)}; {args.rows:,} synthetic rows; load {load:.1f}")
        results = run(url, args.rows)
    with postgres_database(args.postgres_url) as url:
        drafted = run_draft(url, args.rows)
    bare, first = results[-1]["seconds"], results[0]["seconds"]
    # What the part a variant takes away cost: its time saved, as a share of the first's.
    print(f"\n   {'variant':<45}{'seconds':>9}{'x bare COPY':>13}{'part removed':>14}")
    for index, result in enumerate(results):
        saved = results[index - 1]["seconds"] - result["seconds"] if index else None
        result["x_bare"] = round(result["seconds"] / bare, 2)
        result["removed_share"] = None if saved is None else round(saved / first, 3)
        print(
            f"   {result['variant']:<45}{result['seconds']:>9.2f}{result['x_bare']:>12.2f}x"
            + ("" if saved is None else f"{saved / first:>14.0%}")
        )
    print(f"   the bare COPY itself: {bare / first:.0%} of the first variant's time")
    for result in drafted:
        result["x_bare"] = round(result["seconds"] / bare, 2)
        print(f"   {result['variant']:<45}{result['seconds']:>9.2f}{result['x_bare']:>12.2f}x")
    if args.json:
        payload = json.dumps(
            {"rows": args.rows, "load": load, "variants": results, "draft": drafted}, indent=2
        )
        if str(args.json) == "-":
            print(payload)
        else:
            args.json.write_text(payload + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
