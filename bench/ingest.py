"""Upload throughput and server memory, as a ratio to a raw psycopg COPY of the same rows.

On PostgreSQL, in a fresh `efdb_bench_<random>` database (dropped afterwards):

1. Data: a CSV of N synthetic factor rows (default 1,000,000; every row valid, distinct factor
   codes, `source_title` "Synthetic benchmark data (not real factors)") written to a temp file.
2. Server: `python -m app.cli serve` in a subprocess (as an operator runs it, in a temp
   directory, loopback only); a publisher and a `datasets:write` client made with the CLI; a
   token from /oauth/token (client credentials); a dataset made with POST /v1/datasets.
3. Upload: the CSV streamed from the file as multipart to
   POST /v1/datasets/{publisher}/{dataset}/versions, timed from the request's first byte to the
   201 answer, while a thread samples the server's resident set (VmRSS of the process and its
   children, every 50 ms) and pg_stat_activity (to split the time into phases).
4. Baseline, in the same run: the same CSV read with `csv.reader` and written with psycopg
   `COPY ... FROM STDIN` (`write_row`) into a plain table with the same column types and no
   indexes, constraints or triggers, timed end to end (read + COPY + commit); once before and
   once after the upload, so drift on a shared machine shows. For information only, the same
   file sent to `COPY ... (FORMAT csv)` as bytes (PostgreSQL parses it).

    python -m bench.ingest [--rows 1000000] [--postgres-url URL] [--json PATH] [--strict]
                           [--verbose] [--py-spy OUT.svg|OUT.json|OUT.txt] [--no-submit]
                           [--publish]

5. Submit (unless `--no-submit`), for information: the draft's rows move from `factor_draft`
   into `factor` (every index, key and guard), timed from the request to its answer.
6. Publish (with `--publish`), for information: a national reviewer made with the CLI
   publishes the submitted version, naming its hash (the hash again, the search index, the
   facet counts, the release's files), timed from the request to its answer.

Targets: upload rows/s >= 0.3x the baseline's; server peak RSS <= 500 MB. Only the ratio and
the memory are judged; absolute rows/s depend on the machine and are printed for context.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from app.core.config import PROJECT_ROOT
from app.factors.models import Factor
from app.publishing.records import parse_record
from app.reference.gwp import co2e_from_gases
from bench.read_api import (
    ACTIVITIES,
    BOUNDARIES,
    GWP_SETS,
    HOST,
    REGIONS,
    SYNTHETIC_TITLE,
    UNITS,
    YEARS,
    add_common_arguments,
    backend_version,
    free_port,
    postgres_database,
)

RATIO_TARGET = 0.3
RSS_TARGET_MB = 500.0
SAMPLE_SECONDS = 0.05
ACTIVITY_SAMPLE_SECONDS = 0.1

PUBLISHER_SLUG = "bench-synthetic"
DATASET_SLUG = "synthetic-factors"
VERSION = "1.0.0"
BASELINE_TABLE = "bench_copy_baseline"
DATASET_BODY: dict[str, Any] = {
    "slug": DATASET_SLUG,
    "title_zh": "合成基准数据 (非真实排放因子)",
    "title_en": SYNTHETIC_TITLE,
    "description": f"{SYNTHETIC_TITLE}: uploaded by bench/ingest.py.",
    "sector_scheme": "GB/T 4754-2017",
    "sector_code": "C31",
    "access": "public",
    "license_id": "CC0-1.0",
    "attribution": SYNTHETIC_TITLE,
    "redistribution": True,
    "commercial_use": True,
}

COLUMNS = (
    "factor_code",
    "activity_id",
    "name_zh",
    "name_en",
    "description",
    "category",
    "region",
    "reference_year",
    "unit",
    "co2e",
    "co2",
    "ch4",
    "n2o",
    "gwp_set",
    "boundary",
    "method",
    "uncertainty_low",
    "uncertainty_high",
    "uncertainty_distribution",
    "dq_reliability",
    "dq_completeness",
    "dq_temporal",
    "dq_geographical",
    "dq_technological",
    "source_title",
    "source_publisher",
    "source_locator",
)


# --------------------------------------------------------------------------- synthetic data


def synthetic_rows(count: int, seed: int) -> Iterator[list[str]]:
    """`count` valid CSV rows of plainly labelled synthetic factors (deterministic for a seed)."""
    rng = random.Random(seed)
    width = max(7, len(str(count - 1)))
    for index in range(count):
        code = f"syn-{index:0{width}d}"
        region = rng.choice(REGIONS)
        year = rng.choice(YEARS)
        activity = rng.choice(ACTIVITIES)
        co2 = round(rng.lognormvariate(0.0, 1.5), 6)
        ch4 = round(co2 * rng.uniform(1e-4, 1e-2), 9)
        n2o = round(co2 * rng.uniform(1e-5, 1e-3), 9)
        gwp_set = rng.choice(GWP_SETS)
        co2e = round(co2e_from_gases(gwp_set, co2=co2, ch4=ch4, n2o=n2o, other=None), 9)
        yield [
            code,
            activity,
            f"合成因子 {code}",
            f"Synthetic factor {code}",
            f"Synthetic: {activity}, {region}, {year}",
            f"synthetic/{activity.split('-')[1]}",
            region,
            str(year),
            rng.choice(UNITS),
            repr(co2e),
            repr(co2),
            repr(ch4),
            repr(n2o),
            gwp_set,
            rng.choice(BOUNDARIES),
            "synthetic",
            repr(round(co2e * 0.9, 9)),
            repr(round(co2e * 1.1, 9)),
            "lognormal",
            *(str(rng.randint(1, 5)) for _ in range(5)),
            SYNTHETIC_TITLE,
            "efdb benchmark generator",
            f"row {index + 2}",
        ]


def write_csv(path: Path, count: int, seed: int) -> int:
    """Write the CSV (header + `count` rows); returns its size in bytes."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(synthetic_rows(count, seed))
    return path.stat().st_size


