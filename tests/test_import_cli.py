"""`efdb import desnz|mee-electricity FILE`: into the local database as a draft, or into a
running service as the publisher's own OAuth client (upload, then submit)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.auth_fixtures import TokenKit
from tests.conftest import run_efdb_in_process
from tests.importer_files import DESNZ_2025, MEE_TABLE, SHEET, level, small_desnz
from tests.test_importers import DATASET


def test_import_desnz_into_the_local_database_as_a_draft(
    client: TestClient, tokens: TokenKit, seeded: None, database_url: str, tmp_path: Path
) -> None:
    writer = tokens.writer("desnz-uk")
    created = client.post("/v1/datasets", json={**DATASET, "slug": "cli-flat"}, headers=writer)
    assert created.status_code == 201, created.text
    content, rows = small_desnz(DESNZ_2025, lambda r: level(r, "Fuels"))
    workbook = tmp_path / "flat.xlsx"
    workbook.write_bytes(content)
    args = ("import", "desnz", str(workbook), "--dataset", "desnz-uk/cli-flat")
    env = {"EFDB_DATABASE_URL": database_url}

    result = run_efdb_in_process(*args, "--version", "1.0.0", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)  # stdout is the JSON answer alone
    assert printed["status"] == "draft"
    assert printed["file_sha256"] == hashlib.sha256(content).hexdigest()
    # Progress on stderr: the file read, the rows validated with its sha256, the draft stored.
    progress = result.stderr.splitlines()
    assert all(line.startswith("efdb: ") for line in progress), progress
    assert progress[0].startswith(f"efdb: reading flat.xlsx ({len(content):,} bytes) as desnz")
    assert f"validated {printed['row_count']:,} rows" in progress[1]
    assert printed["file_sha256"] in progress[1]
    assert progress[-1].startswith("efdb: done: draft desnz-uk/cli-flat 1.0.0 stored (")
    totals = {tuple(r[1:8]) for r in rows[6:] if r[8] == "kg CO2e" and r[9] != ""}
    assert printed["row_count"] == len(totals)
    draft = client.get("/v1/datasets/desnz-uk/cli-flat/versions/1.0.0", headers=writer)
    assert draft.json()["status"] == "draft"

    # A bad cell: one line naming the workbook's sheet, row and column; nothing stored.
    def negative(row: list[Any]) -> list[Any]:
        if row[4] == "Butane" and row[7] == "tonnes" and row[8] == "kg CO2e":
            row[9] = -row[9]
        return row

    bad, bad_rows = small_desnz(DESNZ_2025, lambda r: level(r, "Fuels"), change=negative)
    workbook.write_bytes(bad)
    failed = run_efdb_in_process(*args, "--version", "1.0.1", env=env, cwd=tmp_path)
    assert failed.returncode == 1
    (row,) = [
        n for n, r in enumerate(bad_rows, 1) if r[4] == "Butane" and r[7:9] == ["tonnes", "kg CO2e"]
    ]
    assert f"[sheet {SHEET}, row {row}, column GHG Conversion Factor 2025, field co2e]" in (
        failed.stderr
    )
    assert (
        client.get("/v1/datasets/desnz-uk/cli-flat/versions/1.0.1", headers=writer).status_code
        == 404
    )


def _cli(*args: str, cwd: Path) -> dict[str, Any]:
    result = run_efdb_in_process(*args, env={}, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.slow
@pytest.mark.dialect_neutral
def test_import_into_a_running_service_as_the_publishers_client(
    served: str, served_dir: Path, tmp_path: Path
) -> None:
    """Against `efdb serve` in its own process: the association's client gets a token, uploads
    the MEE table with its source format, and submits; a national reviewer publishes."""
    writer = _cli(
        "client", "create", "--publisher", "mee-cn", "--scope", "datasets:write", cwd=served_dir
    )
    reviewer = _cli("client", "create", "--admin", "--scope", "datasets:review", cwd=served_dir)

    def bearer(credentials: dict[str, Any]) -> dict[str, str]:
        issued = httpx.post(
            f"{served}/oauth/token",
            auth=(credentials["client_id"], credentials["client_secret"]),
            data={"grant_type": "client_credentials"},
        )
        return {"Authorization": f"Bearer {issued.json()['access_token']}"}

    created = httpx.post(
        f"{served}/v1/datasets",
        json={
            **DATASET,
            "slug": "cli-electricity",
            "license_id": "LicenseRef-CN-Official-Document",
        },
        headers=bearer(writer),
    )
    assert created.status_code == 201, created.text
    args = ["import", "mee-electricity", str(MEE_TABLE), "--dataset", "mee-cn/cli-electricity"]
    args += ["--version", "1.0.0", "--through-year", "2022", "--to", served]
    wrong = run_efdb_in_process(
        *args, "--client-id", writer["client_id"], "--client-secret", "wrong", env={}, cwd=tmp_path
    )
    assert wrong.returncode == 1
    assert "token: 401" in wrong.stderr

    # The secret from the environment, as the README advises (the command line shows in `ps`).
    result = run_efdb_in_process(
        *args,
        "--client-id",
        writer["client_id"],
        env={"EFDB_IMPORT_CLIENT_SECRET": writer["client_secret"]},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["status"] == "submitted"
    progress = result.stderr.splitlines()
    assert progress[0].startswith(f"efdb: uploading {MEE_TABLE.name} (")
    assert f"uploaded: {printed['row_count']:,} rows validated" in progress[1]
    assert progress[-1].startswith("efdb: done: mee-cn/cli-electricity 1.0.0 submitted (")
    assert printed["file_sha256"] == hashlib.sha256(MEE_TABLE.read_bytes()).hexdigest()
    table = [line.split(",") for line in MEE_TABLE.read_text(encoding="utf-8").splitlines()[1:]]
    assert printed["row_count"] == sum(1 for cells in table if cells[0] in ("2021", "2022"))

    versions = f"{served}/v1/datasets/mee-cn/cli-electricity/versions"
    published = httpx.post(
        f"{versions}/1.0.0/publish",
        json={"content_sha256": printed["content_sha256"]},
        headers=bearer(reviewer),
    )
    assert published.status_code == 200, published.text
    guangdong = httpx.get(f"{served}/v1/factors/mee-cn/cli-electricity/co2-average-CN-GD-2022")
    (cells,) = [c for c in table if c[0] == "2022" and c[3] == "广东" and c[1] == "CO2 average"]
    assert guangdong.json()["co2e"] == float(cells[4])
    provenance = httpx.get(
        f"{served}/v1/factors/mee-cn/cli-electricity/co2-average-CN-GD-2022/provenance"
    ).json()
    assert provenance["upload"]["file_sha256"] == printed["file_sha256"]

    # The worker's server is shared: withdrawn, this release stays out of the snapshots that
    # other tests (the README's researcher flow) check against the seed alone.
    withdrawn = httpx.post(
        f"{versions}/1.0.0/withdraw",
        json={"reason": "Synthetic: test import, withdrawn by the test."},
        headers=bearer(reviewer),
    )
    assert withdrawn.status_code == 200, withdrawn.text
