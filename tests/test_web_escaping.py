"""Text a publisher uploaded is shown as text on every page, never run as HTML.

A factor's names (and its dataset's titles) are whatever the upload said; a page that let
`<script>` through would run the uploader's code in every reader's browser.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import create_dataset, create_publisher, create_version, factor_fields

HTML = {"Accept": "text/html"}
PUBLISHER, DATASET, CODE = "synthetic-xss", "synthetic-hostile-text", "hostile-1"
# Synthetic hostile text (not a real factor): a script, and markup that would merely render.
SCRIPT = "<script>alert(1)</script>"
BOLD = "<b>x</b>"
RAW_MARKUP = (SCRIPT, BOLD, "<script>", "<b>")


@pytest.fixture
def hostile(session: Session) -> None:
    publisher = create_publisher(session, slug=PUBLISHER)
    dataset = create_dataset(session, publisher=publisher, slug=DATASET)
    dataset.title_en = f"Synthetic dataset {SCRIPT}"
    dataset.title_zh = f"合成测试数据集 {BOLD}"
    hostile_factor = factor_fields(
        CODE, name_en=f"Synthetic {SCRIPT} {BOLD}", name_zh=f"合成测试 {BOLD} {SCRIPT}"
    )
    create_version(session, dataset=dataset, factors=[hostile_factor])
    session.commit()


def assert_escaped(html: str) -> None:
    for raw in RAW_MARKUP:
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


@pytest.mark.dialect_neutral
@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(
    "path",
    [
        f"/?publisher={PUBLISHER}",
        f"/factors/{PUBLISHER}/{DATASET}/{CODE}",
        f"/factors/{PUBLISHER}/{DATASET}/{CODE}/history",
        f"/factors/{PUBLISHER}/{DATASET}/{CODE}/cite",
        f"/datasets/{PUBLISHER}/{DATASET}/versions/1.0.0",
        f"/datasets/{PUBLISHER}/{DATASET}",
    ],
)
def test_uploaded_names_are_shown_escaped(
    client: TestClient, hostile: None, path: str, lang: str
) -> None:
    separator = "&" if "?" in path else "?"
    response = client.get(f"{path}{separator}lang={lang}", headers=HTML)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert_escaped(response.text)
