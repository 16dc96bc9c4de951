"""Every search shape at national scale: time per shape as a ratio to a lookup, and its plan.

On a database of N synthetic factors (default 1,000,000, labelled synthetic, built through the
real services by `bench.read_api.build_database`; `--database-url` reuses one built before,
`--build` builds one and keeps it), each search shape the API allows is requested in this
process (FastAPI's TestClient: the real app, routes, session and statement budgets), several
times; the median is printed next to the median of a lookup by code measured in the same run,
as a ratio. Every statement that reads `factor` is also explained:

- PostgreSQL: does the plan hold a `Seq Scan` on `factor`?
- SQLite: does `EXPLAIN QUERY PLAN` say `SCAN factor` (a full pass over the table or an index),
  or search `factor` by its version id alone (a whole release) without a LIMIT, or with the
  release's rows sorted before the LIMIT (`USE TEMP B-TREE FOR ORDER BY`)?

A shape refused as too broad (422) or stopped by its budget (503) is reported as such: its
time is that of the refusal, or of the budget.

    python -m bench.search_scale --database-url URL [--repeat 5] [--budget-ms 30000] [--json F]
    python -m bench.search_scale --build URL [--factors 1000000]

Run it from another checkout's code (`PYTHONPATH=/path/to/other`) against the same database
to compare before and after a change; the migration state of the database is printed.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from app.core.config import Settings
from app.core.migrations import current_revision
from app.core.pagination import id_cursor
from app.main import create_app

PUBLISHER = "bench-synthetic"
DATASET = "synthetic-factors"
LOOKUP = f"/v1/factors/{PUBLISHER}/{DATASET}/syn-{{:06d}}"

# (label, path, query). The synthetic names are "合成因子 syn-NNNNNN" and "Synthetic factor
# syn-NNNNNN"; activity ids "synthetic-<sector>-NN" (48); 36 regions, 10 years, 11 units.
SHAPES: list[tuple[str, str, dict[str, str]]] = [
    ("list, no filter", "/v1/factors", {"limit": "100"}),
    ("list, deep cursor (id > 900,000)", "/v1/factors", {"limit": "100", "cursor": "@deep"}),
    ("region", "/v1/factors", {"region": "CN-GD", "limit": "100"}),
    ("region + year", "/v1/factors", {"region": "CN-GD", "year": "2020", "limit": "100"}),
    ("activity_id", "/v1/factors", {"activity_id": "synthetic-steel-03", "limit": "100"}),
    ("year", "/v1/factors", {"year": "2020", "limit": "100"}),
    ("unit", "/v1/factors", {"unit": "MJ", "limit": "100"}),
    ("category", "/v1/factors", {"category": "synthetic/steel", "limit": "100"}),
    ("boundary", "/v1/factors", {"boundary": "cradle-to-grave", "limit": "100"}),
    ("dataset", "/v1/factors", {"dataset": f"{PUBLISHER}/{DATASET}", "limit": "100"}),
    ("version pin", "/v1/factors", {"dataset": f"{PUBLISHER}/{DATASET}", "version": "1.0.0"}),
    ("q en, selective", "/v1/factors", {"q": "syn-00012"}),
    ("q zh + en", "/v1/factors", {"q": "合成因子 syn-00012"}),
    ("q zh, in every name", "/v1/factors", {"q": "合成因子"}),
    ("q en, 1/8 of rows", "/v1/factors", {"q": "steel"}),
    ("q 2 chars + region (issue 22)", "/v1/factors", {"q": "电网", "region": "CN"}),
    (
        "q 2 chars + activity + region",
        "/v1/factors",
        {"q": "电网", "activity_id": "synthetic-electricity-01", "region": "CN"},
    ),
    ("q + region + year", "/v1/factors", {"q": "syn-0001", "region": "CN", "year": "2020"}),
    ("q + unit", "/v1/factors", {"q": "syn-00012", "unit": "MJ"}),
    ("q + category", "/v1/factors", {"q": "syn-00012", "category": "synthetic/steel"}),
    ("q + boundary", "/v1/factors", {"q": "syn-00012", "boundary": "cradle-to-grave"}),
    ("q + dataset", "/v1/factors", {"q": "syn-00012", "dataset": f"{PUBLISHER}/{DATASET}"}),
    ("facets, region + year", "/.json", {"region": "CN-GD", "year": "2020"}),
    ("facets, q", "/.json", {"q": "syn-00012"}),
    ("facets, unfiltered (home page)", "/.json", {}),
]


@dataclass
class ShapeResult:
    label: str
    status: int
    median_ms: float
    ratio: float = 0.0
    full_scans: list[str] = field(default_factory=list)


# A search of factor by its version id alone: every row of a release, which at national scale
# is most of the table.
RELEASE_PASS = re.compile(r"^SEARCH factor USING (COVERING )?INDEX \w+ \(version_id=\?\)$")


def sqlite_full_passes(statement: str, details: list[str]) -> list[str]:
    """SQLite plan lines that read all of `factor` or a whole release of it. A page (ORDER BY
    id with a LIMIT) that walks the table or a release in id order stops at its LIMIT; one
    that sorts them first (`USE TEMP B-TREE FOR ORDER BY`) does not."""
    sorted_first = any("TEMP B-TREE FOR ORDER BY" in d for d in details)
    if " LIMIT " in statement and not sorted_first:
        return []
    passes = [d for d in details if RELEASE_PASS.search(d) or re.match(r"SCAN factor( |$)", d)]
    if passes and sorted_first:
        passes.append("USE TEMP B-TREE FOR ORDER BY")
    return passes


def full_scans(
    engine: Engine, statement: str, parameters: Any, *, planned_rows: int | None = None
) -> list[str]:
    """The plan lines of `statement` that read the whole `factor` table or a whole release.

    `planned_rows` (PostgreSQL): the row count the planner is told `factor` holds, so that a
    small table with its real distribution (ANALYZE) is planned as one at national scale
    (tests/test_search_plans.py); None plans the table as it is (this bench, at real size).
    """
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            if planned_rows is not None:
                cursor.execute(
                    "UPDATE pg_class SET reltuples = %(rows)s WHERE oid = 'factor'::regclass",
                    {"rows": planned_rows},
                )
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            row = cursor.fetchone()
            assert row is not None
            found: list[str] = []

            def walk(node: dict[str, Any]) -> None:
                if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") == "factor":
                    found.append(json.dumps({k: node.get(k) for k in ("Node Type", "Filter")}))
                for child in node.get("Plans", []):
                    walk(child)

            walk(row[0][0]["Plan"])
            return found
        cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return sqlite_full_passes(statement, [str(row[-1]) for row in cursor.fetchall()])
    finally:
        raw.close()


def timed(client: TestClient, path: str, params: dict[str, str]) -> tuple[int, float]:
    started = time.perf_counter()
    response = client.get(path, params=params)
    return response.status_code, (time.perf_counter() - started) * 1000


def run(url: str, repeat: int, budget_ms: int) -> dict[str, Any]:
    settings = Settings(
        database_url=url,
        db_timeout_search_ms=budget_ms,
        db_timeout_read_ms=budget_ms,
        max_expensive_requests=64,
    )
    app = create_app(settings)
    engine: Engine = app.state.engine
    with engine.connect() as connection:
        factors = connection.execute(text("SELECT count(*) FROM factor")).scalar_one()
        deep_id = connection.execute(
            text("SELECT id FROM factor ORDER BY id LIMIT 1 OFFSET :n"),
            {"n": max(0, int(factors * 0.9))},
        ).scalar_one()
    revision = current_revision(engine)
    captured: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if re.search(r"\bfactor\b", statement):
            captured.append((statement, parameters))

    results: list[ShapeResult] = []
    with TestClient(app) as client:
        # Baseline: lookups by code, spread over the table, interleaved with the shapes.
        lookups: list[float] = []

        def lookup_round(count: int) -> None:
            for n in range(count):
                status, ms = timed(client, LOOKUP.format((n * 7919) % factors), {})
                assert status == 200, status
                lookups.append(ms)

        lookup_round(20)  # warm-up
        lookups.clear()
        for label, path, query in SHAPES:
            params = dict(query)
            if params.get("cursor") == "@deep":
                params["cursor"] = id_cursor(deep_id, {}) or ""
            captured.clear()
            event.listen(engine, "before_cursor_execute", record)
            status, first = timed(client, path, params)
            event.remove(engine, "before_cursor_execute", record)
            scans: list[str] = []
            for statement, parameters in captured:
                scans += full_scans(engine, statement, parameters)
            times = [first]
            # Slow shapes once only: their time is the budget's, not a sample.
            if first < budget_ms * 0.5:
                for _ in range(repeat - 1):
                    times.append(timed(client, path, params)[1])
            lookup_round(10)
            results.append(ShapeResult(label, status, statistics.median(times), 0.0, scans))
            print(
                f"  {label:<36} {status}  {statistics.median(times):9.1f} ms"
                f"  {'FULL SCAN' if scans else 'indexed'}",
                file=sys.stderr,
                flush=True,
            )
    app.state.engine.dispose()
    baseline = statistics.median(lookups)
    for result in results:
        result.ratio = result.median_ms / baseline
    return {
        "database": engine.dialect.name,
        "factors": factors,
        "migration": revision,
        "lookup_median_ms": baseline,
        "shapes": [vars(r) for r in results],
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\n{report['factors']:,} synthetic factors on {report['database']} "
        f"(migration {report['migration']}); lookup by code: {report['lookup_median_ms']:.1f} ms"
    )
    print(f"{'shape':<38}{'status':>7}{'median ms':>12}{'x lookup':>10}  plan")
    for shape in report["shapes"]:
        plan = "; ".join(sorted(set(shape["full_scans"]))) or "index only"
        print(
            f"{shape['label']:<38}{shape['status']:>7}{shape['median_ms']:>12.1f}"
            f"{shape['ratio']:>10.1f}  {plan}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="a database built before (kept as it is)")
    parser.add_argument("--build", metavar="URL", help="build N synthetic factors here first")
    parser.add_argument("--factors", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--budget-ms", type=int, default=30_000)
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args(argv)
    url = args.database_url
    if args.build:
        from bench.read_api import build_database

        print(f"building {args.factors:,} synthetic factors (labelled synthetic)…", flush=True)
        build_database(args.build, args.factors, args.seed)
        url = args.build
    if not url:
        parser.error("give --database-url or --build")
    report = run(url, args.repeat, args.budget_ms)
    print_report(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
