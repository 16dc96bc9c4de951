"""`efdb verify`: a downloaded snapshot or export checked offline with only the public keys,
and every kind of tampering named. The data are the cited seed datasets (seed_data/), as
published; tampered copies are made in the test's folder only."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.core.config import Settings
from app.signing.verify import main as verify_main
from tests.auth_fixtures import TokenKit
from tests.conftest import run_efdb_in_process


def efdb_verify(path: Path, jwks: Path, cwd: Path) -> Any:
    """`efdb verify` with no database configured at all."""
    return run_efdb_in_process(
        "verify", str(path), "--jwks", str(jwks), env={"EFDB_DATABASE_URL": "sqlite://"}, cwd=cwd
    )


def first_release(db: Engine) -> str:
    with db.connect() as connection:
        publisher, dataset, version = connection.execute(
            text(
                "SELECT p.slug, d.slug, v.version FROM dataset_version v "
                "JOIN dataset d ON d.id = v.dataset_id JOIN publisher p ON p.id = d.publisher_id "
                "WHERE v.status = 'published' AND d.access = 'public' ORDER BY v.id LIMIT 1"
            )
        ).one()
    return f"/v1/datasets/{publisher}/{dataset}/versions/{version}"


@pytest.fixture
def jwks_file(client: TestClient, tmp_path: Path) -> Path:
    """Saved after the test's downloads (the release key is registered at the first one)."""
    path = tmp_path / "jwks.json"
    return path


def save_jwks(client: TestClient, path: Path) -> Path:
    path.write_text(client.get("/.well-known/jwks.json").text, encoding="utf-8")
    return path


