"""Grants against `efdb serve` in its own process: the very next request after a grant's answer
(from a client with the token it already holds) reads the registered dataset, and the very next
one after its removal is refused; the read is in the publisher's usage at once. TestClient waits
for the whole request, so it would hide a grant committed after its answer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.test_publishing import DATASET_BODY
from tests.test_publishing_server import VERSIONS, association, efdb, server, token
from tests.upload_files import csv_bytes, synthetic_row

__all__ = ["association", "server"]

pytestmark = pytest.mark.slow

DATASET = "/v1/datasets/synthetic-assoc/steel-products"


def test_a_grant_and_its_removal_hold_from_the_next_request(
    server: ServerProcess,
    association: dict[str, dict[str, str]],
    database_url: str,
    tmp_path: Path,
) -> None:
    base, writer, reviewer = server.base, association["writer"], association["reviewer"]
    body = {**DATASET_BODY, "access": "registered"}
    assert httpx.post(f"{base}/v1/datasets", json=body, headers=writer).status_code == 201
    files = {"file": ("steel.csv", csv_bytes([synthetic_row(i) for i in range(3)]), "text/csv")}
    uploaded = httpx.post(
        f"{base}{VERSIONS}", data={"version": "1.0.0"}, files=files, headers=writer
    )
    assert uploaded.status_code == 201, uploaded.text
    submitted = httpx.post(f"{base}{VERSIONS}/1.0.0/submit", headers=writer)
    assert submitted.status_code == 200, submitted.text
    seen = submitted.json()["content_sha256"]
    published = httpx.post(
        f"{base}{VERSIONS}/1.0.0/publish", headers=reviewer, json={"content_sha256": seen}
    )
    assert published.status_code == 200, published.text

    # A national client (of no publisher) that may only read factors.
    credentials = efdb(
        "client",
        "create",
        "--admin",
        "--scope",
        "factors:read",
        database_url=database_url,
        cwd=tmp_path,
    )
    reader = token(base, credentials)
    factors = f"{base}{VERSIONS}/1.0.0/factors"
    assert httpx.get(factors, headers=reader).status_code == 404

    grant = f"{base}{DATASET}/grants/{credentials['client_id']}"
    assert httpx.put(grant, headers=writer).status_code == 201
    read = httpx.get(factors, headers=reader)
    assert read.status_code == 200, read.text
    assert len(read.json()["items"]) == 3
    usage = httpx.get(f"{base}{DATASET}/usage", headers=writer)
    assert usage.status_code == 200, usage.text
    assert [(row["client_id"], row["requests"], row["rows"]) for row in usage.json()["items"]] == [
        (credentials["client_id"], 1, 3)
    ]

    assert httpx.delete(grant, headers=writer).status_code == 204
    assert httpx.get(factors, headers=reader).status_code == 404
