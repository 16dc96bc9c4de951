"""Batch resolution versus single lookups, over HTTP, on a database of synthetic factors.

For each backend (PostgreSQL by default; SQLite too with --backend both) this builds a fresh
database through the real schema (Alembic migrations to head), loads the ISO location table
and publishes four synthetic datasets (a "national reference" one with priority 10, a
"provincial" one with 20, an "industry" one with 50 and a "global defaults" one with 100;
100,000 factors by default, every record labelled synthetic) over 48 activities (each with
its own unit), China's 34 ISO 3166-2 subdivisions, CN and GLO, years 2015-2024 and two
boundaries, with holes so that region and year fallbacks happen. It serves the app with
uvicorn in a subprocess and, from this process, over one keep-alive loopback connection
(one request at a time, so that latencies are not queueing), interleaved round by round:

- `batch`: POST /v1/factors:resolve with 1000 mixed lines (exact matches, region and year
  fallbacks, unit conversions, unknown activities, incompatible units, lines too early for
  any factor), a fresh random mix per call;
- `single resolve`: the same kind of lines, one per POST /v1/factors:resolve;
- `by code`: GET /v1/factors/{publisher}/{dataset}/{factor_code} of a random factor.

    python -m bench.resolve [--backend postgresql|sqlite|both] [--factors 100000]
                            [--batches 30] [--singles 1000] [--rounds 3]
                            [--layout four|one] [--lines 1000] [--database-url URL]
                            [--accept-encoding 'zstd, gzip']

Every request offers `--accept-encoding` (the target is stated for answers compressed on the
wire; '' for none): the report gives the 1000-line answer's JSON size and its size as sent.

`--layout one` puts all the factors in one dataset ("synthetic-large", as many rows per
activity, region, year and boundary as the size asks: ~16 at 10^6), to show that resolve's
cost follows the lines and their candidates, not the dataset's size:

    python -m bench.resolve --layout one --factors 1000000 --batches 5 --singles 100 --rounds 1

Before each measured request the server's peak resident set (VmHWM) is reset through
/proc/PID/clear_refs and read after it: the report gives each series' largest peak over the
resident set before it, and the batch's as a ratio to the lookups' (Linux only).
`--database-url` reuses a database this benchmark built (it is built when empty), so that a
10^6-row load is paid once for several runs.

Targets (ratios within one run, so the machine's speed cancels out):
- per line, one 1000-line call is >= 20x faster than single-line resolve calls, and than
  single factor-by-code lookups;
- p99 of a 1000-line call < 10x the p99 of a single factor-by-code request.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.db import make_engine, make_sessionmaker
from app.core.migrations import upgrade_to_head
from app.datasets.models import Dataset, Publisher
from app.factors.schemas import FactorFields
from app.publishing.publish import release_directly
from app.reference.gwp import co2e_from_gases
from app.reference.locations import load_locations
from bench.read_api import (
    CN_SUBDIVISIONS,
    HOST,
    add_common_arguments,
    backend_version,
    postgres_database,
    sqlite_database,
    uvicorn_server,
)

SYNTHETIC_TITLE = "Synthetic benchmark data (not real factors)"
ACTOR = "efdb-bench"
PUBLISHER_SLUG = "bench-synthetic"
# (slug, priority, regions it covers, chance that it has a given cell)
DATASETS: tuple[tuple[str, int, str, float], ...] = (
    ("national-reference", 10, "national", 0.9),
    ("provincial", 20, "subdivisions", 0.55),
    ("industry", 50, "all", 0.45),
    ("global-defaults", 100, "global", 0.95),
)
SECTOR_UNITS = {
    "electricity": "kWh",
    "heat": "GJ",
    "fuels": "TJ",
    "steel": "t",
    "cement": "t",
    "chemicals": "kg",
    "transport": "t*km",
    "water": "m3",
}
ACTIVITIES = {
    f"synthetic-{sector}-{n:02d}": unit
    for sector, unit in SECTOR_UNITS.items()
    for n in range(1, 7)
}
# Same-dimension units a caller may ask in instead of the factor's own.
ALTERNATIVE_UNITS = {
    "kWh": "MWh",
    "GJ": "MJ",
    "TJ": "GJ",
    "t": "kg",
    "kg": "t",
    "t*km": "kg*km",
    "m3": "L",
}
INCOMPATIBLE_UNIT = {"kWh": "kg", "GJ": "t", "TJ": "m3", "t": "kWh", "kg": "L", "t*km": "kWh"}
YEARS = tuple(range(2013, 2025))
BOUNDARIES = ("cradle-to-gate", "combustion", "well-to-tank")
BATCH = 1000
LARGE_DATASET = "synthetic-large"
# `--hot N`: N factors of an activity of their own, all in one region and year: every line
# of that activity whose region falls back to CN (CN's subdivisions, CN) and whose year is at
# least 2020 has all N as candidates.
HOT_CELL = ("synthetic-hot-electricity", "CN", 2020)
UNITS = {**ACTIVITIES, HOT_CELL[0]: "kWh"}

BATCH_VS_SINGLE_TARGET = 20.0
BATCH_P99_TARGET = 10.0


# --------------------------------------------------------------------------- synthetic data


def _cells(scope: str) -> list[str]:
    if scope == "national":
        return ["CN"]
    if scope == "subdivisions":
        return list(CN_SUBDIVISIONS)
    if scope == "global":
        return ["GLO"]
    return ["CN", *CN_SUBDIVISIONS]


def _record(
    code: str, activity: str, region: str, year: int, boundary: str, rng: random.Random
) -> FactorFields:
    co2 = round(rng.lognormvariate(0.0, 1.5), 6)
    ch4 = n2o = None
    gwp_set = None
    co2e = co2
    if rng.random() < 0.5:
        ch4 = round(co2 * rng.uniform(1e-4, 1e-2), 9)
        n2o = round(co2 * rng.uniform(1e-5, 1e-3), 9)
        gwp_set = "AR5"
        co2e = round(co2e_from_gases(gwp_set, co2=co2, ch4=ch4, n2o=n2o, other=None), 9)
    return FactorFields.model_validate(
        {
            "factor_code": code,
            "activity_id": activity,
            "name_zh": f"合成基准因子 {activity} {region} {year} (非真实数据)",
            "name_en": f"Synthetic factor {activity}, {region}, {year}, {boundary}",
            "description": f"{SYNTHETIC_TITLE}; generated by bench/resolve.py.",
            "category": f"synthetic/{activity.split('-')[1]}",
            "region": region,
            "reference_year": year,
            "unit": UNITS[activity],
            "co2e": co2e,
            "co2": co2,
            "ch4": ch4,
            "n2o": n2o,
            "gwp_set": gwp_set,
            "boundary": boundary,
            "method": "synthetic",
            "uncertainty_low": round(co2e * 0.9, 9),
            "uncertainty_high": round(co2e * 1.1, 9),
            "uncertainty_distribution": "lognormal",
            "source_title": SYNTHETIC_TITLE,
            "source_publisher": "efdb benchmark generator",
            "notes": SYNTHETIC_TITLE,
        }
    )


def dataset_records(
    scope: str, chance: float, scale: float, rng: random.Random
) -> Iterator[tuple[int, FactorFields]]:
    row = 1
    for activity in ACTIVITIES:
        for region in _cells(scope):
            for year in YEARS:
                if rng.random() >= min(1.0, chance * scale):
                    continue
                for boundary in BOUNDARIES:
                    code = f"{activity}.{region}.{year}.{boundary}"
                    row += 1
                    yield row, _record(code, activity, region, year, boundary, rng)


def _expected(scale: float) -> float:
    return sum(
        len(ACTIVITIES)
        * len(_cells(scope))
        * len(YEARS)
        * len(BOUNDARIES)
        * min(1.0, chance * scale)
        for _, _, scope, chance in DATASETS
    )


def _scale_for(factors: int) -> float:
    """The scale of the cell chances that gives about `factors` rows (bisection)."""
    low, high = 0.0, 1.0 / min(chance for *_, chance in DATASETS)
    if _expected(high) < factors:
        raise SystemExit(f"at most {int(_expected(high)):,} synthetic factors; lower --factors")
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if _expected(middle) < factors else (low, middle)
    return high


@dataclass
class Built:
    factors: int
    seconds: float
    codes: list[tuple[str, str]] = field(default_factory=list)


def large_records(
    factors: int, rng: random.Random, hot: int = 0
) -> Iterator[tuple[int, FactorFields]]:
    """`--layout one`: `factors` rows spread at random over every activity, region (CN, its
    subdivisions, GLO), year and boundary, several per cell, some per another unit of the
    activity's dimension; the first `hot` of them all in one cell (HOT_CELL: one activity, CN,
    one year), so that lines of that activity have that many candidates."""
    activities = list(ACTIVITIES)
    regions = ["CN", *CN_SUBDIVISIONS, "GLO"]
    for index in range(factors):
        if index < hot:
            activity, region, year = HOT_CELL
        else:
            activity = rng.choice(activities)
            region = rng.choice(regions)
            year = rng.choice(YEARS)
        boundary = rng.choice(BOUNDARIES)
        record = _record(f"synthetic-{index:07d}", activity, region, year, boundary, rng)
        unit = UNITS[activity]
        if rng.random() < 0.3 and unit in ALTERNATIVE_UNITS:
            record = record.model_copy(update={"unit": ALTERNATIVE_UNITS[unit]})
        yield index + 1, record


def existing_codes(url: str) -> list[tuple[str, str]] | None:
    """The (dataset, code) pairs of a database this benchmark built, or None when it is empty."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            try:
                rows = connection.execute(
                    text(
                        "SELECT d.slug, f.factor_code FROM factor f "
                        "JOIN dataset d ON d.id = f.dataset_id "
                        "JOIN publisher p ON p.id = d.publisher_id WHERE p.slug = :slug"
                    ),
                    {"slug": PUBLISHER_SLUG},
                ).all()
            except DBAPIError:  # no schema yet: build it
                return None
    finally:
        engine.dispose()
    return [(str(slug), str(code)) for slug, code in rows] or None


