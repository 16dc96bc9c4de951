"""The researcher's flow of the README, run for real against `efdb serve` over loopback.

`efdb snapshot create` writes a snapshot; then the README's shell commands (curl, sha256sum),
its Python recipe (content hashes from the Parquet file) and its SQL (DuckDB, reading the
server over HTTP with range requests) run as written, only the port changed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from tests.conftest import run_efdb_in_process

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
README_BASE = "http://127.0.0.1:8000"


def readme_block(language: str, marker: str) -> str:
    blocks: list[str] = re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)
    (block,) = [b for b in blocks if marker in b]
    return block


def duckdb_with_httpfs() -> duckdb.DuckDBPyConnection:
    """DuckDB with its httpfs extension, from the `duckdb-extension-httpfs` wheel (no network)."""
    import duckdb_extension_httpfs  # type: ignore[import-untyped]

    package = Path(duckdb_extension_httpfs.__file__).parent
    extension = package / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    assert extension.exists(), f"no httpfs build for DuckDB {duckdb.__version__}: {extension}"
    connection = duckdb.connect()
    connection.execute(f"LOAD '{extension}'")
    return connection


def efdb(*args: str, cwd: Path) -> dict[str, Any]:
    """Run the CLI as the README does, in the served app's directory and configuration."""
    done = run_efdb_in_process(*args, env={}, cwd=cwd)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_the_readme_researcher_flow(
    served: str, served_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = efdb("snapshot", "create", cwd=served_dir)
    assert {(v["publisher"], v["dataset"]) for v in snapshot["dataset_versions"]} == {
        ("desnz-uk", "uk-ghg-conversion-factors-2024"),
        ("mee-cn", "cn-electricity-co2"),
    }
    work = tmp_path / "researcher"
    work.mkdir()

    # Shell: list, find the latest id, download, verify against the manifest, licenses.
    shell = readme_block("sh", "sha256sum").replace(README_BASE, served)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", shell],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "factors.parquet: OK" in done.stdout
    assert "OGL-UK-3.0 | Contains public sector information" in done.stdout
    listing, _ = json.JSONDecoder().raw_decode(done.stdout)  # curl adds no newline
    assert listing["items"][0]["id"] == snapshot["id"]
    assert (work / "manifest.json").exists()

    # Python: every version's content_sha256 from the Parquet file alone.
    recipe = readme_block("python", "pq.read_table")
    verified = subprocess.run(
        [sys.executable, "-c", recipe], cwd=work, capture_output=True, text=True, timeout=120
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.count("content_sha256 verified") == len(snapshot["dataset_versions"])

    # SQL: DuckDB on the downloaded file and on the server over HTTP.
    monkeypatch.chdir(work)
    connection = duckdb_with_httpfs()
    sql = readme_block("sql", "read_parquet").replace(README_BASE, served)
    results = [
        connection.execute(statement).fetchall()
        for statement in sql.split(";")
        if statement.strip()
    ]
    by_dataset, grid, metadata = results
    assert sum(row[-1] for row in by_dataset) == snapshot["row_count"]
    assert {row[3] for row in by_dataset} == {"OGL-UK-3.0", "LicenseRef-CN-Official-Document"}
    assert [row[1] for row in grid] == [2021, 2022, 2023]
    api = httpx.get(
        f"{served}/v1/factors",
        params={"activity_id": "electricity-grid-mix", "region": "CN", "year": 2022},
    ).json()["items"]
    assert [row[2] for row in grid if row[1] == 2022] == [item["co2e"] for item in api]
    assert dict(metadata)["efdb:snapshot_id"] == snapshot["id"]


@pytest.mark.slow
def test_duckdb_reads_exports_over_http_with_ranges(served: str, served_dir: Path) -> None:
    snapshot = efdb("snapshot", "create", cwd=served_dir)
    connection = duckdb_with_httpfs()
    pinned = f"{served}/v1/snapshots/{snapshot['id']}/factors.parquet"
    (count,) = connection.execute(f"SELECT count(*) FROM read_parquet('{pinned}')").fetchone() or ()
    assert count == snapshot["row_count"]
    version = f"{served}/v1/datasets/ipcc-tfi/ipcc-2006-stationary-combustion/versions/1.0.0"
    rows = connection.execute(
        f"SELECT factor_code, co2e, license_id FROM read_parquet('{version}/export.parquet') "
        "ORDER BY factor_code"
    ).fetchall()
    api = httpx.get(f"{version}/factors", params={"limit": 1000}).json()["items"]
    assert rows == sorted((f["factor_code"], f["co2e"], f["license_id"]) for f in api)
    # A range request as DuckDB sends them: the Parquet footer only.
    tail = httpx.get(pinned, headers={"Range": "bytes=-8"})
    assert tail.status_code == 206
    assert tail.content.endswith(b"PAR1")
