"""Text search over Chinese and English names: both databases, exact activity matches first."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.factors.models import Factor
from app.factors.search import SEARCH_TEXT_SQL
from tests.factories import (
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
)
from tests.test_factors_api import assert_problem, search


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [factor["id"] for factor in items]


# --- Real seed: 电力 and electricity ------------------------------------------------------------

CHINA_2022 = "mee-cn/cn-electricity-co2/national-average-2022@1.0.0"
UK_GRID = "desnz-uk/uk-ghg-conversion-factors-2024/uk-electricity-generated@1.0.0"


@pytest.mark.parametrize(
    ("q", "must", "must_not"),
    [
        ("电力", {CHINA_2022, UK_GRID}, {"ipcc-tfi"}),  # 2 characters: below a trigram
        ("电力平均二氧化碳", {CHINA_2022}, {UK_GRID}),  # 8 characters: the trigram index
        ("electricity", {CHINA_2022, UK_GRID}, {"ipcc-tfi"}),
        ("ELECTRICITY", {CHINA_2022, UK_GRID}, {"ipcc-tfi"}),
        ("electricity China", {CHINA_2022}, {UK_GRID}),  # every term, in any name
        ("电力 2022", {CHINA_2022}, {UK_GRID, "national-average-2021"}),  # short and long terms
        ("天然气", {"ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas@1.0.0"}, {CHINA_2022}),
        ("natural gas", {"ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas@1.0.0"}, {UK_GRID}),
    ],
)
def test_bilingual_search_on_the_real_seed(
    client: TestClient, seeded: None, q: str, must: set[str], must_not: set[str]
) -> None:
    found = ids(search(client, q=q))
    assert must <= set(found), found
    assert not any(part in factor for factor in found for part in must_not), found


def test_nothing_found(client: TestClient, seeded: None) -> None:
    assert search(client, q="石墨烯") == []
    assert search(client, q="graphene electricity") == []


# --- Ranking and pagination -------------------------------------------------------------------


@pytest.fixture
def ranked(session: Session) -> None:
    """Ids are in insertion order; the exact activity match is inserted last on purpose."""
    publisher = create_publisher(session, slug="synth")
    dataset = create_dataset(session, publisher=publisher, slug="grid")
    create_version(
        session,
        dataset=dataset,
        factors=[
            factor_fields(
                "r-mention", activity_id="line-losses", name_en="Losses of grid power lines"
            ),
            factor_fields(
                "r-prefix", activity_id="grid-power-losses", name_en="Synthetic losses factor"
            ),
            factor_fields("r-name", activity_id="other-thing", name_en="Grid power", name_zh=None),
            factor_fields("r-exact", activity_id="grid-power", name_en="Synthetic supply factor"),
        ],
    )
    session.commit()


def test_exact_activity_matches_come_first(client: TestClient, ranked: None) -> None:
    codes = [f["factor_code"] for f in search(client, q="grid-power")]
    # activity = q, then a name = q ("Grid power" has no hyphen: only "grid power" is equal),
    # then prefixes, then any other match.
    assert codes == ["r-exact", "r-prefix"]
    codes = [f["factor_code"] for f in search(client, q="grid power")]
    assert codes == ["r-exact", "r-name", "r-prefix", "r-mention"]


def test_ranked_pages_follow_the_next_links(client: TestClient, ranked: None) -> None:
    response = client.get("/v1/factors", params={"q": "grid power", "limit": 1})
    seen = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [f["factor_code"] for f in body["items"]]
        if body["next"] is None:
            break
        assert response.headers["Link"] == f'<{body["next"]}>; rel="next"'
        response = client.get(body["next"])
    assert seen == ["r-exact", "r-name", "r-prefix", "r-mention"]


def test_a_cursor_belongs_to_its_query(client: TestClient, ranked: None) -> None:
    first = client.get("/v1/factors", params={"q": "grid power", "limit": 1}).json()
    cursor = first["next"].split("cursor=")[1]
    assert_problem(client.get("/v1/factors", params={"q": "grid", "cursor": cursor}), 422)
    plain = client.get("/v1/factors", params={"limit": 1}).json()
    plain_cursor = plain["next"].split("cursor=")[1]
    assert_problem(
        client.get("/v1/factors", params={"q": "grid power", "cursor": plain_cursor}), 422
    )


# --- The search structures of migration 20261125_0003 -----------------------------------------


def test_search_structures_exist(db: Engine, backend: str) -> None:
    with db.connect() as connection:
        if backend == "sqlite":
            sql = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'factor_fts'")
            ).scalar_one()
            assert "fts5" in sql
            assert "trigram" in sql
        else:
            indexes = set(
                connection.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'factor'")
                ).scalars()
            )
            assert "ix_factor_search_text_trgm" in indexes
            # The query's expression is the index's: with scans of the table ruled out (it is
            # empty, so the planner would rather scan it), the index answers.
            connection.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(
                connection.execute(
                    text(
                        f"EXPLAIN SELECT id FROM factor WHERE {SEARCH_TEXT_SQL} ILIKE '%graphene%'"
                    )
                ).scalars()
            )
            assert "ix_factor_search_text_trgm" in plan


def test_only_released_factors_reach_the_text_index(
    client: TestClient, session: Session, backend: str
) -> None:
    publisher = create_publisher(session, slug="synth")
    dataset = create_dataset(session, publisher=publisher, slug="drafts")
    names = {"name_zh": "合成草稿钢材因子", "name_en": "Synthetic draft steel"}
    draft = create_version(
        session, dataset=dataset, status="draft", factors=[factor_fields("d-1", **names)]
    )
    session.commit()

    def indexed() -> int:
        if backend != "sqlite":
            return -1
        return int(
            session.execute(
                text("SELECT count(*) FROM factor_fts WHERE factor_fts MATCH :q"),
                {"q": '"草稿钢材"'},
            ).scalar_one()
        )

    # Drafts are inserted, replaced and deleted freely: they never enter the index.
    assert indexed() in (0, -1)
    assert search(client, q="草稿钢材") == []
    session.execute(delete(Factor).where(Factor.version_id == draft.id))
    session.commit()
    create_version(
        session,
        dataset=dataset,
        version="1.1.0",
        status="published",
        factors=[factor_fields("d-1", **names)],
    )
    session.commit()
    assert indexed() in (1, -1)
    assert [f["factor_code"] for f in search(client, q="草稿钢材")] == ["d-1"]