def build_database(url: str, factors: int, seed: int, layout: str = "four", hot: int = 0) -> Built:
    """Migrate, load locations, publish the synthetic datasets; returns their codes."""
    started = time.perf_counter()
    rng = random.Random(seed)
    scale = _scale_for(factors) if layout == "four" else 1.0
    datasets = DATASETS if layout == "four" else ((LARGE_DATASET, 10, "all", 1.0),)
    engine = make_engine(url)
    codes: list[tuple[str, str]] = []
    total = 0
    try:
        upgrade_to_head(engine)
        with make_sessionmaker(engine).begin() as session:
            load_locations(session)
            publisher = Publisher(
                slug=PUBLISHER_SLUG,
                name_en="Synthetic benchmark publisher (not a real publisher)",
                name_zh="合成基准数据发布者 (非真实)",
                sectors=[],
            )
            session.add(publisher)
            session.flush()
            for slug, priority, scope, chance in datasets:
                dataset = Dataset(
                    publisher_id=publisher.id,
                    slug=slug,
                    title_en=f"{SYNTHETIC_TITLE}: {slug}",
                    title_zh="合成基准数据 (非真实排放因子)",
                    description=f"{SYNTHETIC_TITLE}: generated by bench/resolve.py.",
                    access="public",
                    license_id="CC0-1.0",
                    attribution=SYNTHETIC_TITLE,
                    redistribution=True,
                    commercial_use=True,
                    priority=priority,
                )
                session.add(dataset)
                session.flush()
                records: Iterator[tuple[int, FactorFields]] = (
                    dataset_records(scope, chance, scale, rng)
                    if layout == "four"
                    else large_records(factors, rng, hot)
                )

                def kept(
                    rows: Iterator[tuple[int, FactorFields]], slug: str = slug
                ) -> Iterator[tuple[int, FactorFields]]:
                    for row in rows:
                        codes.append((slug, row[1].factor_code))
                        yield row

                released = release_directly(
                    session,
                    dataset_id=dataset.id,
                    version="1.0.0",
                    records=kept(records),
                    actor=ACTOR,
                    release_notes=SYNTHETIC_TITLE,
                )
                total += released.row_count
        if engine.dialect.name == "postgresql":
            # What autovacuum does soon after a bulk load: statistics and the visibility map.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return Built(total, time.perf_counter() - started, codes)