def check_sample(path: Path, count: int) -> None:
    """Fail fast if the generator drifted from what the upload accepts (first `count` rows)."""
    with path.open(encoding="utf-8", newline="") as handle:
        for row_number, cells in enumerate(csv.DictReader(handle), start=2):
            if row_number - 1 > count:
                break
            parsed = parse_record(row_number, cells)
            if isinstance(parsed, list):
                raise SystemExit(f"generated row {row_number} is invalid: {parsed}")


# --------------------------------------------------------------------------- baseline


def conninfo(url: str) -> str:
    """A SQLAlchemy URL as a libpq URI for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def baseline_columns() -> list[tuple[str, str]]:
    """The CSV's columns with the PostgreSQL types efdb stores them as (factor, source)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    factor = Factor.metadata.tables["factor"]
    source = Factor.metadata.tables["source"]
    typed: list[tuple[str, str]] = []
    for name in COLUMNS:
        # Source fields are stored in `source` without their prefix (source_title -> title).
        table, key = (factor, name) if name in factor.c else (source, name[len("source_") :])
        column = table.c[key]
        typed.append((name, column.type.compile(dialect=dialect)))
    return typed


def checkpoint(connection: psycopg.Connection[Any]) -> bool:
    """Start each timed phase with a clean shared-buffer/WAL state, if allowed to."""
    try:
        connection.execute("CHECKPOINT")
        return True
    except psycopg.Error:
        return False


@dataclass
class CopyRun:
    label: str
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def _create_baseline_table(connection: psycopg.Connection[Any]) -> None:
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_))
        for name, type_ in baseline_columns()
    )
    connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(BASELINE_TABLE)))
    connection.execute(
        sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(BASELINE_TABLE), columns)
    )
    connection.commit()


def _finish_baseline(connection: psycopg.Connection[Any], expected: int) -> None:
    table = sql.Identifier(BASELINE_TABLE)
    row = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    if row is None or row[0] != expected:
        raise RuntimeError(f"baseline table holds {row} rows, expected {expected}")
    connection.execute(sql.SQL("DROP TABLE {}").format(table))
    connection.commit()


