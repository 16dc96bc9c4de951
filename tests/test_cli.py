"""The `efdb` command line, run as an operator runs it, on a real database: in this process
(`app.cli.main`), and as a real process where the process itself is what is tested."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.conftest import run_efdb_in_process

EFDB = [sys.executable, "-m", "app.cli"]
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def run_efdb(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_efdb_in_process(*args, env=env, cwd=cwd)


def run_efdb_process(
    *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EFDB, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def cli_env(database_url: str, db: Engine) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env["EFDB_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return env


def test_upgrade_seed_and_verify(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert run_efdb("db", "upgrade", env=cli_env, cwd=tmp_path).returncode == 0
    seeded = run_efdb("seed", env=cli_env, cwd=tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    counts = json.loads(seeded.stdout)
    assert counts["datasets"] == 3
    assert counts["factors"] >= 17
    # Progress goes to stderr, one line a version, so stdout stays one JSON document.
    progress = [line for line in seeded.stderr.splitlines() if line.startswith("efdb: ")]
    assert len(progress) == counts["versions"], seeded.stderr
    assert all(line.endswith("loaded so far)") for line in progress), progress
    # Seeding again loads nothing twice.
    again_run = run_efdb("seed", env=cli_env, cwd=tmp_path)
    again = json.loads(again_run.stdout)
    assert again["versions"] == 0
    assert "already loaded" in again_run.stderr
    verified = run_efdb("audit", "verify", env=cli_env, cwd=tmp_path)
    assert verified.returncode == 0
    assert json.loads(verified.stdout)["ok"] is True


def test_audit_verify_names_the_tampered_event(
    cli_env: dict[str, str], tmp_path: Path, db: Engine
) -> None:
    assert run_efdb("seed", env=cli_env, cwd=tmp_path).returncode == 0
    with db.begin() as connection:
        target = (
            connection.execute(
                text("SELECT id FROM audit_event WHERE action = 'version.published' ORDER BY id")
            )
            .scalars()
            .first()
        )
        # An attacker with DDL rights gets past the append-only trigger; the chain still tells.
        if db.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            connection.execute(text("DROP TRIGGER audit_event_no_update"))
        connection.execute(
            text("UPDATE audit_event SET actor = 'mallory' WHERE id = :id"), {"id": target}
        )
    result = run_efdb("audit", "verify", env=cli_env, cwd=tmp_path)
    assert result.returncode == 1
    assert f"event {target}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_failures_are_one_line_and_non_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env["EFDB_DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    # A real process: `python -m app.cli` exits with main()'s status, one line on stderr.
    result = run_efdb_process("db", "upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("efdb: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_openapi_check_detects_a_stale_document(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    result = run_efdb("openapi", "--check", "--output", str(stale), env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "out of date" in result.stderr
    assert run_efdb("openapi", "--output", str(stale), env=env, cwd=tmp_path).returncode == 0
    result = run_efdb("openapi", "--check", "--output", str(stale), env=env, cwd=tmp_path)
    assert result.returncode == 0


def test_serve_on_an_empty_sqlite_answers_with_cited_factors(served: str, served_dir: Path) -> None:
    assert (served_dir / "var" / "efdb.sqlite3").exists()
    response = httpx.get(f"{served}/v1/factors", params={"region": "CN"})
    assert response.status_code == 200
    items = response.json()["items"]
    assert {f["reference_year"] for f in items} >= {2021, 2022, 2023}
    for factor in items:
        assert factor["source_title"]
        assert factor["source_publisher"]
        assert factor["license_id"]
        assert factor["attribution"]


def test_a_command_from_another_directory_does_not_create_an_empty_database(
    tmp_path: Path,
) -> None:
    """The default data directory is ./var of where a command runs: from another directory,
    an administrative command says there is no database there instead of creating one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    args = ("publisher", "create", "cisa", "--name-zh", "中国钢铁工业协会", "--name-en", "CISA")
    result = run_efdb(*args, env=env, cwd=tmp_path)
    assert result.returncode == 1
    expected = tmp_path.resolve() / "var" / "efdb.sqlite3"
    assert result.stderr.strip() == (
        f"efdb: no database at {expected}: run `efdb db upgrade` (or `efdb serve`) first, "
        "or point EFDB_DATA_DIR or EFDB_DATABASE_URL at the service's data"
    )
    assert not (tmp_path / "var").exists()


def test_a_database_without_the_schema_is_named_with_what_to_do(tmp_path: Path) -> None:
    empty = tmp_path / "data" / "efdb.sqlite3"
    empty.parent.mkdir()
    empty.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env["EFDB_DATA_DIR"] = str(tmp_path / "data")
    result = run_efdb("audit", "verify", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert f"the database at {empty} has no schema: run `efdb db upgrade`" in result.stderr


def test_the_data_directory_holds_the_database_keys_and_exports(tmp_path: Path) -> None:
    """`EFDB_DATA_DIR` set, run from an unrelated directory: `db upgrade`, a snapshot and a
    key rotation write only there."""
    data = tmp_path / "data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
    env["EFDB_DATA_DIR"] = str(data)
    assert run_efdb("db", "upgrade", env=env, cwd=elsewhere).returncode == 0
    assert run_efdb("seed", env=env, cwd=elsewhere).returncode == 0
    snapshot = run_efdb("snapshot", "create", env=env, cwd=elsewhere)
    assert snapshot.returncode == 0, snapshot.stderr
    # No release has its export files yet: each is read from the database, as stderr says.
    count = len(json.loads(snapshot.stdout)["dataset_versions"])
    read = [line for line in snapshot.stderr.splitlines() if line.startswith("efdb: release ")]
    assert len([line for line in read if line.endswith("factors, from the database")]) == count
    assert run_efdb("audit", "checkpoint", env=env, cwd=elsewhere).returncode == 0
    assert not list(elsewhere.iterdir())
    written = {path.name for path in data.iterdir()}
    assert {"efdb.sqlite3", "release-signing-key.pem", "exports"} <= written, written
    assert any(path.is_file() for path in (data / "exports").rglob("*.parquet"))
