"""Search, a factor, its history and its citation, in a real browser, in both languages.

The real seed data answers the search (China's national grid factors of the MEE and NBS); a
synthetic dataset (labelled synthetic, published by this module) gives a factor with several
releases, one superseded and one withdrawn, to follow through its history.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from app.core.db import make_sessionmaker
from tests.browser.conftest import Site
from tests.browser.support import assert_accessible, screenshot
from tests.test_web_factor import SYNTH, WITHDRAWAL_REASON, publish_grid_history

MEE_2022 = "mee-cn/cn-electricity-co2/national-average-2022"


@pytest.fixture(scope="module")
def history_site(site: Site) -> Site:
    with make_sessionmaker(site.engine).begin() as session:
        publish_grid_history(session)
    return site


def press_tab_until(page: Page, condition: str, limit: int = 80) -> None:
    """Move the keyboard focus forward until `condition` (JS on document.activeElement) holds."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return {condition}; }})()"):
            return
    raise AssertionError(f"the keyboard never reached an element where {condition}")


def test_chinese_search_to_a_factor_and_through_its_history(page: Page, history_site: Site) -> None:
    site = history_site
    page.goto(f"{site.url}/?lang=zh")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.get_by_label("名称中的文字").fill("电网")
    page.get_by_role("button", name="检索").click()
    expect(page.get_by_role("heading", name="按类别筛选")).to_be_visible()
    expect(page.locator("#result-count")).to_contain_text("共找到")
    assert_accessible(page)
    screenshot(page, "search-zh-dianwang")

    # 电网 is in DESNZ's Chinese name (and this module's synthetic one) and, for the MEE's
    # (named 电力), among the keywords of their activity electricity-grid-mix: China's three
    # grid factors are found directly, with the UK's and the synthetic one.
    expect(page.locator("#result-count")).to_have_text("共找到 5 个排放因子。")
    expect(page.get_by_role("link", name="2022年全国电力平均二氧化碳排放因子")).to_be_visible()
    facets = page.get_by_role("navigation", name="按类别筛选")
    facets.get_by_role("link", name="2022 (2)").click()
    expect(page.locator("#result-count")).to_have_text("共找到 2 个排放因子。")
    # The chosen filter reads as chosen without colour: a ticked box and a remove link.
    expect(facets.get_by_role("link", name="移除筛选条件 参考年份：2022")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name="2022年全国电力平均二氧化碳排放因子").click()

    api = httpx.get(f"{site.url}/v1/factors/{MEE_2022}").json()
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        "2022年全国电力平均二氧化碳排放因子"
    )
    shown = page.locator(".value [data-field=co2e]").inner_text()
    assert float(shown) == api["co2e"] == 0.5366
    expect(page.get_by_text(api["source_locator"])).to_be_visible()
    assert_accessible(page)
    screenshot(page, "factor-zh-cn-grid-2022")

    # A factor with several releases (synthetic): its history, then an older release.
    page.goto(f"{site.url}/factors/{SYNTH}/grid-2022?lang=zh")
    page.get_by_role("link", name="该因子在各版本中的数值变化").click()
    expect(page.get_by_role("img", name="各版本的排放因子（kg CO2e / kWh）")).to_be_visible()
    table = page.get_by_role("table", name="各版本中的数值")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table).to_contain_text(WITHDRAWAL_REASON)
    assert_accessible(page)
    screenshot(page, "history-zh-synthetic")
    table.get_by_role("link", name="1.0.0").click()
    expect(page.locator("#status-notice")).to_contain_text("此版本已被取代。")
    expect(page.locator("#status-notice")).to_contain_text("现行版本为 1.1.0")
    older = httpx.get(f"{site.url}/v1/factors/{SYNTH}/grid-2022?version=1.0.0").json()
    assert float(page.locator(".value [data-field=co2e]").inner_text()) == older["co2e"]
    assert_accessible(page)
    screenshot(page, "factor-zh-synthetic-superseded")

    # The withdrawn release keeps its page, says why, and links the current one.
    page.goto(f"{site.url}/factors/{SYNTH}/grid-2022@2.0.0?lang=zh")
    expect(page.locator("#status-notice")).to_contain_text(WITHDRAWAL_REASON)
    assert_accessible(page)
    screenshot(page, "factor-zh-synthetic-withdrawn")
    page.locator("#status-notice").get_by_role("link", name="查看该因子的现行版本").click()
    expect(page.locator(".factor-id")).to_contain_text("@1.1.0")
    assert_accessible(page)


def test_english_keyboard_only_search_open_and_cite_in_gb7714(
    page: Page, context: BrowserContext, site: Site
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page.goto(f"{site.url}/?lang=en")
    press_tab_until(page, "el.id === 'q'")
    page.keyboard.type("grid")
    page.keyboard.press("Enter")
    page.wait_for_url("**/?q=grid*")
    expect(page.locator("#result-count")).to_contain_text("emission factors found")
    assert_accessible(page)
    screenshot(page, "search-en-grid")

    name = "China national average electricity CO2 emission factor, 2022"
    press_tab_until(page, f"el.tagName === 'A' && el.textContent.includes({name!r})")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/factors/{MEE_2022}?lang=en")
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    assert_accessible(page)

    press_tab_until(page, "el.tagName === 'A' && el.textContent.trim() === 'Cite this factor'")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/factors/{MEE_2022}@1.0.0/cite?lang=en")
    # Choose APA, then GB/T 7714, by keyboard.
    press_tab_until(page, "el.tagName === 'A' && el.textContent.includes('APA')")
    page.keyboard.press("Enter")
    expect(page.locator("#citation-text")).to_contain_text("[Data set]")
    press_tab_until(page, "el.tagName === 'A' && el.textContent.includes('GB/T 7714')")
    page.keyboard.press("Enter")
    citation = page.locator("#citation-text")
    expect(citation).to_contain_text(f"{name}[DS/OL]//")
    expect(citation).to_contain_text(f"{site.url}/factors/{MEE_2022}@1.0.0")
    release = httpx.get(f"{site.url}/v1/datasets/mee-cn/cn-electricity-co2/versions/1.0.0").json()
    expect(citation).to_contain_text(release["content_sha256"])
    assert_accessible(page)

    press_tab_until(page, "el.id === 'copy-citation'")
    page.keyboard.press("Enter")
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == citation.inner_text()
    screenshot(page, "cite-en-gb7714")