def baseline_copy(url: str, path: Path, expected: int, label: str) -> CopyRun:
    """Read the CSV with csv.reader and COPY each row with write_row; one transaction."""
    names = sql.SQL(", ").join(sql.Identifier(name) for name in COLUMNS)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(BASELINE_TABLE), names)
    with psycopg.connect(conninfo(url)) as connection:
        _create_baseline_table(connection)
        checkpoint(connection)
        rows = 0
        started = time.perf_counter()
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            if tuple(header) != COLUMNS:
                raise RuntimeError(f"unexpected header {header}")
            with connection.cursor() as cursor, cursor.copy(statement) as copy:
                for cells in reader:
                    copy.write_row([cell if cell != "" else None for cell in cells])
                    rows += 1
        connection.commit()
        seconds = time.perf_counter() - started
        _finish_baseline(connection, expected)
    if rows != expected:
        raise RuntimeError(f"baseline copied {rows} rows, expected {expected}")
    return CopyRun(label, rows, seconds)


def csv_copy(url: str, path: Path, expected: int) -> CopyRun:
    """The file's bytes to COPY (FORMAT csv, HEADER): PostgreSQL parses; information only."""
    names = sql.SQL(", ").join(sql.Identifier(name) for name in COLUMNS)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
        sql.Identifier(BASELINE_TABLE), names
    )
    with psycopg.connect(conninfo(url)) as connection:
        _create_baseline_table(connection)
        checkpoint(connection)
        started = time.perf_counter()
        with (
            path.open("rb") as handle,
            connection.cursor() as cursor,
            cursor.copy(statement) as copy,
        ):
            for block in iter(lambda: handle.read(1 << 20), b""):
                copy.write(block)
        connection.commit()
        seconds = time.perf_counter() - started
        _finish_baseline(connection, expected)
    return CopyRun("psycopg COPY (FORMAT csv), file bytes", expected, seconds)


# --------------------------------------------------------------------------- server


