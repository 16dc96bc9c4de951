"""Text search on terms (`match=term`, the default): 烟煤 (bituminous coal) does not find
无烟煤 (anthracite), `coal` does not find charcoal; `match=substring` asks for substrings and
ranks term matches first. Both languages, both databases.

The seed tests use the real IPCC 2006 factors and the reference activity vocabulary; the
ranking tests use synthetic factors (tests/factories.py labels them synthetic).
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.reference.terms import TermRule, word_start_pattern
from tests.auth_fixtures import TokenKit
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.test_activity_labels_upload import labelled_csv, labelled_row
from tests.test_factors_api import assert_problem, search
from tests.test_publishing import PUBLISHER, VERSIONS, publish, upload
from tests.test_publishing import create_dataset as create_upload_dataset

IPCC = "ipcc-tfi/ipcc-2006-stationary-combustion/{}@1.0.0"
BITUMINOUS = IPCC.format("other-bituminous-coal")
SUB_BITUMINOUS = IPCC.format("sub-bituminous-coal")
ANTHRACITE = IPCC.format("anthracite")
NATURAL_GAS = IPCC.format("natural-gas")
NGL = IPCC.format("natural-gas-liquids")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [factor["id"] for factor in items]


def codes(client: TestClient, **params: Any) -> list[str]:
    return [factor["factor_code"] for factor in search(client, **params)]


# --- The real seed --------------------------------------------------------------------------


def test_bituminous_coal_is_not_anthracite(client: TestClient, seeded: None) -> None:
    # 烟煤 is a keyword of the other-bituminous-coal activity; 无烟煤 (anthracite) and 次烟煤
    # (sub-bituminous) are keywords of activities 烟煤 does not name: distinct terms.
    assert ids(search(client, q="烟煤")) == [BITUMINOUS]
    assert ids(search(client, q="无烟煤")) == [ANTHRACITE]
    assert ids(search(client, q="次烟煤")) == [SUB_BITUMINOUS]
    # Asked for: every substring, the term match first.
    found = ids(search(client, q="烟煤", match="substring"))
    assert found[0] == BITUMINOUS
    assert set(found) == {BITUMINOUS, SUB_BITUMINOUS, ANTHRACITE}
    # 天然气 (natural gas) is not 天然气凝液 (natural gas liquids, a keyword of its own).
    assert NGL not in ids(search(client, q="天然气"))
    assert NATURAL_GAS in ids(search(client, q="天然气"))
    assert NGL in ids(search(client, q="天然气", match="substring"))
    # A term the vocabulary does not know matches as a substring: 燃烧 in 固定源燃烧.
    assert {BITUMINOUS, ANTHRACITE} <= set(ids(search(client, q="燃烧")))


def test_the_activity_listing_reads_terms_alike(client: TestClient) -> None:
    def listed(**params: str) -> list[str]:
        response = client.get("/v1/activities", params={"limit": 1000, **params})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    def sectors(fuel: str) -> set[str]:
        """The fuel's activities in IPCC 2006 Vol. 2 Tables 2.2–2.5, one per sector table."""
        return {
            f"{fuel}-stationary-combustion-{sector}"
            for sector in (
                "energy-industries",
                "manufacturing-industries-and-construction",
                "commercial-institutional",
                "residential-agriculture-forestry-fishing",
            )
        }

    bituminous = sectors("other-bituminous-coal")
    assert set(listed(q="烟煤")) == bituminous
    assert set(listed(q="烟煤", match="substring")) == (
        sectors("anthracite") | bituminous | sectors("sub-bituminous-coal")
    )
    assert set(listed(q="hard coal")) == sectors("anthracite")
    assert listed(q="ard coal") == []
    # Pages of a term search follow their cursor; the cursor keeps its match.
    first = client.get("/v1/activities", params={"q": "烟煤", "match": "substring", "limit": 1})
    body = first.json()
    seen = [item["id"] for item in body["items"]]
    while body["next"] is not None:
        body = client.get(body["next"]).json()
        seen += [item["id"] for item in body["items"]]
    assert seen == sorted(listed(q="烟煤", match="substring"))
    cursor = first.json()["next"].split("cursor=")[1]
    assert_problem(client.get("/v1/activities", params={"q": "烟煤", "cursor": cursor}), 422)


