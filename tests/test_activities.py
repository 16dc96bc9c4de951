"""Activity labels (reference data): names and synonyms of the `activity_id` vocabulary, each
citing its wording; `GET /v1/activities`; text search widened through them on both databases
(电网 finds the MEE's factors, named 电力); an unlabelled activity in an upload is a warning."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.db import make_engine, make_sessionmaker
from app.core.migrations import alembic_config, upgrade_to_head
from app.reference.loader import REFERENCE_DIR, load_reference_data
from app.reference.models import Activity
from tests.auth_fixtures import TokenKit
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.test_factors_api import assert_problem, search
from tests.test_migrations import fresh_url  # noqa: F401  (fixture)
from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
from tests.upload_files import csv_bytes, synthetic_row

SEED = Path(__file__).resolve().parents[1] / "seed_data"
MEE = "mee-cn/cn-electricity-co2/national-average-{year}@1.0.0"
UK_GRID = "desnz-uk/uk-ghg-conversion-factors-2024/uk-electricity-generated@1.0.0"


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [factor["id"] for factor in items]


# --- The labels ---------------------------------------------------------------------------------


def seed_activity_ids() -> set[str]:
    found: set[str] = set()
    for path in SEED.glob("*/*/*.csv"):
        if json.loads((path.parent / "dataset.json").read_text(encoding="utf-8")).get("scope"):
            continue  # a publisher's own file, read by an importer (the full seed)
        with path.open(encoding="utf-8") as handle:
            found |= {row["activity_id"] for row in csv.DictReader(handle)}
    return found


def test_every_seed_activity_is_labelled_and_cited(session: Session) -> None:
    labelled = {row.id: row for row in session.scalars(select(Activity))}
    assert seed_activity_ids() <= set(labelled)
    for activity in labelled.values():
        assert activity.name_zh
        assert activity.name_en
        assert activity.source
        assert activity.locator
    grid = labelled["electricity-grid-mix"]
    assert "电网" in grid.keywords_zh
    assert "grid" in grid.keywords_en
    # Official wording cited; what efdb coined says so.
    assert "全国电力平均二氧化碳排放因子" in grid.source
    assert "efdb's own" in grid.source


def test_the_listing_pages_and_filters(client: TestClient) -> None:
    everything = get(client, "/v1/activities", limit=1000)
    assert everything["next"] is None
    assert {item["id"] for item in everything["items"]} >= seed_activity_ids()
    assert [i["id"] for i in everything["items"]] == sorted(i["id"] for i in everything["items"])
    # Pages by opaque cursor, in id order, Link header included.
    seen: list[str] = []
    response = client.get("/v1/activities", params={"limit": 5})
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        if body["next"] is None:
            break
        assert response.headers["link"] == f'<{body["next"]}>; rel="next"'
        response = client.get(body["next"])
    assert seen == [item["id"] for item in everything["items"]]
    # q: in the id, a name or a keyword; every term.
    grid = get(client, "/v1/activities", q="电网")["items"]
    assert [item["id"] for item in grid] == ["electricity-grid-mix"]
    assert grid[0]["keywords_en"]
    assert grid[0]["source"]
    coal = {item["id"] for item in get(client, "/v1/activities", q="brown coal")["items"]}
    # Lignite in each sector table of IPCC 2006 Vol. 2 (Tables 2.2–2.5), and nothing else.
    assert coal == {
        f"lignite-stationary-combustion-{sector}"
        for sector in (
            "energy-industries",
            "manufacturing-industries-and-construction",
            "commercial-institutional",
            "residential-agriculture-forestry-fishing",
        )
    }
    assert get(client, "/v1/activities", q="石墨烯")["items"] == []


def test_one_activity_and_errors(client: TestClient) -> None:
    body = get(client, "/v1/activities/electricity-grid-mix")
    assert body["name_zh"]
    assert body["name_en"]
    assert body["reference_version"]
    missing = assert_problem(client.get("/v1/activities/graphene-production"), 404)
    assert "graphene-production" in missing["detail"]
    assert_problem(client.get("/v1/activities/Not_A_Slug"), 422)
    assert_problem(client.get("/v1/activities", params={"qq": "grid"}), 422)
    assert_problem(client.get("/v1/activities/electricity-grid-mix", params={"x": "1"}), 422)
    assert_problem(client.get("/v1/activities", params={"cursor": "garbage"}), 422)
    first = get(client, "/v1/activities", limit=1)
    cursor = first["next"].split("cursor=")[1]
    assert_problem(client.get("/v1/activities", params={"q": "coal", "cursor": cursor}), 422)


# --- Search through the labels -------------------------------------------------------------------


def test_dianwang_finds_the_mee_factors(client: TestClient, seeded: None) -> None:
    found = ids(search(client, q="电网"))
    # DESNZ's Chinese name holds 电网 (its own text, first); the MEE's are found through
    # their activity's keyword.
    assert found == [UK_GRID, *(MEE.format(year=year) for year in (2021, 2022, 2023))]
    assert ids(search(client, q="电网 2022")) == [MEE.format(year=2022)]
    assert ids(search(client, q="电网", region="CN", year=2022)) == [MEE.format(year=2022)]


def test_an_english_synonym(client: TestClient, seeded: None) -> None:
    hhv = ids(search(client, q="HHV"))
    assert hhv == ["desnz-uk/uk-ghg-conversion-factors-2024/natural-gas-kwh-gross-cv@1.0.0"]
    # "petrol": Liquefied Petroleum Gases by its own name, then Motor Gasoline by a keyword.
    petrol = [item.split("/")[2] for item in ids(search(client, q="petrol"))]
    assert petrol == ["liquefied-petroleum-gases@1.0.0", "motor-gasoline@1.0.0"]
    brown = ids(search(client, q="brown coal"))
    assert brown == ["ipcc-tfi/ipcc-2006-stationary-combustion/lignite@1.0.0"]
    # "power" is a keyword of the grid activity, in no factor's name.
    assert set(ids(search(client, q="power"))) == {
        UK_GRID,
        *(MEE.format(year=year) for year in (2021, 2022, 2023)),
    }


def test_label_matches_rank_after_the_factors_own_text(client: TestClient, seeded: None) -> None:
    # 煤 is in five IPCC coal names; 煤炭 in none, only in the coal activities' keywords.
    coal = ids(search(client, q="煤炭"))
    assert len(coal) == 5
    assert all("ipcc-tfi" in item for item in coal)
    # "coal": Anthracite and Lignite say it only through their activity's keyword "coal" (an
    # exact keyword: rank 4), after the three whose names hold it (rank 3).
    names = [item.split("/")[2].split("@")[0] for item in ids(search(client, q="coal"))]
    assert names[:3] == ["coking-coal", "other-bituminous-coal", "sub-bituminous-coal"]
    assert sorted(names[3:]) == ["anthracite", "lignite"]


@pytest.fixture
def labelled(session: Session) -> None:
    """Synthetic factors (ids in insertion order) of the real, labelled grid activity."""
    publisher = create_publisher(session, slug="synth")
    dataset = create_dataset(session, publisher=publisher, slug="labels")
    create_version(
        session,
        dataset=dataset,
        factors=[
            factor_fields(
                "l-label", activity_id="electricity-grid-mix", name_en="Synthetic supply A"
            ),
            factor_fields(
                "l-partial", activity_id="electricity-grid-mix", name_en="Synthetic supply B"
            ),
            factor_fields("l-mention", activity_id="other", name_en="Synthetic grid average"),
            factor_fields("l-prefix", activity_id="other", name_en="Grid average, synthetic"),
            factor_fields("l-name", activity_id="other", name_en="Grid average", name_zh=None),
        ],
    )
    session.commit()


def test_ranking_order(client: TestClient, labelled: None) -> None:
    codes = [f["factor_code"] for f in search(client, q="grid average")]
    # A name is q, a name starts with it, a name holds it; then the activity whose keyword is
    # exactly q ("grid average"), in id order.
    assert codes == ["l-name", "l-prefix", "l-mention", "l-label", "l-partial"]
    codes = [f["factor_code"] for f in search(client, q="average grid")]
    # Not a name nor a keyword as a whole: every term in a name (rank 3, in id order), then
    # every term in the activity's labels (rank 5).
    assert codes == ["l-mention", "l-prefix", "l-name", "l-label", "l-partial"]
    response = client.get("/v1/factors", params={"q": "grid average", "limit": 2})
    seen: list[str] = []
    while True:
        body = response.json()
        seen += [f["factor_code"] for f in body["items"]]
        if body["next"] is None:
            break
        response = client.get(body["next"])
    assert seen == ["l-name", "l-prefix", "l-mention", "l-label", "l-partial"]


# --- Loading ------------------------------------------------------------------------------------


def test_the_file_is_the_table(session: Session) -> None:
    with (REFERENCE_DIR / "activities.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert session.scalar(select(func.count()).select_from(Activity)) == len(rows)
    assert load_reference_data(session).changed == {}


def test_downgrade_forgets_the_labels_and_upgrade_loads_them_again(
    fresh_url: str,  # noqa: F811
) -> None:
    engine = make_engine(fresh_url)
    try:
        upgrade_to_head(engine)
        with make_sessionmaker(engine).begin() as session:
            load_reference_data(session, audit=False)
        command.downgrade(alembic_config(fresh_url), "20261125_0005")
        upgrade_to_head(engine)
        with make_sessionmaker(engine).begin() as session:
            assert set(load_reference_data(session, audit=False).changed) == {"activities"}
            assert session.get(Activity, "electricity-grid-mix") is not None
    finally:
        engine.dispose()


# --- Uploads ------------------------------------------------------------------------------------


def test_an_unlabelled_activity_is_accepted_with_one_warning(
    client: TestClient, tokens: TokenKit
) -> None:
    writer = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=writer).status_code == 201
    rows = [synthetic_row(i) for i in range(3)]
    rows[1]["activity_id"] = "electricity-grid-mix"
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes(rows), "text/csv")},
    )
    assert response.status_code == 201, response.text
    warnings = [
        w for w in response.json()["report"]["warnings"] if w["code"] == "unlabelled_activity"
    ]
    # Rows 2 and 4 have the synthetic activity: listed once, at its first row.
    assert [(w["row"], w["column"]) for w in warnings] == [(2, "activity_id")]
    assert rows[0]["activity_id"] in warnings[0]["detail"]
