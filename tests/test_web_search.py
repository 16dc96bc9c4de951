"""The search page (`/`): facet counts agree with the API, the twins are the API's data, the
filters live in the URL, pagination follows the API's cursors, both languages."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import create_dataset_with_factors, factor_fields

HTML = {"Accept": "text/html"}
# Facet → the API's query parameter for it (license has none: the page alone filters on it).
API_PARAMS = {
    "region": "region",
    "year": "year",
    "category": "category",
    "publisher": "publisher",
    "dataset": "dataset",
    "unit": "unit",
    "boundary": "boundary",
    "activity_id": "activity_id",
}


def api_items(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    """Every item the API answers for these filters, following `next`."""
    items: list[dict[str, Any]] = []
    response = client.get("/v1/factors", params={**params, "limit": 1000})
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        if not body["next"]:
            return items
        response = client.get(body["next"])


def page_data(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/.json", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_facet_counts_equal_the_apis_result_counts(client: TestClient, seeded: None) -> None:
    for filters in ({}, {"q": "grid"}, {"q": "天然气"}, {"region": "CN"}):
        data = page_data(client, **filters)
        assert data["total"] == len(api_items(client, **filters))
        assert set(data["facets"]) == {*API_PARAMS, "license"}
        assert data["facets"]["region"], filters
        for facet, param in API_PARAMS.items():
            for value in data["facets"][facet]:
                found = api_items(client, **{**filters, param: value["value"]})
                assert value["count"] == len(found), (filters, facet, value)
        # The license facet: the API's counts per dataset, summed over the datasets under it.
        for value in data["facets"]["license"]:
            by_license = [
                item
                for item in api_items(client, **filters)
                if item["license_id"] == value["value"]
            ]
            assert value["count"] == len(by_license)
            assert page_data(client, **filters, license=value["value"])["total"] == value["count"]


def test_category_facet_rolls_paths_up_like_the_prefix_filter(
    client: TestClient, seeded: None
) -> None:
    top = {v["value"]: v["count"] for v in page_data(client)["facets"]["category"]}
    assert top["energy"] == len(api_items(client))
    below = page_data(client, category="energy")["facets"]["category"]
    assert {v["value"] for v in below} >= {"energy", "energy/electricity"}
    for value in below:
        assert value["count"] == len(api_items(client, category=value["value"]))


def test_facets_label_publishers_and_datasets_in_both_languages(
    client: TestClient, seeded: None
) -> None:
    facets = page_data(client)["facets"]
    (mee,) = [v for v in facets["publisher"] if v["value"] == "mee-cn"]
    assert mee["label_zh"]
    assert mee["label_en"]
    (grid,) = [v for v in facets["dataset"] if v["value"] == "mee-cn/cn-electricity-co2"]
    assert grid["label_zh"].startswith("全国电力平均二氧化碳排放因子")
    assert grid["label_en"].startswith("China national average electricity")


def test_the_json_twin_is_the_apis_page_plus_facets(client: TestClient, seeded: None) -> None:
    api = client.get("/v1/factors", params={"q": "grid", "limit": 2}).json()
    twin = page_data(client, q="grid", limit=2)
    assert twin["items"] == api["items"]
    # The same opaque cursor, on the twin's own path.
    assert api["next"].startswith("/v1/factors?")
    assert twin["next"].startswith("/.json?")
    assert (
        dict(parse_qsl(urlsplit(twin["next"]).query))["cursor"]
        == (dict(parse_qsl(urlsplit(api["next"]).query))["cursor"])
    )
    assert client.get(twin["next"]).json()["items"] == client.get(api["next"]).json()["items"]


class _Links(HTMLParser):
    """The hrefs of a page's links, and the text of elements marked with data attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, dict[str, str | None]]] = []
        self.fields: list[tuple[dict[str, str | None], str]] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.links.append((attributes["href"] or "", attributes))
        if "data-field" in attributes or "data-facet" in attributes:
            self._open.append(tag)
            self.fields.append((attributes, ""))

    def handle_data(self, data: str) -> None:
        if self._open:
            attributes, text = self.fields[-1]
            self.fields[-1] = (attributes, text + data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == self._open[-1]:
            self._open.pop()


def parse(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def test_the_page_shows_the_same_counts_and_numbers(client: TestClient, seeded: None) -> None:
    response = client.get("/", params={"q": "grid", "lang": "en"})
    assert response.status_code == 200
    data = page_data(client, q="grid")
    page = parse(response.text)
    shown = {
        (attrs["data-facet"], attrs["data-value"]): int(text.strip("()"))
        for attrs, text in page.fields
        if "data-facet" in attrs
    }
    expected = {
        (facet, value["value"]): value["count"]
        for facet, values in data["facets"].items()
        for value in values
    }
    assert shown == expected
    values = [float(text) for attrs, text in page.fields if attrs.get("data-field") == "co2e"]
    assert values == [item["co2e"] for item in data["items"]]
    assert f"{data['total']} emission factors found" in response.text


def test_facet_links_add_and_remove_one_filter(client: TestClient, seeded: None) -> None:
    page = parse(client.get("/", params={"q": "grid", "lang": "en"}).text)
    hrefs = [href for href, _ in page.links]
    add_region = next(h for h in hrefs if "region=CN" in h)
    assert dict(parse_qsl(urlsplit(add_region).query)) == {
        "q": "grid",
        "region": "CN",
        "lang": "en",
    }
    narrowed = client.get(add_region)
    assert narrowed.status_code == 200
    selected = parse(narrowed.text)
    (remove,) = [h for h, attrs in selected.links if attrs.get("aria-current") == "true"]
    assert dict(parse_qsl(urlsplit(remove).query)) == {"q": "grid", "lang": "en"}


def test_the_search_form_works_without_scripts(client: TestClient, seeded: None) -> None:
    html = client.get("/", params={"region": "CN", "lang": "zh"}).text
    form = re.search(r'<form class="search" method="get" action="/".*?</form>', html, re.S)
    assert form is not None
    # The current filters ride along as hidden fields, so a new text keeps them.
    assert '<input type="hidden" name="region" value="CN">' in form.group(0)
    assert '<input type="hidden" name="lang" value="zh">' in form.group(0)
    # An empty text field (what a form sends) means no text filter.
    empty = client.get("/", params={"q": "", "region": "CN", "year": "", "lang": "zh"})
    assert empty.status_code == 200
    assert page_data(client, q="", region="CN")["total"] == len(api_items(client, region="CN"))


def test_the_snippets_fetch_exactly_this_page_from_the_api(
    client: TestClient, seeded: None
) -> None:
    first = client.get("/", params={"q": "grid", "limit": 2, "lang": "en"})
    second_url = next(h for h, attrs in parse(first.text).links if attrs.get("rel") == "next")
    second = client.get(second_url).text
    snippet = re.search(
        r"curl -s &#39;http://127\.0\.0\.1:8000(/v1/factors\?[^&#]*[^#]*)&#39;", second
    )
    assert snippet is not None
    api_url = snippet.group(1).replace("&amp;", "&")
    assert "cursor=" in api_url
    shown = re.findall(r'<tr data-id="([^"]+)">', second)
    assert [item["id"] for item in client.get(api_url).json()["items"]] == shown


def test_pages_follow_the_apis_cursor_to_the_end(client: TestClient, seeded: None) -> None:
    seen: list[str] = []
    url: str | None = "/?limit=4&lang=en"
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += re.findall(r'<tr data-id="([^"]+)">', response.text)
        nexts = [h for h, attrs in parse(response.text).links if attrs.get("rel") == "next"]
        assert len(nexts) <= 1
        url = nexts[0] if nexts else None
        if url:
            assert response.headers["link"] == f'<{url}>; rel="next"'
    assert seen == [item["id"] for item in api_items(client)]


def test_typing_grid_in_chinese_finds_the_china_grid_factors(
    client: TestClient, seeded: None
) -> None:
    """电网 is not in the MEE's Chinese names (they say 电力), but it is a keyword of their
    activity `electricity-grid-mix`: the results hold China's factors directly."""
    html = client.get("/", params={"q": "电网", "lang": "zh"}).text
    for year in (2021, 2022, 2023):
        assert f"/factors/mee-cn/cn-electricity-co2/national-average-{year}?" in html
    # Every factor of the activity is found, so no "related activity" link is needed.
    assert not [
        h for h, _ in parse(html).links if "activity_id=electricity-grid-mix" in h and "q=" not in h
    ]
    data = page_data(client, q="电网")
    assert data["total"] == 4
    (activity,) = data["facets"]["activity_id"]
    assert activity["value"] == "electricity-grid-mix"
    # The activity facet is labelled from the activity labels: it says why 电力 factors show.
    assert (activity["label_zh"], activity["label_en"]) == (
        "电力（电网平均）",
        "Electricity, grid average",
    )
    assert "电力（电网平均）" in html
    # In English, "grid" finds them too (their activity id holds it).
    english = client.get("/", params={"q": "grid", "lang": "en"}).text
    assert "/factors/mee-cn/cn-electricity-co2/national-average-2022?" in english


def test_facet_counts_equal_the_apis_through_activity_labels(
    client: TestClient, seeded: None
) -> None:
    for q in ("电网", "电网 2022", "煤炭", "petrol"):
        data = page_data(client, q=q)
        assert data["total"] == len(api_items(client, q=q)) > 0, q
        for value in data["facets"]["year"]:
            assert value["count"] == len(api_items(client, q=q, year=value["value"]))


def test_language_from_the_url_then_accept_language(client: TestClient, seeded: None) -> None:
    english = client.get("/", headers={**HTML, "Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.text
    assert english.headers["content-language"] == "en"
    assert "Accept-Language" in {v.strip() for v in english.headers["vary"].split(",")}
    pinned = client.get("/?lang=zh", headers={**HTML, "Accept-Language": "en"})
    assert '<html lang="zh-CN">' in pinned.text
    # Pinned by the URL: the page no longer depends on Accept-Language.
    assert "Accept-Language" not in pinned.headers.get("vary", "")
    assert "检索排放因子" in pinned.text
    # Names in both languages, each marked with its own language.
    both = client.get("/?q=2022&lang=en").text
    assert '<span lang="en">China national average electricity CO2 emission factor, 2022' in both
    assert 'class="other-name" lang="zh-CN">2022年全国电力平均二氧化碳排放因子</span>' in both


def test_bad_filters_are_an_error_page_for_browsers(client: TestClient, seeded: None) -> None:
    page = client.get("/", params={"year": "soon", "lang": "en"}, headers=HTML)
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert "year" in page.text
    unknown = client.get("/", params={"regoin": "CN"}, headers=HTML)
    assert unknown.status_code == 422
    twin = client.get("/.json", params={"region": "china"})
    assert twin.status_code == 422
    assert twin.headers["content-type"] == "application/problem+json"


def test_the_csv_twin_holds_the_same_page(client: TestClient, seeded: None) -> None:
    response = client.get("/.csv", params={"q": "grid", "limit": 3})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    items = page_data(client, q="grid", limit=3)["items"]
    assert [row["id"] for row in rows] == [item["id"] for item in items]
    assert [float(row["co2e"]) for row in rows] == [item["co2e"] for item in items]
    assert 'rel="next"' in response.headers["link"]


@pytest.fixture
def registered(session: Session) -> None:
    create_dataset_with_factors(
        session,
        publisher="synthetic-members",
        dataset="members-only",
        access="registered",
        factors=[factor_fields("hidden-grid", name_en="Synthetic hidden grid factor")],
    )
    session.commit()


def test_registered_datasets_never_show(client: TestClient, seeded: None, registered: None) -> None:
    data = page_data(client, q="grid")
    assert all(item["publisher"] != "synthetic-members" for item in data["items"])
    assert "synthetic-members" not in {v["value"] for v in data["facets"]["publisher"]}
    assert page_data(client, q="hidden")["total"] == 0
