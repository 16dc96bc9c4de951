"""Dataset, release-diff, resolve, compare, publisher and snapshot pages in a real browser.

Real flows: pick two releases and read a changed field's before → after; fill the resolve
form with the keyboard and read the fallback chain; download a Parquet export through its
button and read it back with pyarrow. Every page type passes axe-core's WCAG 2.2 AA rules.
The release history is synthetic (publisher `synthetic-web-b`), the rest is the real seed.
"""

from __future__ import annotations

from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import Browser, Page, expect

from app.core.db import make_sessionmaker
from app.exports.service import create_snapshot
from app.exports.store import LocalExportStore
from tests.browser.conftest import Site
from tests.browser.support import assert_accessible, screenshot
from tests.test_web_datasets import SYNTH, SYNTH_DATASET, SYNTH_PATH, publish_history

MEE = "/datasets/mee-cn/cn-electricity-co2"


@pytest.fixture(scope="module")
def explorer(site: Site) -> Site:
    """The seeded site plus a synthetic release history and one national snapshot."""
    publish_history(site.engine)
    with make_sessionmaker(site.engine).begin() as session:
        create_snapshot(
            session, export_store=LocalExportStore(site.settings.export_dir), actor="browser-test"
        )
    return site


def api(site: Site, path: str, **kwargs: Any) -> Any:
    answer = httpx.get(f"{site.url}{path}", **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_open_a_release_diff_and_read_a_changed_field(page: Page, explorer: Site) -> None:
    page.goto(f"{explorer.url}{SYNTH_PATH}?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Synthetic test dataset")
    assert_accessible(page)
    page.get_by_label("Older version").select_option("1.0.0")
    page.get_by_label("Newer version").select_option("2.0.0")
    page.get_by_role("button", name="Show the differences").click()
    page.wait_for_url(f"**{SYNTH_PATH}/diff/1.0.0...2.0.0?lang=en")
    diff = api(explorer, f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}/versions/2.0.0/diff?from=1.0.0")
    (change,) = diff["changed"]
    co2e = change["fields"]["co2e"]
    cell = f'[data-factor="{change["factor_code"]}"][data-field="co2e"]'
    expect(page.locator(f"td.before{cell}")).to_have_text(f"{co2e['before']:g}")
    expect(page.locator(f"td.after{cell}")).to_have_text(f"{co2e['after']:g}")
    expect(page.get_by_role("heading", name="Added factors")).to_be_visible()
    expect(page.get_by_role("link", name=diff["added"][0])).to_be_visible()
    expect(page.get_by_role("link", name=diff["removed"][0])).to_be_visible()
    assert_accessible(page)
    screenshot(page, f"diff-{explorer.engine.dialect.name}")


def test_resolve_with_fallback_using_the_keyboard(page: Page, explorer: Site) -> None:
    page.goto(f"{explorer.url}/resolve?lang=zh")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.get_by_label("活动标识").focus()
    page.keyboard.type("electricity-grid-mix")
    page.keyboard.press("Tab")
    page.keyboard.type("CN-GD")
    page.keyboard.press("Tab")
    page.keyboard.type("2022")
    page.keyboard.press("Tab")
    page.keyboard.type("1200")
    page.keyboard.press("Tab")
    page.keyboard.type("MWh")
    page.keyboard.press("Enter")
    page.wait_for_url("**/resolve?**")
    line = {"activity_id": "electricity-grid-mix", "region": "CN-GD", "year": 2022}
    answer = httpx.post(f"{explorer.url}/v1/factors:resolve", json={"items": [line]}).json()
    factor, match = answer["items"][0]["factor"], answer["items"][0]["match"]
    expect(page.get_by_test_id("chosen-co2e")).to_have_text(f"{factor['co2e']:g}")
    steps = page.locator("ol.chain > li")
    expect(steps).to_have_count(len(match["region_chain"]))
    chosen = steps.nth(match["region_distance"])
    expect(chosen).to_have_attribute("data-region", factor["region"])
    expect(chosen).to_contain_text("在此选中")
    expect(steps.first).to_contain_text("继续向上")
    estimate = httpx.post(
        f"{explorer.url}/v1/estimate", json={**line, "amount": 1200, "unit": "MWh"}
    ).json()
    expect(page.get_by_test_id("estimate-co2e")).to_have_text(f"{estimate['co2e_kg']:g}")
    assert_accessible(page)
    screenshot(page, f"resolve-{explorer.engine.dialect.name}")


def test_download_parquet_through_its_button(page: Page, explorer: Site) -> None:
    page.goto(f"{explorer.url}{MEE}?lang=en")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download Parquet").click()
    download = download_info.value
    assert download.suggested_filename == "mee-cn_cn-electricity-co2_1.0.0.parquet"
    table = pq.read_table(download.path())
    factors = api(explorer, "/v1/datasets/mee-cn/cn-electricity-co2/versions/1.0.0/factors")
    expected = sorted((f["factor_code"], f["co2e"]) for f in factors["items"])
    codes, values = table.column("factor_code").to_pylist(), table.column("co2e").to_pylist()
    got = sorted(zip(codes, values, strict=True))
    assert got == expected
    assert_accessible(page)


@pytest.mark.parametrize(
    "path",
    [
        "/datasets/ipcc-tfi/ipcc-2006-stationary-combustion?lang=en",
        f"{SYNTH_PATH}/versions/1.1.0?lang=zh",
        f"/publishers/{SYNTH}?lang=en",
        "/snapshots?lang=zh",
        "/changes?lang=en",
        "/citations?lang=zh",
        "/compare?lang=en&f=ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas"
        "&f=desnz-uk/uk-ghg-conversion-factors-2024/natural-gas-kwh-net-cv&unit=kWh&gwp=AR4",
        "/resolve?lang=en&activity_id=electricity-grid-mix&region=CN-GD&year=last",
    ],
    ids=[
        "dataset-disabled-download",
        "version",
        "publisher",
        "snapshots",
        "changes",
        "citations",
        "compare",
        "form-error",
    ],
)
def test_every_page_type_passes_axe(page: Page, explorer: Site, path: str) -> None:
    page.goto(f"{explorer.url}{path}")
    assert_accessible(page)
    name = path.split("?")[0].strip("/").replace("/", "-")
    screenshot(page, f"axe-{name}-{explorer.engine.dialect.name}")


def test_pasted_citations_are_checked_in_the_browser(page: Page, explorer: Site) -> None:
    page.goto(f"{explorer.url}/citations?lang=en")
    page.get_by_label("Citations (CSV)").fill(
        "id,value\n"
        "mee-cn/cn-electricity-co2/national-average-2022@1.0.0,\n"
        "mee-cn/cn-electricity-co2/no-such-factor@1.0.0,\n"
    )
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("status")).to_have_text("2 citations checked; 1 need attention.")
    expect(page.get_by_test_id("citation-1")).to_contain_text("No such factor in that release")
    assert_accessible(page)


