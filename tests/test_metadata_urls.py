"""URLs in metadata cannot carry code or break a header, and no page repeats the `Host` header.

Every entry point refuses a licence, methodology or source URL that is not an absolute
http(s) URL (dataset creation, uploads in every format, seed files); a bad URL that reaches
the database some other way is shown as text, never as a link, and is left out of the export's
`Link` header instead of breaking the download. Absolute URLs in pages come from the
configured public URL, so a spoofed `Host` cannot poison what a cache serves the next reader.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.core.urls import header_url, safe_href, url_problem
from app.publishing.seed import SeedError, load_seed
from tests.auth_fixtures import TokenKit
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
from tests.test_upload_validation import snapshot
from tests.upload_files import csv_bytes, jsonl_bytes, parquet_bytes, synthetic_row

BAD_URLS = {
    "javascript": "javascript:alert(1)",
    "data": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "crlf": "https://example.org/licence\r\nX-Injected: yes",
    "space": "https://example.org/a licence",
    "long": "https://example.org/" + "a" * 2000,
    "relative": "/licences/cc0",
    "scheme-relative": "//evil.example/licence",
    "no host": "https:///licence",
    "user info": "https://creativecommons.org@evil.example/",
    "angle bracket": "https://example.org/a>; rel=evil",
}
GOOD_URLS = (
    "https://creativecommons.org/publicdomain/zero/1.0/",
    "http://www.mee.gov.cn/xxgk2018/xxgk/xxgk01/202312/t20231229_1060433.html",
    "https://例子.中国/许可?版本=1#第2节",
    "HTTPS://Example.org:8443/a%20b",
)
SPOOFED = "evil.example"


@pytest.mark.parametrize("value", GOOD_URLS)
def test_absolute_http_urls_are_accepted(value: str) -> None:
    assert url_problem(value) is None
    assert safe_href(value) == value
    header = header_url(value)
    assert header is not None
    assert header.isascii()
    assert ">" not in header


@pytest.mark.parametrize("name", list(BAD_URLS))
def test_other_urls_are_refused_with_a_reason(name: str) -> None:
    problem = url_problem(BAD_URLS[name])
    assert problem
    assert safe_href(BAD_URLS[name]) is None
    assert header_url(BAD_URLS[name]) is None


# --------------------------------------------------------------------------- entry points


@pytest.mark.parametrize("field", ["license_url", "methodology_url"])
@pytest.mark.parametrize("name", list(BAD_URLS))
def test_dataset_creation_refuses_a_bad_url(
    client: TestClient, db: Engine, tokens: TokenKit, field: str, name: str
) -> None:
    headers = tokens.writer(PUBLISHER)
    before = snapshot(db)
    body = {**DATASET_BODY, field: BAD_URLS[name]}
    response = client.post("/v1/datasets", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert any(field in e["loc"] for e in errors), errors
    assert snapshot(db) == before


def test_dataset_creation_keeps_a_good_url(client: TestClient, tokens: TokenKit) -> None:
    body = {**DATASET_BODY, "methodology_url": GOOD_URLS[2]}
    response = client.post("/v1/datasets", json=body, headers=tokens.writer(PUBLISHER))
    assert response.status_code == 201, response.text
    assert response.json()["methodology_url"] == GOOD_URLS[2]


def _rows(url: str) -> list[dict[str, Any]]:
    good = GOOD_URLS[0]
    return [
        synthetic_row(0, source_url=good),
        synthetic_row(1, source_url=url),
        synthetic_row(2, source_url=good),
    ]


@pytest.mark.parametrize(
    ("file_name", "make", "row"),
    # The second record: CSV counts its header as row 1, JSON Lines and Parquet do not.
    [("f.csv", csv_bytes, 3), ("f.jsonl", jsonl_bytes, 2), ("f.parquet", parquet_bytes, 2)],
)
@pytest.mark.parametrize("name", ["javascript", "data", "crlf", "long", "relative"])
def test_an_upload_reports_a_bad_source_url_in_its_cell(
    client: TestClient,
    db: Engine,
    tokens: TokenKit,
    file_name: str,
    make: Any,
    row: int,
    name: str,
) -> None:
    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201
    before = snapshot(db)
    response = client.post(
        VERSIONS,
        headers=headers,
        data={"version": "1.0.0"},
        files={"file": (file_name, make(_rows(BAD_URLS[name])), "application/octet-stream")},
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [(e["row"], e["column"]) for e in errors] == [(row, "source_url")], errors
    # Refused by the URL check, or (CR/LF, an over-long cell) by the cell check before it.
    assert errors[0]["code"] in {"invalid_url", "forbidden_character", "too_long"}
    assert errors[0]["detail"]
    assert snapshot(db) == before


def test_an_upload_keeps_a_good_source_url(
    client: TestClient, tokens: TokenKit, reviewer_token: Any
) -> None:
    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201
    response = client.post(
        VERSIONS,
        headers=headers,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes(_rows(GOOD_URLS[1])), "text/csv")},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("where", ["dataset", "factor"])
def test_seed_loading_refuses_a_bad_url(
    db: Engine, settings: Settings, tmp_path: Path, where: str
) -> None:
    seed = tmp_path / "seed"
    shutil.copytree(settings.seed_dir, seed)
    # A curated dataset (the core seed, which load_seed loads by default; a full-seed one is
    # a publisher's file read by an importer).
    dataset_file = sorted(
        path
        for path in seed.glob("*/*/dataset.json")
        if json.loads(path.read_text(encoding="utf-8")).get("scope") != "full"
    )[0]
    if where == "dataset":
        spec = json.loads(dataset_file.read_text(encoding="utf-8"))
        spec["license_url"] = BAD_URLS["javascript"]
        dataset_file.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    else:
        data = sorted(dataset_file.parent.glob("*.csv"))[0]
        with data.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns, rows = list(reader.fieldnames or []), list(reader)
        if "source_url" not in columns:
            columns.append("source_url")
        rows[0]["source_url"] = BAD_URLS["javascript"]
        with data.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    with pytest.raises(SeedError, match="javascript"), make_sessionmaker(db).begin() as session:
        load_seed(session, seed)


# --------------------------------------------------------------------------- on the way out

BAD_PUBLISHER = "synthetic-bad-urls"
BAD_DATASET = "stored-bad-urls"


@pytest.fixture
def stored_bad_urls(db: Engine, seeded: None) -> str:
    """A released dataset whose licence URL carries CR/LF and whose factor's source URL is
    `javascript:`: written straight into the database, past every check."""
    with make_sessionmaker(db).begin() as session:
        publisher = create_publisher(session, slug=BAD_PUBLISHER)
        dataset = create_dataset(
            session, publisher=publisher, slug=BAD_DATASET, license_url=BAD_URLS["crlf"]
        )
        dataset.methodology_url = BAD_URLS["javascript"]
        record = factor_fields("bad-url-factor").model_copy(
            update={"source_url": BAD_URLS["javascript"]}
        )
        create_version(session, dataset=dataset, factors=[record])
    return f"{BAD_PUBLISHER}/{BAD_DATASET}"


def test_a_stored_bad_url_is_never_a_link(client: TestClient, stored_bad_urls: str) -> None:
    for path in (
        f"/datasets/{stored_bad_urls}",
        f"/factors/{stored_bad_urls}/bad-url-factor",
        f"/factors/{stored_bad_urls}/bad-url-factor@1.0.0",
    ):
        page = client.get(path, params={"lang": "en"})
        assert page.status_code == 200, (path, page.text[:500])
        assert 'href="javascript:' not in page.text, path
        assert 'href="https://example.org/licence' not in page.text, path
    dataset_page = client.get(f"/datasets/{stored_bad_urls}", params={"lang": "en"}).text
    assert "javascript:alert(1)" in dataset_page  # shown, as text


@pytest.mark.parametrize("fmt", ["csv", "parquet", "arrow", "arrows"])
def test_a_stored_bad_licence_url_does_not_break_an_export(
    client: TestClient, stored_bad_urls: str, fmt: str
) -> None:
    response = client.get(f"/v1/datasets/{stored_bad_urls}/versions/1.0.0/export.{fmt}")
    assert response.status_code == 200, response.text[:500]
    assert "link" not in response.headers
    assert "x-injected" not in response.headers
    assert response.content


def test_an_export_links_a_good_licence(client: TestClient, db: Engine, seeded: None) -> None:
    with make_sessionmaker(db).begin() as session:
        publisher = create_publisher(session, slug=BAD_PUBLISHER)
        dataset = create_dataset(
            session, publisher=publisher, slug="good-url", license_url=GOOD_URLS[2]
        )
        create_version(session, dataset=dataset, factors=[factor_fields("good-url-factor")])
    response = client.get(f"/v1/datasets/{BAD_PUBLISHER}/good-url/versions/1.0.0/export.csv")
    assert response.status_code == 200
    assert response.headers["link"] == f'<{header_url(GOOD_URLS[2])}>; rel="license"'
    assert response.headers["link"].isascii()


# --------------------------------------------------------------------------- Host


MEE_2022 = "mee-cn/cn-electricity-co2/national-average-2022"


@pytest.mark.parametrize(
    "path",
    [
        f"/factors/{MEE_2022}",
        f"/factors/{MEE_2022}@1.0.0",
        f"/factors/{MEE_2022}@1.0.0/cite",
        "/datasets/mee-cn/cn-electricity-co2",
        "/?q=electricity",
        "/resolve?activity_id=electricity-grid&region=CN-GD&year=2023",
    ],
)
def test_a_spoofed_host_is_not_in_a_page_and_the_cached_page_is_the_same(
    client: TestClient, seeded: None, settings: Settings, path: str
) -> None:
    spoofed = client.get(path, params={"lang": "en"}, headers={"Host": SPOOFED})
    assert spoofed.status_code == 200, spoofed.text[:500]
    assert SPOOFED not in spoofed.text
    assert all(SPOOFED not in value for value in spoofed.headers.values())
    # The next reader (through a cache, or not) gets the same bytes and the same ETag.
    honest = client.get(path, params={"lang": "en"})
    assert honest.content == spoofed.content
    assert honest.headers["etag"] == spoofed.headers["etag"]
    revalidated = client.get(
        path,
        params={"lang": "en"},
        headers={"Host": "another.example", "If-None-Match": spoofed.headers["etag"]},
    )
    assert revalidated.status_code == 304
    vary = spoofed.headers.get("vary", "").lower()
    assert "host" not in vary


def test_snippets_use_the_configured_public_url(
    client: TestClient, seeded: None, settings: Settings
) -> None:
    path = f"/factors/{MEE_2022}@1.0.0"
    page = client.get(path, params={"lang": "en"}, headers={"Host": SPOOFED})
    base = settings.public_url
    assert f"{base}/v1/factors/{MEE_2022}" in page.text
    assert f'<link rel="canonical" href="{base}{path}' in page.text