def mixed_lines(rng: random.Random, count: int, hot: float = 0.0) -> list[dict[str, Any]]:
    """Lines as an accounting tool sends them: mostly resolvable, some not, in every way
    (`hot`: the share of them asking for HOT_CELL's activity)."""
    activities = list(ACTIVITIES)
    lines: list[dict[str, Any]] = []
    for _ in range(count):
        activity = HOT_CELL[0] if rng.random() < hot else rng.choice(activities)
        roll = rng.random()
        region = (
            rng.choice(CN_SUBDIVISIONS)
            if roll < 0.7
            else "CN"
            if roll < 0.85
            else rng.choice(("GLO", "US-CA", "GB", "DE-BY"))
        )
        line: dict[str, Any] = {
            "activity_id": activity,
            "region": region,
            "year": rng.choice((*YEARS, 2025, 2026, 2012)),
        }
        unit = UNITS[activity]
        roll = rng.random()
        if roll < 0.3 and unit in ALTERNATIVE_UNITS:
            line["unit"] = ALTERNATIVE_UNITS[unit]
        elif roll < 0.5:
            line["unit"] = unit
        elif roll < 0.53 and unit in INCOMPATIBLE_UNIT:
            line["unit"] = INCOMPATIBLE_UNIT[unit]
        if rng.random() < 0.2:
            line["boundary"] = rng.choice(BOUNDARIES)
        if rng.random() < 0.02:
            line["activity_id"] = "synthetic-unknown-activity"
        lines.append(line)
    return lines