def test_english_terms_match_at_word_starts(client: TestClient, seeded: None) -> None:
    # "Sub-Bituminous": a hyphen starts a word.
    assert set(ids(search(client, q="bituminous"))) == {BITUMINOUS, SUB_BITUMINOUS}
    assert ids(search(client, q="anthracite")) == [ANTHRACITE]
    # "ituminous" starts no word: only a substring search finds it.
    assert search(client, q="ituminous") == []
    assert set(ids(search(client, q="ituminous", match="substring"))) == {
        BITUMINOUS,
        SUB_BITUMINOUS,
    }


def test_match_is_checked_and_belongs_to_the_cursor(client: TestClient, seeded: None) -> None:
    body = assert_problem(client.get("/v1/factors", params={"q": "coal", "match": "fuzzy"}), 422)
    assert "match" in str(body["errors"])
    first = client.get("/v1/factors", params={"q": "coal", "match": "substring", "limit": 1})
    assert first.status_code == 200, first.text
    cursor = first.json()["next"].split("cursor=")[1]
    assert_problem(client.get("/v1/factors", params={"q": "coal", "cursor": cursor}), 422)
    following = client.get(first.json()["next"])
    assert following.status_code == 200, following.text


# --- Ranking, synthetic factors ---------------------------------------------------------------


@pytest.fixture
def coals(session: Session) -> None:
    """Synthetic factors (ids in insertion order: the best matches are inserted last)."""
    publisher = create_publisher(session, slug="synth")
    dataset = create_dataset(session, publisher=publisher, slug="coals")
    rows = [
        ("e-charcoal", "Synthetic charcoal", "合成木炭"),
        ("e-brown", "Brown coal, synthetic", "合成褐色燃料"),
        ("e-prefix", "Coal, hard, synthetic", "合成硬质燃料"),
        ("e-exact", "Coal", "合成燃料"),
        ("z-anthracite", "Synthetic fuel A", "无烟煤块（合成）"),
        ("z-other", "Synthetic fuel B", "其他烟煤块（合成）"),
        ("z-prefix", "Synthetic fuel C", "烟煤（合成洗选）"),
        ("z-exact", "Synthetic fuel D", "烟煤"),
    ]
    create_version(
        session,
        dataset=dataset,
        factors=[
            factor_fields(code, activity_id=f"synthetic-{code}", name_en=en, name_zh=zh)
            for code, en, zh in rows
        ],
    )
    session.commit()


def test_english_ranking_exact_then_prefix_then_word(client: TestClient, coals: None) -> None:
    assert codes(client, q="coal") == ["e-exact", "e-prefix", "e-brown"]
    assert codes(client, q="coal", match="substring") == [
        "e-exact",
        "e-prefix",
        "e-brown",
        "e-charcoal",
    ]
    assert codes(client, q="COAL") == ["e-exact", "e-prefix", "e-brown"]


def test_chinese_ranking_exact_then_prefix_then_term(client: TestClient, coals: None) -> None:
    assert codes(client, q="烟煤") == ["z-exact", "z-prefix", "z-other"]
    assert codes(client, q="烟煤", match="substring") == [
        "z-exact",
        "z-prefix",
        "z-other",
        "z-anthracite",
    ]
    assert codes(client, q="无烟煤") == ["z-anthracite"]
    # Pages follow the ranking, with the match in the cursor.
    response = client.get("/v1/factors", params={"q": "烟煤", "match": "substring", "limit": 1})
    seen: list[str] = []
    while True:
        assert response.status_code == 200, response.text
        seen += [f["factor_code"] for f in response.json()["items"]]
        if response.json()["next"] is None:
            break
        response = client.get(response.json()["next"])
    assert seen == ["z-exact", "z-prefix", "z-other", "z-anthracite"]


def test_explorer_facets_count_terms(client: TestClient, coals: None) -> None:
    body = client.get("/.json", params={"q": "烟煤"}).json()
    assert body["total"] == 3
    assert [f["factor_code"] for f in body["items"]] == ["z-exact", "z-prefix", "z-other"]


