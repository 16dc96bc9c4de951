"""The layout every page shares, seen in a real browser: language, skip link, error pages."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Site
from tests.browser.support import assert_accessible, screenshot


def test_a_missing_page_is_a_page_in_the_readers_language(page: Page, site: Site) -> None:
    response = page.goto(f"{site.url}/factors/nobody/nothing/none?lang=zh")
    assert response is not None
    assert response.status == 404
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", level=1)).to_have_text("未找到")
    # The switch keeps the path and swaps only the language.
    page.get_by_role("link", name="切换语言: English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    assert page.url.endswith("/factors/nobody/nothing/none?lang=en")
    assert_accessible(page)
    screenshot(page, "layout-not-found")


def test_the_skip_link_is_the_first_stop_for_the_keyboard(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/factors/nobody/nothing/none?lang=en")
    page.keyboard.press("Tab")
    focused = page.locator(":focus")
    expect(focused).to_have_text("Skip to main content")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_api_clients_still_get_problem_details(site: Site) -> None:
    import httpx

    answer = httpx.get(f"{site.url}/factors/nobody/nothing/none", headers={"Accept": "*/*"})
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


CSP_PAGES = [
    "/?lang=en&q=natural+gas",
    "/factors/mee-cn/cn-electricity-co2/national-average-2022?lang=zh",
    "/factors/mee-cn/cn-electricity-co2/national-average-2022/history?lang=en",
    "/factors/mee-cn/cn-electricity-co2/national-average-2022@1.0.0/cite?lang=en",
    "/datasets/mee-cn/cn-electricity-co2?lang=en",
    "/resolve?lang=en&activity_id=electricity-grid-mix&region=CN-GD&year=2022",
    "/factors/nobody/nothing/none?lang=en",
]


def test_pages_carry_security_headers_and_break_no_csp_rule(page: Page, site: Site) -> None:
    """Each page type under its own Content-Security-Policy: the browser reports no violation
    (an inline script or style, or anything from another origin, would be one)."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    for path in CSP_PAGES:
        response = page.goto(f"{site.url}{path}")
        assert response is not None
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "same-origin", path
        # The stylesheet applied: the header is laid out as efdb.css says (flex), not unstyled.
        display = page.evaluate("getComputedStyle(document.querySelector('.site-header')).display")
        assert display == "flex", path
    assert violations == []
