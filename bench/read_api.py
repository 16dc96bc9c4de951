"""Read-API throughput and latency, as ratios to a bare FastAPI endpoint served the same way.

For each backend (SQLite, PostgreSQL) this builds a fresh database through the real schema
(Alembic migrations to head), loads a published version of N synthetic factors with
`store_factors` + `publish` (so the content hash and the published state are the real ones),
serves it with uvicorn in a subprocess, and serves `bench.bare_app` the same way. `wrk`
(one thread, 8 keep-alive loopback connections, a fixed duration per scenario and round;
Debian package `wrk`) drives the load, a Lua script picking a random factor code or search
filter per request; scenarios are interleaved round by round so that drift on a noisy
machine hits them alike and shows.

    python -m bench.read_api [--backend sqlite|postgresql|both] [--factors 100000]
                             [--duration 10] [--rounds 3] [--warmup 2] [--connections 8]
                             [--threads 1] [--only code search] [--json PATH] [--strict]

Only ratios are judged (factor by code >= 0.5x, search page >= 0.25x the bare endpoint's
requests/s); absolute figures depend on the machine and are printed for context only.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.core.audit import append_event
from app.core.config import PROJECT_ROOT
from app.core.db import make_engine, make_sessionmaker
from app.core.migrations import upgrade_to_head
from app.datasets.models import Dataset, Publisher
from app.factors.models import Factor
from app.factors.schemas import Boundary, FactorFields, GwpSetName
from app.publishing.publish import release_directly
from app.reference.gwp import co2e_from_gases

HOST = "127.0.0.1"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"

SYNTHETIC_TITLE = "Synthetic benchmark data (not real factors)"
ACTOR = "efdb-bench"
PUBLISHER_SLUG = "bench-synthetic"
DATASET_SLUG = "synthetic-factors"
VERSION = "1.0.0"

# ISO 3166-2:CN subdivisions.
CN_SUBDIVISIONS = (
    "CN-AH",
    "CN-BJ",
    "CN-CQ",
    "CN-FJ",
    "CN-GD",
    "CN-GS",
    "CN-GX",
    "CN-GZ",
    "CN-HA",
    "CN-HB",
    "CN-HE",
    "CN-HI",
    "CN-HK",
    "CN-HL",
    "CN-HN",
    "CN-JL",
    "CN-JS",
    "CN-JX",
    "CN-LN",
    "CN-MO",
    "CN-NM",
    "CN-NX",
    "CN-QH",
    "CN-SC",
    "CN-SD",
    "CN-SH",
    "CN-SN",
    "CN-SX",
    "CN-TJ",
    "CN-TW",
    "CN-XJ",
    "CN-XZ",
    "CN-YN",
    "CN-ZJ",
)
REGIONS = ("CN", "GLO", *CN_SUBDIVISIONS)
YEARS = tuple(range(2015, 2025))
UNITS = ("kWh", "MWh", "MJ", "GJ", "kg", "t", "t*km", "m3", "L", "km", "piece")
SECTORS = ("electricity", "heat", "fuels", "steel", "cement", "chemicals", "transport", "waste")
ACTIVITIES = tuple(f"synthetic-{sector}-{n:02d}" for sector in SECTORS for n in range(1, 7))
BOUNDARIES: tuple[str, ...] = get_args(Boundary)
GWP_SETS: tuple[str, ...] = get_args(GwpSetName)
PAGE = 100

FACTOR_BY_CODE_TARGET = 0.5
SEARCH_PAGE_TARGET = 0.25


# --------------------------------------------------------------------------- synthetic data


def factor_code(index: int) -> str:
    return f"syn-{index:06d}"


def synthetic_records(count: int, seed: int) -> Iterator[tuple[int, FactorFields]]:
    """`count` valid, plainly labelled synthetic factor records (deterministic for a seed).

    Every record fills the same fields: `store_factors`' ORM bulk insert leaves NULLs out of
    the parameters and so splits a batch wherever the set of non-null fields changes.
    """
    rng = random.Random(seed)
    for index in range(count):
        region = rng.choice(REGIONS)
        year = rng.choice(YEARS)
        activity = rng.choice(ACTIVITIES)
        unit = rng.choice(UNITS)
        co2 = round(rng.lognormvariate(0.0, 1.5), 6)
        ch4 = round(co2 * rng.uniform(1e-4, 1e-2), 9)
        n2o = round(co2 * rng.uniform(1e-5, 1e-3), 9)
        gwp_set = rng.choice(GWP_SETS)
        co2e = round(co2e_from_gases(gwp_set, co2=co2, ch4=ch4, n2o=n2o, other=None), 9)
        code = factor_code(index)
        record = FactorFields.model_validate(
            {
                "factor_code": code,
                "activity_id": activity,
                # Names are short: they feed the trigram text-search index on every insert.
                "name_zh": f"合成因子 {code}",
                "name_en": f"Synthetic factor {code}",
                "description": f"{SYNTHETIC_TITLE}: {activity}, {region}, {year}.",
                "category": f"synthetic/{activity.split('-')[1]}",
                "region": region,
                "reference_year": year,
                "unit": unit,
                "co2e": co2e,
                "co2": co2,
                "ch4": ch4,
                "n2o": n2o,
                "gwp_set": gwp_set,
                "boundary": rng.choice(BOUNDARIES),
                "method": "synthetic",
                "uncertainty_low": round(co2e * 0.9, 9),
                "uncertainty_high": round(co2e * 1.1, 9),
                "uncertainty_distribution": "lognormal",
                "dq_reliability": rng.randint(1, 5),
                "dq_completeness": rng.randint(1, 5),
                "dq_temporal": rng.randint(1, 5),
                "dq_geographical": rng.randint(1, 5),
                "dq_technological": rng.randint(1, 5),
                "source_title": SYNTHETIC_TITLE,
                "source_publisher": "efdb benchmark generator",
                "source_locator": f"row {index + 1}",
                "notes": SYNTHETIC_TITLE,
            }
        )
        yield index + 1, record


@dataclass(frozen=True)
class BuiltDatabase:
    url: str
    factors: int
    seconds: float
    search_filters: list[tuple[str, int]]
    content_sha256: str


def build_database(url: str, factors: int, seed: int) -> BuiltDatabase:
    """Migrate an empty database to head and publish one synthetic version into it."""
    started = time.perf_counter()
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        with make_sessionmaker(engine).begin() as session:
            publisher = Publisher(
                slug=PUBLISHER_SLUG,
                name_en="Synthetic benchmark publisher (not a real publisher)",
                name_zh="合成基准数据发布者 (非真实)",
                sectors=[],
            )
            session.add(publisher)
            session.flush()
            append_event(
                session,
                actor=ACTOR,
                action="publisher.created",
                subject_type="publisher",
                subject_id=publisher.slug,
            )
            dataset = Dataset(
                publisher_id=publisher.id,
                slug=DATASET_SLUG,
                title_en=SYNTHETIC_TITLE,
                title_zh="合成基准数据 (非真实排放因子)",
                description=f"{SYNTHETIC_TITLE}: generated by bench/read_api.py for load tests.",
                access="public",
                license_id="CC0-1.0",
                attribution=SYNTHETIC_TITLE,
                redistribution=True,
                commercial_use=True,
            )
            session.add(dataset)
            session.flush()
            append_event(
                session,
                actor=ACTOR,
                action="dataset.created",
                subject_type="dataset",
                subject_id=f"{PUBLISHER_SLUG}/{DATASET_SLUG}",
            )
            version = release_directly(
                session,
                dataset_id=dataset.id,
                version=VERSION,
                records=synthetic_records(factors, seed),
                actor=ACTOR,
                release_notes=SYNTHETIC_TITLE,
            )
            count = version.row_count
            content_sha256 = version.content_sha256 or ""
        if engine.dialect.name == "postgresql":
            # What autovacuum would do shortly after a bulk load: give the planner statistics.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("ANALYZE"))
        with engine.connect() as connection:
            rows = connection.execute(
                select(Factor.region, Factor.reference_year)
                .group_by(Factor.region, Factor.reference_year)
                .having(func.count() > PAGE)
                .order_by(Factor.region, Factor.reference_year)
            ).all()
        filters = [(str(region), int(year)) for region, year in rows]
    finally:
        engine.dispose()
    if not filters:
        raise SystemExit("no region/year has more than one page of factors; raise --factors")
    return BuiltDatabase(url, count, time.perf_counter() - started, filters, content_sha256)


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="efdb-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server of `admin_url`, dropped afterwards."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"efdb_bench_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


def backend_version(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite {sqlite3.sqlite_version}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return "PostgreSQL " + str(connection.execute(text("SHOW server_version")).scalar())
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]


# The load comes from one address much faster than any client may ask: the rate limits stay
# on (their cost is part of every figure) with budgets that no run can spend.
LOAD_BUDGETS = {
    "EFDB_RATE_READS_PER_MINUTE": "1000000000",
    "EFDB_RATE_WRITES_PER_MINUTE": "1000000000",
}


@contextlib.contextmanager
def uvicorn_server(
    name: str,
    factory: str,
    ready_path: str,
    env: dict[str, str],
    log_path: Path,
    *,
    workers: int = 1,
) -> Iterator[Server]:
    """`python -m uvicorn <factory> --factory`, no access log, on loopback; `workers`
    processes sharing the port (as `efdb serve --workers N` runs them: `uvicorn.run` with
    `workers=N`), ready once every worker has started."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        factory,
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        # With several workers, each one's "Application startup complete" line (info) tells
        # when all of them serve: any one of them may answer the readiness probe first.
        "warning" if workers == 1 else "info",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**os.environ, **LOAD_BUDGETS, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        last = "no answer"
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} server exited with {process.returncode}:\n"
                    + log_path.read_text(errors="replace")[-4000:]
                )
            try:
                status, body = http_get(port, ready_path, timeout=2)
                started = log_path.read_text(errors="replace").count("Application startup complete")
                if status == 200 and (workers == 1 or started >= workers):
                    break
                last = f"{status} {body[:300]!r}, {started} of {workers} workers started"
            except OSError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} server not ready after 60 s; {ready_path}: {last}")
            time.sleep(0.1)
        yield Server(name, port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- load generator (wrk)

# wrk drives the load (a C event loop: it saturates neither the servers' cores nor its own
# before the server does, unlike a Python client). The script picks each request's path:
# `const` one path, `code` a random factor code under a prefix, `list` a random line of a file.
# `done` writes the run's totals and its exact latency histogram (distinct value in
# microseconds, count) to $EFDB_WRK_OUT, so that rounds can be merged into one distribution.
WRK_SCRIPT = r"""
local mode, prefix, count, paths = "const", "/", 0, {}
wrk.headers["Accept"] = "application/json"

function init(args)
  mode = args[1]
  math.randomseed(tonumber(args[2]))
  if mode == "const" then
    prefix = args[3]
  elseif mode == "code" then
    prefix, count = args[3], tonumber(args[4])
  else
    for line in io.lines(args[3]) do paths[#paths + 1] = line end
  end
end

function request()
  local path = prefix
  if mode == "code" then
    path = prefix .. string.format("syn-%06d", math.random(0, count - 1))
  elseif mode == "list" then
    path = paths[math.random(1, #paths)]
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local path = os.getenv("EFDB_WRK_OUT")
  if path == nil then return end
  local out = assert(io.open(path, "w"))
  local e = summary.errors
  out:write(string.format("summary %d %d %d %d %d %d %d %d\n", summary.requests,
    summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
  for i = 1, #latency do
    local value, n = latency(i)
    out:write(string.format("%d %d\n", value, n))
  end
  out:close()
end
"""


class LoadError(RuntimeError):
    pass


@dataclass
class WrkRun:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    # Latency histogram: microseconds -> count.
    histogram: dict[int, int]
    requests_per_second: float


def _parse_requests_per_second(output: str) -> float:
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split(":", 1)[1])
    raise LoadError(f"no Requests/sec line in wrk's output:\n{output[-2000:]}")


