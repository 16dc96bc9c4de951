"""Hashes of a fixed set of resolve and estimate answers, to show that a change kept them
byte-identical: run it from each checkout against the same database and compare the files.

    python -m bench.resolve --database-url URL        # builds the database once
    (cd old-checkout && python -m bench.answer_hashes URL /tmp/before.json)
    (cd new-checkout && python -m bench.answer_hashes URL /tmp/after.json)
    cmp /tmp/before.json /tmp/after.json

The requests (in-process, through the whole app): `POST /v1/factors:resolve` of 1000 and of 37
mixed lines (bench.resolve's mix, fixed seeds, one batch with a malformed activity, a region
that is not a code and an unknown unit), in English and Chinese, uncompressed and gzip; the
1000-line ones with `?gwp=AR6` too; and `POST /v1/estimate:batch` of 200 of those lines. Then
the same 1000-line resolves again with the worker's resolve index off
(`EFDB_RESOLVE_INDEX_FACTORS=0`: the probe query answers). Each answer's status, SHA-256, size
and headers (without the request id and date) are written.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from bench.resolve import mixed_lines

_VARYING_HEADERS = {"x-request-id", "date", "content-length"}


def _hashed(answer: Any) -> list[Any]:
    return [
        answer.status_code,
        hashlib.sha256(answer.content).hexdigest(),
        len(answer.content),
        sorted(
            [name, value] for name, value in answer.headers.items() if name not in _VARYING_HEADERS
        ),
    ]


def answer_hashes(url: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with TestClient(create_app(Settings(database_url=url))) as client:
        for seed in range(6):
            lines = mixed_lines(random.Random(seed), 1000 if seed < 3 else 37)
            if seed == 4:
                lines.append({"activity_id": "BAD ID", "region": "cn", "year": 2020})
                lines.append(
                    {"activity_id": "synthetic-steel-01", "region": "CN", "year": 2020, "unit": "x"}
                )
            for lang in ("en", "zh-CN"):
                for encoding in ("identity", "gzip"):
                    answer = client.post(
                        "/v1/factors:resolve",
                        json={"items": lines},
                        headers={"Accept-Language": lang, "Accept-Encoding": encoding},
                    )
                    results[f"resolve {seed} {lang} {encoding}"] = _hashed(answer)
            if seed < 3:
                answer = client.post("/v1/factors:resolve?gwp=AR6", json={"items": lines})
                results[f"resolve {seed} gwp AR6"] = _hashed(answer)
            estimates = [
                {**line, "amount": 12.5, "unit": line.get("unit") or "kWh"}
                for line in lines[:200]
                if line["activity_id"] != "BAD ID"
            ]
            answer = client.post("/v1/estimate:batch", json={"items": estimates})
            results[f"estimate {seed}"] = [
                answer.status_code,
                hashlib.sha256(answer.content).hexdigest(),
                len(answer.content),
            ]
    without_index = Settings(database_url=url, resolve_index_factors=0)
    with TestClient(create_app(without_index)) as client:
        for seed in range(3):
            lines = mixed_lines(random.Random(seed), 1000)
            for query in ("", "?gwp=AR6"):
                answer = client.post(f"/v1/factors:resolve{query}", json={"items": lines})
                results[f"resolve {seed}{query} without the index"] = _hashed(answer)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m bench.answer_hashes DATABASE_URL OUT.json", file=sys.stderr)
        return 2
    url, out = args
    results = answer_hashes(url)
    Path(out).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"{len(results)} answers hashed into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