# --------------------------------------------------------------------------- measuring


class Client:
    """One keep-alive HTTP/1.1 connection, one request at a time; `accept_encoding` is sent
    with every request (the timing includes receiving the compressed bytes, not decoding
    them: `decoded` does that afterwards)."""

    def __init__(self, port: int, timeout: float = 120, accept_encoding: str = "") -> None:
        self.connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
        self.accept_encoding = accept_encoding
        self.last_encoding = "identity"

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        if self.accept_encoding:
            headers["Accept-Encoding"] = self.accept_encoding
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        self.last_encoding = response.getheader("Content-Encoding") or "identity"
        return response.status, response.read()

    def decoded(self, payload: bytes) -> bytes:
        """The last answer's bytes as JSON (undoing its Content-Encoding)."""
        if self.last_encoding == "gzip":
            return gzip.decompress(payload)
        if self.last_encoding == "zstd":
            import zstandard

            return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(payload))
        if self.last_encoding == "br":
            import brotli

            return bytes(brotli.decompress(payload))
        return payload

    def close(self) -> None:
        self.connection.close()


@dataclass
class Series:
    label: str
    latencies: list[float] = field(default_factory=list)
    # The server's largest peak resident set over its resident set before a request, in KB.
    peak_kb: int = 0
    # The server's resident set before the request that peaked most, in KB.
    rss_kb: int = 0

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] * 1000

    @property
    def mean_ms(self) -> float:
        return sum(self.latencies) / len(self.latencies) * 1000 if self.latencies else math.nan


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == key:
                return int(rest.split()[0])
    return 0


