"""Every search shape the API allows has a bounded plan: the database's own EXPLAIN says so.

A synthetic release of several thousand factors (labelled synthetic) is published, PostgreSQL
gathers its statistics (`ANALYZE`, as autovacuum would; SQLite plans as the service runs it,
without `sqlite_stat1`), then each shape is requested over HTTP while its statements are
captured, and each statement that reads `factor` is explained with its own parameters:

- PostgreSQL: no `Seq Scan` on `factor` anywhere in the plan. Planner settings are untouched
  (no `enable_seqscan = off`): the plan is the planner's cost-based choice, made with the
  statistics of a national-scale table: after `ANALYZE`, `pg_class.reltuples` of `factor` is
  set to 100 times its rows (1.2M), so value frequencies stay as sampled and only the row
  count is national. (At 12k real rows a sequential pass is the cheapest plan for anything,
  and the question is what the plan is at 1M: bench/search_scale.py measures that for real.)
- SQLite: `EXPLAIN QUERY PLAN` never says `SCAN factor` (a full pass over the table or one
  of its indexes); only `SEARCH factor USING …` (an index lookup) or the FTS5 index.

Text that no index can narrow (a term of fewer than three characters, with nothing else to
bound it) is refused with a 422 problem saying what to add.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from app.core.db import make_sessionmaker
from app.core.principal import ANONYMOUS, Viewer
from app.datasets.visibility import parse_as_of
from app.factors import facets, service
from app.factors.service import FactorFilters
from app.publishing import draft_rows
from app.publishing.publish import publish
from bench.search_scale import full_scans as bench_full_scans
from tests.factories import create_dataset, create_publisher, create_version, factor_fields

ROWS = 12_000
# PostgreSQL plans the shapes as if the release held this many times ROWS (1.2M factors).
NATIONAL_SCALE = 100
# Names of 100 kinds in each language (a word and a qualifier), each 1 % of the rows.
WORDS_ZH = ("电力", "钢材", "水泥", "燃煤", "天然气", "铁路运输", "化肥", "玻璃", "铝锭", "造纸")
PLACES_ZH = ("北方", "南方", "东部", "西部", "中部", "沿海", "内陆", "高原", "山区", "平原")
WORDS_EN = ("power", "steel", "cement", "coal", "gas", "rail", "fertiliser", "glass", "aluminium")
KINDS_EN = ("ingot", "sheet", "bulk", "retail", "import", "export", "mix", "spot", "grade")
# Half the factors are national (CN): a region filter alone does not bound a short term.
REGIONS = ("GLO", "CN-BJ", "CN-GD", "CN-SH", "CN-JS", "CN-ZJ", "CN-SC", "CN-HB", "CN-HN")
ACTIVITIES = 40

# (label, path, query): every search shape of the API and of the explorer's JSON twin.
SHAPES: list[tuple[str, str, dict[str, str]]] = [
    ("list, no filter", "/v1/factors", {}),
    ("list, deep cursor", "/v1/factors", {"limit": "1000"}),
    ("region", "/v1/factors", {"region": "CN-GD"}),
    ("region + year", "/v1/factors", {"region": "CN-GD", "year": "2020"}),
    ("activity_id", "/v1/factors", {"activity_id": "synthetic-plan-07"}),
    ("year", "/v1/factors", {"year": "2020"}),
    ("unit", "/v1/factors", {"unit": "MJ"}),
    ("category", "/v1/factors", {"category": "synthetic/plan-3"}),
    ("boundary", "/v1/factors", {"boundary": "cradle-to-grave"}),
    ("publisher", "/v1/factors", {"publisher": "synthetic-plans"}),
    ("dataset", "/v1/factors", {"dataset": "synthetic-plans/plan-data"}),
    ("version pin", "/v1/factors", {"dataset": "synthetic-plans/plan-data", "version": "1.0.0"}),
    ("q zh", "/v1/factors", {"q": "铁路运输沿海"}),
    ("q en", "/v1/factors", {"q": "aluminium ingot"}),
    ("q zh + en", "/v1/factors", {"q": "水泥西部 cement"}),
    ("q short + activity_id", "/v1/factors", {"q": "水泥", "activity_id": "synthetic-plan-07"}),
    ("q + region + year", "/v1/factors", {"q": "cement", "region": "CN-GD", "year": "2020"}),
    ("q + unit", "/v1/factors", {"q": "天然气高原", "unit": "MJ"}),
    ("q + category", "/v1/factors", {"q": "glass bulk", "category": "synthetic/plan-3"}),
    ("q + boundary", "/v1/factors", {"q": "glass bulk", "boundary": "cradle-to-grave"}),
    ("q + dataset", "/v1/factors", {"q": "铁路运输沿海", "dataset": "synthetic-plans/plan-data"}),
    # 烟煤 names an activity of the vocabulary: its distinct terms (无烟煤, 次烟煤…) are
    # removed from each candidate's text (match=term); substring matching ranks by them.
    ("q zh term + region + year", "/v1/factors", {"q": "烟煤", "region": "CN-GD", "year": "2020"}),
    ("q substring", "/v1/factors", {"q": "水泥西部 cement", "match": "substring"}),
    ("facets, unfiltered (home page)", "/.json", {}),
    ("facets, dataset", "/.json", {"dataset": "synthetic-plans/plan-data"}),
    ("facets, region", "/.json", {"region": "CN-GD"}),
    ("facets, q", "/.json", {"q": "aluminium ingot"}),
]


def _plan_rows(index: int) -> dict[str, Any]:
    zh = WORDS_ZH[index % 10] + PLACES_ZH[(index // 10) % 10]
    en = f"{WORDS_EN[index % 9]} {KINDS_EN[(index // 9) % 9]}"
    return {
        "activity_id": f"synthetic-plan-{index % ACTIVITIES:02d}",
        "name_zh": f"合成{zh}排放因子 {index}",
        "name_en": f"Synthetic {en} factor {index}",
        "category": f"synthetic/plan-{index % 7}",
        "region": "CN" if index % 2 == 0 else REGIONS[(index // 2) % len(REGIONS)],
        "reference_year": 2015 + index % 10,
        "unit": ("kWh", "MJ", "kg", "t", "t*km")[index % 5],
        "boundary": ("cradle-to-gate", "cradle-to-grave", "gate-to-gate")[index % 3],
    }


@pytest.fixture
def planned(db: Engine, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One synthetic release of ROWS factors, with statistics; the text cap scaled to it."""
    monkeypatch.setattr(service, "TEXT_SEARCH_CANDIDATE_CAP", ROWS // 5)
    factory = make_sessionmaker(db)
    with factory.begin() as session:
        publisher = create_publisher(session, slug="synthetic-plans")
        dataset = create_dataset(session, publisher=publisher, slug="plan-data")
        version = create_version(
            session,
            dataset=dataset,
            factors=(factor_fields(f"plan-{i:05d}", **_plan_rows(i)) for i in range(ROWS)),
            status="draft",
        )
        # The workflow's steps one by one (the database refuses draft → published): submit
        # moves the draft's rows into factor.
        draft_rows.move_into_factors(session, version.id)
        version.status = "submitted"
        session.flush()
        publish(session, version=version, reviewer="synthetic-reviewer")
    if backend == "postgresql":
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))


