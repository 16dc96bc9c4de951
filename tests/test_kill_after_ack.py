"""SIGKILL right after each acknowledged write: after a restart, everything acknowledged is
there (issue 22). The request session commits before the answer is sent; if it committed
after (`SessionDep` without `scope="function"`), a kill right after the answer loses writes."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.conftest import ServerProcess
from tests.test_publishing import DATASET_BODY
from tests.test_publishing_server import VERSIONS, association, server
from tests.upload_files import csv_bytes, synthetic_row

__all__ = ["association", "server"]

pytestmark = pytest.mark.slow


def version_status(db: Engine, version: str) -> tuple[str, int] | None:
    with db.connect() as connection:
        row = connection.execute(
            text(
                # A draft's rows are in factor_draft until its submit, then in factor.
                "SELECT v.status, (SELECT count(*) FROM factor f WHERE f.version_id = v.id) "
                "+ (SELECT count(*) FROM factor_draft f WHERE f.version_id = v.id) "
                "FROM dataset_version v JOIN dataset d ON d.id = v.dataset_id "
                "WHERE d.slug = 'steel-products' AND v.version = :version"
            ),
            {"version": version},
        ).first()
    return None if row is None else (str(row[0]), int(row[1]))


def killed_and_restarted(server: ServerProcess) -> str:
    server.kill()
    return server.start()


def test_every_acknowledged_write_survives_a_kill_right_after_its_answer(
    server: ServerProcess, association: dict[str, dict[str, str]], db: Engine
) -> None:
    writer, reviewer = association["writer"], association["reviewer"]
    base = server.base
    created = httpx.post(f"{base}/v1/datasets", json=DATASET_BODY, headers=writer)
    assert created.status_code == 201, created.text
    for minor in range(2):
        version = f"1.{minor}.0"
        rows = [synthetic_row(i, co2=100.0 + i + minor) for i in range(10 + minor)]
        for row in rows:
            row["co2e"] = row["co2"] + 28 * 1.0 + 265 * 0.1
        files = {"file": ("steel.csv", csv_bytes(rows), "text/csv")}
        uploaded = httpx.post(
            f"{base}{VERSIONS}", data={"version": version}, files=files, headers=writer
        )
        assert uploaded.status_code == 201, uploaded.text
        base = killed_and_restarted(server)
        assert version_status(db, version) == ("draft", len(rows))

        submitted = httpx.post(f"{base}{VERSIONS}/{version}/submit", headers=writer)
        assert submitted.status_code == 200, submitted.text
        base = killed_and_restarted(server)
        assert version_status(db, version) == ("submitted", len(rows))

        # The reviewer names the content hash read (it is fixed at submit).
        reviewed = {"content_sha256": submitted.json()["content_sha256"]}
        published = httpx.post(
            f"{base}{VERSIONS}/{version}/publish", headers=reviewer, json=reviewed
        )
        assert published.status_code == 200, published.text
        base = killed_and_restarted(server)
        assert version_status(db, version) == ("published", len(rows))