def run_wrk(
    port: int,
    script_args: Sequence[str],
    *,
    seconds: float,
    connections: int,
    threads: int,
    workdir: Path,
) -> WrkRun:
    """One `wrk --latency` run against 127.0.0.1:`port`; its text and the script's totals."""
    script = workdir / "efdb-bench.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT)
    out = workdir / "wrk-out.txt"
    out.unlink(missing_ok=True)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://{HOST}:{port}",
        "--",
        *script_args,
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "EFDB_WRK_OUT": str(out)},
        check=False,
    )
    if done.returncode != 0 or not out.exists():
        raise LoadError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    lines = out.read_text().splitlines()
    fields = [int(x) for x in lines[0].split()[1:]]
    requests, duration_us, _bytes, connect, read, write, status, timeout = fields
    histogram: dict[int, int] = {}
    for line in lines[1:]:
        value, count = line.split()
        histogram[int(value)] = histogram.get(int(value), 0) + int(count)
    return WrkRun(
        requests=requests,
        seconds=duration_us / 1e6,
        non_2xx=status,
        socket_errors=connect + read + write + timeout,
        histogram=histogram,
        requests_per_second=_parse_requests_per_second(done.stdout),
    )


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    key: str
    label: str
    server: Server
    # The wrk script's arguments after the mode's seed: see WRK_SCRIPT.
    mode: str
    mode_args: list[str]
    target: float | None = None
    baseline: bool = False
    histogram: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    completed: int = 0
    round_rps: list[float] = field(default_factory=list)
    runs: int = 0
    # The efdb server's worker processes (`--workers`); the bare app always runs one.
    workers: int = 1

    @property
    def kind(self) -> str:
        """The scenario without its worker count: what `--only` names."""
        return self.key.split("@", 1)[0]

    def run(self, args: argparse.Namespace, workdir: Path, seconds: float, record: bool) -> None:
        self.runs += 1
        # A different seed each run: the rounds do not replay the same codes.
        seed = str(args.seed * 1000 + self.runs)
        result = run_wrk(
            self.server.port,
            [self.mode, seed, *self.mode_args],
            seconds=seconds,
            connections=args.connections,
            threads=args.threads,
            workdir=workdir,
        )
        if result.non_2xx or result.socket_errors:
            raise LoadError(
                f"{self.label}: {result.non_2xx} non-2xx answers and {result.socket_errors} "
                f"socket errors in {result.requests} requests"
            )
        if record:
            self.completed += result.requests
            self.elapsed += result.seconds
            self.round_rps.append(result.requests / result.seconds)
            for value, count in result.histogram.items():
                self.histogram[value] = self.histogram.get(value, 0) + count

    @property
    def requests(self) -> int:
        return self.completed

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """From the merged histogram of every measured round (wrk's microseconds)."""
        total = sum(self.histogram.values())
        if not total:
            return math.nan
        rank = max(1, math.ceil(fraction * total))
        seen = 0
        for value in sorted(self.histogram):
            seen += self.histogram[value]
            if seen >= rank:
                return value / 1000
        return max(self.histogram) / 1000