def test_the_disabled_download_says_why(page: Page, explorer: Site) -> None:
    page.goto(f"{explorer.url}/datasets/ipcc-tfi/ipcc-2006-stationary-combustion?lang=en")
    disabled = page.locator('[aria-disabled="true"]')
    expect(disabled).to_have_count(1)
    expect(disabled).to_have_accessible_description(
        "Not available: License LicenseRef-IPCC-Copyright does not allow redistribution, "
        "so this dataset is never in a public national snapshot."
    )
    # Still reachable with the keyboard, so its reason is heard, and it goes nowhere.
    disabled.focus()
    page.keyboard.press("Enter")
    assert page.url.endswith("/datasets/ipcc-tfi/ipcc-2006-stationary-combustion?lang=en")


def test_compare_works_with_scripts_off(browser: Browser, explorer: Site) -> None:
    """The forms are plain GET forms: with JavaScript disabled, comparing still works."""
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{explorer.url}/compare?lang=en")
        page.get_by_label("Factor 1").fill("ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas")
        page.get_by_label("Factor 2").fill(
            "desnz-uk/uk-ghg-conversion-factors-2024/natural-gas-kwh-net-cv@1.0.0"
        )
        page.get_by_label("Common unit").fill("kWh")
        page.get_by_label("Global warming potentials (GWP100)").select_option("AR4")
        page.get_by_role("button", name="Compare").click()
        page.wait_for_url("**/compare?**")
        # 56,154.8 kg CO2e/TJ in AR4 × 3.6e-6 TJ/kWh (see tests/test_web_resolve.py).
        expect(
            page.locator('td[data-ref="ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas"]')
        ).to_have_text("0.20215728")
        expect(page.locator('tr[data-field="region"] .differs-mark')).to_have_text("≠ differs")
        expect(page.locator('tr[data-field="boundary"] .differs-mark')).to_have_count(0)
        screenshot(page, f"compare-no-script-{explorer.engine.dialect.name}")
    finally:
        context.close()
