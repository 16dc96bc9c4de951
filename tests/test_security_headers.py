"""Security headers (issue 23): every HTML page under a strict CSP, `nosniff` on every answer.

The browser tests (tests/browser/test_layout.py) check that the pages still work under the
policy; this checks the headers and that no page needs an inline script or style.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

# Headers set by middleware above the database: first backend only.
pytestmark = pytest.mark.dialect_neutral

FACTOR = "/factors/mee-cn/cn-electricity-co2/national-average-2022"
PAGES = [
    "/?q=natural+gas",
    FACTOR,
    f"{FACTOR}/history",
    f"{FACTOR}@1.0.0/cite",
    "/datasets/mee-cn/cn-electricity-co2",
    "/datasets/mee-cn/cn-electricity-co2/versions/1.0.0",
    "/publishers/mee-cn",
    "/snapshots",
    "/resolve?activity_id=electricity-grid-mix&region=CN-GD&year=2022",
    "/compare",
    "/factors/nobody/nothing/none",  # an error page is a page too
]
INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=", re.IGNORECASE)


@pytest.mark.usefixtures("seeded")
def test_every_page_has_a_strict_csp_and_no_inline_script_or_style(client: TestClient) -> None:
    for path in PAGES:
        response = client.get(path, headers={"Accept": "text/html"})
        assert response.headers["content-type"].startswith("text/html"), path
        csp = {
            directive.split()[0]: directive.split()[1:]
            for directive in response.headers["content-security-policy"].split("; ")
        }
        assert csp["default-src"] == ["'none'"], path
        assert csp["script-src"] == ["'self'"], path
        assert csp["style-src"] == ["'self'"], path
        assert csp["frame-ancestors"] == ["'none'"], path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "same-origin", path
        assert INLINE.findall(response.text) == [], path


@pytest.mark.usefixtures("seeded")
def test_api_answers_and_files_are_nosniff(client: TestClient) -> None:
    for path in ["/v1/factors?limit=1", "/v1/nothing", "/static/efdb.css", "/openapi.json"]:
        response = client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert "content-security-policy" not in response.headers, path
