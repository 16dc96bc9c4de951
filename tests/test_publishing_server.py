"""Publishing against a real server process: the README path, size caps, and crash safety."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.versioning.content_hash import content_sha256
from tests.conftest import ServerProcess, run_efdb_in_process
from tests.test_publishing import DATASET_BODY
from tests.upload_files import csv_bytes, synthetic_row

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def efdb(*args: str, database_url: str, cwd: Path) -> dict[str, object]:
    result = run_efdb_in_process(*args, env={"EFDB_DATABASE_URL": database_url}, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}


def token(base: str, credentials: dict[str, object]) -> dict[str, str]:
    """A token the way an association's own software gets one: a standard OAuth2 client."""
    with OAuth2Client(
        str(credentials["client_id"]),
        str(credentials["client_secret"]),
        token_endpoint_auth_method="client_secret_basic",
    ) as oauth:
        issued = oauth.fetch_token(f"{base}/oauth/token", grant_type="client_credentials")
    return {"Authorization": f"Bearer {issued['access_token']}"}


@pytest.fixture
def server(
    database_url: str, db: Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    """`efdb serve` on this test's database; uploads capped at 1 MB unless the test is marked
    `max_upload_mb(n)`."""
    cap = request.node.get_closest_marker("max_upload_mb")
    process = ServerProcess(
        tmp_path,
        {
            "EFDB_DATABASE_URL": database_url,
            "EFDB_MAX_UPLOAD_MB": str(cap.args[0]) if cap is not None else "1",
        },
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def association(
    server: ServerProcess, database_url: str, tmp_path: Path
) -> dict[str, dict[str, str]]:
    """What an administrator hands out: a publisher's writer client and a national reviewer."""
    efdb(
        "publisher",
        "create",
        "synthetic-assoc",
        "--name-zh",
        "合成行业协会",
        "--name-en",
        "Synthetic association",
        database_url=database_url,
        cwd=tmp_path,
    )
    writer = efdb(
        "client",
        "create",
        "--publisher",
        "synthetic-assoc",
        "--scope",
        "datasets:write",
        "--scope",
        "factors:read",
        database_url=database_url,
        cwd=tmp_path,
    )
    reviewer = efdb(
        "client",
        "create",
        "--admin",
        "--scope",
        "datasets:review",
        database_url=database_url,
        cwd=tmp_path,
    )
    return {"writer": token(server.base, writer), "reviewer": token(server.base, reviewer)}


VERSIONS = "/v1/datasets/synthetic-assoc/steel-products/versions"


def test_an_association_publishes_from_the_readme(
    server: ServerProcess, association: dict[str, dict[str, str]]
) -> None:
    base, writer = server.base, association["writer"]
    created = httpx.post(f"{base}/v1/datasets", json=DATASET_BODY, headers=writer)
    assert created.status_code == 201, created.text
    rows = [synthetic_row(i) for i in range(20)]
    broken = [*rows[:19], synthetic_row(19, region="Atlantis")]
    files = {"file": ("steel.csv", csv_bytes(broken), "text/csv")}
    report = httpx.post(f"{base}{VERSIONS}", data={"version": "1.0.0"}, files=files, headers=writer)
    assert report.status_code == 422
    assert report.json()["errors"][0]["row"] == 21
    files = {"file": ("steel.csv", csv_bytes(rows), "text/csv")}
    draft = httpx.post(f"{base}{VERSIONS}", data={"version": "1.0.0"}, files=files, headers=writer)
    assert draft.status_code == 201, draft.text
    assert httpx.post(f"{base}{VERSIONS}/1.0.0/submit", headers=writer).status_code == 200
    reviewer = association["reviewer"]
    seen = httpx.get(f"{base}{VERSIONS}/1.0.0", headers=reviewer).json()["content_sha256"]
    published = httpx.post(
        f"{base}{VERSIONS}/1.0.0/publish", headers=reviewer, json={"content_sha256": seen}
    )
    assert published.status_code == 200, published.text
    factors = httpx.get(f"{base}{VERSIONS}/1.0.0/factors").json()["items"]
    assert len(factors) == 20
    assert content_sha256(factors) == published.json()["content_sha256"]


def _raw_request(port: int, head: bytes, body_chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send a request by hand; return the response head and how many body bytes went out."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(0.05)
        response = b""
        for chunk in body_chunks:
            with contextlib.suppress(TimeoutError, BlockingIOError):
                response += sock.recv(65536)
            if response:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                # A server that stops reading (on a busy machine, or because it has answered)
                # gets no more; one that still waits for the body fails the recv below.
                break
            sent += len(chunk)
        sock.settimeout(10)
        while b"\r\n\r\n" not in response:
            data = sock.recv(65536)
            if not data:
                break
            response += data
    return response, sent


def test_an_oversized_upload_is_refused_before_it_is_read(
    server: ServerProcess, association: dict[str, dict[str, str]]
) -> None:
    auth = association["writer"]["Authorization"].encode()
    declared = (
        b"POST " + VERSIONS.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: " + auth + b"\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: 52428800\r\n\r\n"
    )
    # A well-formed start of a multipart body, so that only its size is wrong.
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
    megabyte = b"x" * (1 << 20)
    response, sent = _raw_request(server.port, declared, iter([part] + [megabyte] * 50))
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < 10 * len(megabyte)

    chunked = declared.replace(b"Content-Length: 52428800", b"Transfer-Encoding: chunked")
    chunks = [b"%x\r\n%s\r\n" % (len(data), data) for data in [part] + [megabyte] * 50]
    response, sent = _raw_request(server.port, chunked, iter(chunks))
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < 10 * len(megabyte)


def _ingest_in_progress(db: Engine) -> bool:
    """The server is writing factor rows inside its still-open upload transaction."""
    if db.dialect.name == "postgresql":
        with db.connect() as connection:
            return bool(
                connection.execute(
                    text(
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                        " AND (query ILIKE 'INSERT INTO factor%' OR query ILIKE 'COPY factor%')"
                    )
                ).scalar_one()
            )
    wal = Path(str(db.url.database) + "-wal")
    return wal.exists() and wal.stat().st_size > 4 << 20


@pytest.mark.slow
# Just under the usual 1 MB cap an upload would ingest too fast to catch; raise the cap.
@pytest.mark.max_upload_mb(200)
def test_a_killed_server_leaves_no_partial_upload(
    server: ServerProcess,
    association: dict[str, dict[str, str]],
    db: Engine,
) -> None:
    base, writer = server.base, association["writer"]
    assert httpx.post(f"{base}/v1/datasets", json=DATASET_BODY, headers=writer).status_code == 201
    content = csv_bytes([synthetic_row(i) for i in range(60_000)])
    outcome: dict[str, object] = {}

    def upload() -> None:
        try:
            outcome["response"] = httpx.post(
                f"{server.base}{VERSIONS}",
                data={"version": "1.0.0"},
                files={"file": ("big.csv", content, "text/csv")},
                headers=writer,
                timeout=120,
            )
        except httpx.TransportError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=upload)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _ingest_in_progress(db):
        time.sleep(0.05)
    assert "response" not in outcome, "the upload finished before the server could be killed"
    server.kill()
    thread.join(timeout=60)
    assert "error" in outcome

    server.start()
    with db.connect() as connection:
        ours = "SELECT id FROM dataset WHERE slug = 'steel-products'"
        for table in ("factor", "dataset_version"):
            count = f"SELECT COUNT(*) FROM {table} WHERE dataset_id IN ({ours})"
            assert connection.execute(text(count)).scalar_one() == 0, table
    retried = httpx.post(
        f"{server.base}{VERSIONS}",
        data={"version": "1.0.0"},
        files={"file": ("big.csv", content, "text/csv")},
        headers=writer,
        timeout=300,
    )
    assert retried.status_code == 201, retried.text
    assert retried.json()["row_count"] == 60_000