def server_env(url: str, csv_bytes: int, rows: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env.update(
        PYTHONPATH=str(PROJECT_ROOT),
        EFDB_DATABASE_URL=url,
        EFDB_MAX_UPLOAD_MB=str(max(1024, csv_bytes // (1 << 20) + 64)),
        EFDB_MAX_UPLOAD_ROWS=str(max(2_000_000, rows)),
    )
    return env


def efdb_cli(*args: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """`python -m app.cli ...`, as an operator runs it; its JSON output."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"efdb {' '.join(args[:2])} failed: {result.stderr[-2000:]}")
    output: dict[str, Any] = json.loads(result.stdout)
    return output


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def efdb_server(env: dict[str, str], cwd: Path, log_path: Path) -> Iterator[Server]:
    """`python -m app.cli serve` (migrate, seed an empty database, serve) on loopback."""
    port = free_port()
    base = f"http://{HOST}:{port}"
    command = [
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"efdb serve exited with {process.returncode}:\n"
                    + log_path.read_text(errors="replace")[-4000:]
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("efdb serve was not ready after 180 s")
            time.sleep(0.2)
        yield Server(base, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def access_token(base: str, credentials: dict[str, Any]) -> dict[str, str]:
    response = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(str(credentials["client_id"]), str(credentials["client_secret"])),
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"token request failed: {response.status_code} {response.text}")
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# --------------------------------------------------------------------------- monitors


def _process_tree(pid: int) -> list[int]:
    pids = [pid]
    position = 0
    while position < len(pids):
        current = pids[position]
        position += 1
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    pids.extend(int(child) for child in (task / "children").read_text().split())
    return pids


def _status_kb(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0])
    return 0


def tree_rss_mb(pid: int) -> float:
    return sum(_status_kb(p, "VmRSS") for p in _process_tree(pid)) / 1024


@dataclass
class Monitor:
    """Samples the server's RSS (every 50 ms) and what its database session does (100 ms)."""

    pid: int
    url: str
    peak_mb: float = 0.0
    peak_at: float = 0.0
    samples: int = 0
    trace: list[tuple[float, float]] = field(default_factory=list)  # (time, MB)
    copy_first: float | None = None
    copy_last: float | None = None
    copy_samples: int = 0
    copy_active_samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Monitor:
        self._threads = [
            threading.Thread(target=self._sample_rss, daemon=True),
            threading.Thread(target=self._sample_activity, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _sample_rss(self) -> None:
        while True:
            rss = tree_rss_mb(self.pid)
            self.samples += 1
            self.trace.append((time.perf_counter(), rss))
            if rss > self.peak_mb:
                self.peak_mb, self.peak_at = rss, time.perf_counter()
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def _sample_activity(self) -> None:
        query = (
            "SELECT state, left(query, 40) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        with psycopg.connect(conninfo(self.url), autocommit=True) as connection:
            while True:
                now = time.perf_counter()
                sessions = connection.execute(query).fetchall()
                copying = [state for state, text in sessions if text.startswith("COPY factor")]
                if copying:
                    self.copy_first = self.copy_first if self.copy_first is not None else now
                    self.copy_last = now
                    self.copy_samples += 1
                    self.copy_active_samples += any(state == "active" for state in copying)
                if self._stop.wait(ACTIVITY_SAMPLE_SECONDS):
                    return


class TimedFile(io.FileIO):
    """A file that notes when httpx has read its last byte (the body is then on the wire)."""

    finished_at: float | None = None

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if not data and self.finished_at is None:
            self.finished_at = time.perf_counter()
        return data


@contextlib.contextmanager
def py_spy(pid: int, output: Path | None) -> Iterator[None]:
    """`py-spy record` on the server while the block runs (if asked for and installed)."""
    if output is None:
        yield
        return
    executable = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(executable).exists():
        raise SystemExit("--py-spy: py-spy is not installed (pip install py-spy)")
    formats = {".svg": "flamegraph", ".json": "speedscope"}
    command = [
        executable,
        "record",
        "--pid",
        str(pid),
        "--rate",
        "50",
        "--nonblocking",
        "--format",
        formats.get(output.suffix, "raw"),
        "--output",
        str(output),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if not output.exists():
            print(f"py-spy wrote nothing: {stderr.decode(errors='replace')[-1000:]}")


# --------------------------------------------------------------------------- upload


@dataclass
class UploadRun:
    rows: int
    seconds: float
    body_sent: float | None
    copy_first: float | None
    copy_last: float | None
    copy_samples: int
    copy_active_samples: int
    rss_before_mb: float
    rss_peak_mb: float
    rss_peak_at: float
    rss_samples: int
    rss_by_quarter: list[float]  # MB at 0, 25, 50, 75 and 100% of the upload's duration
    vm_hwm_mb: float
    response: dict[str, Any]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def peak_mb(self) -> float:
        """The sampled peak of the process tree, or the kernel's high-water mark if higher."""
        return max(self.rss_peak_mb, self.vm_hwm_mb)


def upload(
    server: Server, url: str, headers: dict[str, str], path: Path, rows: int, profile: Path | None
) -> UploadRun:
    pid = server.process.pid
    rss_before = tree_rss_mb(pid)
    endpoint = f"{server.base}/v1/datasets/{PUBLISHER_SLUG}/{DATASET_SLUG}/versions"
    with (
        TimedFile(path, "r") as handle,
        httpx.Client(timeout=httpx.Timeout(3600.0, connect=30.0)) as client,
        py_spy(pid, profile),
        Monitor(pid, url) as monitor,
    ):
        time.sleep(0.3)  # a first RSS sample and activity poll before the request
        started = time.perf_counter()
        response = client.post(
            endpoint,
            headers=headers,
            data={"version": VERSION, "release_notes": f"{SYNTHETIC_TITLE}: upload benchmark"},
            files={"file": ("synthetic-factors.csv", handle, "text/csv")},
        )
        seconds = time.perf_counter() - started
        time.sleep(0.2)  # one more RSS sample after the answer
    if response.status_code != 201:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:2000]}")
    body: dict[str, Any] = response.json()
    if body.get("row_count") != rows or body["report"]["error_count"]:
        raise RuntimeError(f"upload stored {body.get('row_count')} rows, expected {rows}: {body}")

    def relative(moment: float | None) -> float | None:
        return None if moment is None else moment - started

    return UploadRun(
        rows=rows,
        seconds=seconds,
        body_sent=relative(handle.finished_at),
        copy_first=relative(monitor.copy_first),
        copy_last=relative(monitor.copy_last),
        copy_samples=monitor.copy_samples,
        copy_active_samples=monitor.copy_active_samples,
        rss_before_mb=rss_before,
        rss_peak_mb=monitor.peak_mb,
        rss_peak_at=monitor.peak_at - started,
        rss_samples=monitor.samples,
        rss_by_quarter=_quarters(monitor.trace, started, started + seconds),
        vm_hwm_mb=_status_kb(pid, "VmHWM") / 1024,
        response=body,
    )


def _quarters(trace: list[tuple[float, float]], start: float, end: float) -> list[float]:
    """The sampled RSS nearest to 0, 25, 50, 75 and 100% of the way through the upload."""
    if not trace:
        return []
    moments = [start + (end - start) * q / 4 for q in range(5)]
    return [min(trace, key=lambda sample: abs(sample[0] - moment))[1] for moment in moments]


def stored_rows(url: str) -> int:
    """The version's rows, wherever they are (a draft's in factor_draft, then in factor)."""
    counted = (
        "SELECT count(*) FROM {table} f JOIN dataset_version v ON v.id = f.version_id "
        "JOIN dataset d ON d.id = v.dataset_id WHERE d.slug = %s AND v.version = %s"
    )
    total = 0
    with psycopg.connect(conninfo(url)) as connection:
        for table in ("factor", "factor_draft"):
            row = connection.execute(
                counted.format(table=table), (DATASET_SLUG, VERSION)
            ).fetchone()
            total += int(row[0]) if row else 0
    return total


_VERSION_PATH = f"/v1/datasets/{PUBLISHER_SLUG}/{DATASET_SLUG}/versions/{VERSION}"


def submit(server: Server, headers: dict[str, str]) -> tuple[float, str]:
    """Submit the draft (its rows move from factor_draft into factor); the seconds it took
    and the content hash it fixed."""
    started = time.perf_counter()
    response = httpx.post(f"{server.base}{_VERSION_PATH}/submit", headers=headers, timeout=3600.0)
    seconds = time.perf_counter() - started
    if response.status_code != 200 or response.json().get("status") != "submitted":
        raise RuntimeError(f"submit answered {response.status_code}: {response.text[:2000]}")
    return seconds, str(response.json()["content_sha256"])


def publish(server: Server, headers: dict[str, str], content_sha256: str) -> float:
    """Publish the submitted version as a national reviewer, naming the hash it reviewed (the
    hash again, the search index, the facet counts, the release's files); the seconds."""
    started = time.perf_counter()
    response = httpx.post(
        f"{server.base}{_VERSION_PATH}/publish",
        headers=headers,
        json={"content_sha256": content_sha256},
        timeout=3600.0,
    )
    seconds = time.perf_counter() - started
    if response.status_code != 200 or response.json().get("status") != "published":
        raise RuntimeError(f"publish answered {response.status_code}: {response.text[:2000]}")
    return seconds


# --------------------------------------------------------------------------- run and report


@dataclass
class Result:
    database: str
    rows: int
    csv_bytes: int
    baselines: list[CopyRun]
    csv_copy: CopyRun
    upload: UploadRun
    seconds: float
    # The submit after the upload (None: not run), where the draft's rows move into factor.
    submit_seconds: float | None = None
    # The publish after the submit (None: not run).
    publish_seconds: float | None = None

    @property
    def baseline_rows_per_s(self) -> float:
        """All baseline runs' rows over all their time (before and after the upload)."""
        return sum(r.rows for r in self.baselines) / sum(r.seconds for r in self.baselines)

    @property
    def ratio(self) -> float:
        return self.upload.rows_per_s / self.baseline_rows_per_s


def run(url: str, args: argparse.Namespace, tmp: Path) -> Result:
    started = time.perf_counter()
    path = tmp / "synthetic-factors.csv"
    print(f"writing {args.rows:,} synthetic rows to a temp CSV ...", flush=True)
    csv_bytes = write_csv(path, args.rows, args.seed)
    check_sample(path, min(args.rows, 2000))
    print(f"  {csv_bytes / 1e6:.1f} MB, {len(COLUMNS)} columns", flush=True)

    print("baseline 1/2: csv.reader + psycopg COPY write_row ...", flush=True)
    baselines = [baseline_copy(url, path, args.rows, "before the upload")]
    print(f"  {baselines[0].seconds:.1f} s", flush=True)

    server_dir = tmp / "server"
    server_dir.mkdir()
    env = server_env(url, csv_bytes, args.rows)
    print("starting efdb serve (migrations + seed data) ...", flush=True)
    with efdb_server(env, server_dir, tmp / "server.log") as server:
        if args.verbose:
            print(f"  efdb serve pid {server.process.pid} at {server.base}", flush=True)
        efdb_cli(
            "publisher",
            "create",
            PUBLISHER_SLUG,
            "--name-zh",
            "合成基准数据发布者 (非真实)",
            "--name-en",
            "Synthetic benchmark publisher (not a real publisher)",
            env=env,
            cwd=server_dir,
        )
        credentials = efdb_cli(
            "client",
            "create",
            "--publisher",
            PUBLISHER_SLUG,
            "--scope",
            "datasets:write",
            "--name",
            "bench.ingest",
            env=env,
            cwd=server_dir,
        )
        headers = access_token(server.base, credentials)
        created = httpx.post(
            f"{server.base}/v1/datasets", json=DATASET_BODY, headers=headers, timeout=30
        )
        if created.status_code != 201:
            raise RuntimeError(f"dataset creation answered {created.status_code}: {created.text}")
        with psycopg.connect(conninfo(url), autocommit=True) as connection:
            checkpoint(connection)
        print(f"uploading {args.rows:,} rows over HTTP ...", flush=True)
        result = upload(server, url, headers, path, args.rows, args.py_spy)
        print(f"  {result.seconds:.1f} s", flush=True)
        submit_seconds = publish_seconds = None
        if not args.no_submit:
            print("submitting the draft (its rows move into factor) ...", flush=True)
            submit_seconds, content_sha256 = submit(server, headers)
            print(f"  {submit_seconds:.1f} s", flush=True)
            if args.publish:
                reviewer = efdb_cli(
                    "client",
                    "create",
                    "--admin",
                    "--scope",
                    "datasets:review",
                    "--name",
                    "bench.ingest reviewer",
                    env=env,
                    cwd=server_dir,
                )
                print("publishing it as a national reviewer ...", flush=True)
                publish_seconds = publish(
                    server, access_token(server.base, reviewer), content_sha256
                )
                print(f"  {publish_seconds:.1f} s", flush=True)
    stored = stored_rows(url)
    if stored != args.rows:
        raise RuntimeError(f"the database holds {stored} rows of the upload, expected {args.rows}")

    print("baseline 2/2: csv.reader + psycopg COPY write_row ...", flush=True)
    baselines.append(baseline_copy(url, path, args.rows, "after the upload"))
    print(f"  {baselines[1].seconds:.1f} s", flush=True)
    print("information: psycopg COPY (FORMAT csv) of the file's bytes ...", flush=True)
    raw = csv_copy(url, path, args.rows)
    print(f"  {raw.seconds:.1f} s", flush=True)
    return Result(
        backend_version(url),
        args.rows,
        csv_bytes,
        baselines,
        raw,
        result,
        time.perf_counter() - started,
        submit_seconds,
        publish_seconds,
    )


def _span(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "    n/a"
    return f"{end - start:6.1f} s"


def print_report(result: Result) -> tuple[bool, bool]:
    up = result.upload
    ratio_ok = result.ratio >= RATIO_TARGET
    rss_ok = up.peak_mb <= RSS_TARGET_MB
    mb = result.csv_bytes / 1e6
    print()
    print(
        f"== {result.database}; {result.rows:,} synthetic rows, CSV {mb:.1f} MB, "
        f"{len(COLUMNS)} columns; {result.seconds:.0f} s in all =="
    )
    print(
        f"   {'path':<58}{'rows':>11}{'seconds':>9}{'rows/s':>10}{'ratio':>8}{'target':>9}  result"
    )
    for baseline in result.baselines:
        print(
            f"   {'baseline: csv.reader + COPY write_row, ' + baseline.label:<58}"
            f"{baseline.rows:>11,}{baseline.seconds:>9.1f}{baseline.rows_per_s:>10,.0f}"
        )
    print(
        f"   {'baseline (both runs)':<58}{'':>11}{'':>9}{result.baseline_rows_per_s:>10,.0f}"
        f"{1.0:>7.2f}x{'':>9}  (baseline)"
    )
    raw = result.csv_copy
    print(
        f"   {raw.label:<58}{raw.rows:>11,}{raw.seconds:>9.1f}{raw.rows_per_s:>10,.0f}"
        f"{raw.rows_per_s / result.baseline_rows_per_s:>7.2f}x{'':>9}  (info)"
    )
    print(
        f"   {'efdb HTTP upload (multipart CSV, 201 draft)':<58}{up.rows:>11,}{up.seconds:>9.1f}"
        f"{up.rows_per_s:>10,.0f}{result.ratio:>7.2f}x{'>=' + f'{RATIO_TARGET:.2f}x':>9}  "
        f"{'PASS' if ratio_ok else 'MISS'}"
    )
    if result.submit_seconds is not None:
        moved = result.rows / result.submit_seconds
        both = result.rows / (up.seconds + result.submit_seconds)
        print(
            f"   {'efdb HTTP submit (the rows move into factor)':<58}{up.rows:>11,}"
            f"{result.submit_seconds:>9.1f}{moved:>10,.0f}"
            f"{moved / result.baseline_rows_per_s:>7.2f}x{'':>9}  (info)"
        )
        print(
            f"   {'efdb upload + submit':<58}{up.rows:>11,}"
            f"{up.seconds + result.submit_seconds:>9.1f}{both:>10,.0f}"
            f"{both / result.baseline_rows_per_s:>7.2f}x{'':>9}  (info)"
        )
    if result.publish_seconds is not None:
        print(
            f"   {'efdb HTTP publish (hash, search index, facets, files)':<58}{up.rows:>11,}"
            f"{result.publish_seconds:>9.1f}{result.rows / result.publish_seconds:>10,.0f}"
            f"{'':>8}{'':>9}  (info)"
        )
    print(
        f"   {'efdb server peak RSS (MB)':<58}{'':>11}{'':>9}{up.peak_mb:>10.0f}{'':>8}"
        f"{'<=' + f'{RSS_TARGET_MB:.0f}':>9}  {'PASS' if rss_ok else 'MISS'}"
    )
    print(
        f"   RSS: {up.rss_before_mb:.0f} MB before the upload; sampled peak of the process tree "
        f"{up.rss_peak_mb:.0f} MB at {up.rss_peak_at:.1f} s ({up.rss_samples} samples, every "
        f"{SAMPLE_SECONDS * 1000:.0f} ms); VmHWM {up.vm_hwm_mb:.0f} MB (server's whole life)"
    )
    print(
        "   RSS at 0/25/50/75/100% of the upload: "
        + " / ".join(f"{mb:.0f}" for mb in up.rss_by_quarter)
        + " MB"
    )
    print("   upload timeline (client clock; COPY phases from pg_stat_activity every 100 ms):")
    print(
        f"     request start -> body sent            {_span(0.0, up.body_sent)}"
        "  (HTTP transfer + multipart parse to a spooled file)"
    )
    print(
        f"     body sent -> first COPY factor        {_span(up.body_sent, up.copy_first)}"
        "  (sha256 of the file, lookups, the first rows validated)"
    )
    share = up.copy_active_samples / up.copy_samples if up.copy_samples else 0.0
    print(
        f"     first -> last COPY factor             {_span(up.copy_first, up.copy_last)}"
        f"  (validate + store; the COPY was active in {share:.0%} of samples)"
    )
    print(
        f"     last COPY factor -> 201 answer        {_span(up.copy_last, up.seconds)}"
        "  (audit event, commit, response)"
    )
    print(
        f"Targets: upload >= {RATIO_TARGET:.2f}x the baseline's rows/s: {result.ratio:.2f}x "
        f"{'PASS' if ratio_ok else 'MISS'}; server peak RSS <= {RSS_TARGET_MB:.0f} MB: "
        f"{up.peak_mb:.0f} MB {'PASS' if rss_ok else 'MISS'}"
    )
    return ratio_ok, rss_ok


def as_json(result: Result, args: argparse.Namespace, ok: tuple[bool, bool]) -> dict[str, Any]:
    up = result.upload
    return {
        "args": {"rows": args.rows, "seed": args.seed, "py_spy": str(args.py_spy or "")},
        "database": result.database,
        "rows": result.rows,
        "csv_bytes": result.csv_bytes,
        "baselines": [
            {"label": b.label, "seconds": round(b.seconds, 3), "rows_per_s": round(b.rows_per_s)}
            for b in result.baselines
        ],
        "baseline_rows_per_s": round(result.baseline_rows_per_s),
        "csv_copy": {"seconds": round(result.csv_copy.seconds, 3)},
        "upload": {
            "seconds": round(up.seconds, 3),
            "rows_per_s": round(up.rows_per_s),
            "body_sent_s": up.body_sent,
            "copy_first_s": up.copy_first,
            "copy_last_s": up.copy_last,
            "copy_active_share": (
                up.copy_active_samples / up.copy_samples if up.copy_samples else None
            ),
            "file_sha256": up.response.get("file_sha256"),
        },
        "submit_seconds": (
            None if result.submit_seconds is None else round(result.submit_seconds, 3)
        ),
        "publish_seconds": (
            None if result.publish_seconds is None else round(result.publish_seconds, 3)
        ),
        "ratio": round(result.ratio, 3),
        "ratio_target": RATIO_TARGET,
        "ratio_result": "PASS" if ok[0] else "MISS",
        "server_rss_mb": {
            "before_upload": round(up.rss_before_mb, 1),
            "sampled_peak": round(up.rss_peak_mb, 1),
            "vm_hwm": round(up.vm_hwm_mb, 1),
            "peak": round(up.peak_mb, 1),
            "by_quarter": [round(mb, 1) for mb in up.rss_by_quarter],
        },
        "rss_target_mb": RSS_TARGET_MB,
        "rss_result": "PASS" if ok[1] else "MISS",
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="HTTP upload rows/s as a ratio to a raw psycopg COPY; server peak RSS.",
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="synthetic rows to upload (default 1000000)"
    )
    parser.add_argument("--seed", type=int, default=20251125)
    parser.add_argument(
        "--no-submit",
        action="store_true",
        help="do not time the submit after the upload (where the draft's rows move into factor)",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also time the publish after the submit, by a national reviewer (for information)",
    )
    add_common_arguments(parser)
    parser.add_argument("--verbose", action="store_true", help="print the server's pid and URL")
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="record the server with py-spy during the upload (.svg flame graph, .json "
        "speedscope, else collapsed stacks); slows the upload, so not for the figures",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be positive")
    if not args.postgres_url.startswith("postgresql"):
        parser.error("--postgres-url must be a PostgreSQL URL")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"efdb ingest benchmark: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="efdb-bench-ingest-") as folder,
        postgres_database(args.postgres_url) as url,
    ):
        result = run(url, args, Path(folder))
    ok = print_report(result)
    if args.py_spy:
        print(f"py-spy profile: {args.py_spy} (figures above are slowed by the sampling)")
    if args.json:
        args.json.write_text(json.dumps(as_json(result, args, ok), indent=2) + "\n")
    return 1 if args.strict and not all(ok) else 0


if __name__ == "__main__":
    sys.exit(main())
