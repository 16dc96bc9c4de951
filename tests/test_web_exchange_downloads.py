"""The version page offers every export the API serves (the Excel CSV, XLSX, openLCA
JSON-LD, ILCD) with the licence reminder; the snapshots page lists a snapshot's openLCA and
ILCD packages with the attribution they carry."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.exports.service import SNAPSHOT_PACKAGES_MAX_ROWS, create_snapshot
from app.exports.store import LocalExportStore


def test_the_version_page_offers_the_exchange_formats_with_the_licence(
    client: TestClient, seeded: None
) -> None:
    page = "/datasets/mee-cn/cn-electricity-co2/versions/1.0.0"
    base = "/v1/datasets/mee-cn/cn-electricity-co2/versions/1.0.0/export"
    html = client.get(f"{page}?lang=en").text
    for suffix in (".csv?bom=1", ".xlsx", ".jsonld.zip", ".ilcd.zip"):
        assert f'href="{base}{suffix}"' in html, suffix
    assert "keep the attribution with the data" in html
    assert "保留署名" in client.get(f"{page}?lang=zh").text
    # Not redistributable: the same files, with the own-use reminder instead.
    ipcc = client.get("/datasets/ipcc-tfi/ipcc-2006-stationary-combustion?lang=en").text
    assert 'export.jsonld.zip"' in ipcc
    assert "for your own use" in ipcc


def test_the_snapshots_page_lists_the_packages_with_the_attribution(
    client: TestClient, seeded: None, db: Engine, settings: Settings
) -> None:
    with make_sessionmaker(db).begin() as session:
        snapshot_id = create_snapshot(
            session,
            export_store=LocalExportStore(settings.export_dir),
            actor="test",
            packages_max_rows=SNAPSHOT_PACKAGES_MAX_ROWS,
        ).id
    html = client.get("/snapshots?lang=en").text
    for name in ("factors.jsonld.zip", "factors.ilcd.zip"):
        assert f'href="/v1/snapshots/{snapshot_id}/{name}"' in html, name
    assert "keep the attribution with the data" in html
    assert client.get(f"/v1/snapshots/{snapshot_id}/factors.ilcd.zip").status_code == 200
