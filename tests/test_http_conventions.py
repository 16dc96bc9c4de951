"""HTTP conventions: negotiated compression (zstd, Brotli, gzip) of JSON and CSV answers above a
size and never of Parquet or Arrow files; CORS for reads from the configured origins and for
writes only from origins listed for them; `X-Request-ID` echoed (or made) and logged."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
import zstandard
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import ServerProcess

# Compression, CORS and request ids are middleware above the database: first backend only.
pytestmark = pytest.mark.dialect_neutral

RESOLVE = "/v1/factors:resolve"
LINE = {"activity_id": "electricity-grid-mix", "region": "CN-GD", "year": 2022, "unit": "MWh"}
MEE = "/v1/datasets/mee-cn/cn-electricity-co2/versions/1.0.0"
DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}


def raw(client: TestClient, method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, bytes]:
    """The answer's bytes as sent (httpx would otherwise decode them)."""
    with client.stream(method, url, **kwargs) as response:
        return response, b"".join(response.iter_raw())


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "br"])
def test_a_1000_line_resolve_is_compressed_when_asked_and_identical_after_decoding(
    client: TestClient, seeded: None, encoding: str
) -> None:
    body = {"items": [LINE] * 1000}
    plain, plain_bytes = raw(
        client, "POST", RESOLVE, json=body, headers={"Accept-Encoding": "identity"}
    )
    assert plain.status_code == 200
    assert "content-encoding" not in plain.headers
    packed, packed_bytes = raw(
        client, "POST", RESOLVE, json=body, headers={"Accept-Encoding": encoding}
    )
    assert packed.status_code == 200
    assert packed.headers["content-encoding"] == encoding
    assert "Accept-Encoding" in packed.headers["vary"]
    assert len(packed_bytes) * 10 < len(plain_bytes), (len(packed_bytes), len(plain_bytes))
    assert DECODE[encoding](packed_bytes) == plain_bytes


def test_zstd_is_preferred_then_brotli_then_gzip(client: TestClient, seeded: None) -> None:
    body = {"items": [LINE] * 20}
    for offered, chosen in [
        ("gzip, br, zstd", "zstd"),
        ("gzip;q=1.0, br;q=0.5", "br"),
        ("gzip, deflate", "gzip"),
        ("zstd;q=0, gzip", "gzip"),
    ]:
        answer = client.post(RESOLVE, json=body, headers={"Accept-Encoding": offered})
        assert answer.headers.get("content-encoding") == chosen, offered


def test_small_answers_are_sent_as_they_are(client: TestClient) -> None:
    answer, _ = raw(client, "GET", "/healthz", headers={"Accept-Encoding": "gzip, zstd"})
    assert answer.status_code == 200
    assert "content-encoding" not in answer.headers


def test_csv_is_compressed_parquet_and_arrow_never(client: TestClient, seeded: None) -> None:
    asked = {"Accept-Encoding": "zstd, br, gzip"}
    csv, csv_bytes = raw(client, "GET", f"{MEE}/export.csv", headers=asked)
    assert csv.status_code == 200, csv_bytes[:300]
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-encoding"] == "zstd"
    _, plain_csv_bytes = raw(
        client, "GET", f"{MEE}/export.csv", headers={"Accept-Encoding": "identity"}
    )
    assert DECODE["zstd"](csv_bytes) == plain_csv_bytes
    for name in ["export.parquet", "export.arrow", "export.arrows"]:
        answer, data = raw(client, "GET", f"{MEE}/{name}", headers=asked)
        assert answer.status_code == 200, name
        assert "content-encoding" not in answer.headers, name
        assert int(answer.headers["content-length"]) == len(data)


