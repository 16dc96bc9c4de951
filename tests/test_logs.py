"""`EFDB_LOG_FORMAT=json`: every line `efdb serve` writes is one JSON object, each answered
request one `efdb.access` line naming its request id, client, route template and status
(issue 20)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from app.auth import service
from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.core.logs import JsonLogFormatter, log_config
from app.core.request_id import RequestIdFilter, current_request_id
from tests.conftest import ServerProcess

LOOKUP = "/v1/factors/{publisher}/{dataset}/{factor_code}"


def test_a_record_is_one_json_object_with_the_request_id_and_its_fields() -> None:
    formatter = JsonLogFormatter()
    record = logging.LogRecord(
        "efdb.exports", logging.WARNING, __file__, 1, "%s left", ("x",), None
    )
    record.color_message = "\x1b[1mx left\x1b[0m"  # uvicorn's duplicate: not repeated
    token = current_request_id.set("req-unit-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        current_request_id.reset(token)
    line = json.loads(formatter.format(record))
    assert list(line)[:5] == ["time", "level", "logger", "message", "request_id"]
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "efdb.exports", "x left")
    assert line["request_id"] == "req-unit-1"
    assert line["time"].endswith("+00:00")
    assert "color_message" not in line
    outside = logging.LogRecord("app", logging.INFO, __file__, 1, "started", None, None)
    RequestIdFilter().filter(outside)
    assert json.loads(formatter.format(outside))["request_id"] is None
    # Text mode keeps uvicorn's lines, with the request id on the service's own loggers.
    text = log_config("text")
    assert "request_id=%(request_id)s" in text["formatters"]["access"]["fmt"]
    assert text["loggers"]["efdb"]["handlers"] == ["app"]


@pytest.mark.slow
@pytest.mark.dialect_neutral
def test_efdb_serve_writes_json_lines_with_an_access_line_per_request(
    database_url: str, db: Engine, settings: Settings, tmp_path: Path
) -> None:
    with make_sessionmaker(db).begin() as session:
        issued = service.create_client(
            session,
            publisher=None,
            scopes=["factors:read"],
            name="synthetic log reader",
            actor="test",
            secret_hash_cost=settings.secret_hash_cost,
        )
    server = ServerProcess(
        tmp_path,
        {"EFDB_DATABASE_URL": database_url, "EFDB_LOG_FORMAT": "json"},
        args=("--no-worker",),
    )
    base = server.start()
    try:
        token = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(issued.client_id, issued.client_secret),
        )
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        with_token = httpx.get(
            f"{base}/v1/factors/synthetic-pub/none/no-such-code",
            headers={**bearer, "X-Request-ID": "log-with-token"},
        )
        assert with_token.status_code == 404
        anonymous = httpx.get(f"{base}/v1/datasets")  # the service makes its request id
        assert anonymous.status_code == 200
    finally:
        server.stop()

    lines = server.log.read_text(encoding="utf-8").splitlines()
    records: list[dict[str, Any]] = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    for record in records:
        assert {"time", "level", "logger", "message", "request_id"} <= set(record), record
    assert any(r["logger"] == "uvicorn.error" for r in records)  # uvicorn's lines too
    access = {r["request_id"]: r for r in records if r["logger"] == "efdb.access"}
    looked_up = access["log-with-token"]
    assert looked_up == {
        **looked_up,
        "level": "INFO",
        "client_id": issued.client_id,
        "method": "GET",
        "route": LOOKUP,
        "path": "/v1/factors/synthetic-pub/none/no-such-code",
        "status": 404,
    }
    assert isinstance(looked_up["duration_ms"], float)
    listed = access[anonymous.headers["x-request-id"]]
    assert (listed["client_id"], listed["route"], listed["status"]) == (None, "/v1/datasets", 200)
    # uvicorn's own access line is replaced, not repeated.
    assert not any(r["logger"] == "uvicorn.access" for r in records)
    (issued_line,) = [r for r in access.values() if r["route"] == "/oauth/token"]
    assert (issued_line["client_id"], issued_line["status"]) == (issued.client_id, 200)
