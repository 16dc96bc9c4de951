"""What the rate limits cost on the hot path: anonymous lookups by code, with the limits off,
counted in memory, and counted in Redis.

    .venv/bin/python -m bench.rate_limits [--factors 100000] [--rounds 3] [--duration 10]

Builds a SQLite database of synthetic factors (bench/read_api.py's), serves it three times
with one uvicorn worker each (`EFDB_RATE_READS_PER_MINUTE=0`: no check at all; memory; Redis
at `EFDB_BENCH_REDIS_URL`, default `redis://127.0.0.1:6379/0`, under a throw-away prefix), the
budgets too large for the load to spend, and drives each with `wrk` in interleaved rounds. It
prints requests/s and latency of each as a ratio to the server without limits.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import redis

from bench.read_api import (
    DATASET_SLUG,
    PUBLISHER_SLUG,
    Scenario,
    build_database,
    sqlite_database,
    uvicorn_server,
)

UNSPENDABLE = "1000000000"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.rate_limits", description=__doc__)
    parser.add_argument("--factors", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("EFDB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"efdb rate-limit benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs")
    prefix = f"efdb-bench-{uuid.uuid4().hex}"
    configurations = {
        "off": {"EFDB_RATE_READS_PER_MINUTE": "0"},
        "memory": {"EFDB_RATE_READS_PER_MINUTE": UNSPENDABLE},
        "redis": {
            "EFDB_RATE_READS_PER_MINUTE": UNSPENDABLE,
            "EFDB_REDIS_URL": args.redis_url,
            "EFDB_REDIS_PREFIX": prefix,
        },
    }
    with tempfile.TemporaryDirectory(prefix="efdb-bench-") as tmp, sqlite_database() as url:
        workdir = Path(tmp)
        print(f"building {args.factors:,} synthetic factors ...", flush=True)
        built = build_database(url, args.factors, args.seed)
        code_args = [f"/v1/factors/{PUBLISHER_SLUG}/{DATASET_SLUG}/", str(built.factors)]
        with ExitStack() as stack:
            scenarios = []
            for name, env in configurations.items():
                server = stack.enter_context(
                    uvicorn_server(
                        name,
                        "app.main:create_app",
                        "/readyz",
                        {"EFDB_DATABASE_URL": url, **env},
                        workdir / f"{name}.log",
                    )
                )
                scenarios.append(
                    Scenario(name, f"lookup by code, limits {name}", server, "code", code_args)
                )
            for scenario in scenarios:
                scenario.run(args, workdir, args.warmup, record=False)
            for round_index in range(args.rounds):
                shift = round_index % len(scenarios)
                for scenario in scenarios[shift:] + scenarios[:shift]:
                    scenario.run(args, workdir, args.duration, record=True)
                print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    with redis.Redis.from_url(args.redis_url) as connection:
        keys = list(connection.scan_iter(match=f"{prefix}:*"))
        if keys:
            connection.delete(*keys)
    off = scenarios[0]
    print(f"\n{args.rounds} interleaved rounds of {args.duration:g} s, wrk -c{args.connections}")
    for scenario in scenarios:
        rounds = ", ".join(
            f"{mine / base:.2f}"
            for mine, base in zip(scenario.round_rps, off.round_rps, strict=True)
        )
        print(
            f"  {scenario.label:<28} {scenario.rps:>8,.0f} req/s = {scenario.rps / off.rps:.2f}x "
            f"(rounds {rounds}); p50 {scenario.percentile_ms(0.5):.2f} ms, "
            f"p99 {scenario.percentile_ms(0.99):.2f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
