"""Worst-case server memory per input kind: how much one hostile or maximal request costs.

Serves the app with `python -m app.cli serve` (one worker) on a fresh SQLite file, or on
PostgreSQL with `--postgres-url` (a fresh `efdb_bench_<random>` database, dropped afterwards),
then sends one request of each kind below, one at a time. Before each, the process's peak
resident set (VmHWM) is reset through /proc/PID/clear_refs; after it, the peak is read: the
figure is that peak minus the resident set just before the request.

Inputs (all rows synthetic, labelled "Synthetic benchmark data (not real factors)"):
- a 21 MB JSON body to `POST /v1/factors:resolve` without a token (refused: 413)
- a resolve of 1000 lines (the largest batch; answered)
- a Parquet decompression bomb: 150,000 rows whose dictionary-encoded text decodes to ~600 MB
  from a file of ~15 KB (refused from its footer: 422)
- a Parquet file of 2,000 rows of 100 KB of zstd-compressed text each (refused: 422)
- a JSON Lines upload of one 20 MB line (refused per row: 422)
- valid uploads of 20,000 rows as CSV and as Parquet (accepted: 201)

    python -m bench.memory [--postgres-url URL] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.config import PROJECT_ROOT
from bench.ingest import access_token, efdb_cli, efdb_server

SOURCE = "Synthetic benchmark data (not real factors)"
PUBLISHER = "bench-memory"


def row(index: int, **overrides: Any) -> dict[str, Any]:
    co2 = 100.0 + index
    values: dict[str, Any] = {
        "factor_code": f"bench-{index:07d}",
        "activity_id": "synthetic-activity",
        "name_zh": f"合成基准因子 {index}",
        "name_en": f"Synthetic benchmark factor {index}",
        "region": "CN",
        "reference_year": 2023,
        "unit": "t",
        "co2e": co2 + 28 * 1.0 + 265 * 0.1,
        "co2": co2,
        "ch4": 1.0,
        "n2o": 0.1,
        "gwp_set": "AR5",
        "boundary": "cradle-to-gate",
        "source_title": SOURCE,
        "source_locator": f"row {index}",
    }
    values.update(overrides)
    return values


def csv_file(count: int) -> bytes:
    rows = [row(i) for i in range(count)]
    lines = [",".join(rows[0])]
    lines += [",".join(str(value) for value in r.values()) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def parquet_file(count: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row(i) for i in range(count)]), sink)
    return sink.getvalue()


def inflating_parquet(rows: int, cell_bytes: int, *, dictionary: bool) -> bytes:
    columns: dict[str, pa.Array] = {}
    for name, value in row(0).items():
        if isinstance(value, str):
            columns[name] = pa.DictionaryArray.from_arrays(
                pa.array([0] * rows, type=pa.int8()), pa.array([value])
            )
        else:
            columns[name] = pa.array([value] * rows)
    long = pa.DictionaryArray.from_arrays(
        pa.array([0] * rows, type=pa.int8()), pa.array([SOURCE + " " + "x" * cell_bytes])
    )
    columns["source_locator"] = long if dictionary else long.cast(pa.string())
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink, compression="zstd", use_dictionary=dictionary)
    return sink.getvalue()


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0])
    return 0


def measured(pid: int, send: Callable[[], httpx.Response]) -> dict[str, Any]:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kb(pid, "VmRSS")
    started = time.perf_counter()
    response = send()
    seconds = time.perf_counter() - started
    peak = _status_kb(pid, "VmHWM")
    return {
        "status": response.status_code,
        "rss_before_mb": round(before / 1024, 1),
        "peak_mb": round(peak / 1024, 1),
        "peak_over_before_mb": round((peak - before) / 1024, 1),
        "seconds": round(seconds, 2),
    }


@contextlib.contextmanager
def database(postgres_url: str | None, tmp: Path) -> Iterator[str]:
    if postgres_url is None:
        yield f"sqlite:///{tmp / 'bench.sqlite3'}"
        return
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = f"efdb_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(url: str, tmp: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env.update(PYTHONPATH=str(PROJECT_ROOT), EFDB_DATABASE_URL=url)
    with efdb_server(env, tmp, tmp / "server.log") as server:
        efdb_cli(
            "publisher", "create", PUBLISHER, "--name-zh", "基准", "--name-en", "Bench",
            env=env, cwd=tmp,
        )  # fmt: skip
        credentials = efdb_cli(
            "client", "create", "--publisher", PUBLISHER, "--scope", "datasets:write",
            env=env, cwd=tmp,
        )  # fmt: skip
        writer = access_token(server.base, credentials)
        pid = server.process.pid
        base = server.base

        def upload(case: str, name: str, content: bytes) -> Callable[[], httpx.Response]:
            dataset = {
                "slug": case,
                "title_zh": "合成基准",
                "title_en": "Synthetic benchmark",
                "access": "public",
                "license_id": "CC0-1.0",
                "license_url": "https://creativecommons.org/publicdomain/zero/1.0/",
                "attribution": SOURCE,
                "redistribution": True,
                "commercial_use": True,
            }
            created = httpx.post(f"{base}/v1/datasets", json=dataset, headers=writer)
            created.raise_for_status()
            return lambda: httpx.post(
                f"{base}/v1/datasets/{PUBLISHER}/{case}/versions",
                data={"version": "1.0.0"},
                files={"file": (name, content, "application/octet-stream")},
                headers=writer,
                timeout=600,
            )

        line = {"activity_id": "electricity-grid-mix", "region": "CN", "year": 2022}
        huge_json = b'{"items": [' + b" " * (21 * 1024 * 1024) + b"]}"
        one_line = (json.dumps(row(0, source_locator="x" * (20 << 20))) + "\n").encode()
        cases: dict[str, Callable[[], httpx.Response]] = {
            "json 21 MB, anonymous": lambda: httpx.post(
                f"{base}/v1/factors:resolve",
                content=huge_json,
                headers={"content-type": "application/json"},
                timeout=600,
            ),
            "resolve 1000 lines": lambda: httpx.post(
                f"{base}/v1/factors:resolve", json={"items": [line] * 1000}, timeout=600
            ),
            "parquet dictionary bomb": upload(
                "bomb-dict", "b.parquet", inflating_parquet(150_000, 4096, dictionary=True)
            ),
            "parquet compressed 100 KB rows": upload(
                "bomb-zstd", "b.parquet", inflating_parquet(2_000, 100_000, dictionary=False)
            ),
            "jsonl one 20 MB line": upload("jsonl-line", "l.jsonl", one_line),
            "csv 20,000 rows": upload("csv-rows", "f.csv", csv_file(20_000)),
            "parquet 20,000 rows": upload("parquet-rows", "f.parquet", parquet_file(20_000)),
        }
        return {case: measured(pid, send) for case, send in cases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as directory,
        database(args.postgres_url, Path(directory)) as url,
    ):
        report = run(url, Path(directory))
    backend = "postgresql" if args.postgres_url else "sqlite"
    print(f"{'input':34} status  before MB  peak MB  peak-before MB  seconds   ({backend})")
    for case, figures in report.items():
        print(
            f"{case:34} {figures['status']:>6}  {figures['rss_before_mb']:>9}  "
            f"{figures['peak_mb']:>7}  {figures['peak_over_before_mb']:>14}  "
            f"{figures['seconds']:>7}"
        )
    if args.json:
        args.json.write_text(json.dumps({"backend": backend, "cases": report}, indent=2))


if __name__ == "__main__":
    main()