def test_a_version_export_verifies_and_a_changed_row_is_named(
    client: TestClient, seeded: None, db: Engine, tmp_path: Path, jwks_file: Path
) -> None:
    url = first_release(db)
    parquet = client.get(f"{url}/export.parquet")
    assert parquet.status_code == 200
    arrow = client.get(f"{url}/export.arrow")
    assert arrow.status_code == 200
    statement = client.get(f"{url}/release.jws").text
    metadata = pq.read_schema(io.BytesIO(parquet.content)).metadata
    assert metadata[b"efdb:release_statement"].decode() == statement
    save_jwks(client, jwks_file)

    (tmp_path / "export.parquet").write_bytes(parquet.content)
    (tmp_path / "export.arrow").write_bytes(arrow.content)
    (tmp_path / "release.jws").write_text(statement, encoding="ascii")
    for name in ("export.parquet", "export.arrow", "release.jws"):
        result = efdb_verify(tmp_path / name, jwks_file, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "valid:" in result.stdout
    assert (
        "content hash recomputed from the rows matches"
        in efdb_verify(tmp_path / "export.parquet", jwks_file, tmp_path).stdout
    )

    # One number changed, the file rewritten with the same metadata (statement included).
    table = pq.read_table(io.BytesIO(parquet.content))
    co2e = table.column("co2e").to_pylist()
    co2e[0] = co2e[0] * 1.5
    tampered = table.set_column(
        table.schema.get_field_index("co2e"), "co2e", pa.array(co2e, type=pa.float64())
    ).replace_schema_metadata(table.schema.metadata)
    pq.write_table(tampered, tmp_path / "tampered.parquet")
    result = efdb_verify(tmp_path / "tampered.parquet", jwks_file, tmp_path)
    assert result.returncode == 1
    assert "FAILED" in result.stdout
    assert "content hash recomputed from the rows is" in result.stdout
    assert "not what the service signed" in result.stderr

    # A row dropped: the hash and the count both fail.
    pq.write_table(table.slice(1), tmp_path / "short.parquet")
    result = efdb_verify(tmp_path / "short.parquet", jwks_file, tmp_path)
    assert result.returncode == 1
    assert f"{table.num_rows - 1} rows, not the signed {table.num_rows}" in result.stdout

    # Checked against a key set without the release key: the kid is unknown.
    tokens_only = tmp_path / "tokens-only.json"
    keys = json.loads(jwks_file.read_text())["keys"]
    tokens_only.write_text(json.dumps({"keys": [k for k in keys if "efdb:purpose" not in k]}))
    result = efdb_verify(tmp_path / "export.parquet", tokens_only, tmp_path)
    assert result.returncode == 1
    assert "unknown" in result.stdout


def test_a_snapshot_folder_verifies_and_tampering_is_named(
    client: TestClient, tokens: TokenKit, seeded: None, tmp_path: Path, jwks_file: Path
) -> None:
    created = client.post("/v1/snapshots", headers=tokens.admin())
    assert created.status_code == 201, created.text
    snapshot = created.json()
    signature = client.get(f"/v1/snapshots/{snapshot['id']}/manifest.json.jws")
    assert signature.status_code == 200
    assert signature.headers["content-type"] == "application/jose"
    folder = tmp_path / "snapshot"
    folder.mkdir()
    (folder / "manifest.json.jws").write_text(signature.text, encoding="ascii")
    for name in ("manifest.json", "factors.parquet"):
        (folder / name).write_bytes(client.get(f"/v1/snapshots/{snapshot['id']}/{name}").content)
    save_jwks(client, jwks_file)

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert all("release_statement" in entry for entry in manifest["dataset_versions"])
    checkpoints = client.get("/v1/audit/checkpoints").json()["items"]
    assert manifest["audit_checkpoint"]["jws"] in [c["jws"] for c in checkpoints]
    # And one more checkpoint was signed after the snapshot's own audit event.
    assert checkpoints[0]["id"] > manifest["audit_checkpoint"]["id"]

    result = efdb_verify(folder, jwks_file, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "factors.parquet: sha256 matches the manifest" in result.stdout
    assert "factors.arrow: not downloaded, not checked" in result.stdout
    assert verify_main([str(folder / "manifest.json"), "--jwks", str(jwks_file)]) == 0

    # A byte of the Parquet file changed.
    data = bytearray((folder / "factors.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "factors.parquet").write_bytes(bytes(data))
    result = efdb_verify(folder, jwks_file, tmp_path)
    assert result.returncode == 1
    assert "factors.parquet: sha256" in result.stdout
    assert "not the manifest's" in result.stdout

    # A manifest field changed.
    (folder / "factors.parquet").write_bytes(
        client.get(f"/v1/snapshots/{snapshot['id']}/factors.parquet").content
    )
    manifest["row_count"] += 1
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    result = efdb_verify(folder, jwks_file, tmp_path)
    assert result.returncode == 1
    assert "manifest.json differs from the signed manifest" in result.stdout

    # The signature changed.
    (folder / "manifest.json").write_bytes(
        client.get(f"/v1/snapshots/{snapshot['id']}/manifest.json").content
    )
    head, payload, sig = signature.text.split(".")
    (folder / "manifest.json.jws").write_text(f"{head}.{payload}.{sig[::-1]}", encoding="ascii")
    result = efdb_verify(folder, jwks_file, tmp_path)
    assert result.returncode == 1
    assert "signature does not verify" in result.stdout


def test_a_snapshot_written_without_keys_has_no_signature(
    client: TestClient, seeded: None, db: Engine, tmp_path: Path
) -> None:
    from app.core.db import make_sessionmaker
    from app.exports.service import create_snapshot
    from app.exports.store import LocalExportStore

    with make_sessionmaker(db).begin() as session:
        snapshot = create_snapshot(
            session, export_store=LocalExportStore(tmp_path / "exports"), actor="test"
        )
        snapshot_id = snapshot.id
    response = client.get(f"/v1/snapshots/{snapshot_id}/manifest.json.jws")
    assert response.status_code == 404
    assert "before snapshots were signed" in response.json()["detail"]


def test_web_pages_show_the_signature_and_the_command_that_checks_it(
    client: TestClient, tokens: TokenKit, seeded: None, db: Engine, settings: Settings
) -> None:
    url = first_release(db)
    page = client.get(url.replace("/v1/datasets/", "/datasets/") + "?lang=en").text
    assert f'href="{url}/release.jws"' in page
    assert "<code>efdb verify release.jws --jwks jwks.json</code>" in page
    assert client.get(f"{url}/release.jws").status_code == 200
    chinese = client.get(url.replace("/v1/datasets/", "/datasets/") + "?lang=zh").text
    assert "发布签名密钥" in chinese

    # A snapshot written before signing says so; a signed one links its signature.
    from app.core.db import make_sessionmaker
    from app.exports.service import create_snapshot
    from app.exports.store import LocalExportStore

    with make_sessionmaker(db).begin() as session:
        old = create_snapshot(
            session, export_store=LocalExportStore(settings.export_dir), actor="test"
        ).id
    assert (
        "Unsigned (written before snapshots were signed)" in client.get("/snapshots?lang=en").text
    )
    signed = client.post("/v1/snapshots", headers=tokens.admin()).json()["id"]
    html = client.get("/snapshots?lang=en").text
    assert f'href="/v1/snapshots/{signed}/manifest.json.jws"' in html
    assert f"<code>efdb verify {signed} --jwks jwks.json</code>" in html
    assert f'href="/v1/snapshots/{old}/manifest.json.jws"' not in html


def test_a_saved_checkpoint_and_the_audit_log_now_offline(
    client: TestClient, tokens: TokenKit, seeded: None, tmp_path: Path, jwks_file: Path
) -> None:
    admin = tokens.admin()
    assert client.post("/v1/snapshots", headers=admin).status_code == 201
    saved = tmp_path / "checkpoint.jws"
    saved.write_text(client.get("/v1/audit/checkpoints").json()["items"][0]["jws"])
    log = tmp_path / "audit.json"
    page = client.get("/v1/audit?limit=1000", headers=admin).json()
    log.write_text(json.dumps(page))
    save_jwks(client, jwks_file)

    def check(audit_log: Path) -> Any:
        return run_efdb_in_process(
            "verify",
            str(saved),
            "--jwks",
            str(jwks_file),
            "--audit-log",
            str(audit_log),
            env={"EFDB_DATABASE_URL": "sqlite://"},
            cwd=tmp_path,
        )

    result = check(log)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the audit log extends the checkpoint" in result.stdout

    # The newest event deleted from the log the service shows now.
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"items": page["items"][:-1], "next": None}))
    result = check(short)
    assert result.returncode == 1
    assert "events were deleted" in result.stdout

    # An event's content changed (without re-chaining): named by id.
    edited = json.loads(json.dumps(page))
    edited["items"][0]["actor"] = "mallory"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(edited))
    result = check(changed)
    assert result.returncode == 1
    assert f"event {edited['items'][0]['id']} does not hash" in result.stdout


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc (Linux)")
def test_verify_reads_files_without_starting_arrow_thread_pools(tmp_path: Path) -> None:
    """A process that has started Arrow's thread pools may abort as the interpreter exits,
    after `efdb verify` printed its verdict (exit 134, apache/arrow#34314): the files are read
    on the calling thread, in a fresh process, each format as `efdb verify` reads it."""
    table = pa.table({"factor_code": [f"syn-{i:05d}" for i in range(5000)], "co2e": [1.5] * 5000})
    pq.write_table(table, tmp_path / "factors.parquet", row_group_size=1000)
    write = ipc.IpcWriteOptions(compression="zstd")
    with ipc.new_file(tmp_path / "factors.arrow", table.schema, options=write) as file:
        file.write_table(table, max_chunksize=1000)
    with ipc.new_stream(tmp_path / "factors.arrows", table.schema, options=write) as stream:
        stream.write_table(table, max_chunksize=1000)
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from app.signing.verify import _read_table\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "rows = [_read_table(Path(name)).num_rows for name in sys.argv[1:]]\n"
        "print(before, len(os.listdir('/proc/self/task')), *rows)\n"
    )
    names = [
        str(tmp_path / name) for name in ("factors.parquet", "factors.arrow", "factors.arrows")
    ]
    done = subprocess.run(
        [sys.executable, "-c", script, *names], capture_output=True, text=True, check=True
    )
    before, after, *rows = map(int, done.stdout.split())
    assert rows == [5000, 5000, 5000]
    assert after == before, f"{after - before} threads started while reading"