def check_responses(app: Server, bare: Server, built: BuiltDatabase) -> dict[str, int]:
    """Fail fast if a scenario would not measure what it claims; returns body sizes."""
    sizes: dict[str, int] = {}
    status, body = http_get(bare.port, "/const")
    if status != 200:
        raise LoadError(f"bare endpoint answered {status}")
    sizes["bare"] = len(body)
    code = factor_code(built.factors // 2)
    status, body = http_get(app.port, f"/v1/factors/{PUBLISHER_SLUG}/{DATASET_SLUG}/{code}")
    factor = json.loads(body)
    if status != 200 or factor.get("source_title") != SYNTHETIC_TITLE:
        raise LoadError(f"factor lookup answered {status}: {body[:300]!r}")
    if factor.get("version_status") != "published":
        raise LoadError(f"factor {code} is not in a published version: {factor}")
    sizes["code"] = len(body)
    region, year = built.search_filters[0]
    status, body = http_get(app.port, f"/v1/factors?region={region}&year={year}&limit={PAGE}")
    page = json.loads(body)
    if status != 200 or len(page.get("items", [])) != PAGE or not page.get("next"):
        raise LoadError(f"search did not return a full page with a next link: {body[:300]!r}")
    sizes["search"] = len(body)
    return sizes


@dataclass
class BackendResult:
    backend: str
    version: str
    built: BuiltDatabase
    sizes: dict[str, int]
    scenarios: list[Scenario]
    seconds: float


def bench_backend(backend: str, url: str, args: argparse.Namespace, workdir: Path) -> BackendResult:
    started = time.perf_counter()
    print(f"[{backend}] building {args.factors:,} synthetic factors ...", flush=True)
    built = build_database(url, args.factors, args.seed)
    print(
        f"[{backend}] built and published in {built.seconds:.1f} s "
        f"(content_sha256 {built.content_sha256[:12]}...)",
        flush=True,
    )
    version = backend_version(url)
    app_env = {"EFDB_DATABASE_URL": url}
    search_paths = workdir / f"{backend}-search-paths.txt"
    search_paths.write_text(
        "".join(
            f"/v1/factors?region={region}&year={year}&limit={PAGE}\n"
            for region, year in built.search_filters
        )
    )
    with contextlib.ExitStack() as servers:
        # One efdb server per worker count, all up for the whole run (an idle one costs
        # nothing), so that the counts' scenarios interleave round by round like the others.
        apps = {
            workers: servers.enter_context(
                uvicorn_server(
                    "efdb" if workers == 1 else f"efdb ({workers} workers)",
                    "app.main:create_app",
                    "/readyz",
                    app_env,
                    workdir / f"{backend}-efdb-{workers}.log",
                    workers=workers,
                )
            )
            for workers in sorted({1, *args.workers})
        }
        app = apps[1]
        bare = servers.enter_context(
            uvicorn_server(
                "bare", "bench.bare_app:create_app", "/const", {}, workdir / f"{backend}-bare.log"
            )
        )
        if args.verbose:
            for workers, server in apps.items():
                print(
                    f"[{backend}] efdb ({workers} workers) pid {server.process.pid} "
                    f"port {server.port}",
                    flush=True,
                )
            print(f"[{backend}] bare pid {bare.process.pid} port {bare.port}", flush=True)
        sizes = check_responses(app, bare, built)
        for workers, server in apps.items():
            if workers != 1:
                check_responses(server, bare, built)
        scenarios = [
            Scenario(
                "bare", "bare FastAPI constant (def)", bare, "const", ["/const"], baseline=True
            ),
            Scenario(
                "bare_async", "bare FastAPI constant (async def)", bare, "const", ["/const-async"]
            ),
            Scenario(
                "code",
                "factor by code",
                app,
                "code",
                [f"/v1/factors/{PUBLISHER_SLUG}/{DATASET_SLUG}/", str(built.factors)],
                target=FACTOR_BY_CODE_TARGET,
            ),
            Scenario(
                "search",
                f"search page of {PAGE} (region+year)",
                app,
                "list",
                [str(search_paths)],
                target=SEARCH_PAGE_TARGET,
            ),
        ]
        # The same requests against N workers: what more processes give on this machine
        # (informational; compared with one worker in the report).
        for workers, server in apps.items():
            if workers == 1:
                continue
            for scenario in [s for s in scenarios if s.key in ("code", "search")]:
                scenarios.append(
                    Scenario(
                        f"{scenario.key}@{workers}",
                        f"{scenario.label}, {workers} workers",
                        server,
                        scenario.mode,
                        scenario.mode_args,
                        workers=workers,
                    )
                )
        if args.only:
            scenarios = [s for s in scenarios if s.baseline or s.kind in args.only]
        if args.warmup > 0:
            for scenario in scenarios:
                scenario.run(args, workdir, args.warmup, record=False)
        for round_index in range(args.rounds):
            # Rotate the order so that no scenario always runs right after another.
            shift = round_index % len(scenarios)
            for scenario in scenarios[shift:] + scenarios[:shift]:
                scenario.run(args, workdir, args.duration, record=True)
            print(f"[{backend}] round {round_index + 1}/{args.rounds} done", flush=True)
    return BackendResult(backend, version, built, sizes, scenarios, time.perf_counter() - started)


# --------------------------------------------------------------------------- report


def _ratio(scenario: Scenario, baseline: Scenario) -> float:
    return scenario.rps / baseline.rps if baseline.rps else math.nan


def _round_ratios(scenario: Scenario, baseline: Scenario) -> list[float]:
    return [s / b for s, b in zip(scenario.round_rps, baseline.round_rps, strict=True)]


def print_report(result: BackendResult, args: argparse.Namespace) -> None:
    baseline = next(s for s in result.scenarios if s.baseline)
    print()
    print(
        f"== {result.backend}: {result.version}; {result.built.factors:,} synthetic factors, "
        f"{len(result.built.search_filters)} region/year filters with >{PAGE} rows =="
    )
    print(
        f"   {args.rounds} interleaved rounds of {args.duration:g} s, wrk -t{args.threads} "
        f"-c{args.connections}, keep-alive, "
        f"1 uvicorn worker per app unless said, loopback; {result.seconds:.0f} s incl. the build"
    )
    header = (
        f"   {'scenario':<46}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}"
        f"{'per round':>14}{'target':>9}  result"
    )
    print(header)
    for scenario in result.scenarios:
        ratio = _ratio(scenario, baseline)
        rounds = _round_ratios(scenario, baseline)
        spread = f"{min(rounds):.2f}-{max(rounds):.2f}" if not scenario.baseline else ""
        if scenario.target is None:
            target, verdict = "", "(baseline)" if scenario.baseline else "(info)"
        else:
            target = f">={scenario.target:.2f}x"
            verdict = "PASS" if ratio >= scenario.target else "MISS"
        print(
            f"   {scenario.label:<46}{scenario.requests:>9}{scenario.rps:>9.1f}"
            f"{scenario.percentile_ms(0.5):>9.2f}"
            f"{scenario.percentile_ms(0.99):>9.2f}{ratio:>7.2f}x{spread:>14}{target:>9}  "
            f"{verdict}"
        )
    rps = baseline.round_rps
    drift = (max(rps) - min(rps)) / (sum(rps) / len(rps)) if rps else math.nan
    print(
        f"   baseline req/s by round: {', '.join(f'{r:.0f}' for r in rps)} "
        f"(spread {drift:.0%} of the mean)"
    )
    print(
        f"   response bytes: bare {result.sizes['bare']}, factor {result.sizes['code']}, "
        f"page {result.sizes['search']}"
    )
    for line in worker_gains(result):
        print(
            f"   {line['workers']} workers vs 1, {line['label']}: {line['ratio']:.2f}x the "
            f"requests/s (rounds {min(line['round_ratios']):.2f}-{max(line['round_ratios']):.2f})"
        )


def worker_gains(result: BackendResult) -> list[dict[str, Any]]:
    """Each multi-worker scenario's requests/s over the same scenario's with one worker,
    overall and per round (the rounds interleave both, so drift hits them alike)."""
    single = {s.key: s for s in result.scenarios if s.workers == 1}
    gains = []
    for scenario in result.scenarios:
        one = single.get(scenario.kind)
        if scenario.workers == 1 or one is None or not one.rps:
            continue
        gains.append(
            {
                "backend": result.backend,
                "scenario": scenario.kind,
                "label": one.label,
                "workers": scenario.workers,
                "ratio": round(scenario.rps / one.rps, 3),
                "round_ratios": [
                    round(n / o, 3) for n, o in zip(scenario.round_rps, one.round_rps, strict=True)
                ],
            }
        )
    return gains


def summary(results: Sequence[BackendResult]) -> tuple[list[dict[str, Any]], bool]:
    rows: list[dict[str, Any]] = []
    passed = True
    for result in results:
        baseline = next(s for s in result.scenarios if s.baseline)
        for scenario in result.scenarios:
            ratio = _ratio(scenario, baseline)
            ok = scenario.target is None or ratio >= scenario.target
            passed = passed and ok
            rows.append(
                {
                    "backend": result.backend,
                    "scenario": scenario.key,
                    "label": scenario.label,
                    "workers": scenario.workers,
                    "requests": scenario.requests,
                    "rps": round(scenario.rps, 1),
                    "p50_ms": round(scenario.percentile_ms(0.5), 3),
                    "p99_ms": round(scenario.percentile_ms(0.99), 3),
                    "ratio": round(ratio, 3),
                    "round_ratios": [round(r, 3) for r in _round_ratios(scenario, baseline)],
                    "target": scenario.target,
                    "result": None if scenario.target is None else ("PASS" if ok else "MISS"),
                }
            )
    return rows, passed


# --------------------------------------------------------------------------- command line


def default_postgres_url() -> str:
    """The server benchmarks create their throw-away databases on."""
    return os.environ.get(
        "EFDB_BENCH_POSTGRES_URL", os.environ.get("EFDB_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every benchmark takes: where PostgreSQL is, where results go, how to fail."""
    parser.add_argument(
        "--postgres-url",
        default=default_postgres_url(),
        help="server to create the throw-away efdb_bench_* database on",
    )
    parser.add_argument(
        "--json", type=Path, help="also write the results to this file (`-`: to stdout)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.read_api",
        description="Read-API requests/s and latency as ratios to a bare FastAPI endpoint.",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--factors", type=int, default=100_000, help="synthetic factors to load (default 100000)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=10,
        help="seconds of wrk per scenario and round (default 10)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of all scenarios (default 3)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=2,
        help="unmeasured seconds of wrk per scenario first (default 2; 0: none)",
    )
    parser.add_argument(
        "--connections", type=int, default=8, help="wrk's keep-alive connections (default 8)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk's threads (default 1)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["bare_async", "code", "search"],
        help="measure only these scenarios (and the baseline)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="efdb worker processes to measure the lookups and searches with, each count its "
        "own server (default: 1 2; the ratio of each count to 1 is printed; 1 always runs)",
    )
    parser.add_argument("--seed", type=int, default=20251125)
    add_common_arguments(parser)
    parser.add_argument("--verbose", action="store_true", help="print server pids and ports")
    args = parser.parse_args(argv)
    if args.factors < 1 or args.duration < 1 or args.rounds < 1:
        parser.error("--factors, --duration and --rounds must be positive")
    if args.connections < 1 or args.threads < 1 or args.threads > args.connections:
        parser.error("--connections and --threads must be positive, threads <= connections")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if min(args.workers) < 1:
        parser.error("--workers must be positive")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(
        f"efdb read-API benchmark: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}",
        flush=True,
    )
    results: list[BackendResult] = []
    with tempfile.TemporaryDirectory(prefix="efdb-bench-logs-") as logs:
        for backend in backends:
            database = (
                sqlite_database() if backend == "sqlite" else postgres_database(args.postgres_url)
            )
            with database as url:
                result = bench_backend(backend, url, args, Path(logs))
            results.append(result)
            print_report(result, args)
    rows, passed = summary(results)
    print()
    print("Targets: factor by code >= 0.50x and search page >= 0.25x the bare endpoint's req/s.")
    for row in rows:
        if row["target"] is not None:
            print(
                f"   {row['backend']:<11}{row['label']:<36}{row['ratio']:>6.2f}x  "
                f"(target >={row['target']:.2f}x)  {row['result']}"
            )
    gains = [gain for result in results for gain in worker_gains(result)]
    if gains:
        print("More workers (information: requests/s over one worker's, same rounds):")
        for gain in gains:
            print(
                f"   {gain['backend']:<11}{gain['label']:<36}{gain['ratio']:>6.2f}x  "
                f"with {gain['workers']} workers"
            )
    if args.json:
        settings = {k: str(v) for k, v in vars(args).items() if k != "postgres_url"}
        document = (
            json.dumps({"args": settings, "results": rows, "workers": gains}, indent=2) + "\n"
        )
        if str(args.json) == "-":
            print(document, end="")
        else:
            args.json.write_text(document)
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
