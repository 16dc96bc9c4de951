"""Search facets and the search page of 100 at national scale, on SQLite and PostgreSQL.

For each backend this builds a database of N synthetic factors the way `bench.read_api` does
(its `build_database`: real migrations, `release_directly`, labelled synthetic), or reuses one
(`--sqlite-url`, `--database-url`), then:

1. **Facets.** `app.factors.facets.facet_counts` is called in this process, as the explorer's
   page (`/`, `/.json`) calls it, for the anonymous reader, once per filter shape below after
   a warm-up, `--repeat` times; the median and the slowest milliseconds are printed. The
   explorer's whole answer (`GET /.json?…`, its search page of 20 and the facets) is then
   timed over HTTP against the server, the same shapes, for context.
2. **Search page of 100.** `wrk` (one thread, `--connections` keep-alive connections,
   `--duration` seconds) drives `GET /v1/factors?region=R&limit=100`, R cycling over the 36
   regions of the data, against the efdb server (which keeps anonymous pages while the
   catalogue's generation stays and answers them below its middlewares:
   app/factors/page_cache.py), and `GET /const` against
   `bench.bare_app` (the baseline, same uvicorn settings); the same pages are also requested
   from a second efdb server that keeps none (`EFDB_SEARCH_CACHE_ENTRIES=0`), to show what
   making each page costs. `--rounds` interleaved rounds, the order rotated; the ratio of
   requests/s to the baseline's in the same run is judged (target ≥ 0.25×).

    python -m bench.facets [--backend sqlite|postgresql|both] [--factors 100000]
                           [--repeat 15] [--duration 8] [--rounds 2] [--json PATH]
    python -m bench.facets --backend sqlite --sqlite-url sqlite:////tmp/f.sqlite3 [--build]
    python -m bench.facets --backend postgresql --database-url URL [--build]

`--build` with a URL builds into it and keeps it (for before/after runs of other code with
`PYTHONPATH`); without `--build` the URL must hold a database built before.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.core.db import make_engine, make_sessionmaker
from app.core.principal import ANONYMOUS
from app.factors import service
from app.factors.facets import facet_counts
from app.factors.models import Factor
from bench.read_api import (
    DATASET_SLUG,
    HOST,
    PUBLISHER_SLUG,
    REGIONS,
    add_common_arguments,
    backend_version,
    build_database,
    http_get,
    postgres_database,
    sqlite_database,
    uvicorn_server,
)

SEARCH_PAGE_TARGET = 0.25
FACETS_TARGET_MS = 50.0
PAGE = 100

# (label, filters): the explorer's shapes, from its home page to a text search.
FACET_SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("unfiltered (home page)", {}),
    ("publisher", {"publisher": PUBLISHER_SLUG}),
    ("dataset", {"publisher": PUBLISHER_SLUG, "dataset": DATASET_SLUG}),
    ("license", {"license_id": "CC0-1.0"}),
    ("region", {"region": "CN-GD"}),
    ("year", {"year": 2020}),
    ("category", {"category": "synthetic"}),
    ("region + year", {"region": "CN-GD", "year": 2020}),
    ("activity + unit", {"activity_id": "synthetic-steel-03", "unit": "MJ"}),
    ("q, selective", {"q": "syn-00012"}),
]
_QUERY_NAMES = {"license_id": "license", "dataset": "dataset"}


def _page_query(filters: dict[str, Any]) -> str:
    parts = []
    for name, value in filters.items():
        if name == "dataset":
            continue
        if name == "publisher" and "dataset" in filters:
            parts.append(f"dataset={value}/{filters['dataset']}")
            continue
        parts.append(f"{_QUERY_NAMES.get(name, name)}={value}")
    return "&".join(parts)


@dataclass
class FacetTiming:
    label: str
    filters: dict[str, Any]
    total: int
    ms: list[float]
    page_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.ms)


def time_facets(url: str, repeat: int) -> list[FacetTiming]:
    """facet_counts per shape in this process: one warm-up call, then `repeat` timed calls."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    timings: list[FacetTiming] = []
    try:
        for label, filters in FACET_SHAPES:
            with sessions() as session:
                search = service.FactorFilters(**filters)
                total = facet_counts(session, viewer=ANONYMOUS, filters=search).total
                ms = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    facet_counts(session, viewer=ANONYMOUS, filters=search)
                    ms.append((time.perf_counter() - started) * 1000)
            timings.append(FacetTiming(label, filters, total, ms))
    finally:
        engine.dispose()
    return timings


WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], {["Accept"] = "application/json"})
end
"""
_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors:.*")


def run_wrk(
    port: int,
    paths: Sequence[str],
    seconds: int,
    connections: int,
    workdir: Path,
    *,
    warmup: bool = False,
) -> float:
    """Requests/s of `wrk` cycling over `paths`; any non-2xx answer or socket error fails."""
    script = workdir / f"paths-{port}.lua"
    script.write_text(WRK_SCRIPT % ", ".join(json.dumps(path) for path in paths))
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://{HOST}:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = _RPS.search(result.stdout)
    if warmup:
        return float(match.group(1)) if match else 0.0
    if match is None or _NON_2XX.search(result.stdout) or _ERRORS.search(result.stdout):
        # No Lua response hook (it would slow the load generator): ask each path once.
        statuses = {path: http_get(port, path, timeout=60)[0] for path in paths}
        raise RuntimeError(
            f"wrk failed against port {port}:\n{result.stdout}{result.stderr}\n{statuses}"
        )
    return float(match.group(1))


@dataclass
class BackendResult:
    backend: str
    version: str
    factors: int
    facets: list[FacetTiming]
    search_rps: list[float]
    bare_rps: list[float]
    page_bytes: int
    # The same pages made afresh by a server that keeps none (EFDB_SEARCH_CACHE_ENTRIES=0).
    afresh_rps: list[float]

    @property
    def afresh_ratio(self) -> float:
        return sum(self.afresh_rps) / sum(self.bare_rps)

    @property
    def ratio(self) -> float:
        return sum(self.search_rps) / sum(self.bare_rps)


def _factor_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(Factor)).scalar_one())
    finally:
        engine.dispose()


def bench_backend(
    backend: str, url: str, args: argparse.Namespace, workdir: Path, build: bool
) -> BackendResult:
    if build:
        print(f"[{backend}] building {args.factors:,} synthetic factors ...", flush=True)
        built = build_database(url, args.factors, args.seed)
        print(f"[{backend}] built and published in {built.seconds:.1f} s", flush=True)
    factors = _factor_count(url)
    print(f"[{backend}] facets in process, {args.repeat} calls per shape ...", flush=True)
    facets = time_facets(url, args.repeat)
    search_paths = [f"/v1/factors?region={region}&limit={PAGE}" for region in REGIONS]
    rps: dict[str, list[float]] = {"bare": [], "app": [], "afresh": []}
    with (
        uvicorn_server(
            "efdb",
            "app.main:create_app",
            "/readyz",
            {"EFDB_DATABASE_URL": url},
            workdir / f"{backend}-efdb.log",
        ) as app,
        uvicorn_server(
            "efdb (no kept pages)",
            "app.main:create_app",
            "/readyz",
            {"EFDB_DATABASE_URL": url, "EFDB_SEARCH_CACHE_ENTRIES": "0"},
            workdir / f"{backend}-efdb-afresh.log",
        ) as afresh,
        uvicorn_server(
            "bare", "bench.bare_app:create_app", "/const", {}, workdir / f"{backend}-bare.log"
        ) as bare,
    ):
        if args.verbose:
            print(
                f"[{backend}] efdb pid {app.process.pid}, afresh pid {afresh.process.pid}, "
                f"bare pid {bare.process.pid}"
            )
        status, body = http_get(app.port, search_paths[0])
        page = json.loads(body)
        if status != 200 or len(page.get("items", [])) != PAGE or not page.get("next"):
            raise RuntimeError(f"search page is not a full page: {status} {body[:300]!r}")
        if http_get(afresh.port, search_paths[0]) != (status, body):
            raise RuntimeError("a page made afresh differs from the kept one")
        page_bytes = len(body)
        for timing in facets:
            query = _page_query(timing.filters)
            path = "/.json" + (f"?{query}" if query else "")
            for attempt in range(args.repeat + 1):
                started = time.perf_counter()
                status, body = http_get(app.port, path, timeout=60)
                elapsed = (time.perf_counter() - started) * 1000
                if status != 200 or json.loads(body)["total"] != timing.total:
                    raise RuntimeError(f"{path}: {status} {body[:300]!r}")
                if attempt:
                    timing.page_ms.append(elapsed)
        # Warm every server up, then interleave, the order rotated each round.
        servers = [("bare", bare.port), ("app", app.port), ("afresh", afresh.port)]
        for name, port in servers:
            paths = ["/const"] if name == "bare" else search_paths
            run_wrk(port, paths, 3, args.connections, workdir, warmup=True)
        for round_index in range(args.rounds):
            shift = round_index % len(servers)
            for name, port in servers[shift:] + servers[:shift]:
                paths = ["/const"] if name == "bare" else search_paths
                rps[name].append(run_wrk(port, paths, args.duration, args.connections, workdir))
            print(f"[{backend}] round {round_index + 1}/{args.rounds} done", flush=True)
    return BackendResult(
        backend,
        backend_version(url),
        factors,
        facets,
        rps["app"],
        rps["bare"],
        page_bytes,
        rps["afresh"],
    )


def report(result: BackendResult) -> dict[str, Any]:
    print()
    print(f"== {result.backend}: {result.version}; {result.factors:,} synthetic factors ==")
    print(f"   {'facets shape':<26}{'total':>9}{'median ms':>11}{'max ms':>9}{'/.json ms':>11}")
    rows = []
    for timing in result.facets:
        page = statistics.median(timing.page_ms) if timing.page_ms else float("nan")
        print(
            f"   {timing.label:<26}{timing.total:>9}{timing.median_ms:>11.1f}"
            f"{max(timing.ms):>9.1f}{page:>11.1f}"
        )
        rows.append(
            {
                "shape": timing.label,
                "filters": timing.filters,
                "total": timing.total,
                "median_ms": round(timing.median_ms, 2),
                "max_ms": round(max(timing.ms), 2),
                "page_json_median_ms": round(page, 2),
            }
        )
    unfiltered = result.facets[0].median_ms
    ratios = [s / b for s, b in zip(result.search_rps, result.bare_rps, strict=True)]
    verdict = "PASS" if result.ratio >= SEARCH_PAGE_TARGET else "MISS"
    print(
        f"   facets unfiltered {unfiltered:.1f} ms (target <= {FACETS_TARGET_MS:.0f} ms): "
        f"{'PASS' if unfiltered <= FACETS_TARGET_MS else 'MISS'}"
    )
    print(
        f"   search page of {PAGE} (region): {', '.join(f'{r:.0f}' for r in result.search_rps)}"
        f" req/s; bare /const {', '.join(f'{r:.0f}' for r in result.bare_rps)} req/s; "
        f"ratio {result.ratio:.3f}x (rounds {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"target >= {SEARCH_PAGE_TARGET}x): {verdict}"
    )
    print(
        f"   the same pages made afresh (EFDB_SEARCH_CACHE_ENTRIES=0): "
        f"{', '.join(f'{r:.0f}' for r in result.afresh_rps)} req/s; "
        f"ratio {result.afresh_ratio:.3f}x"
    )
    return {
        "backend": result.backend,
        "version": result.version,
        "factors": result.factors,
        "facets": rows,
        "facets_unfiltered_ms": round(unfiltered, 2),
        "facets_target_ms": FACETS_TARGET_MS,
        "search_page_rps": [round(r, 1) for r in result.search_rps],
        "bare_rps": [round(r, 1) for r in result.bare_rps],
        "search_page_ratio": round(result.ratio, 3),
        "search_page_round_ratios": [round(r, 3) for r in ratios],
        "search_page_target": SEARCH_PAGE_TARGET,
        "search_page_bytes": result.page_bytes,
        "search_page_afresh_rps": [round(r, 1) for r in result.afresh_rps],
        "search_page_afresh_ratio": round(result.afresh_ratio, 3),
    }


@contextlib.contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.facets",
        description="Facet counts (ms) and the search page of 100 (ratio to a bare endpoint).",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--factors", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20251125)
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per facet shape")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved wrk rounds")
    parser.add_argument(
        "--connections",
        type=int,
        default=4,
        help="wrk keep-alive connections (default 4: below EFDB_MAX_EXPENSIVE_REQUESTS, 8; at 8 "
        "a connection's next search can arrive before the last one has left the count: 503)",
    )
    parser.add_argument("--sqlite-url", help="reuse (or with --build, build) this SQLite database")
    parser.add_argument("--database-url", help="reuse (or with --build, build) this PostgreSQL db")
    parser.add_argument("--build", action="store_true", help="build into the given URLs")
    parser.add_argument("--verbose", action="store_true", help="print server pids (py-spy)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.factors < 1 or args.repeat < 1 or args.rounds < 1 or args.duration <= 0:
        parser.error("--factors, --repeat, --rounds and --duration must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(
        f"efdb facets and search-page benchmark: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    passed = True
    with tempfile.TemporaryDirectory(prefix="efdb-bench-facets-") as logs:
        for backend in backends:
            given = args.sqlite_url if backend == "sqlite" else args.database_url
            if given:
                database, build = _given(given), args.build
            else:
                database = (
                    sqlite_database()
                    if backend == "sqlite"
                    else postgres_database(args.postgres_url)
                )
                build = True
            with database as url:
                result = bench_backend(backend, url, args, Path(logs), build)
            row = report(result)
            results.append(row)
            passed = passed and (
                row["facets_unfiltered_ms"] <= FACETS_TARGET_MS
                and row["search_page_ratio"] >= SEARCH_PAGE_TARGET
            )
    print()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"results": results}, indent=2) + "\n")
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