# --- The publishers' labels are terms too ---------------------------------------------------


def test_publisher_labels_make_distinct_terms(client: TestClient, tokens: TokenKit) -> None:
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    create_upload_dataset(client, writer)
    billet, stainless = f"{PUBLISHER}-billet", f"{PUBLISHER}-stainless-billet"
    rows = [
        labelled_row(
            0,
            billet,
            activity_name_zh="合成钢坯",
            activity_name_en="Synthetic billet",
            activity_keywords="钢坯",
        ),
        labelled_row(
            1,
            stainless,
            activity_name_zh="合成不锈钢坯料",
            activity_name_en="Synthetic stainless billet",
            activity_keywords="不锈钢坯",
        ),
    ]
    rows[0]["name_zh"] = "钢坯连铸（合成）"
    rows[1]["name_zh"] = "不锈钢坯热轧（合成）"
    assert upload(client, writer, labelled_csv(rows)).status_code == 201
    assert client.post(f"{VERSIONS}/1.0.0/submit", headers=writer).status_code == 200
    assert publish(client, reviewer, "1.0.0").status_code == 200
    # 钢坯 names the billet activity; 不锈钢坯 is a keyword of another: a distinct term.
    assert codes(client, q="钢坯") == ["synthetic-00000"]
    assert codes(client, q="钢坯", match="substring") == ["synthetic-00000", "synthetic-00001"]
    assert codes(client, q="不锈钢坯") == ["synthetic-00001"]


# --- The rule itself ------------------------------------------------------------------------


def test_term_rule_in_python_agrees_with_the_sql_reading() -> None:
    rule = TermRule("烟煤", distinct=("无烟煤", "次烟煤"))
    assert rule.matches("其他烟煤")
    assert not rule.matches("无烟煤与次烟煤")
    assert rule.matches("无烟煤与烟煤")
    # Removing a distinct term never joins its neighbours into the term.
    assert not rule.matches("烟无烟煤煤")
    english = TermRule("coal", word_start=True)
    assert english.matches("Sub-bituminous Coal")
    assert english.matches("coal")
    assert not english.matches("charcoal")
    assert word_start_pattern("c++") == r"(?i)(^|\W)c\+\+"


def test_the_explorer_matches_terms_and_offers_substrings(client: TestClient, seeded: None) -> None:
    page = client.get("/", params={"q": "烟煤", "lang": "zh"})
    assert page.status_code == 200, page.text
    assert "其他烟煤" in page.text
    assert "无烟煤固定源燃烧" not in page.text
    link = re.search(r'<a href="([^"]*match=substring[^"]*)">', page.text)
    assert link is not None
    wider = client.get(html.unescape(link.group(1)))
    assert wider.status_code == 200, wider.text
    assert "无烟煤固定源燃烧" in wider.text
    assert "也显示部分匹配" not in wider.text
    twin = client.get("/.json", params={"q": "烟煤", "match": "substring"}).json()
    assert {item["id"] for item in twin["items"]} == {BITUMINOUS, SUB_BITUMINOUS, ANTHRACITE}
    assert twin["total"] == 3
    assert_problem(client.get("/.json", params={"q": "烟煤", "match": "fuzzy"}), 422)


@pytest.mark.parametrize("query", ["电网排放因子", "电网平均排放因子", "电力二氧化碳排放因子"])
def test_the_words_accountants_use_for_grid_factors_find_them(
    client: TestClient, seeded: None, query: str
) -> None:
    found = search(client, q=query)
    regions = {item["region"] for item in found}
    assert found
    assert all(item["activity_id"] == "electricity-grid-mix" for item in found)
    assert {"CN", "GB"} <= regions


def test_related_activities_are_named_not_ids(client: TestClient, seeded: None) -> None:
    """The text found some of an activity's factors: the link to all of them names the
    activity from its labels, in the page's language."""
    english = client.get("/", params={"q": "2022年", "lang": "en"}).text
    assert "factors of the activity Electricity, grid average" in english
    chinese = client.get("/", params={"q": "2022年", "lang": "zh"}).text
    assert "的全部" in chinese
    assert "查看活动 电力（电网平均） 的全部" in chinese