@pytest.fixture
def captured(client: TestClient) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if re.search(r"\bfactor\b", statement):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield statements
    event.remove(engine, "before_cursor_execute", record)


def full_scans(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The plan lines of `statement` that read the whole `factor` table or a whole release,
    planned as if `factor` held NATIONAL_SCALE times its rows (see the module's docstring)."""
    return bench_full_scans(engine, statement, parameters, planned_rows=ROWS * NATIONAL_SCALE)


def test_each_search_shape_reads_factor_through_an_index(
    client: TestClient, planned: None, captured: list[tuple[str, Any]]
) -> None:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    failures: list[str] = []
    for label, path, query in SHAPES:
        captured.clear()
        response = client.get(path, params=query)
        assert response.status_code == 200, (label, response.text)
        if label == "list, deep cursor":
            # Three pages in: the cursor continues from an id far into the table.
            for _ in range(3):
                captured.clear()
                link = response.json()["next"]
                assert link, "expected more pages"
                response = client.get(link)
                assert response.status_code == 200, response.text
        assert captured, f"{label}: no statement read factor"
        for statement, parameters in captured:
            scans = full_scans(engine, statement, parameters)
            if scans:
                failures.append(f"{label}: {scans}\n{statement}\n{parameters}")
    assert not failures, "\n\n".join(failures)


REFUSED = [
    {"q": "水"},  # one character
    {"q": "水泥"},  # two: no trigram, nothing else bounds it
    {"q": "factor"},  # in every name
    {"q": "水泥", "region": "CN"},  # a filter that still leaves too many
]


def test_text_that_no_index_can_narrow_is_refused_with_what_to_add(
    client: TestClient, planned: None
) -> None:
    for query in REFUSED:
        refused_with_advice(client, query)


def refused_with_advice(client: TestClient, query: dict[str, str]) -> None:
    response = client.get("/v1/factors", params=query)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("search-too-broad")
    assert problem["errors"][0]["loc"] == ["query", "q"]
    assert "Add a filter" in problem["detail"]
    # The same text with a filter that bounds it answers.
    narrowed = client.get("/v1/factors", params={**query, "activity_id": "synthetic-plan-07"})
    assert narrowed.status_code == 200, narrowed.text
    # The explorer refuses it the same way.
    page = client.get("/.json", params=query)
    assert page.status_code == 422, page.text


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"publisher": "mee-cn"},
        {"dataset": "cn-electricity-co2", "publisher": "mee-cn"},
        {"license_id": "OGL-UK-3.0"},
        {"as_of": "2000-01-01"},
    ],
)
def test_facets_of_whole_releases_add_up_to_the_grouped_counts(
    db: Engine, seeded: None, filters: dict[str, str]
) -> None:
    """The counts stored at publish give exactly what grouping the factors gives."""
    chosen: dict[str, Any] = dict(filters)
    as_of = chosen.pop("as_of", None)
    wanted = FactorFilters(**chosen, as_of=parse_as_of(as_of) if as_of else None)
    assert facets._whole_releases(wanted)
    with make_sessionmaker(db)() as session:
        for viewer in (ANONYMOUS, Viewer(scopes=frozenset({"factors:read"}))):
            stored = facets._release_grouped(session, viewer=viewer, filters=wanted)
            grouped = facets._grouped_rows(session, viewer=viewer, filters=wanted)
            assert stored == grouped
            if not as_of:
                assert stored[facets.TOTAL][""] > 0
