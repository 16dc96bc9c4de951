"""The interactive API docs in a real browser, with nothing reachable but this service: Swagger
UI (/docs) and ReDoc (/redoc) load their assets from the service itself and render every
operation; the explorer's "API" link (zh page) leads there."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import Site

# The OpenAPI document is large: rendering it takes seconds on a loaded machine.
RENDER_MS = 60_000


def _offline(page: Page) -> list[str]:
    """Refuse (and record) every request that would leave 127.0.0.1, as without internet."""
    left: list[str] = []

    def handle(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    return left


def _csp_violations(page: Page) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return violations


def test_swagger_ui_renders_the_operations_offline(page: Page, site: Site) -> None:
    left = _offline(page)
    violations = _csp_violations(page)
    response = page.goto(f"{site.url}/docs")
    assert response is not None
    assert response.status == 200
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("efdb", timeout=RENDER_MS)
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    expect(
        page.locator(".opblock-summary-path", has_text="/v1/factors:resolve").first
    ).to_be_visible()
    openapi = page.request.get(f"{site.url}/openapi.json").json()
    documented = sum(len(item) for item in openapi["paths"].values())
    assert operations.count() == documented
    assert left == []
    assert violations == []


def test_redoc_renders_offline(page: Page, site: Site) -> None:
    left = _offline(page)
    violations = _csp_violations(page)
    response = page.goto(f"{site.url}/redoc")
    assert response is not None
    assert response.status == 200
    expect(page.locator("h1").first).to_contain_text("efdb", timeout=RENDER_MS)
    # ReDoc lists each operation in its menu by summary.
    expect(page.get_by_text("Signing keys (JWKS)").first).to_be_attached()
    assert left == []
    # ReDoc's footer ("API docs by Redocly") points at its maker's logo on a CDN: the page's
    # policy blocks it, so that it never leaves the machine. Nothing else is refused.
    logo = "Loading the image 'https://cdn.redoc.ly/"
    assert [text for text in violations if not text.startswith(logo)] == []


def test_the_zh_explorers_api_link_opens_the_docs(page: Page, site: Site) -> None:
    left = _offline(page)
    page.goto(f"{site.url}/?lang=zh")
    page.locator('nav a[href="/docs"]').first.click()
    expect(page).to_have_url(f"{site.url}/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=RENDER_MS)
    assert left == []