def test_a_conditional_get_still_answers_304_when_compressed(
    client: TestClient, seeded: None
) -> None:
    asked = {"Accept-Encoding": "gzip"}
    first = client.get("/v1/factors", params={"region": "CN"}, headers=asked)
    assert first.headers["content-encoding"] == "gzip"
    again = client.get(
        "/v1/factors",
        params={"region": "CN"},
        headers={**asked, "If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304


# --- CORS ---


@pytest.fixture
def cors_client(db: Any, settings: Settings) -> Iterator[TestClient]:
    configured = settings.model_copy(
        update={
            "cors_origins": ["https://tool.example"],
            "cors_write_origins": ["https://publisher.example"],
        }
    )
    application: FastAPI = create_app(configured)
    with TestClient(application) as test_client:
        yield test_client
    application.state.engine.dispose()


def preflight(client: TestClient, path: str, origin: str, method: str) -> httpx.Response:
    answer: httpx.Response = client.request(
        "OPTIONS",
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization",
        },
    )
    return answer


def test_reads_are_allowed_from_a_configured_origin(cors_client: TestClient) -> None:
    allowed = preflight(cors_client, "/v1/factors", "https://tool.example", "GET")
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://tool.example"
    assert "Authorization" in allowed.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in allowed.headers
    # A read-only query by POST (resolve) is a read too.
    assert preflight(cors_client, RESOLVE, "https://tool.example", "POST").status_code == 204
    answer = cors_client.get("/v1/factors", headers={"Origin": "https://tool.example"})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://tool.example"
    assert "X-Request-ID" in answer.headers["access-control-expose-headers"]
    assert "Origin" in answer.headers["vary"]


def test_writes_are_refused_from_a_read_origin_and_allowed_from_a_write_origin(
    cors_client: TestClient,
) -> None:
    refused = preflight(cors_client, "/v1/datasets", "https://tool.example", "POST")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/cross-origin-refused")
    assert "access-control-allow-origin" not in refused.headers
    token = preflight(cors_client, "/oauth/token", "https://tool.example", "POST")
    assert token.status_code == 403
    allowed = preflight(cors_client, "/v1/datasets", "https://publisher.example", "POST")
    assert allowed.status_code == 204
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "DELETE" in allowed.headers["access-control-allow-methods"]


def test_an_unlisted_origin_gets_no_cors_headers(cors_client: TestClient) -> None:
    assert preflight(cors_client, "/v1/factors", "https://evil.example", "GET").status_code == 403
    answer = cors_client.get("/v1/factors", headers={"Origin": "https://evil.example"})
    assert answer.status_code == 200  # the browser, not the server, withholds it from the page
    assert "access-control-allow-origin" not in answer.headers


def test_by_default_no_origin_is_allowed(client: TestClient) -> None:
    refused = preflight(client, "/v1/factors", "https://tool.example", "GET")
    assert refused.status_code == 403
    answer = client.get("/v1/factors", headers={"Origin": "https://tool.example"})
    assert "access-control-allow-origin" not in answer.headers


def test_the_services_own_pages_are_not_cross_origin(client: TestClient) -> None:
    answer = client.get("/v1/factors", headers={"Origin": "http://testserver"})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_a_wildcard_is_refused_for_writes() -> None:
    with pytest.raises(ValueError, match="CORS_WRITE_ORIGINS"):
        Settings(_env_file=None, cors_write_origins=["*"])
    with pytest.raises(ValueError, match="scheme://host"):
        Settings(_env_file=None, cors_origins=["https://tool.example/path"])


# --- X-Request-ID ---


def test_a_valid_request_id_is_echoed(client: TestClient) -> None:
    answer = client.get("/healthz", headers={"X-Request-ID": "trace-7f3a:01/b"})
    assert answer.headers["x-request-id"] == "trace-7f3a:01/b"


@pytest.mark.parametrize("given", [None, "", "x" * 129, "a b", "évian".encode(), "id\tone"])
def test_an_absent_or_unusable_request_id_is_replaced(
    client: TestClient, given: str | bytes | None
) -> None:
    headers: dict[str, str | bytes] = {} if given is None else {"X-Request-ID": given}
    first = client.get("/healthz", headers=headers).headers["x-request-id"]
    second = client.get("/healthz", headers=headers).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_errors_carry_the_request_id_too(client: TestClient) -> None:
    answer = client.get("/v1/no-such-thing", headers={"X-Request-ID": "req-404"})
    assert answer.status_code == 404
    assert answer.headers["x-request-id"] == "req-404"


@pytest.mark.slow
def test_the_access_log_names_the_request_id(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, args=("--no-worker", "--log-level", "debug"))
    base = server.start()
    try:
        answer = httpx.get(f"{base}/healthz", headers={"X-Request-ID": "trace-log-42"})
        assert answer.headers["x-request-id"] == "trace-log-42"
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    assert re.search(r'"GET /healthz HTTP/1\.1" 200 OK request_id=trace-log-42', log), log[-2000:]