class Memory:
    """The server process's peak resident set during one request (Linux: VmHWM, reset through
    /proc/PID/clear_refs before it); zeros where /proc is not there."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = 0

    def reset(self) -> None:
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.before = _status_kb(self.pid, "VmRSS")

    def record(self, series: Series) -> None:
        peak = _status_kb(self.pid, "VmHWM") - self.before
        if peak >= series.peak_kb:
            series.peak_kb, series.rss_kb = max(peak, 0), self.before


def _timed(
    client: Client, method: str, path: str, body: bytes | None = None
) -> tuple[float, bytes]:
    started = time.perf_counter()
    status, payload = client.request(method, path, body)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(
            f"{method} {path} answered {status} after {elapsed:.1f} s: {payload[:300]!r}"
        )
    return elapsed, payload


@dataclass
class Outcome:
    backend: str
    version: str
    built: Built
    batch: Series
    single: Series
    by_code: Series
    batch_lines: dict[str, int]
    batch_bytes: int
    # The last 1000-line answer as sent (after compression) and how it was encoded.
    batch_wire_bytes: int = 0
    encoding: str = "identity"
    lines: int = BATCH
    layout: str = "four"

    @property
    def batch_per_line_ms(self) -> float:
        return self.batch.mean_ms / self.lines

    @property
    def ratio_single(self) -> float:
        return self.single.mean_ms / self.batch_per_line_ms

    @property
    def ratio_by_code(self) -> float:
        return self.by_code.mean_ms / self.batch_per_line_ms

    @property
    def p99_ratio(self) -> float:
        return self.batch.percentile_ms(0.99) / self.by_code.percentile_ms(0.99)


def _outcomes(payload: bytes, counts: dict[str, int]) -> None:
    for item in json.loads(payload)["items"]:
        key = "resolved" if "factor" in item else item["error"]["code"]
        counts[key] = counts.get(key, 0) + 1


def measure(backend: str, url: str, args: argparse.Namespace, workdir: Path) -> Outcome:
    codes = existing_codes(url)
    if codes is not None:
        built = Built(len(codes), 0.0, codes)
        print(f"[{backend}] reusing {built.factors:,} synthetic factors", flush=True)
    else:
        print(f"[{backend}] building {args.factors:,} synthetic factors ...", flush=True)
        built = build_database(url, args.factors, args.seed, args.layout, args.hot)
        print(f"[{backend}] built {built.factors:,} factors in {built.seconds:.0f} s", flush=True)
    version = backend_version(url)
    rng = random.Random(args.seed + 1)
    lines = args.lines
    batch, single, by_code = (
        Series(f"{lines}-line resolve call"),
        Series("1-line resolve call"),
        Series("factor by code"),
    )
    counts: dict[str, int] = {}
    size = wire = 0
    encoding = "identity"
    env = {"EFDB_DATABASE_URL": url}
    with uvicorn_server(
        "efdb", "app.main:create_app", "/readyz", env, workdir / f"{backend}-efdb.log"
    ) as server:
        client = Client(server.port, args.timeout, args.accept_encoding)
        memory = Memory(server.process.pid)
        try:

            def run_batch(record: bool) -> None:
                nonlocal size, wire, encoding
                body = json.dumps({"items": mixed_lines(rng, lines, args.hot_lines)}).encode()
                memory.reset()
                elapsed, payload = _timed(client, "POST", "/v1/factors:resolve", body)
                if record:
                    memory.record(batch)
                    batch.latencies.append(elapsed)
                    encoding, wire = client.last_encoding, len(payload)
                    payload = client.decoded(payload)
                    _outcomes(payload, counts)
                    size = len(payload)

            def run_single(record: bool) -> None:
                body = json.dumps({"items": mixed_lines(rng, 1, args.hot_lines)}).encode()
                memory.reset()
                elapsed, _ = _timed(client, "POST", "/v1/factors:resolve", body)
                if record:
                    memory.record(single)
                    single.latencies.append(elapsed)

            def run_by_code(record: bool) -> None:
                dataset, code = rng.choice(built.codes)
                path = f"/v1/factors/{PUBLISHER_SLUG}/{dataset}/{code}"
                memory.reset()
                elapsed, _ = _timed(client, "GET", path)
                if record:
                    memory.record(by_code)
                    by_code.latencies.append(elapsed)

            for _ in range(args.warmup):
                run_batch(False)
            for _ in range(args.warmup * 20):
                run_single(False)
                run_by_code(False)
            per_round_batches = math.ceil(args.batches / args.rounds)
            per_round_singles = math.ceil(args.singles / args.rounds)
            for round_index in range(args.rounds):
                # Interleaved so that drift on a shared machine hits every series alike:
                # each 1000-line call is followed by its share of single requests.
                for step in range(per_round_batches):
                    run_batch(True)
                    share = per_round_singles * (step + 1) // per_round_batches
                    share -= per_round_singles * step // per_round_batches
                    for _ in range(share):
                        run_single(True)
                        run_by_code(True)
                print(f"[{backend}] round {round_index + 1}/{args.rounds} done", flush=True)
        finally:
            client.close()
    return Outcome(
        backend,
        version,
        built,
        batch,
        single,
        by_code,
        counts,
        size,
        wire,
        encoding,
        lines,
        args.layout,
    )


def report(outcome: Outcome) -> list[tuple[str, float, float, bool]]:
    print()
    datasets = "4 datasets" if outcome.layout == "four" else "1 dataset"
    print(
        f"== {outcome.backend}: {outcome.version}; {outcome.built.factors:,} synthetic factors "
        f"({datasets}, {len(ACTIVITIES)} activities, {len(CN_SUBDIVISIONS) + 2} regions) =="
    )
    print(
        f"   {'series':<26}{'calls':>7}{'mean ms':>10}{'p50 ms':>9}{'p99 ms':>9}{'per line ms':>13}"
        f"{'peak MB':>9}{'RSS MB':>8}"
    )
    for series, lines in (
        (outcome.batch, outcome.lines),
        (outcome.single, 1),
        (outcome.by_code, 1),
    ):
        print(
            f"   {series.label:<26}{len(series.latencies):>7}{series.mean_ms:>10.2f}"
            f"{series.percentile_ms(0.5):>9.2f}{series.percentile_ms(0.99):>9.2f}"
            f"{series.mean_ms / lines:>13.3f}{series.peak_kb / 1024:>9.1f}"
            f"{series.rss_kb / 1024:>8.1f}"
        )
    answered = ", ".join(f"{key} {count}" for key, count in sorted(outcome.batch_lines.items()))
    print(
        f"   {outcome.lines}-line calls answered: {answered}; "
        f"last response {outcome.batch_bytes:,} bytes, {outcome.batch_wire_bytes:,} on the wire "
        f"({outcome.encoding})"
    )
    # Server memory: the largest peak a call added over the resident set before it, as a
    # ratio to the lookups' (at least 1 MB each, so that a lookup's ~0 does not divide).
    memory_ratio = max(outcome.batch.peak_kb, 1024) / max(outcome.by_code.peak_kb, 1024)
    single_memory_ratio = max(outcome.single.peak_kb, 1024) / max(outcome.by_code.peak_kb, 1024)
    print(
        f"   server memory: peak over RSS of a {outcome.lines}-line call / of a lookup "
        f"{memory_ratio:.1f}x, of a 1-line call / of a lookup {single_memory_ratio:.1f}x "
        "(each at least 1 MB)"
    )
    checks = [
        (
            f"per line: 1-line resolve calls / {outcome.lines}-line call",
            outcome.ratio_single,
            BATCH_VS_SINGLE_TARGET,
            True,
        ),
        (
            f"per line: factor-by-code GETs / {outcome.lines}-line call",
            outcome.ratio_by_code,
            BATCH_VS_SINGLE_TARGET,
            True,
        ),
        (
            f"p99 {outcome.lines}-line call / p99 factor by code",
            outcome.p99_ratio,
            BATCH_P99_TARGET,
            False,
        ),
    ]
    results = []
    for label, value, target, higher in checks:
        ok = value >= target if higher else value < target
        sign = ">=" if higher else "<"
        print(
            f"   {label:<52}{value:>8.1f}x  (target {sign} {target:g}x)  {'PASS' if ok else 'MISS'}"
        )
        results.append((label, value, target, ok))
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.resolve",
        description="Batch resolution versus single lookups, over HTTP, on synthetic factors.",
    )
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="postgresql")
    parser.add_argument("--factors", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=30, help="measured 1000-line calls")
    parser.add_argument("--singles", type=int, default=1000, help="measured single requests each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured 1000-line calls")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument(
        "--layout",
        choices=["four", "one"],
        default="four",
        help="four datasets with holes (default) or every factor in one dataset",
    )
    parser.add_argument("--lines", type=int, default=BATCH, help="lines per batch call")
    parser.add_argument(
        "--hot",
        type=int,
        default=0,
        help="--layout one: this many of the factors in one activity, region and year",
    )
    parser.add_argument(
        "--hot-lines",
        type=float,
        default=0.0,
        help="share of the lines asking for that activity (besides their random share)",
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request")
    parser.add_argument(
        "--accept-encoding",
        default="zstd, gzip",
        help="Accept-Encoding of every request ('' for none: uncompressed answers)",
    )
    parser.add_argument(
        "--database-url",
        help="use this database (one backend only); built when empty, reused when built",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if min(args.factors, args.batches, args.singles, args.rounds, args.lines) < 1:
        parser.error("counts must be positive")
    if args.warmup < 0:
        parser.error("counts must be positive")
    if args.database_url and args.backend == "both":
        parser.error("--database-url takes one backend")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    print(
        f"efdb resolve benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.platform()}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    passed = True
    with tempfile.TemporaryDirectory(prefix="efdb-bench-logs-") as logs:
        for backend in backends:
            database: contextlib.AbstractContextManager[str] = (
                contextlib.nullcontext(args.database_url)
                if args.database_url
                else sqlite_database()
                if backend == "sqlite"
                else postgres_database(args.postgres_url)
            )
            with database as url:
                outcome = measure(backend, url, args, Path(logs))
            for label, value, target, ok in report(outcome):
                passed = passed and ok
                rows.append(
                    {
                        "backend": backend,
                        "check": label,
                        "value": round(value, 2),
                        "target": target,
                        "pass": ok,
                    }
                )
            rows.append(
                {
                    "backend": backend,
                    "factors": outcome.built.factors,
                    "batch_p50_ms": round(outcome.batch.percentile_ms(0.5), 2),
                    "batch_p99_ms": round(outcome.batch.percentile_ms(0.99), 2),
                    "single_resolve_mean_ms": round(outcome.single.mean_ms, 3),
                    "by_code_p99_ms": round(outcome.by_code.percentile_ms(0.99), 3),
                    "lines_per_batch": outcome.lines,
                    "batch_bytes": outcome.batch_bytes,
                    "batch_wire_bytes": outcome.batch_wire_bytes,
                    "encoding": outcome.encoding,
                    "batch_peak_mb": round(outcome.batch.peak_kb / 1024, 1),
                    "single_peak_mb": round(outcome.single.peak_kb / 1024, 1),
                    "by_code_peak_mb": round(outcome.by_code.peak_kb / 1024, 1),
                    "lines": outcome.batch_lines,
                }
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
